//! The transactional outbox every service writes its events to, and the stream consumers read.
//!
//! The log is split into a fixed number of partitions by a hash of the workspace id. Each partition
//! has a head row holding its last sequence number; appending an event increments that row inside
//! the writer's transaction. The row stays locked until the transaction ends, so within a partition
//! sequence N+1 is handed out only after the transaction holding N has committed (or rolled back,
//! giving N to the next writer). A reader therefore never sees N+1 while N may still appear: the
//! stream has no gaps to skip, whatever order concurrent transactions commit in. Writers to other
//! partitions lock other rows and never wait for each other.
//!
//! Each event also gets the next sequence of its workspace (1, 2, 3... per workspace). It is gap-free
//! for the same reason: a workspace lives in one partition, so the append that numbers it holds
//! that partition's head row lock until commit. A stream scoped to one workspace reads by these
//! numbers, through an index that leads with the workspace, and reports them: it never sees, and
//! can't count, the other workspaces' events in its partition. Unscoped streams (charla's own
//! consumers) read partitions by partition sequence.
//!
//! New events wake streams without polling: a writer calls [`EventLog::notify_committed`] with the
//! workspace it wrote after its commit, which reaches the streams of this process; on PostgreSQL
//! the append also issues a `NOTIFY` naming the partition and workspace (delivered at commit) that a
//! listener in every replica turns into the same wake-up. The notice also names the log that wrote
//! it, so a listener skips its own process's commits, which woke their streams already. Only the
//! streams a commit concerns wake (see [`wakeups`]): an idle stream scoped to another workspace
//! costs nothing.

mod wakeups;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::{AnyConnection, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ApiError;
use crate::app::StartError;
use crate::clock::to_micros;
use crate::db::{Backend, Database, MigrationFile};
use crate::workspace::WorkspaceId;
use wakeups::{Feed, Subscription, Wakeups};

/// The tables of the event log on SQLite: a migration every service that writes events includes.
pub const SQLITE_MIGRATION: MigrationFile = MigrationFile {
    version: 1,
    description: "event log",
    sql: include_str!("../migrations/sqlite/event_log.sql"),
};

/// The tables of the event log on PostgreSQL.
pub const POSTGRES_MIGRATION: MigrationFile = MigrationFile {
    version: 1,
    description: "event log",
    sql: include_str!("../migrations/postgres/event_log.sql"),
};

/// Each event's sequence within its workspace, on SQLite. The shared runtime's migrations after the
/// first take versions from 1001 up, clear of every service's own (2, 3...).
pub const SQLITE_WORKSPACE_SEQUENCE_MIGRATION: MigrationFile = MigrationFile {
    version: 1001,
    description: "event log workspace sequence",
    sql: include_str!("../migrations/sqlite/event_log_workspace_seq.sql"),
};

/// Each event's sequence within its workspace, on PostgreSQL.
pub const POSTGRES_WORKSPACE_SEQUENCE_MIGRATION: MigrationFile = MigrationFile {
    version: 1001,
    description: "event log workspace sequence",
    sql: include_str!("../migrations/postgres/event_log_workspace_seq.sql"),
};

/// The partition count recorded at the first start, on SQLite.
pub const SQLITE_PARTITION_COUNT_MIGRATION: MigrationFile = MigrationFile {
    version: 1002,
    description: "event log partition count",
    sql: include_str!("../migrations/sqlite/event_log_partition_count.sql"),
};

/// The partition count recorded at the first start, on PostgreSQL.
pub const POSTGRES_PARTITION_COUNT_MIGRATION: MigrationFile = MigrationFile {
    version: 1002,
    description: "event log partition count",
    sql: include_str!("../migrations/postgres/event_log_partition_count.sql"),
};

/// The PostgreSQL notification channel that announces commits to the log.
const NOTIFY_CHANNEL: &str = "charla_event_log";
/// Events written by one insert at most (5 bound values each): a long imported history is
/// appended in several, well under either engine's limit on bound values (and SQLite's in
/// smaller ones still: see `Backend::max_binds`).
const EVENTS_PER_INSERT: usize = 1000;
/// Events read from the database in one query.
const READ_BATCH: i64 = 500;
/// A stream re-reads at least this often even without a wake-up: insurance only, since commits
/// wake streams at once and a listener that reconnects wakes them all. Each poll is a query, so a
/// short one makes many idle streams a steady load (1,000 streams at 5 s slowed PostgreSQL
/// writes by ~14%).
const SAFETY_POLL: Duration = Duration::from_secs(30);
/// Streams poll up to this much sooner than [`SAFETY_POLL`], each by its own amount, so that
/// streams opened together don't poll together.
const POLL_SPREAD_MS: u64 = 6000;

/// Where an appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPosition {
    /// The event's id (UUID v7).
    pub event_id: Uuid,
    /// Its partition.
    pub partition: u32,
    /// Its sequence within the partition, from 1.
    pub sequence: u64,
}

