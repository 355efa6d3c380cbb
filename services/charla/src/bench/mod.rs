//! `charla bench`: starts the three services as child processes on SQLite or PostgreSQL, measures
//! them through their public gRPC APIs, and prints each figure beside its floor measured in the
//! same run (a table, and JSON with `--json`). Throughputs are medians over rounds; latencies are
//! each round's p50 and p99, then the median over rounds. Nothing here asserts a speed: the
//! figures are for people to read and compare.

mod backlog;
mod consumer;
mod drive;
mod figures;
mod fleet;
mod import_e2e;
mod ingest;
mod lag;
mod people;
mod reports;
mod write_floor;

use std::path::PathBuf;
use std::process::ExitCode;

use charla_runtime::db::Database;

use figures::{Figure, Measure, Report, Section};
use fleet::{Fleet, SERVICES, Storage};

/// What to measure, and how much.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Run on PostgreSQL at this URL (its databases `charla_bench_*` are created for the run and
    /// dropped after); SQLite files in a temporary folder when not given.
    #[arg(long)]
    postgres_url: Option<String>,

    /// Rounds of each measurement; figures are medians over them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,

    /// Data set sizes (conversations) for the consumer and report sections, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    sizes: Vec<usize>,

    /// Calls per ingest measurement (for each concurrency and round).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    ops: u64,

    /// Writes per round in the event lag section.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    lag_samples: u64,

    /// Conversations per round in the import section.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    import: u64,

    /// Calls per round of each report measurement.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    report_calls: u64,

    /// Tiny sizes, for a smoke test in CI (overrides --sizes, --ops, --lag-samples, --import and
    /// --report-calls; figures of a smoke run mean nothing).
    #[arg(long)]
    smoke: bool,

    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// The amounts a run uses.
#[derive(Debug, Clone)]
struct Plan {
    rounds: u32,
    sizes: Vec<usize>,
    ops: usize,
    lag_samples: usize,
    import: usize,
    report_calls: usize,
}

impl Plan {
    fn of(args: &BenchArgs) -> Result<Self, String> {
        if args.smoke {
            return Ok(Self {
                rounds: args.rounds,
                sizes: vec![300],
                ops: 32,
                lag_samples: 10,
                import: 40,
                report_calls: 3,
            });
        }
        if args.sizes.is_empty() || args.sizes.contains(&0) {
            return Err("--sizes: each size must be at least 1".into());
        }
        Ok(Self {
            rounds: args.rounds,
            sizes: args.sizes.clone(),
            ops: args.ops as usize,
            lag_samples: args.lag_samples as usize,
            import: args.import as usize,
            report_calls: args.report_calls as usize,
        })
    }
}

/// A pool on the conversation service's database, as the service opens it (its migrations are
/// already applied, so connecting changes nothing).
async fn conversation_database(fleet: &Fleet) -> Result<Database, String> {
    let url = fleet.database_url("conversation")?;
    Database::connect(&url, &charla_conversation::store::MIGRATIONS)
        .await
        .map_err(|e| format!("can't open the conversation database: {e}"))
}

async fn metrics_database(fleet: &Fleet) -> Result<Database, String> {
    let url = fleet.database_url("metrics")?;
    Database::connect(&url, &charla_metrics::store::MIGRATIONS)
        .await
        .map_err(|e| format!("can't open the metrics database: {e}"))
}

