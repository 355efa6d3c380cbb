//! Re-contacts through the real services: contacts that come back after a close (or don't),
//! played live and imported in a scrambled order; the report's re-contact counts, for the
//! workspace's window, a request's window and a changed setting, must equal what the test works
//! out from the script by the proto's definition. Also the settings' bad input.

use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::conversation::v1::{AuthorKind, CloseSource};
use charla_proto::charla::metrics::v1 as pb;
use charla_runtime::auth::Role;
use charla_testing::{Backend, backend_tests};
use jiff::Timestamp;

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(
    recontacts_of_live_conversations_follow_the_window,
    recontacts_of_history_imported_out_of_order_equal_the_live_ones,
    report_settings_refuse_bad_windows_naming_the_field,
);

const HOUR: Duration = Duration::from_secs(3600);

fn at(text: &str) -> SystemTime {
    charla_runtime::clock::from_micros(text.parse::<Timestamp>().unwrap().as_microsecond())
}

fn start() -> SystemTime {
    at("2026-05-04T00:00:00Z")
}

fn proto_time(time: SystemTime) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(time))
}

/// One conversation: the contact (an index), when it opens and closes, in minutes from `start`.
struct Scripted {
    contact: usize,
    opened: u64,
    closed: Option<(u64, CloseSource)>,
}

const fn conversation(contact: usize, opened: u64, closed: Option<(u64, CloseSource)>) -> Scripted {
    Scripted {
        contact,
        opened,
        closed,
    }
}

const H: u64 = 60;

const SCRIPT: [Scripted; 16] = [
    // Back after 30 minutes, then after 25 hours.
    conversation(0, 0, Some((H, CloseSource::User))),
    conversation(0, 90, Some((2 * H, CloseSource::Bot))),
    conversation(0, 27 * H, Some((28 * H, CloseSource::User))),
    // Back after exactly 24 hours.
    conversation(1, 3 * H, Some((4 * H, CloseSource::User))),
    conversation(1, 28 * H, Some((29 * H, CloseSource::User))),
    // Never back.
    conversation(2, 5 * H, Some((6 * H, CloseSource::Workflow))),
    // Back after 8 days: past any window.
    conversation(3, 7 * H, Some((8 * H, CloseSource::User))),
    conversation(3, 200 * H, Some((201 * H, CloseSource::User))),
    // Back at the very instant of the close.
    conversation(4, 10 * H, Some((11 * H, CloseSource::User))),
    conversation(4, 11 * H, Some((12 * H, CloseSource::User))),
    // Back after 100 hours, then after 8 hours into a conversation still open.
    conversation(5, 20 * H, Some((21 * H, CloseSource::Bot))),
    conversation(5, 121 * H, Some((122 * H, CloseSource::User))),
    conversation(5, 130 * H, None),
    // Back after 2 hours, then after 27. Imported last-first, the first close meets the third
    // opening (30 hours after it) before the second.
    conversation(6, 40 * H, Some((41 * H, CloseSource::User))),
    conversation(6, 43 * H, Some((44 * H, CloseSource::User))),
    conversation(6, 71 * H, Some((72 * H, CloseSource::User))),
];

/// How many closed conversations the script has.
fn closed_count() -> i64 {
    SCRIPT.iter().filter(|c| c.closed.is_some()).count() as i64
}

fn minute(m: u64) -> SystemTime {
    start() + Duration::from_secs(60 * m)
}

/// Minutes from each closed conversation's close to its contact's next opening, if any.
fn gap(closed: &Scripted) -> Option<u64> {
    let (closed_at, _) = closed.closed?;
    SCRIPT
        .iter()
        .filter(|other| other.contact == closed.contact && other.opened >= closed_at)
        .filter(|other| !std::ptr::eq(*other, closed))
        .map(|other| other.opened - closed_at)
        .min()
}

/// The closed conversations re-contacted within `hours`, among those `keep` accepts.
fn recontacted(hours: u64, keep: impl Fn(&Scripted) -> bool) -> i64 {
    SCRIPT
        .iter()
        .filter(|c| c.closed.is_some() && keep(c))
        .filter(|c| gap(c).is_some_and(|gap| gap <= hours * 60))
        .count() as i64
}

fn report(window: Option<Duration>) -> pb::GetConversationMetricsRequest {
    pb::GetConversationMetricsRequest {
        start_time: proto_time(start()),
        end_time: proto_time(start() + 10 * 24 * HOUR),
        granularity: pb::Granularity::Day as i32,
        group_by: pb::GroupBy::ClosedBy as i32,
        recontact_window: window.map(|w| prost_types::Duration::try_from(w).unwrap()),
        ..Default::default()
    }
}

