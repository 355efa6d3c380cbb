//! Starting a service: what can fail on the way, and the serve loop every service shares.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use charla_proto::charla::conversation::v1::test_clock_service_server::TestClockServiceServer;

use crate::admin::AdminServer;
use crate::auth::config::{AuthConfig, AuthSetupError};
use crate::auth::credential::ServiceCredential;
use crate::auth::verify::Verifier;
use crate::config::RuntimeConfig;
use crate::db::{Database, DbError};
use crate::server::{GrpcServer, Limits};
use crate::service_metrics::ServiceMetrics;
use crate::test_clock::fleet::FleetClock;
use crate::test_clock::{AfterMove, ServiceClock, TestClockApi};

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Database(#[from] DbError),
    /// The listen address could not be bound.
    #[error("can't listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// CHARLA_EVENT_PARTITIONS went down: a partition in use would no longer be read.
    #[error(
        "CHARLA_EVENT_PARTITIONS is {configured}, but the event log already uses partition {used}; \
         the partition count can't go down"
    )]
    EventPartitionsLowered { configured: u32, used: u32 },
    /// CHARLA_EVENT_PARTITIONS differs from the count recorded at the database's first start.
    #[error(
        "CHARLA_EVENT_PARTITIONS is {configured}, but this database's event log was created with \
         {recorded} (the partition count is recorded at the first start and fixed for the \
         database's life); set {recorded}, or leave it unset to use the recorded count"
    )]
    EventPartitionsDiffer { configured: u32, recorded: u32 },
    /// Callers' tokens can't be checked, or peers can't be called, with the configured keys.
    #[error(transparent)]
    Auth(#[from] AuthSetupError),
    /// The TLS settings can't be used.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The server failed while serving.
    #[error("gRPC server failed: {0}")]
    Serve(#[from] crate::server::ServeError),
    /// The test clock's time could not be read from or stored in the database.
    #[error("test clock: {0}")]
    TestClock(#[source] sqlx::Error),
}

/// A service bound to its address, ready to serve.
pub struct Application {
    server: GrpcServer,
    limits: Limits,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
    auth: AuthConfig,
    verifier: Arc<Verifier>,
    tls: bool,
    metrics: Arc<ServiceMetrics>,
    admin: Option<AdminServer>,
    admin_addr: Option<SocketAddr>,
}

impl Application {
    /// Binds the configured address; the caller then adds its services to [`Application::server`].
    pub async fn bind(
        config: &RuntimeConfig,
        default_port: u16,
        shutdown: CancellationToken,
    ) -> Result<Self, StartError> {
        let verifier = Arc::new(config.auth.verifier()?);
        let tls = config.tls.server()?;
        let addr = config.listen_addr_or(default_port);
        let bind_error = |source| StartError::Bind { addr, source };
        let mut server = GrpcServer::bind(addr, verifier.clone())
            .await
            .map_err(bind_error)?;
        let local_addr = server.local_addr().map_err(bind_error)?;
        let tls_on = tls.is_some();
        if let Some(tls) = tls {
            server.use_tls(tls);
        }
        let metrics = ServiceMetrics::new();
        let (admin, admin_addr) = match config.admin_addr {
            Some(addr) => {
                let bind_error = |source| StartError::Bind { addr, source };
                let admin = AdminServer::bind(addr).await.map_err(bind_error)?;
                let bound = admin.local_addr().map_err(bind_error)?;
                server.observe_calls(metrics.clone());
                (Some(admin), Some(bound))
            }
            None => (None, None),
        };
        Ok(Self {
            server,
            limits: Limits {
                request_timeout: config.request_timeout(),
                max_concurrent_requests: config.max_concurrent_requests,
                per_workspace: crate::fair_share::WorkspaceQuota {
                    calls: config.max_concurrent_requests_per_workspace,
                    streams: config.max_streams_per_workspace,
                },
                cors: config.cors.clone(),
                drain_delay: config.drain_delay(),
            },
            local_addr,
            shutdown,
            auth: config.auth.clone(),
            verifier,
            tls: tls_on,
            metrics,
            admin,
            admin_addr,
        })
    }

    /// The credential this service (`service_name`) presents when it calls another service.
    pub fn service_credential(&self, service_name: &str) -> Result<ServiceCredential, StartError> {
        Ok(self.auth.service_credential(&self.verifier, service_name)?)
    }

    /// The server, to add services to.
    pub fn server(&mut self) -> &mut GrpcServer {
        &mut self.server
    }

    /// Serves `TestClockService` when `clock` is a test clock, its time kept in `db` for every
    /// replica, running `after_move` after each move; on the system clock there is nothing to
    /// control, so the service isn't served (nor listed by reflection).
    pub async fn serve_test_clock(
        &mut self,
        clock: &ServiceClock,
        db: &Database,
        after_move: Option<AfterMove>,
    ) -> Result<(), StartError> {
        let ServiceClock::Test(clock) = clock else {
            return Ok(());
        };
        let fleet = FleetClock::attach(clock.clone(), db.clone())
            .await
            .map_err(StartError::TestClock)?;
        fleet.spawn_refresher(self.shutdown.clone());
        self.server.refresh_clock_before_calls(fleet.clone());
        let api = TestClockApi::new(fleet, after_move);
        self.server
            .add_service(TestClockServiceServer::new(api))
            .await;
        Ok(())
    }

    /// The service's Prometheus metrics, for it to add its own gauges to (served only when
    /// `CHARLA_ADMIN_ADDR` is set).
    pub fn metrics(&self) -> &Arc<ServiceMetrics> {
        &self.metrics
    }

    /// The admin listener's address (`GET /metrics`), when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The address the service listens on (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until the shutdown token fires, then drains and returns.
    pub async fn run(self) -> Result<(), StartError> {
        tracing::info!(addr = %self.local_addr, tls = self.tls, admin = ?self.admin_addr, "serving");
        if let Some(admin) = self.admin {
            let (metrics, shutdown) = (self.metrics.clone(), self.shutdown.clone());
            tokio::spawn(async move {
                if let Err(error) = admin.serve(metrics, shutdown).await {
                    tracing::error!(%error, "the admin listener failed");
                }
            });
        }
        self.server.serve(self.limits, self.shutdown).await?;
        tracing::info!(addr = %self.local_addr, "stopped");
        Ok(())
    }
}

/// Runs a process's `main` future: the allocator set up first, while the process has one thread
/// (glibc gives a thread that allocated before the limit on arenas was set an arena of its own),
/// then the future on a multi-thread tokio runtime.
pub fn run_process(main: impl Future<Output = ExitCode>) -> ExitCode {
    crate::allocator::return_freed_memory();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(main),
        Err(error) => {
            eprintln!("error: the async runtime could not start: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What a service's `main` does, under [`run_process`] (which sets the allocator up first):
/// logging as configured, a shutdown token fired by SIGTERM or Ctrl-C, the clock the
/// configuration asks for, then build and serve until drained. Exits 0 after a clean drain.
pub async fn serve_main<F, Fut, E>(name: &str, config: &RuntimeConfig, build: F) -> ExitCode
where
    F: FnOnce(ServiceClock, CancellationToken) -> Fut,
    Fut: Future<Output = Result<Application, E>>,
    E: std::fmt::Display,
{
    let telemetry = crate::telemetry::init(config.log_format, name);
    let shutdown = crate::server::shutdown_on_signals();
    let code = match build(config.clock(), shutdown).await {
        Ok(app) => match app.run().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, service = name, "service failed");
                ExitCode::FAILURE
            }
        },
        Err(error) => {
            tracing::error!(%error, service = name, "service could not start");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown().await;
    code
}
