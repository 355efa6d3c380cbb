//! Imported history: a complete past conversation, checked against the lifecycle rules and
//! replayed through the same rules a live one follows, step by step, so it produces the same
//! events (with their historical times).

use std::time::SystemTime;

use super::conversation::{
    AssignmentChange, AssignmentKind, AssignmentUpdate, Conversation, MessageEffect,
};
use super::ids::{ActorId, ContactId, ExternalId};
use super::message::Message;
use super::settings::{ClosingNote, ClosingNotePolicy, WorkspaceSettings};
use super::sources::{Channel, CloseSource, OpenSource};
use charla_runtime::workspace::WorkspaceId;

/// An assignment change in the past: from `at` on, these were the assignee and the team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastAssignment {
    pub at: SystemTime,
    pub assignee: Option<ActorId>,
    pub team: Option<ActorId>,
    pub actor: Option<ActorId>,
}

/// How a past conversation closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastClose {
    pub at: SystemTime,
    pub by: CloseSource,
    pub by_id: Option<ActorId>,
    pub note: ClosingNote,
}

/// One complete past conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub external_id: ExternalId,
    pub contact: ContactId,
    pub channel: Channel,
    pub opened_at: SystemTime,
    pub opened_by: OpenSource,
    pub opened_by_id: Option<ActorId>,
    /// Each message with the time it was sent.
    pub messages: Vec<(Message, SystemTime)>,
    pub assignments: Vec<PastAssignment>,
    /// `None` leaves it open (only a contact's latest conversation may be).
    pub close: Option<PastClose>,
}

/// One step of a replayed history, with the conversation as it stood right after it.
#[derive(Debug, Clone)]
pub enum Step {
    Opened,
    Message {
        index: usize,
        effect: MessageEffect,
    },
    Assigned {
        change: AssignmentChange,
        actor: Option<ActorId>,
    },
    Unassigned {
        change: AssignmentChange,
        actor: Option<ActorId>,
    },
    Closed,
}

/// What is wrong with a history: the field (a path below the import item) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryError {
    pub field: String,
    pub description: String,
}

fn refuse(field: impl Into<String>, description: impl Into<String>) -> HistoryError {
    HistoryError {
        field: field.into(),
        description: description.into(),
    }
}

impl History {
    /// The last instant the conversation covers: its close, or `now` while it is open.
    pub fn end(&self, now: SystemTime) -> SystemTime {
        self.close.as_ref().map_or(now, |close| close.at)
    }

