//! A consumer's position in another service's event stream, kept in the consumer's own database
//! (table `consumer_cursors`). Applying an event and advancing the position happen in one
//! transaction, so each event takes effect exactly once, across crashes and redeliveries.

use sqlx::{AnyConnection, AssertSqlSafe, Row};

use charla_proto::charla::contact::v1::PartitionCursor;

use crate::ApiError;
use crate::db::Database;
use crate::lease::PartitionLeases;

/// One named consumer's cursor.
#[derive(Debug, Clone)]
pub struct ConsumerCursor {
    db: Database,
    name: &'static str,
}

impl ConsumerCursor {
    /// The cursor of consumer `name` in `db`.
    pub fn new(db: Database, name: &'static str) -> Self {
        Self { db, name }
    }

    /// The stored positions: (partition, last sequence applied).
    pub async fn positions(&self) -> Result<Vec<(u32, u64)>, ApiError> {
        let rows =
            sqlx::query("SELECT partition_no, seq FROM consumer_cursors WHERE consumer = $1")
                .bind(self.name)
                .fetch_all(self.db.pool())
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>(0)? as u32,
                    row.try_get::<i64, _>(1)? as u64,
                ))
            })
            .collect()
    }

    /// Inside the transaction that applies event `sequence` of `partition`: locks the position
    /// and advances it, or returns false when the event was applied before (skip it), or fails
    /// when the event is not the next one (reconnect from `positions`). Concurrent appliers of one
    /// partition wait for each other here.
    pub async fn claim(
        &self,
        conn: &mut AnyConnection,
        partition: u32,
        sequence: u64,
    ) -> Result<bool, ApiError> {
        Ok(self
            .claim_through(conn, partition, sequence, sequence)
            .await?
            < sequence)
    }

    /// Inside the transaction that applies events `first..=last` of `partition` (in order, no
    /// gaps): locks the position, advances it to `last`, and returns the sequence applied before,
    /// so the caller skips the events up to it (applied by an earlier transaction). Fails when
    /// `first` is beyond the next event (reconnect from `positions`). Concurrent appliers of one
    /// partition wait for each other here.
    pub async fn claim_through(
        &self,
        conn: &mut AnyConnection,
        partition: u32,
        first: u64,
        last: u64,
    ) -> Result<u64, ApiError> {
        // The common case, one statement: the stored position is just before `first` (this
        // consumer applied the events before them). The row lock makes the comparison and the
        // move one step: a concurrent applier that moved the position first makes it match
        // nothing, and the general case below takes over.
        if first > 0 {
            let moved = sqlx::query(
                "UPDATE consumer_cursors SET seq = $3
                 WHERE consumer = $1 AND partition_no = $2 AND seq = $4",
            )
            .bind(self.name)
            .bind(i64::from(partition))
            .bind(last as i64)
            .bind((first - 1) as i64)
            .execute(&mut *conn)
            .await?;
            if moved.rows_affected() == 1 {
                return Ok(first - 1);
            }
        }
        sqlx::query(
            "INSERT INTO consumer_cursors (consumer, partition_no, seq) VALUES ($1, $2, 0)
             ON CONFLICT (consumer, partition_no) DO NOTHING",
        )
        .bind(self.name)
        .bind(i64::from(partition))
        .execute(&mut *conn)
        .await?;
        let lock = self.db.row_lock();
        let sql = format!(
            "SELECT seq FROM consumer_cursors WHERE consumer = $1 AND partition_no = $2{lock}"
        );
        let applied = sqlx::query(AssertSqlSafe(sql))
            .bind(self.name)
            .bind(i64::from(partition))
            .fetch_one(&mut *conn)
            .await?
            .try_get::<i64, _>(0)? as u64;
        // Streams have no gaps, so an event beyond the next one means the stored position moved
        // under this consumer (a rebuild elsewhere reset it): resume from what is stored.
        if first > applied + 1 {
            return Err(ApiError::Unavailable(format!(
                "consumer {} is at {applied} in partition {partition}, not just before {first}; \
                 resuming from the stored position",
                self.name
            )));
        }
        if last > applied {
            sqlx::query(
                "UPDATE consumer_cursors SET seq = $3 WHERE consumer = $1 AND partition_no = $2",
            )
            .bind(self.name)
            .bind(i64::from(partition))
            .bind(last as i64)
            .execute(&mut *conn)
            .await?;
        }
        Ok(applied)
    }

    /// Forgets every position (inside the caller's transaction), to consume again from the start.
    pub async fn reset(&self, conn: &mut AnyConnection) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM consumer_cursors WHERE consumer = $1")
            .bind(self.name)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// What one replica reads of a stream now: the partitions it holds and where to resume in each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The partitions to ask the producer for.
    pub partitions: Vec<u32>,
    /// The stored position in each of them.
    pub cursor: Vec<PartitionCursor>,
}

/// Adopts the producer's `partition_count`, rebalances the leases and reads the stored positions
/// of the partitions held; `None` while other replicas hold every partition.
pub async fn assignment(
    leases: &mut PartitionLeases,
    cursor: &ConsumerCursor,
    partition_count: u32,
) -> Result<Option<Assignment>, ApiError> {
    leases.set_partitions(partition_count).await?;
    leases.rebalance().await?;
    let partitions: Vec<u32> = leases.held().iter().copied().collect();
    if partitions.is_empty() {
        return Ok(None);
    }
    let cursor = cursor
        .positions()
        .await?
        .into_iter()
        .filter(|(partition, _)| partitions.contains(partition))
        .map(|(partition, sequence)| PartitionCursor {
            partition,
            sequence,
        })
        .collect();
    Ok(Some(Assignment { partitions, cursor }))
}

/// The wait between a consumer's reconnection attempts: doubling from 200 ms to 30 s while the
/// producer stays away, short again once a connection worked.
#[derive(Debug, Clone)]
pub struct Backoff {
    delay: std::time::Duration,
}

impl Backoff {
    const FIRST: std::time::Duration = std::time::Duration::from_millis(200);
    const LONGEST: std::time::Duration = std::time::Duration::from_secs(30);

    /// Waits before the next attempt; `connected` says the last attempt got a stream (so the
    /// outage is new and the wait starts short). Returns false when `shutdown` fired meanwhile.
    pub async fn wait(
        &mut self,
        connected: bool,
        shutdown: &tokio_util::sync::CancellationToken,
    ) -> bool {
        if connected {
            self.delay = Self::FIRST;
        }
        let delay = self.delay;
        self.delay = (delay * 2).min(Self::LONGEST);
        tokio::select! {
            _ = shutdown.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// How long the next wait will be, for logs.
    pub fn next_delay(&self, connected: bool) -> std::time::Duration {
        if connected { Self::FIRST } else { self.delay }
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self { delay: Self::FIRST }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::Backoff;

    #[tokio::test]
    async fn the_wait_doubles_to_a_ceiling_and_restarts_short_after_a_connection() {
        let stopped = CancellationToken::new();
        stopped.cancel();
        let mut backoff = Backoff::default();
        let mut seen = Vec::new();
        for _ in 0..10 {
            seen.push(backoff.next_delay(false));
            assert!(
                !backoff.wait(false, &stopped).await,
                "shutdown ends the wait"
            );
        }
        assert_eq!(&seen[..4], [200, 400, 800, 1600].map(Duration::from_millis));
        assert_eq!(seen[9], Duration::from_secs(30));
        assert_eq!(backoff.next_delay(true), Duration::from_millis(200));
    }
}
