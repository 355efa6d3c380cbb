//! Opening, messages, closing and assignment: the writes of the lifecycle.

use charla_runtime::ApiError;
use charla_runtime::event_log::EventPosition;
use charla_runtime::workspace::WorkspaceId;
use sqlx::AnyConnection;
use uuid::Uuid;

use super::{ConversationStore, is_unique_violation};
use crate::contacts::ContactDirectory;
use crate::domain::{
    ActorId, AssignmentKind, AssignmentUpdate, Channel, CloseSource, ClosingNote, ContactId,
    Conversation, ConversationError, ConversationId, Message, OpenSource,
};
use crate::events::ConversationChange;

/// A request to open a conversation.
#[derive(Debug, Clone)]
pub struct OpenRequest {
    pub contact: ContactId,
    pub channel: Channel,
    pub source: OpenSource,
    pub actor: Option<ActorId>,
    pub request_id: Option<Uuid>,
}

/// What recording a message did.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The conversation the message belongs to; none for an outbound message while the contact
    /// has no open conversation.
    pub conversation: Option<Conversation>,
    /// False when the message id was recorded before (a retry): nothing changed.
    pub recorded: bool,
    /// True when the message opened the conversation.
    pub opened: bool,
    /// Where the event this call wrote landed; `None` when it wrote none (a retry, or an
    /// outbound message with nothing open).
    pub position: Option<EventPosition>,
}

/// Attempts at a write that lost a race to a concurrent one (the one-open rule or a message id);
/// each retry sees the winner's committed row, so two are enough in practice.
const RACE_ATTEMPTS: usize = 5;

impl ConversationStore {
    /// Opens a conversation for `request.contact`, or finds the one already open. A USER open
    /// fails when one is open (naming it); the other sources return the open one, with `false`.
    /// With the position of the event written, `None` when none was.
    pub async fn open(
        &self,
        workspace: WorkspaceId,
        request: OpenRequest,
        contacts: &ContactDirectory,
    ) -> Result<(Conversation, bool, Option<EventPosition>), ApiError> {
        for _ in 0..RACE_ATTEMPTS {
            let mut conn = self.db.pool().acquire().await?;
            if let Some(replayed) = self
                .replayed(&mut conn, workspace, request.request_id)
                .await?
            {
                if replayed.contact != request.contact {
                    return Err(reused_request_id());
                }
                return Ok((replayed, true, None));
            }
            if let Some(open) = self
                .open_of(&mut conn, workspace, request.contact, false)
                .await?
            {
                return match request.source {
                    OpenSource::User => Err(ConversationError::AlreadyOpen {
                        contact: request.contact,
                        open: open.id,
                    }
                    .into()),
                    _ => Ok((open, false, None)),
                };
            }
            drop(conn);
            contacts.ensure_can_open(workspace, request.contact).await?;
            let now = self.now();
            let conversation = Conversation::open(
                workspace,
                request.contact,
                request.channel.clone(),
                request.source,
                request.actor.clone(),
                now,
            );
            let mut tx = self.db.pool().begin().await?;
            self.guard_contact(&mut tx, workspace, request.contact)
                .await?;
            let position = match self.insert_opened(&mut tx, &conversation).await {
                Err(InsertError::LostRace) => continue,
                Err(InsertError::Api(error)) => return Err(error),
                Ok(position) => position,
            };
            self.remember(&mut tx, workspace, request.request_id, conversation.id)
                .await?;
            tx.commit().await?;
            self.events.notify_committed(workspace);
            return Ok((conversation, true, Some(position)));
        }
        Err(busy())
    }

    /// Inserts a newly opened conversation and its ConversationOpened event.
    async fn insert_opened(
        &self,
        conn: &mut AnyConnection,
        conversation: &Conversation,
    ) -> Result<EventPosition, InsertError> {
        match self.save(conn, conversation).await {
            Err(error) if is_unique_violation(&error) => return Err(InsertError::LostRace),
            other => other.map_err(ApiError::from)?,
        }
        Ok(self
            .record(
                conn,
                conversation,
                conversation.opened_at,
                ConversationChange::Opened,
            )
            .await?)
    }

