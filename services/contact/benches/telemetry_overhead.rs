//! What telemetry costs a call: GetContact latency through the real server with the Prometheus
//! metrics off and on (alternating rounds), then with a JSON log line per call written (to a sink,
//! so only the formatting counts). The per-call log layer and its span run in every phase.
//!
//! ```sh
//! cargo bench -p charla-contact --bench telemetry_overhead
//! ```
//! Settings from the environment: `CALLS` per measurement (2000), `ROUNDS` (3).

use std::time::{Duration, Instant};

use charla_proto::charla::contact::v1 as pb;
use charla_proto::charla::contact::v1::contact_service_client::ContactServiceClient;
use charla_runtime::config::RuntimeConfig;
use charla_runtime::test_clock::ServiceClock;
use charla_testing::{Backend, auth_config, connect, fresh_database_url, in_workspace};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// p50 and p99 of `calls` GetContact calls on a fresh contact service, metrics on or off.
async fn measure(metrics_on: bool, calls: usize) -> (Duration, Duration) {
    let url = fresh_database_url(Backend::Sqlite).await.expect("SQLite");
    let mut config = RuntimeConfig::new("127.0.0.1:0".parse().unwrap(), url, auth_config());
    if metrics_on {
        config.admin_addr = Some("127.0.0.1:0".parse().unwrap());
    }
    let shutdown = CancellationToken::new();
    let app = charla_contact::build(&config, ServiceClock::System, shutdown.clone())
        .await
        .expect("the contact service starts");
    let addr = app.local_addr();
    let served = tokio::spawn(app.run());
    let mut client = ContactServiceClient::new(connect(format!("http://{addr}")).await);
    let workspace = Uuid::now_v7();
    let contact = client
        .create_contact(in_workspace(
            workspace,
            pb::CreateContactRequest {
                contact: Some(pb::Contact {
                    first_name: "Ana".into(),
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
    let mut latencies = Vec::with_capacity(calls);
    for _ in 0..calls {
        let request = in_workspace(
            workspace,
            pb::GetContactRequest {
                contact_id: contact.contact_id.clone(),
            },
        );
        let started = Instant::now();
        client.get_contact(request).await.unwrap();
        latencies.push(started.elapsed());
    }
    shutdown.cancel();
    let _ = served.await;
    latencies.sort();
    (latencies[calls / 2], latencies[calls * 99 / 100])
}

fn micros(d: Duration) -> String {
    format!("{:>6} µs", d.as_micros())
}

#[tokio::main]
async fn main() {
    let calls = setting("CALLS", 2000).max(100);
    let rounds = setting("ROUNDS", 3).max(1);
    println!("GetContact, {calls} calls a measurement, SQLite, p50 / p99");
    println!("{:<34} {:>9} {:>9}", "", "p50", "p99");
    for round in 1..=rounds {
        for metrics_on in [false, true] {
            let (p50, p99) = measure(metrics_on, calls).await;
            let label = if metrics_on {
                "metrics on"
            } else {
                "metrics off"
            };
            println!(
                "{:<34} {} {}",
                format!("round {round}, {label}"),
                micros(p50),
                micros(p99)
            );
        }
    }
    // From here on every call also writes its JSON log line.
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::sink)
        .with_max_level(tracing::Level::INFO)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
    for round in 1..=rounds {
        let (p50, p99) = measure(true, calls).await;
        println!(
            "{:<34} {} {}",
            format!("round {round}, metrics on, JSON logs"),
            micros(p50),
            micros(p99)
        );
    }
}
