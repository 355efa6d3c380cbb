//! What a report costs as conversations grow, beside the raw scan it replaces, and how fast the
//! store applies events in batches. Conversations are fed through the same apply code the
//! consumer runs (`MetricsStore::apply_batch`, batches of 2,000), without the stream in front.
//!
//! ```sh
//! cargo bench -p charla-metrics --bench reports
//! ```
//! Settings from the environment: `SIZES` (conversations, `10000,100000`), `ROUNDS` (3), `CALLS`
//! per round (20), `SCAN_CALLS` of the raw scan per round (as many, at least 1), `ZONES`
//! (`UTC,America/Guayaquil`), `BACKENDS` (`sqlite,postgres`; PostgreSQL is found like the tests
//! find it, `CHARLA_TEST_POSTGRES_URL`, and skipped when unreachable), `KEEP_DIR` (SQLite only:
//! each size's data set is kept in `KEEP_DIR/reports-SIZE-schema-N.db` and read again by the
//! next run, so a million conversations are fed once while their reports are measured many times).

use std::time::{Duration, Instant};

use charla_metrics::domain::{Change, Closure, Dimension, Dimensions, Filter, Granularity};
use charla_metrics::reports::{MetricsQuery, metrics};
use charla_metrics::store::{MIGRATIONS, MetricsStore, StreamEvent};
use charla_runtime::db::Database;
use charla_testing::{Backend, fresh_database_url};
use sqlx::Row;

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 24 * 60 * MINUTE;
/// 2026-03-01T00:00:00Z: the 30 days reported start here.
const START: i64 = 1_772_323_200_000_000;
const BATCH: usize = 2000;

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn list(name: &str, default: &str) -> Vec<String> {
    setting(name, default)
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A deterministic generator: the same data set every run.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }
}