/// Runs `charla bench`.
pub async fn run(args: BenchArgs) -> ExitCode {
    let plan = match Plan::of(&args) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!("charla bench: {error}");
            return ExitCode::from(2);
        }
    };
    let storage = match args.postgres_url.clone() {
        Some(admin_url) => Storage::Postgres { admin_url },
        None => Storage::Sqlite,
    };
    let mut fleet = match Fleet::start(storage).await {
        Ok(fleet) => fleet,
        Err(error) => {
            eprintln!("charla bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C still drops the run's databases and folder.
    let measured = tokio::select! {
        measured = measure(&mut fleet, &plan) => measured,
        _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
    };
    fleet.stop().await;
    let report = match measured {
        Ok(report) => report,
        Err(error) => {
            eprintln!("charla bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", report.to_table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default();
        if let Err(error) = std::fs::write(path, text + "\n") {
            eprintln!("charla bench: can't write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

async fn measure(fleet: &mut Fleet, plan: &Plan) -> Result<Report, String> {
    let idle: Vec<f64> = SERVICES
        .iter()
        .map(|service| fleet.rss_mib(service))
        .collect::<Result<_, _>>()?;
    let conversation_db = conversation_database(fleet).await?;
    let floor = write_floor::WriteFloor::create(conversation_db.clone()).await?;
    let mut sections = Vec::new();

    sections.push(ingest::run(fleet, &floor, plan.rounds, plan.ops).await?);
    println!("event lag...");
    sections.push(lag::run(fleet, plan.rounds, plan.lag_samples).await?);
    sections.push(import_e2e::run(fleet, plan.rounds, plan.import).await?);

    let mut consumer = Section::new("consumer", "4. Metrics consumer: events applied per second");
    let mut reports = Section::new(
        "reports",
        "5. Reports over 30 days (last 30 of 35 days of data)",
    );
    let mut largest = None;
    for (index, size) in plan.sizes.iter().copied().enumerate() {
        println!("consumer: loading {size} conversations...");
        let loaded = consumer::load(fleet, &conversation_db, size, 1 + index as u64).await?;
        consumer.figures.push(Figure::against(
            Measure::new(
                format!("catching up on {} events ({size} conv.)", loaded.events),
                loaded.consume_rate,
                "/s",
            ),
            Measure::new("reading them from the stream alone", loaded.read_rate, "/s"),
        ));
        consumer.notes.push(format!(
            "{size} conversations: their {} events bulk-appended at {:.0}/s",
            loaded.events, loaded.append_rate
        ));
        println!("reports: {size} conversations...");
        let metrics_db = metrics_database(fleet).await?;
        let (figures, notes) = reports::run(
            fleet,
            &metrics_db,
            &loaded.workspace,
            size,
            plan.rounds,
            plan.report_calls,
        )
        .await?;
        metrics_db.close().await;
        reports.figures.extend(figures);
        reports.notes.extend(notes);
        largest = Some(loaded);
    }
    println!("consumer: RebuildAggregates...");
    let (rebuild_rate, read_rate) = consumer::rebuild(fleet).await?;
    consumer.figures.push(Figure::against(
        Measure::new(
            "RebuildAggregates (every event of the run)",
            rebuild_rate,
            "/s",
        ),
        Measure::new("reading them from the stream alone", read_rate, "/s"),
    ));
    consumer.notes.push(
        "one round each: the clock runs from the metrics service's start (with the backlog \
         waiting) until a read waiting for the backlog's last position answers"
            .into(),
    );
    sections.push(consumer);
    sections.push(reports);

    let largest = largest.ok_or("no data set was loaded")?;
    let mut memory = Section::new("memory", "6. Memory: RSS after the reports and an export");
    let (rows, took) = reports::export(fleet, &largest.workspace).await?;
    memory.figures.push(Figure::alone(Measure::new(
        format!(
            "ExportConversations of 30 days ({size} conv.): {rows} rows",
            size = largest.conversations
        ),
        rows as f64 / took.as_secs_f64().max(1e-9),
        "rows/s",
    )));
    for (service, idle) in SERVICES.iter().zip(idle.iter().copied()) {
        memory.figures.push(Figure::against(
            Measure::new(
                format!("{service} service RSS"),
                fleet.rss_mib(service)?,
                "MiB",
            ),
            Measure::new("idle after start", idle, "MiB"),
        ));
    }
    for (service, idle) in SERVICES.iter().zip(idle.iter().copied()) {
        memory.figures.push(Figure::against(
            Measure::new(
                format!("{service} service peak RSS"),
                fleet.peak_rss_mib(service)?,
                "MiB",
            ),
            Measure::new("idle after start", idle, "MiB"),
        ));
    }
    memory.notes.push(
        "the metrics service was restarted before each data set was consumed; its floor is its \
         first start, and its peak covers the last data set (catching up, RebuildAggregates, \
         the reports and the export)"
            .into(),
    );
    sections.push(memory);
    conversation_db.close().await;
    Ok(Report {
        backend: fleet.backend(),
        rounds: plan.rounds,
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        sections,
    })
}
