//! What every service's integration tests need: a fresh database per test on SQLite and on
//! PostgreSQL, calls scoped to a workspace, checks of the errors a call returns, and
//! certificates made at test time (`tls`).
//!
//! PostgreSQL tests use `CHARLA_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) to create a database of their own. When it is
//! unreachable they print that they are skipped, unless `CI=true`, where they fail.

pub mod auth;
pub mod http;
pub mod prometheus;
pub mod raw;
pub mod tls;

use std::sync::atomic::{AtomicBool, Ordering};

pub use auth::{as_role, auth_config, connect, in_workspace, token, with_token};

use sqlx::Connection;
use tonic_types::StatusExt;
use uuid::Uuid;

/// The database engine a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server URL used to create PostgreSQL test databases.
pub fn postgres_admin_url() -> String {
    std::env::var("CHARLA_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// A new, empty database URL for one test; `None` when PostgreSQL is unreachable outside CI.
pub async fn fresh_database_url(backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => {
            let path =
                std::env::temp_dir().join(format!("charla-test-{}.db", Uuid::now_v7().simple()));
            Some(format!("sqlite:{}", path.display()))
        }
        Backend::Postgres => fresh_postgres_database().await,
    }
}

async fn fresh_postgres_database() -> Option<String> {
    let admin_url = postgres_admin_url();
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(connection) => connection,
        Err(error) => {
            let ci = std::env::var("CI").is_ok_and(|value| value == "true");
            assert!(
                !ci,
                "PostgreSQL tests must run under CI=true, but {admin_url} is unreachable: {error}"
            );
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "SKIPPED: PostgreSQL tests, {admin_url} is unreachable ({error}); \
                     set CHARLA_TEST_POSTGRES_URL to run them"
                );
            }
            return None;
        }
    };
    let name = format!("charla_test_{}", Uuid::now_v7().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("a database URL has a path");
    Some(format!("{base}/{name}"))
}

/// Runs each named async test, `async fn name(backend: Backend)`, once on SQLite and once on
/// PostgreSQL, as `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

/// Asserts that `result` failed with `code` and a BadRequest violation naming `field`.
#[track_caller]
pub fn assert_invalid_field<T: std::fmt::Debug>(result: Result<T, tonic::Status>, field: &str) {
    let status = result.expect_err("the call should fail");
    assert_eq!(
        status.code(),
        tonic::Code::InvalidArgument,
        "wrong code: {status:?}"
    );
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .map(|bad| bad.field_violations.clone())
        .unwrap_or_default();
    assert!(
        violations.iter().any(|v| v.field == field),
        "expected a violation on `{field}`, got {violations:?} ({status:?})"
    );
}

/// Asserts that `result` failed with `code`, and returns the status for further checks.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
) -> tonic::Status {
    let status = result.expect_err("the call should fail");
    assert_eq!(status.code(), code, "wrong code: {status:?}");
    status
}

/// The ResourceInfo (type, name) of a failed call.
pub fn resource_info(status: &tonic::Status) -> Option<(String, String)> {
    status
        .get_error_details()
        .resource_info()
        .map(|info| (info.resource_type.clone(), info.resource_name.clone()))
}

/// The ErrorInfo metadata value `key` of a failed call.
pub fn error_info_value(status: &tonic::Status, key: &str) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get(key).cloned())
}
