//! A conversation and the rules for changing it.

use std::time::{Duration, SystemTime};

use charla_runtime::workspace::WorkspaceId;

use super::error::ConversationError;
use super::ids::{ActorId, ContactId, ConversationId, ExternalId};
use super::message::{AuthorKind, Direction, Message};
use super::settings::{ClosingNote, WorkspaceSettings};
use super::sources::{Channel, CloseSource, OpenSource};

/// Whether a conversation is open or how it was closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationStatus {
    Open,
    Closed {
        at: SystemTime,
        by: CloseSource,
        by_id: Option<ActorId>,
        note: ClosingNote,
    },
}

/// Who a conversation is assigned to, and its assignment history in numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    pub assignee: Option<ActorId>,
    pub team: Option<ActorId>,
    /// The first user it was assigned to, and when.
    pub first_assignee: Option<ActorId>,
    pub first_assigned_at: Option<SystemTime>,
    /// The last user it was assigned to, kept when it is unassigned.
    pub last_assignee: Option<ActorId>,
    pub last_assigned_at: Option<SystemTime>,
    /// How many times a user was assigned (a change of user counts, a change of team alone not).
    pub count: u32,
}

/// Message counts of a conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub inbound: u32,
    pub outbound: u32,
    /// Outbound messages written by human users.
    pub user_outbound: u32,
    /// Human messages that answered the contact.
    pub responses: u32,
}

/// The first message an automation (a bot, an AI agent or a workflow) wrote in a conversation:
/// what the metrics tell contained conversations and handoffs by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutomatedReply {
    pub at: SystemTime,
    pub author_kind: AuthorKind,
    /// The bot, AI agent or workflow, when the message named it.
    pub author: Option<ActorId>,
}

/// A conversation between a contact and the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: ConversationId,
    pub workspace: WorkspaceId,
    pub contact: ContactId,
    pub channel: Channel,
    pub status: ConversationStatus,
    pub opened_by: OpenSource,
    pub opened_by_id: Option<ActorId>,
    pub opened_at: SystemTime,
    pub assignment: Assignment,
    pub first_response_at: Option<SystemTime>,
    pub first_response_user: Option<ActorId>,
    /// The first message an automation wrote, if one did.
    pub first_automated: Option<AutomatedReply>,
    pub last_message_at: Option<SystemTime>,
    pub last_inbound_at: Option<SystemTime>,
    pub last_outbound_at: Option<SystemTime>,
    /// Since when the contact waits for a human answer (its earliest unanswered message).
    pub awaiting_reply_since: Option<SystemTime>,
    /// Each human response's wait, in order.
    pub response_times: Vec<Duration>,
    /// When each response's wait began (the earliest contact message it answered), in the order
    /// of `response_times`; empty for conversations written before it was kept.
    pub response_started_at: Vec<SystemTime>,
    /// When it closes by itself, if auto-close is running.
    pub auto_close_at: Option<SystemTime>,
    pub counts: MessageCounts,
    pub external_id: Option<ExternalId>,
    pub imported: bool,
}

/// What recording a message did to its conversation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageEffect {
    /// The message is the conversation's first response.
    pub first_response: bool,
    /// The message answered the contact after this long.
    pub response_time: Option<Duration>,
}

/// What an assignment change replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignmentChange {
    pub previous_assignee: Option<ActorId>,
    pub previous_team: Option<ActorId>,
}

/// What an assignment change does to one of the two slots (the assignee user, the team).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignmentUpdate {
    /// Leave it as it is.
    Keep,
    /// Set it to this one.
    Set(ActorId),
    /// Empty it.
    Clear,
}

/// Which event an assignment change records: `Assigned` when it sets a user or a team (whatever
/// it also clears), `Unassigned` when it only clears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignmentKind {
    Assigned,
    Unassigned,
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or_default()
}