    /// Records a message's metadata, idempotently by message id. An inbound message attaches to
    /// the contact's open conversation or opens one (after checking the contact); an outbound
    /// message attaches to the open conversation, or is kept alone when there is none (after
    /// checking that the contact exists).
    ///
    /// Into an open conversation (the common path) this is one transaction of six statements:
    /// the conversation locked with the settings read alongside, the message row, the
    /// conversation row written once, and the event (head, event row with its notice, index).
    pub async fn record_message(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        channel: Channel,
        mut message: Message,
        contacts: &ContactDirectory,
    ) -> Result<Recorded, ApiError> {
        // Unset, the channel's sending time is taken to be now.
        message.sent_at.get_or_insert_with(|| self.now());
        let mut contact_checked = false;
        for _ in 0..RACE_ATTEMPTS {
            let mut tx = self.db.pool().begin().await?;
            if let Some((open, settings)) = self
                .open_of_reading_settings(&mut tx, workspace, contact)
                .await?
            {
                return self
                    .record_into_open(tx, workspace, contact, open, &settings, &message)
                    .await;
            }
            // Nothing is open: what follows needs the network, which has no place inside a
            // transaction. This one only read, so ending it costs nothing.
            tx.commit().await?;
            if self.message_known(workspace, &message).await? {
                return self.replay_of(workspace, contact, &message).await;
            }
            if message.direction == crate::domain::Direction::Inbound {
                contacts.ensure_can_open(workspace, contact).await?;
                match self
                    .record_opening(workspace, contact, &channel, &message)
                    .await
                {
                    Err(InsertError::LostRace) => continue,
                    Err(InsertError::Api(error)) => return Err(error),
                    Ok(recorded) => return Ok(recorded),
                }
            }
            if !contact_checked {
                // An outbound message with nothing open is kept on its own, but its contact must
                // still be one of the workspace's. Then start over: a conversation may have
                // opened meanwhile.
                contacts.ensure_exists(workspace, contact).await?;
                contact_checked = true;
                continue;
            }
            let mut tx = self.db.pool().begin().await?;
            if self
                .open_of(&mut tx, workspace, contact, true)
                .await?
                .is_some()
            {
                // Opened since the check above: attach to it on the next attempt.
                continue;
            }
            if !self
                .insert_message(&mut tx, workspace, contact, None, &message)
                .await?
            {
                drop(tx);
                return self.replay_of(workspace, contact, &message).await;
            }
            tx.commit().await?;
            return Ok(Recorded {
                conversation: None,
                recorded: true,
                opened: false,
                position: None,
            });
        }
        Err(busy())
    }

    /// Records `message` into the contact's `open` conversation, locked by `tx`, and commits.
    async fn record_into_open(
        &self,
        mut tx: sqlx::Transaction<'static, sqlx::Any>,
        workspace: WorkspaceId,
        contact: ContactId,
        mut conversation: Conversation,
        settings: &crate::domain::WorkspaceSettings,
        message: &Message,
    ) -> Result<Recorded, ApiError> {
        if !self
            .insert_message(&mut tx, workspace, contact, Some(&conversation), message)
            .await?
        {
            drop(tx);
            return self.replay_of(workspace, contact, message).await;
        }
        let now = self.now();
        let effect = conversation.record(message, now, settings);
        self.save(&mut tx, &conversation).await?;
        let change = ConversationChange::MessageRecorded {
            message,
            effect,
            opened_conversation: false,
        };
        let position = self.record(&mut tx, &conversation, now, change).await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(Recorded {
            conversation: Some(conversation),
            recorded: true,
            opened: false,
            position: Some(position),
        })
    }

