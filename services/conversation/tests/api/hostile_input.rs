//! Hostile input, case by case: NUL bytes refused by name on both databases, durations and times
//! at every extreme refused without a panic, auto-close deadlines that stop at the year 9999,
//! outbound messages for contacts the workspace doesn't have, unreadable and oversize requests,
//! and megabyte values that errors quote only in part.

use std::time::Duration;

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::test_clock_service_client::TestClockServiceClient;
use charla_testing::raw::{call_raw, call_raw_client_stream};
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests, in_workspace};
use prost::Message;
use tonic::Code;

use crate::helpers::{TestEnv, spawn_env, whatsapp};

backend_tests!(
    text_with_a_nul_is_refused_by_name_and_nothing_is_stored,
    durations_and_times_at_every_extreme_are_refused_by_name,
    an_auto_close_deadline_never_passes_the_year_9999,
    an_outbound_message_for_a_contact_the_workspace_lacks_is_not_found,
    unreadable_and_oversize_requests_are_the_callers_mistake,
    an_error_quotes_only_a_short_prefix_of_a_huge_value,
);

/// Timestamps and durations no caller may send: past protobuf's range, nanos out of range or of
/// the wrong sign, and the extremes of the integers.
const EXTREMES: [(i64, i32); 9] = [
    (i64::MIN, 0),
    (i64::MIN, i32::MIN),
    (i64::MAX, i32::MAX),
    (-1, 0),
    (0, -1),
    (1, -1),
    (0, 1_000_000_000),
    (315_576_000_001, 0),
    (-315_576_000_001, 0),
];

fn message(contact: &str, message_id: &str) -> pb::RecordMessageRequest {
    pb::RecordMessageRequest {
        message_id: message_id.into(),
        contact_id: contact.into(),
        channel: Some(whatsapp()),
        direction: pb::MessageDirection::Outbound as i32,
        author_kind: pb::AuthorKind::User as i32,
        author_id: "agent-ana".into(),
        sent_at: None,
    }
}

fn settings_update(
    settings: pb::WorkspaceSettings,
    path: &str,
) -> pb::UpdateWorkspaceSettingsRequest {
    pb::UpdateWorkspaceSettingsRequest {
        settings: Some(settings),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![path.into()],
        }),
    }
}

async fn clock(env: &TestEnv) -> TestClockServiceClient<charla_testing::auth::TestChannel> {
    TestClockServiceClient::new(
        charla_testing::connect(format!("http://{}", env.conversation_addr)).await,
    )
}

