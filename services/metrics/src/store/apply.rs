//! Applying one conversation event to the aggregates, in one transaction with the cursor.

use charla_runtime::ApiError;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::{MetricsStore, encoding};
use crate::domain::{Change, ClosedStats, Dimensions, bucket_start};

const DIMENSION_COLUMNS: &str =
    "assignee, team, channel_type, channel_id, opened_by, closed_by, category";
const DIMENSIONS_MATCH: &str = "assignee = $3 AND team = $4 AND channel_type = $5 AND \
     channel_id = $6 AND opened_by = $7 AND closed_by = $8 AND category = $9";

/// A conversation's opening, as `insert_fact` records it.
struct Opening<'a> {
    conversation: &'a str,
    contact: &'a str,
    dimensions: &'a Dimensions,
    opened_at: i64,
    imported: bool,
}

/// A conversation's row in `conversation_facts`, as far as applying needs it.
struct Fact {
    dimensions: Dimensions,
    opened_at: i64,
    open: bool,
}

fn bind_dimensions<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    d: &Dimensions,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(d.assignee.clone())
        .bind(d.team.clone())
        .bind(d.channel_type.clone())
        .bind(d.channel_id.clone())
        .bind(d.opened_by.clone())
        .bind(d.closed_by.clone())
        .bind(d.category.clone())
}

