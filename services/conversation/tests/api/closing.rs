//! Closing: every source, never twice, closing notes, and the self-contained close event.

use std::time::Duration;

use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests, error_info_value};
use tonic::Code;

use crate::helpers::{TestEnv, kinds, spawn_env};

backend_tests!(
    each_manual_source_closes_and_is_recorded,
    closing_a_closed_conversation_fails_and_a_retried_close_is_not_doubled,
    closing_notes_follow_the_workspace_policy,
    the_close_event_carries_everything_the_metrics_need,
);

async fn set_policy(env: &TestEnv, policy: pb::ClosingNotePolicy, categories: &[&str]) {
    env.conversations()
        .await
        .update_workspace_settings(env.req(pb::UpdateWorkspaceSettingsRequest {
            settings: Some(pb::WorkspaceSettings {
                closing_note_policy: policy as i32,
                closing_categories: categories.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["closing_categories".into(), "closing_note_policy".into()],
            }),
        }))
        .await
        .expect("update the settings");
}

async fn each_manual_source_closes_and_is_recorded(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    for source in [
        pb::CloseSource::User,
        pb::CloseSource::Workflow,
        pb::CloseSource::Bot,
        pb::CloseSource::AiAgent,
        pb::CloseSource::Api,
    ] {
        let contact = env.new_contact().await;
        let open = env.inbound(&contact).await;
        let closed = env.close(&open.conversation_id, source).await.unwrap();
        assert_eq!(closed.status, pb::ConversationStatus::Closed as i32);
        assert_eq!(closed.closed_by, source as i32, "{source:?}");
    }
    for automatic in [pb::CloseSource::AutoClose, pb::CloseSource::ContactMerge] {
        let contact = env.new_contact().await;
        let open = env.inbound(&contact).await;
        assert_invalid_field(env.close(&open.conversation_id, automatic).await, "source");
    }
}

async fn closing_a_closed_conversation_fails_and_a_retried_close_is_not_doubled(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let close = || {
        env.req(pb::CloseConversationRequest {
            conversation_id: open.conversation_id.clone(),
            source: pb::CloseSource::User as i32,
            request_id: request_id.clone(),
            ..Default::default()
        })
    };
    let mut client = env.conversations().await;
    let first = client
        .close_conversation(close())
        .await
        .unwrap()
        .into_inner();
    env.clock.advance(Duration::from_secs(5));
    let retried = client
        .close_conversation(close())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retried, "a retry answers as the first call did");
    let status = assert_code(
        env.close(&open.conversation_id, pb::CloseSource::Workflow)
            .await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        error_info_value(&status, "conversation_id"),
        Some(open.conversation_id.clone())
    );
    assert_eq!(kinds(&env.events().await), ["opened", "message", "closed"]);
}

async fn closing_notes_follow_the_workspace_policy(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    set_policy(
        &env,
        pb::ClosingNotePolicy::CategoryAndSummaryRequired,
        &["Sale", "Support"],
    )
    .await;
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    let close = |category: &str, summary: &str| {
        env.req(pb::CloseConversationRequest {
            conversation_id: open.conversation_id.clone(),
            source: pb::CloseSource::User as i32,
            category: category.into(),
            summary: summary.into(),
            ..Default::default()
        })
    };
    assert_invalid_field(
        client.close_conversation(close("", "sold")).await,
        "category",
    );
    assert_invalid_field(
        client.close_conversation(close("Sale", "")).await,
        "summary",
    );
    assert_invalid_field(
        client.close_conversation(close("Refund", "x")).await,
        "category",
    );
    assert_eq!(
        env.get(&open.conversation_id).await.status,
        pb::ConversationStatus::Open as i32,
        "refused closes change nothing"
    );
    let closed = client
        .close_conversation(close("Sale", "Sold the pro plan"))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(
        closed.closing_note,
        Some(pb::ClosingNote {
            category: "Sale".into(),
            summary: "Sold the pro plan".into()
        })
    );

    set_policy(&env, pb::ClosingNotePolicy::Disabled, &[]).await;
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    let closed = client
        .close_conversation(env.req(pb::CloseConversationRequest {
            conversation_id: open.conversation_id.clone(),
            source: pb::CloseSource::Bot as i32,
            category: "anything".into(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(
        closed.closing_note,
        Some(pb::ClosingNote::default()),
        "a disabled policy drops notes"
    );
}

async fn the_close_event_carries_everything_the_metrics_need(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    set_policy(&env, pb::ClosingNotePolicy::Optional, &["Support"]).await;
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    env.clock.advance(Duration::from_secs(60));
    env.conversations()
        .await
        .assign_conversation(env.req(pb::AssignConversationRequest {
            conversation_id: open.conversation_id.clone(),
            assignee_user_id: "ana".into(),
            team_id: "support".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    env.clock.advance(Duration::from_secs(60));
    env.reply(&contact).await;
    env.clock.advance(Duration::from_secs(600));
    env.conversations()
        .await
        .close_conversation(env.req(pb::CloseConversationRequest {
            conversation_id: open.conversation_id.clone(),
            source: pb::CloseSource::Workflow as i32,
            actor_id: "wf-9".into(),
            category: "Support".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let events = env.events().await;
    let closed_event = events.last().unwrap();
    assert_eq!(closed_event.conversation_id, open.conversation_id);
    assert_eq!(closed_event.contact_id, contact);
    let Some(pb::conversation_event::Payload::Closed(closed)) = &closed_event.payload else {
        panic!("the last event is the close");
    };
    let seconds = |d: &Option<prost_types::Duration>| d.as_ref().map(|d| d.seconds);
    assert_eq!(closed.opened_by, pb::OpenSource::InboundMessage as i32);
    assert_eq!(closed.closed_by, pb::CloseSource::Workflow as i32);
    assert_eq!(closed.closed_by_id, "wf-9");
    assert_eq!(seconds(&closed.resolution_time), Some(720));
    assert_eq!(seconds(&closed.first_response_time), Some(120));
    assert_eq!(
        closed
            .response_times
            .iter()
            .map(|d| d.seconds)
            .collect::<Vec<_>>(),
        [120]
    );
    assert_eq!(seconds(&closed.time_to_first_assignment), Some(60));
    assert_eq!(
        (closed.assignee_user_id.as_str(), closed.team_id.as_str()),
        ("ana", "support")
    );
    assert_eq!(closed.closing_category, "Support");
    assert_eq!(closed.assignment_count, 1);
    assert_eq!(closed.channel, Some(crate::helpers::whatsapp()));
    let counts = closed.message_counts.unwrap();
    assert_eq!(
        (
            counts.inbound_count,
            counts.user_outbound_count,
            counts.response_count
        ),
        (1, 1, 1)
    );
    let sequences: Vec<u64> = events.iter().map(|e| e.sequence).collect();
    assert!(
        sequences.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "no gaps: {sequences:?}"
    );
}
