//! Reads: the open conversation of a contact, filtered pages, settings.

use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{
    Backend, assert_code, assert_invalid_field, backend_tests, in_workspace, resource_info,
};
use tonic::Code;

use crate::helpers::spawn_env;

backend_tests!(
    the_open_conversation_of_a_contact_can_be_read,
    lists_page_newest_first_and_filter,
    settings_default_to_optional_notes_and_no_auto_close,
    the_stream_says_how_far_behind_a_reader_is,
    a_conversations_own_events_page_in_order_within_its_workspace,
    events_written_before_the_event_index_are_listed_after_a_restart,
);

async fn the_stream_says_how_far_behind_a_reader_is(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    env.inbound(&contact).await;
    env.reply(&contact).await;
    let mut stream = env
        .conversations()
        .await
        .stream_conversation_events(pb::StreamConversationEventsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.event.unwrap().sequence, 1);
    assert_eq!(
        first.partition_head, 3,
        "opened, two messages: two more to read"
    );
}

async fn the_open_conversation_of_a_contact_can_be_read(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let contact = env.new_contact().await;
    let get_open = |contact: &str| {
        env.req(pb::GetOpenConversationRequest {
            contact_id: contact.to_owned(),
            ..Default::default()
        })
    };
    let none = client
        .get_open_conversation(get_open(&contact))
        .await
        .expect("a known contact with nothing open is an answer, not an error")
        .into_inner();
    assert_eq!(none.conversation, None);
    let open = env.inbound(&contact).await;
    let found = client
        .get_open_conversation(get_open(&contact))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        found.conversation.unwrap(),
        env.get(&open.conversation_id).await
    );
    let stranger = uuid::Uuid::now_v7().to_string();
    let status = assert_code(
        client.get_open_conversation(get_open(&stranger)).await,
        Code::NotFound,
    );
    assert_eq!(
        resource_info(&status),
        Some(("charla.contact.v1.Contact".to_owned(), stranger)),
        "the unknown contact is named: {status:?}"
    );
}

