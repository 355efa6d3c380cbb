//! `charla import conversations FILE`: streams an NDJSON file of past conversations into a running
//! conversation service, with a progress bar and a summary of what landed and what was refused.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use tonic::metadata::{Ascii, MetadataValue};

use crate::credentials::ClientAuth;
use indicatif::{ProgressBar, ProgressStyle};
use tonic::transport::Channel;

use crate::history_json::parse_line;
use crate::metrics_wait::{MetricsWait, Written};

/// What to import.
#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// Past conversations, one JSON object per line (a HistoricalConversation in the proto JSON
    /// mapping: externalId, contactId, channel, openedAt, openedBy, messages, assignments,
    /// closedAt, closedBy, closingCategory...). Ends once the metrics service reflects the
    /// import. Exit status: 0 when every line was imported (or was already), 2 when some were
    /// refused, 3 when the metrics service did not confirm it reflects the import, 1 on failure.
    Conversations(ImportConversations),
}

/// Where the history goes.
#[derive(Debug, clap::Args)]
pub struct ImportConversations {
    /// The NDJSON file.
    file: PathBuf,

    /// The workspace to import into (a UUID).
    #[arg(long, env = "CHARLA_WORKSPACE")]
    workspace: uuid::Uuid,

    #[command(flatten)]
    auth: ClientAuth,

    /// URL of the conversation service.
    #[arg(
        long,
        env = "CHARLA_CONVERSATION_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    conversation_url: String,

    /// Conversations sent per import call (each call answers with one result per item; a call
    /// that nears the server's request timeout, 30 s by default, answers early and the rest of
    /// the batch goes again in a new call).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=50_000))]
    batch: u32,

