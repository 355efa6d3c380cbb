//! One test clock for a fleet: two conversation replicas on one PostgreSQL database read and move
//! the same clock, a restarted replica resumes it, and an auto-close made due through one replica
//! is seen through the other.

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::conversation::v1::test_clock_service_client::TestClockServiceClient;
use charla_testing::{Backend, fresh_database_url, in_workspace};
use support::{Replica, channel, ready};
use tonic::Code;

mod support;

async fn clock_of(replica: &Replica) -> prost_types::Timestamp {
    TestClockServiceClient::new(channel(replica.url()).await)
        .get_test_clock(pb::GetTestClockRequest {})
        .await
        .expect("read a replica's test clock")
        .into_inner()
        .now
        .unwrap()
}

async fn advance(replica: &Replica, seconds: i64) -> prost_types::Timestamp {
    TestClockServiceClient::new(channel(replica.url()).await)
        .advance_test_clock(pb::AdvanceTestClockRequest {
            duration: Some(prost_types::Duration { seconds, nanos: 0 }),
        })
        .await
        .expect("advance the test clock")
        .into_inner()
        .now
        .unwrap()
}

fn message(contact: &str, id: &str, kind: pb::AuthorKind) -> pb::RecordMessageRequest {
    let inbound = kind == pb::AuthorKind::Contact;
    pb::RecordMessageRequest {
        message_id: id.into(),
        contact_id: contact.into(),
        channel: Some(pb::Channel {
            channel_type: contact_pb::ChannelType::Whatsapp as i32,
            channel_id: "wa".into(),
        }),
        direction: if inbound {
            pb::MessageDirection::Inbound
        } else {
            pb::MessageDirection::Outbound
        } as i32,
        author_kind: kind as i32,
        author_id: if inbound { "" } else { "agent-ana" }.into(),
        sent_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_reads_and_moves_one_test_clock_and_a_restart_resumes_it() {
    let Some(contact_db) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let conversation_db = fresh_database_url(Backend::Postgres).await.unwrap();
    let mut contact = Replica::new("contact", vec![("CHARLA_DATABASE_URL", contact_db)]);
    let mut conversation = [0, 1].map(|_| {
        Replica::new(
            "conversation",
            vec![
                ("CHARLA_DATABASE_URL", conversation_db.clone()),
                ("CHARLA_CONTACT_URL", contact.url()),
                ("CHARLA_TEST_CLOCK", "true".to_owned()),
            ],
        )
    });
    contact.start();
    for replica in &mut conversation {
        replica.start();
    }
    ready(&contact).await;
    for replica in &conversation {
        ready(replica).await;
    }

    // Started a moment apart, both run on the clock the first one stored.
    let start = clock_of(&conversation[0]).await;
    assert_eq!(clock_of(&conversation[1]).await, start);

    // Moved through one replica, moved for both.
    let two_days = advance(&conversation[0], 2 * 86_400).await;
    assert_eq!(two_days.seconds, start.seconds + 2 * 86_400);
    assert_eq!(clock_of(&conversation[1]).await, two_days);

    // A restarted replica resumes the fleet's clock instead of the machine's.
    conversation[1].kill();
    conversation[1].start();
    ready(&conversation[1]).await;
    assert_eq!(clock_of(&conversation[1]).await, two_days);

    // Backwards is refused through any replica: the fleet's clock is what counts.
    let refused = TestClockServiceClient::new(channel(conversation[1].url()).await)
        .set_test_clock(pb::SetTestClockRequest {
            time: Some(prost_types::Timestamp {
                seconds: two_days.seconds - 60,
                nanos: 0,
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");

    // An auto-close started on one replica fires when the clock moves through the other, and
    // both agree on when it happened.
    let workspace = uuid::Uuid::now_v7();
    let contact_id = ContactServiceClient::new(channel(contact.url()).await)
        .resolve_contact(in_workspace(
            workspace,
            contact_pb::ResolveContactRequest {
                identity: Some(contact_pb::ChannelIdentity {
                    channel_type: contact_pb::ChannelType::Whatsapp as i32,
                    channel_id: "wa".into(),
                    external_id: "+15550001".into(),
                }),
                profile: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap()
        .contact_id;
    let first = ConversationServiceClient::new(channel(conversation[0].url()).await);
    let second = ConversationServiceClient::new(channel(conversation[1].url()).await);
    first
        .clone()
        .update_workspace_settings(in_workspace(
            workspace,
            pb::UpdateWorkspaceSettingsRequest {
                settings: Some(pb::WorkspaceSettings {
                    auto_close_after: Some(prost_types::Duration {
                        seconds: 30 * 60,
                        nanos: 0,
                    }),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["auto_close_after".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let opened = first
        .clone()
        .record_message(in_workspace(
            workspace,
            message(&contact_id, "in-1", pb::AuthorKind::Contact),
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    first
        .clone()
        .record_message(in_workspace(
            workspace,
            message(&contact_id, "out-1", pb::AuthorKind::User),
        ))
        .await
        .unwrap();
    let later = advance(&conversation[1], 31 * 60).await;
    let closed = second
        .clone()
        .get_conversation(in_workspace(
            workspace,
            pb::GetConversationRequest {
                conversation_id: opened.conversation_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(closed.closed_by, pb::CloseSource::AutoClose as i32);
    let closed_at = closed.closed_at.unwrap();
    assert!(closed_at.seconds <= later.seconds);
    assert_eq!(closed_at.seconds, two_days.seconds + 30 * 60);
    // The next opening, through the first replica, is after that close.
    let next = first
        .clone()
        .record_message(in_workspace(
            workspace,
            message(&contact_id, "in-2", pb::AuthorKind::Contact),
        ))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_ne!(next.conversation_id, opened.conversation_id);
    assert!(next.opened_at.unwrap().seconds >= later.seconds);
}
