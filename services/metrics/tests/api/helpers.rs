//! Starting contact, conversation and metrics services for a test, all on one manual clock.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::metrics::v1 as pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use charla_runtime::clock::ManualClock;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::{Backend, fresh_database_url, in_workspace};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Running {
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.expect("the service stops cleanly");
    }
}

fn serve(
    app: charla_runtime::app::Application,
    shutdown: CancellationToken,
) -> (SocketAddr, Running) {
    let addr = app.local_addr();
    let task = tokio::spawn(async move { app.run().await.expect("the service serves") });
    (addr, Running { shutdown, task })
}

fn config(database_url: &str) -> RuntimeConfig {
    RuntimeConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        database_url,
        charla_testing::auth_config(),
    )
}

/// The three services and a workspace.
pub struct MetricsEnv {
    pub workspace: Uuid,
    pub clock: ManualClock,
    pub contact_addr: SocketAddr,
    pub conversation_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    metrics_db: String,
    /// Whether the metrics service allows RebuildAggregates (the tests' default: yes).
    pub allow_rebuild: bool,
    running: Vec<Running>,
    metrics: Option<Running>,
}

/// Starts the three services on fresh databases, the clock at `start`; `None` when the backend
/// is unavailable (skipped).
pub async fn spawn_env(backend: Backend, start: SystemTime) -> Option<MetricsEnv> {
    spawn_env_partitioned(backend, start, 1).await
}

/// As `spawn_env`, with the conversation stream split into `partitions`.
pub async fn spawn_env_partitioned(
    backend: Backend,
    start: SystemTime,
    partitions: u32,
) -> Option<MetricsEnv> {
    let contact_db = fresh_database_url(backend).await?;
    let conversation_db = fresh_database_url(backend).await?;
    let metrics_db = fresh_database_url(backend).await?;
    let clock = ManualClock::new(start);

    let shutdown = CancellationToken::new();
    let contact =
        charla_contact::build(&config(&contact_db), ServiceClock::System, shutdown.clone())
            .await
            .expect("the contact service starts");
    let (contact_addr, contact) = serve(contact, shutdown);

    let shutdown = CancellationToken::new();
    let service = charla_conversation::ServiceConfig::new(format!("http://{contact_addr}"));
    let shared = ServiceClock::Test(clock.clone());
    let mut conversation_config = config(&conversation_db);
    conversation_config.event_partitions = Some(partitions);
    let conversation =
        charla_conversation::build(&conversation_config, &service, shared, shutdown.clone())
            .await
            .expect("the conversation service starts");
    let (conversation_addr, conversation) = serve(conversation, shutdown);

    let mut env = MetricsEnv {
        workspace: Uuid::now_v7(),
        clock,
        contact_addr,
        conversation_addr,
        metrics_addr: contact_addr,
        metrics_db,
        allow_rebuild: true,
        running: vec![contact, conversation],
        metrics: None,
    };
    env.start_metrics().await;
    Some(env)
}

impl MetricsEnv {
    async fn start_metrics(&mut self) {
        let shutdown = CancellationToken::new();
        let mut service =
            charla_metrics::ServiceConfig::new(format!("http://{}", self.conversation_addr));
        service.allow_rebuild = self.allow_rebuild;
        let shared = ServiceClock::Test(self.clock.clone());
        let metrics = charla_metrics::build(
            &config(&self.metrics_db),
            &service,
            shared,
            shutdown.clone(),
        )
        .await
        .expect("the metrics service starts");
        let (addr, running) = serve(metrics, shutdown);
        self.metrics_addr = addr;
        self.metrics = Some(running);
    }

    /// Stops the metrics service and starts a new one on the same database.
    pub async fn restart_metrics(&mut self) {
        if let Some(metrics) = self.metrics.take() {
            metrics.stop().await;
        }
        self.start_metrics().await;
    }

    /// Stops the conversation service (the metrics consumer then waits to reconnect).
    pub async fn stop_conversation(&mut self) {
        // Started second, after the contact service.
        let conversation = self.running.remove(1);
        conversation.stop().await;
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        if let Some(metrics) = self.metrics.take() {
            metrics.stop().await;
        }
        for service in self.running.drain(..).rev() {
            service.stop().await;
        }
    }

    pub fn req<T>(&self, message: T) -> tonic::Request<T> {
        in_workspace(self.workspace, message)
    }

    pub async fn metrics(&self) -> MetricsServiceClient<charla_testing::auth::TestChannel> {
        MetricsServiceClient::new(
            charla_testing::connect(format!("http://{}", self.metrics_addr)).await,
        )
    }

    pub async fn conversations(
        &self,
    ) -> ConversationServiceClient<charla_testing::auth::TestChannel> {
        ConversationServiceClient::new(
            charla_testing::connect(format!("http://{}", self.conversation_addr)).await,
        )
    }

    /// A new contact in `workspace`.
    pub async fn new_contact(&self, workspace: Uuid) -> String {
        ContactServiceClient::new(
            charla_testing::connect(format!("http://{}", self.contact_addr)).await,
        )
        .resolve_contact(in_workspace(
            workspace,
            contact_pb::ResolveContactRequest {
                identity: Some(contact_pb::ChannelIdentity {
                    channel_type: contact_pb::ChannelType::Whatsapp as i32,
                    channel_id: "wa".into(),
                    external_id: Uuid::now_v7().simple().to_string(),
                }),
                profile: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap()
        .contact_id
    }

    /// Records a message in `workspace`; returns the conversation it belongs to.
    pub async fn message(
        &self,
        workspace: Uuid,
        contact: &str,
        channel: contact_pb::ChannelType,
        author_kind: conversation_pb::AuthorKind,
        author_id: &str,
    ) -> Option<conversation_pb::Conversation> {
        let direction = if author_kind == conversation_pb::AuthorKind::Contact {
            conversation_pb::MessageDirection::Inbound
        } else {
            conversation_pb::MessageDirection::Outbound
        };
        self.conversations()
            .await
            .record_message(in_workspace(
                workspace,
                conversation_pb::RecordMessageRequest {
                    message_id: Uuid::now_v7().to_string(),
                    contact_id: contact.into(),
                    channel: Some(conversation_pb::Channel {
                        channel_type: channel as i32,
                        channel_id: "main".into(),
                    }),
                    direction: direction as i32,
                    author_kind: author_kind as i32,
                    author_id: author_id.into(),
                    sent_at: None,
                },
            ))
            .await
            .expect("record a message")
            .into_inner()
            .conversation
    }

    /// Waits until the metrics service has applied every conversation event written so far: a
    /// marker conversation opened last in a workspace of its own (with one partition, the stream
    /// is in commit order) must show on that workspace's dashboard.
    pub async fn settle(&self) {
        let marker_workspace = Uuid::now_v7();
        let contact = self.new_contact(marker_workspace).await;
        self.message(
            marker_workspace,
            &contact,
            contact_pb::ChannelType::Sms,
            conversation_pb::AuthorKind::Contact,
            "",
        )
        .await;
        let mut client = self.metrics().await;
        for _ in 0..500 {
            let dashboard = client
                .get_dashboard(in_workspace(
                    marker_workspace,
                    pb::GetDashboardRequest {
                        time_zone: "UTC".into(),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .dashboard
                .unwrap();
            if dashboard.open_count == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the metrics service did not catch up");
    }
}
