//! Reading the aggregates back: rows of a time range (the report code filters, groups and merges
//! them), live counts, closed conversations for exports, and the reset a rebuild starts with.

use std::collections::VecDeque;

use charla_runtime::ApiError;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AssertSqlSafe, Row};

use super::apply::{DIMENSION_COLUMNS, dimension_name, dimensions_of};
use super::statement::Statement;
use super::{MetricsStore, encoding};
use crate::domain::{
    ClosedStats, Cover, DimensionKey, Dimensions, Grain, OpenConversation, RollupRow, RowKey,
    ScheduleHistory, SlaTargets, Versions,
};

/// What the dashboard shows "now".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    pub open: i64,
    pub unassigned: i64,
}

/// A closed conversation, for exports.
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

/// Above this many ranges of one grain, a read takes the span from the first to the last and
/// drops the buckets outside the cover (one range condition instead of a long OR).
const MAX_RANGES_IN_SQL: usize = 32;

/// `AND (bucket_start >= a AND bucket_start < b OR ...)` for `ranges` (not empty).
fn push_ranges(query: &mut Statement, ranges: &[(i64, i64)]) {
    let spans: Vec<(i64, i64)> = if ranges.len() > MAX_RANGES_IN_SQL {
        vec![(ranges[0].0, ranges[ranges.len() - 1].1)]
    } else {
        ranges.to_vec()
    };
    query.push(" AND (");
    for (index, (from, to)) in spans.into_iter().enumerate() {
        if index > 0 {
            query.push(" OR ");
        }
        query.push("(bucket_start >= ");
        query.push_bind(from);
        query.push(" AND bucket_start < ");
        query.push_bind(to);
        query.push(")");
    }
    query.push(")");
}

/// The closed statistics of a rollup row, with its re-contact counts; `None` when it has none.
/// Decoded from the row's bytes where they lie, not from a copy.
fn closed_of(row: &AnyRow) -> Result<Option<ClosedStats>, ApiError> {
    let Some(stats) = row.try_get::<Option<&[u8]>, _>("stats")? else {
        return Ok(None);
    };
    let mut stats = encoding::decode(stats)?;
    if let Some(bytes) = row.try_get::<Option<&[u8]>, _>("recontact")? {
        stats.recontact = encoding::decode_gaps(bytes)?;
    }
    Ok(Some(stats))
}

/// A row of `opened_rollup` (no statistics) or `closed_rollup` (no openings), or `None` when its
/// bucket is outside the cover.
fn combination_row(row: &AnyRow, cover: &Cover) -> Result<Option<RollupRow>, ApiError> {
    let bucket: i64 = row.try_get("bucket_start")?;
    if !cover.contains(Grain::Quarter, bucket) {
        return Ok(None);
    }
    Ok(Some(RollupRow {
        bucket,
        key: RowKey::Combination(dimensions_of(row)?),
        opened: row.try_get("opened_count")?,
        closed: closed_of(row)?,
    }))
}

/// A row of `dimension_rollup`, or `None` when its bucket is outside the cover.
fn dimension_row(
    row: &AnyRow,
    dimension: DimensionKey,
    cover: &Cover,
) -> Result<Option<RollupRow>, ApiError> {
    let minutes: i64 = row.try_get("grain")?;
    let grain = Grain::of_minutes(minutes).ok_or_else(|| {
        ApiError::Internal(format!(
            "a stored rollup row has an unknown grain: {minutes} minutes"
        ))
    })?;
    let bucket: i64 = row.try_get("bucket_start")?;
    if !cover.contains(grain, bucket) {
        return Ok(None);
    }
    let value: String = row.try_get("value")?;
    Ok(Some(RollupRow {
        bucket,
        key: dimension.map_or(RowKey::All, |d| RowKey::Value(d, value)),
        opened: row.try_get("opened_count")?,
        closed: closed_of(row)?,
    }))
}

/// How a row read for a report is decoded.
#[derive(Debug, Clone, Copy)]
enum RowKind {
    /// A quarter-hour row of every dimension, opened or closed.
    Combination,
    /// A coarse row of a dimension, of the grain its row names.
    Dimension(DimensionKey),
}

/// Rollup rows read for a report, each decoded only when the iterator reaches it: a report
/// merges one row and drops it before decoding the next, so it never holds every decoded row at
/// once (a row's statistics take several times the bytes of their encoding, and a month of them
/// grew the service's heap by 10 MiB per report, which the allocator kept afterwards). Rows whose
/// bucket is outside the cover are skipped.
pub struct ReportRows<'c> {
    rows: VecDeque<(AnyRow, RowKind)>,
    cover: &'c Cover,
}

impl<'c> ReportRows<'c> {
    fn new(rows: impl IntoIterator<Item = (AnyRow, RowKind)>, cover: &'c Cover) -> Self {
        Self {
            rows: rows.into_iter().collect(),
            cover,
        }
    }

    /// How many rows are left (some may be skipped as outside the cover).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row is left.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows from `at` on, taken from these: to be decoded elsewhere (another thread).
    pub fn split_off(&mut self, at: usize) -> Self {
        Self {
            rows: self.rows.split_off(at.min(self.rows.len())),
            cover: self.cover,
        }
    }
}

impl Iterator for ReportRows<'_> {
    type Item = Result<RollupRow, ApiError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (row, kind) = self.rows.pop_front()?;
            let decoded = match kind {
                RowKind::Combination => combination_row(&row, self.cover),
                RowKind::Dimension(dimension) => dimension_row(&row, dimension, self.cover),
            };
            if let Some(decoded) = decoded.transpose() {
                return Some(decoded);
            }
        }
    }
}

