//! How close conversation writes come to their database's floor: RecordMessage per second into an
//! open conversation and opening a new one, at 1 and 16 callers, on SQLite and PostgreSQL, each
//! beside the same SQL run without charla in the same run, round after round; then
//! ImportConversations, conversations acknowledged per second.
//!
//! ```sh
//! CHARLA_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!   cargo bench -p charla-conversation --bench writes
//! ```
//! The floor on PostgreSQL is `pgbench -M prepared` running `benches/sql/record_open.sql` and
//! `benches/sql/record_new.sql` (the statements RecordMessage runs, less the contact check); on
//! SQLite, the same statements through sqlx in this process (`floor_sqlite` below). Each caller
//! writes in a workspace of its own, chosen so that the callers' event partitions differ (as
//! pgbench's clients write to partitions 0..15).
//!
//! Settings from the environment: `ROUNDS` (3), `CALLS` for one caller (300), `CALLS_PER_CALLER`
//! at 16 callers (60), `IMPORT` conversations per round (2000), `BACKENDS` (`sqlite,postgres`).
//! PostgreSQL is skipped when unreachable; pgbench must be on the PATH.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Instant;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_runtime::config::{LogFormat, RuntimeConfig};
use charla_runtime::db::Database;
use charla_runtime::event_log;
use charla_runtime::test_clock::ServiceClock;
use charla_runtime::workspace::WorkspaceId;
use charla_testing::auth::TestChannel;
use charla_testing::{Backend, auth_config, connect, fresh_database_url, in_workspace};
use sqlx::Row;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The most callers measured; workspaces and floor clients are made for this many.
const MAX_CALLERS: usize = 16;

struct Settings {
    rounds: usize,
    calls: usize,
    calls_per_caller: usize,
    import: usize,
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
            rounds: setting("ROUNDS", 3),
            calls: setting("CALLS", 300),
            calls_per_caller: setting("CALLS_PER_CALLER", 60),
            import: setting("IMPORT", 2000),
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

    /// Calls each of `callers` makes in one measurement.
    fn calls_for(&self, callers: usize) -> usize {
        if callers == 1 {
            self.calls
        } else {
            self.calls_per_caller
        }
    }
}

/// What a measurement writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    /// An inbound message into the contact's open conversation.
    Open,
    /// An inbound message that opens a conversation (a new contact each time).
    New,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Open => "RecordMessage, open conversation",
            Case::New => "RecordMessage, new conversation",
        }
    }

    fn script(self) -> &'static str {
        match self {
            Case::Open => "record_open.sql",
            Case::New => "record_new.sql",
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
        // `BENCH_LOG=1 RUST_LOG=sqlx=debug` shows each statement with its time, to see where a
        // call's time goes.
        let _logs = std::env::var_os("BENCH_LOG")
            .map(|_| charla_runtime::telemetry::init(LogFormat::Text, "writes-bench"));
        let mut rows = Vec::new();
        for backend in &settings.backends {
            bench(*backend, &settings, &mut rows).await;
        }
        println!("\n{:-<100}", "");
        println!(
            "{:<9} | {:<34} | {:>7} | {:>10} | {:>10} | {:>5}",
            "backend", "what", "callers", "charla/s", "floor/s", "ratio"
        );
        for row in &rows {
            println!(
                "{:<9} | {:<34} | {:>7} | {:>10.0} | {:>10} | {:>5}",
                row.backend,
                row.what,
                row.callers,
                row.charla,
                row.floor.map_or("-".into(), |f| format!("{f:.0}")),
                row.floor
                    .map_or("-".into(), |f| format!("{:.2}", row.charla / f)),
            );
        }
        let json: Vec<String> = rows.iter().map(Figure::json).collect();
        println!("\nJSON [{}]", json.join(", "));
    });
}

/// One line of the summary: medians over the rounds.
struct Figure {
    backend: &'static str,
    what: &'static str,
    callers: usize,
    charla: f64,
    floor: Option<f64>,
}

