//! `charla export --format csv`: the conversations closed in a time range, as the metrics
//! service's ExportConversationsCsv streams them, written to stdout or a file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;

use crate::credentials::ClientAuth;

/// What to export, and where.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The workspace to export (a UUID).
    #[arg(long, env = "CHARLA_WORKSPACE")]
    workspace: uuid::Uuid,

    /// The start of the range of closing times, included: RFC 3339, such as
    /// `2026-05-01T00:00:00Z`.
    #[arg(long)]
    from: jiff::Timestamp,

    /// The end of the range of closing times, excluded: RFC 3339.
    #[arg(long)]
    to: jiff::Timestamp,

    /// The file format (the metrics service's ExportConversationsCsv format).
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,

    /// The file to write; standard output when absent. Removed again if the export fails.
    #[arg(long, short)]
    output: Option<PathBuf>,

    #[command(flatten)]
    auth: ClientAuth,

    /// URL of the metrics service.
    #[arg(
        long,
        env = "CHARLA_METRICS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    metrics_url: String,
}

/// The formats `charla export` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// RFC 4180 CSV with a header row (see ExportConversationsCsvResponse in metrics.proto).
    Csv,
}

/// Runs `charla export`.
pub async fn run(args: ExportArgs) -> ExitCode {
    let result = match &args.output {
        Some(path) => {
            let written = match std::fs::File::create(path) {
                Ok(file) => export(&args, std::io::BufWriter::new(file)).await,
                Err(e) => Err(format!("can't create {}: {e}", path.display())),
            };
            if written.is_err() {
                // A partial file would pass for a complete export.
                let _gone = std::fs::remove_file(path);
            }
            written
        }
        None => export(&args, std::io::stdout().lock()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("charla export: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Streams the export into `out`, chunk by chunk, so no range is too large for memory.
async fn export(args: &ExportArgs, mut out: impl Write) -> Result<(), String> {
    let Format::Csv = args.format;
    let bearer = args.auth.bearer(args.workspace)?;
    let url = &args.metrics_url;
    let mut client = MetricsServiceClient::connect(url.clone())
        .await
        .map_err(|e| format!("can't reach the metrics service at {url}: {e}"))?;
    let mut request = tonic::Request::new(metrics_pb::ExportConversationsCsvRequest {
        start_time: Some(timestamp(args.from)),
        end_time: Some(timestamp(args.to)),
        ..Default::default()
    });
    request.metadata_mut().insert("authorization", bearer);
    let failed = |status: tonic::Status| format!("ExportConversationsCsv: {}", status.message());
    let mut stream = client
        .export_conversations_csv(request)
        .await
        .map_err(failed)?
        .into_inner();
    let write_failed = |e: std::io::Error| format!("can't write the export: {e}");
    while let Some(message) = stream.message().await.map_err(failed)? {
        out.write_all(&message.chunk).map_err(write_failed)?;
    }
    out.flush().map_err(write_failed)
}

fn timestamp(time: jiff::Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.as_second(),
        nanos: time.subsec_nanosecond(),
    }
}
