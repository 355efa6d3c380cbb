//! The contact check on opening: unknown, blocked and merged contacts, and a contact service that
//! is down.

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, assert_code, backend_tests, error_info_value};
use tonic::Code;

use crate::helpers::spawn_env;

backend_tests!(
    an_unknown_contact_gets_no_conversation,
    a_blocked_contact_gets_no_conversation,
    a_retried_message_of_a_contact_blocked_since_is_answered_as_recorded,
    a_merged_contact_is_refused_pointing_to_the_primary,
    with_the_contact_service_down_opening_fails_unavailable_and_writes_nothing,
);

async fn block(env: &crate::helpers::TestEnv, contact: &str) {
    env.contacts()
        .await
        .block_contact(env.req(contact_pb::BlockContactRequest {
            contact_id: contact.to_owned(),
        }))
        .await
        .unwrap();
}

async fn an_unknown_contact_gets_no_conversation(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let stranger = uuid::Uuid::now_v7().to_string();
    assert_code(
        env.message(&stranger, pb::AuthorKind::Contact, "m1").await,
        Code::NotFound,
    );
}

async fn a_blocked_contact_gets_no_conversation(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    block(&env, &contact).await;
    let status = assert_code(
        env.message(&contact, pb::AuthorKind::Contact, "m1").await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        error_info_value(&status, "contact_id"),
        Some(contact.clone())
    );
    assert!(status.message().contains("blocked"), "{status:?}");
}

async fn a_retried_message_of_a_contact_blocked_since_is_answered_as_recorded(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let first = env
        .message(&contact, pb::AuthorKind::Contact, "m1")
        .await
        .unwrap();
    let conversation = first.conversation.unwrap().conversation_id;
    env.close(&conversation, pb::CloseSource::User)
        .await
        .unwrap();
    block(&env, &contact).await;
    // A retry answers what the message did then; only a new message is refused.
    let retried = env
        .message(&contact, pb::AuthorKind::Contact, "m1")
        .await
        .unwrap();
    assert!(!retried.recorded);
    assert!(!retried.opened_conversation);
    assert_eq!(retried.conversation.unwrap().conversation_id, conversation);
    assert_code(
        env.message(&contact, pb::AuthorKind::Contact, "m2").await,
        Code::FailedPrecondition,
    );
}

async fn a_merged_contact_is_refused_pointing_to_the_primary(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let primary = env.new_contact().await;
    let secondary = env.new_contact().await;
    env.merge(&primary, &secondary).await;
    let status = assert_code(
        env.conversations()
            .await
            .open_conversation(env.req(pb::OpenConversationRequest {
                contact_id: secondary,
                channel: Some(crate::helpers::whatsapp()),
                source: pb::OpenSource::User as i32,
                ..Default::default()
            }))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        error_info_value(&status, "merged_into_contact_id"),
        Some(primary)
    );
}

async fn with_the_contact_service_down_opening_fails_unavailable_and_writes_nothing(
    backend: Backend,
) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    env.stop_contact().await;
    assert_code(
        env.message(&contact, pb::AuthorKind::Contact, "m1").await,
        Code::Unavailable,
    );
    let listed = env
        .conversations()
        .await
        .list_conversations(env.req(pb::ListConversationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(listed.conversations.is_empty(), "nothing was written");
}
