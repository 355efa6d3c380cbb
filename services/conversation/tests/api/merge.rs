//! Contact merges close the secondary contact's open conversation, exactly once.

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use tonic::Code;

use crate::helpers::{eventually, kinds, spawn_env};

backend_tests!(
    a_merge_closes_the_secondary_contacts_open_conversation_once,
    a_read_at_the_merge_position_sees_the_secondary_conversation_closed,
    a_read_waits_for_contact_positions_only_within_its_deadline,
    a_merge_after_a_burst_of_new_contacts_closes_once,
);

async fn a_merge_closes_the_secondary_contacts_open_conversation_once(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    let primary = env.new_contact().await;
    let secondary = env.new_contact().await;
    let primary_conversation = env.inbound(&primary).await;
    let secondary_conversation = env.inbound(&secondary).await;
    env.merge(&primary, &secondary).await;
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
    env.merge(&primary, &third).await;
    let events = env.events().await;
    let closes = events
        .iter()
        .filter(|event| kinds(std::slice::from_ref(event)) == ["closed"])
        .count();
    assert_eq!(closes, 1, "one close, not replayed after the restart");
}

async fn a_read_at_the_merge_position_sees_the_secondary_conversation_closed(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let primary = env.new_contact().await;
    let secondary = env.new_contact().await;
    let open = env.inbound(&secondary).await;
    let merged = env
        .contacts()
        .await
        .merge_contacts(env.req(contact_pb::MergeContactsRequest {
            primary_contact_id: primary.clone(),
            secondary_contact_id: secondary.clone(),
            request_id: uuid::Uuid::now_v7().to_string(),
        }))
        .await
        .unwrap()
        .into_inner();
    let position = merged.merge_position.expect("a merge answers its position");
    let mut client = env.conversations().await;
    // No polling: the read waits until the merge is applied, so it never sees the conversation
    // still open.
    let now_open = client
        .get_open_conversation(env.req(pb::GetOpenConversationRequest {
            contact_id: secondary.clone(),
            min_contact_positions: vec![position],
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now_open.conversation, None);
    let listed = client
        .list_conversations(env.req(pb::ListConversationsRequest {
            contact_id: secondary.clone(),
            min_contact_positions: vec![position],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .conversations;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].conversation_id, open.conversation_id);
    assert_eq!(listed[0].closed_by, pb::CloseSource::ContactMerge as i32);

    // A position the contact stream never wrote would never be applied: refused at once.
    let unwritten = contact_pb::PartitionCursor {
        partition: position.partition,
        sequence: position.sequence + 1_000,
    };
    let status = assert_code(
        client
            .get_open_conversation(env.req(pb::GetOpenConversationRequest {
                contact_id: primary.clone(),
                min_contact_positions: vec![unwritten],
            }))
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        charla_testing::error_info_value(&status, "field").as_deref(),
        Some("min_contact_positions")
    );
    let missing_partition = contact_pb::PartitionCursor {
        partition: 999,
        sequence: 1,
    };
    assert_code(
        client
            .get_open_conversation(env.req(pb::GetOpenConversationRequest {
                contact_id: primary.clone(),
                min_contact_positions: vec![missing_partition],
            }))
            .await,
        Code::FailedPrecondition,
    );
    assert_invalid_field(
        client
            .get_open_conversation(env.req(pb::GetOpenConversationRequest {
                contact_id: primary,
                min_contact_positions: vec![contact_pb::PartitionCursor {
                    partition: 0,
                    sequence: u64::MAX,
                }],
            }))
            .await,
        "min_contact_positions",
    );
}

async fn a_read_waits_for_contact_positions_only_within_its_deadline(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    env.new_contact().await;
    // With the contact service gone, the position can't be checked nor applied: the read waits
    // for it until its deadline, then says how far the consumer got.
    env.stop_contact().await;
    let mut request = env.req(pb::ListConversationsRequest {
        min_contact_positions: vec![contact_pb::PartitionCursor {
            partition: 0,
            sequence: 1_000,
        }],
        ..Default::default()
    });
    request.set_timeout(std::time::Duration::from_secs(3));
    let status = assert_code(
        env.conversations().await.list_conversations(request).await,
        Code::DeadlineExceeded,
    );
    assert!(
        charla_testing::error_info_value(&status, "applied").is_some(),
        "the server answers before the client gives up, saying how far it got: {status:?}"
    );
}

/// Events that concern no conversation are passed over in runs, one transaction a run; a merge
/// that arrives behind a burst of them still closes its conversation, once.
async fn a_merge_after_a_burst_of_new_contacts_closes_once(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let primary = env.new_contact().await;
    let secondary = env.new_contact().await;
    let conversation = env.inbound(&secondary).await;
    for _ in 0..40 {
        env.new_contact().await;
    }
    env.merge(&primary, &secondary).await;
    for _ in 0..40 {
        env.new_contact().await;
    }
    let id = conversation.conversation_id.clone();
    eventually("the secondary's conversation is closed", || {
        let env = &env;
        let id = id.clone();
        async move { env.get(&id).await.status == pb::ConversationStatus::Closed as i32 }
    })
    .await;
    let closes = kinds(&env.events().await)
        .into_iter()
        .filter(|kind| *kind == "closed")
        .count();
    assert_eq!(closes, 1);
}
