//! The services under test: the three of them as child processes (`charla serve SERVICE` of this
//! same binary, so each has its own RSS), on SQLite files in a temporary folder or on PostgreSQL
//! databases made for the run and dropped after it, with a key set made for the run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use charla_runtime::auth::Role;
use charla_runtime::auth::keys::KeySet;
use charla_runtime::workspace::WorkspaceId;
use sqlx::Connection as _;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::credentials::KeySource;

/// The services, in the order they start (each calls the one before it).
pub const SERVICES: [&str; 3] = ["contact", "conversation", "metrics"];

/// How long a service may take to answer its first health check.
const START_PATIENCE: Duration = Duration::from_secs(120);

/// Where the services keep their data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// One SQLite file per service in the run's folder.
    Sqlite,
    /// One database per service on the server at this URL (whose own database is only used to
    /// create and drop them).
    Postgres { admin_url: String },
}

/// A running service.
#[derive(Debug)]
struct Running {
    name: &'static str,
    port: u16,
    child: Child,
}

/// The three services of a run, and what they were started with.
#[derive(Debug)]
pub struct Fleet {
    storage: Storage,
    folder: PathBuf,
    keys: KeySource,
    /// The run's tag in database names, so that runs side by side don't meet.
    tag: String,
    running: Vec<Running>,
}

/// A free loopback port (free when asked; the service binds it a moment later).
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not a postgres:// URL"))?;
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, format!("?{query}")),
        None => (rest, String::new()),
    };
    let host = rest.split_once('/').map_or(rest, |(host, _)| host);
    Ok(format!("{scheme}://{host}/{database}{query}"))
}

