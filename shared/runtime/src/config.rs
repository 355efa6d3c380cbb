//! Settings every service shares, read from the environment (12-factor) and documented by `--help`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::auth::config::AuthConfig;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for a log pipeline.
    Json,
}

/// The settings of the shared runtime; each service flattens these into its own `Config`.
#[derive(Debug, Clone, Args)]
pub struct RuntimeConfig {
    /// Address the gRPC server listens on (port 0 picks a free port). Default: 0.0.0.0 and the
    /// service's own port: contact 50051, conversation 50052, metrics 50053.
    #[arg(long, env = "CHARLA_LISTEN_ADDR")]
    pub listen_addr: Option<SocketAddr>,

    /// Database URL: `sqlite:PATH` (created if missing) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "CHARLA_DATABASE_URL")]
    pub database_url: String,

    /// Address of the admin HTTP listener serving `GET /metrics` for Prometheus (port 0 picks a
    /// free port). Unset: no admin listener.
    #[arg(long, env = "CHARLA_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,

    /// Log format.
    #[arg(long, env = "CHARLA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Longest time a call may take to answer, in seconds, streamed requests included (a shorter
    /// client deadline wins); past it the call is cancelled (CANCELLED "Timeout expired"). An
    /// import answers shortly before, with the rows it wrote.
    #[arg(long, env = "CHARLA_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// On SIGTERM, how long to keep accepting calls while health answers NOT_SERVING on every
    /// name, before draining: give it the readiness probe's period so load balancers stop routing
    /// here first (Kubernetes: shorter than terminationGracePeriodSeconds, with the drain).
    #[arg(long, env = "CHARLA_DRAIN_DELAY_MS", default_value_t = 0)]
    pub drain_delay_ms: u64,

    /// Calls served at once by this process; more are shed with RESOURCE_EXHAUSTED.
    #[arg(long, env = "CHARLA_MAX_CONCURRENT_REQUESTS", default_value_t = 512)]
    pub max_concurrent_requests: usize,

    /// Calls of one workspace served at once by this process; more are RESOURCE_EXHAUSTED, so one
    /// tenant can't take every slot. Service tokens are bounded by the process-wide limit only.
    #[arg(long, env = "CHARLA_MAX_CONCURRENT_REQUESTS_PER_WORKSPACE", default_value_t = 64, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_concurrent_requests_per_workspace: usize,

    /// Event and dashboard streams one workspace may keep open on this process.
    #[arg(long, env = "CHARLA_MAX_STREAMS_PER_WORKSPACE", default_value_t = 16, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_streams_per_workspace: usize,

    /// Partitions of the service's event stream (a hash of the workspace id picks one; writers
    /// to different partitions never wait for each other). Recorded in the database at its first
    /// start and fixed for its life; unset then, a new database gets 1 on SQLite (one writer at a
    /// time) and 16 on PostgreSQL. Unset later, a replica uses the recorded count; set to another
    /// count, it refuses to start.
    #[arg(long, env = "CHARLA_EVENT_PARTITIONS", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub event_partitions: Option<u32>,

    /// Run on a test clock that only `TestClockService` moves (for trying out time-based
    /// behaviour); never in production.
    #[arg(long, env = "CHARLA_TEST_CLOCK", default_value_t = false)]
    pub test_clock: bool,

    #[command(flatten)]
    pub db_pool: crate::db::PoolConfig,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub tls: crate::tls::TlsConfig,

    #[command(flatten)]
    pub cors: crate::cors::CorsConfig,
}

impl RuntimeConfig {
    /// Settings for a service on `database_url`, listening on `listen_addr`, checking tokens as
    /// `auth` says, defaults elsewhere.
    pub fn new(listen_addr: SocketAddr, database_url: impl Into<String>, auth: AuthConfig) -> Self {
        Self {
            listen_addr: Some(listen_addr),
            database_url: database_url.into(),
            admin_addr: None,
            log_format: LogFormat::Text,
            request_timeout_secs: 30,
            drain_delay_ms: 0,
            max_concurrent_requests: 512,
            max_concurrent_requests_per_workspace: 64,
            max_streams_per_workspace: 16,
            event_partitions: None,
            test_clock: false,
            db_pool: Default::default(),
            auth,
            tls: Default::default(),
            cors: Default::default(),
        }
    }

    /// The clock the configuration asks for: a test clock from now, or the system's.
    pub fn clock(&self) -> crate::test_clock::ServiceClock {
        if self.test_clock {
            crate::test_clock::ServiceClock::test_from_now()
        } else {
            crate::test_clock::ServiceClock::System
        }
    }

    /// The address to listen on: the configured one, or every interface on `default_port`.
    pub fn listen_addr_or(&self, default_port: u16) -> SocketAddr {
        self.listen_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port)))
    }

    /// The drain delay as a duration.
    pub fn drain_delay(&self) -> Duration {
        Duration::from_millis(self.drain_delay_ms)
    }

    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
}
