//! The conversation store: every read and write of conversations. Each write is one transaction
//! that also appends the event recording it (see `charla_runtime::event_log`).

mod auto_close;
mod event_index;
mod import;
mod lifecycle;
mod merge;
mod queries;
mod rows;
mod settings;

use std::time::SystemTime;

use charla_runtime::ApiError;
use charla_runtime::clock::SharedClock;
use charla_runtime::db::{Backend, Database, MigrationFile, Migrations};
use charla_runtime::event_log::{self, EventLog, EventPosition};
use charla_runtime::planner_statistics::PlannerStatistics;
use charla_runtime::test_clock;
use charla_runtime::workspace::WorkspaceId;
use sqlx::{AnyConnection, AssertSqlSafe, Row};
use uuid::Uuid;

use crate::domain::{
    ContactId, Conversation, ConversationError, ConversationId, WorkspaceSettings,
};
use crate::events::{self, ConversationChange};

pub use event_index::EventPage;
pub use import::ImportOutcome;
pub use lifecycle::{OpenRequest, Recorded};
pub use queries::{ConversationFilter, ConversationPage};

/// The migrations of the conversation database.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        event_log::SQLITE_MIGRATION,
        event_log::SQLITE_WORKSPACE_SEQUENCE_MIGRATION,
        event_log::SQLITE_PARTITION_COUNT_MIGRATION,
        CONVERSATIONS_MIGRATION,
        MERGED_CONTACTS_MIGRATION,
        CONVERSATION_EVENTS_MIGRATION,
        LAST_ASSIGNEE_MIGRATION,
        test_clock::fleet::MIGRATION,
        FIRST_AUTOMATED_REPLY_MIGRATION,
    ],
    postgres: &[
        event_log::POSTGRES_MIGRATION,
        event_log::POSTGRES_WORKSPACE_SEQUENCE_MIGRATION,
        event_log::POSTGRES_PARTITION_COUNT_MIGRATION,
        CONVERSATIONS_MIGRATION,
        MERGED_CONTACTS_MIGRATION,
        CONVERSATION_EVENTS_MIGRATION,
        LAST_ASSIGNEE_MIGRATION,
        test_clock::fleet::MIGRATION,
        FIRST_AUTOMATED_REPLY_MIGRATION,
    ],
};

const FIRST_AUTOMATED_REPLY_MIGRATION: MigrationFile = MigrationFile {
    version: 6,
    description: "first automated reply",
    sql: include_str!("../../migrations/0006_first_automated_reply.sql"),
};

const LAST_ASSIGNEE_MIGRATION: MigrationFile = MigrationFile {
    version: 5,
    description: "last assignee",
    sql: include_str!("../../migrations/0005_last_assignee.sql"),
};

const CONVERSATION_EVENTS_MIGRATION: MigrationFile = MigrationFile {
    version: 4,
    description: "conversation events",
    sql: include_str!("../../migrations/0004_conversation_events.sql"),
};

const MERGED_CONTACTS_MIGRATION: MigrationFile = MigrationFile {
    version: 3,
    description: "merged contacts",
    sql: include_str!("../../migrations/0003_merged_contacts.sql"),
};

const CONVERSATIONS_MIGRATION: MigrationFile = MigrationFile {
    version: 2,
    description: "conversations",
    sql: include_str!("../../migrations/0002_conversations.sql"),
};

/// Conversations, their messages and their events, in one database.
#[derive(Debug, Clone)]
pub struct ConversationStore {
    db: Database,
    events: EventLog,
    clock: SharedClock,
    /// Kept fresh while history is imported (looked up by contact and external id per batch).
    statistics: PlannerStatistics,
}