impl Conversation {
    /// A conversation opened at `at`.
    pub fn open(
        workspace: WorkspaceId,
        contact: ContactId,
        channel: Channel,
        source: OpenSource,
        actor: Option<ActorId>,
        at: SystemTime,
    ) -> Self {
        Self {
            id: ConversationId::generate(),
            workspace,
            contact,
            channel,
            status: ConversationStatus::Open,
            opened_by: source,
            opened_by_id: actor,
            opened_at: at,
            assignment: Assignment::default(),
            first_response_at: None,
            first_response_user: None,
            first_automated: None,
            last_message_at: None,
            last_inbound_at: None,
            last_outbound_at: None,
            awaiting_reply_since: None,
            response_times: Vec::new(),
            response_started_at: Vec::new(),
            auto_close_at: None,
            counts: MessageCounts::default(),
            external_id: None,
            imported: false,
        }
    }

    /// Whether it is open.
    pub fn is_open(&self) -> bool {
        self.status == ConversationStatus::Open
    }

    /// When it closed, if it did.
    pub fn closed_at(&self) -> Option<SystemTime> {
        match &self.status {
            ConversationStatus::Closed { at, .. } => Some(*at),
            ConversationStatus::Open => None,
        }
    }

    fn ensure_open(&self) -> Result<(), ConversationError> {
        if self.is_open() {
            Ok(())
        } else {
            Err(ConversationError::Closed(self.id))
        }
    }

    /// Records a message at `at`. A contact's message starts the wait for a reply and cancels
    /// auto-close; a human user's message answers the wait, may be the first response, and
    /// (re)starts auto-close; bots, workflows, broadcasts, AI agents and echoes touch neither. The
    /// first message of a bot, an AI agent or a workflow is kept as the first automated reply.
    pub fn record(
        &mut self,
        message: &Message,
        at: SystemTime,
        settings: &WorkspaceSettings,
    ) -> MessageEffect {
        let mut effect = MessageEffect::default();
        self.last_message_at = Some(at);
        match message.direction {
            Direction::Inbound => {
                self.counts.inbound += 1;
                self.last_inbound_at = Some(at);
                self.awaiting_reply_since.get_or_insert(at);
                self.auto_close_at = None;
            }
            Direction::Outbound => {
                self.counts.outbound += 1;
                self.last_outbound_at = Some(at);
                if message.author_kind.is_automation() && self.first_automated.is_none() {
                    self.first_automated = Some(AutomatedReply {
                        at,
                        author_kind: message.author_kind,
                        author: message.author_id.clone(),
                    });
                }
            }
        }
        if message.author_kind.is_human_user() && message.direction == Direction::Outbound {
            self.counts.user_outbound += 1;
            if self.first_response_at.is_none() {
                self.first_response_at = Some(at);
                self.first_response_user = message.author_id.clone();
                effect.first_response = true;
            }
            if let Some(waiting_since) = self.awaiting_reply_since.take() {
                let waited = since(at, waiting_since);
                self.response_times.push(waited);
                self.response_started_at.push(waiting_since);
                self.counts.responses += 1;
                effect.response_time = Some(waited);
            }
            self.auto_close_at = settings.auto_close.map(|auto| auto.deadline_from(at));
        }
        effect
    }

    /// Closes the conversation at `at`. Fails if it is closed already or the note breaks the
    /// workspace's policy (automatic closes are exempt).
    pub fn close(
        &mut self,
        source: CloseSource,
        actor: Option<ActorId>,
        note: ClosingNote,
        at: SystemTime,
        settings: &WorkspaceSettings,
    ) -> Result<(), ConversationError> {
        self.ensure_open()?;
        let note = settings.check_closing_note(source, note)?;
        self.status = ConversationStatus::Closed {
            at: at.max(self.opened_at),
            by: source,
            by_id: actor,
            note,
        };
        self.auto_close_at = None;
        Ok(())
    }

    /// Whether auto-close is due at `now`.
    pub fn auto_close_due(&self, now: SystemTime) -> bool {
        self.is_open() && self.auto_close_at.is_some_and(|deadline| deadline <= now)
    }

