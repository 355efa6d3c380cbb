//! A real Prometheus (Debian's `prometheus`) scraping the services `charla up` starts, at the
//! admin addresses it prints, and a PromQL query over Prometheus' HTTP API finding the calls made.
//! Skipped with a notice when `prometheus` is missing, except under CI=true, where it must run.

use std::io::BufRead;
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use charla_proto::charla::contact::v1 as contact_pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_testing::in_workspace;
use charla_testing::prometheus::http_get;

/// Ends a child process when the test ends, passing or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Prometheus to run (`CHARLA_PROMETHEUS`, else `prometheus` on the path), if there is one.
fn prometheus_binary() -> Option<String> {
    let binary = std::env::var("CHARLA_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let found = Command::new(&binary)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if found {
        return Some(binary);
    }
    let ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        !ci,
        "the Prometheus test must run under CI=true: no `{binary}`"
    );
    eprintln!(
        "SKIPPED: the Prometheus test, no `{binary}` (apt install prometheus, or set CHARLA_PROMETHEUS)"
    );
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `charla up` with free ports and reads, from what it prints, each service's gRPC port and
/// admin address (in the order contact, conversation, metrics).
fn charla_up(data_dir: &std::path::Path) -> (Running, Vec<(u16, SocketAddr)>) {
    let ports = [free_port(), free_port(), free_port()];
    let mut child = Command::new(env!("CARGO_BIN_EXE_charla"))
        .env(
            "CHARLA_AUTH_JWKS",
            charla_testing::auth::test_jwks_path().display().to_string(),
        )
        .env("CHARLA_AUTH_AUDIENCE", charla_testing::auth::TEST_AUDIENCE)
        .arg("up")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--contact-port", &ports[0].to_string()])
        .args(["--conversation-port", &ports[1].to_string()])
        .args(["--metrics-port", &ports[2].to_string()])
        .args(["--admin-port-offset", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start charla up");
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut admins = Vec::new();
    let mut lines = std::io::BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("charla up prints its addresses");
        if let Some(url) = line.trim().strip_prefix("metrics: http://") {
            let addr = url
                .trim_end_matches("/metrics")
                .parse()
                .expect("an address");
            admins.push(addr);
            if admins.len() == 3 {
                break;
            }
        }
    }
    assert_eq!(
        admins.len(),
        3,
        "charla up prints one admin address per service"
    );
    // Read the rest too: a closed pipe would fail charla up's next line of output.
    std::thread::spawn(move || lines.for_each(drop));
    (running, ports.into_iter().zip(admins).collect())
}

/// Runs a PromQL `query` over Prometheus' HTTP API until it returns a sample (or gives up): the
/// first sample's value.
async fn query_until_found(prometheus: SocketAddr, query: &str) -> f64 {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut last = String::new();
    for _ in 0..240 {
        let path = format!("/api/v1/query?query={encoded}");
        // Prometheus refuses connections while it starts.
        let asked = tokio::spawn(async move { http_get(prometheus, &path).await });
        if let Ok(Ok((200, body))) = tokio::time::timeout(Duration::from_secs(5), asked).await {
            let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
            if let Some(sample) = answer["data"]["result"].as_array().and_then(|r| r.first()) {
                return sample["value"][1].as_str().unwrap().parse().unwrap();
            }
            last = body;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("Prometheus never answered `{query}` with a sample; last answer: {last}");
}

#[tokio::test]
async fn a_real_prometheus_scrapes_charla_up_and_promql_finds_the_calls() {
    let Some(binary) = prometheus_binary() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("charla-prom-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_charla, services) = charla_up(&dir.join("data"));
    let jobs = ["contact", "conversation", "metrics"];
    let mut config =
        String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for (job, (_, admin)) in jobs.iter().zip(&services) {
        config.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{admin}']\n"
        ));
    }
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _prometheus = Running(
        Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );

    // A contact writes on WhatsApp: contact and conversation calls, an event for the metrics.
    let workspace = uuid::Uuid::now_v7();
    let connect = |port: u16| async move {
        for _ in 0..300 {
            let url = format!("http://127.0.0.1:{port}");
            if let Ok(channel) = tonic::transport::Endpoint::from_shared(url)
                .unwrap()
                .connect()
                .await
            {
                return charla_testing::auth::with_service_token(channel);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("charla up did not listen on {port}");
    };
    let mut contacts = ContactServiceClient::new(connect(services[0].0).await);
    let contact = contacts
        .create_contact(in_workspace(
            workspace,
            contact_pb::CreateContactRequest {
                contact: Some(contact_pb::Contact {
                    first_name: "Susana".into(),
                    ..Default::default()
                }),
                request_id: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .contact
        .unwrap();
    let mut conversations = ConversationServiceClient::new(connect(services[1].0).await);
    conversations
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
        .unwrap();

    let created = query_until_found(
        web,
        r#"sum(rpc_server_requests_total{job="contact",rpc_system="grpc",rpc_service="charla.contact.v1.ContactService",rpc_method="CreateContact",rpc_grpc_status_code="0"})"#,
    )
    .await;
    assert_eq!(created, 1.0);
    let recorded = query_until_found(
        web,
        r#"rpc_server_requests_total{job="conversation",rpc_method="RecordMessage",rpc_grpc_status_code="0"}"#,
    )
    .await;
    assert_eq!(recorded, 1.0);
    let p99 = query_until_found(
        web,
        r#"histogram_quantile(0.99, sum by (le) (rpc_server_duration_seconds_bucket{job="conversation",rpc_method="RecordMessage"}))"#,
    )
    .await;
    assert!(p99 > 0.0 && p99 < 60.0, "{p99}");
    let head = query_until_found(
        web,
        r#"charla_event_head{job="conversation",stream="conversation",partition="0"} >= 1"#,
    )
    .await;
    assert!(head >= 1.0, "{head}");
    // The metrics service applies the event: its lag on the partition comes back to zero.
    let lag = query_until_found(
        web,
        r#"charla_consumer_lag_events{job="metrics",stream="conversation",partition="0"} == 0"#,
    )
    .await;
    assert_eq!(lag, 0.0);
    let backlog = query_until_found(web, r#"charla_auto_close_backlog{job="conversation"}"#).await;
    assert_eq!(backlog, 0.0);
    let pools = query_until_found(web, r#"count(charla_db_pool_connections >= 1)"#).await;
    assert_eq!(pools, 3.0, "each service's pool");
    let _ = std::fs::remove_dir_all(&dir);
}