/// An appended event: where it landed, and its place among its workspace's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedEvent {
    /// Its partition position.
    pub position: EventPosition,
    /// Its sequence within its workspace, from 1.
    pub workspace_sequence: u64,
}

/// An event as a stream reads it: its position and its encoded protobuf message. The message
/// states the partition position it was appended at; a stream scoped to a workspace reports the
/// position here instead (see `stream::LoggedEvent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The partition.
    pub partition: u32,
    /// The sequence within the partition, or within the workspace for a scoped stream.
    pub sequence: u64,
    /// The encoded event message.
    pub payload: Vec<u8>,
    /// The last sequence of the partition (of the workspace, for a scoped stream) when the event
    /// was read (0 when not looked up).
    pub head: u64,
}

/// What a consumer asks to read: a set of partitions, each from a position, optionally one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// For each partition read, the last sequence already seen. With a workspace, only the entry of
    /// the workspace's partition counts, and its sequence is a workspace sequence.
    pub positions: BTreeMap<u32, u64>,
    /// Only this workspace's events, numbered by workspace sequence, when set.
    pub workspace: Option<WorkspaceId>,
}

impl StreamRequest {
    /// Checks a stream request against the log's partition count: `partitions` (empty for all)
    /// and `cursor` pairs of (partition, last sequence seen).
    pub fn parse(
        partition_count: u32,
        partitions: &[u32],
        cursor: &[(u32, u64)],
        workspace: Option<WorkspaceId>,
    ) -> Result<Self, ApiError> {
        let out_of_range = |partition: u32| partition >= partition_count;
        if let Some(bad) = partitions.iter().copied().find(|p| out_of_range(*p)) {
            return Err(ApiError::invalid(
                "partitions",
                format!("partition {bad} does not exist: this stream has {partition_count}"),
            ));
        }
        if cursor
            .iter()
            .any(|(_, sequence)| *sequence > i64::MAX as u64)
        {
            return Err(ApiError::invalid(
                "cursor",
                "a sequence is beyond any this stream hands out",
            ));
        }
        if let Some((bad, _)) = cursor.iter().copied().find(|(p, _)| out_of_range(*p)) {
            return Err(ApiError::invalid(
                "cursor",
                format!("partition {bad} does not exist: this stream has {partition_count}"),
            ));
        }
        let mut positions: BTreeMap<u32, u64> = if partitions.is_empty() {
            (0..partition_count).map(|p| (p, 0)).collect()
        } else {
            partitions.iter().map(|p| (*p, 0)).collect()
        };
        for (partition, sequence) in cursor {
            if let Some(position) = positions.get_mut(partition) {
                *position = *sequence;
            }
        }
        Ok(Self {
            positions,
            workspace,
        })
    }
}

/// A service's event log.
#[derive(Debug, Clone)]
pub struct EventLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    partitions: u32,
    wakeups: Arc<Wakeups>,
    /// Names this log (this process's) in its commit notices.
    origin: Uuid,
}

