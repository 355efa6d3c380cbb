//! Bot and AI containment through the real services: a table of conversations, each with what
//! automation and humans did in it, played live and imported; the report's automation numbers
//! (totals and breakdowns) must equal what the test works out from the table by the proto's
//! definitions, and a rebuild must give them again.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::contact::v1::ChannelType::{Sms, Telegram, Whatsapp};
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::conversation::v1::{AuthorKind, CloseSource};
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, backend_tests};
use jiff::Timestamp;

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(
    containment_and_handoffs_of_live_conversations_are_counted_by_the_definitions,
    containment_and_handoffs_of_imported_history_equal_the_live_ones,
);

const MINUTE: Duration = Duration::from_secs(60);

fn at(text: &str) -> SystemTime {
    charla_runtime::clock::from_micros(text.parse::<Timestamp>().unwrap().as_microsecond())
}

fn proto_time(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

/// One conversation: opened by a contact's message, then (in minutes after opening) an outbound
/// message by `automated` (any non-human author kind), a human reply, a user assignment, and a
/// close (unless left open).
#[derive(Debug, Clone, Copy)]
struct Case {
    channel: ChannelType,
    automated: Option<(AuthorKind, u64)>,
    human_reply: Option<u64>,
    assignment: Option<u64>,
    close: Option<(CloseSource, u64)>,
}

const fn case(
    channel: ChannelType,
    automated: Option<(AuthorKind, u64)>,
    human_reply: Option<u64>,
    assignment: Option<u64>,
    close: Option<(CloseSource, u64)>,
) -> Case {
    Case {
        channel,
        automated,
        human_reply,
        assignment,
        close,
    }
}

const CASES: [Case; 12] = [
    // A bot alone to its mark-done: contained.
    case(
        Whatsapp,
        Some((AuthorKind::Bot, 1)),
        None,
        None,
        Some((CloseSource::Bot, 10)),
    ),
    // An AI agent, then a human reply: handed off after 6 minutes.
    case(
        Whatsapp,
        Some((AuthorKind::AiAgent, 1)),
        Some(6),
        None,
        Some((CloseSource::User, 20)),
    ),
    // A workflow, then an assignment (the user closes without writing): handed off after 4.
    case(
        Telegram,
        Some((AuthorKind::Workflow, 2)),
        None,
        Some(4),
        Some((CloseSource::User, 30)),
    ),
    // A human replied before the bot: not automated.
    case(
        Telegram,
        Some((AuthorKind::Bot, 2)),
        Some(1),
        None,
        Some((CloseSource::User, 15)),
    ),
    // A broadcast is not automation.
    case(
        Sms,
        Some((AuthorKind::Broadcast, 1)),
        None,
        None,
        Some((CloseSource::Bot, 5)),
    ),
    // A bot alone, closed by a user who never wrote: automated, neither contained nor handed off.
    case(
        Sms,
        Some((AuthorKind::Bot, 1)),
        None,
        None,
        Some((CloseSource::User, 8)),
    ),
    // No automation at all.
    case(Whatsapp, None, Some(3), None, Some((CloseSource::User, 9))),
    // An AI agent, an assignment at 7 and a reply at 12: handed off at the earlier, 7.
    case(
        Whatsapp,
        Some((AuthorKind::AiAgent, 1)),
        Some(12),
        Some(7),
        Some((CloseSource::AiAgent, 20)),
    ),
    // A workflow alone to a workflow's close: contained.
    case(
        Telegram,
        Some((AuthorKind::Workflow, 1)),
        None,
        None,
        Some((CloseSource::Workflow, 3)),
    ),
    // An AI agent alone to its close: contained.
    case(
        Sms,
        Some((AuthorKind::AiAgent, 2)),
        None,
        None,
        Some((CloseSource::AiAgent, 4)),
    ),
    // Assigned before the bot wrote: a human was in charge first, not automated.
    case(
        Sms,
        Some((AuthorKind::Bot, 2)),
        None,
        Some(1),
        Some((CloseSource::Bot, 6)),
    ),
    // Still open: in no closed number.
    case(Telegram, Some((AuthorKind::Bot, 1)), None, None, None),
];

/// The author id of each kind's messages in the table.
fn author_of(kind: AuthorKind) -> &'static str {
    match kind {
        AuthorKind::Bot => "faq-bot",
        AuthorKind::AiAgent => "ai-sofia",
        AuthorKind::Workflow => "welcome-flow",
        _ => "campaign",
    }
}

