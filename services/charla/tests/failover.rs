//! Peer failover: the conversation service checks contacts on whichever contact replica is
//! ready. One of two contact replicas is SIGKILLed; once its death is noticed (a health check a
//! second), no RecordMessage fails for want of a contact check.

use std::time::Duration;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_testing::{Backend, fresh_database_url, in_workspace};
use support::{Replica, channel, ready};

mod support;

const CONTACTS: usize = 60;

fn inbound(contact_id: String, message_id: String) -> pb::RecordMessageRequest {
    pb::RecordMessageRequest {
        message_id,
        contact_id,
        channel: Some(pb::Channel {
            channel_type: contact_pb::ChannelType::Whatsapp as i32,
            channel_id: "wa".into(),
        }),
        direction: pb::MessageDirection::Inbound as i32,
        author_kind: pb::AuthorKind::Contact as i32,
        author_id: String::new(),
        sent_at: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_contact_replica_stops_failing_calls_once_its_death_is_noticed() {
    let Some(contact_db) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let conversation_db = fresh_database_url(Backend::Postgres).await.unwrap();
    let mut contact =
        [0, 1].map(|_| Replica::new("contact", vec![("CHARLA_DATABASE_URL", contact_db.clone())]));
    let mut conversation = Replica::new(
        "conversation",
        vec![
            ("CHARLA_DATABASE_URL", conversation_db),
            (
                "CHARLA_CONTACT_URL",
                format!("{},{}", contact[0].url(), contact[1].url()),
            ),
        ],
    );
    for replica in &mut contact {
        replica.start();
    }
    conversation.start();
    for replica in contact.iter().chain([&conversation]) {
        ready(replica).await;
    }

    let workspace = uuid::Uuid::now_v7();
    let contacts_api = ContactServiceClient::new(channel(contact[0].url()).await);
    let mut contacts = Vec::new();
    for index in 0..CONTACTS {
        let request = contact_pb::ResolveContactRequest {
            identity: Some(contact_pb::ChannelIdentity {
                channel_type: contact_pb::ChannelType::Whatsapp as i32,
                channel_id: "wa".into(),
                external_id: format!("+1555{index:04}"),
            }),
            profile: None,
        };
        let resolved = contacts_api
            .clone()
            .resolve_contact(in_workspace(workspace, request))
            .await
            .unwrap();
        contacts.push(resolved.into_inner().contact.unwrap().contact_id);
    }
    let conversations = ConversationServiceClient::new(channel(conversation.url()).await);
    let record = |contact: &String, message: String| {
        let mut conversations = conversations.clone();
        let request = in_workspace(workspace, inbound(contact.clone(), message));
        async move { conversations.record_message(request).await }
    };

    // Both replicas check contacts while both are up.
    for (index, contact) in contacts.iter().take(10).enumerate() {
        record(contact, format!("before-{index}")).await.unwrap();
    }

    contact[1].kill();
    // Noticed within a health check or two (one a second).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut failed = Vec::new();
    for (index, contact) in contacts.iter().enumerate() {
        if let Err(status) = record(contact, format!("after-{index}")).await {
            failed.push(format!("{:?}: {}", status.code(), status.message()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {CONTACTS} calls failed with one contact replica dead: {failed:?}",
        failed.len()
    );

    // Back from the dead: the restarted replica is used again, and the other one can go.
    contact[1].start();
    ready(&contact[1]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    contact[0].kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (index, contact) in contacts.iter().enumerate() {
        record(contact, format!("again-{index}"))
            .await
            .unwrap_or_else(|status| panic!("after the swap, call {index}: {status:?}"));
    }
}
