//! One test clock for every replica of a service: its time lives in the service's database. Each
//! replica keeps a copy in memory (time is read synchronously everywhere), refreshed from the
//! database before every call and every second, and moves it in the database first, so a move
//! through any replica is what every replica sees on its next call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use sqlx::Row;
use tokio_util::sync::CancellationToken;

use crate::ApiError;
use crate::clock::{Clock, ManualClock, from_micros, latest_time, to_micros};
use crate::db::{Database, MigrationFile};

/// The test clock's table. Every service includes it, on both engines (the SQL is the same).
pub const MIGRATION: MigrationFile = MigrationFile {
    version: 1100,
    description: "test clock",
    sql: include_str!("../../migrations/test_clock.sql"),
};

/// How often a replica picks up moves made elsewhere, for its background work (calls refresh
/// before they run).
const REFRESH_EVERY: Duration = Duration::from_secs(1);

/// A process's test clock, kept equal to its database's.
#[derive(Debug, Clone)]
pub struct FleetClock {
    local: ManualClock,
    db: Database,
    /// The database's time when this process last read or wrote it (microseconds): a stored time
    /// that differs was moved by another replica.
    synced: Arc<AtomicI64>,
    /// One read-compare-write at a time: a refresh that read the database before another one
    /// wrote it would otherwise take the older time back (a call's refresh racing the background
    /// one moved the clock backwards under a test).
    moving: Arc<tokio::sync::Mutex<()>>,
}

impl FleetClock {
    /// Joins the fleet's clock: a database that has one resumes it; one that has none starts
    /// from `local`'s time.
    pub async fn attach(local: ManualClock, db: Database) -> Result<Self, sqlx::Error> {
        sqlx::query(
            "INSERT INTO test_clock (id, now_micros) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(to_micros(local.now()))
        .execute(db.pool())
        .await?;
        let stored = stored_time(&db).await?;
        local.set(from_micros(stored));
        Ok(Self {
            local,
            db,
            synced: Arc::new(AtomicI64::new(stored)),
            moving: Arc::default(),
        })
    }

    /// The clock services read.
    pub fn local(&self) -> &ManualClock {
        &self.local
    }

    /// Takes the fleet's time when another replica moved it; otherwise gives the fleet this
    /// process's time if the process moved its own clock (`charla up` shares one clock among
    /// services with a database each; in-process tests move it directly).
    pub async fn refresh(&self) -> Result<(), sqlx::Error> {
        let _one_at_a_time = self.moving.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<(), sqlx::Error> {
        let stored = stored_time(&self.db).await?;
        let synced = self.synced.load(Ordering::SeqCst);
        let local = to_micros(self.local.now());
        if stored != synced {
            self.local.set(from_micros(stored));
            self.synced.store(stored, Ordering::SeqCst);
        } else if local != stored {
            // Only if no replica moved it meanwhile; if one did, the next refresh takes that.
            let written = sqlx::query(
                "UPDATE test_clock SET now_micros = $1 WHERE id = 1 AND now_micros = $2",
            )
            .bind(local)
            .bind(stored)
            .execute(self.db.pool())
            .await?;
            if written.rows_affected() == 1 {
                self.synced.store(local, Ordering::SeqCst);
            }
        }
        Ok(())
    }

    /// Sets the fleet's clock to `to`; refused when the fleet's clock is already later.
    pub async fn set(&self, to: SystemTime) -> Result<SystemTime, ApiError> {
        let _one_at_a_time = self.moving.lock().await;
        self.refresh_locked().await?;
        let moved =
            sqlx::query("UPDATE test_clock SET now_micros = $1 WHERE id = 1 AND now_micros <= $1")
                .bind(to_micros(to))
                .execute(self.db.pool())
                .await?;
        if moved.rows_affected() == 0 {
            return Err(ApiError::invalid(
                "time",
                "the test clock never moves backwards",
            ));
        }
        self.local.set(to);
        self.synced.store(to_micros(to), Ordering::SeqCst);
        Ok(to)
    }

    /// Moves the fleet's clock forward by `by`; refused past the year 9999.
    pub async fn advance(&self, by: Duration) -> Result<SystemTime, ApiError> {
        let _one_at_a_time = self.moving.lock().await;
        self.refresh_locked().await?;
        // Anything longer passes the year 9999 anyway; capped, the SQL can't overflow.
        let latest = to_micros(latest_time());
        let by = i64::try_from(by.as_micros()).map_or(latest, |by| by.min(latest));
        let moved = sqlx::query(
            "UPDATE test_clock SET now_micros = now_micros + $1 \
             WHERE id = 1 AND now_micros <= $2 - $1 RETURNING now_micros",
        )
        .bind(by)
        .bind(latest)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = moved else {
            return Err(ApiError::invalid(
                "duration",
                "would move the clock past the year 9999",
            ));
        };
        let stored = row.try_get::<i64, _>(0)?;
        self.local.set(from_micros(stored));
        self.synced.store(stored, Ordering::SeqCst);
        Ok(from_micros(stored))
    }

    /// Refreshes every second until `shutdown`, for work no call starts (auto-close scans, the
    /// dashboard's "today").
    pub fn spawn_refresher(&self, shutdown: CancellationToken) {
        let clock = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(REFRESH_EVERY) => clock.refresh_or_warn().await,
                }
            }
        });
    }

    async fn refresh_or_warn(&self) {
        if let Err(error) = self.refresh().await {
            tracing::warn!(%error, "can't read the test clock: keeping this replica's time");
        }
    }
}

/// The fleet's time, in microseconds.
async fn stored_time(db: &Database) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT now_micros FROM test_clock WHERE id = 1")
        .fetch_one(db.pool())
        .await?;
    row.try_get::<i64, _>(0)
}

/// The tower layer that refreshes the test clock before each call, so a call sees every move
/// made through any replica before it started. Passes calls straight through without one.
#[derive(Debug, Clone, Default)]
pub struct RefreshClockLayer {
    clock: Option<FleetClock>,
}

impl RefreshClockLayer {
    /// Refreshes `clock` before each call (none: does nothing).
    pub fn new(clock: Option<FleetClock>) -> Self {
        Self { clock }
    }
}

impl<S> tower::Layer<S> for RefreshClockLayer {
    type Service = RefreshClock<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RefreshClock {
            inner,
            clock: self.clock.clone(),
        }
    }
}

/// See [`RefreshClockLayer`].
#[derive(Debug, Clone)]
pub struct RefreshClock<S> {
    inner: S,
    clock: Option<FleetClock>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R> tower::Service<R> for RefreshClock<S>
where
    S: tower::Service<R> + Clone + Send + 'static,
    S::Future: Send + 'static,
    R: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let Some(clock) = self.clock.clone() else {
            return Box::pin(self.inner.call(request));
        };
        // The service that was polled ready is the one to call; a clone takes its place.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        Box::pin(async move {
            clock.refresh_or_warn().await;
            inner.call(request).await
        })
    }
}