impl EventLog {
    /// The log in `db`, split into `partitions` partitions.
    pub fn new(db: Database, partitions: u32) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                partitions: partitions.max(1),
                wakeups: Arc::default(),
                origin: Uuid::now_v7(),
            }),
        }
    }

    /// The log in `db` with the partition count recorded in it. The first start records
    /// `configured`, or when unset [`default_partitions`] for a new log (1 for a log written
    /// before counts were recorded, the count it was using); every later one uses the recorded count and refuses a
    /// `configured` count that differs, since replicas that disagree would send a workspace's
    /// events to different partitions. A database from before counts were recorded gets the
    /// configured count recorded, unless it is below a partition the log already uses (whose
    /// events would never be read again).
    pub async fn open(db: Database, configured: Option<u32>) -> Result<Self, StartError> {
        let database_error = |e| StartError::Database(crate::db::DbError::Connect(e));
        let recorded = match recorded_partitions(&db).await.map_err(database_error)? {
            Some(recorded) => recorded,
            None => {
                let proposed = match configured {
                    Some(configured) => configured,
                    None if log_is_empty(&db).await.map_err(database_error)? => {
                        default_partitions(db.backend())
                    }
                    None => 1,
                };
                refuse_dropping_used_partitions(&db, proposed).await?;
                // Replicas starting together race here; the first insert wins and the others
                // read its count below.
                sqlx::query(
                    "INSERT INTO event_log_partition_count (only_row, partitions) VALUES (1, $1)
                     ON CONFLICT (only_row) DO NOTHING",
                )
                .bind(i64::from(proposed))
                .execute(db.pool())
                .await
                .map_err(database_error)?;
                recorded_partitions(&db)
                    .await
                    .map_err(database_error)?
                    .unwrap_or(proposed)
            }
        };
        if let Some(configured) = configured
            && configured != recorded
        {
            return Err(StartError::EventPartitionsDiffer {
                configured,
                recorded,
            });
        }
        Ok(Self::new(db, recorded))
    }

    /// The database the log lives in.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    /// How many partitions the log has.
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// The partition a workspace's events go to: a stable hash (FNV-1a) of its id.
    pub fn partition_of(&self, workspace: WorkspaceId) -> u32 {
        partition_of(workspace, self.inner.partitions)
    }

    /// Appends an event inside the caller's transaction. `encode` receives the event's position
    /// and returns the encoded event message. Call this late in the transaction: it locks the
    /// partition's head row until commit. The event's workspace sequence is taken under that
    /// lock, so it too follows an event that has committed.
    pub async fn append(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        occurred_at: SystemTime,
        encode: impl FnOnce(EventPosition) -> Vec<u8>,
    ) -> Result<EventPosition, ApiError> {
        let mut encode = Some(encode);
        let appended = self
            .append_all(conn, workspace, &[occurred_at], |_, position| {
                encode
                    .take()
                    .map(|encode| encode(position))
                    .unwrap_or_default()
            })
            .await?;
        Ok(appended[0].position)
    }

    /// Appends one event per entry of `occurred_at`, in that order, inside the caller's
    /// transaction: the head row moves once by the count, and multi-row inserts write the events
    /// (one for up to 1,000). `encode(index, position)` returns the
    /// encoded message of event `index`. Call this late in the transaction, like [`Self::append`].
    pub async fn append_all(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        occurred_at: &[SystemTime],
        mut encode: impl FnMut(usize, EventPosition) -> Vec<u8>,
    ) -> Result<Vec<AppendedEvent>, ApiError> {
        if occurred_at.is_empty() {
            return Ok(Vec::new());
        }
        let count = occurred_at.len() as i64;
        let partition = self.partition_of(workspace);
        let last: i64 = sqlx::query(
            "INSERT INTO event_log_heads (partition_no, last_seq) VALUES ($1, $2)
             ON CONFLICT (partition_no) DO UPDATE SET last_seq = event_log_heads.last_seq + $2
             RETURNING last_seq",
        )
        .bind(i64::from(partition))
        .bind(count)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        let first = last - count + 1;
        let positions: Vec<EventPosition> = (0..count)
            .map(|offset| EventPosition {
                event_id: Uuid::now_v7(),
                partition,
                sequence: (first + offset) as u64,
            })
            .collect();
        let mut workspace_sequences = BTreeMap::new();
        let rows: Vec<(usize, &EventPosition)> = positions.iter().enumerate().collect();
        // Besides its rows' values, an insert binds up to 4 of its own.
        let per_insert = EVENTS_PER_INSERT.min((self.inner.db.backend().max_binds() - 4) / 5);
        for chunk in rows.chunks(per_insert) {
            let sql = insert_events_sql(self.inner.db.backend(), chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(workspace.to_string())
                .bind(i64::from(partition));
            if self.inner.db.backend() == Backend::Postgres {
                query = query.bind(NOTIFY_CHANNEL).bind(commit_notice(
                    partition,
                    workspace,
                    self.inner.origin,
                ));
            }
            for (offset, (index, position)) in chunk.iter().enumerate() {
                query = query
                    .bind(position.sequence as i64)
                    .bind(position.event_id.to_string())
                    .bind(to_micros(occurred_at[*index]))
                    .bind(encode(*index, **position))
                    .bind(offset as i64);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let sequence: i64 = row.try_get(0)?;
                let workspace_sequence: i64 = row.try_get(1)?;
                workspace_sequences.insert(sequence as u64, workspace_sequence as u64);
            }
        }
        positions
            .into_iter()
            .map(|position| {
                let workspace_sequence = *workspace_sequences
                    .get(&position.sequence)
                    .ok_or_else(|| ApiError::Internal("an appended event went missing".into()))?;
                Ok(AppendedEvent {
                    position,
                    workspace_sequence,
                })
            })
            .collect()
    }

    /// Wakes this process's streams that a committed transaction concerns: it appended events of
    /// `workspace`. Call it after every commit of a transaction that appended.
    pub fn notify_committed(&self, workspace: WorkspaceId) {
        self.inner
            .wakeups
            .wake(self.partition_of(workspace), workspace);
    }

    /// How many times commits have woken a stream of this process so far: a stream is woken only
    /// by commits that may concern it.
    pub fn wake_ups(&self) -> u64 {
        self.inner.wakeups.woken()
    }

    /// Up to `limit` events of `partition` after partition sequence `after`, in order.
    pub async fn read(
        &self,
        partition: u32,
        after: u64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, ApiError> {
        let rows = sqlx::query(
            "SELECT seq, payload FROM event_log
             WHERE partition_no = $1 AND seq > $2
             ORDER BY seq LIMIT $3",
        )
        .bind(i64::from(partition))
        .bind(after as i64)
        .bind(limit)
        .fetch_all(self.inner.db.pool())
        .await?;
        stored_events(rows, partition)
    }

    /// Up to `limit` events of `workspace` after workspace sequence `after`, in order, numbered
    /// by workspace sequence.
    pub async fn read_workspace(
        &self,
        workspace: WorkspaceId,
        after: u64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, ApiError> {
        let rows = sqlx::query(
            "SELECT workspace_seq, payload FROM event_log
             WHERE workspace_id = $1 AND workspace_seq > $2
             ORDER BY workspace_seq LIMIT $3",
        )
        .bind(workspace.to_string())
        .bind(after as i64)
        .bind(limit)
        .fetch_all(self.inner.db.pool())
        .await?;
        stored_events(rows, self.partition_of(workspace))
    }

    /// The last sequence handed out in `partition`.
    pub async fn head(&self, partition: u32) -> Result<u64, ApiError> {
        let row = sqlx::query("SELECT last_seq FROM event_log_heads WHERE partition_no = $1")
            .bind(i64::from(partition))
            .fetch_optional(self.inner.db.pool())
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>(0)? as u64,
            None => 0,
        })
    }

    /// The last sequence of `workspace`'s events.
    pub async fn workspace_head(&self, workspace: WorkspaceId) -> Result<u64, ApiError> {
        let last: Option<i64> =
            sqlx::query("SELECT max(workspace_seq) FROM event_log WHERE workspace_id = $1")
                .bind(workspace.to_string())
                .fetch_one(self.inner.db.pool())
                .await?
                .try_get(0)?;
        Ok(last.unwrap_or(0) as u64)
    }

    /// Streams the events `request` asks for: first what is stored, then each new event as it
    /// commits, until the receiver is dropped or `shutdown` fires. An error ends the stream.
    pub fn stream(
        &self,
        request: StreamRequest,
        shutdown: CancellationToken,
    ) -> mpsc::Receiver<Result<StoredEvent, ApiError>> {
        let (sender, receiver) = mpsc::channel(256);
        let log = self.clone();
        tokio::spawn(async move {
            if let Err(error) = log.pump(request, &sender, &shutdown).await {
                let _closed = sender.send(Err(error)).await;
            }
        });
        receiver
    }

    /// What `request` reads, each from its position: partitions by partition sequence, or (scoped)
    /// the workspace by workspace sequence if its partition is asked for.
    fn feeds(&self, request: &StreamRequest) -> Vec<(Feed, u64)> {
        match request.workspace {
            None => request
                .positions
                .iter()
                .map(|(partition, after)| (Feed::Partition(*partition), *after))
                .collect(),
            Some(workspace) => request
                .positions
                .get(&self.partition_of(workspace))
                .map(|after| (Feed::Workspace(workspace), *after))
                .into_iter()
                .collect(),
        }
    }

    async fn read_feed(&self, feed: Feed, after: u64) -> Result<Vec<StoredEvent>, ApiError> {
        match feed {
            Feed::Partition(partition) => self.read(partition, after, READ_BATCH).await,
            Feed::Workspace(workspace) => self.read_workspace(workspace, after, READ_BATCH).await,
        }
    }

    async fn feed_head(&self, feed: Feed) -> Result<u64, ApiError> {
        match feed {
            Feed::Partition(partition) => self.head(partition).await,
            Feed::Workspace(workspace) => self.workspace_head(workspace).await,
        }
    }

    async fn pump(
        &self,
        request: StreamRequest,
        sender: &mpsc::Sender<Result<StoredEvent, ApiError>>,
        shutdown: &CancellationToken,
    ) -> Result<(), ApiError> {
        let mut feeds = self.feeds(&request);
        let listed: Vec<Feed> = feeds.iter().map(|(feed, _)| *feed).collect();
        // Subscribe *before* the first read, so a commit that lands during a read wakes the wait
        // below instead of being missed.
        let subscription = self.inner.wakeups.subscribe(&listed);
        let poll = safety_poll(&subscription);
        let mut to_read: HashSet<Feed> = listed.iter().copied().collect();
        loop {
            for (feed, position) in feeds.iter_mut().filter(|(feed, _)| to_read.contains(feed)) {
                loop {
                    let batch = self.read_feed(*feed, *position).await?;
                    let full = batch.len() as i64 == READ_BATCH;
                    // A batch short of full holds everything committed when it was read (a
                    // feed's events commit in sequence order, under its partition's head row),
                    // so its last sequence is the head; a full one asks.
                    let head = match batch.last() {
                        Some(_) if full => self.feed_head(*feed).await?,
                        Some(last) => last.sequence,
                        None => 0,
                    };
                    for mut event in batch {
                        event.head = head.max(event.sequence);
                        *position = event.sequence;
                        if sender.send(Ok(event)).await.is_err() {
                            return Ok(());
                        }
                    }
                    if !full {
                        break;
                    }
                }
            }
            to_read = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = sender.closed() => return Ok(()),
                _ = subscription.woken() => subscription.take_woken_feeds(),
                _ = tokio::time::sleep(poll) => listed.iter().copied().collect(),
            };
        }
    }

    /// On PostgreSQL, listens for commits made by other replicas and wakes this process's streams.
    /// Does nothing on SQLite, where one process owns the file.
    pub fn spawn_commit_listener(&self, shutdown: CancellationToken) {
        if self.inner.db.backend() != Backend::Postgres {
            return;
        }
        let log = self.clone();
        tokio::spawn(async move {
            loop {
                let listened = log.listen_until_error(&shutdown).await;
                if shutdown.is_cancelled() {
                    return;
                }
                if let Err(error) = listened {
                    tracing::warn!(%error, "event log listener lost its connection; reconnecting");
                }
                // Whatever was committed while we were away is found by the re-read this causes.
                log.inner.wakeups.wake_all();
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
    }

    async fn listen_until_error(&self, shutdown: &CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = sqlx::postgres::PgListener::connect(self.inner.db.url()).await?;
        listener.listen(NOTIFY_CHANNEL).await?;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                notification = listener.recv() => {
                    match parse_commit_notice(notification?.payload()) {
                        // This process's commit: `notify_committed` woke its streams.
                        Some(notice) if notice.origin == Some(self.inner.origin) => {}
                        Some(notice) => self.inner.wakeups.wake(notice.partition, notice.workspace),
                        // A replica of an older release names only the partition.
                        None => self.inner.wakeups.wake_all(),
                    }
                }
            }
        }
    }
}

