//! Importing history: one past conversation per call, written with all its steps' events in one
//! transaction, idempotent by external id.

use std::collections::HashSet;

use charla_runtime::ApiError;
use charla_runtime::clock::to_micros;
use charla_runtime::event_log::EventPosition;
use charla_runtime::workspace::WorkspaceId;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{ConversationStore, is_unique_violation, rows};
use crate::contacts::ContactDirectory;
use crate::domain::{ContactId, ConversationId, History, Step};
use crate::events::ConversationChange;

/// What became of one imported conversation.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportOutcome {
    /// Written now; the position of its last event.
    Imported(ConversationId, EventPosition),
    /// Imported before under the same external id; nothing changed.
    Unchanged(ConversationId),
}

impl ConversationStore {
    /// Imports one past conversation, or finds it imported already. `known` holds the contacts
    /// this import has already found to exist, so a contact with many past conversations is
    /// looked up once.
    pub async fn import(
        &self,
        workspace: WorkspaceId,
        history: &History,
        contacts: &ContactDirectory,
        known: &mut HashSet<ContactId>,
    ) -> Result<ImportOutcome, ApiError> {
        if let Some(id) = self.imported_as(workspace, history).await? {
            return Ok(ImportOutcome::Unchanged(id));
        }
        if history.close.is_some() {
            if !known.contains(&history.contact) {
                contacts.ensure_exists(workspace, history.contact).await?;
                known.insert(history.contact);
            }
        } else {
            contacts.ensure_can_open(workspace, history.contact).await?;
        }
        let now = self.now();
        let mut tx = self.db.pool().begin().await?;
        if history.close.is_none() {
            self.guard_contact(&mut tx, workspace, history.contact)
                .await?;
        }
        let settings = self.settings_in(&mut tx, workspace).await?;
        let steps = history
            .replay(workspace, &settings, now)
            .map_err(|e| ApiError::invalid(e.field, e.description))?;
        self.ensure_no_overlap(&mut tx, workspace, history, now)
            .await?;
        let (conversation, _, _) = steps.last().expect("a replay has at least the opening");
        match self.save(&mut tx, conversation).await {
            Err(error) if is_unique_violation(&error) => {
                drop(tx);
                // The same external id imported concurrently, or an open conversation appeared.
                if let Some(id) = self.imported_as(workspace, history).await? {
                    return Ok(ImportOutcome::Unchanged(id));
                }
                return Err(ApiError::invalid(
                    "conversation.closed_at",
                    "the contact has an open conversation already; only its latest may stay open",
                ));
            }
            other => other?,
        }
        for (index, (message, _)) in history.messages.iter().enumerate() {
            if !self
                .insert_message(
                    &mut tx,
                    workspace,
                    history.contact,
                    Some(conversation),
                    message,
                )
                .await?
            {
                return Err(ApiError::invalid(
                    format!("conversation.messages[{index}].message_id"),
                    "is recorded already in this workspace",
                ));
            }
        }
        let mut last = None;
        for (snapshot, at, step) in &steps {
            let change = match step {
                Step::Opened => ConversationChange::Opened,
                Step::Message { index, effect } => ConversationChange::MessageRecorded {
                    message: &history.messages[*index].0,
                    effect: *effect,
                    opened_conversation: *index == 0
                        && history.messages[0].0.direction == crate::domain::Direction::Inbound
                        && history.opened_by == crate::domain::OpenSource::InboundMessage,
                },
                Step::Assigned { change, actor } => ConversationChange::Assigned {
                    change: change.clone(),
                    actor: actor.as_ref().map(ToString::to_string),
                },
                Step::Unassigned { change, actor } => ConversationChange::Unassigned {
                    change: change.clone(),
                    actor: actor.as_ref().map(ToString::to_string),
                },
                Step::Closed => ConversationChange::Closed,
            };
            last = Some(self.record(&mut tx, snapshot, *at, change).await?);
        }
        tx.commit().await?;
        self.events.notify_committed(workspace);
        let last = last.expect("a replay has at least the opening");
        Ok(ImportOutcome::Imported(conversation.id, last))
    }

    async fn imported_as(
        &self,
        workspace: WorkspaceId,
        history: &History,
    ) -> Result<Option<ConversationId>, ApiError> {
        let row = sqlx::query(
            "SELECT conversation_id FROM conversations WHERE workspace_id = $1 AND external_id = $2",
        )
        .bind(workspace.to_string())
        .bind(history.external_id.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            let id: String = row.try_get(0)?;
            Uuid::parse_str(&id)
                .map(ConversationId::from_uuid)
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
        .transpose()
    }

    /// The one-open rule over time: no other conversation of the contact may overlap this one.
    async fn ensure_no_overlap(
        &self,
        conn: &mut sqlx::AnyConnection,
        workspace: WorkspaceId,
        history: &History,
        now: std::time::SystemTime,
    ) -> Result<(), ApiError> {
        let end = match &history.close {
            Some(close) => to_micros(close.at),
            None => i64::MAX,
        };
        let sql = format!(
            "{} WHERE workspace_id = $1 AND contact_id = $2 AND opened_at < $3
                 AND (closed_at IS NULL OR closed_at > $4) LIMIT 1",
            *rows::SELECT
        );
        let overlapping = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .bind(history.contact.to_string())
            .bind(end)
            .bind(to_micros(history.opened_at))
            .fetch_optional(&mut *conn)
            .await?;
        if let Some(row) = overlapping {
            let other = rows::conversation_from_row(&row)?;
            let until = other
                .closed_at()
                .map(|at| format!("{:?}", at))
                .unwrap_or_else(|| format!("now ({:?}, still open)", now));
            return Err(ApiError::invalid(
                "conversation.opened_at",
                format!(
                    "overlaps conversation {} of the same contact (from {:?} until {until}): a contact has one open conversation at a time",
                    other.id, other.opened_at
                ),
            ));
        }
        Ok(())
    }
}