    // After importing, wait until the metrics service's reports reflect the import.
    #[command(flatten)]
    metrics: MetricsWait,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportSummary {
    pub imported: u64,
    pub unchanged: u64,
    /// (item label, reason), in order.
    pub refused: Vec<(String, String)>,
    /// Where the imported (and unchanged) conversations' events are: what the metrics must reflect.
    pub written: Written,
}

impl ImportSummary {
    /// Prints the summary for a person.
    pub fn print(&self, seconds: f64) {
        let total = self.imported + self.unchanged + self.refused.len() as u64;
        println!(
            "{total} conversations in {seconds:.1} s ({:.0}/s): {} imported, {} unchanged, {} refused",
            total as f64 / seconds.max(1e-9),
            self.imported,
            self.unchanged,
            self.refused.len()
        );
        for (label, reason) in self.refused.iter().take(20) {
            println!("  refused {label}: {reason}");
        }
        if self.refused.len() > 20 {
            println!("  ... and {} more", self.refused.len() - 20);
        }
    }
}

/// A client of the conversation service at `url`, allowed large import answers.
pub async fn conversation_client(url: &str) -> Result<ConversationServiceClient<Channel>, String> {
    let client = ConversationServiceClient::connect(url.to_owned())
        .await
        .map_err(|e| format!("can't reach the conversation service at {url}: {e}"))?;
    Ok(client.max_decoding_message_size(256 * 1024 * 1024))
}

/// How many answers in a row may stop early without importing anything before `send_batch`
/// gives up: the service keeps shutting down, or each item takes longer than the call may.
const MAX_IDLE_ANSWERS: u32 = 5;

/// Sends `items` (each with a label for the summary) in an import call and tallies the results.
/// When the service answers early (it is shutting down, or the call's deadline is near), the
/// items after its last result were not written: they go again in a new call, which a restarted
/// or another replica takes; items written before are idempotent by external id anyway.
pub async fn send_batch(
    client: &mut ConversationServiceClient<Channel>,
    bearer: &MetadataValue<Ascii>,
    items: Vec<(String, pb::HistoricalConversation)>,
    summary: &mut ImportSummary,
    progress: &ProgressBar,
) -> Result<(), String> {
    let mut rest = items;
    let mut idle_answers = 0;
    while !rest.is_empty() {
        let response = import_call(client, bearer, &rest).await?;
        let handled = response.results.len().min(rest.len());
        tally(&rest, response.results, summary, progress);
        if !response.stopped_early {
            return Ok(());
        }
        rest.drain(..handled);
        if handled > 0 {
            idle_answers = 0;
            continue;
        }
        idle_answers += 1;
        if idle_answers == MAX_IDLE_ANSWERS {
            return Err(format!(
                "the conversation service stopped {MAX_IDLE_ANSWERS} calls in a row before \
                 importing anything; {} conversations not sent",
                rest.len()
            ));
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Ok(())
}

/// One ImportConversations call with `items`.
async fn import_call(
    client: &mut ConversationServiceClient<Channel>,
    bearer: &MetadataValue<Ascii>,
    items: &[(String, pb::HistoricalConversation)],
) -> Result<pb::ImportConversationsResponse, String> {
    let stream = tokio_stream::iter(
        items
            .iter()
            .map(|(_, conversation)| pb::ImportConversationsRequest {
                conversation: Some(conversation.clone()),
            })
            .collect::<Vec<_>>(),
    );
    let mut request = tonic::Request::new(stream);
    request
        .metadata_mut()
        .insert("authorization", bearer.clone());
    Ok(client
        .import_conversations(request)
        .await
        .map_err(|status| format!("the import call failed: {}", status.message()))?
        .into_inner())
}

/// Adds a call's results (one per item of `items`, from the first) to the summary.
fn tally(
    items: &[(String, pb::HistoricalConversation)],
    results: Vec<pb::ImportConversationResult>,
    summary: &mut ImportSummary,
    progress: &ProgressBar,
) {
    for result in results {
        summary.written.note(result.event_position.as_ref());
        match pb::ImportOutcome::try_from(result.outcome) {
            Ok(pb::ImportOutcome::Imported) => summary.imported += 1,
            Ok(pb::ImportOutcome::Unchanged) => summary.unchanged += 1,
            _ => {
                let label = items
                    .get(result.item as usize)
                    .map(|(label, _)| label.clone())
                    .unwrap_or_default();
                let reason = result.error.map(|e| e.message).unwrap_or_default();
                summary.refused.push((label, reason));
            }
        }
        progress.inc(1);
    }
}

fn progress_bar(length: u64) -> ProgressBar {
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} conversations ({per_sec}, {eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `charla import`.
pub async fn run(command: ImportCommand) -> ExitCode {
    let ImportCommand::Conversations(args) = command;
    let summary = match import_file(&args).await {
        Ok(summary) => summary,
        Err(error) => {
            eprintln!("charla import: {error}");
            return ExitCode::FAILURE;
        }
    };
    let waited = match args.auth.bearer(args.workspace) {
        Ok(bearer) => args.metrics.wait(&bearer, &summary.written).await,
        Err(error) => Err(error),
    };
    if let Err(error) = waited {
        eprintln!("charla import: the import is complete, but {error}");
        return ExitCode::from(3);
    }
    if !args.metrics.no_metrics_wait {
        println!("The metrics reflect the import.");
    }
    if summary.refused.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

async fn import_file(args: &ImportConversations) -> Result<ImportSummary, String> {
    let open = || {
        std::fs::File::open(&args.file)
            .map(std::io::BufReader::new)
            .map_err(|e| format!("can't read {}: {e}", args.file.display()))
    };
    let lines = open()?
        .lines()
        .filter(|l| l.as_ref().is_ok_and(|l| !l.trim().is_empty()))
        .count();
    let bearer = args.auth.bearer(args.workspace)?;
    let mut client = conversation_client(&args.conversation_url).await?;
    let progress = progress_bar(lines as u64);
    let started = Instant::now();
    let mut summary = ImportSummary::default();
    let mut batch = Vec::new();
    for (number, line) in open()?.lines().enumerate() {
        let line = line.map_err(|e| format!("can't read {}: {e}", args.file.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let label = format!("line {}", number + 1);
        match parse_line(&line) {
            Ok(item) => {
                let label = format!("{label} ({})", item.external_id);
                batch.push((label, item));
            }
            Err(reason) => {
                summary.refused.push((label, reason));
                progress.inc(1);
            }
        }
        if batch.len() >= args.batch as usize {
            send_batch(
                &mut client,
                &bearer,
                std::mem::take(&mut batch),
                &mut summary,
                &progress,
            )
            .await?;
        }
    }
    if !batch.is_empty() {
        send_batch(&mut client, &bearer, batch, &mut summary, &progress).await?;
    }
    progress.finish_and_clear();
    summary.print(started.elapsed().as_secs_f64());
    Ok(summary)
}