/// The multi-row insert of `rows` events of one workspace ($1) into one partition ($2), returning
/// each event's partition and workspace sequences. Each row binds its sequence, event id,
/// occurred_at, payload and its offset among the rows; workspace sequences continue from the
/// workspace's last one, read once (the head row lock makes it stable, see the module comment).
/// On PostgreSQL the same statement issues the commit's `NOTIFY` ($3 channel, $4 payload): one
/// round trip fewer per write.
fn insert_events_sql(backend: Backend, rows: usize) -> String {
    let first = match backend {
        Backend::Postgres => 5,
        Backend::Sqlite => 3,
    };
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let n = first + row * 5;
            format!("(${n}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4)
        })
        .collect();
    let (notify, from_notify) = match backend {
        Backend::Postgres => (
            "WITH notified AS (SELECT pg_notify($3, $4)) ",
            " CROSS JOIN notified",
        ),
        Backend::Sqlite => ("", ""),
    };
    format!(
        "{notify}INSERT INTO event_log
             (partition_no, seq, event_id, workspace_id, occurred_at, payload, workspace_seq)
         SELECT $2, fresh.column1, fresh.column2, $1, fresh.column3, fresh.column4,
                prior.workspace_seq + fresh.column5 + 1
         FROM (VALUES {}) AS fresh
         CROSS JOIN (SELECT COALESCE(max(workspace_seq), 0) AS workspace_seq
                     FROM event_log WHERE workspace_id = $1) AS prior{from_notify}
         RETURNING seq, workspace_seq",
        values.join(", ")
    )
}