async fn text_with_a_nul_is_refused_by_name_and_nothing_is_stored(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    let id = open.conversation_id.clone();
    let mut client = env.conversations().await;

    let bad_messages = [
        (
            pb::RecordMessageRequest {
                message_id: "wamid\0".into(),
                ..message(&contact, "")
            },
            "message_id",
        ),
        (
            pb::RecordMessageRequest {
                author_id: "agent\0".into(),
                ..message(&contact, "m1")
            },
            "author_id",
        ),
        (
            pb::RecordMessageRequest {
                channel: Some(pb::Channel {
                    channel_id: "wa\0".into(),
                    ..whatsapp()
                }),
                ..message(&contact, "m2")
            },
            "channel.channel_id",
        ),
        (
            pb::RecordMessageRequest {
                contact_id: format!("{contact}\0"),
                ..message(&contact, "m3")
            },
            "contact_id",
        ),
    ];
    for (request, field) in bad_messages {
        assert_invalid_field(client.record_message(env.req(request)).await, field);
    }
    assert_invalid_field(
        client
            .open_conversation(env.req(pb::OpenConversationRequest {
                contact_id: contact.clone(),
                channel: Some(whatsapp()),
                source: pb::OpenSource::Api as i32,
                actor_id: "\0".into(),
                request_id: String::new(),
            }))
            .await,
        "actor_id",
    );
    for (request, field) in [
        (
            pb::CloseConversationRequest {
                category: "Res\0".into(),
                ..Default::default()
            },
            "category",
        ),
        (
            pb::CloseConversationRequest {
                summary: "done\0".into(),
                ..Default::default()
            },
            "summary",
        ),
        (
            pb::CloseConversationRequest {
                actor_id: "ana\0".into(),
                ..Default::default()
            },
            "actor_id",
        ),
    ] {
        let request = pb::CloseConversationRequest {
            conversation_id: id.clone(),
            source: pb::CloseSource::User as i32,
            ..request
        };
        assert_invalid_field(client.close_conversation(env.req(request)).await, field);
    }
    for (request, field) in [
        (
            pb::AssignConversationRequest {
                assignee_user_id: "ana\0".into(),
                ..Default::default()
            },
            "assignee_user_id",
        ),
        (
            pb::AssignConversationRequest {
                team_id: "\0".into(),
                ..Default::default()
            },
            "team_id",
        ),
    ] {
        let request = pb::AssignConversationRequest {
            conversation_id: id.clone(),
            ..request
        };
        assert_invalid_field(client.assign_conversation(env.req(request)).await, field);
    }
    for (request, field) in [
        (
            pb::ListConversationsRequest {
                channel_id: "wa\0".into(),
                ..Default::default()
            },
            "channel_id",
        ),
        (
            pb::ListConversationsRequest {
                assignee_user_id: "\0".into(),
                ..Default::default()
            },
            "assignee_user_id",
        ),
        (
            pb::ListConversationsRequest {
                page_token: format!("{id}\0"),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        assert_invalid_field(client.list_conversations(env.req(request)).await, field);
    }
    assert_invalid_field(
        client
            .update_workspace_settings(env.req(settings_update(
                pb::WorkspaceSettings {
                    closing_categories: vec!["Resolved".into(), "Sp\0am".into()],
                    ..Default::default()
                },
                "closing_categories",
            )))
            .await,
        "settings.closing_categories[1]",
    );
    let item = pb::HistoricalConversation {
        external_id: "zendesk-1\0".into(),
        contact_id: contact.clone(),
        channel: Some(whatsapp()),
        opened_at: Some(prost_types::Timestamp::from(
            crate::helpers::start_time() - Duration::from_secs(3600),
        )),
        opened_by: pb::OpenSource::Api as i32,
        ..Default::default()
    };
    let imported = client
        .import_conversations(env.req(tokio_stream::iter([pb::ImportConversationsRequest {
            conversation: Some(item),
        }])))
        .await
        .unwrap()
        .into_inner();
    let error = imported.results[0].error.clone().expect("refused");
    assert_eq!(error.code, Code::InvalidArgument as i32);
    assert!(
        error.message.starts_with("conversation.external_id:"),
        "{}",
        error.message
    );

    // Nothing of the above was stored: the one conversation, as it was, and default settings.
    assert_eq!(env.get(&id).await, open);
    let conversations = client
        .list_conversations(env.req(pb::ListConversationsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .conversations;
    assert_eq!(conversations, vec![open]);
    let settings = client
        .get_workspace_settings(env.req(pb::GetWorkspaceSettingsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert!(settings.closing_categories.is_empty());
}

async fn durations_and_times_at_every_extreme_are_refused_by_name(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let mut client = env.conversations().await;
    let mut clock = clock(&env).await;
    for (seconds, nanos) in EXTREMES {
        let duration = prost_types::Duration { seconds, nanos };
        assert_invalid_field(
            client
                .update_workspace_settings(env.req(settings_update(
                    pb::WorkspaceSettings {
                        auto_close_after: Some(duration),
                        ..Default::default()
                    },
                    "auto_close_after",
                )))
                .await,
            "settings.auto_close_after",
        );
        assert_invalid_field(
            clock
                .advance_test_clock(pb::AdvanceTestClockRequest {
                    duration: Some(duration),
                })
                .await,
            "duration",
        );
        let time = prost_types::Timestamp { seconds, nanos };
        if (seconds, nanos) == (-1, 0) {
            continue; // a valid instant, one second before 1970
        }
        assert_invalid_field(
            clock
                .set_test_clock(pb::SetTestClockRequest { time: Some(time) })
                .await,
            "time",
        );
        assert_invalid_field(
            client
                .record_message(env.req(pb::RecordMessageRequest {
                    sent_at: Some(time),
                    ..message(&contact, "m")
                }))
                .await,
            "sent_at",
        );
        assert_invalid_field(
            client
                .list_conversations(env.req(pb::ListConversationsRequest {
                    opened_after: Some(time),
                    ..Default::default()
                }))
                .await,
            "opened_after",
        );
    }
    // The server is as it was: the clock where it started, a message recorded normally.
    let now = clock
        .get_test_clock(pb::GetTestClockRequest {})
        .await
        .unwrap()
        .into_inner()
        .now
        .unwrap();
    assert_eq!(
        now,
        prost_types::Timestamp::from(crate::helpers::start_time())
    );
    env.inbound(&contact).await;
}

async fn an_auto_close_deadline_never_passes_the_year_9999(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    client
        .update_workspace_settings(env.req(settings_update(
            pb::WorkspaceSettings {
                auto_close_after: Some(prost_types::Duration {
                    seconds: 14 * 24 * 3600,
                    nanos: 0,
                }),
                ..Default::default()
            },
            "auto_close_after",
        )))
        .await
        .unwrap();
    let last_instant = prost_types::Timestamp {
        seconds: 253_402_300_799,
        nanos: 0,
    };
    let mut clock = clock(&env).await;
    clock
        .set_test_clock(pb::SetTestClockRequest {
            time: Some(prost_types::Timestamp {
                seconds: last_instant.seconds - 24 * 3600,
                nanos: 0,
            }),
        })
        .await
        .unwrap();
    let contact = env.new_contact().await;
    let open = env.inbound(&contact).await;
    let replied = env.reply(&contact).await;
    assert_eq!(
        replied.auto_close_at,
        Some(last_instant),
        "clamped, not 10000-01-13"
    );

    // The deadline still fires, at the last instant the clock can reach.
    clock
        .set_test_clock(pb::SetTestClockRequest {
            time: Some(last_instant),
        })
        .await
        .unwrap();
    let closed = env.get(&open.conversation_id).await;
    assert_eq!(closed.closed_by, pb::CloseSource::AutoClose as i32);
    assert_eq!(closed.closed_at, Some(last_instant));
    assert_invalid_field(
        clock
            .advance_test_clock(pb::AdvanceTestClockRequest {
                duration: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
            })
            .await,
        "duration",
    );
}

async fn an_outbound_message_for_a_contact_the_workspace_lacks_is_not_found(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let unknown = uuid::Uuid::now_v7().to_string();
    for author in [pb::AuthorKind::User, pb::AuthorKind::Bot] {
        let request = pb::RecordMessageRequest {
            author_kind: author as i32,
            ..message(&unknown, &format!("to-nobody-{author:?}"))
        };
        assert_code(
            client.record_message(env.req(request)).await,
            Code::NotFound,
        );
    }

    // A contact of another workspace is unknown here too.
    let elsewhere = uuid::Uuid::now_v7();
    let theirs = env
        .contacts()
        .await
        .resolve_contact(in_workspace(
            elsewhere,
            charla_proto::charla::contact::v1::ResolveContactRequest {
                identity: Some(charla_proto::charla::contact::v1::ChannelIdentity {
                    channel_type: charla_proto::charla::contact::v1::ChannelType::Whatsapp as i32,
                    channel_id: "wa-main".into(),
                    external_id: "593990000001".into(),
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
    assert_code(
        client
            .record_message(env.req(message(&theirs, "to-their-contact")))
            .await,
        Code::NotFound,
    );

    // The workspace's own contact, with nothing open: kept on its own, and a retry is a no-op.
    let ours = env.new_contact().await;
    for recorded in [true, false] {
        let answer = client
            .record_message(env.req(message(&ours, "broadcast-1")))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(answer.recorded, recorded);
        assert_eq!(answer.conversation, None);
    }
}

async fn unreadable_and_oversize_requests_are_the_callers_mistake(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    const SERVICE: &str = "/charla.conversation.v1.ConversationService";
    let addr = env.conversation_addr;
    let garbage = vec![0xff, 0x01, 0x0b];
    for (method, streaming) in [
        (format!("{SERVICE}/RecordMessage"), false),
        (format!("{SERVICE}/StreamConversationEvents"), true),
        (
            "/charla.conversation.v1.TestClockService/AdvanceTestClock".to_owned(),
            false,
        ),
    ] {
        assert_code(
            call_raw(addr, &method, streaming, garbage.clone(), env.workspace).await,
            Code::InvalidArgument,
        );
    }
    let item = pb::ImportConversationsRequest::default().encode_to_vec();
    assert_code(
        call_raw_client_stream(
            addr,
            &format!("{SERVICE}/ImportConversations"),
            vec![item, garbage],
            env.workspace,
        )
        .await,
        Code::InvalidArgument,
    );
    let contact = env.new_contact().await;
    assert_code(
        env.conversations()
            .await
            .record_message(env.req(message(&contact, &"m".repeat(5 << 20))))
            .await,
        Code::ResourceExhausted,
    );
}

async fn an_error_quotes_only_a_short_prefix_of_a_huge_value(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let status = env
        .conversations()
        .await
        .update_workspace_settings(env.req(settings_update(
            pb::WorkspaceSettings::default(),
            &"p".repeat(1 << 20),
        )))
        .await
        .expect_err("not a field");
    assert!(status.message().len() < 1024, "{}", status.message().len());
    assert!(status.details().len() < 1024);
    assert_invalid_field(Err::<(), _>(status), "update_mask");
}
