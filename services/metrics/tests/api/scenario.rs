//! A scripted fortnight's worth of conversations, crossing a DST change, through the real
//! services; every number the metrics report is checked against what the test computes on its
//! own from the script.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, backend_tests};
use jiff::Timestamp;

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(
    the_reports_match_a_live_script_exactly,
    the_reports_match_an_imported_history_exactly,
);

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn at(text: &str) -> SystemTime {
    charla_runtime::clock::from_micros(text.parse::<Timestamp>().unwrap().as_microsecond())
}

fn micros(time: SystemTime) -> i64 {
    charla_runtime::clock::to_micros(time)
}

fn proto_time(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

fn secs(d: &Option<prost_types::Duration>) -> f64 {
    d.as_ref()
        .map(|d| d.seconds as f64 + d.nanos as f64 / 1e9)
        .unwrap_or(-1.0)
}

/// One scripted conversation.
#[derive(Debug, Clone)]
struct Scripted {
    opened_at: SystemTime,
    channel: ChannelType,
    assignee: &'static str,
    team: &'static str,
    first_response: Option<Duration>,
    /// How long after opening it closes, by which source, with which category.
    close: Option<(Duration, conversation_pb::CloseSource, &'static str)>,
}

impl Scripted {
    fn closed_at(&self) -> Option<SystemTime> {
        self.close.map(|(after, _, _)| self.opened_at + after)
    }
}

/// Twelve conversations, one every `spacing` from `start`: various channels, assignees, teams,
/// first response bands and closing sources; the last two left open.
fn script(start: SystemTime, spacing: Duration) -> Vec<Scripted> {
    let bands = [20, 90, 200, 400, 1000, 2000, 4000];
    (0..12u32)
        .map(|i| {
            let i_usize = i as usize;
            let first_response = (i != 9).then(|| Duration::from_secs(bands[i_usize % 7]));
            let resolution =
                (40 * MINUTE * (i + 1)).max(first_response.unwrap_or_default() + MINUTE);
            Scripted {
                opened_at: start + spacing * i,
                channel: [
                    ChannelType::Whatsapp,
                    ChannelType::Telegram,
                    ChannelType::Sms,
                ][i_usize % 3],
                assignee: ["ana", "beto", "carla", ""][i_usize % 4],
                team: ["sales", "support"][i_usize % 2],
                first_response,
                close: (i < 10).then(|| {
                    (
                        resolution,
                        [
                            conversation_pb::CloseSource::User,
                            conversation_pb::CloseSource::Workflow,
                            conversation_pb::CloseSource::Bot,
                        ][i_usize % 3],
                        ["Sale", "Support", ""][i_usize % 3],
                    )
                }),
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Open,
    Assign,
    Reply,
    Close,
}

/// Plays the script through the conversation service, in time order.
async fn play(env: &MetricsEnv, script: &[Scripted]) -> Vec<String> {
    let mut timeline = Vec::new();
    for (index, c) in script.iter().enumerate() {
        timeline.push((c.opened_at, index, Step::Open));
        timeline.push((c.opened_at + Duration::from_secs(10), index, Step::Assign));
        if let Some(first) = c.first_response {
            timeline.push((c.opened_at + first, index, Step::Reply));
        }
        if let Some(closed) = c.closed_at() {
            timeline.push((closed, index, Step::Close));
        }
    }
    timeline.sort();
    let contacts: Vec<String> = {
        let mut contacts = Vec::new();
        for _ in script {
            contacts.push(env.new_contact(env.workspace).await);
        }
        contacts
    };
    let mut conversations: BTreeMap<usize, String> = BTreeMap::new();
    let mut client = env.conversations().await;
    for (time, index, step) in timeline {
        env.clock.set(time);
        let c = &script[index];
        match step {
            Step::Open => {
                let opened = env
                    .message(
                        env.workspace,
                        &contacts[index],
                        c.channel,
                        conversation_pb::AuthorKind::Contact,
                        "",
                    )
                    .await
                    .unwrap();
                conversations.insert(index, opened.conversation_id);
            }
            Step::Assign => {
                client
                    .assign_conversation(env.req(conversation_pb::AssignConversationRequest {
                        conversation_id: conversations[&index].clone(),
                        assignee_user_id: c.assignee.into(),
                        team_id: c.team.into(),
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
            }
            Step::Reply => {
                let author = if c.assignee.is_empty() {
                    "someone"
                } else {
                    c.assignee
                };
                env.message(
                    env.workspace,
                    &contacts[index],
                    c.channel,
                    conversation_pb::AuthorKind::User,
                    author,
                )
                .await;
            }
            Step::Close => {
                let (_, source, category) = c.close.unwrap();
                client
                    .close_conversation(env.req(conversation_pb::CloseConversationRequest {
                        conversation_id: conversations[&index].clone(),
                        source: source as i32,
                        category: category.into(),
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
            }
        }
    }
    contacts
}

async fn allow_categories(env: &MetricsEnv) {
    env.conversations()
        .await
        .update_workspace_settings(env.req(conversation_pb::UpdateWorkspaceSettingsRequest {
            settings: Some(conversation_pb::WorkspaceSettings {
                closing_categories: vec!["Sale".into(), "Support".into()],
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["closing_categories".into()],
            }),
        }))
        .await
        .unwrap();
}

fn request(
    start: SystemTime,
    end: SystemTime,
    zone: &str,
    granularity: pb::Granularity,
) -> pb::GetConversationMetricsRequest {
    pb::GetConversationMetricsRequest {
        start_time: proto_time(start),
        end_time: proto_time(end),
        time_zone: zone.into(),
        granularity: granularity as i32,
        filter: None,
        group_by: 0,
        ..Default::default()
    }
}

/// The value at rank floor(q * (n - 1)) of sorted values: what the sketch estimates.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

fn assert_within_one_percent(estimate: f64, exact: f64, what: &str) {
    assert!(
        (estimate - exact).abs() <= exact * 0.01 + 1e-6,
        "{what}: {estimate} vs exact {exact}"
    );
}

async fn the_reports_match_a_live_script_exactly(backend: Backend) {
    let Some(mut env) = spawn_env(backend, at("2026-03-06T00:00:00Z")).await else {
        return;
    };
    allow_categories(&env).await;
    let script = script(at("2026-03-06T12:00:00Z"), 5 * HOUR);
    let contacts = play(&env, &script).await;
    env.settle().await;
    check_reports(&mut env, &script, &contacts, at("2026-03-06T00:00:00Z"), 4).await;
    env.stop().await;
}

/// Three weeks of history across New York's DST change, imported in one stream: the metrics
/// count it with the same code as live traffic.
async fn the_reports_match_an_imported_history_exactly(backend: Backend) {
    let Some(mut env) = spawn_env(backend, at("2026-03-20T00:00:00Z")).await else {
        return;
    };
    allow_categories(&env).await;
    let script = script(at("2026-02-27T12:00:00Z"), 40 * HOUR);
    let mut contacts = Vec::new();
    for _ in &script {
        contacts.push(env.new_contact(env.workspace).await);
    }
    let items: Vec<conversation_pb::ImportConversationsRequest> = script
        .iter()
        .zip(&contacts)
        .enumerate()
        .map(
            |(index, (c, contact))| conversation_pb::ImportConversationsRequest {
                conversation: Some(history_of(index, c, contact)),
            },
        )
        .collect();
    let imported = env
        .conversations()
        .await
        .import_conversations(env.req(tokio_stream::iter(items)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.imported_count, 12, "{:?}", imported.results);
    env.settle().await;
    check_reports(&mut env, &script, &contacts, at("2026-02-27T00:00:00Z"), 21).await;
    env.stop().await;
}

/// The import item of a scripted conversation: the same steps `play` takes live.
fn history_of(
    index: usize,
    c: &Scripted,
    contact: &str,
) -> conversation_pb::HistoricalConversation {
    let mut messages = vec![conversation_pb::HistoricalMessage {
        message_id: format!("in-{index}"),
        sent_at: proto_time(c.opened_at),
        direction: conversation_pb::MessageDirection::Inbound as i32,
        author_kind: conversation_pb::AuthorKind::Contact as i32,
        author_id: String::new(),
    }];
    if let Some(first) = c.first_response {
        messages.push(conversation_pb::HistoricalMessage {
            message_id: format!("out-{index}"),
            sent_at: proto_time(c.opened_at + first),
            direction: conversation_pb::MessageDirection::Outbound as i32,
            author_kind: conversation_pb::AuthorKind::User as i32,
            author_id: if c.assignee.is_empty() {
                "someone".into()
            } else {
                c.assignee.into()
            },
        });
    }
    let (closed_at, closed_by, category) = match c.close {
        Some((after, source, category)) => (
            proto_time(c.opened_at + after),
            source as i32,
            category.to_owned(),
        ),
        None => (None, 0, String::new()),
    };
    conversation_pb::HistoricalConversation {
        external_id: format!("legacy-{index}"),
        contact_id: contact.to_owned(),
        channel: Some(conversation_pb::Channel {
            channel_type: c.channel as i32,
            channel_id: "main".into(),
        }),
        opened_at: proto_time(c.opened_at),
        opened_by: conversation_pb::OpenSource::InboundMessage as i32,
        opened_by_id: String::new(),
        messages,
        assignments: vec![conversation_pb::HistoricalAssignment {
            assigned_at: proto_time(c.opened_at + Duration::from_secs(10)),
            assignee_user_id: c.assignee.into(),
            team_id: c.team.into(),
            actor_id: String::new(),
        }],
        closed_at,
        closed_by,
        closed_by_id: String::new(),
        closing_category: category,
        closing_summary: String::new(),
    }
}

/// Closing source and category count closed conversations only: the two open ones are in no group
/// of theirs, and "no category" matches closes without one, not conversations still open.
async fn check_closed_only_dimensions(
    metrics: &pb::metrics_service_client::MetricsServiceClient<charla_testing::auth::TestChannel>,
    env: &MetricsEnv,
    whole: &pb::GetConversationMetricsRequest,
) {
    let grouped = |group_by: pb::GroupBy, filter: Option<pb::ConversationFilter>| {
        let mut request = whole.clone();
        request.group_by = group_by as i32;
        request.filter = filter;
        let request = env.req(request);
        let mut metrics = metrics.clone();
        async move {
            metrics
                .get_conversation_metrics(request)
                .await
                .unwrap()
                .into_inner()
        }
    };
    let rows = |report: &pb::GetConversationMetricsResponse| -> Vec<(String, i64, i64)> {
        report
            .groups
            .iter()
            .map(|g| {
                let m = g.metrics.as_ref().unwrap();
                let key = match g.key.as_ref().unwrap().key.as_ref().unwrap() {
                    pb::group_key::Key::ClosedBy(source) => {
                        conversation_pb::CloseSource::try_from(*source)
                            .unwrap()
                            .as_str_name()
                            .to_owned()
                    }
                    pb::group_key::Key::ClosingCategory(category) => category.clone(),
                    other => panic!("unexpected key {other:?}"),
                };
                (key, m.closed_count, m.opened_count)
            })
            .collect()
    };
    let row = |key: &str, closed: i64| (key.to_owned(), closed, closed);
    // Closed by user (0, 3, 6, 9), workflow (1, 4, 7), bot (2, 5, 8); 10 and 11 still open.
    let by_source = grouped(pb::GroupBy::ClosedBy, None).await;
    assert_eq!(
        rows(&by_source),
        [
            row("CLOSE_SOURCE_USER", 4),
            row("CLOSE_SOURCE_BOT", 3),
            row("CLOSE_SOURCE_WORKFLOW", 3)
        ],
        "no row for the open conversations"
    );
    assert_eq!(
        by_source.totals.unwrap().opened_count,
        12,
        "totals count all"
    );
    // Categories: Sale (0, 3, 6, 9), Support (1, 4, 7), none (2, 5, 8).
    let by_category = grouped(pb::GroupBy::ClosingCategory, None).await;
    assert_eq!(
        rows(&by_category),
        [row("Sale", 4), row("", 3), row("Support", 3)]
    );
    let no_category = grouped(
        pb::GroupBy::Unspecified,
        Some(pb::ConversationFilter {
            closing_categories: vec![String::new()],
            ..Default::default()
        }),
    )
    .await;
    let totals = no_category.totals.unwrap();
    assert_eq!(
        (totals.closed_count, totals.opened_count),
        (3, 3),
        "no category: the three closed without one, not the two still open"
    );
}

/// Checks every report against what the script says, over `days` UTC days from `first_day`.
async fn check_reports(
    env: &mut MetricsEnv,
    script: &[Scripted],
    contacts: &[String],
    first_day: SystemTime,
    days: u32,
) {
    let day_length = Duration::from_secs(86_400);
    let range_end = first_day + day_length * days;
    let nepal_shift = Duration::from_secs(5 * 3600 + 45 * 60);
    let mut metrics = env.metrics().await;
    let closed: Vec<&Scripted> = script.iter().filter(|c| c.close.is_some()).collect();

    // Totals over the whole range, by UTC day.
    let whole = request(first_day, range_end, "UTC", pb::Granularity::Day);
    let report = metrics
        .get_conversation_metrics(env.req(whole.clone()))
        .await
        .unwrap()
        .into_inner();
    let totals = report.totals.unwrap();
    assert_eq!(totals.opened_count, 12);
    assert_eq!(totals.closed_count, 10);
    assert_eq!(totals.unique_contacts_closed_count, 10);

    let mut resolutions: Vec<f64> = closed
        .iter()
        .map(|c| c.close.unwrap().0.as_secs_f64())
        .collect();
    resolutions.sort_by(f64::total_cmp);
    let resolution = totals.resolution_time.unwrap();
    assert_eq!(resolution.count, 10);
    assert_eq!(secs(&resolution.sum), resolutions.iter().sum::<f64>());
    assert_eq!(secs(&resolution.min), resolutions[0]);
    assert_eq!(secs(&resolution.max), resolutions[9]);
    assert_within_one_percent(
        secs(&resolution.median),
        exact_quantile(&resolutions, 0.5),
        "median resolution",
    );
    assert_within_one_percent(
        secs(&resolution.p90),
        exact_quantile(&resolutions, 0.9),
        "p90 resolution",
    );

    let mut first_responses: Vec<f64> = closed
        .iter()
        .filter_map(|c| c.first_response)
        .map(|d| d.as_secs_f64())
        .collect();
    first_responses.sort_by(f64::total_cmp);
    let first_response = totals.first_response_time.unwrap();
    assert_eq!(
        first_response.count, 9,
        "human responses only; one closed unanswered"
    );
    assert_eq!(
        secs(&first_response.sum),
        first_responses.iter().sum::<f64>()
    );
    assert_within_one_percent(
        secs(&first_response.median),
        exact_quantile(&first_responses, 0.5),
        "median first response",
    );
    let bands = totals.first_response_bands.unwrap();
    let mut expected_bands = [0i64; 8];
    for c in &closed {
        let band = match c.first_response.map(|d| d.as_secs()) {
            None => 7,
            Some(s) if s < 30 => 0,
            Some(s) if s < 120 => 1,
            Some(s) if s < 300 => 2,
            Some(s) if s < 600 => 3,
            Some(s) if s < 1800 => 4,
            Some(s) if s < 3600 => 5,
            Some(_) => 6,
        };
        expected_bands[band] += 1;
    }
    assert_eq!(
        [
            bands.under_30s,
            bands.from_30s_to_2m,
            bands.from_2m_to_5m,
            bands.from_5m_to_10m,
            bands.from_10m_to_30m,
            bands.from_30m_to_1h,
            bands.over_1h,
            bands.no_response
        ],
        expected_bands
    );
    assert_eq!(totals.response_time.unwrap().count, 9);
    assert_eq!(totals.responses_per_conversation.unwrap().sum, 9);
    let assigned = closed.iter().filter(|c| !c.assignee.is_empty()).count() as i64;
    assert_eq!(totals.time_to_first_assignment.unwrap().count, assigned);
    assert_eq!(totals.assignments_per_conversation.unwrap().sum, assigned);

    // The UTC daily series.
    let day = |time: SystemTime| micros(time).div_euclid(86_400_000_000);
    let series: Vec<(i64, i64, i64)> = report
        .series
        .iter()
        .map(|bucket| {
            let m = bucket.metrics.as_ref().unwrap();
            (
                bucket.start_time.unwrap().seconds,
                m.opened_count,
                m.closed_count,
            )
        })
        .collect();
    assert_eq!(series.len(), days as usize);
    for (start_seconds, opened, closed_count) in series {
        let this_day = start_seconds.div_euclid(86_400);
        assert_eq!(
            opened,
            script
                .iter()
                .filter(|c| day(c.opened_at) == this_day)
                .count() as i64
        );
        assert_eq!(
            closed_count,
            closed
                .iter()
                .filter(|c| day(c.closed_at().unwrap()) == this_day)
                .count() as i64
        );
    }

    // Kathmandu (UTC+5:45): local days, computed here with the same tz database.
    let kathmandu = jiff::tz::TimeZone::get("Asia/Kathmandu").unwrap();
    let local_day = |time: SystemTime| {
        Timestamp::try_from(time)
            .unwrap()
            .to_zoned_datetime(kathmandu.clone())
            .date()
    };
    let nepal = request(
        first_day - nepal_shift,
        range_end - nepal_shift,
        "Asia/Kathmandu",
        pb::Granularity::Day,
    );
    let report_np = metrics
        .get_conversation_metrics(env.req(nepal))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report_np.series.len(), days as usize);
    for bucket in &report_np.series {
        let start = SystemTime::try_from(bucket.start_time.unwrap()).unwrap();
        let local = local_day(start);
        let m = bucket.metrics.as_ref().unwrap();
        assert_eq!(
            m.opened_count,
            script
                .iter()
                .filter(|c| local_day(c.opened_at) == local)
                .count() as i64,
            "{local}"
        );
        assert_eq!(
            m.closed_count,
            closed
                .iter()
                .filter(|c| local_day(c.closed_at().unwrap()) == local)
                .count() as i64,
            "{local}"
        );
    }

    // Grouped in Kathmandu: the groups are read by the largest buckets of the whole range apart
    // from the series' local days (whose quarter-hour edges differ); each counts exactly its
    // assignee's conversations of the range, and the totals stay the ungrouped report's.
    let (nepal_start, nepal_end) = (first_day - nepal_shift, range_end - nepal_shift);
    let mut nepal_by_assignee = request(
        nepal_start,
        nepal_end,
        "Asia/Kathmandu",
        pb::Granularity::Day,
    );
    nepal_by_assignee.group_by = pb::GroupBy::Assignee as i32;
    let grouped_np = metrics
        .get_conversation_metrics(env.req(nepal_by_assignee))
        .await
        .unwrap()
        .into_inner();
    let in_range = |time: SystemTime| time >= nepal_start && time < nepal_end;
    let mut expected_np: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for c in script.iter().filter(|c| in_range(c.opened_at)) {
        expected_np.entry(c.assignee.to_owned()).or_default().0 += 1;
    }
    for c in closed.iter().filter(|c| in_range(c.closed_at().unwrap())) {
        expected_np.entry(c.assignee.to_owned()).or_default().1 += 1;
    }
    let groups_np: BTreeMap<String, (i64, i64)> = grouped_np
        .groups
        .iter()
        .map(|g| match &g.key.as_ref().unwrap().key {
            Some(pb::group_key::Key::AssigneeUserId(id)) => {
                let m = g.metrics.as_ref().unwrap();
                (id.clone(), (m.opened_count, m.closed_count))
            }
            other => panic!("unexpected key {other:?}"),
        })
        .collect();
    assert_eq!(groups_np, expected_np);
    assert_eq!(grouped_np.totals, report_np.totals);
    assert_eq!(grouped_np.series, report_np.series);

    // New York's 2026-03-08 is 23 hours long.
    let new_york = request(
        at("2026-03-07T05:00:00Z"),
        at("2026-03-10T04:00:00Z"),
        "America/New_York",
        pb::Granularity::Day,
    );
    let report_ny = metrics
        .get_conversation_metrics(env.req(new_york))
        .await
        .unwrap()
        .into_inner();
    let lengths: Vec<i64> = report_ny
        .series
        .iter()
        .map(|b| (b.end_time.unwrap().seconds - b.start_time.unwrap().seconds) / 3600)
        .collect();
    assert_eq!(lengths, [24, 23, 24]);

    // Grouped by assignee, filtered by channel.
    let mut by_assignee = whole.clone();
    by_assignee.group_by = pb::GroupBy::Assignee as i32;
    let grouped = metrics
        .get_conversation_metrics(env.req(by_assignee))
        .await
        .unwrap()
        .into_inner();
    let groups: BTreeMap<String, i64> = grouped
        .groups
        .iter()
        .map(|g| match &g.key.as_ref().unwrap().key {
            Some(pb::group_key::Key::AssigneeUserId(id)) => {
                (id.clone(), g.metrics.as_ref().unwrap().closed_count)
            }
            other => panic!("unexpected key {other:?}"),
        })
        .collect();
    let mut expected_groups: BTreeMap<String, i64> = BTreeMap::new();
    for c in &closed {
        *expected_groups.entry(c.assignee.to_owned()).or_default() += 1;
    }
    for c in script {
        expected_groups.entry(c.assignee.to_owned()).or_default();
    }
    assert_eq!(groups, expected_groups);
    // In the proto's order: closed count, then opened, most first; ties by key. Every assignee
    // opened 3; ana and beto closed 3, carla and "" (none) 2.
    let order: Vec<(String, i64, i64)> = grouped
        .groups
        .iter()
        .map(|g| {
            let m = g.metrics.as_ref().unwrap();
            let key = format!("{:?}", g.key.as_ref().unwrap().key.as_ref().unwrap());
            (key, m.closed_count, m.opened_count)
        })
        .collect();
    let assignee = |id: &str, closed: i64| (format!("AssigneeUserId({id:?})"), closed, 3);
    assert_eq!(
        order,
        [
            assignee("ana", 3),
            assignee("beto", 3),
            assignee("", 2),
            assignee("carla", 2)
        ]
    );
    check_closed_only_dimensions(&metrics, env, &whole).await;
    let mut whatsapp_only = whole.clone();
    whatsapp_only.filter = Some(pb::ConversationFilter {
        channel_types: vec![ChannelType::Whatsapp as i32],
        ..Default::default()
    });
    let filtered = metrics
        .get_conversation_metrics(env.req(whatsapp_only))
        .await
        .unwrap()
        .into_inner();
    let expected_whatsapp = script
        .iter()
        .filter(|c| c.channel == ChannelType::Whatsapp)
        .count() as i64;
    assert_eq!(filtered.totals.unwrap().opened_count, expected_whatsapp);

    // The dashboard, at the end of the script, in UTC.
    let now = charla_runtime::clock::Clock::now(&env.clock);
    let dashboard = metrics
        .get_dashboard(env.req(pb::GetDashboardRequest {
            time_zone: "UTC".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .dashboard
        .unwrap();
    assert_eq!(dashboard.open_count, 2);
    assert_eq!(
        dashboard.unassigned_count,
        script
            .iter()
            .filter(|c| c.close.is_none() && c.assignee.is_empty())
            .count() as i64
    );
    assert_eq!(
        dashboard.opened_today_count,
        script
            .iter()
            .filter(|c| day(c.opened_at) == day(now))
            .count() as i64
    );
    assert_eq!(
        dashboard.closed_today_count,
        closed
            .iter()
            .filter(|c| day(c.closed_at().unwrap()) == day(now))
            .count() as i64
    );

    // The leaderboard of users by closed count.
    let leaderboard = metrics
        .get_leaderboard(env.req(pb::GetLeaderboardRequest {
            subject: pb::LeaderboardSubject::Users as i32,
            ranking: pb::LeaderboardRanking::ClosedCount as i32,
            start_time: whole.start_time,
            end_time: whole.end_time,
            filter: None,
            limit: 0,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let ranked: Vec<(i32, String, i64)> = leaderboard
        .entries
        .iter()
        .map(|e| (e.rank, e.user_id.clone(), e.closed_count))
        .collect();
    assert_eq!(
        (
            expected_groups["ana"],
            expected_groups["beto"],
            expected_groups["carla"]
        ),
        (3, 3, 2)
    );
    assert_eq!(
        ranked,
        [
            (1, "ana".to_owned(), 3),
            (1, "beto".to_owned(), 3),
            (3, "carla".to_owned(), 2)
        ],
        "equal values share a position, the next one skips it"
    );

    // The export: one row per closed conversation, with its facts.
    let mut rows = Vec::new();
    let mut export = metrics
        .export_conversations(env.req(pb::ExportConversationsRequest {
            start_time: whole.start_time,
            end_time: whole.end_time,
            filter: None,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    while let Some(message) = export.message().await.unwrap() {
        rows.push(message.row.unwrap());
    }
    assert_eq!(rows.len(), 10);
    let first = &rows[0];
    assert_eq!(first.contact_id, contacts[0]);
    assert_eq!(first.last_assignee_user_id, "ana");
    assert_eq!(first.closing_category, "Sale");
    assert_eq!(secs(&first.first_response_time), 20.0);
    assert_eq!(secs(&first.resolution_time), 40.0 * 60.0);
    assert_eq!(
        (
            first.inbound_message_count,
            first.user_outbound_message_count
        ),
        (1, 1)
    );

    // A restart resumes from the stored cursor, and a rebuild from zero lands on the same numbers.
    env.restart_metrics().await;
    env.settle().await;
    let mut metrics = env.metrics().await;
    let after_restart = metrics
        .get_conversation_metrics(env.req(whole.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after_restart, report);
    // A rebuild is of every workspace: a call naming one is refused, naming the metadata.
    let mut scoped = tonic::Request::new(pb::RebuildAggregatesRequest {});
    scoped
        .metadata_mut()
        .insert("x-workspace-id", env.workspace.to_string().parse().unwrap());
    charla_testing::assert_invalid_field(
        metrics.rebuild_aggregates(scoped).await,
        "x-workspace-id",
    );
    let rebuilt = metrics
        .rebuild_aggregates(tonic::Request::new(pb::RebuildAggregatesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(
        rebuilt.events_applied > 40,
        "every event applied again: {}",
        rebuilt.events_applied
    );
    let after_rebuild = metrics
        .get_conversation_metrics(env.req(whole))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        after_rebuild, report,
        "rebuilt numbers equal the live ones exactly"
    );
}