/// The partition of `partitions` a workspace's events go to: a stable hash (FNV-1a) of its id.
pub fn partition_of(workspace: WorkspaceId, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in workspace.as_uuid().as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}

/// The partition count a new log gets when none is configured. SQLite has one writer at a time,
/// so more partitions would only split the stream. On PostgreSQL each partition's head row is a
/// lock its writers queue on until they commit: 16 lets writers to different workspaces commit
/// side by side (and share fsyncs) and lets up to 16 metrics replicas each lease a partition,
/// while a consumer's read of every partition stays 16 cheap index lookups.
pub fn default_partitions(backend: Backend) -> u32 {
    match backend {
        Backend::Sqlite => 1,
        Backend::Postgres => 16,
    }
}

/// Whether no event was ever appended to the log in `db`.
async fn log_is_empty(db: &Database) -> Result<bool, sqlx::Error> {
    let any = sqlx::query("SELECT 1 FROM event_log_heads LIMIT 1")
        .fetch_optional(db.pool())
        .await?;
    Ok(any.is_none())
}

/// The partition count recorded in `db`, if one is.
async fn recorded_partitions(db: &Database) -> Result<Option<u32>, sqlx::Error> {
    let row = sqlx::query("SELECT partitions FROM event_log_partition_count WHERE only_row = 1")
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| row.try_get::<i64, _>(0).map(|count| count as u32))
        .transpose()
}