    /// Assigns a user and/or a team (`None` leaves that one as it is). Returns what was replaced,
    /// or `None` when nothing changed.
    pub fn assign(
        &mut self,
        assignee: Option<ActorId>,
        team: Option<ActorId>,
        at: SystemTime,
    ) -> Result<Option<AssignmentChange>, ConversationError> {
        self.ensure_open()?;
        let change = AssignmentChange {
            previous_assignee: self.assignment.assignee.clone(),
            previous_team: self.assignment.team.clone(),
        };
        let new_assignee = assignee.filter(|user| self.assignment.assignee.as_ref() != Some(user));
        let new_team = team.filter(|team| self.assignment.team.as_ref() != Some(team));
        if new_assignee.is_none() && new_team.is_none() {
            return Ok(None);
        }
        if let Some(user) = new_assignee {
            let assignment = &mut self.assignment;
            assignment.count += 1;
            assignment
                .first_assignee
                .get_or_insert_with(|| user.clone());
            assignment.first_assigned_at.get_or_insert(at);
            assignment.last_assigned_at = Some(at);
            assignment.last_assignee = Some(user.clone());
            assignment.assignee = Some(user);
        }
        if let Some(team) = new_team {
            self.assignment.team = Some(team);
        }
        Ok(Some(change))
    }

    /// Sets, clears or keeps the assignee user and the team in one change at `at`. Returns what
    /// was replaced and which event records it, or `None` when nothing changed. Setting a user
    /// counts as an assignment exactly as [`Conversation::assign`] does.
    pub fn reassign(
        &mut self,
        assignee: AssignmentUpdate,
        team: AssignmentUpdate,
        at: SystemTime,
    ) -> Result<Option<(AssignmentChange, AssignmentKind)>, ConversationError> {
        self.ensure_open()?;
        let clear_assignee = assignee == AssignmentUpdate::Clear;
        let clear_team = team == AssignmentUpdate::Clear;
        let set = |update: AssignmentUpdate| match update {
            AssignmentUpdate::Set(id) => Some(id),
            AssignmentUpdate::Keep | AssignmentUpdate::Clear => None,
        };
        let previous = AssignmentChange {
            previous_assignee: self.assignment.assignee.clone(),
            previous_team: self.assignment.team.clone(),
        };
        let cleared = self.unassign(clear_assignee, clear_team)?.is_some();
        let assigned = self.assign(set(assignee), set(team), at)?.is_some();
        Ok(match (assigned, cleared) {
            (true, _) => Some((previous, AssignmentKind::Assigned)),
            (false, true) => Some((previous, AssignmentKind::Unassigned)),
            (false, false) => None,
        })
    }

    /// Clears the assignee and/or the team. Returns what was cleared, or `None` when nothing was
    /// assigned.
    pub fn unassign(
        &mut self,
        clear_assignee: bool,
        clear_team: bool,
    ) -> Result<Option<AssignmentChange>, ConversationError> {
        self.ensure_open()?;
        let change = AssignmentChange {
            previous_assignee: self.assignment.assignee.clone(),
            previous_team: self.assignment.team.clone(),
        };
        let clears_assignee = clear_assignee && self.assignment.assignee.is_some();
        let clears_team = clear_team && self.assignment.team.is_some();
        if !clears_assignee && !clears_team {
            return Ok(None);
        }
        if clears_assignee {
            self.assignment.assignee = None;
        }
        if clears_team {
            self.assignment.team = None;
        }
        Ok(Some(change))
    }

    /// Closing time minus opening time, once closed.
    pub fn resolution_time(&self) -> Option<Duration> {
        self.closed_at().map(|closed| since(closed, self.opened_at))
    }

    /// First response time minus opening time, once answered.
    pub fn first_response_time(&self) -> Option<Duration> {
        self.first_response_at
            .map(|first| since(first, self.opened_at))
    }

    /// First assignment time minus opening time, once assigned.
    pub fn time_to_first_assignment(&self) -> Option<Duration> {
        self.assignment
            .first_assigned_at
            .map(|first| since(first, self.opened_at))
    }
}

#[cfg(test)]
mod tests;
