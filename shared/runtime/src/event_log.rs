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
//! New events wake streams without polling: a writer calls [`EventLog::notify_committed`] after its
//! commit, which reaches the streams of this process; on PostgreSQL the append also issues a
//! `NOTIFY` (delivered at commit) that a listener in every replica turns into the same wake-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::{AnyConnection, Row};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ApiError;
use crate::app::StartError;
use crate::clock::to_micros;
use crate::db::{Backend, Database, MigrationFile};
use crate::workspace::WorkspaceId;

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

/// The PostgreSQL notification channel that announces commits to the log.
const NOTIFY_CHANNEL: &str = "charla_event_log";
/// Events read from the database in one query.
const READ_BATCH: i64 = 500;
/// A stream re-reads this often even without a wake-up, in case a notification was lost while a
/// listener reconnected. Not on the hot path: commits wake streams at once.
const SAFETY_POLL: Duration = Duration::from_secs(5);

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

/// An event as stored: its position and its encoded protobuf message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The partition.
    pub partition: u32,
    /// The sequence within the partition.
    pub sequence: u64,
    /// The encoded event message.
    pub payload: Vec<u8>,
    /// The partition's last sequence when the event was read (0 when not looked up).
    pub head: u64,
}

/// What a consumer asks to read: a set of partitions, each from a position, optionally one workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRequest {
    /// For each partition read, the last sequence already seen.
    pub positions: BTreeMap<u32, u64>,
    /// Only this workspace's events, when set.
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
    commits: watch::Sender<u64>,
}

impl EventLog {
    /// The log in `db`, split into `partitions` partitions.
    pub fn new(db: Database, partitions: u32) -> Self {
        let (commits, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                db,
                partitions: partitions.max(1),
                commits,
            }),
        }
    }

    /// The log in `db` with `partitions` partitions, refusing a count below one the log already
    /// uses: events of a dropped partition would never be read again.
    pub async fn open(db: Database, partitions: u32) -> Result<Self, StartError> {
        let used: Option<i64> = sqlx::query("SELECT max(partition_no) FROM event_log_heads")
            .fetch_one(db.pool())
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| StartError::Database(crate::db::DbError::Connect(e)))?;
        if let Some(used) = used
            && used >= i64::from(partitions)
        {
            return Err(StartError::EventPartitionsLowered {
                configured: partitions,
                used: used as u32,
            });
        }
        Ok(Self::new(db, partitions))
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
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in workspace.as_uuid().as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        (hash % u64::from(self.inner.partitions)) as u32
    }

    /// Appends an event inside the caller's transaction. `encode` receives the event's position
    /// and returns the encoded event message. Call this as the transaction's last statement: it
    /// locks the partition's head row until commit.
    pub async fn append(
        &self,
        conn: &mut AnyConnection,
        workspace: WorkspaceId,
        occurred_at: SystemTime,
        encode: impl FnOnce(EventPosition) -> Vec<u8>,
    ) -> Result<EventPosition, ApiError> {
        let partition = self.partition_of(workspace);
        let sequence: i64 = sqlx::query(
            "INSERT INTO event_log_heads (partition_no, last_seq) VALUES ($1, 1)
             ON CONFLICT (partition_no) DO UPDATE SET last_seq = event_log_heads.last_seq + 1
             RETURNING last_seq",
        )
        .bind(i64::from(partition))
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?;
        let position = EventPosition {
            event_id: Uuid::now_v7(),
            partition,
            sequence: sequence as u64,
        };
        let payload = encode(position);
        sqlx::query(
            "INSERT INTO event_log (partition_no, seq, event_id, workspace_id, occurred_at, payload)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(i64::from(partition))
        .bind(sequence)
        .bind(position.event_id.to_string())
        .bind(workspace.to_string())
        .bind(to_micros(occurred_at))
        .bind(payload)
        .execute(&mut *conn)
        .await?;
        if self.inner.db.backend() == Backend::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(NOTIFY_CHANNEL)
                .bind(partition.to_string())
                .execute(&mut *conn)
                .await?;
        }
        Ok(position)
    }

    /// Wakes this process's streams after a transaction that appended events has committed.
    pub fn notify_committed(&self) {
        self.inner.commits.send_modify(|version| *version += 1);
    }

    /// Up to `limit` events of `partition` after `after`, in order.
    pub async fn read(
        &self,
        partition: u32,
        after: u64,
        workspace: Option<WorkspaceId>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, ApiError> {
        let rows = sqlx::query(
            "SELECT seq, payload FROM event_log
             WHERE partition_no = $1 AND seq > $2 AND ($3 = '' OR workspace_id = $3)
             ORDER BY seq LIMIT $4",
        )
        .bind(i64::from(partition))
        .bind(after as i64)
        .bind(workspace.map(|w| w.to_string()).unwrap_or_default())
        .bind(limit)
        .fetch_all(self.inner.db.pool())
        .await?;
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

    async fn pump(
        &self,
        mut request: StreamRequest,
        sender: &mpsc::Sender<Result<StoredEvent, ApiError>>,
        shutdown: &CancellationToken,
    ) -> Result<(), ApiError> {
        let mut commits = self.inner.commits.subscribe();
        loop {
            // Mark the wake-ups seen *before* reading, so a commit that lands during the read
            // wakes the wait below instead of being missed.
            commits.borrow_and_update();
            let mut delivered_any = false;
            for (partition, position) in request.positions.iter_mut() {
                loop {
                    let batch = self
                        .read(*partition, *position, request.workspace, READ_BATCH)
                        .await?;
                    let full = batch.len() as i64 == READ_BATCH;
                    let head = match batch.last() {
                        Some(_) => self.head(*partition).await?,
                        None => 0,
                    };
                    for mut event in batch {
                        event.head = head.max(event.sequence);
                        *position = event.sequence;
                        delivered_any = true;
                        if sender.send(Ok(event)).await.is_err() {
                            return Ok(());
                        }
                    }
                    if !full {
                        break;
                    }
                }
            }
            if delivered_any {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = sender.closed() => return Ok(()),
                changed = commits.changed() => if changed.is_err() { return Ok(()) },
                _ = tokio::time::sleep(SAFETY_POLL) => {}
            }
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
                log.notify_committed();
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
                    notification?;
                    self.notify_committed();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
