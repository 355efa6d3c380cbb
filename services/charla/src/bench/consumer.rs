//! Section 4, the metrics consumer: how fast it applies a large backlog, and how fast
//! RebuildAggregates re-applies the whole stream. The backlog is bulk-appended to the
//! conversation event log while the metrics service is stopped; the clock starts when it is
//! started again and stops when a read waiting for the backlog's last position answers. The
//! floor is reading the same events through StreamConversationEvents (what any consumer must do
//! before applying anything), in the same run.

use std::collections::BTreeMap;
use std::time::Instant;

use charla_proto::charla::contact::v1::PartitionCursor;
use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use charla_runtime::db::Database;

use super::backlog::{self, Appended, Target};
use super::fleet::{Fleet, authed};
use super::people::{self, Workspace, inbound};
use crate::metrics_wait::{MetricsWait, Written};

/// A loaded data set: its workspace and what the consumer did with it.
#[derive(Debug)]
pub struct Loaded {
    pub workspace: Workspace,
    pub conversations: usize,
    pub events: u64,
    /// Events per second: bulk append, consumption, and the stream read floor.
    pub append_rate: f64,
    pub consume_rate: f64,
    pub read_rate: f64,
}

/// The partition `workspace`'s events go to, learnt from a real write (which also makes sure
/// the partition's head row exists).
async fn partition_of(fleet: &Fleet, workspace: &Workspace) -> Result<u32, String> {
    let contact = people::contacts(fleet.channel("contact").await?, workspace, "seed", 1).await?;
    let mut conversations = ConversationServiceClient::new(fleet.channel("conversation").await?);
    let answer = conversations
        .record_message(workspace.request(inbound(&contact[0], "seed".into())))
        .await
        .map_err(|s| format!("RecordMessage: {}", s.message()))?
        .into_inner();
    answer
        .event_position
        .map(|p| p.partition)
        .ok_or_else(|| "RecordMessage answered without an event position".into())
}

/// Waits until the metrics service has applied `partition` up to `sequence`.
async fn wait_applied(
    fleet: &Fleet,
    workspace: &Workspace,
    partition: u32,
    sequence: u64,
) -> Result<(), String> {
    let mut written = Written::default();
    written.note(Some(&PartitionCursor {
        partition,
        sequence,
    }));
    let wait = MetricsWait {
        metrics_url: fleet.url("metrics"),
        metrics_wait_secs: 6 * 3_600,
        no_metrics_wait: false,
    };
    wait.wait(&workspace.bearer, &written).await
}

/// Reads `partitions` (each from its cursor, exclusive, to its head, inclusive) through the
/// conversation service's stream and returns how many events came.
async fn read_stream(fleet: &Fleet, ranges: &BTreeMap<u32, (u64, u64)>) -> Result<u64, String> {
    let mut client = ConversationServiceClient::new(fleet.channel("conversation").await?)
        .max_decoding_message_size(64 * 1024 * 1024);
    let request = pb::StreamConversationEventsRequest {
        cursor: ranges
            .iter()
            .map(|(partition, (from, _))| PartitionCursor {
                partition: *partition,
                sequence: *from,
            })
            .collect(),
        partitions: ranges.keys().copied().collect(),
    };
    let mut stream = client
        .stream_conversation_events(authed(&fleet.service()?, request))
        .await
        .map_err(|s| format!("StreamConversationEvents: {}", s.message()))?
        .into_inner();
    let mut left: BTreeMap<u32, u64> = ranges
        .iter()
        .filter(|(_, (from, to))| to > from)
        .map(|(partition, (_, to))| (*partition, *to))
        .collect();
    let mut read = 0;
    while !left.is_empty() {
        let Some(message) = stream
            .message()
            .await
            .map_err(|s| format!("StreamConversationEvents: {}", s.message()))?
        else {
            return Err("the event stream ended early".into());
        };
        let event = message.event.unwrap_or_default();
        read += 1;
        if left
            .get(&event.partition)
            .is_some_and(|to| event.sequence >= *to)
        {
            left.remove(&event.partition);
        }
    }
    Ok(read)
}

/// Loads `conversations` synthetic conversations into a new workspace and lets the metrics
/// service consume them from a cold start.
pub async fn load(
    fleet: &mut Fleet,
    db: &Database,
    conversations: usize,
    seed: u64,
) -> Result<Loaded, String> {
    let workspace = Workspace::new(fleet)?;
    let partition = partition_of(fleet, &workspace).await?;
    fleet.kill("metrics");
    let ws = workspace.id.to_string();
    let started = Instant::now();
    let mut reported = 0;
    let Appended { events, head } = backlog::append(
        db,
        Target::EventLog,
        &ws,
        partition,
        conversations,
        seed,
        |done| {
            if done >= reported + 100_000 {
                reported = done;
                println!("consumer: appended {done} of {conversations} conversations...");
            }
        },
    )
    .await?;
    let append_rate = events as f64 / started.elapsed().as_secs_f64();

    println!("consumer: metrics catching up on {events} events...");
    let started = Instant::now();
    fleet.restart("metrics").await?;
    wait_applied(fleet, &workspace, partition, head).await?;
    let consume_rate = events as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let range = BTreeMap::from([(partition, (head - events, head))]);
    let read = read_stream(fleet, &range).await?;
    let read_rate = read as f64 / started.elapsed().as_secs_f64();
    Ok(Loaded {
        workspace,
        conversations,
        events,
        append_rate,
        consume_rate,
        read_rate,
    })
}

/// RebuildAggregates: events re-applied per second, and the stream read of every partition from
/// its start (the same events) per second.
pub async fn rebuild(fleet: &Fleet) -> Result<(f64, f64), String> {
    let mut metrics = MetricsServiceClient::new(fleet.channel("metrics").await?);
    let started = Instant::now();
    let mut request = authed(&fleet.service()?, metrics_pb::RebuildAggregatesRequest {});
    request.set_timeout(std::time::Duration::from_secs(6 * 3_600));
    let answer = metrics
        .rebuild_aggregates(request)
        .await
        .map_err(|s| format!("RebuildAggregates: {}", s.message()))?
        .into_inner();
    let rebuild_rate = answer.events_applied as f64 / started.elapsed().as_secs_f64();
    let ranges: BTreeMap<u32, (u64, u64)> = answer
        .cursor
        .iter()
        .map(|c| (c.partition, (0, c.sequence)))
        .collect();
    let started = Instant::now();
    let read = read_stream(fleet, &ranges).await?;
    Ok((rebuild_rate, read as f64 / started.elapsed().as_secs_f64()))
}
