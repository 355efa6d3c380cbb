//! What idle event streams cost everyone else's writes: RecordMessage latency in one workspace with
//! no other streams open, then with many idle streams scoped to other workspaces (all in the same
//! partition), round after round, on SQLite and on PostgreSQL. A commit should wake only the
//! streams that may have something new, so the two columns should match.
//!
//! ```sh
//! cargo bench -p charla-conversation --bench idle_streams
//! ```
//! Settings from the environment: `IDLE_STREAMS` (1000), `ROUNDS` (3), `CALLS` per measurement
//! (1000; the streams' safety polls, every 24-30 s each, are spread evenly over time), `BACKENDS`
//! (`sqlite,postgres`). PostgreSQL is found like the tests find it
//! (`CHARLA_TEST_POSTGRES_URL`) and skipped when unreachable.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::auth::TestChannel;
use charla_testing::{Backend, auth_config, connect, fresh_database_url, in_workspace};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Contacts the measured workspace writes for, in turn.
const CONTACTS: usize = 20;
/// Idle streams share an HTTP/2 connection this many at a time.
const STREAMS_PER_CONNECTION: usize = 100;

struct Settings {
    idle_streams: usize,
    rounds: usize,
    calls: usize,
    backends: Vec<Backend>,
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Self {
        let backends = std::env::var("BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
        Self {
            idle_streams: setting("IDLE_STREAMS", 1000),
            rounds: setting("ROUNDS", 3),
            calls: setting("CALLS", 1000),
            backends: backends
                .split(',')
                .filter_map(|name| match name.trim() {
                    "sqlite" => Some(Backend::Sqlite),
                    "postgres" => Some(Backend::Postgres),
                    _ => None,
                })
                .collect(),
        }
    }
}

fn main() {
    let settings = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        println!(
            "RecordMessage latency, {} calls a measurement, 0 vs {} idle streams scoped to other workspaces",
            settings.calls, settings.idle_streams
        );
        for backend in &settings.backends {
            bench(*backend, &settings).await;
        }
    });
}

/// The contact and conversation services, running in this process.
struct Services {
    contact: SocketAddr,
    conversation: SocketAddr,
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn start(backend: Backend) -> Option<Services> {
    let contact_db = fresh_database_url(backend).await?;
    let conversation_db = fresh_database_url(backend).await?;
    let shutdown = CancellationToken::new();
    let contact_app = charla_contact::build(
        &RuntimeConfig::new("127.0.0.1:0".parse().unwrap(), contact_db, auth_config()),
        ServiceClock::System,
        shutdown.clone(),
    )
    .await
    .expect("the contact service starts");
    let contact = contact_app.local_addr();
    let conversation_app = charla_conversation::build(
        &RuntimeConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            conversation_db,
            auth_config(),
        ),
        &charla_conversation::ServiceConfig::new(format!("http://{contact}")),
        ServiceClock::System,
        shutdown.clone(),
    )
    .await
    .expect("the conversation service starts");
    let conversation = conversation_app.local_addr();
    let tasks = vec![
        tokio::spawn(async move { contact_app.run().await.expect("contact serves") }),
        tokio::spawn(async move { conversation_app.run().await.expect("conversation serves") }),
    ];
    Some(Services {
        contact,
        conversation,
        shutdown,
        tasks,
    })
}