impl Fleet {
    /// Makes the run's folder, key set and (on PostgreSQL) databases, then starts the services.
    pub async fn start(storage: Storage) -> Result<Self, String> {
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let tag = format!("{}_{stamp}", std::process::id());
        let folder = std::env::temp_dir().join(format!("charla-bench-{tag}"));
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("can't make {}: {e}", folder.display()))?;
        let jwks = folder.join("jwks.json");
        KeySet::read_or_create(&jwks).map_err(|e| format!("can't make a key set: {e}"))?;
        let keys = KeySource {
            jwks: Some(jwks),
            issuer: None,
            audience: None,
            data_dir: folder.clone(),
        };
        let mut fleet = Self {
            storage,
            folder,
            keys,
            tag,
            running: Vec::new(),
        };
        if let Err(error) = fleet.start_all().await {
            fleet.stop().await;
            return Err(error);
        }
        Ok(fleet)
    }

    async fn start_all(&mut self) -> Result<(), String> {
        if let Storage::Postgres { admin_url } = &self.storage {
            let mut admin = sqlx::PgConnection::connect(admin_url)
                .await
                .map_err(|e| format!("can't reach PostgreSQL at {admin_url}: {e}"))?;
            for service in SERVICES {
                let name = self.database_name(service);
                for statement in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("CREATE DATABASE {name}"),
                ] {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                        .execute(&mut admin)
                        .await
                        .map_err(|e| format!("can't create the database {name}: {e}"))?;
                }
            }
        }
        for service in SERVICES {
            let port = free_port()?;
            self.spawn(service, port)?;
            self.wait_ready(service).await?;
        }
        Ok(())
    }

    fn database_name(&self, service: &str) -> String {
        format!("charla_bench_{}_{service}", self.tag)
    }

    /// The database URL of `service`.
    pub fn database_url(&self, service: &str) -> Result<String, String> {
        match &self.storage {
            Storage::Sqlite => Ok(format!(
                "sqlite:{}",
                self.folder.join(format!("{service}.db")).display()
            )),
            Storage::Postgres { admin_url } => {
                with_database(admin_url, &self.database_name(service))
            }
        }
    }

    /// "sqlite" or "postgres".
    pub fn backend(&self) -> &'static str {
        match self.storage {
            Storage::Sqlite => "sqlite",
            Storage::Postgres { .. } => "postgres",
        }
    }

    fn port(&self, service: &str) -> Option<u16> {
        self.running
            .iter()
            .find(|r| r.name == service)
            .map(|r| r.port)
    }

    /// The gRPC URL of `service`.
    pub fn url(&self, service: &str) -> String {
        format!(
            "http://127.0.0.1:{}",
            self.port(service).unwrap_or_default()
        )
    }

    /// A connection to `service`.
    pub async fn channel(&self, service: &str) -> Result<Channel, String> {
        let url = self.url(service);
        Endpoint::from_shared(url.clone())
            .map_err(|e| format!("{url}: {e}"))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| format!("can't reach the {service} service at {url}: {e}"))
    }

    fn spawn(&mut self, service: &'static str, port: u16) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("can't find this binary: {e}"))?;
        let log = std::fs::File::create(self.log_path(service))
            .map_err(|e| format!("can't make the {service} log: {e}"))?;
        let mut command = Command::new(exe);
        command.args(["serve", service]);
        // The run decides these; anything else in the caller's CHARLA_* environment (pool sizes,
        // partitions, limits) passes through, as it would to a deployed service.
        for (name, _) in std::env::vars() {
            if name.starts_with("CHARLA_AUTH_") || name.starts_with("CHARLA_TLS_") {
                command.env_remove(name);
            }
        }
        command
            .env("CHARLA_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("CHARLA_ADMIN_ADDR", "127.0.0.1:0")
            .env("CHARLA_DATABASE_URL", self.database_url(service)?)
            .env("CHARLA_AUTH_JWKS", self.keys.jwks_path())
            .env("CHARLA_LOG_FORMAT", "text")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        match service {
            "conversation" => {
                command.env("CHARLA_CONTACT_URL", self.url("contact"));
            }
            "metrics" => {
                command
                    .env("CHARLA_CONVERSATION_URL", self.url("conversation"))
                    .env("CHARLA_ALLOW_REBUILD", "true")
                    // A rebuild of a large data set is one call: let it run.
                    .env("CHARLA_REQUEST_TIMEOUT_SECS", "21600");
            }
            _ => {}
        }
        let child = command
            .spawn()
            .map_err(|e| format!("can't start the {service} service: {e}"))?;
        self.running.push(Running {
            name: service,
            port,
            child,
        });
        Ok(())
    }

    fn log_path(&self, service: &str) -> PathBuf {
        self.folder.join(format!("{service}.log"))
    }

    /// Waits until `service` answers its health check SERVING.
    async fn wait_ready(&mut self, service: &'static str) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < START_PATIENCE {
            if let Some(running) = self.running.iter_mut().find(|r| r.name == service)
                && let Ok(Some(status)) = running.child.try_wait()
            {
                return Err(format!(
                    "the {service} service exited ({status}); its log:\n{}",
                    tail(&self.log_path(service))
                ));
            }
            if let Ok(channel) = self.channel(service).await {
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                if answer.is_ok_and(|a| a.get_ref().status == ServingStatus::Serving as i32) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "the {service} service did not become ready; its log:\n{}",
            tail(&self.log_path(service))
        ))
    }

    /// Stops `service` at once (SIGKILL: its work is transactional, and a bench needs no
    /// draining).
    pub fn kill(&mut self, service: &str) {
        if let Some(index) = self.running.iter().position(|r| r.name == service) {
            let mut running = self.running.remove(index);
            let _already_gone = running.child.kill();
            let _reaped = running.child.wait();
        }
    }

    /// Starts `service` again, on a new port, and waits until it is ready.
    pub async fn restart(&mut self, service: &'static str) -> Result<(), String> {
        self.kill(service);
        self.spawn(service, free_port()?)?;
        self.wait_ready(service).await
    }

    /// Resident memory of `service` now, in MiB (VmRSS of its process).
    pub fn rss_mib(&self, service: &str) -> Result<f64, String> {
        self.status_mib(service, "VmRSS")
    }

    /// The most resident memory `service` has had since it started, in MiB (VmHWM of its
    /// process): what a memory limit must allow while it works, which RSS after the work can
    /// hide when the allocator hands pages back.
    pub fn peak_rss_mib(&self, service: &str) -> Result<f64, String> {
        self.status_mib(service, "VmHWM")
    }

    /// A `kB` field of `/proc/PID/status` of `service`, in MiB.
    fn status_mib(&self, service: &str, field: &str) -> Result<f64, String> {
        let running = self
            .running
            .iter()
            .find(|r| r.name == service)
            .ok_or_else(|| format!("the {service} service is not running"))?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", running.child.id()))
            .map_err(|e| format!("can't read the {service} service's memory: {e}"))?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .ok_or_else(|| format!("no {field} for the {service} service"))
    }

    /// An admin's `authorization` value for `workspace`.
    pub fn admin(&self, workspace: WorkspaceId) -> Result<MetadataValue<Ascii>, String> {
        self.bearer(Role::Admin, Some(workspace))
    }

    /// A service token's `authorization` value (no workspace).
    pub fn service(&self) -> Result<MetadataValue<Ascii>, String> {
        self.bearer(Role::Service, None)
    }

    fn bearer(
        &self,
        role: Role,
        workspace: Option<WorkspaceId>,
    ) -> Result<MetadataValue<Ascii>, String> {
        let token = self.keys.mint(
            role,
            workspace,
            "charla-bench",
            Duration::from_secs(24 * 3600),
        )?;
        MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "the token is not valid metadata".to_owned())
    }

    /// Stops every service, drops the run's databases and removes its folder.
    pub async fn stop(&mut self) {
        for service in SERVICES.iter().rev() {
            self.kill(service);
        }
        if let Storage::Postgres { admin_url } = &self.storage
            && let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await
        {
            for service in SERVICES {
                let statement = format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.database_name(service)
                );
                if let Err(error) = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                    .execute(&mut admin)
                    .await
                {
                    eprintln!("charla bench: could not drop a database: {error}");
                }
            }
        }
        let _best_effort = std::fs::remove_dir_all(&self.folder);
    }
}

impl Drop for Fleet {
    /// Never leaves services running, even when the bench fails half-way.
    fn drop(&mut self) {
        for running in &mut self.running {
            let _already_gone = running.child.kill();
            let _reaped = running.child.wait();
        }
    }
}

/// The last lines of a log file, to say why a service did not start.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A request carrying `bearer`.
pub fn authed<T>(bearer: &MetadataValue<Ascii>, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    request
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn a_postgres_url_gets_another_database_and_keeps_its_options() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b").unwrap(),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@db/x?sslmode=disable", "b").unwrap(),
            "postgres://u:p@db/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://db", "b").unwrap(),
            "postgres://db/b"
        );
    }
}
