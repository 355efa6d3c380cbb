//! Events applied in batches give the same reports as the same events applied one by one, and
//! both give the numbers this test computes itself from the events, in zones whose days are UTC
//! days, whole hours off them and half hours off them (each read from a different rollup grain),
//! for every breakdown.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use charla_metrics::domain::{Change, Closure, Dimension, Dimensions, Filter, Granularity, Report};
use charla_metrics::reports::{MetricsQuery, metrics};
use charla_metrics::store::{MIGRATIONS, MetricsStore, StreamEvent};
use charla_runtime::db::Database;
use charla_testing::{Backend, backend_tests, fresh_database_url};

backend_tests!(batches_equal_single_events_and_the_numbers_computed_here);

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
/// 2026-03-01T00:00:00Z.
const START: i64 = 1_772_323_200_000_000;

/// A small deterministic generator (no dependency for a test's dice).
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.roll(from.len() as u64) as usize]
    }
}

/// What this test knows of a conversation: its final dimensions and times.
struct Truth {
    contact: String,
    dimensions: Dimensions,
    opened_at: i64,
    closed_at: Option<i64>,
}

fn history() -> (Vec<StreamEvent>, Vec<Truth>) {
    let mut dice = Dice(7);
    let (mut events, mut truths) = (Vec::new(), Vec::new());
    let mut push = |change: Change| {
        let sequence = events.len() as u64 + 1;
        events.push(StreamEvent {
            workspace: "w".into(),
            partition: 0,
            sequence,
            change,
        });
    };
    for n in 0..300 {
        let conversation = format!("conversation-{n}");
        let contact = format!("contact-{}", n % 120);
        let opened_at = START + dice.roll(4 * DAY as u64 / MINUTE as u64) as i64 * MINUTE;
        let mut dimensions = Dimensions {
            channel_type: dice.pick(&["whatsapp", "sms"]).into(),
            channel_id: dice.pick(&["c1", "c2", "c3"]).into(),
            opened_by: dice.pick(&["inbound_message", "user"]).into(),
            ..Dimensions::default()
        };
        push(Change::Opened {
            conversation: conversation.clone(),
            contact: contact.clone(),
            dimensions: dimensions.clone(),
            opened_at,
            imported: false,
        });
        if dice.roll(10) < 6 {
            dimensions.assignee = dice.pick(&["ana", "beto", "carla"]).into();
            dimensions.team = dice.pick(&["", "t1", "t2"]).into();
            push(Change::Assigned {
                conversation: conversation.clone(),
                assignee: dimensions.assignee.clone(),
                team: dimensions.team.clone(),
            });
        }
        let mut closed_at = None;
        if dice.roll(4) < 3 {
            let at = opened_at + dice.roll(40 * 60) as i64 * MINUTE;
            dimensions.closed_by = dice.pick(&["CLOSE_SOURCE_USER", "CLOSE_SOURCE_BOT"]).into();
            dimensions.category = dice.pick(&["", "sale", "support"]).into();
            push(Change::Closed {
                conversation,
                contact: contact.clone(),
                dimensions: dimensions.clone(),
                opened_at,
                closed_at: at,
                closure: Closure {
                    resolution: Duration::from_micros((at - opened_at) as u64),
                    ..Closure::default()
                },
                imported: false,
                record: Vec::new(),
            });
            closed_at = Some(at);
        }
        truths.push(Truth {
            contact,
            dimensions,
            opened_at,
            closed_at,
        });
    }
    (events, truths)
}

/// Every number compared: (slice, opened, closed, unique contacts, resolution sum).
fn numbers(report: &Report) -> Vec<(String, i64, u64, u64, i64)> {
    let tally = |name: String, t: &charla_metrics::domain::Tally| {
        let sum = t.closed.resolution.summary().map_or(0, |s| s.sum);
        (
            name,
            t.opened,
            t.closed.closed,
            t.closed.contacts.estimate(),
            sum,
        )
    };
    let mut all = vec![tally("totals".into(), &report.totals)];
    all.extend(
        report
            .series
            .iter()
            .map(|(from, _, t)| tally(format!("period {from}"), t)),
    );
    all.extend(
        report
            .groups
            .iter()
            .map(|(value, t)| tally(format!("group {value:?}"), t)),
    );
    all
}

