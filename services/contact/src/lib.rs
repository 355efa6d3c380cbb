//! The contact service: contacts, their channel identities, tags, custom fields, blocking and
//! merging, and the contact event stream. `build` wires the store, the domain and the gRPC
//! handlers together; `main.rs`, `charla up` and the tests all start the service through it.

pub mod domain;
pub mod events;
pub mod grpc;
pub mod store;

use charla_proto::charla::contact::v1::contact_service_server::ContactServiceServer;
use charla_runtime::app::{Application, StartError};
use charla_runtime::config::RuntimeConfig;
use charla_runtime::db::Database;
use charla_runtime::event_log::EventLog;
use charla_runtime::test_clock::ServiceClock;
use tokio_util::sync::CancellationToken;

/// The port the service listens on unless CHARLA_LISTEN_ADDR says otherwise.
pub const DEFAULT_PORT: u16 = 50051;

/// The contact service's settings, from the environment.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "charla-contact", about = "The charla contact service (gRPC)")]
pub struct Config {
    #[command(flatten)]
    pub runtime: RuntimeConfig,
}

/// Opens the database (migrating it), binds the address and registers the contact service.
/// The returned application serves when `run`, until `shutdown` fires.
pub async fn build(
    config: &RuntimeConfig,
    clock: ServiceClock,
    shutdown: CancellationToken,
) -> Result<Application, StartError> {
    let db = Database::connect(&config.database_url, &store::MIGRATIONS).await?;
    let events = EventLog::open(db.clone(), config.event_partitions).await?;
    events.spawn_commit_listener(shutdown.clone());
    let mut app = Application::bind(config, DEFAULT_PORT, shutdown.clone()).await?;
    app.metrics().watch_database(&db);
    app.metrics().watch_event_heads(&events, "contact");
    let store = store::ContactStore::new(db.clone(), events, clock.shared());
    app.server()
        .add_service(ContactServiceServer::new(grpc::ContactApi::new(
            store,
            shutdown,
            config.request_timeout(),
        )))
        .await;
    app.serve_test_clock(&clock, &db, None).await?;
    Ok(app)
}
