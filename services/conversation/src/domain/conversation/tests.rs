//! The lifecycle rules, one test each.

use std::time::{Duration, SystemTime};

use charla_runtime::channel::ChannelType;
use charla_runtime::workspace::WorkspaceId;
use uuid::Uuid;

use super::*;
use crate::domain::{AuthorKind, AutoClose, ClosingNotePolicy, MessageId};

const MINUTE: Duration = Duration::from_secs(60);

fn t(minutes: u32) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + minutes * MINUTE
}

fn conversation() -> Conversation {
    Conversation::open(
        WorkspaceId::new(Uuid::now_v7()),
        ContactId::from_uuid(Uuid::now_v7()),
        Channel {
            channel_type: ChannelType::Whatsapp,
            channel_id: "wa".into(),
        },
        OpenSource::InboundMessage,
        None,
        t(0),
    )
}

fn message(author_kind: AuthorKind) -> Message {
    let direction = if author_kind == AuthorKind::Contact {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    Message {
        id: MessageId::parse(&Uuid::now_v7().to_string()).unwrap(),
        direction,
        author_kind,
        author_id: (author_kind != AuthorKind::Contact).then(|| ActorId::parse("agent-1").unwrap()),
        sent_at: None,
    }
}

fn auto_close_after_an_hour() -> WorkspaceSettings {
    WorkspaceSettings {
        auto_close: Some(AutoClose::new(60 * MINUTE).unwrap()),
        ..WorkspaceSettings::default()
    }
}

#[test]
fn the_first_human_message_sets_first_response_and_bots_do_not() {
    let settings = WorkspaceSettings::default();
    let mut c = conversation();
    c.record(&message(AuthorKind::Contact), t(1), &settings);
    for kind in [
        AuthorKind::Bot,
        AuthorKind::Workflow,
        AuthorKind::AiAgent,
        AuthorKind::Broadcast,
        AuthorKind::Echo,
    ] {
        let effect = c.record(&message(kind), t(2), &settings);
        assert!(!effect.first_response, "{kind:?}");
    }
    assert_eq!(c.first_response_at, None);
    let effect = c.record(&message(AuthorKind::User), t(5), &settings);
    assert!(effect.first_response);
    assert_eq!(
        c.response_started_at,
        [t(1)],
        "the wait began at the contact's message"
    );
    assert_eq!(
        effect.response_time,
        Some(4 * MINUTE),
        "measured from the contact's message"
    );
    assert_eq!(
        c.first_response_time(),
        Some(5 * MINUTE),
        "measured from opening"
    );
    let second = c.record(&message(AuthorKind::User), t(6), &settings);
    assert!(!second.first_response);
    assert_eq!(
        second.response_time, None,
        "nothing was waiting for an answer"
    );
    assert_eq!(c.counts.responses, 1);
    assert_eq!(c.counts.user_outbound, 2);
}

#[test]
fn a_response_is_timed_from_the_earliest_unanswered_message() {
    let settings = WorkspaceSettings::default();
    let mut c = conversation();
    c.record(&message(AuthorKind::Contact), t(1), &settings);
    c.record(&message(AuthorKind::Contact), t(3), &settings);
    c.record(&message(AuthorKind::User), t(10), &settings);
    c.record(&message(AuthorKind::Contact), t(20), &settings);
    c.record(&message(AuthorKind::User), t(22), &settings);
    assert_eq!(c.response_times, [9 * MINUTE, 2 * MINUTE]);
}

#[test]
fn auto_close_starts_at_a_human_message_restarts_and_is_cancelled_by_the_contact() {
    let settings = auto_close_after_an_hour();
    let mut c = conversation();
    c.record(&message(AuthorKind::Bot), t(1), &settings);
    assert_eq!(c.auto_close_at, None, "bots don't start it");
    c.record(&message(AuthorKind::User), t(2), &settings);
    assert_eq!(c.auto_close_at, Some(t(62)));
    c.record(&message(AuthorKind::Workflow), t(3), &settings);
    assert_eq!(c.auto_close_at, Some(t(62)), "workflows don't restart it");
    c.record(&message(AuthorKind::User), t(10), &settings);
    assert_eq!(
        c.auto_close_at,
        Some(t(70)),
        "another human message restarts it"
    );
    assert!(!c.auto_close_due(t(69)));
    assert!(c.auto_close_due(t(70)));
    c.record(&message(AuthorKind::Contact), t(11), &settings);
    assert_eq!(c.auto_close_at, None, "the contact's reply cancels it");
}

#[test]
fn a_closed_conversation_can_not_be_closed_again_nor_assigned() {
    let settings = WorkspaceSettings::default();
    let mut c = conversation();
    c.close(
        CloseSource::User,
        None,
        ClosingNote::default(),
        t(30),
        &settings,
    )
    .unwrap();
    assert_eq!(c.resolution_time(), Some(30 * MINUTE));
    assert_eq!(
        c.close(
            CloseSource::Workflow,
            None,
            ClosingNote::default(),
            t(31),
            &settings
        ),
        Err(ConversationError::Closed(c.id))
    );
    assert_eq!(
        c.assign(ActorId::parse("u").ok(), None, t(32)),
        Err(ConversationError::Closed(c.id))
    );
}

#[test]
fn a_close_that_breaks_the_policy_changes_nothing() {
    let settings = WorkspaceSettings {
        closing_note_policy: ClosingNotePolicy::CategoryRequired,
        closing_categories: vec!["Sale".into()],
        auto_close: None,
    };
    let mut c = conversation();
    let before = c.clone();
    assert!(
        c.close(
            CloseSource::User,
            None,
            ClosingNote::default(),
            t(5),
            &settings
        )
        .is_err()
    );
    assert_eq!(c, before);
    c.close(
        CloseSource::AutoClose,
        None,
        ClosingNote::default(),
        t(5),
        &settings,
    )
    .unwrap();
}

#[test]
fn assignments_count_user_changes_and_keep_the_first() {
    let mut c = conversation();
    let user = |name: &str| ActorId::parse(name).ok();
    assert!(
        c.assign(user("ana"), user("sales"), t(1))
            .unwrap()
            .is_some()
    );
    assert!(
        c.assign(user("ana"), user("sales"), t(2))
            .unwrap()
            .is_none(),
        "no change, no event"
    );
    let change = c.assign(user("beto"), None, t(3)).unwrap().unwrap();
    assert_eq!(change.previous_assignee, user("ana"));
    assert_eq!(c.assignment.count, 2);
    assert_eq!(c.assignment.first_assignee, user("ana"));
    assert_eq!(c.time_to_first_assignment(), Some(MINUTE));
    assert_eq!(c.assignment.team, user("sales"));
    assert!(c.unassign(true, false).unwrap().is_some());
    assert_eq!(c.assignment.assignee, None);
    assert!(c.unassign(true, false).unwrap().is_none());
}

#[test]
fn one_reassignment_sets_a_user_and_clears_the_team() {
    let mut c = conversation();
    let user = |name: &str| ActorId::parse(name).unwrap();
    c.assign(Some(user("ana")), Some(user("sales")), t(1))
        .unwrap();
    let (change, kind) = c
        .reassign(
            AssignmentUpdate::Set(user("beto")),
            AssignmentUpdate::Clear,
            t(2),
        )
        .unwrap()
        .expect("a change");
    assert_eq!(kind, AssignmentKind::Assigned);
    assert_eq!(change.previous_assignee, Some(user("ana")));
    assert_eq!(change.previous_team, Some(user("sales")));
    assert_eq!(c.assignment.assignee, Some(user("beto")));
    assert_eq!(c.assignment.team, None);
    assert_eq!(c.assignment.count, 2);
    let (_, kind) = c
        .reassign(AssignmentUpdate::Clear, AssignmentUpdate::Keep, t(3))
        .unwrap()
        .expect("a change");
    assert_eq!(kind, AssignmentKind::Unassigned, "only clearing unassigns");
    assert_eq!(
        c.reassign(AssignmentUpdate::Clear, AssignmentUpdate::Clear, t(4))
            .unwrap(),
        None,
        "nothing left to clear"
    );
}

#[test]
fn the_first_bot_ai_agent_or_workflow_message_is_the_first_automated_reply() {
    let settings = WorkspaceSettings::default();
    for kind in [AuthorKind::Bot, AuthorKind::AiAgent, AuthorKind::Workflow] {
        let mut c = conversation();
        c.record(&message(AuthorKind::Contact), t(1), &settings);
        for not_automation in [
            AuthorKind::Broadcast,
            AuthorKind::Api,
            AuthorKind::Echo,
            AuthorKind::User,
        ] {
            c.record(&message(not_automation), t(2), &settings);
        }
        assert_eq!(c.first_automated, None, "{kind:?}");
        c.record(&message(kind), t(3), &settings);
        c.record(&message(AuthorKind::Bot), t(4), &settings);
        assert_eq!(
            c.first_automated,
            Some(AutomatedReply {
                at: t(3),
                author_kind: kind,
                author: Some(ActorId::parse("agent-1").unwrap()),
            }),
            "the first one stays"
        );
    }
}
