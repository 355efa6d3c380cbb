//! Contact merges close the secondary contact's open conversation, exactly once.

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, backend_tests};

use crate::helpers::{eventually, kinds, spawn_env};

backend_tests!(a_merge_closes_the_secondary_contacts_open_conversation_once);

async fn a_merge_closes_the_secondary_contacts_open_conversation_once(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    let primary = env.new_contact().await;
    let secondary = env.new_contact().await;
    let primary_conversation = env.inbound(&primary).await;
    let secondary_conversation = env.inbound(&secondary).await;
    env.contacts()
        .await
        .merge_contacts(env.req(contact_pb::MergeContactsRequest {
            primary_contact_id: primary.clone(),
            secondary_contact_id: secondary.clone(),
        }))
        .await
        .unwrap();
    let id = secondary_conversation.conversation_id.clone();
    eventually("the secondary's conversation is closed", || {
        let env = &env;
        let id = id.clone();
        async move { env.get(&id).await.status == pb::ConversationStatus::Closed as i32 }
    })
    .await;
    let closed = env.get(&id).await;
    assert_eq!(closed.closed_by, pb::CloseSource::ContactMerge as i32);
    assert_eq!(
        env.get(&primary_conversation.conversation_id).await.status,
        pb::ConversationStatus::Open as i32,
        "the primary's conversation stays open"
    );

    // A restart replays nothing: the consumer resumes from its stored cursor.
    env.restart_conversation().await;
    let third = env.new_contact().await;
    env.contacts()
        .await
        .merge_contacts(env.req(contact_pb::MergeContactsRequest {
            primary_contact_id: primary.clone(),
            secondary_contact_id: third.clone(),
        }))
        .await
        .unwrap();
    let events = env.events().await;
    let closes = events
        .iter()
        .filter(|event| kinds(std::slice::from_ref(event)) == ["closed"])
        .count();
    assert_eq!(closes, 1, "one close, not replayed after the restart");
}
