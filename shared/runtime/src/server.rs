//! The gRPC server every service runs: its own API plus health checking and reflection, gRPC-Web
//! and HTTP/JSON accepted, a request timeout, a process-wide concurrency limit with load shedding, and a graceful
//! shutdown that drains in-flight calls when the shutdown token fires; over TLS when configured.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tonic::service::RoutesBuilder;
use tonic_health::server::HealthReporter;
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;

use crate::auth::layer::AuthLayer;
use crate::auth::verify::Verifier;
use crate::fair_share::{FairShare, FairShareLayer, WorkspaceQuota};
use crate::rpc_log::{CallObserver, RpcLogLayer};
use crate::test_clock::fleet::{FleetClock, RefreshClockLayer};

/// HTTP/2 flow-control windows for what clients send. h2 closes a connection (GOAWAY
/// ENHANCE_YOUR_CALM, "too_many_data_frames") when the small DATA frames it holds unread cost more
/// than half the connection window, at about 256 bytes each. A client streaming one small message
/// per frame (an import row) faster than the handler stores them filled hyper's 1 MiB stream window
/// with ~2,300 frames and tripped that. With a 64 KiB stream window (HTTP/2's own default) a stalled
/// stream holds at most 13,107 frames of a 5-byte empty gRPC message, 3.3 MB of overhead, under the
/// 4 MiB budget that an 8 MiB connection window gives; rows of 15 bytes or more cost 1 MB each, so
/// several imports can stall on one connection at once.
const STREAM_WINDOW: u32 = 64 * 1024;
const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// Limits applied to every call.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A call that takes longer to answer is cancelled (a shorter client deadline wins).
    pub request_timeout: Duration,
    /// Calls served at once; more are shed at once with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// What one workspace may use of those.
    pub per_workspace: WorkspaceQuota,
    /// The web origins that may call (outermost, so preflights never reach authentication).
    pub cors: crate::cors::CorsConfig,
    /// How long, after the shutdown token fires, the server keeps accepting calls while health
    /// answers NOT_SERVING on every name, so load balancers stop routing to it first.
    pub drain_delay: Duration,
}