impl Figure {
    fn json(&self) -> String {
        format!(
            r#"{{"backend":"{}","what":"{}","callers":{},"charla_per_s":{:.1},"floor_per_s":{}}}"#,
            self.backend,
            self.what,
            self.callers,
            self.charla,
            self.floor.map_or("null".into(), |f| format!("{f:.1}"))
        )
    }
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

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

async fn bench(backend: Backend, settings: &Settings, rows: &mut Vec<Figure>) {
    let Some(services) = start(backend).await else {
        println!("{backend:?}: skipped (unreachable)");
        return;
    };
    let Some(floor) = Floor::prepare(backend).await else {
        println!("{backend:?}: skipped (no floor database)");
        return;
    };
    let workspaces = workspaces_in_distinct_partitions(services.conversation).await;
    let mut callers = Vec::new();
    for (index, workspace) in workspaces.iter().enumerate() {
        callers.push(Caller::new(&services, *workspace, index).await);
    }
    // Every caller's contact gets its open conversation before the measurements, and the new
    // conversations' contacts are made beforehand (each makes a contact event that this service
    // consumes: settled before measuring).
    for caller in callers.iter_mut() {
        caller.record(caller.contact.clone()).await;
    }
    for (index, caller) in callers.iter_mut().enumerate() {
        let solo = if index == 0 { settings.calls } else { 0 };
        let count = (solo + settings.calls_per_caller) * settings.rounds;
        caller.stock_new_contacts(count).await;
    }
    settle(&services).await;

    println!("\n{backend:?}");
    println!("round | what                               | callers |   charla/s |    floor/s");
    for case in [Case::Open, Case::New] {
        for count in [1, MAX_CALLERS] {
            let calls = settings.calls_for(count);
            let (mut charla, mut floor_rates) = (Vec::new(), Vec::new());
            for round in 1..=settings.rounds {
                let rate = measure(&mut callers[..count], case, calls).await;
                let floor_rate = floor.measure(case, count, calls).await;
                println!(
                    "{round:>5} | {:<34} | {count:>7} | {rate:>10.0} | {floor_rate:>10.0}",
                    case.name()
                );
                charla.push(rate);
                floor_rates.push(floor_rate);
            }
            rows.push(Figure {
                backend: backend_name(backend),
                what: case.name(),
                callers: count,
                charla: median(&mut charla),
                floor: Some(median(&mut floor_rates)),
            });
        }
    }

    let mut imported = Vec::new();
    for round in 1..=settings.rounds {
        let rate = import(&services, settings.import).await;
        println!(
            "{round:>5} | {:<34} | {:>7} | {rate:>10.0} |",
            "ImportConversations (per conv.)", 1
        );
        imported.push(rate);
    }
    rows.push(Figure {
        backend: backend_name(backend),
        what: "ImportConversations, conversations",
        callers: 1,
        charla: median(&mut imported),
        floor: None,
    });

    services.shutdown.cancel();
    for task in services.tasks {
        let _stopped = task.await;
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Workspaces whose events go to distinct partitions (as many as there are, up to
/// [`MAX_CALLERS`]; the rest share), so that each caller's commits queue on no one else's lock.
async fn workspaces_in_distinct_partitions(conversation: SocketAddr) -> Vec<Uuid> {
    let partitions =
        ConversationServiceClient::new(connect(format!("http://{conversation}")).await)
            .get_conversation_event_stream_info(pb::GetConversationEventStreamInfoRequest {})
            .await
            .expect("stream info")
            .into_inner()
            .partition_count;
    let mut taken = vec![false; partitions as usize];
    let mut workspaces = Vec::new();
    while workspaces.len() < MAX_CALLERS {
        let workspace = Uuid::now_v7();
        let partition = event_log::partition_of(WorkspaceId::new(workspace), partitions) as usize;
        let all_taken = taken.iter().all(|t| *t);
        if !taken[partition] || all_taken {
            taken[partition] = true;
            workspaces.push(workspace);
        }
    }
    workspaces
}

/// One caller: a connection, a workspace, a contact with an open conversation, and contacts that
/// have none yet.
struct Caller {
    client: ConversationServiceClient<TestChannel>,
    contacts: ContactServiceClient<TestChannel>,
    workspace: Uuid,
    contact: String,
    fresh_contacts: Vec<String>,
    index: usize,
    written: usize,
}

impl Caller {
    async fn new(services: &Services, workspace: Uuid, index: usize) -> Self {
        let mut contacts =
            ContactServiceClient::new(connect(format!("http://{}", services.contact)).await);
        let contact = import_contacts(&mut contacts, workspace, 1).await.remove(0);
        Self {
            client: ConversationServiceClient::new(
                connect(format!("http://{}", services.conversation)).await,
            ),
            contacts,
            workspace,
            contact,
            fresh_contacts: Vec::new(),
            index,
            written: 0,
        }
    }

    async fn stock_new_contacts(&mut self, count: usize) {
        let mut made = import_contacts(&mut self.contacts, self.workspace, count).await;
        self.fresh_contacts.append(&mut made);
    }

    async fn record(&mut self, contact: String) {
        self.written += 1;
        let request = in_workspace(
            self.workspace,
            pb::RecordMessageRequest {
                message_id: format!("m-{}-{}", self.index, self.written),
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
        self.client
            .record_message(request)
            .await
            .expect("record a message");
    }

    async fn run(&mut self, case: Case, calls: usize) {
        for _ in 0..calls {
            let contact = match case {
                Case::Open => self.contact.clone(),
                Case::New => self.fresh_contacts.pop().expect("a contact stocked"),
            };
            self.record(contact).await;
        }
    }
}

/// Waits until the conversation service has consumed every contact event written so far.
async fn settle(services: &Services) {
    let heads = ContactServiceClient::new(connect(format!("http://{}", services.contact)).await)
        .get_contact_event_stream_info(contact_pb::GetContactEventStreamInfoRequest {})
        .await
        .expect("contact stream info")
        .into_inner()
        .heads;
    let mut client =
        ConversationServiceClient::new(connect(format!("http://{}", services.conversation)).await);
    // It waits for the positions, then answers NOT_FOUND (no such contact); a wait that ran out
    // of time answers otherwise, and is waited again.
    for _ in 0..10 {
        let answer = client
            .get_open_conversation(in_workspace(
                Uuid::now_v7(),
                pb::GetOpenConversationRequest {
                    contact_id: Uuid::now_v7().to_string(),
                    min_contact_positions: heads.clone(),
                },
            ))
            .await;
        match answer {
            Ok(_) => return,
            Err(status) if status.code() == tonic::Code::NotFound => return,
            Err(_) => {}
        }
    }
    println!("(the contact events were not all consumed)");
}

/// `count` new contacts of `workspace`, through ImportContacts.
async fn import_contacts(
    client: &mut ContactServiceClient<TestChannel>,
    workspace: Uuid,
    count: usize,
) -> Vec<String> {
    let rows: Vec<contact_pb::ImportContactsRequest> = (0..count)
        .map(|n| contact_pb::ImportContactsRequest {
            contact: Some(contact_pb::Contact {
                first_name: format!("Contact {n}"),
                ..Default::default()
            }),
            external_id: String::new(),
        })
        .collect();
    let answer = client
        .import_contacts(in_workspace(workspace, tokio_stream::iter(rows)))
        .await
        .expect("import contacts")
        .into_inner();
    assert!(!answer.stopped_early && answer.failed_count == 0);
    answer.results.into_iter().map(|r| r.contact_id).collect()
}

/// Calls per second of `callers` each making `calls` at once.
async fn measure(callers: &mut [Caller], case: Case, calls: usize) -> f64 {
    let started = Instant::now();
    let runs = callers.iter_mut().map(|caller| caller.run(case, calls));
    futures_join_all(runs).await;
    (callers.len() * calls) as f64 / started.elapsed().as_secs_f64()
}

/// Runs the futures concurrently on this task (each caller waits on the network, not the CPU).
async fn futures_join_all<F: std::future::Future<Output = ()>>(futures: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for future in futures {
        set.push(Box::pin(future));
    }
    let mut pending: Vec<_> = set.iter_mut().collect();
    std::future::poll_fn(|context| {
        pending.retain_mut(|future| future.as_mut().poll(context).is_pending());
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
}

/// ImportConversations of `count` closed past conversations, each of a new contact with two
/// messages, in one call: conversations acknowledged per second (the contacts made beforehand).
async fn import(services: &Services, count: usize) -> f64 {
    let workspace = Uuid::now_v7();
    let mut contacts =
        ContactServiceClient::new(connect(format!("http://{}", services.contact)).await);
    let contact_ids = import_contacts(&mut contacts, workspace, count).await;
    settle(services).await;
    let mut client =
        ConversationServiceClient::new(connect(format!("http://{}", services.conversation)).await);
    let day = 86_400;
    let base = 1_700_000_000;
    let items: Vec<pb::ImportConversationsRequest> = contact_ids
        .iter()
        .enumerate()
        .map(|(n, contact)| {
            let opened = base + (n as i64) * 60;
            pb::ImportConversationsRequest {
                conversation: Some(past_conversation(n, contact, opened, opened + day / 24)),
            }
        })
        .collect();
    let started = Instant::now();
    let answer = client
        .import_conversations(in_workspace(workspace, tokio_stream::iter(items)))
        .await
        .expect("import conversations")
        .into_inner();
    let elapsed = started.elapsed();
    assert!(
        answer.refused_count == 0 && !answer.stopped_early,
        "every item imports"
    );
    answer.imported_count as f64 / elapsed.as_secs_f64()
}

fn timestamp(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn past_conversation(
    n: usize,
    contact: &str,
    opened: i64,
    closed: i64,
) -> pb::HistoricalConversation {
    pb::HistoricalConversation {
        external_id: format!("past-{n}"),
        contact_id: contact.to_owned(),
        channel: Some(pb::Channel {
            channel_type: contact_pb::ChannelType::Whatsapp as i32,
            channel_id: "wa-main".into(),
        }),
        opened_by: pb::OpenSource::InboundMessage as i32,
        opened_at: timestamp(opened),
        messages: vec![
            pb::HistoricalMessage {
                message_id: format!("past-{n}-in"),
                direction: pb::MessageDirection::Inbound as i32,
                author_kind: pb::AuthorKind::Contact as i32,
                author_id: String::new(),
                sent_at: timestamp(opened),
            },
            pb::HistoricalMessage {
                message_id: format!("past-{n}-out"),
                direction: pb::MessageDirection::Outbound as i32,
                author_kind: pb::AuthorKind::User as i32,
                author_id: "agent-1".into(),
                sent_at: timestamp(opened + 90),
            },
        ],
        closed_at: timestamp(closed),
        closed_by: pb::CloseSource::User as i32,
        ..Default::default()
    }
}

/// The floor: the same SQL in a database of its own, without charla.
struct Floor {
    backend: Backend,
    url: String,
    db: Database,
}

impl Floor {
    /// A migrated database with, for each of [`MAX_CALLERS`] clients, a workspace whose contact
    /// has an open conversation.
    async fn prepare(backend: Backend) -> Option<Self> {
        let url = fresh_database_url(backend).await?;
        let db = Database::connect(&url, &charla_conversation::store::MIGRATIONS)
            .await
            .expect("the floor database");
        for client in 0..MAX_CALLERS {
            sqlx::query(
                "INSERT INTO conversations (workspace_id, conversation_id, contact_id, channel_type,
                     channel_id, status, opened_by, opened_at, assignment_count, response_times,
                     inbound_count, outbound_count, user_outbound_count, response_count, imported)
                 VALUES ($1, $2, $3, 'whatsapp', 'wa-main', 'open', 'inbound_message', 1, 0, '[]',
                     1, 0, 0, 0, 0)",
            )
            .bind(floor_id("8000", client))
            .bind(floor_id("a000", client))
            .bind(floor_id("9000", client))
            .execute(db.pool())
            .await
            .expect("seed the floor");
        }
        if backend == Backend::Postgres {
            // pgbench opens its own connections; the server's are shared with other work.
            db.close().await;
        }
        Some(Self { backend, url, db })
    }

    /// Transactions per second of `callers` clients each running `calls` of `case`.
    async fn measure(&self, case: Case, callers: usize, calls: usize) -> f64 {
        match self.backend {
            Backend::Postgres => pgbench(&self.url, case, callers, calls),
            Backend::Sqlite => floor_sqlite(&self.db, case, callers, calls).await,
        }
    }
}

/// The ids the floor scripts use: UUID-shaped, numbered.
fn floor_id(kind: &str, number: usize) -> String {
    format!("00000000-0000-7000-{kind}-{number:012}")
}

/// pgbench's transactions per second; retried a few times when the server is out of
/// connections (other work on a shared server).
fn pgbench(url: &str, case: Case, callers: usize, calls: usize) -> f64 {
    let mut attempt = 0;
    loop {
        match pgbench_once(url, case, callers, calls) {
            Ok(tps) => return tps,
            Err(output) if attempt < 5 && output.contains("too many clients") => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_secs(2));
            }
            Err(output) => panic!("pgbench failed: {output}"),
        }
    }
}

fn pgbench_once(url: &str, case: Case, callers: usize, calls: usize) -> Result<f64, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/sql/");
    let now = charla_runtime::clock::to_micros(std::time::SystemTime::now());
    let output = Command::new("pgbench")
        .args(["-n", "-M", "prepared", "-f"])
        .arg(format!("{script}{}", case.script()))
        .args(["-c", &callers.to_string(), "-j", &callers.to_string()])
        .args(["-t", &calls.to_string(), "-D", &format!("now={now}")])
        .arg(url)
        .output()
        .expect("pgbench runs (is it on the PATH?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(stdout
        .lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|tps| tps.parse().ok())
        })
        .expect("pgbench prints tps"))
}

// ---------------------------------------------------------------------------------------------
// The SQLite floor: the statements of benches/sql/*.sql in SQLite's dialect (no row locks, no
// NOTIFY, no advisory lock: SQLite has one writer), bound like charla binds them.

const SETTINGS_OF_1: &str = "\
    (SELECT closing_note_policy FROM workspace_settings WHERE workspace_id = $1) AS settings_policy, \
    (SELECT closing_categories FROM workspace_settings WHERE workspace_id = $1) AS settings_categories, \
    (SELECT auto_close_after_micros FROM workspace_settings WHERE workspace_id = $1) AS settings_auto_close, \
    (SELECT updated_at FROM workspace_settings WHERE workspace_id = $1) AS settings_updated_at";

const COLUMNS: &str = "workspace_id, conversation_id, contact_id, channel_type, channel_id, status, \
    opened_by, opened_by_id, opened_at, closed_at, closed_by, closed_by_id, closing_category, \
    closing_summary, assignee_user_id, team_id, first_assignee_user_id, first_assigned_at, \
    last_assigned_at, assignment_count, first_response_at, first_response_user_id, \
    last_message_at, last_inbound_at, last_outbound_at, awaiting_reply_since, response_times, \
    auto_close_at, inbound_count, outbound_count, user_outbound_count, response_count, \
    external_id, imported, last_assignee_user_id";

fn select_open_sql() -> String {
    format!(
        "SELECT {COLUMNS}, {SETTINGS_OF_1} FROM conversations
         WHERE workspace_id = $1 AND contact_id = $2 AND status = 'open'"
    )
}

fn upsert_sql() -> String {
    let updates: Vec<String> = COLUMNS
        .split(',')
        .map(str::trim)
        .skip(2)
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO conversations ({COLUMNS}) VALUES ($1, $2, $3, 'whatsapp', 'wa-main', 'open',
             'inbound_message', NULL, $4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
             NULL, 0, NULL, NULL, $4, $4, NULL, $4, '[]', NULL, $5, 0, 0, 0, NULL, 0, NULL)
         ON CONFLICT (workspace_id, conversation_id) DO UPDATE SET {}",
        updates.join(", ")
    )
}

const INSERT_MESSAGE: &str = "INSERT INTO messages (workspace_id, message_id, conversation_id,
         contact_id, direction, author_kind, author_id, sent_at, recorded_at)
     VALUES ($1, $2, $3, $4, 'inbound', 'contact', NULL, $5, $5)
     ON CONFLICT (workspace_id, message_id) DO NOTHING";

