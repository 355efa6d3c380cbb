//! `charla up`, the README's run command, as a newcomer runs it: a real process, real ports, an
//! inbound message that opens a conversation, and a clean stop on SIGTERM.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use charla_testing::in_workspace;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `charla up` on free ports and a fresh data folder: the process, the folder and the
/// contact, conversation and metrics ports.
fn charla_up() -> (std::process::Child, std::path::PathBuf, [u16; 3]) {
    charla_up_with(&[], Stdio::null())
}

/// Starts `charla up` as [`charla_up`] does, with `env` set as well and its standard error sent
/// to `stderr`.
fn charla_up_with(
    env: &[(&str, &str)],
    stderr: Stdio,
) -> (std::process::Child, std::path::PathBuf, [u16; 3]) {
    charla_up_printing_to(env, Stdio::null(), stderr)
}

/// Starts `charla up` as [`charla_up_with`] does, its standard output sent to `stdout`.
fn charla_up_printing_to(
    env: &[(&str, &str)],
    stdout: Stdio,
    stderr: Stdio,
) -> (std::process::Child, std::path::PathBuf, [u16; 3]) {
    let data_dir =
        std::env::temp_dir().join(format!("charla-up-{}", uuid::Uuid::now_v7().simple()));
    let ports = [free_port(), free_port(), free_port()];
    let child = Command::new(env!("CARGO_BIN_EXE_charla"))
        .envs(test_auth_env())
        .env("CHARLA_ALLOW_REBUILD", "true")
        .envs(env.iter().copied())
        .arg("up")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--contact-port", &ports[0].to_string()])
        .args(["--conversation-port", &ports[1].to_string()])
        .args(["--metrics-port", &ports[2].to_string()])
        .args(["--admin-port-offset", "0"])
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start charla up");
    (child, data_dir, ports)
}

