//! Section 5, reports over a loaded data set: GetConversationMetrics for the last 30 days by day,
//! grouped by assignee (in UTC and in America/Guayaquil), and GetDashboard, each as p50/p99 over
//! several calls; beside the raw scan floor: the same numbers (closed per day per assignee,
//! average resolution) computed by one plain SQL query over the metrics database's
//! `conversation_facts` rows of the range, through sqlx without gRPC. Also the report's unique
//! contacts closed beside the exact count. Section 6's export lives here too.

use std::time::{Duration, Instant, SystemTime};

use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use charla_runtime::clock::to_micros;
use charla_runtime::db::Database;
use sqlx::Row;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::figures::{Figure, Measure, median, ms, quantile};
use super::fleet::Fleet;
use super::people::Workspace;

const DAY_MICROS: i64 = 86_400_000_000;
/// A zone west of UTC with no daylight saving time: its days are UTC's shifted by 5 hours, so the
/// raw scan can bucket them with a fixed offset.
const ZONE: (&str, i64) = ("America/Guayaquil", -5 * 3_600 * 1_000_000);

/// The last 30 days, on 15-minute edges: [start, end).
pub fn range() -> (SystemTime, SystemTime) {
    let quarter = Duration::from_secs(900);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let end = SystemTime::UNIX_EPOCH + quarter * (now.as_secs() / 900 + 1) as u32;
    (end - Duration::from_secs(30 * 86_400), end)
}