    /// Opens a conversation with an inbound `message`, the contact checked already: one
    /// transaction that writes the conversation row once (as the message leaves it), the message
    /// row and both events (opened, message recorded). `LostRace` when another call opened one
    /// for the contact first.
    async fn record_opening(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        channel: &Channel,
        message: &Message,
    ) -> Result<Recorded, InsertError> {
        let mut tx = self.db.pool().begin().await.map_err(ApiError::from)?;
        let settings = self
            .guard_contact_reading_settings(&mut tx, workspace, contact)
            .await?;
        let now = self.now();
        let opened = Conversation::open(
            workspace,
            contact,
            channel.clone(),
            OpenSource::InboundMessage,
            None,
            now,
        );
        let mut conversation = opened.clone();
        let effect = conversation.record(message, now, &settings);
        match self.save(&mut tx, &conversation).await {
            Err(error) if is_unique_violation(&error) => return Err(InsertError::LostRace),
            other => other.map_err(ApiError::from)?,
        }
        if !self
            .insert_message(&mut tx, workspace, contact, Some(&conversation), message)
            .await?
        {
            // Recorded by a concurrent call since the check: answer as a retry.
            drop(tx);
            return Ok(self.replay_of(workspace, contact, message).await?);
        }
        let recorded = ConversationChange::MessageRecorded {
            message,
            effect,
            opened_conversation: true,
        };
        let positions = self
            .record_all(
                &mut tx,
                &mut [
                    (&opened, opened.opened_at, Some(ConversationChange::Opened)),
                    (&conversation, now, Some(recorded)),
                ],
            )
            .await?;
        tx.commit().await.map_err(ApiError::from)?;
        self.events.notify_committed(workspace);
        Ok(Recorded {
            conversation: Some(conversation),
            recorded: true,
            opened: true,
            position: positions.last().copied(),
        })
    }

