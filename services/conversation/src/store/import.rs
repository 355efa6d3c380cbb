//! Importing history, idempotent by external id: one past conversation with all its steps' events
//! in one transaction ([`ConversationStore::import`]), or a batch of them in one transaction
//! ([`ConversationStore::import_batch`]), which writes together the items it can prove clean and
//! leaves every other one to the former, in order, so that each item's answer is the one it would
//! get on its own.

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use charla_runtime::ApiError;
use charla_runtime::clock::to_micros;
use charla_runtime::event_log::EventPosition;
use charla_runtime::workspace::WorkspaceId;
use sqlx::{AssertSqlSafe, Row};
use uuid::Uuid;

use super::{ConversationStore, is_unique_violation, rows};
use crate::contacts::ContactDirectory;
use crate::domain::{ContactId, Conversation, ConversationId, History, Step};
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
            let change = change_of(history, step);
            last = Some(self.record(&mut tx, snapshot, *at, change).await?);
        }
        tx.commit().await?;
        self.events.notify_committed(workspace);
        let last = last.expect("a replay has at least the opening");
        Ok(ImportOutcome::Imported(conversation.id, last))
    }

    /// Imports a batch of past conversations, answering each as [`Self::import`] would when
    /// called for them one by one, in order. The items that are provably clean (closed, new
    /// external id, contact found, a valid replay, no overlap with the contact's stored
    /// conversations nor with another item of the batch, message ids unique in the batch) are
    /// written together in one transaction with multi-row inserts; every other item, and every
    /// item of a batch whose write hits a conflict after all (a message id recorded before, a
    /// concurrent import), goes through [`Self::import`] afterwards, in order.
    pub async fn import_batch(
        &self,
        workspace: WorkspaceId,
        histories: &[History],
        contacts: &ContactDirectory,
        known: &mut HashSet<ContactId>,
    ) -> Vec<Result<ImportOutcome, ApiError>> {
        let mut outcomes: Vec<Option<Result<ImportOutcome, ApiError>>> =
            histories.iter().map(|_| None).collect();
        if let Err(error) = self
            .import_clean_ones(workspace, histories, contacts, known, &mut outcomes)
            .await
        {
            // Nothing of the batch was written: each item is tried on its own below.
            tracing::debug!(%error, "an import batch falls back to one item at a time");
            outcomes.iter_mut().for_each(|outcome| *outcome = None);
        }
        let mut answers = Vec::with_capacity(histories.len());
        for (history, outcome) in histories.iter().zip(outcomes) {
            answers.push(match outcome {
                Some(outcome) => outcome,
                None => self.import(workspace, history, contacts, known).await,
            });
        }
        answers
    }

    /// Writes the clean items of a batch in one transaction and sets their outcomes (and those of
    /// items imported before); leaves the others unset. An error means nothing was written.
    async fn import_clean_ones(
        &self,
        workspace: WorkspaceId,
        histories: &[History],
        contacts: &ContactDirectory,
        known: &mut HashSet<ContactId>,
        outcomes: &mut [Option<Result<ImportOutcome, ApiError>>],
    ) -> Result<(), ApiError> {
        let imported = self.imported_among(workspace, histories).await?;
        let mut candidates: Vec<usize> = Vec::new();
        let mut external_ids: HashMap<&str, usize> = HashMap::new();
        let mut message_ids: HashMap<&str, usize> = HashMap::new();
        for history in histories {
            *external_ids
                .entry(history.external_id.as_str())
                .or_default() += 1;
            for (message, _) in &history.messages {
                *message_ids.entry(message.id.as_str()).or_default() += 1;
            }
        }
        for (index, history) in histories.iter().enumerate() {
            if let Some(id) = imported.get(history.external_id.as_str()) {
                outcomes[index] = Some(Ok(ImportOutcome::Unchanged(*id)));
            } else if history.close.is_some()
                && external_ids[history.external_id.as_str()] == 1
                && history
                    .messages
                    .iter()
                    .all(|(message, _)| message_ids[message.id.as_str()] == 1)
            {
                candidates.push(index);
            }
        }
        self.check_contacts(workspace, histories, &mut candidates, contacts, known)
            .await;
        if candidates.is_empty() {
            return Ok(());
        }

        let now = self.now();
        let mut tx = self.db.pool().begin().await?;
        let settings = self.settings_in(&mut tx, workspace).await?;
        let stored = self
            .stored_spans(&mut tx, workspace, histories, &candidates)
            .await?;
        let mut replays = Vec::with_capacity(candidates.len());
        for index in std::mem::take(&mut candidates) {
            let history = &histories[index];
            let (start, end) = (history.opened_at, history.end(SystemTime::UNIX_EPOCH));
            let overlaps = |other_start: SystemTime, other_end: Option<SystemTime>| {
                other_start < end && other_end.is_none_or(|other_end| other_end > start)
            };
            let overlapping = stored
                .get(&history.contact)
                .is_some_and(|spans| spans.iter().any(|(s, e)| overlaps(*s, *e)))
                || histories.iter().enumerate().any(|(other, o)| {
                    other != index
                        && o.contact == history.contact
                        && overlaps(o.opened_at, o.close.as_ref().map(|c| c.at))
                });
            if overlapping {
                continue;
            }
            if let Ok(steps) = history.replay(workspace, &settings, now) {
                candidates.push(index);
                replays.push(steps);
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }

        let conversations: Vec<&Conversation> = replays
            .iter()
            .map(|steps| &steps.last().expect("a replay has at least the opening").0)
            .collect();
        self.insert_conversations(&mut tx, &conversations).await?;
        let messages: Vec<(&Conversation, &crate::domain::Message)> = candidates
            .iter()
            .zip(&conversations)
            .flat_map(|(index, conversation)| {
                histories[*index]
                    .messages
                    .iter()
                    .map(move |(message, _)| (*conversation, message))
            })
            .collect();
        self.insert_messages(&mut tx, workspace, &messages).await?;
        let mut changes = Vec::new();
        let mut last_event = Vec::with_capacity(candidates.len());
        for (index, steps) in candidates.iter().zip(&replays) {
            for (snapshot, at, step) in steps {
                changes.push((snapshot, *at, Some(change_of(&histories[*index], step))));
            }
            last_event.push(changes.len() - 1);
        }
        let positions = self.record_all(&mut tx, &mut changes).await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        self.statistics.written(candidates.len() as u64).await;
        for ((index, conversation), last) in candidates.iter().zip(&conversations).zip(last_event) {
            outcomes[*index] = Some(Ok(ImportOutcome::Imported(
                conversation.id,
                positions[last],
            )));
        }
        Ok(())
    }

    /// The conversations already imported under the batch's external ids, by external id.
    async fn imported_among(
        &self,
        workspace: WorkspaceId,
        histories: &[History],
    ) -> Result<HashMap<String, ConversationId>, ApiError> {
        let mut found = HashMap::new();
        if histories.is_empty() {
            return Ok(found);
        }
        let sql = format!(
            "SELECT external_id, conversation_id FROM conversations
             WHERE workspace_id = $1 AND external_id IN ({})",
            placeholders(2, histories.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workspace.to_string());
        for history in histories {
            query = query.bind(history.external_id.to_string());
        }
        for row in query.fetch_all(self.db.pool()).await? {
            let external_id: String = row.try_get(0)?;
            let id: String = row.try_get(1)?;
            let id = Uuid::parse_str(&id).map_err(|e| ApiError::Internal(e.to_string()))?;
            found.insert(external_id, ConversationId::from_uuid(id));
        }
        Ok(found)
    }

    /// Checks, in one call to the contact service, that the candidates' contacts not known yet
    /// exist; drops the candidates whose contact can't be confirmed (their own import says why:
    /// NOT_FOUND for a missing contact, UNAVAILABLE when the contact service can't answer).
    async fn check_contacts(
        &self,
        workspace: WorkspaceId,
        histories: &[History],
        candidates: &mut Vec<usize>,
        contacts: &ContactDirectory,
        known: &mut HashSet<ContactId>,
    ) {
        let mut unknown: Vec<ContactId> = candidates
            .iter()
            .map(|index| histories[*index].contact)
            .filter(|contact| !known.contains(contact))
            .collect();
        unknown.sort_unstable();
        unknown.dedup();
        if !unknown.is_empty() {
            known.extend(contacts.confirm_existing(workspace, &unknown).await);
        }
        candidates.retain(|index| known.contains(&histories[*index].contact));
    }

    /// The (opened, closed) spans of the stored conversations of the candidates' contacts.
    async fn stored_spans(
        &self,
        conn: &mut sqlx::AnyConnection,
        workspace: WorkspaceId,
        histories: &[History],
        candidates: &[usize],
    ) -> Result<HashMap<ContactId, Vec<(SystemTime, Option<SystemTime>)>>, ApiError> {
        let contacts: Vec<ContactId> = candidates
            .iter()
            .map(|index| histories[*index].contact)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let sql = format!(
            "SELECT contact_id, opened_at, closed_at FROM conversations
             WHERE workspace_id = $1 AND contact_id IN ({})",
            placeholders(2, contacts.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workspace.to_string());
        for contact in &contacts {
            query = query.bind(contact.to_string());
        }
        let mut spans: HashMap<ContactId, Vec<(SystemTime, Option<SystemTime>)>> = HashMap::new();
        for row in query.fetch_all(&mut *conn).await? {
            let contact: String = row.try_get(0)?;
            let contact = Uuid::parse_str(&contact)
                .map(ContactId::from_uuid)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let opened: i64 = row.try_get(1)?;
            let closed: Option<i64> = row.try_get(2)?;
            spans.entry(contact).or_default().push((
                charla_runtime::clock::from_micros(opened),
                closed.map(charla_runtime::clock::from_micros),
            ));
        }
        Ok(spans)
    }

    /// Inserts new conversations, many rows a statement. A unique violation (an external id
    /// imported meanwhile) fails the whole insert.
    async fn insert_conversations(
        &self,
        conn: &mut sqlx::AnyConnection,
        conversations: &[&Conversation],
    ) -> Result<(), ApiError> {
        let columns = rows::COLUMNS.len();
        for chunk in conversations.chunks((self.db.backend().max_binds() / columns).max(1)) {
            let values: Vec<String> = (0..chunk.len())
                .map(|row| format!("({})", placeholders(1 + row * columns, columns)))
                .collect();
            let sql = format!(
                "INSERT INTO conversations ({}) VALUES {}",
                rows::COLUMNS.join(", "),
                values.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for conversation in chunk {
                query = rows::bind_conversation(query, conversation);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Inserts messages of new conversations, many rows a statement. Fails when a message id is
    /// recorded already, so that the batch falls back to one item at a time (which names it).
    async fn insert_messages(
        &self,
        conn: &mut sqlx::AnyConnection,
        workspace: WorkspaceId,
        messages: &[(&Conversation, &crate::domain::Message)],
    ) -> Result<(), ApiError> {
        const COLUMNS: usize = 8;
        for chunk in messages.chunks((self.db.backend().max_binds() - 1) / COLUMNS) {
            let values: Vec<String> = (0..chunk.len())
                .map(|row| format!("($1, {})", placeholders(2 + row * COLUMNS, COLUMNS)))
                .collect();
            let sql = format!(
                "INSERT INTO messages (workspace_id, message_id, conversation_id, contact_id,
                     direction, author_kind, author_id, sent_at, recorded_at)
                 VALUES {} ON CONFLICT (workspace_id, message_id) DO NOTHING",
                values.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workspace.to_string());
            let recorded_at = to_micros(self.now());
            for (conversation, message) in chunk {
                query = query
                    .bind(message.id.to_string())
                    .bind(conversation.id.to_string())
                    .bind(conversation.contact.to_string())
                    .bind(message.direction.as_str())
                    .bind(message.author_kind.as_str())
                    .bind(message.author_id.as_ref().map(ToString::to_string))
                    .bind(message.sent_at.map(to_micros))
                    .bind(recorded_at);
            }
            let inserted = query.execute(&mut *conn).await?.rows_affected();
            if inserted != chunk.len() as u64 {
                return Err(ApiError::Unavailable(
                    "a message id of the batch is recorded already".into(),
                ));
            }
        }
        Ok(())
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

/// The event recording one step of an imported history.
fn change_of<'a>(history: &'a History, step: &'a Step) -> ConversationChange<'a> {
    match step {
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
    }
}

/// `$first, $first+1, ...`, `count` of them.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
