//! Each conversation's own events: an index from a conversation to its events' workspace
//! sequences, written with every event, and the paged read of ListConversationEvents.

use charla_proto::charla::conversation::v1 as pb;
use charla_runtime::ApiError;
use charla_runtime::db::Backend;
use charla_runtime::event_log::StoredEvent;
use charla_runtime::workspace::WorkspaceId;
use prost::Message as _;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::ConversationStore;
use crate::domain::ConversationId;

/// Events of the log read per query while indexing the events written before the index existed.
const BACKFILL_BATCH: i64 = 1000;
/// Events indexed by one insert at most.
const MAX_ROWS_PER_INSERT: usize = 5000;

/// A page of one conversation's events, numbered by workspace sequence.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub events: Vec<StoredEvent>,
    /// The workspace sequence to continue after; `None` on the last page.
    pub next_after: Option<u64>,
}

/// Inside the transaction that appended them: files each event (conversation, workspace sequence)
/// of `workspace` under its conversation, in one statement.
pub(super) async fn index(
    conn: &mut AnyConnection,
    backend: Backend,
    workspace: WorkspaceId,
    events: &[(ConversationId, u64)],
) -> Result<(), ApiError> {
    if events.is_empty() {
        return Ok(());
    }
    // Two bound values a row (and the workspace): a long imported history is indexed in several
    // inserts.
    for chunk in events.chunks(MAX_ROWS_PER_INSERT.min((backend.max_binds() - 1) / 2)) {
        let values: Vec<String> = (0..chunk.len())
            .map(|row| format!("($1, ${}, ${})", 2 + row * 2, 3 + row * 2))
            .collect();
        let sql = format!(
            "INSERT INTO conversation_events (workspace_id, conversation_id, workspace_seq) \
             VALUES {}",
            values.join(", ")
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(workspace.to_string());
        for (conversation, workspace_sequence) in chunk {
            query = query
                .bind(conversation.to_string())
                .bind(*workspace_sequence as i64);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

impl ConversationStore {
    /// Up to `size` events of conversation `id` after workspace sequence `after`, in the order
    /// they were written. NOT_FOUND when the workspace has no such conversation.
    pub async fn conversation_events(
        &self,
        workspace: WorkspaceId,
        id: ConversationId,
        after: u64,
        size: usize,
    ) -> Result<EventPage, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        self.load(&mut conn, workspace, id, false).await?;
        let rows = sqlx::query(
            "SELECT e.workspace_seq, e.partition_no, e.payload
             FROM conversation_events c
             JOIN event_log e ON e.workspace_id = c.workspace_id AND e.workspace_seq = c.workspace_seq
             WHERE c.workspace_id = $1 AND c.conversation_id = $2 AND c.workspace_seq > $3
             ORDER BY c.workspace_seq LIMIT $4",
        )
        .bind(workspace.to_string())
        .bind(id.to_string())
        .bind(after.min(i64::MAX as u64) as i64)
        .bind(size as i64 + 1)
        .fetch_all(&mut *conn)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| {
                Ok(StoredEvent {
                    sequence: row.try_get::<i64, _>(0)? as u64,
                    partition: row.try_get::<i64, _>(1)? as u32,
                    payload: row.try_get(2)?,
                    head: 0,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let more = events.len() > size;
        events.truncate(size);
        let next_after = more.then(|| events.last().map(|e| e.sequence)).flatten();
        Ok(EventPage { events, next_after })
    }

    /// Where conversation `id`'s latest event is in the stream (partition, partition sequence):
    /// what a call that changed nothing answers, as its effects are all at or before it. `None`
    /// when it has no indexed event.
    pub async fn latest_position(
        &self,
        workspace: WorkspaceId,
        id: ConversationId,
    ) -> Result<Option<(u32, u64)>, ApiError> {
        let row = sqlx::query(
            "SELECT e.partition_no, e.seq
             FROM conversation_events c
             JOIN event_log e ON e.workspace_id = c.workspace_id AND e.workspace_seq = c.workspace_seq
             WHERE c.workspace_id = $1 AND c.conversation_id = $2
             ORDER BY c.workspace_seq DESC LIMIT 1",
        )
        .bind(workspace.to_string())
        .bind(id.to_string())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            Ok((
                row.try_get::<i64, _>(0)? as u32,
                row.try_get::<i64, _>(1)? as u64,
            ))
        })
        .transpose()
    }

    /// Indexes the events written before the index existed, once per database: a replica that
    /// starts finds the marker and does nothing. Concurrent or interrupted runs are harmless
    /// (an event indexed twice is the same row).
    pub async fn backfill_event_index(&self) -> Result<(), ApiError> {
        let pool = self.db.pool();
        let done = sqlx::query("SELECT done FROM conversation_events_backfilled")
            .fetch_optional(pool)
            .await?;
        if done.is_some() {
            return Ok(());
        }
        let (mut partition, mut sequence) = (0_i64, 0_i64);
        loop {
            let rows = sqlx::query(
                "SELECT partition_no, seq, workspace_id, workspace_seq, payload FROM event_log
                 WHERE (partition_no, seq) > ($1, $2)
                 ORDER BY partition_no, seq LIMIT $3",
            )
            .bind(partition)
            .bind(sequence)
            .bind(BACKFILL_BATCH)
            .fetch_all(pool)
            .await?;
            let mut tx = pool.begin().await?;
            for row in &rows {
                (partition, sequence) = (row.try_get(0)?, row.try_get(1)?);
                let workspace: String = row.try_get(2)?;
                let workspace_seq: i64 = row.try_get(3)?;
                let payload: Vec<u8> = row.try_get(4)?;
                let event = pb::ConversationEvent::decode(payload.as_slice())
                    .map_err(|e| ApiError::Internal(format!("stored event is unreadable: {e}")))?;
                sqlx::query(
                    "INSERT INTO conversation_events (workspace_id, conversation_id, workspace_seq)
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                )
                .bind(workspace)
                .bind(event.conversation_id)
                .bind(workspace_seq)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            if (rows.len() as i64) < BACKFILL_BATCH {
                break;
            }
        }
        sqlx::query("INSERT INTO conversation_events_backfilled (done) VALUES (1)")
            .execute(pool)
            .await?;
        Ok(())
    }
}
