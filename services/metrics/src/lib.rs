//! The metrics service: turns the conversation event stream into the numbers a team lead reads.
//! `build` wires the store, the stream consumer and the gRPC handlers together; `main.rs`,
//! `charla up` and the tests all start it through it.

pub mod consumer;
pub mod domain;
pub mod grpc;
pub mod reports;
pub mod store;

use std::time::Duration;

use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::metrics::v1::metrics_service_server::MetricsServiceServer;
use charla_runtime::app::{Application, StartError};
use charla_runtime::config::RuntimeConfig;
use charla_runtime::db::Database;
use charla_runtime::lease::PartitionLeases;
use charla_runtime::peers::balanced_channel;
use charla_runtime::test_clock::ServiceClock;
use tokio_util::sync::CancellationToken;

/// The port the service listens on unless CHARLA_LISTEN_ADDR says otherwise.
pub const DEFAULT_PORT: u16 = 50053;

/// The metrics service's settings, from the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "charla-metrics", about = "The charla metrics service (gRPC)")]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,

    #[command(flatten)]
    pub service: ServiceConfig,
}

/// What the metrics service needs beyond the shared runtime.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceConfig {
    /// URL of the conversation service, whose event stream the metrics are built from; several
    /// comma-separated URLs, or a host name with one address per replica, balance over replicas.
    #[arg(
        long,
        env = "CHARLA_CONVERSATION_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub conversation_url: String,

    /// Events the consumer may lag behind a conversation stream partition before the health name
    /// `charla.metrics.v1.MetricsService.Freshness` reports NOT_SERVING. The service's own
    /// health names stay SERVING while it catches up; the lag is also a Prometheus gauge.
    #[arg(long, env = "CHARLA_MAX_LAG_EVENTS", default_value_t = 10_000)]
    pub max_lag_events: u64,

    /// Allow RebuildAggregates, which recomputes every workspace's numbers from the first event
    /// (reports read low until it is done). An operator's switch, off by default.
    #[arg(long, env = "CHARLA_ALLOW_REBUILD", default_value_t = false)]
    pub allow_rebuild: bool,
}

impl ServiceConfig {
    /// Settings that read the conversation service at `conversation_url`, defaults elsewhere.
    pub fn new(conversation_url: impl Into<String>) -> Self {
        Self {
            conversation_url: conversation_url.into(),
            max_lag_events: 10_000,
            allow_rebuild: false,
        }
    }
}

/// Why the metrics service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("CHARLA_CONVERSATION_URL: {0}")]
    ConversationUrl(#[source] charla_runtime::peers::PeerUrlError),
}

/// Opens the database (migrating it), starts consuming conversation events, binds the address
/// and registers the metrics service. The application serves when `run`, until `shutdown`.
pub async fn build(
    runtime: &RuntimeConfig,
    service: &ServiceConfig,
    clock: ServiceClock,
    shutdown: CancellationToken,
) -> Result<Application, BuildError> {
    let mut app = Application::bind(runtime, DEFAULT_PORT, shutdown.clone()).await?;
    let credential = app.service_credential("metrics")?;
    let peer_tls = runtime.tls.peers().map_err(StartError::from)?;
    let channel = balanced_channel(
        &service.conversation_url,
        Duration::from_secs(5),
        &peer_tls,
        shutdown.clone(),
    )
    .map_err(BuildError::ConversationUrl)?;
    let db =
        Database::connect_with_pool(&runtime.database_url, &runtime.db_pool, &store::MIGRATIONS)
            .await
            .map_err(StartError::from)?;
    app.metrics().watch_database(&db);
    let db_for_leases = db.clone();
    let store = store::MetricsStore::new(db.clone());
    app.server().add_health_name(consumer::FRESHNESS).await;
    let lag =
        consumer::LagReporter::new(app.server().health(), service.max_lag_events, app.metrics());
    let conversations = ConversationServiceClient::with_interceptor(channel, credential);
    let consumer = consumer::spawn(
        store.clone(),
        conversations.clone(),
        lag,
        PartitionLeases::new(db_for_leases, store::CONSUMER, 1),
        shutdown.clone(),
    );
    app.serve_test_clock(&clock, &db, None)
        .await
        .map_err(BuildError::Start)?;
    let api = grpc::MetricsApi::new(
        store,
        consumer,
        grpc::Producer {
            conversations,
            request_timeout: runtime.request_timeout(),
        },
        clock.shared(),
        service.allow_rebuild,
        shutdown,
    );
    app.server()
        .add_service(MetricsServiceServer::new(api))
        .await;
    Ok(app)
}