/// p50 and p99 of each round's samples, each the median over rounds.
#[derive(Debug, Default)]
struct Latency {
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Latency {
    fn add_round(&mut self, samples: &[f64]) {
        self.p50.push(quantile(samples, 0.5));
        self.p99.push(quantile(samples, 0.99));
    }

    fn figures(&self, charla: &str, floor: &str, other: &Latency) -> [Figure; 2] {
        [
            ("p50", &self.p50, &other.p50),
            ("p99", &self.p99, &other.p99),
        ]
        .map(|(name, mine, theirs)| {
            Figure::against(
                Measure::new(format!("{charla} {name}"), median(mine), "ms"),
                Measure::new(format!("{floor} {name}"), median(theirs), "ms"),
            )
        })
    }
}

/// What the raw scan found: closed conversations, and the exact distinct contacts among them.
struct Scan {
    closed: i64,
}

/// The raw scan: closed per local day per assignee and the average resolution, in one query.
async fn raw_scan(
    db: &Database,
    workspace: &str,
    (start, end): (i64, i64),
    offset: i64,
) -> Result<Scan, String> {
    let rows = sqlx::query(
        "SELECT (closed_at + $4) / $5 AS day, assignee, count(*) AS closed,
                CAST(avg(closed_at - opened_at) AS DOUBLE PRECISION) AS resolution
         FROM conversation_facts
         WHERE workspace_id = $1 AND closed_at >= $2 AND closed_at < $3
         GROUP BY 1, 2",
    )
    .bind(workspace)
    .bind(start)
    .bind(end)
    .bind(offset)
    .bind(DAY_MICROS)
    .fetch_all(db.pool())
    .await
    .map_err(|e| format!("the raw scan failed: {e}"))?;
    let mut closed = 0;
    for row in &rows {
        let count: i64 = row.try_get(2).map_err(|e| e.to_string())?;
        let _average: Option<f64> = row.try_get(3).map_err(|e| e.to_string())?;
        closed += count;
    }
    Ok(Scan { closed })
}

async fn exact_unique_contacts(
    db: &Database,
    workspace: &str,
    (start, end): (i64, i64),
) -> Result<i64, String> {
    sqlx::query(
        "SELECT count(DISTINCT contact_id) FROM conversation_facts
         WHERE workspace_id = $1 AND closed_at >= $2 AND closed_at < $3",
    )
    .bind(workspace)
    .bind(start)
    .bind(end)
    .fetch_one(db.pool())
    .await
    .and_then(|row| row.try_get(0))
    .map_err(|e| format!("the exact count failed: {e}"))
}

/// Runs the report section on `workspace`'s data set of `size` conversations: `calls` calls
/// per round. Returns its figures and notes.
pub async fn run(
    fleet: &Fleet,
    metrics_db: &Database,
    workspace: &Workspace,
    size: usize,
    rounds: u32,
    calls: usize,
) -> Result<(Vec<Figure>, Vec<String>), String> {
    let mut metrics = MetricsServiceClient::new(fleet.channel("metrics").await?);
    let mut health = HealthClient::new(fleet.channel("metrics").await?);
    let (start, end) = range();
    let micros = (to_micros(start), to_micros(end));
    let ws = workspace.id.to_string();
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let mut unique = (0, 0);
    for (zone, offset) in [("UTC", 0), ZONE] {
        let (mut report, mut scan) = (Latency::default(), Latency::default());
        for _ in 0..rounds {
            let (mut report_ms, mut scan_ms) = (Vec::new(), Vec::new());
            for _ in 0..calls {
                let request = workspace.request(metrics_pb::GetConversationMetricsRequest {
                    start_time: Some(start.into()),
                    end_time: Some(end.into()),
                    time_zone: zone.into(),
                    granularity: metrics_pb::Granularity::Day as i32,
                    filter: None,
                    group_by: metrics_pb::GroupBy::Assignee as i32,
                    min_positions: Vec::new(),
                    recontact_window: None,
                });
                let asked = Instant::now();
                let answer = metrics
                    .get_conversation_metrics(request)
                    .await
                    .map_err(|s| format!("GetConversationMetrics: {}", s.message()))?
                    .into_inner();
                report_ms.push(ms(asked.elapsed()));
                let scanned = Instant::now();
                let found = raw_scan(metrics_db, &ws, micros, offset).await?;
                scan_ms.push(ms(scanned.elapsed()));
                let totals = answer.totals.unwrap_or_default();
                if totals.closed_count != found.closed {
                    notes.push(format!(
                        "{size}, {zone}: the report counts {} closed, the raw scan {}",
                        totals.closed_count, found.closed
                    ));
                }
                unique.0 = totals.unique_contacts_closed_count;
            }
            report.add_round(&report_ms);
            scan.add_round(&scan_ms);
        }
        figures.extend(report.figures(
            &format!("GetConversationMetrics 30 days by day by assignee, {zone}, {size} conv."),
            "raw scan (SQL)",
            &scan,
        ));
    }
    unique.1 = exact_unique_contacts(metrics_db, &ws, micros).await?;
    figures.push(Figure::against(
        Measure::new(
            format!("unique contacts closed (report), {size} conv."),
            unique.0 as f64,
            "contacts",
        ),
        Measure::new("exact count (SQL)", unique.1 as f64, "contacts"),
    ));

    let (mut dashboard, mut no_op) = (Latency::default(), Latency::default());
    for _ in 0..rounds {
        let (mut dashboard_ms, mut no_op_ms) = (Vec::new(), Vec::new());
        for _ in 0..calls {
            let asked = Instant::now();
            metrics
                .get_dashboard(workspace.request(metrics_pb::GetDashboardRequest {
                    time_zone: ZONE.0.into(),
                    min_positions: Vec::new(),
                }))
                .await
                .map_err(|s| format!("GetDashboard: {}", s.message()))?;
            dashboard_ms.push(ms(asked.elapsed()));
            let asked = Instant::now();
            health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map_err(|s| format!("health Check: {}", s.message()))?;
            no_op_ms.push(ms(asked.elapsed()));
        }
        dashboard.add_round(&dashboard_ms);
        no_op.add_round(&no_op_ms);
    }
    figures.extend(dashboard.figures(
        &format!("GetDashboard, {size} conv."),
        "no-op RPC (health Check)",
        &no_op,
    ));
    Ok((figures, notes))
}

/// ExportConversations of the range: the rows and how long they took.
pub async fn export(fleet: &Fleet, workspace: &Workspace) -> Result<(u64, Duration), String> {
    let mut metrics = MetricsServiceClient::new(fleet.channel("metrics").await?);
    let (start, end) = range();
    let started = Instant::now();
    let mut stream = metrics
        .export_conversations(workspace.request(metrics_pb::ExportConversationsRequest {
            start_time: Some(start.into()),
            end_time: Some(end.into()),
            filter: None,
            min_positions: Vec::new(),
        }))
        .await
        .map_err(|s| format!("ExportConversations: {}", s.message()))?
        .into_inner();
    let mut rows = 0;
    while stream
        .message()
        .await
        .map_err(|s| format!("ExportConversations: {}", s.message()))?
        .is_some()
    {
        rows += 1;
    }
    Ok((rows, started.elapsed()))
}
