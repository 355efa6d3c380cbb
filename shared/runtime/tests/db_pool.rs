//! The connection pool is sized as configured (CHARLA_DB_MAX_CONNECTIONS, _MIN_, _IDLE_TIMEOUT_SECS):
//! PostgreSQL never sees more connections from it than the maximum, the minimum is kept open, and
//! settings that contradict each other are refused, naming both.

use std::time::Duration;

use charla_runtime::db::{Database, DbError, Migrations, PoolConfig};
use charla_testing::{Backend, fresh_database_url};

const NOTHING: Migrations = Migrations {
    sqlite: &[],
    postgres: &[],
};

/// Connections to `database` that PostgreSQL counts, other than the one asking.
async fn connections_to(observer: &Database, database: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(database)
    .fetch_one(observer.pool())
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sees_no_more_connections_than_the_maximum_and_keeps_the_minimum() {
    let Some(url) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let database = url.rsplit('/').next().unwrap().to_owned();
    let admin_url = charla_testing::postgres_admin_url();
    let observer = Database::connect(&admin_url, &NOTHING).await.unwrap();
    let pool = PoolConfig {
        db_max_connections: 3,
        db_min_connections: 2,
        db_idle_timeout_secs: 0,
    };
    let db = Database::connect_with_pool(&url, &pool, &NOTHING)
        .await
        .unwrap();

    // The minimum is opened in the background: wait for it (bounded), without any query.
    let mut open = 0;
    for _ in 0..100 {
        open = connections_to(&observer, &database).await;
        if open >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(open, 2, "the minimum is kept open while idle");

    // Twelve queries at once, each holding its connection a while: three at a time.
    let queries: Vec<_> = (0..12)
        .map(|_| {
            let pool = db.pool().clone();
            tokio::spawn(async move {
                sqlx::query("SELECT pg_sleep(0.2)")
                    .execute(&pool)
                    .await
                    .unwrap();
            })
        })
        .collect();
    let mut most = 0;
    while queries.iter().any(|query| !query.is_finished()) {
        most = most.max(connections_to(&observer, &database).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for query in queries {
        query.await.unwrap();
    }
    assert_eq!(
        most, 3,
        "busy, the pool opens up to its maximum and no more"
    );
}

#[tokio::test]
async fn a_minimum_above_the_maximum_is_refused_naming_both() {
    let Some(url) = fresh_database_url(Backend::Sqlite).await else {
        return;
    };
    let pool = PoolConfig {
        db_max_connections: 2,
        db_min_connections: 5,
        ..PoolConfig::default()
    };
    let error = Database::connect_with_pool(&url, &pool, &NOTHING)
        .await
        .unwrap_err();
    assert!(matches!(error, DbError::PoolSize { min: 5, max: 2 }));
    assert!(
        error
            .to_string()
            .starts_with("CHARLA_DB_MIN_CONNECTIONS (5) is above CHARLA_DB_MAX_CONNECTIONS (2)"),
        "{error}"
    );
}

#[tokio::test]
async fn an_sqlite_file_takes_one_connection_whatever_the_maximum() {
    let Some(url) = fresh_database_url(Backend::Sqlite).await else {
        return;
    };
    let pool = PoolConfig {
        db_max_connections: 8,
        ..PoolConfig::default()
    };
    let db = Database::connect_with_pool(&url, &pool, &NOTHING)
        .await
        .unwrap();
    assert_eq!(db.pool().options().get_max_connections(), 1);
}

/// A transaction begun without a flush commits so on PostgreSQL, and plans without parallel
/// workers, and only that one: the next transaction on the same connection waits for its flush
/// again and plans as the server says.
#[tokio::test]
async fn a_transaction_begun_without_flush_commits_so_alone() {
    let Some(url) = fresh_database_url(Backend::Postgres).await else {
        return;
    };
    let pool = PoolConfig {
        db_max_connections: 1,
        db_min_connections: 1,
        db_idle_timeout_secs: 0,
    };
    let db = Database::connect_with_pool(&url, &pool, &NOTHING)
        .await
        .unwrap();
    // The session waits for flushes, whatever the server's default (CI's cluster doesn't).
    sqlx::query("SET synchronous_commit = on")
        .execute(db.pool())
        .await
        .unwrap();
    let mut tx = db.begin_without_flush().await.unwrap();
    assert_eq!(setting(&mut tx, "synchronous_commit").await, "off");
    assert_eq!(
        setting(&mut tx, "max_parallel_workers_per_gather").await,
        "0"
    );
    tx.commit().await.unwrap();

    let mut tx = db.pool().begin().await.unwrap();
    assert_eq!(
        setting(&mut tx, "synchronous_commit").await,
        "on",
        "the same connection, the next transaction"
    );
    assert_ne!(
        setting(&mut tx, "max_parallel_workers_per_gather").await,
        "0",
        "PostgreSQL's default (2)"
    );
}

async fn setting(conn: &mut sqlx::AnyConnection, name: &str) -> String {
    use sqlx::Row;
    sqlx::query("SELECT current_setting($1)")
        .bind(name.to_owned())
        .fetch_one(conn)
        .await
        .unwrap()
        .get(0)
}

/// SQLite commits through a write-ahead log and flushes it at every commit (`synchronous =
/// FULL`): what a call acknowledged survives a power cut. A transaction begun without flush is a
/// durable one there too.
#[tokio::test]
async fn sqlite_commits_are_durable() {
    let url = fresh_database_url(Backend::Sqlite)
        .await
        .expect("SQLite needs no server");
    let db = Database::connect(&url, &NOTHING).await.unwrap();
    let mut conn = db.pool().acquire().await.unwrap();
    assert_eq!(pragma(&mut conn, "PRAGMA journal_mode").await, "wal");
    // 2 is FULL (0 OFF, 1 NORMAL, 3 EXTRA).
    assert_eq!(pragma(&mut conn, "PRAGMA synchronous").await, "2");
    drop(conn);
    let mut tx = db.begin_without_flush().await.unwrap();
    assert_eq!(pragma(&mut tx, "PRAGMA synchronous").await, "2");
}

/// The value a `PRAGMA` statement reads.
async fn pragma(conn: &mut sqlx::AnyConnection, statement: &'static str) -> String {
    use sqlx::Row;
    let row = sqlx::query(statement).fetch_one(conn).await.unwrap();
    // The Any driver hands SQLite's integers over as integers, its text as text.
    row.try_get::<String, _>(0)
        .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
        .unwrap()
}
