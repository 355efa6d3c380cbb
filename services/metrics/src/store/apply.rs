//! Applying a batch of conversation events to the aggregates: one transaction with the cursor
//! (each event takes effect once), the events folded in memory first (`domain::Batch`), then each
//! changed row written once, in multi-row statements.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use charla_runtime::ApiError;
use foldhash::{HashMap, HashMapExt};
use sqlx::{AnyConnection, Row};

use super::statement::{Statement, Tuple};
use super::{MetricsStore, encoding};
use crate::domain::{
    Batch, Change, ClosedStats, ComboKey, Delta, Dimension, DimensionKey, DimensionRowKey,
    Dimensions, Fact, Grain, RecontactGaps, dimension_keys,
};

/// An event of the conversation stream, reduced to what the metrics need.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub workspace: String,
    pub partition: u32,
    pub sequence: u64,
    pub change: Change,
}

/// Rows per multi-row statement: under both engines' limits on bound parameters (SQLite 32,766)
/// at 17 columns, and small enough to plan quickly.
const ROWS_PER_STATEMENT: usize = 500;

pub(super) const DIMENSION_COLUMNS: &str =
    "assignee, team, channel_type, channel_id, opened_by, closed_by, category, automated_by";

/// The stored name of a dimension key: '' for every conversation.
pub(super) fn dimension_name(dimension: DimensionKey) -> &'static str {
    dimension.map_or("", |d| d.column())
}

fn push_dimensions(row: &mut Tuple<'_>, d: &Dimensions) {
    row.push_bind(d.assignee.clone())
        .push_bind(d.team.clone())
        .push_bind(d.channel_type.clone())
        .push_bind(d.channel_id.clone())
        .push_bind(d.opened_by.clone())
        .push_bind(d.closed_by.clone())
        .push_bind(d.category.clone())
        .push_bind(d.automated_by.clone());
}

pub(super) fn dimensions_of(row: &sqlx::any::AnyRow) -> Result<Dimensions, ApiError> {
    Ok(Dimensions {
        assignee: row.try_get("assignee")?,
        team: row.try_get("team")?,
        channel_type: row.try_get("channel_type")?,
        channel_id: row.try_get("channel_id")?,
        opened_by: row.try_get("opened_by")?,
        closed_by: row.try_get("closed_by")?,
        category: row.try_get("category")?,
        automated_by: row.try_get("automated_by")?,
    })
}

/// `SELECT <a fact's columns> FROM conversation_facts`.
static SELECT_FACTS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT conversation_id, contact_id, {DIMENSION_COLUMNS}, opened_at, closed_at, imported,
             recontact_gap, first_response_at
         FROM conversation_facts"
    )
});

/// A conversation and its fact, from a row selected with `SELECT_FACTS`.
fn fact_of(row: &sqlx::any::AnyRow) -> Result<(String, Fact), ApiError> {
    let fact = Fact {
        contact: row.try_get("contact_id")?,
        dimensions: dimensions_of(row)?,
        opened_at: row.try_get("opened_at")?,
        imported: row.try_get::<i64, _>("imported")? != 0,
        closed_at: row.try_get("closed_at")?,
        close_record: None,
        recontact_gap: row.try_get("recontact_gap")?,
        first_response_at: row.try_get("first_response_at")?,
    };
    Ok((row.try_get("conversation_id")?, fact))
}

/// Matches a closed row `r` to a key `k` of (bucket start, every dimension), then names its
/// workspace (bound next).
const COMBO_KEY_MATCH: &str = "r.bucket_start = k.column1 AND r.assignee = k.column2
     AND r.team = k.column3 AND r.channel_type = k.column4 AND r.channel_id = k.column5
     AND r.opened_by = k.column6 AND r.closed_by = k.column7 AND r.category = k.column8
     AND r.automated_by = k.column9 AND r.workspace_id = ";

