//! Reading the aggregates back: rows of a time range (the report code filters, groups and merges
//! them), live counts, closed conversations for exports, and the reset a rebuild starts with.

use charla_runtime::ApiError;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{MetricsStore, encoding};
use crate::domain::{ClosedStats, Dimensions};

/// What the dashboard shows "now".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    pub open: i64,
    pub unassigned: i64,
}

/// A closed conversation, for exports and unique-contact counts.
#[derive(Debug, Clone)]
pub struct ClosedFact {
    pub conversation: String,
    pub contact: String,
    pub dimensions: Dimensions,
    pub closed_at: i64,
    pub imported: bool,
    /// The close event as received.
    pub record: Vec<u8>,
}

fn dimensions(row: &AnyRow) -> Result<Dimensions, ApiError> {
    Ok(Dimensions {
        assignee: row.try_get("assignee")?,
        team: row.try_get("team")?,
        channel_type: row.try_get("channel_type")?,
        channel_id: row.try_get("channel_id")?,
        opened_by: row.try_get("opened_by")?,
        closed_by: row.try_get("closed_by")?,
        category: row.try_get("category")?,
    })
}

const DIMENSION_COLUMNS: &str =
    "assignee, team, channel_type, channel_id, opened_by, closed_by, category";

impl MetricsStore {
    /// Opening counts of the buckets in [from, to).
    pub async fn opened_rows(
        &self,
        workspace: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Dimensions, i64)>, ApiError> {
        let sql = format!(
            "SELECT bucket_start, {DIMENSION_COLUMNS}, opened_count FROM opened_rollup
             WHERE workspace_id = $1 AND bucket_start >= $2 AND bucket_start < $3 AND opened_count <> 0"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_owned())
            .bind(from)
            .bind(to)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("bucket_start")?,
                    dimensions(row)?,
                    row.try_get("opened_count")?,
                ))
            })
            .collect()
    }

    /// Closed-conversation statistics of the buckets in [from, to).
    pub async fn closed_rows(
        &self,
        workspace: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Dimensions, ClosedStats)>, ApiError> {
        let sql = format!(
            "SELECT bucket_start, {DIMENSION_COLUMNS}, stats FROM closed_rollup
             WHERE workspace_id = $1 AND bucket_start >= $2 AND bucket_start < $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_owned())
            .bind(from)
            .bind(to)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                let stats = encoding::decode(&row.try_get::<Vec<u8>, _>("stats")?)?;
                Ok((row.try_get("bucket_start")?, dimensions(row)?, stats))
            })
            .collect()
    }

    /// Conversations closed in [from, to), oldest first, after (`closed_at`, `conversation`).
    pub async fn closed_facts(
        &self,
        workspace: &str,
        from: i64,
        to: i64,
        after: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<ClosedFact>, ApiError> {
        let (after_time, after_id) = after.unwrap_or((i64::MIN, String::new()));
        let sql = format!(
            "SELECT conversation_id, contact_id, {DIMENSION_COLUMNS}, closed_at, imported, close_event
             FROM conversation_facts
             WHERE workspace_id = $1 AND closed_at >= $2 AND closed_at < $3
               AND (closed_at > $4 OR (closed_at = $4 AND conversation_id > $5))
             ORDER BY closed_at, conversation_id LIMIT $6"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_owned())
            .bind(from)
            .bind(to)
            .bind(after_time)
            .bind(after_id)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ClosedFact {
                    conversation: row.try_get("conversation_id")?,
                    contact: row.try_get("contact_id")?,
                    dimensions: dimensions(row)?,
                    closed_at: row.try_get("closed_at")?,
                    imported: row.try_get::<i64, _>("imported")? != 0,
                    record: row
                        .try_get::<Option<Vec<u8>>, _>("close_event")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The workspace's open and unassigned conversations now.
    pub async fn live_counts(&self, workspace: &str) -> Result<LiveCounts, ApiError> {
        let row = sqlx::query(
            "SELECT open_count, unassigned_count FROM live_counts WHERE workspace_id = $1",
        )
        .bind(workspace.to_owned())
        .fetch_optional(self.db.pool())
        .await?;
        Ok(match row {
            Some(row) => LiveCounts {
                open: row.try_get(0)?,
                unassigned: row.try_get(1)?,
            },
            None => LiveCounts::default(),
        })
    }

    /// Forgets every aggregate and the cursor (inside the caller's transaction), so the stream can
    /// be applied again from its start.
    pub async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ApiError> {
        for table in [
            "conversation_facts",
            "opened_rollup",
            "closed_rollup",
            "live_counts",
            "workspace_positions",
        ] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *conn)
                .await?;
        }
        self.cursor.reset(conn).await
    }

    /// Runs `reset` in a transaction of its own.
    pub async fn reset_all(&self) -> Result<(), ApiError> {
        let mut tx = self.db.pool().begin().await?;
        self.reset(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