/// Checks the totals, the daily series and the breakdown by closing source for a window of
/// `hours`, asked with `window` (or the workspace's setting).
async fn check(env: &MetricsEnv, hours: u64, window: Option<Duration>) {
    let answer = env
        .metrics()
        .await
        .get_conversation_metrics(env.req(report(window)))
        .await
        .unwrap()
        .into_inner();
    let what = format!("window {hours} h");
    let totals = answer.totals.unwrap();
    let recontact = totals.recontact.unwrap();
    assert_eq!(
        recontact.window.unwrap().seconds as u64,
        hours * 3600,
        "{what}"
    );
    assert_eq!(
        recontact.recontacted_count,
        recontacted(hours, |_| true),
        "{what}"
    );
    assert_eq!(totals.closed_count, closed_count());
    assert_eq!(
        recontact.recontact_rate,
        recontacted(hours, |_| true) as f64 / closed_count() as f64,
        "{what}"
    );
    for (day, bucket) in answer.series.iter().enumerate() {
        let day = day as u64;
        let want = recontacted(hours, |c| {
            c.closed.is_some_and(|(closed, _)| closed / (24 * H) == day)
        });
        let got = bucket.metrics.unwrap().recontact.unwrap().recontacted_count;
        assert_eq!(got, want, "{what}, day {day}");
    }
    for group in &answer.groups {
        let Some(pb::group_key::Key::ClosedBy(source)) = group.key.as_ref().unwrap().key else {
            panic!("a closing source group: {group:?}");
        };
        let want = recontacted(hours, |c| {
            c.closed.is_some_and(|(_, by)| by as i32 == source)
        });
        let got = group.metrics.unwrap().recontact.unwrap().recontacted_count;
        assert_eq!(got, want, "{what}, closed by {source}");
    }
    assert_eq!(answer.groups.len(), 3);
}

