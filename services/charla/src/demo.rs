//! `charla demo`: fills a running charla with a realistic month of history, through the same
//! import any migration uses, so a newcomer has real reports and a live dashboard at once:
//! several channels, two teams of agents, bots answering first, busy Mondays and quiet weekends,
//! working hours and evenings in the workspace's time zone, auto-closed and merged conversations,
//! and some of the last days' conversations still open.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use indicatif::ProgressBar;
use jiff::tz::TimeZone;
use tonic::metadata::{Ascii, MetadataValue};

use crate::credentials::ClientAuth;
use crate::history_json::to_line;
use crate::import::{ImportSummary, conversation_client, send_batch};
use crate::metrics_wait::MetricsWait;

/// What demo history to make, and where to put it.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The workspace to fill (a UUID); a new one when not given.
    #[arg(long, env = "CHARLA_WORKSPACE")]
    workspace: Option<uuid::Uuid>,

    /// The workspace's IANA time zone: the demo team works 8:00 to 18:00 there.
    #[arg(long, default_value = "America/Bogota")]
    time_zone: String,

    /// Days of history, up to today.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=400))]
    days: u32,

    /// Conversations on an ordinary weekday.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    per_day: u32,

    /// Seed of the generator: the same seed makes the same history.
    #[arg(long, default_value_t = 7)]
    seed: u64,

    /// Write the history as NDJSON to this file (for `charla import conversations`) instead of
    /// importing it. Contacts are still created in the workspace.
    #[arg(long)]
    write: Option<PathBuf>,

    /// URL of the contact service.
    #[arg(
        long,
        env = "CHARLA_CONTACT_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    contact_url: String,

    /// URL of the conversation service.
    #[arg(
        long,
        env = "CHARLA_CONVERSATION_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    conversation_url: String,

    // Before saying the workspace is ready, wait until the metrics service's reports reflect the
    // imported history.
    #[command(flatten)]
    metrics: MetricsWait,

    #[command(flatten)]
    auth: ClientAuth,
}

/// SplitMix64: a tiny, well-known generator; demo data needs repeatability, not cryptography.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// A duration between `min` and `max` seconds, skewed towards the short end.
    fn wait(&mut self, min: f64, max: f64) -> Duration {
        Duration::from_secs_f64(min + (max - min) * self.unit().powi(3))
    }
}

const AGENTS: [(&str, &str); 6] = [
    ("ana", "sales"),
    ("beto", "sales"),
    ("carla", "sales"),
    ("diego", "support"),
    ("elena", "support"),
    ("fabio", "support"),
];
const CATEGORIES: [&str; 4] = ["Sale", "Support", "Billing", "Spam"];
const FIRST_NAMES: [&str; 12] = [
    "Susana",
    "Mateo",
    "Lucía",
    "Andrés",
    "Valentina",
    "Camilo",
    "Isabel",
    "Tomás",
    "Gabriela",
    "Felipe",
    "Mariana",
    "Joaquín",
];
const CHANNELS: [(contact_pb::ChannelType, f64); 7] = [
    (contact_pb::ChannelType::Whatsapp, 0.45),
    (contact_pb::ChannelType::FacebookMessenger, 0.2),
    (contact_pb::ChannelType::Instagram, 0.1),
    (contact_pb::ChannelType::Webchat, 0.1),
    (contact_pb::ChannelType::Telegram, 0.05),
    (contact_pb::ChannelType::Viber, 0.05),
    (contact_pb::ChannelType::Sms, 0.05),
];

fn channel_of(random: &mut Random) -> contact_pb::ChannelType {
    let mut roll = random.unit();
    for (channel, share) in CHANNELS {
        if roll < share {
            return channel;
        }
        roll -= share;
    }
    contact_pb::ChannelType::Whatsapp
}

fn timestamp(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

/// A demo contact: its id and the channel it writes on.
struct DemoContact {
    id: String,
    channel: contact_pb::ChannelType,
    /// When its last conversation ended: the next may only start after.
    free_from: SystemTime,
}

fn request<T>(bearer: &MetadataValue<Ascii>, message: T) -> Result<tonic::Request<T>, String> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    Ok(request)
}

