//! Read your writes: a conversation write answers with its event position, and a metrics read
//! that names it reflects the write, or says why it can't.

use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1::{ChannelType, PartitionCursor};
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, assert_code, backend_tests, error_info_value};
use tonic::Code;

use crate::helpers::spawn_env;

backend_tests!(
    a_read_at_a_writes_position_reflects_the_write,
    a_read_waits_for_positions_only_within_its_deadline,
);

/// A whole quarter hour, as report ranges must start on one.
fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_779_999_300)
}

fn day() -> (
    Option<prost_types::Timestamp>,
    Option<prost_types::Timestamp>,
) {
    (
        Some(start().into()),
        Some((start() + Duration::from_secs(86_400)).into()),
    )
}

async fn a_read_at_a_writes_position_reflects_the_write(backend: Backend) {
    let Some(env) = spawn_env(backend, start()).await else {
        return;
    };
    let mut conversations = env.conversations().await;
    let contact = env.new_contact(env.workspace).await;
    let recorded = conversations
        .record_message(env.req(conversation_pb::RecordMessageRequest {
            message_id: "m-1".into(),
            contact_id: contact.clone(),
            channel: Some(conversation_pb::Channel {
                channel_type: ChannelType::Whatsapp as i32,
                channel_id: "main".into(),
            }),
            direction: conversation_pb::MessageDirection::Inbound as i32,
            author_kind: conversation_pb::AuthorKind::Contact as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let opened_at = recorded
        .event_position
        .expect("a write answers its position");
    let id = recorded.conversation.unwrap().conversation_id;
    let closed = conversations
        .close_conversation(env.req(conversation_pb::CloseConversationRequest {
            conversation_id: id.clone(),
            source: conversation_pb::CloseSource::User as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let closed_at = closed.event_position.expect("a close answers its position");
    assert_eq!(closed_at.partition, opened_at.partition);
    assert!(closed_at.sequence > opened_at.sequence);

    // No settling, no polling: the read waits for the close to be applied.
    let mut metrics = env.metrics().await;
    let (start_time, end_time) = day();
    let report = metrics
        .get_conversation_metrics(env.req(pb::GetConversationMetricsRequest {
            start_time,
            end_time,
            granularity: pb::Granularity::Day as i32,
            min_positions: vec![closed_at],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let totals = report.totals.unwrap();
    assert_eq!((totals.opened_count, totals.closed_count), (1, 1));
    assert_eq!(
        report.positions,
        [closed_at],
        "the report reflects the workspace's events up to its latest, the close"
    );

    // A retried message changes nothing and answers where the conversation's effects end.
    let retried = conversations
        .record_message(env.req(conversation_pb::RecordMessageRequest {
            message_id: "m-1".into(),
            contact_id: contact,
            channel: Some(conversation_pb::Channel {
                channel_type: ChannelType::Whatsapp as i32,
                channel_id: "main".into(),
            }),
            direction: conversation_pb::MessageDirection::Inbound as i32,
            author_kind: conversation_pb::AuthorKind::Contact as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(!retried.recorded);
    assert_eq!(retried.event_position, Some(closed_at));

    let dashboard = metrics
        .get_dashboard(env.req(pb::GetDashboardRequest {
            min_positions: vec![closed_at],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dashboard.dashboard.unwrap().open_count, 0);
    assert_eq!(dashboard.positions, [closed_at]);
    // Another workspace's writes move the stream, not what this workspace's reports say.
    let elsewhere = uuid::Uuid::now_v7();
    let other = env.new_contact(elsewhere).await;
    env.message(
        elsewhere,
        &other,
        ChannelType::Sms,
        conversation_pb::AuthorKind::Contact,
        "",
    )
    .await;
    env.settle().await;
    let again = metrics
        .get_dashboard(env.req(pb::GetDashboardRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.positions, [closed_at]);

    // A position the stream never wrote would never be applied: refused at once.
    let unwritten = PartitionCursor {
        partition: closed_at.partition,
        sequence: closed_at.sequence + 1_000,
    };
    let status = assert_code(
        metrics
            .get_dashboard(env.req(pb::GetDashboardRequest {
                min_positions: vec![unwritten],
                ..Default::default()
            }))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        error_info_value(&status, "field").as_deref(),
        Some("min_positions")
    );
    env.stop().await;
}

async fn a_read_waits_for_positions_only_within_its_deadline(backend: Backend) {
    let Some(mut env) = spawn_env(backend, start()).await else {
        return;
    };
    // With the conversation service gone, nothing more is applied and the position can't be
    // checked: the read waits until its deadline, then says how far the consumer got.
    env.stop_conversation().await;
    let mut request = env.req(pb::GetDashboardRequest {
        min_positions: vec![PartitionCursor {
            partition: 0,
            sequence: 5,
        }],
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(3));
    let status = assert_code(
        env.metrics().await.get_dashboard(request).await,
        Code::DeadlineExceeded,
    );
    assert!(
        error_info_value(&status, "applied").is_some(),
        "the server answers before the client gives up, saying how far it got: {status:?}"
    );
    env.stop().await;
}