/// Refuses a partition count that would leave a partition the log already uses unread.
async fn refuse_dropping_used_partitions(db: &Database, partitions: u32) -> Result<(), StartError> {
    let used: Option<i64> = sqlx::query("SELECT max(partition_no) FROM event_log_heads")
        .fetch_one(db.pool())
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| StartError::Database(crate::db::DbError::Connect(e)))?;
    match used {
        Some(used) if used >= i64::from(partitions) => Err(StartError::EventPartitionsLowered {
            configured: partitions,
            used: used as u32,
        }),
        _ => Ok(()),
    }
}

/// The rows of an event read, as stored events of `partition`.
fn stored_events(
    rows: Vec<sqlx::any::AnyRow>,
    partition: u32,
) -> Result<Vec<StoredEvent>, ApiError> {
    rows.into_iter()
        .map(|row| {
            Ok(StoredEvent {
                partition,
                sequence: row.try_get::<i64, _>(0)? as u64,
                payload: row.try_get(1)?,
                head: 0,
            })
        })
        .collect()
}

/// How long a stream waits without a wake-up before it reads anyway: at most [`SAFETY_POLL`],
/// less by an amount of its own.
fn safety_poll(subscription: &Subscription) -> Duration {
    let spread = subscription.id().wrapping_mul(0x9e37_79b9_7f4a_7c15) % POLL_SPREAD_MS;
    SAFETY_POLL - Duration::from_millis(spread)
}

