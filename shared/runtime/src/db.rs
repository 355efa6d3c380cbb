//! The database every service owns: SQLite (the embedded default, one file per service) or
//! PostgreSQL (production), behind one pool type, with the service's migrations embedded in its
//! binary and run at start-up.
//!
//! Queries are written once, in the SQL both engines accept (`$1` placeholders, `RETURNING`,
//! `ON CONFLICT`); ids are stored as text and instants as microseconds since the epoch, so the same
//! code and the same tests run on both.

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, SqlSafeStr};

/// Which engine a database runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An SQLite file, embedded in the process.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Bound values a multi-row statement should carry at most. On PostgreSQL each statement is a
    /// round trip, so big ones pay off (well under its limit of 65,535). SQLite runs statements in
    /// process, but sqlx places each value by asking SQLite for its parameter's name (`$7`), which
    /// SQLite finds by walking a list of the statement's parameters: binding is quadratic in a
    /// statement's values, and a few hundred per statement beat thousands (2,500 values a
    /// statement spent half the conversation service's time on an import in that walk).
    pub fn max_binds(self) -> usize {
        match self {
            Backend::Postgres => 16_000,
            Backend::Sqlite => 256,
        }
    }
}

/// One migration, embedded with `include_str!`.
#[derive(Debug, Clone, Copy)]
pub struct MigrationFile {
    /// Its version: migrations run in ascending order, each once.
    pub version: i64,
    /// A few words on what it does.
    pub description: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// A service's migrations, one list per engine where their SQL must differ.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// For SQLite.
    pub sqlite: &'static [MigrationFile],
    /// For PostgreSQL.
    pub postgres: &'static [MigrationFile],
}

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("database URL must start with `sqlite:` or `postgres://`, got `{0}`")]
    UnsupportedUrl(String),
    /// The database can't be reached or opened.
    #[error("can't open the database: {0}")]
    Connect(#[source] sqlx::Error),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// The folder of an SQLite file could not be created.
    #[error("can't create the folder of the SQLite file: {0}")]
    Folder(#[source] std::io::Error),
    /// The pool's minimum is above its maximum.
    #[error(
        "CHARLA_DB_MIN_CONNECTIONS ({min}) is above CHARLA_DB_MAX_CONNECTIONS ({max}); \
         the minimum must not exceed the maximum"
    )]
    PoolSize { min: u32, max: u32 },
}

/// The connection pool's size and how long idle connections stay open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct PoolConfig {
    /// Most connections this process's pool opens to PostgreSQL (an SQLite file always takes
    /// one). Each process also holds up to 2 connections outside the pool (the commit listener,
    /// the consumer's partition leases), so size it for the fleet: the sum, over every service on
    /// one PostgreSQL server, of replicas × (this + 2) must stay below that server's
    /// `max_connections` less its `superuser_reserved_connections` (100 and 3 by default).
    #[arg(long, env = "CHARLA_DB_MAX_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub db_max_connections: u32,

    /// Connections the pool keeps open even when idle (opened in the background at start-up,
    /// so the first calls after a quiet spell don't wait for a connection). At most the maximum.
    #[arg(long, env = "CHARLA_DB_MIN_CONNECTIONS", default_value_t = 0)]
    pub db_min_connections: u32,

    /// Seconds a connection above the minimum may stay idle before the pool closes it; 0 keeps
    /// idle connections open.
    #[arg(long, env = "CHARLA_DB_IDLE_TIMEOUT_SECS", default_value_t = 600)]
    pub db_idle_timeout_secs: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            db_max_connections: 16,
            db_min_connections: 0,
            db_idle_timeout_secs: 600,
        }
    }
}

impl PoolConfig {
    /// The pool's options for `backend`: SQLite takes one writer at a time, so a single connection
    /// queues writers in the pool instead of failing them with SQLITE_BUSY.
    fn options(&self, backend: Backend) -> Result<AnyPoolOptions, DbError> {
        let (min, max) = (self.db_min_connections, self.db_max_connections);
        if min > max {
            return Err(DbError::PoolSize { min, max });
        }
        let (min, max) = match backend {
            Backend::Sqlite => (min.min(1), 1),
            Backend::Postgres => (min, max),
        };
        let idle =
            (self.db_idle_timeout_secs > 0).then(|| Duration::from_secs(self.db_idle_timeout_secs));
        Ok(AnyPoolOptions::new()
            .max_connections(max)
            .min_connections(min)
            .idle_timeout(idle))
    }
}

/// A migrated connection pool.
#[derive(Debug, Clone)]
pub struct Database {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

impl Database {
    /// Opens the database at `url` (creating an SQLite file if missing) with the default pool and
    /// runs `migrations`.
    pub async fn connect(url: &str, migrations: &Migrations) -> Result<Self, DbError> {
        Self::connect_with_pool(url, &PoolConfig::default(), migrations).await
    }

