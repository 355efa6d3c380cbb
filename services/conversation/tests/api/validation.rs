//! Bad input: each refusal names its field and code, and writes nothing.

use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use tonic::Code;

use crate::helpers::{spawn_env, whatsapp};

backend_tests!(
    calls_without_a_workspace_are_unauthenticated,
    bad_ids_and_unknown_conversations_are_named,
    bad_message_fields_are_named,
    bad_open_and_close_requests_are_named,
    settings_out_of_bounds_are_refused,
);

async fn calls_without_a_workspace_are_unauthenticated(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    assert_code(
        env.conversations()
            .await
            .list_conversations(charla_testing::with_token(
                "not-a-jwt",
                pb::ListConversationsRequest::default(),
            ))
            .await,
        Code::Unauthenticated,
    );
}

async fn bad_ids_and_unknown_conversations_are_named(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    assert_invalid_field(
        client
            .get_conversation(env.req(pb::GetConversationRequest {
                conversation_id: "x".into(),
            }))
            .await,
        "conversation_id",
    );
    assert_code(
        client
            .get_conversation(env.req(pb::GetConversationRequest {
                conversation_id: uuid::Uuid::now_v7().to_string(),
            }))
            .await,
        Code::NotFound,
    );
    assert_code(
        env.close(&uuid::Uuid::now_v7().to_string(), pb::CloseSource::User)
            .await,
        Code::NotFound,
    );
    assert_invalid_field(
        env.message("not-a-uuid", pb::AuthorKind::Contact, "m")
            .await,
        "contact_id",
    );
    assert_invalid_field(
        client
            .list_conversations(env.req(pb::ListConversationsRequest {
                page_size: 5000,
                ..Default::default()
            }))
            .await,
        "page_size",
    );
    assert_invalid_field(
        client
            .list_conversations(env.req(pb::ListConversationsRequest {
                status: 9,
                ..Default::default()
            }))
            .await,
        "status",
    );
}

async fn bad_message_fields_are_named(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let contact = env.new_contact().await;
    let good = pb::RecordMessageRequest {
        message_id: "m-1".into(),
        contact_id: contact.clone(),
        channel: Some(whatsapp()),
        direction: pb::MessageDirection::Inbound as i32,
        author_kind: pb::AuthorKind::Contact as i32,
        ..Default::default()
    };
    let cases = [
        (
            pb::RecordMessageRequest {
                message_id: String::new(),
                ..good.clone()
            },
            "message_id",
        ),
        (
            pb::RecordMessageRequest {
                message_id: "x".repeat(257),
                ..good.clone()
            },
            "message_id",
        ),
        (
            pb::RecordMessageRequest {
                channel: None,
                ..good.clone()
            },
            "channel",
        ),
        (
            pb::RecordMessageRequest {
                channel: Some(pb::Channel {
                    channel_type: 0,
                    channel_id: "a".into(),
                }),
                ..good.clone()
            },
            "channel.channel_type",
        ),
        (
            pb::RecordMessageRequest {
                channel: Some(pb::Channel {
                    channel_type: 3,
                    channel_id: String::new(),
                }),
                ..good.clone()
            },
            "channel.channel_id",
        ),
        (
            pb::RecordMessageRequest {
                direction: 0,
                ..good.clone()
            },
            "direction",
        ),
        (
            pb::RecordMessageRequest {
                author_kind: 42,
                ..good.clone()
            },
            "author_kind",
        ),
        (
            pb::RecordMessageRequest {
                author_kind: pb::AuthorKind::User as i32,
                ..good.clone()
            },
            "author_kind",
        ),
    ];
    for (request, field) in cases {
        assert_invalid_field(client.record_message(env.req(request)).await, field);
    }
    let listed = client
        .list_conversations(env.req(pb::ListConversationsRequest::default()))
        .await
        .unwrap();
    assert!(
        listed.into_inner().conversations.is_empty(),
        "refused messages wrote nothing"
    );
}

async fn bad_open_and_close_requests_are_named(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let contact = env.new_contact().await;
    let open = |source: i32, contact_id: &str| {
        env.req(pb::OpenConversationRequest {
            contact_id: contact_id.into(),
            channel: Some(whatsapp()),
            source,
            ..Default::default()
        })
    };
    assert_invalid_field(client.open_conversation(open(77, &contact)).await, "source");
    assert_invalid_field(client.open_conversation(open(0, &contact)).await, "source");
    assert_invalid_field(
        client
            .open_conversation(open(pb::OpenSource::InboundMessage as i32, &contact))
            .await,
        "source",
    );
    assert_invalid_field(
        client
            .open_conversation(open(pb::OpenSource::User as i32, ""))
            .await,
        "contact_id",
    );
    let conversation = env.inbound(&contact).await;
    let close = |source: i32, request_id: &str| {
        env.req(pb::CloseConversationRequest {
            conversation_id: conversation.conversation_id.clone(),
            source,
            request_id: request_id.into(),
            ..Default::default()
        })
    };
    assert_invalid_field(client.close_conversation(close(99, "")).await, "source");
    assert_invalid_field(
        client
            .close_conversation(close(pb::CloseSource::User as i32, "nope"))
            .await,
        "request_id",
    );
    assert_eq!(
        env.get(&conversation.conversation_id).await.status,
        pb::ConversationStatus::Open as i32
    );
}

async fn settings_out_of_bounds_are_refused(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let update = |settings: pb::WorkspaceSettings, paths: &[&str]| {
        env.req(pb::UpdateWorkspaceSettingsRequest {
            settings: Some(settings),
            update_mask: Some(prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
        })
    };
    let minutes = |m: i64| {
        Some(prost_types::Duration {
            seconds: m * 60,
            nanos: 0,
        })
    };
    for too_short_or_long in [minutes(29), minutes(14 * 24 * 60 + 1)] {
        assert_invalid_field(
            client
                .update_workspace_settings(update(
                    pb::WorkspaceSettings {
                        auto_close_after: too_short_or_long,
                        ..Default::default()
                    },
                    &["auto_close_after"],
                ))
                .await,
            "settings.auto_close_after",
        );
    }
    assert_invalid_field(
        client
            .update_workspace_settings(update(
                pb::WorkspaceSettings {
                    closing_note_policy: pb::ClosingNotePolicy::CategoryRequired as i32,
                    ..Default::default()
                },
                &["closing_note_policy"],
            ))
            .await,
        "settings.closing_categories",
    );
    assert_invalid_field(
        client
            .update_workspace_settings(update(pb::WorkspaceSettings::default(), &["workspace_id"]))
            .await,
        "update_mask",
    );
    assert_invalid_field(
        client
            .update_workspace_settings(update(
                pb::WorkspaceSettings {
                    closing_note_policy: 12,
                    ..Default::default()
                },
                &["closing_note_policy"],
            ))
            .await,
        "settings.closing_note_policy",
    );
}
