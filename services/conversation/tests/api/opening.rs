//! Opening: by inbound message, user, workflow, API and welcome event; one open per contact.

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests, error_info_value};
use tonic::Code;

use crate::helpers::{channel, kinds, spawn_env, whatsapp};

backend_tests!(
    an_inbound_message_with_no_open_conversation_opens_one,
    an_inbound_message_while_one_is_open_attaches_to_it,
    a_user_cannot_open_a_second_conversation_and_is_told_which_is_open,
    a_retried_open_with_its_request_id_answers_the_first_result,
    workflow_and_api_opens_return_the_open_conversation,
    a_welcome_event_opens_only_on_messenger_and_viber_and_only_when_none_is_open,
    a_closed_conversation_is_never_reopened,
    concurrent_inbound_messages_for_a_new_contact_open_exactly_one_conversation,
);

async fn open(
    env: &crate::helpers::TestEnv,
    contact: &str,
    source: pb::OpenSource,
) -> Result<pb::OpenConversationResponse, tonic::Status> {
    env.conversations()
        .await
        .open_conversation(env.req(pb::OpenConversationRequest {
            contact_id: contact.into(),
            channel: Some(whatsapp()),
            source: source as i32,
            actor_id: "agent-ana".into(),
            request_id: String::new(),
        }))
        .await
        .map(tonic::Response::into_inner)
}

async fn an_inbound_message_with_no_open_conversation_opens_one(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let response = env
        .message(&contact, pb::AuthorKind::Contact, "wamid.1")
        .await
        .unwrap();
    assert!(response.recorded && response.opened_conversation);
    let conversation = response.conversation.unwrap();
    assert_eq!(conversation.status, pb::ConversationStatus::Open as i32);
    assert_eq!(
        conversation.opened_by,
        pb::OpenSource::InboundMessage as i32
    );
    assert_eq!(conversation.contact_id, contact);
    assert_eq!(conversation.channel, Some(whatsapp()));
    assert_eq!(conversation.message_counts.unwrap().inbound_count, 1);
    assert_eq!(kinds(&env.events().await), ["opened", "message"]);
}

async fn an_inbound_message_while_one_is_open_attaches_to_it(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let first = env.inbound(&contact).await;
    let response = env
        .message(&contact, pb::AuthorKind::Contact, "second")
        .await
        .unwrap();
    assert!(!response.opened_conversation);
    let second = response.conversation.unwrap();
    assert_eq!(second.conversation_id, first.conversation_id);
    assert_eq!(second.message_counts.unwrap().inbound_count, 2);
}

async fn a_user_cannot_open_a_second_conversation_and_is_told_which_is_open(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let opened = open(&env, &contact, pb::OpenSource::User).await.unwrap();
    assert!(opened.opened);
    let conversation = opened.conversation.unwrap();
    assert_eq!(conversation.opened_by, pb::OpenSource::User as i32);
    assert_eq!(conversation.opened_by_id, "agent-ana");
    let status = assert_code(
        open(&env, &contact, pb::OpenSource::User).await,
        Code::FailedPrecondition,
    );
    assert_eq!(
        error_info_value(&status, "conversation_id"),
        Some(conversation.conversation_id)
    );
}

async fn workflow_and_api_opens_return_the_open_conversation(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let by_workflow = open(&env, &contact, pb::OpenSource::Workflow)
        .await
        .unwrap();
    assert!(by_workflow.opened);
    let by_api = open(&env, &contact, pb::OpenSource::Api).await.unwrap();
    assert!(!by_api.opened);
    assert_eq!(by_api.conversation, by_workflow.conversation);
    let other = env.new_contact().await;
    let api = open(&env, &other, pb::OpenSource::Api).await.unwrap();
    assert_eq!(
        api.conversation.unwrap().opened_by,
        pb::OpenSource::Api as i32
    );
    assert_eq!(kinds(&env.events().await), ["opened", "opened"]);
}