    /// Inserts a message's row; false when its id was recorded before.
    pub(super) async fn insert_message(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
        conversation: Option<&Conversation>,
        message: &Message,
    ) -> Result<bool, ApiError> {
        let inserted = sqlx::query(
            "INSERT INTO messages (workspace_id, message_id, conversation_id, contact_id, direction,
                 author_kind, author_id, sent_at, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (workspace_id, message_id) DO NOTHING",
        )
        .bind(workspace.to_string())
        .bind(message.id.to_string())
        .bind(conversation.map(|c| c.id.to_string()))
        .bind(contact.to_string())
        .bind(message.direction.as_str())
        .bind(message.author_kind.as_str())
        .bind(message.author_id.as_ref().map(ToString::to_string))
        .bind(message.sent_at.map(charla_runtime::clock::to_micros))
        .bind(charla_runtime::clock::to_micros(self.now()))
        .execute(&mut *conn)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    async fn message_known(
        &self,
        workspace: WorkspaceId,
        message: &Message,
    ) -> Result<bool, ApiError> {
        Ok(self.recorded_message(workspace, message).await?.is_some())
    }

    /// A recorded message's contact and conversation (none when it has none); `None` when the
    /// message id is unknown.
    async fn recorded_message(
        &self,
        workspace: WorkspaceId,
        message: &Message,
    ) -> Result<Option<(String, Option<ConversationId>)>, ApiError> {
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT contact_id, conversation_id FROM messages
             WHERE workspace_id = $1 AND message_id = $2",
        )
        .bind(workspace.to_string())
        .bind(message.id.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let contact: String = row.try_get(0)?;
        let id: Option<String> = row.try_get(1)?;
        let id = id
            .map(|id| Uuid::parse_str(&id).map(ConversationId::from_uuid))
            .transpose()
            .map_err(|e| ApiError::Internal(format!("stored message: {e}")))?;
        Ok(Some((contact, id)))
    }

    /// The answer to a message recorded before: its conversation as it is now, nothing changed.
    /// The same id recorded for another contact is not a retry but a collision, and is refused.
    async fn replay_of(
        &self,
        workspace: WorkspaceId,
        contact: ContactId,
        message: &Message,
    ) -> Result<Recorded, ApiError> {
        let (recorded_for, conversation) = self
            .recorded_message(workspace, message)
            .await?
            .ok_or_else(|| ApiError::Internal("a recorded message vanished".into()))?;
        if recorded_for != contact.to_string() {
            return Err(ApiError::already_exists(
                "MESSAGE_ID_TAKEN",
                format!(
                    "message id {} is recorded for another contact; message ids must be unique in \
                     the workspace (prefix a channel's per-chat ids with the chat)",
                    message.id
                ),
            )
            .with_metadata("contact_id", recorded_for));
        }
        let conversation = match conversation {
            Some(id) => Some(self.get(workspace, id).await?),
            None => None,
        };
        Ok(Recorded {
            conversation,
            recorded: false,
            opened: false,
            position: None,
        })
    }

    /// Closes a conversation. A retry with the same `request_id` returns the closed conversation
    /// again; any other close of a closed conversation fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn close(
        &self,
        workspace: WorkspaceId,
        id: ConversationId,
        source: CloseSource,
        actor: Option<ActorId>,
        note: ClosingNote,
        request_id: Option<Uuid>,
    ) -> Result<(Conversation, Option<EventPosition>), ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut conversation = self.load(&mut tx, workspace, id, true).await?;
        if let Some(replayed) = self.replayed(&mut tx, workspace, request_id).await? {
            if replayed.id != id {
                return Err(reused_request_id());
            }
            return Ok((replayed, None));
        }
        let settings = self.settings_in(&mut tx, workspace).await?;
        let now = self.now();
        conversation.close(source, actor, note, now, &settings)?;
        self.save(&mut tx, &conversation).await?;
        let position = self
            .record(&mut tx, &conversation, now, ConversationChange::Closed)
            .await?;
        self.remember(&mut tx, workspace, request_id, id).await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok((conversation, Some(position)))
    }

    /// Sets, clears or keeps the assignee user and the team in one change, written as one event
    /// (see [`Conversation::reassign`]). Assigning what is already assigned changes nothing.
    pub async fn assign(
        &self,
        workspace: WorkspaceId,
        id: ConversationId,
        assignee: AssignmentUpdate,
        team: AssignmentUpdate,
        actor: Option<ActorId>,
    ) -> Result<(Conversation, Option<EventPosition>), ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut conversation = self.load(&mut tx, workspace, id, true).await?;
        let now = self.now();
        let mut position = None;
        if let Some((change, kind)) = conversation.reassign(assignee, team, now)? {
            self.save(&mut tx, &conversation).await?;
            let actor = actor.map(|a| a.to_string());
            let change = match kind {
                AssignmentKind::Assigned => ConversationChange::Assigned { change, actor },
                AssignmentKind::Unassigned => ConversationChange::Unassigned { change, actor },
            };
            position = Some(self.record(&mut tx, &conversation, now, change).await?);
            tx.commit().await?;
            self.events.notify_committed(workspace);
        }
        Ok((conversation, position))
    }

    /// Clears the assignee and/or the team. Clearing what is not assigned changes nothing.
    pub async fn unassign(
        &self,
        workspace: WorkspaceId,
        id: ConversationId,
        clear_assignee: bool,
        clear_team: bool,
        actor: Option<ActorId>,
    ) -> Result<(Conversation, Option<EventPosition>), ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut conversation = self.load(&mut tx, workspace, id, true).await?;
        let mut position = None;
        if let Some(change) = conversation.unassign(clear_assignee, clear_team)? {
            let now = self.now();
            self.save(&mut tx, &conversation).await?;
            let actor = actor.map(|a| a.to_string());
            let change = ConversationChange::Unassigned { change, actor };
            position = Some(self.record(&mut tx, &conversation, now, change).await?);
            tx.commit().await?;
            self.events.notify_committed(workspace);
        }
        Ok((conversation, position))
    }
}

/// Why inserting an opened conversation failed.
enum InsertError {
    /// Another request opened one for the contact first.
    LostRace,
    Api(ApiError),
}

impl From<ApiError> for InsertError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

fn reused_request_id() -> ApiError {
    ApiError::invalid(
        "request_id",
        "was already used for a different call; use a new one",
    )
}

fn busy() -> ApiError {
    ApiError::Unavailable("the contact's conversations kept changing under this call; retry".into())
}