const HEAD: &str = "INSERT INTO event_log_heads (partition_no, last_seq) VALUES ($1, $2)
     ON CONFLICT (partition_no) DO UPDATE SET last_seq = event_log_heads.last_seq + $2
     RETURNING last_seq";

fn insert_events_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let n = 3 + row * 5;
            format!("(${n}, ${}, ${}, ${}, ${})", n + 1, n + 2, n + 3, n + 4)
        })
        .collect();
    format!(
        "INSERT INTO event_log
             (partition_no, seq, event_id, workspace_id, occurred_at, payload, workspace_seq)
         SELECT $2, fresh.column1, fresh.column2, $1, fresh.column3, fresh.column4,
                prior.workspace_seq + fresh.column5 + 1
         FROM (VALUES {}) AS fresh
         CROSS JOIN (SELECT COALESCE(max(workspace_seq), 0) AS workspace_seq
                     FROM event_log WHERE workspace_id = $1) AS prior
         RETURNING seq, workspace_seq",
        values.join(", ")
    )
}

/// Appends `rows` events of workspace `ws` in partition `partition` and indexes them under
/// `conversation`, as charla's append does.
async fn floor_events(
    tx: &mut sqlx::AnyConnection,
    ws: &str,
    partition: i64,
    conversation: &str,
    rows: usize,
    now: i64,
) {
    let last: i64 = sqlx::query(HEAD)
        .bind(partition)
        .bind(rows as i64)
        .fetch_one(&mut *tx)
        .await
        .unwrap()
        .get(0);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(insert_events_sql(rows)))
        .bind(ws.to_owned())
        .bind(partition);
    for row in 0..rows {
        query = query
            .bind(last - (rows - 1 - row) as i64)
            .bind(Uuid::now_v7().to_string())
            .bind(now)
            .bind(vec![b'x'; 320])
            .bind(row as i64);
    }
    let appended = query.fetch_all(&mut *tx).await.unwrap();
    let values: Vec<String> = (0..rows)
        .map(|row| format!("($1, $2, ${})", 3 + row))
        .collect();
    let mut index = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO conversation_events (workspace_id, conversation_id, workspace_seq) VALUES {}",
        values.join(", ")
    )))
    .bind(ws.to_owned())
    .bind(conversation.to_owned());
    for row in &appended {
        index = index.bind(row.get::<i64, _>(1));
    }
    index.execute(&mut *tx).await.unwrap();
}