/// Why a server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The compiled-in descriptors could not be loaded for reflection.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The services' `google.api.http` routes can't be served.
    #[error(transparent)]
    HttpJson(#[from] crate::http_json::HttpJsonError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// A bound, not yet serving, gRPC server.
pub struct GrpcServer {
    listener: TcpListener,
    routes: RoutesBuilder,
    health: HealthReporter,
    /// The services added, for reflection to list.
    services: Vec<&'static str>,
    /// Health names besides the services' (a service's own status facets), all reported
    /// NOT_SERVING when the server drains.
    health_names: Vec<&'static str>,
    verifier: Arc<Verifier>,
    tls: Option<crate::tls::ServerTls>,
    /// The test clock, refreshed before each call when there is one.
    fleet_clock: Option<FleetClock>,
    /// Told about every finished call (the Prometheus metrics), when set.
    observer: Option<Arc<dyn CallObserver>>,
}

impl GrpcServer {
    /// Binds `addr` (port 0 picks a free port: see [`GrpcServer::local_addr`]) and registers the
    /// health service (reflection is added when serving, once the services are known); every other
    /// call must carry a token `verifier` accepts.
    pub async fn bind(addr: SocketAddr, verifier: Arc<Verifier>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let (health, health_service) = tonic_health::server::health_reporter();
        let mut routes = RoutesBuilder::default();
        routes.add_service(health_service);
        Ok(Self {
            listener,
            routes,
            health,
            services: Vec::new(),
            health_names: Vec::new(),
            verifier,
            tls: None,
            fleet_clock: None,
            observer: None,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves TLS only, with `tls`.
    pub fn use_tls(&mut self, tls: crate::tls::ServerTls) {
        self.tls = Some(tls);
    }

    /// Refreshes `clock` from the database before each call, so every call sees the moves made
    /// through any replica.
    pub fn refresh_clock_before_calls(&mut self, clock: FleetClock) {
        self.fleet_clock = Some(clock);
    }

    /// Tells `observer` about every finished call, as the log line does.
    pub fn observe_calls(&mut self, observer: Arc<dyn CallObserver>) {
        self.observer = Some(observer);
    }

    /// The health reporter, to mark services serving or not.
    pub fn health(&self) -> HealthReporter {
        self.health.clone()
    }

    /// Adds a service and reports it SERVING.
    pub async fn add_service<S>(&mut self, service: S)
    where
        S: tower::Service<
                http::Request<tonic::body::Body>,
                Error = Infallible,
                Response = http::Response<tonic::body::Body>,
            > + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.health.set_serving::<S>().await;
        self.services.push(S::NAME);
        self.routes.add_service(service);
    }

    /// Reports a health name of its own (`name` SERVING until the service says otherwise), which
    /// draining reports NOT_SERVING like the services' names.
    pub async fn add_health_name(&mut self, name: &'static str) {
        self.health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
        self.health_names.push(name);
    }

    /// Reflection (both versions: older grpcurl and other tools still ask for v1alpha) listing
    /// only what this server serves: its services, health and reflection. Every type of the
    /// descriptors resolves by name, among them the google.rpc error details, so clients decode
    /// `grpc-status-details-bin` without .proto files.
    fn add_reflection(&mut self) -> Result<(), tonic_reflection::server::Error> {
        use tonic_health::pb::health_server::SERVICE_NAME as HEALTH;
        use tonic_reflection::pb::{v1, v1alpha};
        let listed = [
            HEALTH,
            v1::server_reflection_server::SERVICE_NAME,
            v1alpha::server_reflection_server::SERVICE_NAME,
        ];
        let reflection = || {
            let builder = tonic_reflection::server::Builder::configure()
                // charla's own first: the first file of a name wins, and its google/rpc/status.proto
                // is the one its protos import.
                .register_encoded_file_descriptor_set(charla_proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(v1::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(v1alpha::FILE_DESCRIPTOR_SET);
            listed
                .iter()
                .chain(&self.services)
                .fold(builder, |builder, name| builder.with_service_name(*name))
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;
        self.routes
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        Ok(())
    }

    /// Serves until `shutdown` fires, then answers NOT_SERVING on every health name, keeps
    /// accepting for the drain delay, stops accepting, lets in-flight calls finish and returns. Streams end on their own when they see the same token.
    pub async fn serve(
        mut self,
        limits: Limits,
        shutdown: CancellationToken,
    ) -> Result<(), ServeError> {
        self.add_reflection()?;
        // Fires when the server stops accepting: after the drain delay.
        let accepting_ends = CancellationToken::new();
        let draining = {
            let (health, ends) = (self.health.clone(), accepting_ends.clone());
            let names: Vec<&'static str> = [""]
                .into_iter()
                .chain(self.services.iter().copied())
                .chain(self.health_names.iter().copied())
                .collect();
            let delay = limits.drain_delay;
            async move {
                shutdown.cancelled().await;
                for name in names {
                    health
                        .set_service_status(name, tonic_health::ServingStatus::NotServing)
                        .await;
                }
                tracing::info!(?delay, "draining: health answers NOT_SERVING");
                tokio::time::sleep(delay).await;
                ends.cancel();
            }
        };
        let http_json = crate::http_json::HttpJson::new(&self.services, limits.request_timeout)?;
        let layers = ServiceBuilder::new()
            .layer(RpcLogLayer::new(self.observer))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(
                limits.max_concurrent_requests,
            ))
            .layer(crate::malformed::MalformedRequestLayer)
            .layer(AuthLayer::new(self.verifier))
            .layer(FairShareLayer::new(FairShare::new(limits.per_workspace)))
            .layer(RefreshClockLayer::new(self.fleet_clock))
            .into_inner();
        let router = tonic::transport::Server::builder()
            .accept_http1(true)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .timeout(limits.request_timeout)
            .layer(limits.cors.layer())
            // JSON in, then an in-process gRPC call through everything below.
            .layer(crate::http_json::HttpJsonLayer::new(http_json))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(layers)
            .add_routes(self.routes.routes());
        let served = match self.tls {
            None => {
                let incoming = TcpListenerStream::new(self.listener).map(no_delay);
                router
                    .serve_with_incoming_shutdown(incoming, draining)
                    .await
            }
            Some(tls) => {
                let incoming = tls.incoming(self.listener, accepting_ends);
                router
                    .serve_with_incoming_shutdown(incoming, draining)
                    .await
            }
        };
        Ok(served?)
    }
}

/// Turns Nagle's algorithm off on an accepted connection: gRPC writes whole messages, and waiting
/// to coalesce them with the client's delayed ACK held every answer over one segment back ~40 ms.
fn no_delay(
    accepted: std::io::Result<tokio::net::TcpStream>,
) -> std::io::Result<tokio::net::TcpStream> {
    let stream = accepted?;
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "can't set TCP_NODELAY");
    }
    Ok(stream)
}

/// A token that fires on SIGTERM or Ctrl-C (SIGINT), for `main` to hand to the services.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let fired = token.clone();
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "can't listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = interrupt => tracing::info!("interrupted: draining"),
            _ = terminate => tracing::info!("SIGTERM: draining"),
        }
        fired.cancel();
    });
    token
}