/// Matches a coarse row `r` to a key `k` of (dimension, grain, bucket start, value), then names
/// its workspace (bound next).
const COARSE_KEY_MATCH: &str = "r.dimension = k.column1 AND r.grain = k.column2
     AND r.bucket_start = k.column3 AND r.value = k.column4 AND r.workspace_id = ";

/// The facts a batch reads of one workspace: those of the conversations its events name, and
/// those since `horizon` (the earliest of the batch's) of the contacts whose conversations it
/// opens or closes.
struct Wanted {
    conversations: Vec<String>,
    contacts: Vec<String>,
    horizon: i64,
}

impl Default for Wanted {
    fn default() -> Self {
        Self {
            conversations: Vec::new(),
            contacts: Vec::new(),
            horizon: i64::MAX,
        }
    }
}

/// A coarse row of one workspace: (dimension, grain, bucket start, value).
type CoarseKey<'a> = (DimensionKey, Grain, i64, &'a str);

impl MetricsStore {
    /// Applies `events` (in stream order) in one transaction, skipping those applied before.
    /// Returns how many were applied now.
    pub async fn apply_batch(&self, events: &[StreamEvent]) -> Result<usize, ApiError> {
        // Everything this writes is derived from the stream and commits with the cursor.
        let mut tx = self.db.begin_without_flush().await?;
        let fresh = self.claim(&mut tx, events).await?;
        if fresh.is_empty() {
            return Ok(0);
        }
        let mut batch = Batch::new(self.load_facts(&mut tx, &fresh).await?);
        batch.reserve(fresh.len());
        let mut workspaces: Vec<&str> = fresh
            .iter()
            .filter(|event| matches!(event.change, Change::Closed { .. }))
            .map(|event| event.workspace.as_str())
            .collect();
        workspaces.sort_unstable();
        workspaces.dedup();
        batch.set_schedules(self.schedule_histories(&mut tx, &workspaces).await?);
        batch.set_sla_targets(self.sla_histories(&mut tx, &workspaces).await?);
        for event in &fresh {
            batch.apply(&event.workspace, &event.change);
        }
        self.write_facts(&mut tx, &batch).await?;
        self.write_opened_combos(&mut tx, &batch.combos).await?;
        self.write_dimension_rows(&mut tx, &batch).await?;
        self.write_closed_combos(&mut tx, &mut batch.combos).await?;
        // After the closed rows: a re-contact may be of a conversation this batch closed.
        self.write_recontact_combos(&mut tx, &batch.recontact_combos)
            .await?;
        self.write_recontact_rows(&mut tx, &batch.coarse_recontacts())
            .await?;
        for (workspace, live) in &batch.live {
            self.count_live(&mut tx, workspace, live.open, live.unassigned)
                .await?;
        }
        let mut latest: BTreeMap<(&str, u32), u64> = BTreeMap::new();
        for event in &fresh {
            latest.insert((&event.workspace, event.partition), event.sequence);
        }
        for ((workspace, partition), sequence) in latest {
            self.advance_workspace_position(&mut tx, workspace, partition, sequence)
                .await?;
        }
        tx.commit().await?;
        self.statistics.written(fresh.len() as u64).await;
        Ok(fresh.len())
    }