    /// Checks the history and replays it. Returns the conversation at each step, in order.
    pub fn replay(
        &self,
        workspace: WorkspaceId,
        settings: &WorkspaceSettings,
        now: SystemTime,
    ) -> Result<Vec<(Conversation, SystemTime, Step)>, HistoryError> {
        self.check(settings, now)?;
        let mut conversation = Conversation::open(
            workspace,
            self.contact,
            self.channel.clone(),
            self.opened_by,
            self.opened_by_id.clone(),
            self.opened_at,
        );
        conversation.imported = true;
        conversation.external_id = Some(self.external_id.clone());
        let mut steps = vec![(conversation.clone(), self.opened_at, Step::Opened)];

        // Messages and assignments in time order; at equal times, assignments first (an agent is
        // assigned, then answers).
        enum Happening<'a> {
            Assignment(&'a PastAssignment),
            Message(usize),
        }
        let mut happenings: Vec<(SystemTime, u8, Happening<'_>)> = Vec::new();
        for assignment in &self.assignments {
            happenings.push((assignment.at, 0, Happening::Assignment(assignment)));
        }
        for (index, (_, at)) in self.messages.iter().enumerate() {
            happenings.push((*at, 1, Happening::Message(index)));
        }
        happenings.sort_by_key(|(at, order, _)| (*at, *order));

        for (at, _, happening) in happenings {
            let step = match happening {
                Happening::Message(index) => {
                    let effect = conversation.record(&self.messages[index].0, at, settings);
                    Some(Step::Message { index, effect })
                }
                Happening::Assignment(assignment) => self.reassign(&mut conversation, assignment),
            };
            if let Some(step) = step {
                steps.push((conversation.clone(), at, step));
            }
        }
        if let Some(close) = &self.close {
            // History keeps its notes as they were; only the category must be the workspace's.
            let lenient = WorkspaceSettings {
                closing_note_policy: ClosingNotePolicy::Optional,
                ..settings.clone()
            };
            conversation
                .close(
                    close.by,
                    close.by_id.clone(),
                    close.note.clone(),
                    close.at,
                    &lenient,
                )
                .map_err(|error| refuse("conversation.closing_category", error.to_string()))?;
            steps.push((conversation.clone(), close.at, Step::Closed));
        }
        Ok(steps)
    }

    /// Applies "from now on, this assignee and team": clears what the change leaves empty and
    /// assigns what it names, as one step (none when nothing changed).
    fn reassign(
        &self,
        conversation: &mut Conversation,
        assignment: &PastAssignment,
    ) -> Option<Step> {
        let slot = |value: &Option<ActorId>| match value {
            Some(id) => AssignmentUpdate::Set(id.clone()),
            None => AssignmentUpdate::Clear,
        };
        let (change, kind) = conversation
            .reassign(
                slot(&assignment.assignee),
                slot(&assignment.team),
                assignment.at,
            )
            .ok()
            .flatten()?;
        let actor = assignment.actor.clone();
        Some(match kind {
            AssignmentKind::Assigned => Step::Assigned { change, actor },
            AssignmentKind::Unassigned => Step::Unassigned { change, actor },
        })
    }

    fn check(&self, settings: &WorkspaceSettings, now: SystemTime) -> Result<(), HistoryError> {
        if self.opened_at > now {
            return Err(refuse(
                "conversation.opened_at",
                "must not be in the future",
            ));
        }
        if self.opened_by == OpenSource::WelcomeEvent
            && !self.channel.channel_type.has_welcome_events()
        {
            return Err(refuse(
                "conversation.opened_by",
                format!(
                    "WELCOME_EVENT is only possible on Facebook Messenger and Viber, not {}",
                    self.channel.channel_type.as_str()
                ),
            ));
        }
        if let Some(close) = &self.close {
            if close.at < self.opened_at {
                return Err(refuse(
                    "conversation.closed_at",
                    "must not be before opened_at",
                ));
            }
            if close.at > now {
                return Err(refuse(
                    "conversation.closed_at",
                    "must not be in the future",
                ));
            }
            if let Some(category) = &close.note.category
                && !settings.closing_categories.contains(category)
            {
                return Err(refuse(
                    "conversation.closing_category",
                    format!("`{category}` is not one of the workspace's closing categories"),
                ));
            }
        }
        let end = self.end(now);
        for (index, (_, at)) in self.messages.iter().enumerate() {
            if *at < self.opened_at || *at > end {
                return Err(refuse(
                    format!("conversation.messages[{index}].sent_at"),
                    "must lie within the conversation, between opened_at and closed_at",
                ));
            }
        }
        for (index, assignment) in self.assignments.iter().enumerate() {
            if assignment.at < self.opened_at || assignment.at > end {
                return Err(refuse(
                    format!("conversation.assignments[{index}].assigned_at"),
                    "must lie within the conversation, between opened_at and closed_at",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use charla_runtime::channel::ChannelType;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{AuthorKind, Direction, MessageId};

    const MINUTE: Duration = Duration::from_secs(60);

    fn t(minutes: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + MINUTE * minutes
    }

    fn message(kind: AuthorKind) -> Message {
        Message {
            id: MessageId::parse(&Uuid::now_v7().to_string()).unwrap(),
            direction: if kind == AuthorKind::Contact {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            author_kind: kind,
            author_id: None,
            sent_at: None,
        }
    }

    fn history() -> History {
        History {
            external_id: ExternalId::parse("rio-1").unwrap(),
            contact: ContactId::from_uuid(Uuid::now_v7()),
            channel: Channel {
                channel_type: ChannelType::Sms,
                channel_id: "sms".into(),
            },
            opened_at: t(0),
            opened_by: OpenSource::InboundMessage,
            opened_by_id: None,
            messages: vec![
                (message(AuthorKind::Contact), t(0)),
                (message(AuthorKind::User), t(5)),
            ],
            assignments: vec![PastAssignment {
                at: t(1),
                assignee: ActorId::parse("ana").ok(),
                team: None,
                actor: None,
            }],
            close: Some(PastClose {
                at: t(30),
                by: CloseSource::AutoClose,
                by_id: None,
                note: ClosingNote::default(),
            }),
        }
    }

    #[test]
    fn a_history_replays_into_the_steps_a_live_conversation_takes() {
        let steps = history()
            .replay(
                WorkspaceId::new(Uuid::now_v7()),
                &WorkspaceSettings::default(),
                t(60),
            )
            .unwrap();
        let kinds: Vec<&str> = steps
            .iter()
            .map(|(_, _, step)| match step {
                Step::Opened => "opened",
                Step::Message { .. } => "message",
                Step::Assigned { .. } => "assigned",
                Step::Unassigned { .. } => "unassigned",
                Step::Closed => "closed",
            })
            .collect();
        assert_eq!(
            kinds,
            ["opened", "message", "assigned", "message", "closed"]
        );
        let (last, at, _) = steps.last().unwrap();
        assert_eq!(*at, t(30));
        assert!(last.imported);
        assert_eq!(last.first_response_time(), Some(5 * MINUTE));
        assert_eq!(last.resolution_time(), Some(30 * MINUTE));
        let (after_assignment, _, _) = &steps[2];
        assert_eq!(
            after_assignment.assignment.assignee,
            ActorId::parse("ana").ok()
        );
    }

    #[test]
    fn clearing_only_the_assignee_is_a_step_of_its_own() {
        let mut h = history();
        h.assignments = vec![
            PastAssignment {
                at: t(1),
                assignee: ActorId::parse("ana").ok(),
                team: ActorId::parse("t").ok(),
                actor: None,
            },
            PastAssignment {
                at: t(2),
                assignee: None,
                team: ActorId::parse("t").ok(),
                actor: None,
            },
        ];
        let steps = h
            .replay(
                WorkspaceId::new(Uuid::now_v7()),
                &WorkspaceSettings::default(),
                t(60),
            )
            .unwrap();
        let unassigned = steps
            .iter()
            .find(|(_, _, step)| matches!(step, Step::Unassigned { .. }));
        let (after, _, _) = unassigned.expect("an unassignment step");
        assert_eq!(after.assignment.assignee, None);
        assert_eq!(after.assignment.team, ActorId::parse("t").ok());
    }

    #[test]
    fn a_history_out_of_order_is_refused_naming_the_field() {
        let settings = WorkspaceSettings::default();
        let workspace = WorkspaceId::new(Uuid::now_v7());
        let mut closes_early = history();
        closes_early.close.as_mut().unwrap().at = t(0) - MINUTE;
        assert_eq!(
            closes_early
                .replay(workspace, &settings, t(60))
                .unwrap_err()
                .field,
            "conversation.closed_at"
        );
        let mut late_message = history();
        late_message.messages[1].1 = t(31);
        assert_eq!(
            late_message
                .replay(workspace, &settings, t(60))
                .unwrap_err()
                .field,
            "conversation.messages[1].sent_at"
        );
        let mut welcome_on_sms = history();
        welcome_on_sms.opened_by = OpenSource::WelcomeEvent;
        assert_eq!(
            welcome_on_sms
                .replay(workspace, &settings, t(60))
                .unwrap_err()
                .field,
            "conversation.opened_by"
        );
        let mut unknown_category = history();
        unknown_category.close.as_mut().unwrap().note.category = Some("Nope".into());
        assert_eq!(
            unknown_category
                .replay(workspace, &settings, t(60))
                .unwrap_err()
                .field,
            "conversation.closing_category"
        );
    }
}