/// The same checks for the default window, a request's windows and a changed setting.
async fn check_every_window(env: &MetricsEnv) {
    // The script's own figures, so a mistake in it can't make the checks pass.
    assert_eq!(
        [1, 24, 48, 168].map(|hours| recontacted(hours, |_| true)),
        [2, 5, 7, 8]
    );
    check(env, 24, None).await;
    for hours in [1, 48, 168] {
        check(env, hours, Some(HOUR * hours as u32)).await;
    }
    let updated = env
        .metrics()
        .await
        .update_report_settings(env.req(pb::UpdateReportSettingsRequest {
            settings: Some(pb::ReportSettings {
                recontact_window: Some(prost_types::Duration {
                    seconds: 48 * 3600,
                    nanos: 0,
                }),
                business_hours: None,
                sla_targets: None,
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["recontact_window".into()],
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        updated.settings.unwrap().recontact_window.unwrap().seconds,
        48 * 3600
    );
    check(env, 48, None).await;
    check(env, 1, Some(HOUR)).await;
}

async fn recontacts_of_live_conversations_follow_the_window(backend: Backend) {
    let Some(env) = spawn_env(backend, start()).await else {
        return;
    };
    let mut contacts = Vec::new();
    for _ in 0..7 {
        contacts.push(env.new_contact(env.workspace).await);
    }
    // (minute, 0 for a close and 1 for an opening: a close first at the same minute, index)
    let mut steps = Vec::new();
    for (index, c) in SCRIPT.iter().enumerate() {
        steps.push((c.opened, 1, index));
        if let Some((closed, _)) = c.closed {
            steps.push((closed, 0, index));
        }
    }
    steps.sort();
    let mut conversations = vec![String::new(); SCRIPT.len()];
    let mut client = env.conversations().await;
    for (m, step, index) in steps {
        env.clock.set(minute(m));
        let c = &SCRIPT[index];
        if step == 1 {
            let opened = env
                .message(
                    env.workspace,
                    &contacts[c.contact],
                    ChannelType::Whatsapp,
                    AuthorKind::Contact,
                    "",
                )
                .await
                .unwrap();
            conversations[index] = opened.conversation_id;
        } else {
            let (_, source) = c.closed.unwrap();
            client
                .close_conversation(env.req(conversation_pb::CloseConversationRequest {
                    conversation_id: conversations[index].clone(),
                    source: source as i32,
                    ..Default::default()
                }))
                .await
                .unwrap();
        }
    }
    env.clock.set(minute(300 * H));
    env.settle().await;
    check_every_window(&env).await;
    env.stop().await;
}

async fn recontacts_of_history_imported_out_of_order_equal_the_live_ones(backend: Backend) {
    let Some(env) = spawn_env(backend, minute(300 * H)).await else {
        return;
    };
    let mut contacts = Vec::new();
    for _ in 0..7 {
        contacts.push(env.new_contact(env.workspace).await);
    }
    // Later conversations first, and the contacts interleaved: a close may arrive after the
    // contact's next opening, and an opening after a later one (contact 6: third, first, second).
    let mut order: Vec<usize> = (0..SCRIPT.len()).collect();
    order.sort_by_key(|index| (index % 3, std::cmp::Reverse(*index)));
    let position = |index| order.iter().position(|i| *i == index).unwrap();
    assert!(position(15) < position(13) && position(13) < position(14));
    let items: Vec<conversation_pb::ImportConversationsRequest> = order
        .iter()
        .map(|index| {
            let c = &SCRIPT[*index];
            conversation_pb::ImportConversationsRequest {
                conversation: Some(conversation_pb::HistoricalConversation {
                    external_id: format!("legacy-{index}"),
                    contact_id: contacts[c.contact].clone(),
                    channel: Some(conversation_pb::Channel {
                        channel_type: ChannelType::Whatsapp as i32,
                        channel_id: "main".into(),
                    }),
                    opened_at: proto_time(minute(c.opened)),
                    opened_by: conversation_pb::OpenSource::InboundMessage as i32,
                    messages: vec![conversation_pb::HistoricalMessage {
                        message_id: format!("m-{index}"),
                        sent_at: proto_time(minute(c.opened)),
                        direction: conversation_pb::MessageDirection::Inbound as i32,
                        author_kind: AuthorKind::Contact as i32,
                        author_id: String::new(),
                    }],
                    closed_at: c.closed.and_then(|(m, _)| proto_time(minute(m))),
                    closed_by: c.closed.map_or(0, |(_, source)| source as i32),
                    ..Default::default()
                }),
            }
        })
        .collect();
    let imported = env
        .conversations()
        .await
        .import_conversations(env.req(tokio_stream::iter(items)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.imported_count, 16, "{:?}", imported.results);
    env.settle().await;
    check_every_window(&env).await;
    env.stop().await;
}

async fn report_settings_refuse_bad_windows_naming_the_field(backend: Backend) {
    let Some(env) = spawn_env(backend, start()).await else {
        return;
    };
    let mut metrics = env.metrics().await;
    let defaults = metrics
        .get_report_settings(env.req(pb::GetReportSettingsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        defaults
            .settings
            .as_ref()
            .unwrap()
            .recontact_window
            .unwrap()
            .seconds,
        24 * 3600
    );
    let update = |seconds: i64, paths: &[&str]| pb::UpdateReportSettingsRequest {
        settings: Some(pb::ReportSettings {
            recontact_window: Some(prost_types::Duration { seconds, nanos: 0 }),
            business_hours: None,
            sla_targets: None,
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    for seconds in [0, 5400, -3600, 8 * 24 * 3600] {
        charla_testing::assert_invalid_field(
            metrics
                .update_report_settings(env.req(update(seconds, &["recontact_window"])))
                .await,
            "settings.recontact_window",
        );
    }
    charla_testing::assert_invalid_field(
        metrics
            .update_report_settings(env.req(update(3600, &["first_response_sla"])))
            .await,
        "update_mask",
    );
    charla_testing::assert_invalid_field(
        metrics
            .update_report_settings(env.req(update(3600, &[])))
            .await,
        "update_mask",
    );
    charla_testing::assert_invalid_field(
        metrics
            .update_report_settings(env.req(pb::UpdateReportSettingsRequest {
                settings: None,
                ..update(3600, &["recontact_window"])
            }))
            .await,
        "settings",
    );
    // An agent reads the settings but may not change them.
    let denied = metrics
        .update_report_settings(charla_testing::auth::as_role(
            Role::Agent,
            env.workspace,
            update(3600, &["recontact_window"]),
        ))
        .await;
    charla_testing::assert_code(denied, tonic::Code::PermissionDenied);
    let mut bad_window = report(Some(Duration::from_secs(1800)));
    bad_window.group_by = 0;
    charla_testing::assert_invalid_field(
        metrics.get_conversation_metrics(env.req(bad_window)).await,
        "recontact_window",
    );
    // Nothing above changed the settings.
    let after = metrics
        .get_report_settings(env.req(pb::GetReportSettingsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, defaults);
    env.stop().await;
}