impl MetricsStore {
    /// The quarter-hour rows (every combination of dimensions) of the cover's quarter ranges:
    /// openings and closed statistics (see `ReportRows`), both tables in one statement.
    pub async fn combination_rows<'c>(
        &self,
        workspace: &str,
        cover: &'c Cover,
    ) -> Result<ReportRows<'c>, ApiError> {
        let ranges = cover.ranges(Grain::Quarter);
        let mut rows = Vec::new();
        if !ranges.is_empty() {
            let mut query = Statement::new(
                self.db.backend(),
                format!(
                    "SELECT bucket_start, {DIMENSION_COLUMNS}, opened_count, NULL AS stats,
                         NULL AS recontact
                     FROM opened_rollup WHERE opened_count <> 0 AND workspace_id = "
                ),
            );
            query.push_bind(workspace.to_owned());
            push_ranges(&mut query, ranges);
            query.push(&format!(
                " UNION ALL SELECT bucket_start, {DIMENSION_COLUMNS}, 0, stats, recontact
                 FROM closed_rollup WHERE workspace_id = "
            ));
            query.push_bind(workspace.to_owned());
            push_ranges(&mut query, ranges);
            rows = query.kept_query().fetch_all(self.db.pool()).await?;
        }
        Ok(ReportRows::new(
            rows.into_iter().map(|row| (row, RowKind::Combination)),
            cover,
        ))
    }

    /// The coarse rows of `dimension` (`None`: every conversation) in the cover's ranges of every
    /// coarse grain (see `ReportRows`): one statement, a branch per grain that has ranges, so a
    /// report pays one round trip per dimension instead of one per grain, and each branch is
    /// planned on the key's index as a query of its own would be.
    pub async fn dimension_rows<'c>(
        &self,
        workspace: &str,
        dimension: DimensionKey,
        cover: &'c Cover,
    ) -> Result<ReportRows<'c>, ApiError> {
        let mut query = Statement::new(self.db.backend(), "");
        let mut branches = 0;
        for grain in Grain::COARSE {
            let ranges = cover.ranges(grain);
            if ranges.is_empty() {
                continue;
            }
            if branches > 0 {
                query.push(" UNION ALL ");
            }
            query.push(
                "SELECT grain, bucket_start, value, opened_count, stats, recontact
                 FROM dimension_rollup WHERE workspace_id = ",
            );
            query.push_bind(workspace.to_owned());
            query.push(" AND dimension = ");
            query.push_bind(dimension_name(dimension));
            query.push(" AND grain = ");
            query.push_bind(grain.minutes());
            push_ranges(&mut query, ranges);
            branches += 1;
        }
        let rows = if branches == 0 {
            Vec::new()
        } else {
            query.kept_query().fetch_all(self.db.pool()).await?
        };
        let kind = RowKind::Dimension(dimension);
        Ok(ReportRows::new(
            rows.into_iter().map(|row| (row, kind)),
            cover,
        ))
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
        // The page starts at the later of `from` and the last one's close, in the index's range
        // ($2): the OR below only skips the last page's ties. Left to the OR alone, PostgreSQL
        // walked the index from `from` and filtered out every earlier page's rows (an export
        // was quadratic: 25,500 rows read for the 52nd page of 500).
        let sql = format!(
            "SELECT conversation_id, contact_id, {DIMENSION_COLUMNS}, closed_at, imported, close_event
             FROM conversation_facts
             WHERE workspace_id = $1 AND closed_at >= $2 AND closed_at < $3
               AND (closed_at > $4 OR (closed_at = $4 AND conversation_id > $5))
             ORDER BY closed_at, conversation_id LIMIT $6"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(workspace.to_owned())
            .bind(from.max(after_time))
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
                    dimensions: dimensions_of(row)?,
                    closed_at: row.try_get("closed_at")?,
                    imported: row.try_get::<i64, _>("imported")? != 0,
                    record: row
                        .try_get::<Option<Vec<u8>>, _>("close_event")?
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// The first `limit` conversations of the workspace still open, oldest first.
    pub async fn open_conversations(
        &self,
        workspace: &str,
        limit: i64,
    ) -> Result<Vec<OpenConversation>, ApiError> {
        let rows = sqlx::query(
            "SELECT conversation_id, contact_id, assignee, opened_at, first_response_at
             FROM conversation_facts WHERE workspace_id = $1 AND closed_at IS NULL
             ORDER BY opened_at, conversation_id LIMIT $2",
        )
        .bind(workspace.to_owned())
        .bind(limit)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OpenConversation {
                    conversation: row.try_get("conversation_id")?,
                    contact: row.try_get("contact_id")?,
                    assignee: row.try_get("assignee")?,
                    opened_at: row.try_get("opened_at")?,
                    first_response_at: row.try_get("first_response_at")?,
                })
            })
            .collect()
    }

    /// The workspace's service level targets and business hours over time; `None` (and no
    /// schedule read) when it never had targets, as most workspaces.
    pub async fn target_histories(
        &self,
        workspace: &str,
    ) -> Result<Option<(Versions<SlaTargets>, ScheduleHistory)>, ApiError> {
        let mut conn = self.db.pool().acquire().await?;
        let Some(targets) = self
            .sla_histories(&mut conn, &[workspace])
            .await?
            .remove(workspace)
        else {
            return Ok(None);
        };
        let schedules = self
            .schedule_histories(&mut conn, &[workspace])
            .await?
            .remove(workspace)
            .unwrap_or_default();
        Ok(Some((targets, schedules)))
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
            "dimension_rollup",
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