impl MetricsStore {
    /// Applies the event at (`partition`, `sequence`) unless it was applied before. Returns
    /// whether anything was applied.
    pub async fn apply(
        &self,
        workspace: &str,
        partition: u32,
        sequence: u64,
        change: &Change,
    ) -> Result<bool, ApiError> {
        let mut tx = self.db.pool().begin().await?;
        if !self.cursor.claim(&mut tx, partition, sequence).await? {
            return Ok(false);
        }
        self.advance_workspace_position(&mut tx, workspace, partition, sequence)
            .await?;
        match change {
            Change::Opened {
                conversation,
                contact,
                dimensions,
                opened_at,
                imported,
            } => {
                let opened = Opening {
                    conversation,
                    contact,
                    dimensions,
                    opened_at: *opened_at,
                    imported: *imported,
                };
                self.insert_fact(&mut tx, workspace, &opened).await?;
            }
            Change::Assigned {
                conversation,
                assignee,
                team,
            } => {
                if let Some(fact) = self.fact(&mut tx, workspace, conversation).await?
                    && fact.open
                {
                    let mut moved = fact.dimensions.clone();
                    moved.assignee = assignee.clone();
                    moved.team = team.clone();
                    self.move_conversation(&mut tx, workspace, conversation, &fact, &moved)
                        .await?;
                    let was_unassigned = i64::from(fact.dimensions.assignee.is_empty());
                    let is_unassigned = i64::from(moved.assignee.is_empty());
                    self.count_live(&mut tx, workspace, 0, is_unassigned - was_unassigned)
                        .await?;
                }
            }
            Change::Closed {
                conversation,
                contact,
                dimensions,
                opened_at,
                closed_at,
                closure,
                imported,
                record,
            } => {
                let fact = match self.fact(&mut tx, workspace, conversation).await? {
                    Some(fact) => fact,
                    None => {
                        // Opened before the history this store has read: count the opening
                        // now, with the dimensions it closes with.
                        let opened = Opening {
                            conversation,
                            contact,
                            dimensions,
                            opened_at: *opened_at,
                            imported: *imported,
                        };
                        self.insert_fact(&mut tx, workspace, &opened).await?;
                        Fact {
                            dimensions: dimensions.clone(),
                            opened_at: *opened_at,
                            open: true,
                        }
                    }
                };
                if fact.open {
                    self.move_conversation(&mut tx, workspace, conversation, &fact, dimensions)
                        .await?;
                    sqlx::query(
                        "UPDATE conversation_facts SET closed_at = $3, close_event = $4
                         WHERE workspace_id = $1 AND conversation_id = $2",
                    )
                    .bind(workspace.to_owned())
                    .bind(conversation.clone())
                    .bind(*closed_at)
                    .bind(record.clone())
                    .execute(&mut *tx)
                    .await?;
                    let mut stats = ClosedStats::default();
                    stats.add(closure);
                    self.count_closed(&mut tx, workspace, *closed_at, dimensions, &stats)
                        .await?;
                    let was_unassigned = i64::from(fact.dimensions.assignee.is_empty());
                    self.count_live(&mut tx, workspace, -1, -was_unassigned)
                        .await?;
                }
            }
            Change::Nothing => {}
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records a newly opened conversation: its fact row, its opening count, the live counts.
    async fn insert_fact(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        opened: &Opening<'_>,
    ) -> Result<(), ApiError> {
        let insert = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO conversation_facts (workspace_id, conversation_id, {DIMENSION_COLUMNS},
                 contact_id, opened_at, closed_at, imported, close_event)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, $12, NULL)
             ON CONFLICT (workspace_id, conversation_id) DO NOTHING"
        )));
        let inserted = bind_dimensions(
            insert
                .bind(workspace.to_owned())
                .bind(opened.conversation.to_owned()),
            opened.dimensions,
        )
        .bind(opened.contact.to_owned())
        .bind(opened.opened_at)
        .bind(i64::from(opened.imported))
        .execute(&mut *conn)
        .await?;
        if inserted.rows_affected() == 1 {
            self.count_opened(conn, workspace, opened.opened_at, opened.dimensions, 1)
                .await?;
            let unassigned = i64::from(opened.dimensions.assignee.is_empty());
            self.count_live(conn, workspace, 1, unassigned).await?;
        }
        Ok(())
    }

    async fn fact(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        conversation: &str,
    ) -> Result<Option<Fact>, ApiError> {
        let sql = format!(
            "SELECT {DIMENSION_COLUMNS}, opened_at, closed_at FROM conversation_facts
             WHERE workspace_id = $1 AND conversation_id = $2{}",
            self.db.row_lock()
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_owned())
            .bind(conversation.to_owned())
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let closed_at: Option<i64> = row.try_get("closed_at")?;
        Ok(Some(Fact {
            dimensions: Dimensions {
                assignee: row.try_get("assignee")?,
                team: row.try_get("team")?,
                channel_type: row.try_get("channel_type")?,
                channel_id: row.try_get("channel_id")?,
                opened_by: row.try_get("opened_by")?,
                closed_by: row.try_get("closed_by")?,
                category: row.try_get("category")?,
            },
            opened_at: row.try_get("opened_at")?,
            open: closed_at.is_none(),
        }))
    }

    /// Moves a conversation's opening count from its old dimensions to `to`, and records them.
    async fn move_conversation(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        conversation: &str,
        fact: &Fact,
        to: &Dimensions,
    ) -> Result<(), ApiError> {
        if &fact.dimensions == to {
            return Ok(());
        }
        self.count_opened(conn, workspace, fact.opened_at, &fact.dimensions, -1)
            .await?;
        self.count_opened(conn, workspace, fact.opened_at, to, 1)
            .await?;
        let update = sqlx::query(
            "UPDATE conversation_facts SET assignee = $3, team = $4, channel_type = $5,
                 channel_id = $6, opened_by = $7, closed_by = $8, category = $9
             WHERE workspace_id = $1 AND conversation_id = $2",
        );
        bind_dimensions(
            update
                .bind(workspace.to_owned())
                .bind(conversation.to_owned()),
            to,
        )
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn count_opened(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        opened_at: i64,
        dimensions: &Dimensions,
        delta: i64,
    ) -> Result<(), ApiError> {
        let query = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO opened_rollup (workspace_id, bucket_start, {DIMENSION_COLUMNS}, opened_count)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (workspace_id, bucket_start, {DIMENSION_COLUMNS})
             DO UPDATE SET opened_count = opened_rollup.opened_count + excluded.opened_count"
        )));
        bind_dimensions(
            query
                .bind(workspace.to_owned())
                .bind(bucket_start(opened_at)),
            dimensions,
        )
        .bind(delta)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn count_closed(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        closed_at: i64,
        dimensions: &Dimensions,
        added: &ClosedStats,
    ) -> Result<(), ApiError> {
        let bucket = bucket_start(closed_at);
        let select = sqlx::query(AssertSqlSafe(format!(
            "SELECT stats FROM closed_rollup WHERE workspace_id = $1 AND bucket_start = $2 AND {DIMENSIONS_MATCH}{}",
            self.db.row_lock()
        )));
        let existing = bind_dimensions(select.bind(workspace.to_owned()).bind(bucket), dimensions)
            .fetch_optional(&mut *conn)
            .await?;
        let mut stats = match existing {
            Some(row) => encoding::decode(&row.try_get::<Vec<u8>, _>(0)?)?,
            None => ClosedStats::default(),
        };
        stats.merge(added);
        let upsert = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO closed_rollup (workspace_id, bucket_start, {DIMENSION_COLUMNS}, closed_count, stats)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (workspace_id, bucket_start, {DIMENSION_COLUMNS})
             DO UPDATE SET closed_count = excluded.closed_count, stats = excluded.stats"
        )));
        bind_dimensions(upsert.bind(workspace.to_owned()).bind(bucket), dimensions)
            .bind(stats.closed as i64)
            .bind(encoding::encode(&stats))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn count_live(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        open_delta: i64,
        unassigned_delta: i64,
    ) -> Result<(), ApiError> {
        sqlx::query(
            "INSERT INTO live_counts (workspace_id, open_count, unassigned_count) VALUES ($1, $2, $3)
             ON CONFLICT (workspace_id) DO UPDATE SET
                 open_count = live_counts.open_count + excluded.open_count,
                 unassigned_count = live_counts.unassigned_count + excluded.unassigned_count",
        )
        .bind(workspace.to_owned())
        .bind(open_delta)
        .bind(unassigned_delta)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}
