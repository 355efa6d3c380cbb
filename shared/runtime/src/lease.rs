//! Partition leases: which replica consumes which partitions of a stream. On PostgreSQL a lease
//! is a session advisory lock held on a connection of its own, so a replica that dies (even by
//! SIGKILL) loses its leases the moment its connection closes, and a survivor takes them over at
//! its next rebalance. Each replica also holds a membership lock, so replicas can count each other
//! in `pg_locks` and share the partitions fairly. On SQLite one process owns the file and holds
//! every partition.

use std::collections::BTreeSet;

use sqlx::{Connection, PgConnection, Row};

use crate::ApiError;
use crate::db::{Backend, Database};

/// The leases one replica holds on one consumer's partitions.
pub struct PartitionLeases {
    db: Database,
    /// The advisory-lock class of this consumer's partitions; `+ 1` is its membership class.
    class: i32,
    partitions: u32,
    session: Option<PgConnection>,
    held: BTreeSet<u32>,
}

impl std::fmt::Debug for PartitionLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLeases")
            .field("class", &self.class)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

/// A stable 31-bit key for a consumer name (FNV-1a), even so the membership class can follow it.
fn class_of(consumer: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in consumer.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    ((hash >> 1) & !1) as i32
}

fn lost(error: sqlx::Error) -> ApiError {
    ApiError::Unavailable(format!("lease connection lost: {error}"))
}

impl PartitionLeases {
    /// Leases of `consumer` over `partitions` partitions, none held yet.
    pub fn new(db: Database, consumer: &str, partitions: u32) -> Self {
        Self {
            db,
            class: class_of(consumer),
            partitions: partitions.max(1),
            session: None,
            held: BTreeSet::new(),
        }
    }

    /// Adopts the stream's partition count (as its producer reports it), giving back any held
    /// partition that no longer exists. Returns whether the count changed.
    pub async fn set_partitions(&mut self, partitions: u32) -> Result<bool, ApiError> {
        let partitions = partitions.max(1);
        if partitions == self.partitions {
            return Ok(false);
        }
        self.partitions = partitions;
        let gone: Vec<u32> = self.held.range(partitions..).copied().collect();
        for partition in gone {
            if let Some(session) = self.session.as_mut() {
                sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                    .bind(self.class)
                    .bind(partition as i32)
                    .execute(&mut *session)
                    .await
                    .map_err(lost)?;
            }
            self.held.remove(&partition);
        }
        Ok(true)
    }

    /// The partitions held now.
    pub fn held(&self) -> &BTreeSet<u32> {
        &self.held
    }

    /// How many replicas consume this stream now, this one included (1 on SQLite, where one
    /// process owns the file; on PostgreSQL, the sessions holding a membership lock).
    pub async fn members(&mut self) -> Result<u32, ApiError> {
        if self.db.backend() == Backend::Sqlite || self.session.is_none() {
            return Ok(1);
        }
        let members = self.count_members().await?;
        Ok(u32::try_from(members.max(1)).unwrap_or(u32::MAX))
    }

    async fn count_members(&mut self) -> Result<i64, ApiError> {
        let Some(session) = self.session.as_mut() else {
            return Ok(1);
        };
        sqlx::query(
            "SELECT count(DISTINCT pid) FROM pg_locks
             WHERE locktype = 'advisory' AND classid = $1::bigint::oid AND objsubid = 2 AND granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .bind(i64::from(self.class + 1))
        .fetch_one(&mut *session)
        .await
        .map_err(lost)?
        .try_get(0)
        .map_err(lost)
    }

    /// Takes free partitions up to a fair share (the partitions divided among live replicas,
    /// rounded up) and gives back any above it. Returns whether the held set changed. On error
    /// every lease is considered lost.
    pub async fn rebalance(&mut self) -> Result<bool, ApiError> {
        if self.db.backend() == Backend::Sqlite {
            let all: BTreeSet<u32> = (0..self.partitions).collect();
            let changed = self.held != all;
            self.held = all;
            return Ok(changed);
        }
        let rebalanced = self.rebalance_postgres().await;
        if rebalanced.is_err() {
            // A broken session has lost its locks; another replica may hold them by now.
            self.session = None;
            self.held.clear();
        }
        rebalanced
    }

    async fn rebalance_postgres(&mut self) -> Result<bool, ApiError> {
        if self.session.is_none() {
            let mut session = PgConnection::connect(self.db.url()).await.map_err(lost)?;
            // Membership: one lock per replica, on a key only this session uses.
            let member: i32 = sqlx::query("SELECT pg_backend_pid()")
                .fetch_one(&mut session)
                .await
                .map_err(lost)?
                .try_get(0)
                .map_err(lost)?;
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(self.class + 1)
                .bind(member)
                .execute(&mut session)
                .await
                .map_err(lost)?;
            self.held.clear();
            self.session = Some(session);
        }
        let members = self.count_members().await?;
        let session = self.session.as_mut().expect("connected above");
        let share = self.partitions.div_ceil(members.max(1) as u32) as usize;
        let before = self.held.clone();
        while self.held.len() > share {
            let Some(partition) = self.held.iter().next_back().copied() else {
                break;
            };
            sqlx::query("SELECT pg_advisory_unlock($1, $2)")
                .bind(self.class)
                .bind(partition as i32)
                .execute(&mut *session)
                .await
                .map_err(lost)?;
            self.held.remove(&partition);
        }
        for partition in 0..self.partitions {
            if self.held.len() >= share {
                break;
            }
            if self.held.contains(&partition) {
                continue;
            }
            let taken: bool = sqlx::query("SELECT pg_try_advisory_lock($1, $2)")
                .bind(self.class)
                .bind(partition as i32)
                .fetch_one(&mut *session)
                .await
                .map_err(lost)?
                .try_get(0)
                .map_err(lost)?;
            if taken {
                self.held.insert(partition);
            }
        }
        Ok(self.held != before)
    }
}

#[cfg(test)]
mod tests {
    use super::class_of;

    #[test]
    fn classes_are_stable_positive_and_leave_room_for_membership() {
        let class = class_of("conversation-events");
        assert_eq!(class, class_of("conversation-events"));
        assert!(class >= 0 && class % 2 == 0);
        assert_ne!(class, class_of("contact-events"));
    }
}