/// The NOTIFY payload announcing a commit: `partition/workspace/origin`.
fn commit_notice(partition: u32, workspace: WorkspaceId, origin: Uuid) -> String {
    format!("{partition}/{workspace}/{origin}")
}

/// What a commit notice says.
#[derive(Debug, PartialEq, Eq)]
struct CommitNotice {
    partition: u32,
    workspace: WorkspaceId,
    /// The log that wrote it; `None` from a replica of a release that did not say.
    origin: Option<Uuid>,
}

fn parse_commit_notice(payload: &str) -> Option<CommitNotice> {
    let mut parts = payload.split('/');
    let partition = parts.next()?.parse().ok()?;
    let workspace = WorkspaceId::new(Uuid::parse_str(parts.next()?).ok()?);
    let origin = parts.next().map(Uuid::parse_str).transpose().ok()?;
    Some(CommitNotice {
        partition,
        workspace,
        origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_notice_names_the_partition_the_workspace_and_the_writer() {
        let (workspace, origin) = (WorkspaceId::new(Uuid::now_v7()), Uuid::now_v7());
        assert_eq!(
            parse_commit_notice(&commit_notice(3, workspace, origin)),
            Some(CommitNotice {
                partition: 3,
                workspace,
                origin: Some(origin)
            })
        );
        assert_eq!(
            parse_commit_notice(&format!("3/{workspace}")),
            Some(CommitNotice {
                partition: 3,
                workspace,
                origin: None
            }),
            "an older replica's notice"
        );
        assert_eq!(parse_commit_notice("3"), None, "an older replica's notice");
        assert_eq!(parse_commit_notice(&format!("3/{workspace}/x")), None);
    }

    #[test]
    fn streams_spread_their_safety_polls_within_the_bound() {
        let wakeups = Arc::new(Wakeups::default());
        let polls: std::collections::BTreeSet<Duration> = (0..20)
            .map(|_| safety_poll(&wakeups.subscribe(&[])))
            .collect();
        assert!(polls.len() > 10, "polls are spread: {polls:?}");
        assert!(polls.iter().all(|poll| *poll <= SAFETY_POLL));
    }

    #[test]
    fn a_stream_request_reads_every_partition_by_default_from_the_cursor() {
        let request = StreamRequest::parse(3, &[], &[(1, 7)], None).unwrap();
        assert_eq!(request.positions, BTreeMap::from([(0, 0), (1, 7), (2, 0)]));
    }

    #[test]
    fn a_stream_request_names_the_field_with_an_unknown_partition() {
        let error = StreamRequest::parse(2, &[2], &[], None).unwrap_err();
        assert!(
            matches!(error, ApiError::InvalidArgument { ref field, .. } if field == "partitions")
        );
        let error = StreamRequest::parse(2, &[], &[(5, 1)], None).unwrap_err();
        assert!(matches!(error, ApiError::InvalidArgument { ref field, .. } if field == "cursor"));
    }
}
