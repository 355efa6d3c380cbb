//! Message metadata: idempotent by id, first response by humans only, assignment.

use charla_proto::charla::conversation::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use tonic::Code;

use crate::helpers::{kinds, spawn_env};

backend_tests!(
    a_replayed_message_changes_nothing,
    only_a_human_message_sets_the_first_response,
    an_outbound_message_without_an_open_conversation_opens_none,
    assignments_are_events_and_a_closed_conversation_cannot_be_assigned,
    a_message_id_of_another_contact_is_refused_not_taken_for_a_retry,
    a_masked_assignment_sets_the_user_and_clears_the_team_in_one_event,
);

async fn a_replayed_message_changes_nothing(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let first = env
        .message(&contact, pb::AuthorKind::Contact, "wamid.A")
        .await
        .unwrap();
    let reply = env
        .message(&contact, pb::AuthorKind::User, "wamid.B")
        .await
        .unwrap();
    for (id, kind) in [
        ("wamid.A", pb::AuthorKind::Contact),
        ("wamid.B", pb::AuthorKind::User),
    ] {
        let again = env.message(&contact, kind, id).await.unwrap();
        assert!(!again.recorded && !again.opened_conversation);
        assert_eq!(
            again.conversation, reply.conversation,
            "the conversation as it is now"
        );
    }
    let counts = env
        .get(&first.conversation.unwrap().conversation_id)
        .await
        .message_counts
        .unwrap();
    assert_eq!((counts.inbound_count, counts.outbound_count), (1, 1));
    assert_eq!(kinds(&env.events().await), ["opened", "message", "message"]);
}

async fn only_a_human_message_sets_the_first_response(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let conversation = env.inbound(&contact).await;
    env.clock.advance(std::time::Duration::from_secs(30));
    for (index, kind) in [
        pb::AuthorKind::Bot,
        pb::AuthorKind::Workflow,
        pb::AuthorKind::AiAgent,
        pb::AuthorKind::Broadcast,
        pb::AuthorKind::Echo,
    ]
    .into_iter()
    .enumerate()
    {
        let response = env
            .message(&contact, kind, &format!("auto-{index}"))
            .await
            .unwrap();
        assert_eq!(
            response.conversation.unwrap().first_response_at,
            None,
            "{kind:?}"
        );
    }
    env.clock.advance(std::time::Duration::from_secs(90));
    let answered = env.reply(&contact).await;
    let opened_at = conversation.opened_at.unwrap();
    let first_response = answered.first_response_at.unwrap();
    assert_eq!(first_response.seconds - opened_at.seconds, 120);
    assert_eq!(answered.first_response_user_id, "agent-ana");
    env.clock.advance(std::time::Duration::from_secs(60));
    let later = env.reply(&contact).await;
    assert_eq!(
        later.first_response_at,
        Some(first_response),
        "only the first one counts"
    );
    let events = env.events().await;
    let flags: Vec<bool> = events
        .iter()
        .filter_map(|event| match &event.payload {
            Some(pb::conversation_event::Payload::MessageRecorded(m)) => Some(m.first_response),
            _ => None,
        })
        .collect();
    assert_eq!(
        flags,
        [false, false, false, false, false, false, true, false]
    );
}

