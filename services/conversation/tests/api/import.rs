//! ImportConversations: history checked against the lifecycle rules, one result per item,
//! idempotent by external id, written as the same events a live conversation writes.

use std::time::Duration;

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, backend_tests};
use tonic::Code;

use crate::helpers::{TestEnv, channel, kinds, spawn_env, start_time, whatsapp};

backend_tests!(
    importing_the_same_history_twice_changes_nothing,
    bad_items_are_refused_naming_the_field_while_good_ones_land,
);

fn ago(hours: u64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp::from(
        start_time() - Duration::from_secs(hours * 3600),
    ))
}

fn closed_item(
    external_id: &str,
    contact: &str,
    from_hours_ago: u64,
    to_hours_ago: u64,
) -> pb::HistoricalConversation {
    pb::HistoricalConversation {
        external_id: external_id.into(),
        contact_id: contact.into(),
        channel: Some(whatsapp()),
        opened_at: ago(from_hours_ago),
        opened_by: pb::OpenSource::InboundMessage as i32,
        messages: vec![
            pb::HistoricalMessage {
                message_id: format!("{external_id}-in"),
                sent_at: ago(from_hours_ago),
                direction: pb::MessageDirection::Inbound as i32,
                author_kind: pb::AuthorKind::Contact as i32,
                author_id: String::new(),
            },
            pb::HistoricalMessage {
                message_id: format!("{external_id}-out"),
                sent_at: ago(from_hours_ago - 1),
                direction: pb::MessageDirection::Outbound as i32,
                author_kind: pb::AuthorKind::User as i32,
                author_id: "ana".into(),
            },
        ],
        assignments: vec![pb::HistoricalAssignment {
            assigned_at: ago(from_hours_ago),
            assignee_user_id: "ana".into(),
            team_id: "sales".into(),
            actor_id: String::new(),
        }],
        closed_at: ago(to_hours_ago),
        closed_by: pb::CloseSource::User as i32,
        closing_category: String::new(),
        ..Default::default()
    }
}

async fn import(
    env: &TestEnv,
    items: Vec<pb::HistoricalConversation>,
) -> pb::ImportConversationsResponse {
    let requests: Vec<_> = items
        .into_iter()
        .map(|conversation| pb::ImportConversationsRequest {
            conversation: Some(conversation),
        })
        .collect();
    env.conversations()
        .await
        .import_conversations(env.req(tokio_stream::iter(requests)))
        .await
        .expect("the import call succeeds as a whole")
        .into_inner()
}

async fn importing_the_same_history_twice_changes_nothing(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let mut open_item = closed_item("rio-3", &contact, 5, 0);
    open_item.closed_at = None;
    open_item.closed_by = 0;
    let items = vec![
        closed_item("rio-1", &contact, 30, 20),
        closed_item("rio-2", &contact, 10, 8),
        open_item,
    ];
    let first = import(&env, items.clone()).await;
    assert_eq!(
        (
            first.imported_count,
            first.unchanged_count,
            first.refused_count
        ),
        (3, 0, 0),
        "{first:?}"
    );
    let events_after_first = env.events().await;
    let second = import(&env, items).await;
    assert_eq!(
        (
            second.imported_count,
            second.unchanged_count,
            second.refused_count
        ),
        (0, 3, 0)
    );
    let ids = |response: &pb::ImportConversationsResponse| {
        response
            .results
            .iter()
            .map(|r| r.conversation_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(
        env.events().await.len(),
        events_after_first.len(),
        "no new events"
    );

    let imported = env.get(&first.results[0].conversation_id).await;
    assert!(imported.imported);
    assert_eq!(imported.external_id, "rio-1");
    assert_eq!(imported.opened_at, ago(30));
    assert_eq!(imported.closed_at, ago(20));
    assert_eq!(imported.first_response_at, ago(29));
    assert_eq!(imported.assignee_user_id, "ana");
    let open = env.get(&first.results[2].conversation_id).await;
    assert_eq!(
        open.status,
        pb::ConversationStatus::Open as i32,
        "the latest may stay open"
    );
    let history = &events_after_first;
    assert!(history.iter().all(|event| event.imported));
    assert_eq!(
        kinds(&history[..5]),
        ["opened", "assigned", "message", "message", "closed"],
        "the same events as a live conversation"
    );
    assert_eq!(history[0].occurred_at, ago(30), "at their historical times");
    // A live inbound message now attaches to the imported open conversation.
    assert_eq!(
        env.inbound(&contact).await.conversation_id,
        first.results[2].conversation_id
    );
}

async fn bad_items_are_refused_naming_the_field_while_good_ones_land(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let other = env.new_contact().await;
    let good = closed_item("ok-1", &contact, 50, 40);
    let overlapping = closed_item("bad-overlap", &contact, 45, 30);
    let mut message_outside = closed_item("bad-message", &other, 50, 40);
    message_outside.messages[1].sent_at = ago(39);
    let mut closed_before_open = closed_item("bad-close", &other, 20, 21);
    closed_before_open.messages.clear();
    closed_before_open.assignments.clear();
    let mut unknown_category = closed_item("bad-category", &other, 30, 25);
    unknown_category.closing_category = "Refund".into();
    let mut welcome_on_sms = closed_item("bad-welcome", &other, 12, 11);
    welcome_on_sms.channel = Some(channel(ChannelType::Sms));
    welcome_on_sms.opened_by = pb::OpenSource::WelcomeEvent as i32;
    let mut unknown_contact = closed_item("bad-contact", &uuid::Uuid::now_v7().to_string(), 9, 8);
    unknown_contact.messages.clear();
    let good_too = closed_item("ok-2", &other, 7, 6);
    let response = import(
        &env,
        vec![
            good,
            overlapping,
            message_outside,
            closed_before_open,
            unknown_category,
            welcome_on_sms,
            unknown_contact,
            good_too,
        ],
    )
    .await;
    let outcome: Vec<(String, i32, String)> = response
        .results
        .iter()
        .map(|r| {
            let error = r.error.clone().unwrap_or_default();
            (
                r.external_id.clone(),
                error.code,
                error.message.split(':').next().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let invalid = Code::InvalidArgument as i32;
    assert_eq!(
        outcome,
        [
            ("ok-1".to_owned(), 0, String::new()),
            (
                "bad-overlap".to_owned(),
                invalid,
                "conversation.opened_at".to_owned()
            ),
            (
                "bad-message".to_owned(),
                invalid,
                "conversation.messages[1].sent_at".to_owned()
            ),
            (
                "bad-close".to_owned(),
                invalid,
                "conversation.closed_at".to_owned()
            ),
            (
                "bad-category".to_owned(),
                invalid,
                "conversation.closing_category".to_owned()
            ),
            (
                "bad-welcome".to_owned(),
                invalid,
                "conversation.opened_by".to_owned()
            ),
            (
                "bad-contact".to_owned(),
                Code::NotFound as i32,
                outcome[6].2.clone()
            ),
            ("ok-2".to_owned(), 0, String::new()),
        ]
    );
    assert_eq!((response.imported_count, response.refused_count), (2, 6));
    let listed = env
        .conversations()
        .await
        .list_conversations(env.req(pb::ListConversationsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.conversations.len(), 2, "refused items wrote nothing");
}