    /// Advances the cursor of each partition in `events`; the events not applied before.
    async fn claim<'e>(
        &self,
        conn: &mut AnyConnection,
        events: &'e [StreamEvent],
    ) -> Result<Vec<&'e StreamEvent>, ApiError> {
        let mut ranges: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
        for event in events {
            let range = ranges
                .entry(event.partition)
                .or_insert((event.sequence, event.sequence));
            range.1 = event.sequence;
        }
        let mut applied_before = BTreeMap::new();
        for (partition, (first, last)) in ranges {
            let applied = self
                .cursor
                .claim_through(conn, partition, first, last)
                .await?;
            applied_before.insert(partition, applied);
        }
        Ok(events
            .iter()
            .filter(|event| event.sequence > applied_before[&event.partition])
            .collect())
    }

    /// The stored facts of the conversations `events` name (`None`: not stored), and of their
    /// contacts' other conversations that an opening of the batch may re-contact, or that may
    /// re-contact a close of it. Both are read in one statement per workspace (per chunk of
    /// each): a live batch of one event pays one round trip for them.
    async fn load_facts(
        &self,
        conn: &mut AnyConnection,
        events: &[&StreamEvent],
    ) -> Result<HashMap<(String, String), Option<Fact>>, ApiError> {
        let mut facts: HashMap<(String, String), Option<Fact>> = HashMap::new();
        let mut wanted: BTreeMap<&str, Wanted> = BTreeMap::new();
        for event in events {
            if let Some(conversation) = Batch::conversation_of(&event.change)
                && facts
                    .insert((event.workspace.clone(), conversation.to_owned()), None)
                    .is_none()
            {
                wanted
                    .entry(&event.workspace)
                    .or_default()
                    .conversations
                    .push(conversation.to_owned());
            }
            if let Some((contact, horizon)) = Batch::recontact_horizon(&event.change) {
                let wanted = wanted.entry(&event.workspace).or_default();
                wanted.horizon = wanted.horizon.min(horizon);
                wanted.contacts.push(contact.to_owned());
            }
        }
        for (workspace, mut wanted) in wanted {
            wanted.contacts.sort_unstable();
            wanted.contacts.dedup();
            let mut conversations = wanted.conversations.chunks(ROWS_PER_STATEMENT);
            let mut contacts = wanted.contacts.chunks(ROWS_PER_STATEMENT);
            loop {
                let (by_id, by_contact) = (conversations.next(), contacts.next());
                if by_id.is_none() && by_contact.is_none() {
                    break;
                }
                let mut query = Statement::new(self.db.backend(), "");
                if let Some(chunk) = by_id {
                    query.push(&format!("{} WHERE workspace_id = ", *SELECT_FACTS));
                    query.push_bind(workspace.to_owned());
                    query.push(" AND conversation_id IN ");
                    query.push_list(chunk.iter().cloned());
                }
                if let Some(chunk) = by_contact {
                    if by_id.is_some() {
                        query.push(" UNION ALL ");
                    }
                    query.push(&format!("{} WHERE workspace_id = ", *SELECT_FACTS));
                    query.push_bind(workspace.to_owned());
                    query.push(" AND contact_id IN ");
                    query.push_list(chunk.iter().cloned());
                    query.push(" AND (closed_at >= ");
                    query.push_bind(wanted.horizon);
                    query.push(" OR opened_at >= ");
                    query.push_bind(wanted.horizon);
                    query.push(")");
                }
                // A conversation both named and a contact's other one comes twice: the same row.
                for row in query.query().fetch_all(&mut *conn).await? {
                    let (conversation, fact) = fact_of(&row)?;
                    facts.insert((workspace.to_owned(), conversation), Some(fact));
                }
            }
        }
        Ok(facts)
    }

    async fn write_facts(&self, conn: &mut AnyConnection, batch: &Batch) -> Result<(), ApiError> {
        let changed: Vec<_> = batch.changed_facts().collect();
        for chunk in changed.chunks(ROWS_PER_STATEMENT) {
            let mut query = Statement::new(
                self.db.backend(),
                format!(
                    "INSERT INTO conversation_facts (workspace_id, conversation_id, contact_id,
                     {DIMENSION_COLUMNS}, opened_at, closed_at, imported, close_event,
                     recontact_gap, first_response_at) "
                ),
            );
            query.push_values(chunk, |row, (workspace, conversation, fact)| {
                row.push_bind(workspace.to_string())
                    .push_bind(conversation.to_string())
                    .push_bind(fact.contact.clone());
                push_dimensions(row, &fact.dimensions);
                row.push_bind(fact.opened_at)
                    .push_bind(fact.closed_at)
                    .push_bind(i64::from(fact.imported))
                    .push_bind(fact.close_record.clone())
                    .push_bind(fact.recontact_gap)
                    .push_bind(fact.first_response_at);
            });
            query.push(
                " ON CONFLICT (workspace_id, conversation_id) DO UPDATE SET
                     assignee = excluded.assignee, team = excluded.team,
                     channel_type = excluded.channel_type, channel_id = excluded.channel_id,
                     opened_by = excluded.opened_by, closed_by = excluded.closed_by,
                     category = excluded.category, automated_by = excluded.automated_by,
                     closed_at = excluded.closed_at, recontact_gap = excluded.recontact_gap,
                     first_response_at = excluded.first_response_at,
                     close_event = COALESCE(excluded.close_event, conversation_facts.close_event)",
            );
            query.query().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn write_opened_combos(
        &self,
        conn: &mut AnyConnection,
        combos: &HashMap<ComboKey, Delta>,
    ) -> Result<(), ApiError> {
        let opened: Vec<(&ComboKey, i64)> = combos
            .iter()
            .filter(|(_, delta)| delta.opened != 0)
            .map(|(key, delta)| (key, delta.opened))
            .collect();
        for chunk in opened.chunks(ROWS_PER_STATEMENT) {
            let mut query = Statement::new(
                self.db.backend(),
                format!(
                    "INSERT INTO opened_rollup (workspace_id, bucket_start, {DIMENSION_COLUMNS}, opened_count) "
                ),
            );
            query.push_values(chunk, |row, ((workspace, bucket, dimensions), opened)| {
                row.push_bind(workspace.clone()).push_bind(*bucket);
                push_dimensions(row, dimensions);
                row.push_bind(*opened);
            });
            query.push(&format!(
                " ON CONFLICT (workspace_id, bucket_start, {DIMENSION_COLUMNS})
                 DO UPDATE SET opened_count = opened_rollup.opened_count + excluded.opened_count"
            ));
            query.query().execute(&mut *conn).await?;
        }
        Ok(())
    }

    /// Merges the batch's closed statistics into the stored ones of the same buckets (taking
    /// them out of the batch: a batch's statistics are its largest part). A chunk of rows is
    /// read, merged and written before the next is read, so at most one chunk of stored
    /// statistics is decoded at a time.
    async fn write_closed_combos(
        &self,
        conn: &mut AnyConnection,
        combos: &mut HashMap<ComboKey, Delta>,
    ) -> Result<(), ApiError> {
        let mut by_workspace: BTreeMap<&str, Vec<(&ComboKey, Box<ClosedStats>)>> = BTreeMap::new();
        for (key, delta) in combos.iter_mut() {
            if let Some(stats) = delta.closed.take() {
                by_workspace.entry(&key.0).or_default().push((key, stats));
            }
        }
        for (workspace, mut rows) in by_workspace {
            for chunk in rows.chunks_mut(ROWS_PER_STATEMENT) {
                let position: HashMap<(i64, &Dimensions), usize> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, (key, _))| ((key.1, &key.2), i))
                    .collect();
                // Only the rows this batch changes are read (joined to a list of their keys):
                // reading whole buckets would cost more the more conversations share them.
                let mut query = Statement::new(
                    self.db.backend(),
                    "SELECT r.bucket_start, r.assignee, r.team, r.channel_type, r.channel_id,
                         r.opened_by, r.closed_by, r.category, r.automated_by, r.stats
                     FROM (",
                );
                query.push_values(chunk.iter(), |row, ((_, bucket, dimensions), _)| {
                    row.push_bind(*bucket);
                    push_dimensions(row, dimensions);
                });
                // CROSS JOIN: SQLite then loops over the keys and looks each up by the primary
                // key (as a plain join it may scan the table once per key); PostgreSQL plans it
                // as any inner join.
                query.push(&format!(
                    ") AS k CROSS JOIN closed_rollup r WHERE {COMBO_KEY_MATCH}"
                ));
                query.push_bind(workspace.to_owned());
                for row in query.query().fetch_all(&mut *conn).await? {
                    let key = (row.try_get::<i64, _>("bucket_start")?, dimensions_of(&row)?);
                    if let Some(&i) = position.get(&(key.0, &key.1)) {
                        let stored = encoding::decode(&row.try_get::<Vec<u8>, _>("stats")?)?;
                        chunk[i].1.merge(&stored);
                    }
                }
                let mut insert = Statement::new(
                    self.db.backend(),
                    format!(
                        "INSERT INTO closed_rollup (workspace_id, bucket_start, {DIMENSION_COLUMNS}, closed_count, stats) "
                    ),
                );
                insert.push_values(chunk.iter(), |row, ((_, bucket, dimensions), stats)| {
                    row.push_bind(workspace.to_owned()).push_bind(*bucket);
                    push_dimensions(row, dimensions);
                    row.push_bind(stats.closed as i64)
                        .push_bind(encoding::encode(stats));
                });
                insert.push(&format!(
                    " ON CONFLICT (workspace_id, bucket_start, {DIMENSION_COLUMNS})
                     DO UPDATE SET closed_count = excluded.closed_count, stats = excluded.stats"
                ));
                insert.query().execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    /// Adds the batch's openings to the coarse rows of every grain and merges its closed
    /// statistics into the stored ones, a chunk of rows at a time (as `write_closed_combos`). The
    /// grains and dimensions share statements, so a batch of one event costs two whatever their
    /// number. One dimension at a time, the finest grain's rows are summed from the quarter-hour
    /// rows and each coarser grain's from the grain below it (far fewer rows to merge); a large
    /// batch never holds more than two grains' rows of one dimension and a chunk.
    async fn write_dimension_rows(
        &self,
        conn: &mut AnyConnection,
        batch: &Batch,
    ) -> Result<(), ApiError> {
        let mut by_workspace: BTreeMap<&str, Vec<(CoarseKey<'_>, Delta)>> = BTreeMap::new();
        for dimension in dimension_keys() {
            let mut grains = Grain::COARSE.into_iter();
            let mut rows = grains
                .next()
                .map(|finest| batch.coarse_rows(finest, dimension))
                .unwrap_or_default();
            loop {
                // Summed before these rows are written: writing merges the stored statistics
                // into them.
                let coarser = grains.next().map(|grain| Batch::coarser_rows(&rows, grain));
                for ((workspace, dimension, grain, bucket, value), delta) in rows {
                    if !delta.is_empty() {
                        by_workspace
                            .entry(workspace)
                            .or_default()
                            .push(((dimension, grain, bucket, value), delta));
                    }
                }
                for (workspace, rows) in &mut by_workspace {
                    while rows.len() >= ROWS_PER_STATEMENT {
                        let mut chunk: Vec<_> = rows.drain(..ROWS_PER_STATEMENT).collect();
                        self.write_coarse_chunk(conn, workspace, &mut chunk).await?;
                    }
                }
                match coarser {
                    Some(coarser) => rows = coarser,
                    None => break,
                }
            }
        }
        for (workspace, mut rows) in by_workspace {
            if !rows.is_empty() {
                self.write_coarse_chunk(conn, workspace, &mut rows).await?;
            }
        }
        Ok(())
    }

    /// Writes coarse rows of `workspace`: openings added, closed statistics merged into the
    /// stored ones (read first, by their keys).
    async fn write_coarse_chunk(
        &self,
        conn: &mut AnyConnection,
        workspace: &str,
        chunk: &mut [(CoarseKey<'_>, Delta)],
    ) -> Result<(), ApiError> {
        // Only the rows with closed statistics to merge are read, by their keys.
        let position: HashMap<CoarseKey<'_>, usize> = chunk
            .iter()
            .enumerate()
            .filter(|(_, (_, delta))| delta.closed.is_some())
            .map(|(i, (key, _))| (*key, i))
            .collect();
        if !position.is_empty() {
            let mut query = Statement::new(
                self.db.backend(),
                "SELECT r.dimension, r.grain, r.bucket_start, r.value, r.stats FROM (",
            );
            query.push_values(position.keys(), |row, (dimension, grain, bucket, value)| {
                row.push_bind(dimension_name(*dimension))
                    .push_bind(grain.minutes())
                    .push_bind(*bucket)
                    .push_bind(value.to_string());
            });
            query.push(&format!(
                ") AS k CROSS JOIN dimension_rollup r WHERE r.stats IS NOT NULL
                         AND {COARSE_KEY_MATCH}"
            ));
            query.push_bind(workspace.to_owned());
            for row in query.query().fetch_all(&mut *conn).await? {
                let name: String = row.try_get("dimension")?;
                let value: String = row.try_get("value")?;
                let Some(grain) = Grain::of_minutes(row.try_get("grain")?) else {
                    continue;
                };
                let key = (
                    Dimension::from_column(&name),
                    grain,
                    row.try_get::<i64, _>("bucket_start")?,
                    value.as_str(),
                );
                if let Some(&i) = position.get(&key)
                    && let Some(stats) = &mut chunk[i].1.closed
                {
                    stats.merge(&encoding::decode(&row.try_get::<Vec<u8>, _>("stats")?)?);
                }
            }
        }
        let mut insert = Statement::new(
            self.db.backend(),
            "INSERT INTO dimension_rollup (workspace_id, dimension, grain, bucket_start,
                     value, opened_count, closed_count, stats) ",
        );
        insert.push_values(
            chunk.iter(),
            |row, ((dimension, grain, bucket, value), delta)| {
                let closed = delta.closed.as_ref();
                row.push_bind(workspace.to_owned())
                    .push_bind(dimension_name(*dimension))
                    .push_bind(grain.minutes())
                    .push_bind(*bucket)
                    .push_bind(value.to_string())
                    .push_bind(delta.opened)
                    .push_bind(closed.map_or(0, |s| s.closed as i64))
                    .push_bind(closed.map(|s| encoding::encode(s)));
            },
        );
        // Rows with closed statistics carry the merged total; the others add openings
        // only.
        insert.push(
            " ON CONFLICT (workspace_id, dimension, grain, bucket_start, value) DO UPDATE SET
                     opened_count = dimension_rollup.opened_count + excluded.opened_count,
                     closed_count = CASE WHEN excluded.stats IS NULL
                         THEN dimension_rollup.closed_count ELSE excluded.closed_count END,
                     stats = COALESCE(excluded.stats, dimension_rollup.stats)",
        );
        insert.query().execute(&mut *conn).await?;
        Ok(())
    }

    /// Adds the batch's re-contacts to the counts of the closed quarter-hour rows (which exist:
    /// their conversations closed before, or in this batch).
    async fn write_recontact_combos(
        &self,
        conn: &mut AnyConnection,
        changes: &HashMap<ComboKey, RecontactGaps>,
    ) -> Result<(), ApiError> {
        let mut keys: BTreeMap<&str, Vec<(i64, &Dimensions, &RecontactGaps)>> = BTreeMap::new();
        for ((workspace, bucket, dimensions), change) in changes {
            keys.entry(workspace)
                .or_default()
                .push((*bucket, dimensions, change));
        }
        for (workspace, keys) in keys {
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let mut merged: HashMap<(i64, Dimensions), RecontactGaps> = chunk
                    .iter()
                    .map(|(bucket, dimensions, change)| {
                        ((*bucket, (*dimensions).clone()), (*change).clone())
                    })
                    .collect();
                let mut query = Statement::new(
                    self.db.backend(),
                    "SELECT r.bucket_start, r.assignee, r.team, r.channel_type, r.channel_id,
                         r.opened_by, r.closed_by, r.category, r.automated_by, r.recontact
                     FROM (",
                );
                query.push_values(chunk, |row, (bucket, dimensions, _)| {
                    row.push_bind(*bucket);
                    push_dimensions(row, dimensions);
                });
                query.push(&format!(
                    ") AS k CROSS JOIN closed_rollup r WHERE {COMBO_KEY_MATCH}"
                ));
                query.push_bind(workspace.to_owned());
                for row in query.query().fetch_all(&mut *conn).await? {
                    let Some(bytes) = row.try_get::<Option<Vec<u8>>, _>("recontact")? else {
                        continue;
                    };
                    let key = (row.try_get("bucket_start")?, dimensions_of(&row)?);
                    if let Some(gaps) = merged.get_mut(&key) {
                        gaps.merge(&encoding::decode_gaps(&bytes)?);
                    }
                }
                let rows: Vec<_> = merged.into_iter().collect();
                let mut update = Statement::new(
                    self.db.backend(),
                    "UPDATE closed_rollup AS r SET recontact = k.column10 FROM (",
                );
                update.push_values(&rows, |row, ((bucket, dimensions), gaps)| {
                    row.push_bind(*bucket);
                    push_dimensions(row, dimensions);
                    row.push_bind(encoding::encode_gaps(gaps));
                });
                update.push(&format!(") AS k WHERE {COMBO_KEY_MATCH}"));
                update.push_bind(workspace.to_owned());
                update.query().execute(&mut *conn).await?;
            }
        }
        Ok(())
    }

    /// Adds the batch's re-contacts to the counts of the closed coarse rows.
    async fn write_recontact_rows(
        &self,
        conn: &mut AnyConnection,
        changes: &HashMap<DimensionRowKey<'_>, RecontactGaps>,
    ) -> Result<(), ApiError> {
        let mut keys: BTreeMap<&str, Vec<(CoarseKey<'_>, &RecontactGaps)>> = BTreeMap::new();
        for ((workspace, dimension, grain, bucket, value), change) in changes {
            keys.entry(*workspace)
                .or_default()
                .push(((*dimension, *grain, *bucket, *value), change));
        }
        for (workspace, keys) in keys {
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let mut merged: HashMap<(DimensionKey, Grain, i64, String), RecontactGaps> = chunk
                    .iter()
                    .map(|((dimension, grain, bucket, value), change)| {
                        (
                            (*dimension, *grain, *bucket, value.to_string()),
                            (*change).clone(),
                        )
                    })
                    .collect();
                let mut query = Statement::new(
                    self.db.backend(),
                    "SELECT r.dimension, r.grain, r.bucket_start, r.value, r.recontact FROM (",
                );
                query.push_values(chunk, |row, ((dimension, grain, bucket, value), _)| {
                    row.push_bind(dimension_name(*dimension))
                        .push_bind(grain.minutes())
                        .push_bind(*bucket)
                        .push_bind(value.to_string());
                });
                query.push(&format!(
                    ") AS k CROSS JOIN dimension_rollup r WHERE {COARSE_KEY_MATCH}"
                ));
                query.push_bind(workspace.to_owned());
                for row in query.query().fetch_all(&mut *conn).await? {
                    let Some(bytes) = row.try_get::<Option<Vec<u8>>, _>("recontact")? else {
                        continue;
                    };
                    let Some(grain) = Grain::of_minutes(row.try_get("grain")?) else {
                        continue;
                    };
                    let name: String = row.try_get("dimension")?;
                    let key = (
                        Dimension::from_column(&name),
                        grain,
                        row.try_get::<i64, _>("bucket_start")?,
                        row.try_get::<String, _>("value")?,
                    );
                    if let Some(gaps) = merged.get_mut(&key) {
                        gaps.merge(&encoding::decode_gaps(&bytes)?);
                    }
                }
                let rows: Vec<_> = merged.into_iter().collect();
                let mut update = Statement::new(
                    self.db.backend(),
                    "UPDATE dimension_rollup AS r SET recontact = k.column5 FROM (",
                );
                update.push_values(&rows, |row, ((dimension, grain, bucket, value), gaps)| {
                    row.push_bind(dimension_name(*dimension))
                        .push_bind(grain.minutes())
                        .push_bind(*bucket)
                        .push_bind(value.clone())
                        .push_bind(encoding::encode_gaps(gaps));
                });
                update.push(&format!(") AS k WHERE {COARSE_KEY_MATCH}"));
                update.push_bind(workspace.to_owned());
                update.query().execute(&mut *conn).await?;
            }
        }
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
