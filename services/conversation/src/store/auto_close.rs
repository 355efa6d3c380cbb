//! Auto-close: closing the conversations whose deadline has passed. Deadlines live in the
//! database, so they survive restarts; each close locks its conversation and re-checks the
//! deadline, so with several replicas scanning at once every deadline fires exactly once.

use std::time::SystemTime;

use charla_runtime::ApiError;
use charla_runtime::clock::to_micros;
use charla_runtime::workspace::WorkspaceId;
use sqlx::Row;
use uuid::Uuid;

use super::ConversationStore;
use crate::domain::{CloseSource, ClosingNote, ConversationId};
use crate::events::ConversationChange;

/// Deadlines handled per scan; a longer backlog is worked through by the next scans.
const SCAN_BATCH: i64 = 200;

impl ConversationStore {
    /// Closes, with AUTO_CLOSE, every open conversation whose deadline is at or before `now`,
    /// as of its deadline. Returns how many this call closed.
    pub async fn close_due(&self, now: SystemTime) -> Result<usize, ApiError> {
        let due = sqlx::query(
            "SELECT workspace_id, conversation_id FROM conversations
             WHERE auto_close_at IS NOT NULL AND auto_close_at <= $1 AND status = 'open'
             ORDER BY auto_close_at LIMIT $2",
        )
        .bind(to_micros(now))
        .bind(SCAN_BATCH)
        .fetch_all(self.db.pool())
        .await?;
        let mut closed = 0;
        for row in due {
            let parse = |column: &str| -> Result<Uuid, ApiError> {
                let text: String = row.try_get(column)?;
                Uuid::parse_str(&text).map_err(|e| ApiError::Internal(e.to_string()))
            };
            let workspace = WorkspaceId::new(parse("workspace_id")?);
            let id = ConversationId::from_uuid(parse("conversation_id")?);
            // One conversation that can't be closed must not hold up every other deadline.
            match self.close_if_due(workspace, id, now).await {
                Ok(true) => closed += 1,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, conversation = %id, "auto-close failed"),
            }
        }
        Ok(closed)
    }

    /// How many open conversations have a deadline at or before `now`: the scheduler's backlog.
    pub async fn count_due(&self, now: SystemTime) -> Result<u64, ApiError> {
        let row = sqlx::query(
            "SELECT count(*) FROM conversations
             WHERE auto_close_at IS NOT NULL AND auto_close_at <= $1 AND status = 'open'",
        )
        .bind(to_micros(now))
        .fetch_one(self.db.pool())
        .await?;
        Ok(row.try_get::<i64, _>(0)?.max(0) as u64)
    }

    async fn close_if_due(
        &self,
        workspace: WorkspaceId,
        id: ConversationId,
        now: SystemTime,
    ) -> Result<bool, ApiError> {
        let mut tx = self.db.pool().begin().await?;
        let mut conversation = self.load(&mut tx, workspace, id, true).await?;
        // Another replica may have closed it, or a reply may have moved the deadline, since the scan.
        let Some(deadline) = conversation
            .auto_close_at
            .filter(|_| conversation.auto_close_due(now))
        else {
            return Ok(false);
        };
        let settings = self.settings_in(&mut tx, workspace).await?;
        if settings.auto_close.is_none() {
            // Turned off after this deadline was set (a reply racing the settings change).
            conversation.auto_close_at = None;
            self.save(&mut tx, &conversation).await?;
            tx.commit().await?;
            return Ok(false);
        }
        conversation.close(
            CloseSource::AutoClose,
            None,
            ClosingNote::default(),
            deadline,
            &settings,
        )?;
        self.save(&mut tx, &conversation).await?;
        self.record(&mut tx, &conversation, deadline, ConversationChange::Closed)
            .await?;
        tx.commit().await?;
        self.events.notify_committed(workspace);
        Ok(true)
    }
}