/// The groups' numbers computed from the conversations themselves.
fn expected_groups(
    truths: &[Truth],
    (from, to): (i64, i64),
    by: Dimension,
) -> BTreeMap<String, (i64, u64, u64)> {
    let mut groups: BTreeMap<String, (i64, u64, BTreeSet<&str>)> = BTreeMap::new();
    for truth in truths {
        let Some(value) = by.value_in(&truth.dimensions) else {
            continue;
        };
        if (from..to).contains(&truth.opened_at) {
            groups.entry(value.to_owned()).or_default().0 += 1;
        }
        if truth.closed_at.is_some_and(|at| (from..to).contains(&at)) {
            let group = groups.entry(value.to_owned()).or_default();
            group.1 += 1;
            group.2.insert(&truth.contact);
        }
    }
    groups
        .into_iter()
        .map(|(value, (opened, closed, contacts))| (value, (opened, closed, contacts.len() as u64)))
        .collect()
}

async fn batches_equal_single_events_and_the_numbers_computed_here(backend: Backend) {
    let (Some(one_url), Some(batch_url)) = (
        fresh_database_url(backend).await,
        fresh_database_url(backend).await,
    ) else {
        return;
    };
    let one_by_one = MetricsStore::new(Database::connect(&one_url, &MIGRATIONS).await.unwrap());
    let batched = MetricsStore::new(Database::connect(&batch_url, &MIGRATIONS).await.unwrap());
    let (events, truths) = history();
    for event in &events {
        assert_eq!(
            one_by_one
                .apply_batch(std::slice::from_ref(event))
                .await
                .unwrap(),
            1
        );
    }
    let mut rest = events.as_slice();
    for size in [1, 7, 50, 200, 3].into_iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, after) = rest.split_at(size.min(rest.len()));
        // Each batch is delivered twice, the second time with the next batch's first event: the
        // repeat changes nothing.
        assert_eq!(batched.apply_batch(batch).await.unwrap(), batch.len());
        assert_eq!(batched.apply_batch(batch).await.unwrap(), 0);
        rest = after;
    }

    // The last: 18 days from a multiple of nine (day 20,511), whose groups come from nine-day
    // rows, the first holding every conversation.
    for (zone, from, days) in [
        ("UTC", START, 5),
        ("America/Guayaquil", START + 5 * HOUR, 5),
        ("Asia/Kolkata", START - (5 * HOUR + 30 * MINUTE), 5),
        ("UTC", START - 2 * DAY, 18),
    ] {
        let range = (from, from + days * DAY);
        for group_by in std::iter::once(None).chain(Dimension::ALL.map(Some)) {
            let query = MetricsQuery {
                start: range.0,
                end: range.1,
                time_zone: zone.into(),
                granularity: Granularity::Day,
                filter: Filter::default(),
                group_by,
            };
            let single = metrics(&one_by_one, "w", &query).await.unwrap();
            let batch = metrics(&batched, "w", &query).await.unwrap();
            assert_eq!(numbers(&single), numbers(&batch), "{zone} by {group_by:?}");
            let Some(by) = group_by else { continue };
            let got: BTreeMap<String, (i64, u64, u64)> = single
                .groups
                .iter()
                .map(|(value, t)| {
                    (
                        value.clone(),
                        (t.opened, t.closed.closed, t.closed.contacts.estimate()),
                    )
                })
                .collect();
            assert_eq!(got, expected_groups(&truths, range, by), "{zone} by {by:?}");
        }
        // A filter on one dimension reads that dimension's rows; on two, every combination.
        let mut one_filter = Filter::default();
        one_filter.only(Dimension::Assignee, vec!["ana".into(), String::new()]);
        let mut two_filters = one_filter.clone();
        two_filters.only(Dimension::ChannelType, vec!["whatsapp".into()]);
        for filter in [one_filter, two_filters] {
            let query = MetricsQuery {
                start: range.0,
                end: range.1,
                time_zone: zone.into(),
                granularity: Granularity::Day,
                filter: filter.clone(),
                group_by: Some(Dimension::Assignee),
            };
            let report = metrics(&batched, "w", &query).await.unwrap();
            let expected_opened = truths
                .iter()
                .filter(|t| {
                    filter.accepts(&t.dimensions) && (range.0..range.1).contains(&t.opened_at)
                })
                .count() as i64;
            let expected_closed = truths
                .iter()
                .filter(|t| filter.accepts(&t.dimensions))
                .filter(|t| {
                    t.closed_at
                        .is_some_and(|at| (range.0..range.1).contains(&at))
                })
                .count() as u64;
            assert_eq!(report.totals.opened, expected_opened, "{zone} {filter:?}");
            assert_eq!(
                report.totals.closed.closed, expected_closed,
                "{zone} {filter:?}"
            );
            assert_eq!(
                numbers(&report),
                numbers(&metrics(&one_by_one, "w", &query).await.unwrap())
            );
        }
    }
}