/// The automated_by value of a closed case: its automation's author when it was automated.
fn automated_by(case: &Case) -> &'static str {
    match (expected(case), case.automated) {
        ((true, _, _), Some((kind, _))) => author_of(kind),
        _ => "",
    }
}

fn is_automation(kind: AuthorKind) -> bool {
    matches!(
        kind,
        AuthorKind::Bot | AuthorKind::AiAgent | AuthorKind::Workflow
    )
}

/// What the proto's definitions make of a case: (automated, contained, handed off after).
fn expected(case: &Case) -> (bool, bool, Option<u64>) {
    let automated_at = case
        .automated
        .filter(|(kind, _)| is_automation(*kind))
        .map(|(_, minute)| minute);
    let human_at = [case.human_reply, case.assignment]
        .into_iter()
        .flatten()
        .min();
    match (automated_at, human_at) {
        (None, _) => (false, false, None),
        (Some(bot), Some(human)) if human < bot => (false, false, None),
        (Some(_), Some(human)) => (true, false, Some(human)),
        (Some(_), None) => {
            let (source, _) = case.close.unwrap();
            let automated_close = matches!(
                source,
                CloseSource::Bot
                    | CloseSource::AiAgent
                    | CloseSource::Workflow
                    | CloseSource::AutoClose
            );
            (true, automated_close, None)
        }
    }
}

/// The automation numbers the report must show for `cases` (closed ones only).
#[derive(Debug, Default, PartialEq)]
struct Expected {
    automated: i64,
    contained: i64,
    handed_off: i64,
    handoff_minutes: Vec<u64>,
}

fn expected_of<'a>(cases: impl IntoIterator<Item = &'a Case>) -> Expected {
    let mut totals = Expected::default();
    for case in cases.into_iter().filter(|c| c.close.is_some()) {
        let (automated, contained, handed_off) = expected(case);
        totals.automated += i64::from(automated);
        totals.contained += i64::from(contained);
        if let Some(minutes) = handed_off {
            totals.handed_off += 1;
            totals.handoff_minutes.push(minutes);
        }
    }
    totals
}

fn assert_automation(stats: &pb::AutomationStats, want: &Expected, what: &str) {
    assert_eq!(stats.automated_count, want.automated, "{what}: automated");
    assert_eq!(stats.contained_count, want.contained, "{what}: contained");
    assert_eq!(
        stats.handed_off_count, want.handed_off,
        "{what}: handed off"
    );
    let rate = |part: i64| {
        if want.automated == 0 {
            0.0
        } else {
            part as f64 / want.automated as f64
        }
    };
    assert_eq!(
        stats.containment_rate,
        rate(want.contained),
        "{what}: containment rate"
    );
    assert_eq!(
        stats.handoff_rate,
        rate(want.handed_off),
        "{what}: handoff rate"
    );
    match &stats.time_to_handoff {
        None => assert!(
            want.handoff_minutes.is_empty(),
            "{what}: no time to handoff"
        ),
        Some(time) => {
            assert_eq!(time.count as usize, want.handoff_minutes.len(), "{what}");
            let sum: u64 = want.handoff_minutes.iter().sum::<u64>() * 60;
            assert_eq!(time.sum.unwrap().seconds as u64, sum, "{what}: sum");
            let min = *want.handoff_minutes.iter().min().unwrap() * 60;
            let max = *want.handoff_minutes.iter().max().unwrap() * 60;
            assert_eq!(time.min.unwrap().seconds as u64, min, "{what}: min");
            assert_eq!(time.max.unwrap().seconds as u64, max, "{what}: max");
        }
    }
}

