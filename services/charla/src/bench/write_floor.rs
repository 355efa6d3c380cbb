//! The floor of live writes: the smallest transaction the conversation rules need, run through
//! sqlx on the conversation service's own database (same engine, same pool settings, same
//! pragmas) without gRPC. Its tables are the bench's own (`bench_floor_*`), shaped like the
//! service's essentials: a conversation row with the one-open-per-contact index, a message row
//! unique by id, and an event appended under a partition head row. The service's own tables are
//! its business (and change); this is what any design of them must at least do.

use charla_runtime::db::{Backend, Database};
use sqlx::{AssertSqlSafe, Row};

/// The scratch tables, on either engine (`{blob}` is the engine's bytes type).
const TABLES: [&str; 5] = [
    "CREATE TABLE bench_floor_conversations (
         workspace_id TEXT NOT NULL, conversation_id TEXT NOT NULL, contact_id TEXT NOT NULL,
         is_open BIGINT NOT NULL, message_count BIGINT NOT NULL, last_message_at BIGINT NOT NULL,
         PRIMARY KEY (workspace_id, conversation_id))",
    "CREATE UNIQUE INDEX bench_floor_one_open
         ON bench_floor_conversations (workspace_id, contact_id) WHERE is_open = 1",
    "CREATE TABLE bench_floor_messages (
         workspace_id TEXT NOT NULL, message_id TEXT NOT NULL, conversation_id TEXT NOT NULL,
         direction BIGINT NOT NULL, sent_at BIGINT NOT NULL,
         PRIMARY KEY (workspace_id, message_id))",
    "CREATE TABLE bench_floor_heads (partition_no BIGINT PRIMARY KEY, last_seq BIGINT NOT NULL)",
    "CREATE TABLE bench_floor_events (
         partition_no BIGINT NOT NULL, seq BIGINT NOT NULL, event_id TEXT NOT NULL,
         workspace_id TEXT NOT NULL, occurred_at BIGINT NOT NULL, payload {blob} NOT NULL,
         workspace_seq BIGINT, PRIMARY KEY (partition_no, seq))",
];

/// The floor's tables in the conversation database.
#[derive(Debug, Clone)]
pub struct WriteFloor {
    db: Database,
}

impl WriteFloor {
    /// Creates the scratch tables in `db` (the conversation service's database).
    pub async fn create(db: Database) -> Result<Self, String> {
        let blob = match db.backend() {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        };
        for statement in TABLES {
            sqlx::query(AssertSqlSafe(statement.replace("{blob}", blob)))
                .execute(db.pool())
                .await
                .map_err(|e| format!("can't create the floor's tables: {e}"))?;
        }
        sqlx::query("INSERT INTO bench_floor_heads (partition_no, last_seq) VALUES (0, 0)")
            .execute(db.pool())
            .await
            .map_err(|e| format!("can't create the floor's tables: {e}"))?;
        Ok(Self { db })
    }

    /// Opens a conversation for `contact` without a message (what the warm-up of a caller's
    /// contact does in charla).
    pub async fn open(&self, workspace: &str, contact: &str) -> Result<(), String> {
        self.record(workspace, contact, &format!("open-{contact}"), &[])
            .await
    }

    /// One inbound message recorded: into the contact's open conversation, or opening one (one
    /// transaction either way, the conversation row written once, the events appended last).
    pub async fn record(
        &self,
        workspace: &str,
        contact: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), String> {
        self.record_message(workspace, contact, message_id, payload)
            .await
            .map_err(|e| format!("the floor's write failed: {e}"))
    }

    async fn record_message(
        &self,
        workspace: &str,
        contact: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), sqlx::Error> {
        let now = charla_runtime::clock::to_micros(std::time::SystemTime::now());
        let mut tx = begin_writing(&self.db).await?;
        let open = sqlx::query(AssertSqlSafe(format!(
            "SELECT conversation_id FROM bench_floor_conversations
             WHERE workspace_id = $1 AND contact_id = $2 AND is_open = 1{}",
            self.db.row_lock()
        )))
        .bind(workspace)
        .bind(contact)
        .fetch_optional(&mut *tx)
        .await?;
        let (conversation, events) = match open {
            Some(row) => {
                let id: String = row.try_get(0)?;
                sqlx::query(
                    "UPDATE bench_floor_conversations
                     SET message_count = message_count + 1, last_message_at = $3
                     WHERE workspace_id = $1 AND conversation_id = $2",
                )
                .bind(workspace)
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                (id, 1)
            }
            None => {
                let id = uuid::Uuid::now_v7().to_string();
                sqlx::query(
                    "INSERT INTO bench_floor_conversations
                     (workspace_id, conversation_id, contact_id, is_open, message_count,
                      last_message_at)
                     VALUES ($1, $2, $3, 1, 1, $4)",
                )
                .bind(workspace)
                .bind(&id)
                .bind(contact)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                // Opened, and the message recorded.
                (id, 2)
            }
        };
        sqlx::query(
            "INSERT INTO bench_floor_messages
             (workspace_id, message_id, conversation_id, direction, sent_at)
             VALUES ($1, $2, $3, 1, $4)",
        )
        .bind(workspace)
        .bind(message_id)
        .bind(&conversation)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let last: i64 = sqlx::query(
            "UPDATE bench_floor_heads SET last_seq = last_seq + $1 WHERE partition_no = 0
             RETURNING last_seq",
        )
        .bind(events)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for seq in last - events + 1..=last {
            sqlx::query(
                "INSERT INTO bench_floor_events
                 (partition_no, seq, event_id, workspace_id, occurred_at, payload)
                 VALUES (0, $1, $2, $3, $4, $5)",
            )
            .bind(seq)
            .bind(uuid::Uuid::now_v7().to_string())
            .bind(workspace)
            .bind(now)
            .bind(payload)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}

/// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`):
/// the bench is a second process writing the service's file, and a deferred transaction that
/// read first would fail, not wait, when the service commits between its read and its write.
pub async fn begin_writing(
    db: &Database,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    match db.backend() {
        Backend::Sqlite => db.pool().begin_with("BEGIN IMMEDIATE").await,
        Backend::Postgres => db.pool().begin().await,
    }
}