async fn lists_page_newest_first_and_filter(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let mut opened = Vec::new();
    let mut contacts = Vec::new();
    for _ in 0..5 {
        let contact = env.new_contact().await;
        opened.push(env.inbound(&contact).await.conversation_id);
        contacts.push(contact);
    }
    env.close(&opened[1], pb::CloseSource::User).await.unwrap();
    client
        .assign_conversation(env.req(pb::AssignConversationRequest {
            conversation_id: opened[2].clone(),
            assignee_user_id: "ana".into(),
            ..Default::default()
        }))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_conversations(env.req(pb::ListConversationsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.conversations.into_iter().map(|c| c.conversation_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut newest_first = opened.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let ids = |request: pb::ListConversationsRequest| {
        let mut client = client.clone();
        let request = env.req(request);
        async move {
            let page = client
                .list_conversations(request)
                .await
                .unwrap()
                .into_inner();
            page.conversations
                .into_iter()
                .map(|c| c.conversation_id)
                .collect::<Vec<_>>()
        }
    };
    let closed = pb::ListConversationsRequest {
        status: pb::ConversationStatus::Closed as i32,
        ..Default::default()
    };
    assert_eq!(ids(closed).await, [opened[1].clone()]);
    let by_assignee = pb::ListConversationsRequest {
        assignee_user_id: "ana".into(),
        ..Default::default()
    };
    assert_eq!(ids(by_assignee).await, [opened[2].clone()]);
    let by_contact = pb::ListConversationsRequest {
        contact_id: contacts[3].clone(),
        ..Default::default()
    };
    assert_eq!(ids(by_contact).await, [opened[3].clone()]);
    let sms = pb::ListConversationsRequest {
        channel_type: charla_proto::charla::contact::v1::ChannelType::Sms as i32,
        ..Default::default()
    };
    assert!(ids(sms).await.is_empty());
}

async fn settings_default_to_optional_notes_and_no_auto_close(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let settings = env
        .conversations()
        .await
        .get_workspace_settings(env.req(pb::GetWorkspaceSettingsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(
        settings.closing_note_policy,
        pb::ClosingNotePolicy::Optional as i32
    );
    assert!(settings.closing_categories.is_empty());
    assert_eq!(
        settings.auto_close_after,
        Some(prost_types::Duration::default())
    );
    assert_eq!(settings.workspace_id, env.workspace.to_string());
}

async fn a_conversations_own_events_page_in_order_within_its_workspace(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let contact = env.new_contact().await;
    let other = env.new_contact().await;
    let id = env.inbound(&contact).await.conversation_id;
    // Another conversation's events interleave with this one's; they are not listed.
    env.inbound(&other).await;
    env.reply(&contact).await;
    env.reply(&other).await;
    env.close(&id, pb::CloseSource::User).await.unwrap();
    let page = |token: String, size: i32| {
        env.req(pb::ListConversationEventsRequest {
            conversation_id: id.clone(),
            page_size: size,
            page_token: token,
        })
    };
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let answer = client
            .list_conversation_events(page(token, 2))
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(answer.events.len() <= 2);
        listed.extend(answer.events);
        if answer.next_page_token.is_empty() {
            break;
        }
        token = answer.next_page_token;
    }
    assert_eq!(pages, 2, "four events in pages of two");
    assert_eq!(
        crate::helpers::kinds(&listed),
        ["opened", "message", "message", "closed"]
    );
    assert!(listed.iter().all(|event| event.conversation_id == id));
    let sequences: Vec<u64> = listed.iter().map(|event| event.sequence).collect();
    assert_eq!(
        sequences,
        [1, 2, 5, 7],
        "numbered among the workspace's events, as a scoped stream numbers them"
    );
    // The same events as the workspace's stream, byte for byte but for the numbering.
    let streamed: Vec<pb::ConversationEvent> = env
        .events()
        .await
        .into_iter()
        .filter(|event| event.conversation_id == id)
        .collect();
    assert_eq!(listed, streamed);

    let elsewhere = in_workspace(
        uuid::Uuid::now_v7(),
        pb::ListConversationEventsRequest {
            conversation_id: id.clone(),
            ..Default::default()
        },
    );
    assert_code(
        client.list_conversation_events(elsewhere).await,
        Code::NotFound,
    );
    assert_invalid_field(
        client.list_conversation_events(page("42".into(), 2)).await,
        "page_token",
    );
    assert_invalid_field(
        client
            .list_conversation_events(page(String::new(), -1))
            .await,
        "page_size",
    );
}

async fn events_written_before_the_event_index_are_listed_after_a_restart(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let id = env.inbound(&contact).await.conversation_id;
    env.reply(&contact).await;
    let list = |env: &crate::helpers::TestEnv| {
        let request = env.req(pb::ListConversationEventsRequest {
            conversation_id: id.clone(),
            ..Default::default()
        });
        let address = env.conversation_addr;
        async move {
            pb::conversation_service_client::ConversationServiceClient::new(
                charla_testing::connect(format!("http://{address}")).await,
            )
            .list_conversation_events(request)
            .await
            .unwrap()
            .into_inner()
            .events
        }
    };
    let before = list(&env).await;
    assert_eq!(
        crate::helpers::kinds(&before),
        ["opened", "message", "message"]
    );
    // As a database upgraded from a release without the index: events, but none indexed.
    let db = charla_runtime::db::Database::connect(
        &env.conversation_db,
        &charla_conversation::store::MIGRATIONS,
    )
    .await
    .unwrap();
    for sql in [
        "DELETE FROM conversation_events",
        "DELETE FROM conversation_events_backfilled",
    ] {
        sqlx::query(sql).execute(db.pool()).await.unwrap();
    }
    assert!(list(&env).await.is_empty());
    env.restart_conversation().await;
    assert_eq!(list(&env).await, before, "indexed once at start-up");
}
