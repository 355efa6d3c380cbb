//! ImportConversations: history checked against the lifecycle rules, one result per item,
//! idempotent by external id, written as the same events a live conversation writes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, backend_tests};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::helpers::{TestEnv, channel, kinds, spawn_env, start_time, whatsapp};

backend_tests!(
    importing_the_same_history_twice_changes_nothing,
    bad_items_are_refused_naming_the_field_while_good_ones_land,
    thousands_of_small_items_one_per_frame_keep_the_connection,
    on_shutdown_an_import_answers_with_exactly_the_items_it_wrote,
    items_written_together_are_answered_as_if_written_one_by_one,
    a_batch_mixing_known_and_unknown_contacts_refuses_only_the_unknown_ones,
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
    import_requests(env, requests).await
}

async fn import_requests(
    env: &TestEnv,
    requests: Vec<pb::ImportConversationsRequest>,
) -> pb::ImportConversationsResponse {
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

/// The `index`th of a contact's short closed conversations, a minute long, two minutes apart,
/// going back in time: small items that never overlap.
fn short_item(contact: &str, index: u64) -> pb::ImportConversationsRequest {
    let at = |seconds_ago: u64| {
        Some(prost_types::Timestamp::from(
            start_time() - Duration::from_secs(seconds_ago),
        ))
    };
    let opened = 120 * (index + 1);
    pb::ImportConversationsRequest {
        conversation: Some(pb::HistoricalConversation {
            external_id: format!("s{index}"),
            contact_id: contact.into(),
            channel: Some(whatsapp()),
            opened_at: at(opened),
            opened_by: pb::OpenSource::Api as i32,
            closed_at: at(opened - 60),
            closed_by: pb::CloseSource::Api as i32,
            ..Default::default()
        }),
    }
}

/// Every conversation of the test's workspace, by id.
async fn stored_ids(env: &TestEnv) -> HashSet<String> {
    let mut client = env.conversations().await;
    let mut ids = HashSet::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_conversations(env.req(pb::ListConversationsRequest {
                page_size: 1000,
                page_token: page_token.clone(),
                ..Default::default()
            }))
            .await
            .expect("list conversations")
            .into_inner();
        ids.extend(page.conversations.into_iter().map(|c| c.conversation_id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}

/// Each result is the item at its position, in order: the answer covers a prefix of the stream.
fn assert_results_follow_items(
    response: &pb::ImportConversationsResponse,
    items: &[pb::ImportConversationsRequest],
) {
    for (index, result) in response.results.iter().enumerate() {
        assert_eq!(result.item as usize, index);
        let sent = items[index].conversation.as_ref().unwrap();
        assert_eq!(result.external_id, sent.external_id);
        assert_eq!(result.outcome(), pb::ImportOutcome::Imported, "{result:?}");
    }
}

/// grpcio sends each item of a client stream in a DATA frame of its own. h2 closes a connection
/// holding too many small frames unread (GOAWAY "too_many_data_frames"), which an import whose
/// items arrive faster than they are written used to reach.
async fn thousands_of_small_items_one_per_frame_keep_the_connection(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let items: Vec<_> = (0..5000).map(|i| short_item(&contact, i)).collect();
    // tonic packs the items that are ready into one frame; a pause between items sends each alone.
    let one_per_frame = tokio_stream::iter(items.clone()).then(|item| async {
        tokio::task::yield_now().await;
        item
    });
    let mut request = env.req(one_per_frame);
    // A short deadline keeps the test short: the import answers before it with what it wrote.
    request.set_timeout(Duration::from_secs(3));
    let mut client = env.conversations().await;
    let response = client
        .import_conversations(request)
        .await
        .expect("the connection survives the small frames")
        .into_inner();
    let handled = response.results.len();
    assert!(handled > 0);
    // Every item handled before the deadline may still come with `stopped_early`: the server
    // stopped reading before it saw the stream's end, and can't know nothing followed.
    assert!(response.stopped_early || handled == items.len());
    assert_eq!(response.imported_count as usize, handled);
    assert_results_follow_items(&response, &items);
    assert_eq!(stored_ids(&env).await.len(), handled);
    // The same connection still serves calls.
    client
        .get_conversation(env.req(pb::GetConversationRequest {
            conversation_id: response.results[0].conversation_id.clone(),
        }))
        .await
        .expect("the connection still serves");
}

/// SIGTERM while a client streams items slowly: the import answers at once, not at the request
/// timeout, with one result per item it wrote; the database holds exactly those items; the
/// client sends the rest to the next server and every item lands once.
async fn on_shutdown_an_import_answers_with_exactly_the_items_it_wrote(backend: Backend) {
    let Some(mut env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let items: Vec<_> = (0..40).map(|i| short_item(&contact, i)).collect();
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    let feeder = {
        let items = items.clone();
        tokio::spawn(async move {
            for item in items {
                if sender.send(item).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The client never ends its stream on its own.
            std::future::pending::<()>().await;
        })
    };
    let call = {
        let mut client = env.conversations().await;
        let request = env.req(ReceiverStream::new(receiver));
        tokio::spawn(async move { client.import_conversations(request).await })
    };
    let waited = Instant::now();
    while stored_ids(&env).await.len() < 5 {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "items are written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let signalled = Instant::now();
    env.signal_conversation_shutdown();
    let response = call
        .await
        .unwrap()
        .expect("the import answers")
        .into_inner();
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "answered {:?} after the signal",
        signalled.elapsed()
    );
    feeder.abort();
    assert!(response.stopped_early);
    let handled = response.results.len();
    assert!(
        (5..items.len()).contains(&handled),
        "{handled} items handled"
    );
    assert_eq!(response.imported_count as usize, handled);
    assert_results_follow_items(&response, &items);

    env.restart_conversation().await;
    let answered: HashSet<String> = response
        .results
        .iter()
        .map(|r| r.conversation_id.clone())
        .collect();
    assert_eq!(
        stored_ids(&env).await,
        answered,
        "the answer and the database agree"
    );
    let rest = import_requests(&env, items[handled..].to_vec()).await;
    assert!(!rest.stopped_early);
    assert_eq!(rest.imported_count as usize, items.len() - handled);
    assert_eq!(stored_ids(&env).await.len(), items.len());
}

/// Items of one call are written in batches, but each is answered as if written on its own, in
/// order: an external id twice in the call imports once, a message id taken by an earlier call
/// or by an earlier item is refused naming it, and their neighbours land.
async fn items_written_together_are_answered_as_if_written_one_by_one(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let (ana, bea, cai) = (
        env.new_contact().await,
        env.new_contact().await,
        env.new_contact().await,
    );
    let earlier = import(&env, vec![closed_item("earlier", &ana, 100, 90)]).await;
    assert_eq!(earlier.imported_count, 1);

    let mut taken_earlier = closed_item("taken-earlier", &bea, 80, 70);
    taken_earlier.messages[0].message_id = "earlier-in".into();
    let mut taken_in_call = closed_item("taken-in-call", &cai, 60, 50);
    taken_in_call.messages[1].message_id = "first-out".into();
    let items = vec![
        closed_item("first", &ana, 20, 10),
        taken_earlier,
        closed_item("first", &ana, 20, 10),
        closed_item("second", &bea, 40, 30),
        taken_in_call,
        closed_item("third", &cai, 8, 6),
    ];
    let response = import(&env, items).await;
    let outcome: Vec<(String, i32, String)> = response
        .results
        .iter()
        .map(|r| {
            let error = r.error.clone().unwrap_or_default();
            let field = error.message.split(':').next().unwrap_or("").to_owned();
            (r.external_id.clone(), r.outcome, field)
        })
        .collect();
    let (imported, unchanged, refused) = (
        pb::ImportOutcome::Imported as i32,
        pb::ImportOutcome::Unchanged as i32,
        pb::ImportOutcome::Refused as i32,
    );
    assert_eq!(
        outcome,
        [
            ("first".to_owned(), imported, String::new()),
            (
                "taken-earlier".to_owned(),
                refused,
                "conversation.messages[0].message_id".to_owned()
            ),
            ("first".to_owned(), unchanged, String::new()),
            ("second".to_owned(), imported, String::new()),
            (
                "taken-in-call".to_owned(),
                refused,
                "conversation.messages[1].message_id".to_owned()
            ),
            ("third".to_owned(), imported, String::new()),
        ]
    );
    assert_eq!(
        response.results[0].conversation_id,
        response.results[2].conversation_id
    );
    assert_eq!(
        (
            response.imported_count,
            response.unchanged_count,
            response.refused_count
        ),
        (3, 1, 2)
    );
    assert_eq!(
        stored_ids(&env).await.len(),
        4,
        "refused items wrote nothing"
    );
    // Each imported conversation has its own events, in its own order, and the answer points at
    // its last one.
    for result in response.results.iter().filter(|r| r.outcome == imported) {
        let events = env
            .conversations()
            .await
            .list_conversation_events(env.req(pb::ListConversationEventsRequest {
                conversation_id: result.conversation_id.clone(),
                ..Default::default()
            }))
            .await
            .expect("list its events")
            .into_inner()
            .events;
        assert_eq!(
            kinds(&events),
            ["opened", "assigned", "message", "message", "closed"]
        );
        assert!(
            events
                .iter()
                .all(|e| e.conversation_id == result.conversation_id)
        );
        let last = events.last().unwrap();
        let position = result.event_position.as_ref().expect("a position");
        assert_eq!(
            (position.partition, position.sequence),
            (last.partition, last.sequence),
            "the answer points at the item's last event"
        );
    }
}

/// The contacts of a batch are checked together: each item whose contact the workspace doesn't
/// have is refused NOT_FOUND naming that contact, as it would be on its own, and the items of
/// known contacts around it land.
async fn a_batch_mixing_known_and_unknown_contacts_refuses_only_the_unknown_ones(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let (ana, bea) = (env.new_contact().await, env.new_contact().await);
    let (nobody, nobody_else) = (
        uuid::Uuid::now_v7().to_string(),
        uuid::Uuid::now_v7().to_string(),
    );
    let items = vec![
        closed_item("ana-1", &ana, 100, 90),
        closed_item("nobody-1", &nobody, 100, 90),
        closed_item("bea-1", &bea, 80, 70),
        closed_item("nobody-else", &nobody_else, 60, 50),
        closed_item("nobody-2", &nobody, 40, 30),
        closed_item("ana-2", &ana, 20, 10),
    ];
    let response = import(&env, items).await;
    let outcome: Vec<(&str, i32, &str)> = response
        .results
        .iter()
        .map(|r| {
            let error = r.error.as_ref();
            (
                r.external_id.as_str(),
                error.map_or(0, |e| e.code),
                error.map_or("", |e| e.message.as_str()),
            )
        })
        .collect();
    let not_found = Code::NotFound as i32;
    let missing = |id: &str| format!("charla.contact.v1.Contact {id} not found");
    assert_eq!(
        outcome,
        [
            ("ana-1", 0, ""),
            ("nobody-1", not_found, missing(&nobody).as_str()),
            ("bea-1", 0, ""),
            ("nobody-else", not_found, missing(&nobody_else).as_str()),
            ("nobody-2", not_found, missing(&nobody).as_str()),
            ("ana-2", 0, ""),
        ]
    );
    assert_eq!((response.imported_count, response.refused_count), (3, 3));
    assert_eq!(
        stored_ids(&env).await.len(),
        3,
        "refused items wrote nothing"
    );
}