async fn an_outbound_message_without_an_open_conversation_opens_none(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let contact = env.new_contact().await;
    let response = env
        .message(&contact, pb::AuthorKind::Broadcast, "promo-1")
        .await
        .unwrap();
    assert!(response.recorded);
    assert!(!response.opened_conversation);
    assert_eq!(response.conversation, None);
    let open = env
        .conversations()
        .await
        .get_open_conversation(env.req(pb::GetOpenConversationRequest {
            contact_id: contact,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(open.conversation, None);
}

async fn assignments_are_events_and_a_closed_conversation_cannot_be_assigned(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let contact = env.new_contact().await;
    let conversation = env.inbound(&contact).await;
    let id = conversation.conversation_id.clone();
    let assign = |user: &str, team: &str| {
        env.req(pb::AssignConversationRequest {
            conversation_id: id.clone(),
            assignee_user_id: user.into(),
            team_id: team.into(),
            actor_id: "lead-1".into(),
            request_id: String::new(),
            update_mask: None,
        })
    };
    let assigned = client
        .assign_conversation(assign("ana", "sales"))
        .await
        .unwrap()
        .into_inner();
    let assigned = assigned.conversation.unwrap();
    assert_eq!(
        (
            assigned.assignee_user_id.as_str(),
            assigned.team_id.as_str()
        ),
        ("ana", "sales")
    );
    assert_eq!(assigned.assignment_count, 1);
    client.assign_conversation(assign("ana", "")).await.unwrap();
    let moved = client
        .assign_conversation(assign("beto", ""))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(
        (moved.assignee_user_id.as_str(), moved.team_id.as_str()),
        ("beto", "sales")
    );
    assert_eq!(moved.assignment_count, 2);
    let cleared = client
        .unassign_conversation(env.req(pb::UnassignConversationRequest {
            conversation_id: id.clone(),
            clear_assignee_user: true,
            clear_team: false,
            actor_id: String::new(),
        }))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(
        (cleared.assignee_user_id.as_str(), cleared.team_id.as_str()),
        ("", "sales")
    );
    assert_invalid_field(
        client.assign_conversation(assign("", "")).await,
        "assignee_user_id",
    );
    env.close(&id, pb::CloseSource::User).await.unwrap();
    assert_code(
        client.assign_conversation(assign("carla", "")).await,
        Code::FailedPrecondition,
    );
    let events = env.events().await;
    assert_eq!(
        kinds(&events),
        [
            "opened",
            "message",
            "assigned",
            "assigned",
            "unassigned",
            "closed"
        ]
    );
    let Some(pb::conversation_event::Payload::Assigned(second)) = &events[3].payload else {
        panic!("expected an assignment");
    };
    assert_eq!(second.previous_assignee_user_id, "ana");
    assert_eq!(second.assignee_user_id, "beto");
    assert_eq!(second.actor_id, "lead-1");
}

async fn a_message_id_of_another_contact_is_refused_not_taken_for_a_retry(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let first = env.new_contact().await;
    let second = env.new_contact().await;
    env.message(&first, pb::AuthorKind::Contact, "42")
        .await
        .unwrap();
    let status = assert_code(
        env.message(&second, pb::AuthorKind::Contact, "42").await,
        Code::AlreadyExists,
    );
    assert_eq!(
        charla_testing::error_info_value(&status, "contact_id"),
        Some(first)
    );
}

async fn a_masked_assignment_sets_the_user_and_clears_the_team_in_one_event(backend: Backend) {
    let Some(env) = spawn_env(backend).await else {
        return;
    };
    let mut client = env.conversations().await;
    let contact = env.new_contact().await;
    let id = env.inbound(&contact).await.conversation_id;
    let assign = |user: &str, team: &str, paths: &[&str]| {
        env.req(pb::AssignConversationRequest {
            conversation_id: id.clone(),
            assignee_user_id: user.into(),
            team_id: team.into(),
            update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            ..Default::default()
        })
    };
    client
        .assign_conversation(assign("ana", "sales", &[]))
        .await
        .unwrap();
    // The mask names both: the user is set and the team cleared, in one change.
    let moved = client
        .assign_conversation(assign("beto", "", &["assignee_user_id", "team_id"]))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(
        (moved.assignee_user_id.as_str(), moved.team_id.as_str()),
        ("beto", "")
    );
    assert_eq!(moved.assignment_count, 2);
    // A field the mask doesn't name is kept, whatever the request holds.
    let kept = client
        .assign_conversation(assign("", "support", &["team_id"]))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(
        (kept.assignee_user_id.as_str(), kept.team_id.as_str()),
        ("beto", "support")
    );
    // Clearing only is an unassignment; `*` names both fields.
    let cleared = client
        .assign_conversation(assign("", "", &["*"]))
        .await
        .unwrap()
        .into_inner()
        .conversation
        .unwrap();
    assert_eq!(
        (cleared.assignee_user_id.as_str(), cleared.team_id.as_str()),
        ("", "")
    );
    let refused = client
        .assign_conversation(assign("carla", "", &["assignee_user_id", "user_id"]))
        .await;
    let message = refused.as_ref().err().map(|s| s.message().to_owned());
    assert_invalid_field(refused, "update_mask");
    assert!(message.unwrap().contains("\"user_id\""), "names the path");
    assert_invalid_field(
        client.assign_conversation(assign("", "", &[])).await,
        "assignee_user_id",
    );

    let events = env.events().await;
    assert_eq!(
        kinds(&events),
        [
            "opened",
            "message",
            "assigned",
            "assigned",
            "assigned",
            "unassigned"
        ],
        "one event per call, none for the refused ones"
    );
    let Some(pb::conversation_event::Payload::Assigned(one)) = &events[3].payload else {
        panic!("expected an assignment");
    };
    assert_eq!(
        (
            one.previous_assignee_user_id.as_str(),
            one.previous_team_id.as_str(),
            one.assignee_user_id.as_str(),
            one.team_id.as_str()
        ),
        ("ana", "sales", "beto", "")
    );
    let Some(pb::conversation_event::Payload::Unassigned(last)) = &events[5].payload else {
        panic!("expected an unassignment");
    };
    assert_eq!(
        (
            last.previous_assignee_user_id.as_str(),
            last.previous_team_id.as_str()
        ),
        ("beto", "support")
    );
}