async fn bench(backend: Backend, settings: &Settings) {
    let Some(services) = start(backend).await else {
        println!("{backend:?}: skipped (unreachable)");
        return;
    };
    let workspace = Uuid::now_v7();
    let contacts = make_contacts(services.contact, workspace).await;
    let mut writer = Writer {
        client: ConversationServiceClient::new(
            connect(format!("http://{}", services.conversation)).await,
        ),
        workspace,
        contacts,
        written: 0,
    };
    writer.measure(50).await; // warm up: every contact has its conversation open from here on

    println!("\n{backend:?}");
    println!("round | idle streams |  p50 ms |  p99 ms");
    let (mut quiet, mut busy) = (Vec::new(), Vec::new());
    for round in 1..=settings.rounds {
        let samples = writer.measure(settings.calls).await;
        print_row(round, 0, &samples);
        quiet.extend(samples);

        let streams = open_idle_streams(services.conversation, settings.idle_streams).await;
        // Let every stream make its first read and go idle.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let samples = writer.measure(settings.calls).await;
        print_row(round, settings.idle_streams, &samples);
        busy.extend(samples);
        drop(streams);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (quiet_p50, busy_p50) = (percentile(&mut quiet, 0.5), percentile(&mut busy, 0.5));
    let (quiet_p99, busy_p99) = (percentile(&mut quiet, 0.99), percentile(&mut busy, 0.99));
    println!(
        "all   | {:>12} | {:>7.2} | {:>7.2}\nall   | {:>12} | {:>7.2} | {:>7.2}",
        0, quiet_p50, quiet_p99, settings.idle_streams, busy_p50, busy_p99
    );
    println!(
        "{backend:?}: {} idle streams change RecordMessage p50 by {:+.1}% and p99 by {:+.1}%",
        settings.idle_streams,
        (busy_p50 / quiet_p50 - 1.0) * 100.0,
        (busy_p99 / quiet_p99 - 1.0) * 100.0,
    );
    services.shutdown.cancel();
    for task in services.tasks {
        let _stopped = task.await;
    }
}

fn print_row(round: usize, streams: usize, samples: &[f64]) {
    let mut samples = samples.to_vec();
    println!(
        "{round:>5} | {streams:>12} | {:>7.2} | {:>7.2}",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99)
    );
}

/// The `quantile` of `samples` (milliseconds), nearest rank.
fn percentile(samples: &mut [f64], quantile: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() as f64 * quantile).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

async fn make_contacts(contact: SocketAddr, workspace: Uuid) -> Vec<String> {
    let mut client = ContactServiceClient::new(connect(format!("http://{contact}")).await);
    let mut ids = Vec::new();
    for n in 0..CONTACTS {
        let created = client
            .create_contact(in_workspace(
                workspace,
                contact_pb::CreateContactRequest {
                    contact: Some(contact_pb::Contact {
                        first_name: format!("Contact {n}"),
                        ..Default::default()
                    }),
                    request_id: String::new(),
                },
            ))
            .await
            .expect("create a contact")
            .into_inner();
        ids.push(created.contact.expect("a contact").contact_id);
    }
    ids
}

/// Records inbound messages in one workspace, one call at a time.
struct Writer {
    client: ConversationServiceClient<TestChannel>,
    workspace: Uuid,
    contacts: Vec<String>,
    written: usize,
}

impl Writer {
    /// Records `calls` messages and returns each call's latency in milliseconds.
    async fn measure(&mut self, calls: usize) -> Vec<f64> {
        let mut samples = Vec::with_capacity(calls);
        for _ in 0..calls {
            let contact = self.contacts[self.written % self.contacts.len()].clone();
            let request = in_workspace(
                self.workspace,
                pb::RecordMessageRequest {
                    message_id: format!("m-{}", self.written),
                    contact_id: contact,
                    channel: Some(pb::Channel {
                        channel_type: contact_pb::ChannelType::Whatsapp as i32,
                        channel_id: "wa-main".into(),
                    }),
                    direction: pb::MessageDirection::Inbound as i32,
                    author_kind: pb::AuthorKind::Contact as i32,
                    author_id: String::new(),
                    sent_at: None,
                },
            );
            self.written += 1;
            let started = Instant::now();
            self.client
                .record_message(request)
                .await
                .expect("record a message");
            samples.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        samples
    }
}

/// Opens `count` event streams, each scoped to a workspace of its own that never writes.
async fn open_idle_streams(
    conversation: SocketAddr,
    count: usize,
) -> Vec<tonic::Streaming<pb::StreamConversationEventsResponse>> {
    let mut streams = Vec::with_capacity(count);
    let mut client = None;
    for n in 0..count {
        if n % STREAMS_PER_CONNECTION == 0 {
            client = Some(ConversationServiceClient::new(
                connect(format!("http://{conversation}")).await,
            ));
        }
        let client = client.as_mut().expect("a connection");
        let stream = client
            .stream_conversation_events(in_workspace(
                Uuid::now_v7(),
                pb::StreamConversationEventsRequest::default(),
            ))
            .await
            .expect("open an idle stream")
            .into_inner();
        streams.push(stream);
    }
    streams
}