/// The advisory-lock key of one contact (FNV-1a over workspace and contact ids).
fn contact_lock_key(workspace: WorkspaceId, contact: ContactId) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in workspace
        .as_uuid()
        .as_bytes()
        .iter()
        .chain(contact.as_uuid().as_bytes())
    {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

/// Whether a database error is a unique-index violation (a lost race on the one-open rule, an
/// idempotency key or a message id).
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

impl ConversationStore {
    /// A store over a migrated database.
    pub fn new(db: Database, events: EventLog, clock: SharedClock) -> Self {
        let statistics = PlannerStatistics::new(db.clone(), &["conversations"]);
        Self {
            db,
            events,
            clock,
            statistics,
        }
    }

    /// The event log the store writes to.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    /// The current time, at stored precision.
    fn now(&self) -> SystemTime {
        self.clock.now_stored()
    }

    async fn load(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        id: ConversationId,
        lock: bool,
    ) -> Result<Conversation, ApiError> {
        let lock = if lock { self.db.row_lock() } else { "" };
        let sql = format!(
            "{} WHERE workspace_id = $1 AND conversation_id = $2{lock}",
            *rows::SELECT
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .bind(id.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .ok_or(ConversationError::NotFound(id))?;
        rows::conversation_from_row(&row)
    }

    /// The contact's open conversation, if it has one.
    async fn open_of(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
        lock: bool,
    ) -> Result<Option<Conversation>, ApiError> {
        let lock = if lock { self.db.row_lock() } else { "" };
        let sql = format!(
            "{} WHERE workspace_id = $1 AND contact_id = $2 AND status = 'open'{lock}",
            *rows::SELECT
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .bind(contact.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(rows::conversation_from_row).transpose()
    }

    /// The contact's open conversation, locked, with the workspace's settings read in the same
    /// statement: the first statement of a message's transaction. `None` when none is open.
    async fn open_of_reading_settings(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<Option<(Conversation, WorkspaceSettings)>, ApiError> {
        let sql = format!(
            "SELECT {}, {} FROM conversations
             WHERE workspace_id = $1 AND contact_id = $2 AND status = 'open'{}",
            rows::COLUMNS.join(", "),
            settings::COLUMNS_OF_WORKSPACE_1,
            self.db.row_lock()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .bind(contact.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        row.map(|row| {
            Ok((
                rows::conversation_from_row(&row)?,
                settings::settings_from_row(&row)?,
            ))
        })
        .transpose()
    }

    /// Writes the conversation's row. Fails with a unique violation when it is a second open
    /// conversation of its contact.
    async fn save(&self, conn: &mut AnyConnection, c: &Conversation) -> Result<(), sqlx::Error> {
        rows::bind_conversation(sqlx::query(AssertSqlSafe(rows::UPSERT.as_str())), c)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Appends the event recording `change`, and indexes it under its conversation.
    async fn record(
        &self,
        conn: &mut AnyConnection,
        conversation: &Conversation,
        occurred_at: SystemTime,
        change: ConversationChange<'_>,
    ) -> Result<EventPosition, ApiError> {
        let positions = self
            .record_all(conn, &mut [(conversation, occurred_at, Some(change))])
            .await?;
        Ok(positions[0])
    }

    /// Appends the events of one workspace's `changes` in order, each with the conversation as
    /// that change left it, and indexes each under its conversation: four statements whatever
    /// their number (see `EventLog::append_all`). Each change is taken out of its slot as it is
    /// encoded.
    async fn record_all(
        &self,
        conn: &mut AnyConnection,
        changes: &mut [(&Conversation, SystemTime, Option<ConversationChange<'_>>)],
    ) -> Result<Vec<EventPosition>, ApiError> {
        let Some(workspace) = changes.first().map(|(c, _, _)| c.workspace) else {
            return Ok(Vec::new());
        };
        let times: Vec<SystemTime> = changes.iter().map(|(_, at, _)| *at).collect();
        let appended = self
            .events
            .append_all(conn, workspace, &times, |index, position| {
                let (conversation, at, change) = &mut changes[index];
                let change = change.take().expect("each change is encoded once");
                events::encode(position, conversation, *at, change)
            })
            .await?;
        let indexed: Vec<(ConversationId, u64)> = changes
            .iter()
            .zip(&appended)
            .map(|((conversation, _, _), event)| (conversation.id, event.workspace_sequence))
            .collect();
        event_index::index(conn, self.db.backend(), workspace, &indexed).await?;
        Ok(appended.iter().map(|event| event.position).collect())
    }

    /// Inside a transaction that opens a conversation for `contact` or applies its merge: takes
    /// the contact's lock (PostgreSQL; SQLite has one writer anyway) and refuses if the contact
    /// was merged, so an opening and a merge of the same contact never interleave.
    async fn guard_contact(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<(), ApiError> {
        self.guard_contact_reading_settings(conn, workspace, contact)
            .await
            .map(drop)
    }

    /// [`Self::guard_contact`], reading the workspace's settings in the same statement as the
    /// merge check (an opening needs both; one round trip fewer).
    async fn guard_contact_reading_settings(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        contact: ContactId,
    ) -> Result<WorkspaceSettings, ApiError> {
        if self.db.backend() == Backend::Postgres {
            // A statement of its own: a statement's snapshot is taken when it starts, so a merge
            // that commits while this waits for the lock is seen only by the next statement.
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(contact_lock_key(workspace, contact))
                .execute(&mut *conn)
                .await?;
        }
        let sql = format!(
            "SELECT (SELECT merged_into FROM merged_contacts
                     WHERE workspace_id = $1 AND contact_id = $2) AS merged_into, {}",
            settings::COLUMNS_OF_WORKSPACE_1
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_string())
            .bind(contact.to_string())
            .fetch_one(&mut *conn)
            .await?;
        let merged: Option<String> = row.try_get("merged_into")?;
        if let Some(into) = merged {
            let into = Uuid::parse_str(&into)
                .map(ContactId::from_uuid)
                .map_err(|e| ApiError::Internal(format!("stored merge: {e}")))?;
            return Err(ConversationError::ContactMerged { contact, into }.into());
        }
        settings::settings_from_row(&row)
    }

    /// The conversation an idempotency key already produced, if it was used before.
    async fn replayed(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        request_id: Option<Uuid>,
    ) -> Result<Option<Conversation>, ApiError> {
        let Some(request_id) = request_id else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT conversation_id FROM request_ids WHERE workspace_id = $1 AND request_id = $2",
        )
        .bind(workspace.to_string())
        .bind(request_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get(0)?;
        let id = Uuid::parse_str(&id).map_err(|e| ApiError::Internal(e.to_string()))?;
        self.load(conn, workspace, ConversationId::from_uuid(id), false)
            .await
            .map(Some)
    }

    /// Remembers that `request_id` produced `conversation`.
    async fn remember(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        request_id: Option<Uuid>,
        conversation: ConversationId,
    ) -> Result<(), ApiError> {
        if let Some(request_id) = request_id {
            sqlx::query(
                "INSERT INTO request_ids (workspace_id, request_id, conversation_id)
                 VALUES ($1, $2, $3)",
            )
            .bind(workspace.to_string())
            .bind(request_id.to_string())
            .bind(conversation.to_string())
            .execute(&mut *conn)
            .await
            .map_err(|error| {
                if is_unique_violation(&error) {
                    ApiError::invalid(
                        "request_id",
                        "is in use by a concurrent call; use a new one",
                    )
                } else {
                    ApiError::from(error)
                }
            })?;
        }
        Ok(())
    }
}