/// The opening times: one conversation an hour from `start`.
fn opened_at(start: SystemTime, index: usize) -> SystemTime {
    start + Duration::from_secs(3600) * index as u32
}

async fn play(env: &MetricsEnv, start: SystemTime) {
    let mut steps = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let opened = opened_at(start, index);
        steps.push((opened, index, 0));
        if let Some((_, minute)) = case.automated {
            steps.push((opened + MINUTE * minute as u32, index, 1));
        }
        if let Some(minute) = case.assignment {
            steps.push((opened + MINUTE * minute as u32, index, 2));
        }
        if let Some(minute) = case.human_reply {
            steps.push((opened + MINUTE * minute as u32, index, 3));
        }
        if let Some((_, minute)) = case.close {
            steps.push((opened + MINUTE * minute as u32, index, 4));
        }
    }
    steps.sort();
    let mut contacts = BTreeMap::new();
    for index in 0..CASES.len() {
        contacts.insert(index, env.new_contact(env.workspace).await);
    }
    let mut conversations = BTreeMap::new();
    let mut client = env.conversations().await;
    for (time, index, step) in steps {
        env.clock.set(time);
        let case = &CASES[index];
        let contact = &contacts[&index];
        match step {
            0 => {
                let opened = env
                    .message(
                        env.workspace,
                        contact,
                        case.channel,
                        AuthorKind::Contact,
                        "",
                    )
                    .await
                    .unwrap();
                conversations.insert(index, opened.conversation_id);
            }
            1 => {
                let (kind, _) = case.automated.unwrap();
                env.message(env.workspace, contact, case.channel, kind, author_of(kind))
                    .await;
            }
            2 => {
                client
                    .assign_conversation(env.req(conversation_pb::AssignConversationRequest {
                        conversation_id: conversations[&index].clone(),
                        assignee_user_id: "ana".into(),
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
            }
            3 => {
                env.message(
                    env.workspace,
                    contact,
                    case.channel,
                    AuthorKind::User,
                    "ana",
                )
                .await;
            }
            _ => {
                let (source, _) = case.close.unwrap();
                client
                    .close_conversation(env.req(conversation_pb::CloseConversationRequest {
                        conversation_id: conversations[&index].clone(),
                        source: source as i32,
                        ..Default::default()
                    }))
                    .await
                    .unwrap();
            }
        }
    }
}

fn history_of(
    index: usize,
    case: &Case,
    start: SystemTime,
    contact: &str,
) -> conversation_pb::HistoricalConversation {
    let opened = opened_at(start, index);
    let minute = |m: u64| proto_time(opened + MINUTE * m as u32);
    let mut messages = vec![(0, AuthorKind::Contact, "")];
    if let Some((kind, m)) = case.automated {
        messages.push((m, kind, author_of(kind)));
    }
    if let Some(m) = case.human_reply {
        messages.push((m, AuthorKind::User, "ana"));
    }
    messages.sort();
    let (closed_at, closed_by) = match case.close {
        Some((source, m)) => (minute(m), source as i32),
        None => (None, 0),
    };
    conversation_pb::HistoricalConversation {
        external_id: format!("legacy-{index}"),
        contact_id: contact.to_owned(),
        channel: Some(conversation_pb::Channel {
            channel_type: case.channel as i32,
            channel_id: "main".into(),
        }),
        opened_at: proto_time(opened),
        opened_by: conversation_pb::OpenSource::InboundMessage as i32,
        messages: messages
            .into_iter()
            .enumerate()
            .map(
                |(n, (m, kind, author))| conversation_pb::HistoricalMessage {
                    message_id: format!("m-{index}-{n}"),
                    sent_at: minute(m),
                    direction: if kind == AuthorKind::Contact {
                        conversation_pb::MessageDirection::Inbound
                    } else {
                        conversation_pb::MessageDirection::Outbound
                    } as i32,
                    author_kind: kind as i32,
                    author_id: author.into(),
                },
            )
            .collect(),
        assignments: case
            .assignment
            .map(|m| conversation_pb::HistoricalAssignment {
                assigned_at: minute(m),
                assignee_user_id: "ana".into(),
                ..Default::default()
            })
            .into_iter()
            .collect(),
        closed_at,
        closed_by,
        ..Default::default()
    }
}

fn report_request(start: SystemTime, group_by: pb::GroupBy) -> pb::GetConversationMetricsRequest {
    pb::GetConversationMetricsRequest {
        start_time: proto_time(start),
        end_time: proto_time(start + Duration::from_secs(86_400)),
        time_zone: "America/Guayaquil".into(),
        granularity: pb::Granularity::Hour as i32,
        group_by: group_by as i32,
        ..Default::default()
    }
}

/// Checks the totals, the hourly series, and the breakdowns by channel kind and closing source
/// against the table; returns the report's totals for comparisons.
async fn check(env: &MetricsEnv, start: SystemTime) -> pb::GetConversationMetricsResponse {
    let mut metrics = env.metrics().await;
    let by_channel = metrics
        .get_conversation_metrics(env.req(report_request(start, pb::GroupBy::ChannelType)))
        .await
        .unwrap()
        .into_inner();
    let totals = by_channel.totals.unwrap();
    assert_automation(
        totals.automation.as_ref().unwrap(),
        &expected_of(&CASES),
        "totals",
    );
    // Each conversation closes within the hour it opened in.
    for (index, bucket) in by_channel.series.iter().enumerate() {
        let automation = bucket.metrics.as_ref().unwrap().automation.unwrap();
        let want = expected_of(CASES.get(index));
        assert_automation(&automation, &want, &format!("hour {index}"));
    }
    for group in &by_channel.groups {
        let Some(pb::group_key::Key::ChannelType(channel)) = group.key.as_ref().unwrap().key else {
            panic!("a channel group: {group:?}");
        };
        let want = expected_of(CASES.iter().filter(|c| c.channel as i32 == channel));
        let automation = group.metrics.as_ref().unwrap().automation.unwrap();
        assert_automation(&automation, &want, &format!("channel {channel}"));
    }
    assert_eq!(by_channel.groups.len(), 3);

    let by_close = metrics
        .get_conversation_metrics(env.req(report_request(start, pb::GroupBy::ClosedBy)))
        .await
        .unwrap()
        .into_inner();
    for group in &by_close.groups {
        let Some(pb::group_key::Key::ClosedBy(source)) = group.key.as_ref().unwrap().key else {
            panic!("a closing source group: {group:?}");
        };
        let want = expected_of(
            CASES
                .iter()
                .filter(|c| c.close.is_some_and(|(s, _)| s as i32 == source)),
        );
        let automation = group.metrics.as_ref().unwrap().automation.unwrap();
        assert_automation(&automation, &want, &format!("closed by {source}"));
    }

    let by_automation = metrics
        .get_conversation_metrics(env.req(report_request(start, pb::GroupBy::AutomatedBy)))
        .await
        .unwrap()
        .into_inner();
    let closed = || CASES.iter().filter(|c| c.close.is_some());
    let mut values: Vec<&str> = closed().map(automated_by).collect();
    values.sort();
    values.dedup();
    assert_eq!(values, ["", "ai-sofia", "faq-bot", "welcome-flow"]);
    assert_eq!(by_automation.groups.len(), values.len());
    for group in &by_automation.groups {
        let Some(pb::group_key::Key::AutomatedById(id)) = group.key.clone().unwrap().key else {
            panic!("an automation group: {group:?}");
        };
        let cases: Vec<&Case> = closed().filter(|c| automated_by(c) == id).collect();
        let metrics = group.metrics.unwrap();
        assert_eq!(
            metrics.closed_count,
            cases.len() as i64,
            "automated by {id:?}"
        );
        assert_automation(
            &metrics.automation.unwrap(),
            &expected_of(cases),
            &format!("automated by {id:?}"),
        );
    }
    // The export names each conversation's first automated message.
    let mut exported = metrics
        .export_conversations(env.req(pb::ExportConversationsRequest {
            start_time: proto_time(start),
            end_time: proto_time(start + Duration::from_secs(86_400)),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let mut firsts = Vec::new();
    while let Some(answer) = exported.message().await.unwrap() {
        let row = answer.row.unwrap();
        assert_eq!(
            row.first_automated_message_at.is_some(),
            row.first_automated_author_kind != 0
        );
        firsts.push((
            row.first_automated_author_kind,
            row.first_automated_author_id,
        ));
    }
    firsts.sort();
    let mut want: Vec<(i32, String)> = closed()
        .map(|c| match c.automated {
            Some((kind, _)) if is_automation(kind) => (kind as i32, author_of(kind).to_owned()),
            _ => (0, String::new()),
        })
        .collect();
    want.sort();
    assert_eq!(firsts, want);
    // A filter on two bots and a breakdown by channel: only their conversations count.
    let mut filtered = report_request(start, pb::GroupBy::ChannelType);
    filtered.filter = Some(pb::ConversationFilter {
        automated_by_ids: vec!["faq-bot".into(), "ai-sofia".into()],
        ..Default::default()
    });
    let filtered = metrics
        .get_conversation_metrics(env.req(filtered))
        .await
        .unwrap()
        .into_inner();
    let chosen = |c: &&Case| ["faq-bot", "ai-sofia"].contains(&automated_by(c));
    let totals = filtered.totals.unwrap();
    assert_eq!(totals.closed_count, closed().filter(chosen).count() as i64);
    assert_eq!(
        totals.opened_count, totals.closed_count,
        "open ones match no automation"
    );
    assert_automation(
        &totals.automation.unwrap(),
        &expected_of(closed().filter(chosen)),
        "filtered",
    );
    for group in &filtered.groups {
        let Some(pb::group_key::Key::ChannelType(channel)) = group.key.as_ref().unwrap().key else {
            panic!("a channel group: {group:?}");
        };
        let want = expected_of(
            closed()
                .filter(chosen)
                .filter(|c| c.channel as i32 == channel),
        );
        assert_automation(
            &group.metrics.unwrap().automation.unwrap(),
            &want,
            &format!("filtered, channel {channel}"),
        );
    }
    by_channel
}

async fn containment_and_handoffs_of_live_conversations_are_counted_by_the_definitions(
    backend: Backend,
) {
    let start = at("2026-05-04T05:00:00Z");
    let Some(env) = spawn_env(backend, start).await else {
        return;
    };
    // The table's own figures, so a mistake in it can't make the check pass.
    let totals = expected_of(&CASES);
    assert_eq!(
        (totals.automated, totals.contained, totals.handed_off),
        (7, 3, 3)
    );
    play(&env, start).await;
    env.settle().await;
    let live = check(&env, start).await;

    let mut metrics = env.metrics().await;
    metrics
        .rebuild_aggregates(tonic::Request::new(pb::RebuildAggregatesRequest {}))
        .await
        .unwrap();
    let rebuilt = metrics
        .get_conversation_metrics(env.req(report_request(start, pb::GroupBy::ChannelType)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rebuilt.totals, live.totals,
        "a rebuild gives the live numbers"
    );
    assert_eq!(rebuilt.groups, live.groups);
    env.stop().await;
}

async fn containment_and_handoffs_of_imported_history_equal_the_live_ones(backend: Backend) {
    let start = at("2026-05-04T05:00:00Z");
    let Some(env) = spawn_env(backend, at("2026-06-01T00:00:00Z")).await else {
        return;
    };
    let mut items = Vec::new();
    for (index, case) in CASES.iter().enumerate() {
        let contact = env.new_contact(env.workspace).await;
        items.push(conversation_pb::ImportConversationsRequest {
            conversation: Some(history_of(index, case, start, &contact)),
        });
    }
    let imported = env
        .conversations()
        .await
        .import_conversations(env.req(tokio_stream::iter(items)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.imported_count, 12, "{:?}", imported.results);
    env.settle().await;
    check(&env, start).await;
    env.stop().await;
}
