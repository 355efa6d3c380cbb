//! The conversation service: the only owner of the conversation lifecycle. `build` wires the
//! store, the contact client, the background tasks (auto-close, the contact-merge consumer) and
//! the gRPC handlers together; `main.rs`, `charla up` and the tests all start it through it.

pub mod auto_close;
pub mod contacts;
pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use std::time::Duration;

use charla_proto::charla::conversation::v1::conversation_service_server::ConversationServiceServer;
use charla_runtime::app::{Application, StartError};
use charla_runtime::applied::AppliedPositions;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::consumer::ConsumerCursor;
use charla_runtime::db::Database;
use charla_runtime::event_log::EventLog;
use charla_runtime::lease::PartitionLeases;
use charla_runtime::test_clock::{AfterMove, ServiceClock};
use tokio_util::sync::CancellationToken;

/// The port the service listens on unless CHARLA_LISTEN_ADDR says otherwise.
pub const DEFAULT_PORT: u16 = 50052;

/// The conversation service's settings, from the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "charla-conversation",
    about = "The charla conversation service (gRPC)"
)]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,

    #[command(flatten)]
    pub service: ServiceConfig,
}

/// What the conversation service needs beyond the shared runtime.
#[derive(Debug, Clone, clap::Args)]
pub struct ServiceConfig {
    /// URL of the contact service; several comma-separated URLs, or a host name with one address
    /// per replica (a Kubernetes headless Service), balance calls over the replicas.
    #[arg(
        long,
        env = "CHARLA_CONTACT_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub contact_url: String,

    /// Deadline of each call to the contact service, in milliseconds.
    #[arg(long, env = "CHARLA_CONTACT_TIMEOUT_MS", default_value_t = 2000)]
    pub contact_timeout_ms: u64,

    /// How often due auto-close deadlines are looked for, in milliseconds.
    #[arg(long, env = "CHARLA_AUTO_CLOSE_SCAN_MS", default_value_t = 1000)]
    pub auto_close_scan_ms: u64,
}

impl ServiceConfig {
    /// Settings that reach the contact service at `contact_url`, defaults elsewhere.
    pub fn new(contact_url: impl Into<String>) -> Self {
        Self {
            contact_url: contact_url.into(),
            contact_timeout_ms: 2000,
            auto_close_scan_ms: 1000,
        }
    }
}

/// Why the conversation service could not start.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("CHARLA_CONTACT_URL: {0}")]
    ContactUrl(#[source] charla_runtime::peers::PeerUrlError),
    #[error("indexing each conversation's earlier events: {0}")]
    EventIndex(#[source] charla_runtime::ApiError),
}

/// Opens the database (migrating it), starts the background tasks, binds the address and
/// registers the conversation service. The application serves when `run`, until `shutdown`.
pub async fn build(
    runtime: &RuntimeConfig,
    service: &ServiceConfig,
    clock: ServiceClock,
    shutdown: CancellationToken,
) -> Result<Application, BuildError> {
    let service_clock = clock.clone();
    let clock = clock.shared();
    let mut app = Application::bind(runtime, DEFAULT_PORT, shutdown.clone()).await?;
    let peer_tls = runtime.tls.peers().map_err(StartError::from)?;
    let contacts = contacts::ContactDirectory::connect_lazy(
        &service.contact_url,
        app.service_credential("conversation")?,
        Duration::from_millis(service.contact_timeout_ms),
        &peer_tls,
        shutdown.clone(),
    )
    .map_err(BuildError::ContactUrl)?;
    let db =
        Database::connect_with_pool(&runtime.database_url, &runtime.db_pool, &store::MIGRATIONS)
            .await
            .map_err(StartError::from)?;
    let events = EventLog::open(db.clone(), runtime.event_partitions)
        .await
        .map_err(BuildError::Start)?;
    events.spawn_commit_listener(shutdown.clone());
    app.metrics().watch_database(&db);
    app.metrics().watch_event_heads(&events, "conversation");
    let cursor = ConsumerCursor::new(db.clone(), events::contact_consumer::CONSUMER);
    let contact_events = grpc::ContactEvents {
        cursor: cursor.clone(),
        applied: AppliedPositions::default(),
    };
    let db_for_leases = db.clone();
    let store = store::ConversationStore::new(db.clone(), events, clock.clone());
    store
        .backfill_event_index()
        .await
        .map_err(BuildError::EventIndex)?;
    auto_close::watch_backlog(app.metrics(), store.clone(), clock.clone());
    auto_close::spawn(
        store.clone(),
        clock,
        Duration::from_millis(service.auto_close_scan_ms),
        shutdown.clone(),
    );
    let consumer = events::contact_consumer::ContactConsumer {
        store: store.clone(),
        cursor,
        leases: PartitionLeases::new(db_for_leases, events::contact_consumer::CONSUMER, 1),
        contacts: contacts.clone(),
        applied: contact_events.applied.clone(),
    };
    events::contact_consumer::spawn(consumer, shutdown.clone());
    // Moving the test clock past auto-close deadlines closes those conversations before the
    // call returns, as if the time had passed.
    let due_closer = store.clone();
    let after_move: AfterMove = std::sync::Arc::new(move |now| {
        let store = due_closer.clone();
        Box::pin(async move {
            while store.close_due(now).await? > 0 {}
            Ok(())
        })
    });
    app.serve_test_clock(&service_clock, &db, Some(after_move))
        .await
        .map_err(BuildError::Start)?;
    let api = grpc::ConversationApi::new(
        store,
        contacts,
        contact_events,
        shutdown,
        runtime.request_timeout(),
    );
    app.server()
        .add_service(ConversationServiceServer::new(api))
        .await;
    Ok(app)
}
