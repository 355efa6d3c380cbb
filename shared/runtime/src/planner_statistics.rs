//! Fresh planner statistics while a backlog is written.
//!
//! PostgreSQL plans statements by table statistics that autovacuum refreshes about once a minute.
//! A backlog written faster than that (an import, a rebuild, a new database) runs on the
//! statistics of nearly empty tables, and PostgreSQL then answers a lookup of 500 keys by reading
//! every row of the workspace (auto_explain: `Index Cond: (workspace_id = $1)`, the keys left to a
//! filter), so each chunk costs more than the last. A store that writes in bulk refreshes its
//! tables' statistics itself each time the rows it wrote since the last refresh at least equal
//! those before it: a handful of times over a backlog of any size, ever more rarely in a steady
//! trickle. SQLite's planner prefers the primary key and indexes without statistics: nothing to do.

use std::sync::{Arc, Mutex};

use crate::db::{Backend, Database};

/// When a store's tables are due for new statistics.
#[derive(Debug, Default)]
struct Schedule {
    before: u64,
    since: u64,
}

impl Schedule {
    /// Rows written before the first refresh.
    const FIRST: u64 = 2_000;

    /// Notes `written` more rows; true when the statistics are due now (and counts them as
    /// refreshed).
    fn written(&mut self, written: u64) -> bool {
        self.since += written;
        if self.since < Self::FIRST.max(self.before) {
            return false;
        }
        self.before += self.since;
        self.since = 0;
        true
    }
}

/// Keeps PostgreSQL's statistics of a store's tables fresh while it writes in bulk.
#[derive(Debug, Clone)]
pub struct PlannerStatistics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: Database,
    tables: &'static [&'static str],
    schedule: Mutex<Schedule>,
}

impl PlannerStatistics {
    /// For `tables` of `db` (names the store's own migrations define).
    pub fn new(db: Database, tables: &'static [&'static str]) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                tables,
                schedule: Mutex::default(),
            }),
        }
    }

    /// Notes `rows` more rows written (committed); refreshes the statistics when due. A failure
    /// is logged, not returned: it costs only slower plans until autovacuum's next analysis.
    pub async fn written(&self, rows: u64) {
        let inner = &self.inner;
        if inner.db.backend() != Backend::Postgres || inner.tables.is_empty() {
            return;
        }
        let due = match inner.schedule.lock() {
            Ok(mut schedule) => schedule.written(rows),
            Err(poisoned) => poisoned.into_inner().written(rows),
        };
        if !due {
            return;
        }
        // The names are the store's own constants, never input.
        let analyze = format!("ANALYZE {}", inner.tables.join(", "));
        if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(analyze))
            .execute(inner.db.pool())
            .await
        {
            tracing::warn!(%error, tables = ?inner.tables, "could not refresh the planner statistics");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_are_refreshed_each_time_the_rows_written_double() {
        let mut schedule = Schedule::default();
        let refreshed_at: Vec<u64> = (1..=200)
            .filter(|_| schedule.written(1_000))
            .map(|batch| batch * 1_000)
            .collect();
        assert_eq!(
            refreshed_at,
            [2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000]
        );
    }

    #[test]
    fn a_trickle_of_writes_is_refreshed_ever_more_rarely() {
        let mut schedule = Schedule::default();
        let first = Schedule::FIRST;
        assert!(!(1..first).any(|_| schedule.written(1)));
        assert!(schedule.written(1));
        assert!(!(1..first).any(|_| schedule.written(1)));
        assert!(schedule.written(1), "twice the first");
        assert!(!(1..2 * first).any(|_| schedule.written(1)));
        assert!(schedule.written(1), "twice again");
    }
}