/// One client's transaction of `case`, the `n`th of run `run`.
async fn floor_sqlite_once(db: &Database, case: Case, client: usize, run: usize, n: usize) {
    let now = charla_runtime::clock::to_micros(std::time::SystemTime::now());
    let ws = floor_id("8000", client);
    let message = format!("m-{run}-{client}-{n}");
    match case {
        Case::Open => {
            let (contact, conversation) = (floor_id("9000", client), floor_id("a000", client));
            let mut tx = db.pool().begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(select_open_sql()))
                .bind(ws.clone())
                .bind(contact.clone())
                .fetch_optional(&mut *tx)
                .await
                .unwrap();
            sqlx::query(INSERT_MESSAGE)
                .bind(ws.clone())
                .bind(message)
                .bind(conversation.clone())
                .bind(contact.clone())
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(upsert_sql()))
                .bind(ws.clone())
                .bind(conversation.clone())
                .bind(contact)
                .bind(now)
                .bind(2_i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            floor_events(&mut tx, &ws, client as i64, &conversation, 1, now).await;
            tx.commit().await.unwrap();
        }
        Case::New => {
            let contact = Uuid::now_v7().to_string();
            let conversation = Uuid::now_v7().to_string();
            let mut tx = db.pool().begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(select_open_sql()))
                .bind(ws.clone())
                .bind(contact.clone())
                .fetch_optional(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            sqlx::query(
                "SELECT contact_id, conversation_id FROM messages
                 WHERE workspace_id = $1 AND message_id = $2",
            )
            .bind(ws.clone())
            .bind(message.clone())
            .fetch_optional(db.pool())
            .await
            .unwrap();
            let mut tx = db.pool().begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT (SELECT merged_into FROM merged_contacts
                         WHERE workspace_id = $1 AND contact_id = $2) AS merged_into, {SETTINGS_OF_1}"
            )))
            .bind(ws.clone())
            .bind(contact.clone())
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(upsert_sql()))
                .bind(ws.clone())
                .bind(conversation.clone())
                .bind(contact.clone())
                .bind(now)
                .bind(1_i64)
                .execute(&mut *tx)
                .await
                .unwrap();
            sqlx::query(INSERT_MESSAGE)
                .bind(ws.clone())
                .bind(message)
                .bind(conversation.clone())
                .bind(contact)
                .bind(now)
                .execute(&mut *tx)
                .await
                .unwrap();
            floor_events(&mut tx, &ws, client as i64, &conversation, 2, now).await;
            tx.commit().await.unwrap();
        }
    }
}

async fn floor_sqlite(db: &Database, case: Case, callers: usize, calls: usize) -> f64 {
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let clients = (0..callers).map(|client| async move {
        for n in 0..calls {
            floor_sqlite_once(db, case, client, run, n).await;
        }
    });
    futures_join_all(clients).await;
    (callers * calls) as f64 / started.elapsed().as_secs_f64()
}
