//! The three services in this process, on fresh databases of one backend, conversation and metrics
//! on a shared test clock (so the test clock's RPCs work and may be moved anywhere), rebuilds on.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use charla_runtime::app::Application;
use charla_runtime::clock::ManualClock;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::{Backend, fresh_database_url};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which service answers a gRPC service name, by package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Contact,
    Conversation,
    Metrics,
}

/// The running services.
pub struct Services {
    pub contact: SocketAddr,
    pub conversation: SocketAddr,
    pub metrics: SocketAddr,
    /// The database URLs: contact, conversation, metrics.
    pub databases: [String; 3],
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

fn config(database_url: &str) -> RuntimeConfig {
    RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        database_url,
        charla_testing::auth_config(),
    )
}

fn serve(app: Application, tasks: &mut Vec<JoinHandle<()>>) -> SocketAddr {
    let addr = app.local_addr();
    tasks.push(tokio::spawn(async move {
        app.run().await.expect("the service serves")
    }));
    addr
}

impl Services {
    /// Starts the services; `None` when the backend is unavailable (skipped).
    pub async fn start(backend: Backend) -> Option<Self> {
        let databases = [
            fresh_database_url(backend).await?,
            fresh_database_url(backend).await?,
            fresh_database_url(backend).await?,
        ];
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        // 2026-03-02T00:00:00Z: a fixed start, so the run is the same every time.
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_772_409_600);
        let clock = ServiceClock::Test(ManualClock::new(start));

        let contact = charla_contact::build(
            &config(&databases[0]),
            ServiceClock::System,
            shutdown.clone(),
        )
        .await
        .expect("the contact service starts");
        let contact = serve(contact, &mut tasks);

        let service = charla_conversation::ServiceConfig::new(format!("http://{contact}"));
        let conversation = charla_conversation::build(
            &config(&databases[1]),
            &service,
            clock.clone(),
            shutdown.clone(),
        )
        .await
        .expect("the conversation service starts");
        let conversation = serve(conversation, &mut tasks);

        let mut service = charla_metrics::ServiceConfig::new(format!("http://{conversation}"));
        service.allow_rebuild = true;
        let metrics =
            charla_metrics::build(&config(&databases[2]), &service, clock, shutdown.clone())
                .await
                .expect("the metrics service starts");
        let metrics = serve(metrics, &mut tasks);

        Some(Self {
            contact,
            conversation,
            metrics,
            databases,
            shutdown,
            tasks,
        })
    }

    /// The address of a service's server.
    pub fn addr(&self, service: Service) -> SocketAddr {
        match service {
            Service::Contact => self.contact,
            Service::Conversation => self.conversation,
            Service::Metrics => self.metrics,
        }
    }

    /// Stops every service and waits until they have drained: a service that panicked or
    /// failed fails the test here.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            task.await.expect("the service stops cleanly");
        }
    }
}
