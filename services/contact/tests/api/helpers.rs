//! Starting the contact service for a test, and building requests.

use std::net::SocketAddr;

use charla_proto::charla::contact::v1 as pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::{Backend, fresh_database_url, in_workspace};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A running contact service with its own database and a workspace to call it in.
pub struct TestApp {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`), when the config asked for one.
    pub admin_addr: Option<SocketAddr>,
    pub workspace: Uuid,
    pub database_url: String,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

/// Starts the service on a fresh database; `None` when the backend is unavailable (skipped).
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    let url = fresh_database_url(backend).await?;
    Some(spawn_app_on(&url, Uuid::now_v7()).await)
}

/// Starts the service on an existing database.
pub async fn spawn_app_on(database_url: &str, workspace: Uuid) -> TestApp {
    let config = RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        database_url,
        charla_testing::auth_config(),
    );
    spawn_configured(config, workspace).await
}

/// Starts the service with `config`.
pub async fn spawn_configured(config: RuntimeConfig, workspace: Uuid) -> TestApp {
    let database_url = config.database_url.clone();
    let shutdown = CancellationToken::new();
    let app = charla_contact::build(&config, ServiceClock::System, shutdown.clone())
        .await
        .expect("the contact service starts");
    let addr = app.local_addr();
    let admin_addr = app.admin_addr();
    let task = tokio::spawn(async move { app.run().await.expect("the service serves") });
    TestApp {
        addr,
        admin_addr,
        workspace,
        database_url,
        shutdown,
        task,
    }
}

impl TestApp {
    /// A client connected to the service.
    pub async fn client(&self) -> ContactServiceClient<charla_testing::auth::TestChannel> {
        ContactServiceClient::new(charla_testing::connect(format!("http://{}", self.addr)).await)
    }

    /// A request in the test's workspace.
    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        in_workspace(self.workspace, message)
    }

    /// Fires the service's shutdown token, as SIGTERM does, without waiting for it to drain.
    pub fn signal_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops the service and waits until it has drained.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("the service stops cleanly");
    }

    /// Creates a contact with a first name and optional identity, and returns it.
    pub async fn create(
        &self,
        first_name: &str,
        identity: Option<pb::ChannelIdentity>,
    ) -> pb::Contact {
        let contact = pb::Contact {
            first_name: first_name.into(),
            identities: identity.into_iter().collect(),
            ..Default::default()
        };
        self.client()
            .await
            .create_contact(self.req(pb::CreateContactRequest {
                contact: Some(contact),
                request_id: String::new(),
            }))
            .await
            .expect("create a contact")
            .into_inner()
            .contact
            .expect("a contact")
    }
}

/// A WhatsApp identity with the given external id.
pub fn whatsapp(external_id: &str) -> pb::ChannelIdentity {
    pb::ChannelIdentity {
        channel_type: pb::ChannelType::Whatsapp as i32,
        channel_id: "wa-main".into(),
        external_id: external_id.into(),
    }
}