/// The key set and audience the tests mint tokens for.
fn test_auth_env() -> [(&'static str, String); 2] {
    [
        (
            "CHARLA_AUTH_JWKS",
            charla_testing::auth::test_jwks_path().display().to_string(),
        ),
        (
            "CHARLA_AUTH_AUDIENCE",
            charla_testing::auth::TEST_AUDIENCE.to_owned(),
        ),
    ]
}

/// Connects to a port, retrying while the process starts.
async fn connect(port: u16) -> charla_testing::auth::TestChannel {
    for _ in 0..300 {
        let endpoint =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
        if let Ok(channel) = endpoint.connect().await {
            return charla_testing::auth::with_service_token(channel);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("charla up did not listen on port {port}");
}

/// A browser's CORS preflight from `origin` to the service on `port`: the answer's head.
async fn preflight(port: u16, origin: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "OPTIONS /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\
         origin: {origin}\r\naccess-control-request-method: POST\r\n\
         access-control-request-headers: authorization,content-type\r\n\
         content-length: 0\r\nconnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).to_ascii_lowercase()
}

/// Every service setting reaches the services `charla up` runs, as it reaches `charla serve`.
#[tokio::test]
async fn charla_up_passes_the_service_settings_through() {
    let (mut child, data_dir, [contact_port, conversation_port, _]) =
        charla_up_with(&[("CHARLA_EVENT_PARTITIONS", "3")], Stdio::null());
    let contact_info = ContactServiceClient::new(connect(contact_port).await)
        .get_contact_event_stream_info(contact_pb::GetContactEventStreamInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let conversation_info = ConversationServiceClient::new(connect(conversation_port).await)
        .get_conversation_event_stream_info(pb::GetConversationEventStreamInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            contact_info.partition_count,
            conversation_info.partition_count
        ),
        (3, 3)
    );
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&data_dir).ok();

    // The pool settings too: a minimum above the maximum stops it, naming both.
    let (child, data_dir, _) = charla_up_with(
        &[
            ("CHARLA_DB_MIN_CONNECTIONS", "5"),
            ("CHARLA_DB_MAX_CONNECTIONS", "2"),
        ],
        Stdio::piped(),
    );
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("CHARLA_DB_MIN_CONNECTIONS (5) is above CHARLA_DB_MAX_CONNECTIONS (2)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&data_dir).ok();
}

#[tokio::test]
async fn charla_up_runs_every_service_and_stops_cleanly() {
    let (mut child, data_dir, [contact_port, conversation_port, metrics_port]) = charla_up();

    let workspace = uuid::Uuid::now_v7();
    let mut contacts = ContactServiceClient::new(connect(contact_port).await);
    let mut conversations = ConversationServiceClient::new(connect(conversation_port).await);
    let contact = contacts
        .resolve_contact(in_workspace(
            workspace,
            contact_pb::ResolveContactRequest {
                identity: Some(contact_pb::ChannelIdentity {
                    channel_type: contact_pb::ChannelType::Whatsapp as i32,
                    channel_id: "wa".into(),
                    external_id: "593991234567".into(),
                }),
                profile: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let recorded = conversations
        .record_message(in_workspace(
            workspace,
            pb::RecordMessageRequest {
                message_id: "wamid.1".into(),
                contact_id: contact.contact_id,
                channel: Some(pb::Channel {
                    channel_type: contact_pb::ChannelType::Whatsapp as i32,
                    channel_id: "wa".into(),
                }),
                direction: pb::MessageDirection::Inbound as i32,
                author_kind: pb::AuthorKind::Contact as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        recorded.opened_conversation,
        "the services reach each other"
    );
    for service in ["contact", "conversation", "metrics"] {
        assert!(
            data_dir.join(format!("{service}.db")).exists(),
            "{service} has its SQLite file"
        );
    }
    // The metrics service counts the conversation the message opened.
    let mut metrics = MetricsServiceClient::new(connect(metrics_port).await);
    let mut open_now = 0;
    for _ in 0..300 {
        let dashboard = metrics
            .get_dashboard(in_workspace(
                workspace,
                metrics_pb::GetDashboardRequest {
                    time_zone: "UTC".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .dashboard
            .unwrap();
        open_now = dashboard.open_count;
        if open_now == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        open_now, 1,
        "the metrics service follows the conversation service"
    );
    // CHARLA_ALLOW_REBUILD reaches the metrics service of `charla up`, and a rebuild keeps the count.
    let rebuilt = metrics
        .rebuild_aggregates(metrics_pb::RebuildAggregatesRequest {})
        .await
        .expect("charla up passes CHARLA_ALLOW_REBUILD on")
        .into_inner();
    assert!(rebuilt.events_applied >= 1, "{rebuilt:?}");

    // A development mode: web pages on any origin may call every service.
    for port in [contact_port, conversation_port, metrics_port] {
        let answer = preflight(port, "http://localhost:5173").await;
        assert!(
            answer.contains("\r\naccess-control-allow-origin: *\r\n"),
            "port {port}: {answer}"
        );
    }

    // SIGTERM, as Kubernetes sends it: drain and exit 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(
        status.success(),
        "charla up exits 0 on SIGTERM, got {status}"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// `charla import conversations FILE` streams NDJSON in and reports, line by line, what it refused.
#[tokio::test]
async fn charla_import_reads_ndjson_and_names_what_it_refuses() {
    let (mut child, data_dir, [contact_port, conversation_port, metrics_port]) = charla_up();
    let workspace = uuid::Uuid::now_v7();
    let mut contacts = ContactServiceClient::new(connect(contact_port).await);
    let contact = contacts
        .resolve_contact(in_workspace(
            workspace,
            contact_pb::ResolveContactRequest {
                identity: Some(contact_pb::ChannelIdentity {
                    channel_type: contact_pb::ChannelType::Sms as i32,
                    channel_id: "sms".into(),
                    external_id: "+15550001".into(),
                }),
                profile: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    connect(conversation_port).await;
    let good = format!(
        r#"{{"externalId":"zd-1","contactId":"{}","channel":{{"channelType":"CHANNEL_TYPE_SMS","channelId":"sms"}},"openedAt":"2026-01-05T10:00:00Z","openedBy":"OPEN_SOURCE_INBOUND_MESSAGE","closedAt":"2026-01-05T11:00:00Z","closedBy":"CLOSE_SOURCE_USER"}}"#,
        contact.contact_id
    );
    let welcome_on_sms = good
        .replace("zd-1", "zd-2")
        .replace("OPEN_SOURCE_INBOUND_MESSAGE", "OPEN_SOURCE_WELCOME_EVENT")
        .replace("2026-01-05", "2026-01-06");
    let file = data_dir.join("history.ndjson");
    std::fs::write(&file, format!("{good}\n{{not json\n{welcome_on_sms}\n")).unwrap();
    let import = |file: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_charla"))
            .envs(test_auth_env())
            .args(["import", "conversations"])
            .arg(file)
            .args(["--workspace", &workspace.to_string()])
            .args([
                "--conversation-url",
                &format!("http://127.0.0.1:{conversation_port}"),
            ])
            .args(["--metrics-url", &format!("http://127.0.0.1:{metrics_port}")])
            .output()
            .expect("run charla import")
    };
    let output = import(&file);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(2),
        "refusals make a non-zero exit: {stdout}"
    );
    assert!(
        stdout.contains("1 imported, 0 unchanged, 2 refused"),
        "{stdout}"
    );
    // The import returns once the metrics reflect it: the very next report shows the close.
    assert!(
        stdout.contains("The metrics reflect the import."),
        "{stdout}"
    );
    let day = |text: &str| Some(text.parse::<prost_types::Timestamp>().unwrap());
    let report = MetricsServiceClient::new(connect(metrics_port).await)
        .get_conversation_metrics(in_workspace(
            workspace,
            metrics_pb::GetConversationMetricsRequest {
                start_time: day("2026-01-05T00:00:00Z"),
                end_time: day("2026-01-06T00:00:00Z"),
                granularity: metrics_pb::Granularity::Day as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.totals.unwrap().closed_count, 1);
    assert!(
        !report.positions.is_empty(),
        "the report says what it reflects"
    );
    assert!(stdout.contains("refused line 2: not JSON"), "{stdout}");
    assert!(
        stdout.contains("refused line 3 (zd-2): conversation.opened_by"),
        "{stdout}"
    );

    let again = import(&file);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("0 imported, 1 unchanged, 2 refused"),
        "importing again changes nothing: {stdout}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A `charla serve SERVICE` process on a free port; SIGKILLed when dropped.
struct Served {
    child: std::process::Child,
    port: u16,
}

fn serve(service: &str, env: &[(&str, String)]) -> Served {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["serve", service])
        .envs(test_auth_env())
        .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
        .env("CHARLA_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start charla serve");
    Served { child, port }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An import call that nears the server's request timeout answers with the items it wrote and
/// `stopped_early`; `charla import` sends the rest again, so every line lands, and lands once.
#[tokio::test]
async fn charla_import_sends_again_what_an_early_answer_left() {
    const LINES: i64 = 1000;
    let data_dir =
        std::env::temp_dir().join(format!("charla-import-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&data_dir).unwrap();
    let database = |name: &str| format!("sqlite:{}", data_dir.join(name).display());
    let contact = serve(
        "contact",
        &[("CHARLA_DATABASE_URL", database("contact.db"))],
    );
    let conversation = serve(
        "conversation",
        &[
            ("CHARLA_DATABASE_URL", database("conversation.db")),
            (
                "CHARLA_CONTACT_URL",
                format!("http://127.0.0.1:{}", contact.port),
            ),
            // Each call may last a second: far less than a thousand items take.
            ("CHARLA_REQUEST_TIMEOUT_SECS", "1".into()),
        ],
    );
    let workspace = uuid::Uuid::now_v7();
    let contact_id = ContactServiceClient::new(connect(contact.port).await)
        .resolve_contact(in_workspace(
            workspace,
            contact_pb::ResolveContactRequest {
                identity: Some(contact_pb::ChannelIdentity {
                    channel_type: contact_pb::ChannelType::Sms as i32,
                    channel_id: "sms".into(),
                    external_id: "+15550002".into(),
                }),
                profile: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap()
        .contact_id;
    connect(conversation.port).await;
    let at = |seconds: i64| prost_types::Timestamp { seconds, nanos: 0 }.to_string();
    let lines: Vec<String> = (0..LINES)
        .map(|i| {
            let opened = 1_704_067_200 + i * 7200;
            format!(
                r#"{{"externalId":"bulk-{i}","contactId":"{contact_id}","channel":{{"channelType":"CHANNEL_TYPE_SMS","channelId":"sms"}},"openedAt":"{}","openedBy":"OPEN_SOURCE_API","closedAt":"{}","closedBy":"CLOSE_SOURCE_API"}}"#,
                at(opened),
                at(opened + 3600)
            )
        })
        .collect();
    let file = data_dir.join("history.ndjson");
    std::fs::write(&file, lines.join("\n")).unwrap();
    let import = || {
        Command::new(env!("CARGO_BIN_EXE_charla"))
            .envs(test_auth_env())
            .args(["import", "conversations"])
            .arg(&file)
            .args(["--workspace", &workspace.to_string()])
            .args(["--batch", &LINES.to_string()])
            // No metrics service in this test.
            .arg("--no-metrics-wait")
            .args([
                "--conversation-url",
                &format!("http://127.0.0.1:{}", conversation.port),
            ])
            .output()
            .expect("run charla import")
    };

    let output = import();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("{LINES} imported, 0 unchanged, 0 refused")),
        "{stdout}"
    );
    let again = import();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains(&format!("0 imported, {LINES} unchanged, 0 refused")),
        "{stdout}"
    );
    drop((conversation, contact));
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn charla_up_in_development_mode_makes_a_key_set_and_charla_token_mints_for_it() {
    let data_dir =
        std::env::temp_dir().join(format!("charla-dev-{}", uuid::Uuid::now_v7().simple()));
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_charla"))
        .env_remove("CHARLA_AUTH_JWKS")
        .env_remove("CHARLA_AUTH_AUDIENCE")
        .arg("up")
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--contact-port", &port.to_string()])
        .args(["--conversation-port", &free_port().to_string()])
        .args(["--metrics-port", &free_port().to_string()])
        .args(["--admin-port-offset", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start charla up");
    let channel = connect(port).await;
    let workspace = uuid::Uuid::now_v7();
    let minted = Command::new(env!("CARGO_BIN_EXE_charla"))
        .env_remove("CHARLA_AUTH_JWKS")
        .env_remove("CHARLA_AUTH_AUDIENCE")
        .args([
            "token",
            "--role",
            "agent",
            "--workspace",
            &workspace.to_string(),
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .expect("run charla token");
    assert!(minted.status.success(), "{minted:?}");
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();

    let mut contacts = ContactServiceClient::new(channel);
    let listed = contacts
        .list_contacts(charla_testing::with_token(
            &token,
            contact_pb::ListContactsRequest::default(),
        ))
        .await
        .expect("the development key set's token is accepted");
    assert!(listed.into_inner().contacts.is_empty());
    // The tests' own key set is not the development one.
    let foreign = contacts
        .list_contacts(in_workspace(
            workspace,
            contact_pb::ListContactsRequest::default(),
        ))
        .await
        .expect_err("a token of another key set is refused");
    assert_eq!(foreign.code(), tonic::Code::Unauthenticated);

    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn a_service_without_a_key_set_refuses_to_start_and_says_how() {
    let output = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["serve", "contact"])
        .env_remove("CHARLA_AUTH_JWKS")
        .env_remove("CHARLA_DEV_MODE")
        .env(
            "CHARLA_DATABASE_URL",
            format!(
                "sqlite:{}",
                std::env::temp_dir()
                    .join(format!(
                        "charla-nokeys-{}.db",
                        uuid::Uuid::now_v7().simple()
                    ))
                    .display()
            ),
        )
        .env("CHARLA_LISTEN_ADDR", "127.0.0.1:0")
        .env("CHARLA_LOG_FORMAT", "json")
        .output()
        .expect("run charla serve");
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("CHARLA_AUTH_JWKS") && log.contains("CHARLA_DEV_MODE"),
        "{log}"
    );
}

/// `charla serve NAME --help` names every setting of the service, as a flag and as a variable,
/// and the flags are accepted (the error of a missing database names a flag that works).
#[test]
fn serve_help_lists_every_setting_of_each_service() {
    use clap::CommandFactory;
    for (name, command) in [
        ("contact", charla_contact::Config::command()),
        ("conversation", charla_conversation::Config::command()),
        ("metrics", charla_metrics::Config::command()),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_charla"))
            .args(["serve", name, "--help"])
            .output()
            .expect("run charla serve --help");
        assert!(output.status.success(), "{name}: {output:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        let mut settings = 0;
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else {
                continue;
            };
            if long == "help" {
                continue;
            }
            settings += 1;
            assert!(
                help.contains(&format!("--{long}")),
                "{name}: no --{long}:\n{help}"
            );
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(help.contains(&*env), "{name}: no {env}:\n{help}");
            }
        }
        assert!(settings >= 10, "{name}: only {settings} settings");
    }
}

/// Logs to a pipe or a file are plain text: no ANSI colour codes.
#[test]
fn text_logs_to_a_pipe_carry_no_colour_codes() {
    let output = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["serve", "contact", "--log-format", "text"])
        .env_remove("CHARLA_AUTH_JWKS")
        .env_remove("CHARLA_DEV_MODE")
        .env_remove("CHARLA_LOG_FORMAT")
        .env(
            "CHARLA_DATABASE_URL",
            format!(
                "sqlite:{}",
                std::env::temp_dir()
                    .join(format!("charla-plain-{}.db", uuid::Uuid::now_v7().simple()))
                    .display()
            ),
        )
        .env("CHARLA_LISTEN_ADDR", "127.0.0.1:0")
        .output()
        .expect("run charla serve");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("CHARLA_AUTH_JWKS"),
        "the refusal is logged: {log}"
    );
    assert!(!log.contains('\u{1b}'), "colour codes in {log:?}");
}

/// `charla demo` says the workspace is ready only once the metrics reflect its history, and
/// points at the metrics service it was given.
#[tokio::test]
async fn charla_demo_is_ready_when_the_metrics_reflect_its_history() {
    let (mut child, data_dir, [contact_port, conversation_port, metrics_port]) = charla_up();
    connect(contact_port).await;
    connect(conversation_port).await;
    connect(metrics_port).await;
    let workspace = uuid::Uuid::now_v7();
    let output = Command::new(env!("CARGO_BIN_EXE_charla"))
        .envs(test_auth_env())
        .args(["demo", "--days", "3", "--per-day", "6"])
        .args(["--workspace", &workspace.to_string()])
        .args(["--contact-url", &format!("http://127.0.0.1:{contact_port}")])
        .args([
            "--conversation-url",
            &format!("http://127.0.0.1:{conversation_port}"),
        ])
        .args(["--metrics-url", &format!("http://127.0.0.1:{metrics_port}")])
        .output()
        .expect("run charla demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("is ready"), "{stdout}");
    assert!(
        stdout.contains(&format!("127.0.0.1:{metrics_port} charla.metrics.v1")),
        "the suggested call goes to the metrics service given: {stdout}"
    );
    // Read at once, without waiting: the history is in the reports already.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = (now / 900 + 1) * 900;
    let report = MetricsServiceClient::new(connect(metrics_port).await)
        .get_conversation_metrics(in_workspace(
            workspace,
            metrics_pb::GetConversationMetricsRequest {
                start_time: Some(prost_types::Timestamp {
                    seconds: end - 5 * 86_400,
                    nanos: 0,
                }),
                end_time: Some(prost_types::Timestamp {
                    seconds: end,
                    nanos: 0,
                }),
                granularity: metrics_pb::Granularity::Day as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let totals = report.totals.unwrap();
    assert!(
        totals.opened_count > 0 && totals.closed_count > 0,
        "{totals:?}"
    );

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn charla_up_keeps_serving_when_its_output_pipe_closes() {
    let (mut child, data_dir, [contact_port, _, _]) =
        charla_up_printing_to(&[], Stdio::piped(), Stdio::null());
    // The reader goes away before charla up prints its addresses and token.
    drop(child.stdout.take());
    let mut contacts = ContactServiceClient::new(connect(contact_port).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "charla up stopped when its standard output closed"
    );
    contacts
        .resolve_contact(in_workspace(
            uuid::Uuid::now_v7(),
            contact_pb::ResolveContactRequest {
                identity: Some(contact_pb::ChannelIdentity {
                    channel_type: contact_pb::ChannelType::Whatsapp as i32,
                    channel_id: "wa".into(),
                    external_id: "593990000001".into(),
                }),
                profile: None,
            },
        ))
        .await
        .expect("still serving");
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(data_dir);
}