/// The events of conversation `n` of a workspace with 20 agents, 3 teams, 4 channels and a
/// contact for every three conversations, over 30 days; nine in ten closed within 20 hours.
fn conversation(n: usize, contacts: usize, dice: &mut Dice) -> Vec<Change> {
    let id = format!("conversation-{n}");
    let contact = format!("contact-{}", dice.roll(contacts as u64));
    let opened_at = START + dice.roll((30 * DAY / MINUTE) as u64) as i64 * MINUTE;
    let mut dimensions = Dimensions {
        channel_type: ["whatsapp", "sms", "messenger", "email"][dice.roll(4) as usize].into(),
        channel_id: format!("channel-{}", dice.roll(4)),
        opened_by: "OPEN_SOURCE_INBOUND_MESSAGE".into(),
        ..Dimensions::default()
    };
    let mut changes = vec![Change::Opened {
        conversation: id.clone(),
        contact: contact.clone(),
        dimensions: dimensions.clone(),
        opened_at,
        imported: true,
    }];
    dimensions.assignee = format!("agent-{}", dice.roll(20));
    dimensions.team = format!("team-{}", dice.roll(3));
    changes.push(Change::Assigned {
        conversation: id.clone(),
        assignee: dimensions.assignee.clone(),
        team: dimensions.team.clone(),
    });
    if dice.roll(10) < 9 {
        let resolution = dice.roll(20 * 60) as i64 * MINUTE + MINUTE;
        dimensions.closed_by = "CLOSE_SOURCE_USER".into();
        dimensions.category = ["", "sale", "support"][dice.roll(3) as usize].into();
        changes.push(Change::Closed {
            conversation: id,
            contact,
            dimensions,
            opened_at,
            closed_at: opened_at + resolution,
            closure: Closure {
                resolution: Duration::from_micros(resolution as u64),
                first_response: Some(Duration::from_secs(dice.roll(3600))),
                ..Closure::default()
            },
            imported: true,
            record: Vec::new(),
        });
    }
    changes
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn millis(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

/// Times `calls` runs of `run`, returns p50 and p99.
async fn timed<F, Fut>(calls: usize, mut run: F) -> (Duration, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let started = Instant::now();
        run().await;
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// The kept data set of `size` conversations (`KEEP_DIR`, SQLite only): its URL, and the file
/// whose presence says it was fed in full. Named by the schema's last migration too: a migration
/// may forget the aggregates, and a data set fed before it is fed again.
fn kept_database(backend: Backend, size: usize) -> Option<(String, std::path::PathBuf)> {
    let dir = std::env::var("KEEP_DIR").ok()?;
    let schema = MIGRATIONS
        .sqlite
        .last()
        .map_or(0, |migration| migration.version);
    (backend == Backend::Sqlite).then(|| {
        let path = std::path::Path::new(&dir).join(format!("reports-{size}-schema-{schema}.db"));
        (
            format!("sqlite:{}", path.display()),
            path.with_extension("fed"),
        )
    })
}

/// Feeds `size` conversations through the consumer's apply code: events applied, and per second.
async fn feed(store: &MetricsStore, size: usize) -> (usize, f64) {
    let mut dice = Dice(42);
    let mut pending = Vec::with_capacity(BATCH);
    let (mut sequence, mut applied) = (0u64, 0usize);
    let started = Instant::now();
    for n in 0..size {
        for change in conversation(n, size / 3 + 1, &mut dice) {
            sequence += 1;
            pending.push(StreamEvent {
                workspace: "w".into(),
                partition: 0,
                sequence,
                change,
            });
            if pending.len() == BATCH {
                applied += store.apply_batch(&pending).await.expect("apply");
                pending.clear();
            }
        }
    }
    applied += store.apply_batch(&pending).await.expect("apply");
    (applied, applied as f64 / started.elapsed().as_secs_f64())
}

async fn measure(backend: Backend, size: usize, rounds: usize, calls: usize) {
    let kept = kept_database(backend, size);
    if let Some((url, fed)) = &kept
        && !fed.exists()
    {
        // Half fed by a run that stopped: start again from nothing.
        let path = url.trim_start_matches("sqlite:");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
    }
    let url = match &kept {
        Some((url, _)) => Some(url.clone()),
        None => fresh_database_url(backend).await,
    };
    let Some(url) = url else {
        println!("{backend:?}: skipped (no database)");
        return;
    };
    let db = Database::connect(&url, &MIGRATIONS)
        .await
        .expect("database");
    let store = MetricsStore::new(db.clone());
    let (applied, apply_rate) = match &kept {
        Some((_, fed)) if fed.exists() => (0, 0.0),
        _ => {
            let figures = feed(&store, size).await;
            if let Some((_, fed)) = &kept {
                std::fs::write(fed, "").expect("KEEP_DIR: writable");
            }
            figures
        }
    };

    // The raw scan of a million rows takes seconds: fewer calls of it keep a run short.
    let scan_calls = setting("SCAN_CALLS", &calls.to_string())
        .parse::<usize>()
        .expect("SCAN_CALLS: a number")
        .max(1);
    let scan = "SELECT assignee, (closed_at - $2) / 86400000000 AS day, COUNT(*) AS closed,
                       CAST(SUM(closed_at - opened_at) AS BIGINT) AS resolution
                FROM conversation_facts
                WHERE workspace_id = $1 AND closed_at >= $2 AND closed_at < $3
                GROUP BY assignee, day";
    for zone in list("ZONES", "UTC,America/Guayaquil") {
        let offset = if zone == "UTC" { 0 } else { 5 * 60 * MINUTE };
        let query = MetricsQuery {
            start: START + offset,
            end: START + offset + 30 * DAY,
            time_zone: zone.clone(),
            granularity: Granularity::Day,
            filter: Filter::default(),
            group_by: Some(Dimension::Assignee),
        };
        for round in 1..=rounds {
            let (report_p50, report_p99) = timed(calls, || async {
                metrics(&store, "w", &query).await.expect("report");
            })
            .await;
            let (scan_p50, scan_p99) = timed(scan_calls, || async {
                sqlx::query(scan)
                    .bind("w")
                    .bind(query.start)
                    .bind(query.end)
                    .fetch_all(db.pool())
                    .await
                    .expect("scan");
            })
            .await;
            println!(
                "{backend:?} {size:>8} {zone:<17} round {round}: report p50 {} p99 {} ms | raw scan p50 {} p99 {} ms | {:.0}x",
                millis(report_p50),
                millis(report_p99),
                millis(scan_p50),
                millis(scan_p99),
                scan_p50.as_secs_f64() / report_p50.as_secs_f64(),
            );
        }
    }

    let report = metrics(
        &store,
        "w",
        &MetricsQuery {
            start: START,
            end: START + 31 * DAY,
            time_zone: "UTC".into(),
            granularity: Granularity::Day,
            filter: Filter::default(),
            group_by: None,
        },
    )
    .await
    .expect("report");
    let exact: i64 = sqlx::query(
        "SELECT COUNT(DISTINCT contact_id) FROM conversation_facts
         WHERE workspace_id = 'w' AND closed_at >= $1 AND closed_at < $2",
    )
    .bind(START)
    .bind(START + 31 * DAY)
    .fetch_one(db.pool())
    .await
    .expect("exact count")
    .try_get(0)
    .expect("count");
    println!(
        "{backend:?} {size:>8}: applied {applied} events at {apply_rate:.0}/s in batches of {BATCH}; \
         unique contacts closed {} (exact {exact}); RSS {} MiB",
        report.totals.closed.contacts.estimate(),
        rss_mib()
    );
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = list("SIZES", "10000,100000")
        .iter()
        .map(|s| s.parse().expect("SIZES: numbers"))
        .collect();
    let rounds: usize = setting("ROUNDS", "3").parse().expect("ROUNDS: a number");
    let calls: usize = setting("CALLS", "20").parse().expect("CALLS: a number");
    for backend in list("BACKENDS", "sqlite,postgres") {
        let backend = match backend.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" => Backend::Postgres,
            other => panic!("BACKENDS: unknown {other}"),
        };
        for size in &sizes {
            measure(backend, *size, rounds, calls).await;
        }
    }
}