/// Runs `charla demo`.
pub async fn run(args: DemoArgs) -> ExitCode {
    match demo(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("charla demo: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(args: &DemoArgs) -> Result<(), String> {
    let tz = TimeZone::get(&args.time_zone)
        .map_err(|_| format!("`{}` is not an IANA time zone", args.time_zone))?;
    let workspace = args.workspace.unwrap_or_else(uuid::Uuid::now_v7);
    let bearer = args.auth.bearer(workspace)?;
    let mut random = Random(args.seed);
    let mut conversations = conversation_client(&args.conversation_url).await?;
    conversations
        .update_workspace_settings(request(
            &bearer,
            pb::UpdateWorkspaceSettingsRequest {
                settings: Some(pb::WorkspaceSettings {
                    closing_note_policy: pb::ClosingNotePolicy::Optional as i32,
                    closing_categories: CATEGORIES.iter().map(|c| c.to_string()).collect(),
                    auto_close_after: Some(prost_types::Duration {
                        seconds: 3600,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec![
                        "closing_note_policy".into(),
                        "closing_categories".into(),
                        "auto_close_after".into(),
                    ],
                }),
            },
        )?)
        .await
        .map_err(|s| format!("can't set up the workspace: {}", s.message()))?;

    let now = SystemTime::now();
    let start = now - Duration::from_secs(86_400 * u64::from(args.days));
    let contact_count = (args.per_day * args.days / 3).clamp(10, 5_000);
    println!("Creating {contact_count} contacts in workspace {workspace}...");
    let mut contacts_client = ContactServiceClient::connect(args.contact_url.clone())
        .await
        .map_err(|e| {
            format!(
                "can't reach the contact service at {}: {e}",
                args.contact_url
            )
        })?;
    let mut contacts = Vec::new();
    for index in 0..contact_count {
        let channel = channel_of(&mut random);
        let resolved = contacts_client
            .resolve_contact(request(
                &bearer,
                contact_pb::ResolveContactRequest {
                    identity: Some(contact_pb::ChannelIdentity {
                        channel_type: channel as i32,
                        channel_id: "demo".into(),
                        external_id: format!("demo-{}-{index}", args.seed),
                    }),
                    profile: Some(contact_pb::Contact {
                        first_name: random.pick(&FIRST_NAMES).to_string(),
                        ..Default::default()
                    }),
                },
            )?)
            .await
            .map_err(|s| format!("can't create contacts: {}", s.message()))?;
        contacts.push(DemoContact {
            id: resolved.into_inner().contact.unwrap_or_default().contact_id,
            channel,
            free_from: start,
        });
    }

    let items = generate(&mut random, &mut contacts, &tz, start, now, args.per_day);
    if let Some(path) = &args.write {
        let text: String = items.iter().map(|item| to_line(item) + "\n").collect();
        std::fs::write(path, text).map_err(|e| format!("can't write {}: {e}", path.display()))?;
        println!("Wrote {} conversations to {}.", items.len(), path.display());
        println!(
            "Import them with: charla import conversations {} --workspace {workspace}",
            path.display()
        );
        return Ok(());
    }

    println!("Importing {} conversations...", items.len());
    let progress = ProgressBar::new(items.len() as u64);
    let started = Instant::now();
    let mut summary = ImportSummary::default();
    let labelled: Vec<(String, pb::HistoricalConversation)> = items
        .into_iter()
        .map(|item| (item.external_id.clone(), item))
        .collect();
    for batch in labelled.chunks(500) {
        send_batch(
            &mut conversations,
            &bearer,
            batch.to_vec(),
            &mut summary,
            &progress,
        )
        .await?;
    }
    progress.finish_and_clear();
    summary.print(started.elapsed().as_secs_f64());
    if !args.metrics.no_metrics_wait {
        println!("Waiting for the metrics service to reflect the history...");
        args.metrics.wait(&bearer, &summary.written).await?;
    }
    println!();
    println!("Workspace {workspace} is ready. Its dashboard:");
    println!("  T=\"authorization: Bearer $(charla token --workspace {workspace})\"");
    println!(
        "  grpcurl -plaintext -H \"$T\" -d '{{\"time_zone\": \"{}\"}}' \\\n    {} charla.metrics.v1.MetricsService/GetDashboard",
        args.time_zone,
        args.metrics.address()
    );
    Ok(())
}

/// How busy each weekday is, Monday first, against an ordinary weekday (`--per-day`): Mondays
/// bring the weekend's backlog, Fridays fade, weekends are quiet.
const WEEKDAY_LOAD: [f64; 7] = [1.2, 1.05, 1.0, 1.0, 0.85, 0.4, 0.3];

/// How conversations spread over the local hours of a day (weights, midnight first): a morning
/// and an afternoon peak around lunch, and an evening tail after the team has gone home.
const HOURLY_LOAD: [u32; 24] = [
    0, 0, 0, 0, 0, 0, 1, 2, 5, 8, 10, 9, 6, 6, 8, 9, 8, 6, 4, 4, 3, 3, 2, 1,
];

/// The team's working hours, local: a conversation opened outside them waits for the morning.
const WORKING_HOURS: std::ops::Range<i64> = 8..18;

/// Conversations opened this close to the end may stay open, waiting on the team.
const RECENT: Duration = Duration::from_secs(3 * 86_400);

/// A local minute of the day, drawn from `HOURLY_LOAD`.
fn minute_of_day(random: &mut Random) -> i64 {
    let total: u32 = HOURLY_LOAD.iter().sum();
    let mut roll = random.below(u64::from(total)) as u32;
    for (hour, weight) in HOURLY_LOAD.iter().enumerate() {
        if roll < *weight {
            return hour as i64 * 60 + random.below(60) as i64;
        }
        roll -= weight;
    }
    12 * 60
}

/// The conversations of the days from `start` to `now`, in time order per contact, none
/// overlapping: uneven days (weekdays unlike each other, weekends quieter, each day off its
/// average by up to a quarter), hours that peak in the morning and afternoon with an evening tail,
/// and a share of the last days' conversations still open, waiting on the team.
fn generate(
    random: &mut Random,
    contacts: &mut [DemoContact],
    tz: &TimeZone,
    start: SystemTime,
    now: SystemTime,
    per_day: u32,
) -> Vec<pb::HistoricalConversation> {
    let mut items = Vec::new();
    let local_date = |time: SystemTime| {
        let micros = charla_runtime::clock::to_micros(time);
        jiff::Timestamp::from_microsecond(micros).map(|t| t.to_zoned_datetime(tz.clone()).date())
    };
    let (Ok(mut day), Ok(last_day)) = (local_date(start), local_date(now)) else {
        return items;
    };
    let mut serial = 0u64;
    while day <= last_day {
        let load = WEEKDAY_LOAD[day.weekday().to_monday_zero_offset() as usize];
        let noise = 0.75 + 0.5 * random.unit();
        let count = (f64::from(per_day) * load * noise).round() as u32;
        let mut opened: Vec<(SystemTime, bool)> = (0..count)
            .filter_map(|_| {
                let minute = minute_of_day(random);
                let local = day.at(
                    (minute / 60) as i8,
                    (minute % 60) as i8,
                    random.below(60) as i8,
                    0,
                );
                let after_hours = !WORKING_HOURS.contains(&(minute / 60));
                local
                    .to_zoned_datetime(tz.clone())
                    .ok()
                    .map(|z| (SystemTime::from_zoned(&z), after_hours))
            })
            .filter(|(at, _)| *at > start && *at < now)
            .collect();
        opened.sort();
        for (at, after_hours) in opened {
            let free: Vec<usize> = (0..contacts.len())
                .filter(|i| contacts[*i].free_from < at)
                .collect();
            if free.is_empty() {
                continue;
            }
            let who = free[random.below(free.len() as u64) as usize];
            serial += 1;
            let shape = Shape {
                after_hours,
                left_open: at + RECENT > now && random.chance(0.3),
            };
            if let Some((item, end)) = conversation(random, &contacts[who], at, now, serial, shape)
            {
                contacts[who].free_from = end;
                items.push(item);
            }
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    items
}

/// What sets one conversation apart from an ordinary one.
#[derive(Debug, Clone, Copy)]
struct Shape {
    /// Opened outside working hours: the bot answers at once, a person only hours later.
    after_hours: bool,
    /// Still open at the end: the contact wrote last and waits for an answer.
    left_open: bool,
}

trait FromZoned {
    fn from_zoned(zoned: &jiff::ZonedDateTime) -> Self;
}

impl FromZoned for SystemTime {
    fn from_zoned(zoned: &jiff::ZonedDateTime) -> Self {
        charla_runtime::clock::from_micros(zoned.timestamp().as_microsecond())
    }
}

/// One conversation opened at `at`, and when it ended (or far after `now` while it stays open).
fn conversation(
    random: &mut Random,
    contact: &DemoContact,
    at: SystemTime,
    now: SystemTime,
    serial: u64,
    shape: Shape,
) -> Option<(pb::HistoricalConversation, SystemTime)> {
    let channel = pb::Channel {
        channel_type: contact.channel as i32,
        channel_id: "demo".into(),
    };
    let welcome_channel = matches!(
        contact.channel,
        contact_pb::ChannelType::FacebookMessenger | contact_pb::ChannelType::Viber
    );
    let opened_by = if welcome_channel && random.chance(0.3) {
        pb::OpenSource::WelcomeEvent
    } else if random.chance(0.08) {
        pb::OpenSource::Workflow
    } else {
        pb::OpenSource::InboundMessage
    };
    let (agent, team) = *random.pick(&AGENTS);
    let mut messages = Vec::new();
    let mut message = |id: String, when: SystemTime, kind: pb::AuthorKind, author: &str| {
        let direction = if kind == pb::AuthorKind::Contact {
            pb::MessageDirection::Inbound
        } else {
            pb::MessageDirection::Outbound
        };
        messages.push(pb::HistoricalMessage {
            message_id: id,
            sent_at: timestamp(when),
            direction: direction as i32,
            author_kind: kind as i32,
            author_id: author.into(),
        });
    };
    let id = |n: u32| format!("demo-{serial}-{n}");
    message(id(0), at, pb::AuthorKind::Contact, "");
    let bot_answer = at + Duration::from_secs(3);
    message(id(1), bot_answer, pb::AuthorKind::Bot, "welcome-bot");
    let assigned_at = at + random.wait(20.0, 600.0);
    let answered = !random.chance(0.07);
    let mut last_human = None;
    let mut t = assigned_at;
    if answered {
        t += if shape.after_hours {
            random.wait(3.0 * 3600.0, 14.0 * 3600.0)
        } else {
            random.wait(5.0, 5400.0)
        };
        message(id(2), t, pb::AuthorKind::User, agent);
        last_human = Some(t);
        for n in 3..3 + random.below(4) as u32 {
            t += random.wait(30.0, 1800.0);
            message(id(n), t, pb::AuthorKind::Contact, "");
            t += random.wait(10.0, 1200.0);
            message(id(n + 10), t, pb::AuthorKind::User, agent);
            last_human = Some(t);
        }
    }
    if shape.left_open {
        // The contact wrote last: no auto-close is pending, the team owes an answer.
        t += random.wait(30.0, 3600.0);
        message(id(20), t, pb::AuthorKind::Contact, "");
    }
    let roll = random.unit();
    let (closed_by, closed_at, category) = match last_human {
        Some(last) if roll < 0.12 => (
            pb::CloseSource::AutoClose,
            last + Duration::from_secs(3600),
            "",
        ),
        _ if roll < 0.15 => (
            pb::CloseSource::ContactMerge,
            t + random.wait(60.0, 7200.0),
            "",
        ),
        _ if roll < 0.25 => (pb::CloseSource::Bot, t + random.wait(10.0, 600.0), ""),
        _ if roll < 0.37 => (
            pb::CloseSource::Workflow,
            t + random.wait(60.0, 3600.0),
            "Support",
        ),
        _ => (
            pb::CloseSource::User,
            t + random.wait(30.0, 3600.0),
            *random.pick(&CATEGORIES),
        ),
    };
    let assignments = vec![pb::HistoricalAssignment {
        assigned_at: timestamp(assigned_at),
        assignee_user_id: agent.into(),
        team_id: team.into(),
        actor_id: "router".into(),
    }];
    let mut item = pb::HistoricalConversation {
        external_id: format!("demo-{serial}"),
        contact_id: contact.id.clone(),
        channel: Some(channel),
        opened_at: timestamp(at),
        opened_by: opened_by as i32,
        messages: Vec::new(),
        assignments,
        ..Default::default()
    };
    // Whatever would end after now is cut there: still open, its later messages not sent yet.
    let cutoff = now - Duration::from_secs(60);
    messages.retain(|m| {
        m.sent_at
            .and_then(|t| SystemTime::try_from(t).ok())
            .is_some_and(|t| t <= cutoff)
    });
    if assigned_at > cutoff {
        item.assignments.clear();
    }
    item.messages = messages;
    if closed_at <= cutoff && !shape.left_open {
        item.closed_at = timestamp(closed_at);
        item.closed_by = closed_by as i32;
        if closed_by == pb::CloseSource::User {
            item.closed_by_id = agent.into();
        }
        item.closing_category = category.into();
        Some((item, closed_at))
    } else {
        Some((item, now + Duration::from_secs(86_400 * 365)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_history_without_overlaps() {
        let tz = TimeZone::get("America/Bogota").unwrap();
        let now = charla_runtime::clock::from_micros(1_780_000_000_000_000);
        let start = now - Duration::from_secs(86_400 * 10);
        let make = || {
            let mut contacts: Vec<DemoContact> = (0..30)
                .map(|i| DemoContact {
                    id: format!("c{i}"),
                    channel: contact_pb::ChannelType::Whatsapp,
                    free_from: start,
                })
                .collect();
            generate(&mut Random(3), &mut contacts, &tz, start, now, 20)
        };
        let first = make();
        assert_eq!(first, make());
        assert!(first.len() > 100, "{}", first.len());
        let mut by_contact: std::collections::BTreeMap<&str, Vec<(i64, i64)>> = Default::default();
        for item in &first {
            let opened = item.opened_at.unwrap().seconds;
            let closed = item.closed_at.map(|t| t.seconds).unwrap_or(i64::MAX);
            by_contact
                .entry(&item.contact_id)
                .or_default()
                .push((opened, closed));
        }
        for spans in by_contact.values() {
            assert!(
                spans.windows(2).all(|pair| pair[0].1 < pair[1].0),
                "{spans:?}"
            );
            assert!(
                spans[..spans.len() - 1]
                    .iter()
                    .all(|(_, closed)| *closed != i64::MAX),
                "only the latest may stay open"
            );
        }
    }

    /// A month made with the defaults' shape, ending at a fixed time.
    fn month(tz: &TimeZone, now: SystemTime) -> Vec<pb::HistoricalConversation> {
        let start = now - Duration::from_secs(86_400 * 28);
        let mut contacts: Vec<DemoContact> = (0..400)
            .map(|i| DemoContact {
                id: format!("c{i}"),
                channel: contact_pb::ChannelType::Whatsapp,
                free_from: start,
            })
            .collect();
        generate(&mut Random(7), &mut contacts, tz, start, now, 40)
    }

    fn local(item_time: Option<prost_types::Timestamp>, tz: &TimeZone) -> jiff::ZonedDateTime {
        let time = item_time.unwrap();
        jiff::Timestamp::new(time.seconds, 0)
            .unwrap()
            .to_zoned_datetime(tz.clone())
    }

    #[test]
    fn a_month_has_quiet_weekends_uneven_days_evenings_and_open_conversations_at_the_end() {
        let tz = TimeZone::get("America/Bogota").unwrap();
        let now = charla_runtime::clock::from_micros(1_780_000_000_000_000);
        let items = month(&tz, now);

        let mut per_day: std::collections::BTreeMap<jiff::civil::Date, u32> = Default::default();
        for item in &items {
            *per_day
                .entry(local(item.opened_at, &tz).date())
                .or_default() += 1;
        }
        let full_days: Vec<_> = per_day.iter().skip(1).take(per_day.len() - 2).collect();
        let average = |weekend: bool| {
            let days: Vec<u32> = full_days
                .iter()
                .filter(|(day, _)| {
                    matches!(
                        day.weekday(),
                        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
                    ) == weekend
                })
                .map(|(_, count)| **count)
                .collect();
            f64::from(days.iter().sum::<u32>()) / days.len() as f64
        };
        assert!(
            average(true) < average(false) * 0.6,
            "weekends {} against weekdays {}",
            average(true),
            average(false)
        );
        let weekdays: Vec<u32> = full_days
            .iter()
            .filter(|(day, _)| day.weekday().to_monday_zero_offset() < 5)
            .map(|(_, count)| **count)
            .collect();
        let (fewest, most) = (
            weekdays.iter().min().unwrap(),
            weekdays.iter().max().unwrap(),
        );
        assert!(
            f64::from(*most) > f64::from(*fewest) * 1.3,
            "weekdays from {fewest} to {most}"
        );

        let evenings = items
            .iter()
            .filter(|item| local(item.opened_at, &tz).hour() >= 18)
            .count();
        assert!(
            evenings * 20 > items.len() && evenings * 4 < items.len(),
            "{evenings} of {} opened in the evening",
            items.len()
        );

        let open: Vec<_> = items
            .iter()
            .filter(|item| item.closed_at.is_none())
            .collect();
        let recent = now - RECENT;
        assert!(
            open.iter()
                .all(|item| SystemTime::try_from(item.opened_at.unwrap()).unwrap() > recent),
            "only recent conversations stay open"
        );
        // Waiting on the team: the contact wrote last, so no auto-close is pending.
        let waiting = open
            .iter()
            .filter(|item| {
                item.messages.last().unwrap().author_kind == pb::AuthorKind::Contact as i32
            })
            .count();
        assert!(
            waiting >= 10,
            "{waiting} of {} open wait on the team",
            open.len()
        );
    }
}