    /// Opens the database at `url` (creating an SQLite file if missing) with a pool sized by
    /// `pool` and runs `migrations`. Replicas that start together on one PostgreSQL migrate it
    /// once: the migrator holds an advisory lock while it runs.
    pub async fn connect_with_pool(
        url: &str,
        pool: &PoolConfig,
        migrations: &Migrations,
    ) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let pool_options = pool.options(backend)?;
        let url = match backend {
            Backend::Sqlite => {
                create_sqlite_folder(url)?;
                sqlite_url(url)
            }
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url).map_err(DbError::Connect)?;
        let pool = pool_options
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // A write-ahead log commits with one fsync instead of a rollback
                        // journal's four, and FULL makes that fsync part of every commit: what
                        // a call acknowledged survives a power cut, not only a process crash.
                        // (NORMAL syncs the log at checkpoints only. `charla bench --rounds 2`,
                        // alternating FULL / NORMAL / FULL: RecordMessage into an open
                        // conversation at one caller 656 / 1,138 / 795 per second, the same SQL
                        // without charla 1,191 / 1,345 / 1,032; imports and consumers, which
                        // commit many rows at once, did not move.)
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *connection)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *connection)
                            .await?;
                        // 4 MiB of pages instead of SQLite's 2 MiB: a report or a batch of
                        // events reads rollup rows all over the file, and every page missed is a
                        // system call (a read from the kernel's cache, which keeps the file's hot
                        // pages anyway). 16 MiB was tried: it filled on any database past a few
                        // thousand conversations and added 12 MiB to every service's RSS, with
                        // the metrics consumer, reports and RecordMessage no faster than at 4 MiB
                        // (charla bench, 10,000 and 60,000 conversations). One connection per
                        // service, so this bounds the memory.
                        sqlx::query("PRAGMA cache_size = -4096")
                            .execute(&mut *connection)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(DbError::Connect)?;
        let files = match backend {
            Backend::Sqlite => migrations.sqlite,
            Backend::Postgres => migrations.postgres,
        };
        migrator(files).run(&pool).await.map_err(DbError::Migrate)?;
        Ok(Self { pool, backend, url })
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `FOR UPDATE` on PostgreSQL, where concurrent transactions must lock the rows they
    /// read-modify-write; nothing on SQLite, where one connection serializes every transaction.
    pub fn row_lock(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE",
            Backend::Sqlite => "",
        }
    }

    /// Begins a transaction whose writes can be made again from their source (a consumer's
    /// effects and cursor, derived from another log), committed without waiting for the write-
    /// ahead log's flush. A crash of PostgreSQL itself may then lose it (the last few hundred
    /// milliseconds of such commits at most, never half of one), and the consumer applies the
    /// same events again; its commits stop competing with the flushes of the writes that are the
    /// source of truth. Its statements are also planned without parallel workers: they look rows
    /// up by key, and PostgreSQL sometimes chose to start two workers for a large key list (5 ms
    /// of a 15 ms read, on cores the consumer itself needs). The settings travel with `BEGIN`,
    /// in the same round trip. A plain (durable) transaction on SQLite: its one connection
    /// serializes every commit anyway, and a consumer's batch pays one flush for all its events.
    pub async fn begin_without_flush(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Postgres => {
                self.pool
                    .begin_with(
                        "BEGIN; SET LOCAL synchronous_commit = off;
                         SET LOCAL max_parallel_workers_per_gather = 0",
                    )
                    .await
            }
            Backend::Sqlite => self.pool.begin().await,
        }
    }

    /// The URL the pool was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(DbError::UnsupportedUrl(url.to_owned()))
    }
}

/// The file path and query of a `sqlite:` URL.
fn sqlite_parts(url: &str) -> (&str, &str) {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    rest.split_once('?').unwrap_or((rest, ""))
}

fn create_sqlite_folder(url: &str) -> Result<(), DbError> {
    let (path, _) = sqlite_parts(url);
    match std::path::Path::new(path).parent() {
        Some(folder) if path != ":memory:" && !folder.as_os_str().is_empty() => {
            std::fs::create_dir_all(folder).map_err(DbError::Folder)
        }
        _ => Ok(()),
    }
}

/// `sqlite:PATH` → a URL that creates the file when missing.
fn sqlite_url(url: &str) -> String {
    let (path, query) = sqlite_parts(url);
    let mode = if query.contains("mode=") {
        ""
    } else {
        "mode=rwc"
    };
    let separator = if query.is_empty() || mode.is_empty() {
        ""
    } else {
        "&"
    };
    format!("sqlite://{path}?{query}{separator}{mode}")
}

fn migrator(files: &'static [MigrationFile]) -> Migrator {
    let migrations = files
        .iter()
        .map(|file| {
            Migration::new(
                file.version,
                Cow::Borrowed(file.description),
                MigrationType::Simple,
                file.sql.into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_create_missing_files() {
        assert_eq!(
            sqlite_url("sqlite:data/contact.db"),
            "sqlite://data/contact.db?mode=rwc"
        );
        assert_eq!(
            sqlite_url("sqlite:///tmp/x.db?mode=ro"),
            "sqlite:///tmp/x.db?mode=ro"
        );
    }

    #[test]
    fn other_urls_are_refused() {
        assert!(matches!(
            backend_of("mysql://x"),
            Err(DbError::UnsupportedUrl(_))
        ));
        assert_eq!(backend_of("postgres://a@b/c").unwrap(), Backend::Postgres);
    }
}