async fn a_welcome_event_opens_only_on_messenger_and_viber_and_only_when_none_is_open(
    backend: Backend,
) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let welcome = |contact: &str, channel_type: ChannelType| {
        env.req(pb::HandleWelcomeEventRequest {
            contact_id: contact.into(),
            channel: Some(channel(channel_type)),
        })
    };
    let contact = env.new_contact().await;
    for refused in [
        ChannelType::Sms,
        ChannelType::Whatsapp,
        ChannelType::Telegram,
    ] {
        assert_invalid_field(
            client
                .handle_welcome_event(welcome(&contact, refused))
                .await,
            "channel.channel_type",
        );
    }
    let opened = client
        .handle_welcome_event(welcome(&contact, ChannelType::FacebookMessenger))
        .await
        .unwrap()
        .into_inner();
    assert!(opened.opened);
    assert_eq!(
        opened.conversation.as_ref().unwrap().opened_by,
        pb::OpenSource::WelcomeEvent as i32
    );
    let again = client
        .handle_welcome_event(welcome(&contact, ChannelType::Viber))
        .await
        .unwrap()
        .into_inner();
    assert!(
        !again.opened,
        "a welcome event while one is open is a no-op"
    );
    assert_eq!(again.conversation, opened.conversation);
    assert_eq!(kinds(&env.events().await), ["opened"]);
}

async fn a_closed_conversation_is_never_reopened(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let first = env.inbound(&contact).await;
    env.close(&first.conversation_id, pb::CloseSource::User)
        .await
        .unwrap();
    let second = env.inbound(&contact).await;
    assert_ne!(second.conversation_id, first.conversation_id);
    assert_eq!(
        env.get(&first.conversation_id).await.status,
        pb::ConversationStatus::Closed as i32
    );
}

async fn concurrent_inbound_messages_for_a_new_contact_open_exactly_one_conversation(
    backend: Backend,
) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let client = env.conversations().await;
    let calls: Vec<_> = (0..50)
        .map(|index| {
            let mut client = client.clone();
            let request = env.req(pb::RecordMessageRequest {
                message_id: format!("burst-{index}"),
                contact_id: contact.clone(),
                channel: Some(whatsapp()),
                direction: pb::MessageDirection::Inbound as i32,
                author_kind: pb::AuthorKind::Contact as i32,
                ..Default::default()
            });
            tokio::spawn(async move { client.record_message(request).await.unwrap().into_inner() })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    let mut opened = 0;
    for call in calls {
        let response = call.await.unwrap();
        ids.insert(response.conversation.unwrap().conversation_id);
        opened += usize::from(response.opened_conversation);
    }
    assert_eq!(ids.len(), 1, "one conversation");
    assert_eq!(opened, 1, "one call opened it");
    let events = env.events().await;
    let kinds = kinds(&events);
    assert_eq!(kinds.iter().filter(|k| **k == "opened").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "message").count(), 50);
    let conversation = env.get(ids.first().unwrap()).await;
    assert_eq!(conversation.message_counts.unwrap().inbound_count, 50);
}

async fn a_retried_open_with_its_request_id_answers_the_first_result(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let key = uuid::Uuid::now_v7().to_string();
    let open_with_key = |contact: &str| {
        env.req(pb::OpenConversationRequest {
            contact_id: contact.into(),
            channel: Some(whatsapp()),
            source: pb::OpenSource::User as i32,
            actor_id: "agent-ana".into(),
            request_id: key.clone(),
        })
    };
    let mut client = env.conversations().await;
    let first = client
        .open_conversation(open_with_key(&contact))
        .await
        .unwrap()
        .into_inner();
    let retry = client
        .open_conversation(open_with_key(&contact))
        .await
        .expect("a USER retry with the same key is not FAILED_PRECONDITION")
        .into_inner();
    assert!(first.opened && retry.opened);
    assert_eq!(retry.conversation, first.conversation);
    assert_eq!(kinds(&env.events().await), ["opened"], "opened once");
    let other = env.new_contact().await;
    assert_invalid_field(
        client.open_conversation(open_with_key(&other)).await,
        "request_id",
    );
}
