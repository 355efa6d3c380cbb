//! Consumes the conversation service's event stream into the aggregates: each event applied once
//! (with the cursor, in one transaction), reconnecting with a growing delay while the conversation
//! service is away. It also runs rebuilds, between two events, so none is lost or doubled.

use std::collections::BTreeMap;
use std::time::Duration;

use charla_proto::charla::conversation::v1 as pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_runtime::ApiError;
use charla_runtime::applied::AppliedPositions;
use charla_runtime::auth::credential::AuthenticatedChannel;
use charla_runtime::consumer::{Assignment, Backoff, assignment};
use charla_runtime::lease::PartitionLeases;
use charla_runtime::service_metrics::{GaugeFamily, ServiceMetrics, clamp};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tracing::Instrument;

use crate::domain::{Automation, AutomationFacts, Change, Closure, Dimensions};
use crate::store::{MetricsStore, StreamEvent};
use futures_util::FutureExt as _;

/// How often a replica rebalances its partition leases (and so how fast it takes over the
/// partitions of a replica that died).
const REBALANCE_EVERY: Duration = Duration::from_secs(2);

/// Asks the consumer to recompute every aggregate from sequence zero; answers with how many
/// events were applied again once every event applied before the request is re-applied.
pub type RebuildRequest = oneshot::Sender<Result<u64, ApiError>>;

/// A handle to the running consumer.
#[derive(Debug, Clone)]
pub struct ConsumerHandle {
    rebuilds: mpsc::Sender<RebuildRequest>,
    applied: watch::Receiver<u64>,
    positions: AppliedPositions,
}

impl ConsumerHandle {
    /// Rebuilds the aggregates; see [`RebuildRequest`].
    pub async fn rebuild(&self) -> Result<u64, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.rebuilds
            .send(reply)
            .await
            .map_err(|_| ApiError::Unavailable("the metrics consumer is stopping".into()))?;
        answer
            .await
            .map_err(|_| ApiError::Unavailable("the metrics consumer stopped".into()))?
    }

    /// Changes each time events are applied (for live dashboards).
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }

    /// The positions this process's consumer has committed, published after each commit (for
    /// reads that wait on `min_positions`).
    pub fn positions(&self) -> watch::Receiver<charla_runtime::applied::Positions> {
        self.positions.subscribe()
    }
}

/// The health name that says whether this replica's numbers are current: SERVING while its
/// consumer is within the allowed lag, NOT_SERVING past it. The service's own names stay SERVING
/// while it catches up, so an import doesn't take every replica out of a load balancer.
pub const FRESHNESS: &str = "charla.metrics.v1.MetricsService.Freshness";

/// Reports the consumer's lag: each partition's as the `charla_consumer_lag_events` gauge, and
/// [`FRESHNESS`] NOT_SERVING while any partition is further behind than allowed.
#[derive(Clone)]
pub struct LagReporter {
    health: HealthReporter,
    max_lag: u64,
    gauge: GaugeFamily,
    lags: BTreeMap<u32, u64>,
}

impl LagReporter {
    /// Reports [`FRESHNESS`] NOT_SERVING whenever a partition is more than `max_lag` events behind.
    pub fn new(health: HealthReporter, max_lag: u64, metrics: &ServiceMetrics) -> Self {
        let gauge = metrics.gauges(
            "charla_consumer_lag_events",
            "Events of each conversation stream partition not yet applied by this replica",
        );
        Self {
            health,
            max_lag,
            gauge,
            lags: BTreeMap::new(),
        }
    }

    /// Forgets the partitions this replica no longer consumes (another replica took them): their
    /// lag is that replica's to report.
    async fn keep_only(&mut self, partitions: &[u32], behind_before: &mut bool) {
        let dropped: Vec<u32> = self
            .lags
            .keys()
            .copied()
            .filter(|partition| !partitions.contains(partition))
            .collect();
        for partition in dropped {
            self.lags.remove(&partition);
            self.gauge.remove(&lag_labels(partition));
        }
        self.report(behind_before).await;
    }

    async fn observe(&mut self, partition: u32, lag: u64, behind_before: &mut bool) {
        self.gauge
            .get_or_create(&lag_labels(partition))
            .set(clamp(lag));
        self.lags.insert(partition, lag);
        self.report(behind_before).await;
    }

    async fn report(&self, behind_before: &mut bool) {
        let worst = self.lags.values().copied().max().unwrap_or(0);
        let behind = falls_behind(worst, self.max_lag);
        if behind == *behind_before {
            return;
        }
        *behind_before = behind;
        if behind {
            tracing::warn!(
                lag = worst,
                "the metrics consumer fell behind the conversation stream"
            );
            self.health
                .set_service_status(FRESHNESS, ServingStatus::NotServing)
                .await;
        } else {
            tracing::info!("the metrics consumer caught up");
            self.health
                .set_service_status(FRESHNESS, ServingStatus::Serving)
                .await;
        }
    }
}

fn lag_labels(partition: u32) -> Vec<(String, String)> {
    vec![
        ("stream".to_owned(), "conversation".to_owned()),
        ("partition".to_owned(), partition.to_string()),
    ]
}

/// Whether a consumer `lag` events behind is too far behind to serve fresh numbers.
pub fn falls_behind(lag: u64, max_lag: u64) -> bool {
    lag > max_lag
}

/// Starts consuming from `conversations` until `shutdown`.
pub fn spawn(
    store: MetricsStore,
    conversations: ConversationServiceClient<AuthenticatedChannel>,
    lag: LagReporter,
    leases: PartitionLeases,
    shutdown: CancellationToken,
) -> ConsumerHandle {
    let (rebuilds, mut requests) = mpsc::channel(4);
    let (applied_sender, applied) = watch::channel(0);
    let positions = AppliedPositions::default();
    let published = positions.clone();
    tokio::spawn(async move {
        let mut consumer = Consumer {
            store,
            conversations,
            applied: applied_sender,
            positions: published,
            pending: None,
            lag,
            behind: false,
            leases,
        };
        let mut backoff = Backoff::default();
        loop {
            let mut connected = false;
            if let Err(error) = consumer.run(&mut requests, &shutdown, &mut connected).await {
                let retry_in = backoff.next_delay(connected);
                tracing::warn!(%error, ?retry_in, "conversation event stream interrupted");
            } else {
                return;
            }
            if !backoff.wait(connected, &shutdown).await {
                return;
            }
        }
    });
    ConsumerHandle {
        rebuilds,
        applied,
        positions,
    }
}

/// The most events applied in one transaction: enough to share a commit and the coarse rows
/// among many events while catching up, small enough to keep a transaction short and the memory
/// of its statistics small. Measured (`charla bench --rounds 1`, release) against 1,000, with
/// the coarse rows made one grain and dimension at a time: catching up on SQLite 7,105 / 7,598 ->
/// 8,440 / 8,510 events/s at 30,000 conversations and 5,653 -> 7,243 at 100,000 (rebuild 5,952
/// -> 7,798), on PostgreSQL 4,757 -> 7,356 at 30,000; the metrics service's peak RSS 50 -> 59 MiB
/// on SQLite (at both sizes) and 45.5 -> 54.6 on PostgreSQL (the memory goal is 64).
/// Raised to 3,000 once a batch's rows no longer carried empty statistics inline (the peak fell
/// back to 46 MiB on PostgreSQL and 51 on SQLite): `charla bench --rounds 1 --sizes 30000`,
/// alternating, catching up 9,428 / 9,213 -> 10,128 / 10,128 events/s on PostgreSQL and 13,149
/// -> 15,180 on SQLite, the peak 45.2 / 46.2 -> 53.8 / 52.9 and 50.9 -> 57.7 MiB. 5,000 gained
/// about as much again on PostgreSQL but peaked at 68.5 MiB.
const MAX_BATCH: usize = 3000;

/// The most trace links a batch's span carries (OpenTelemetry's default span link limit).
const MAX_LINKS: usize = 128;

/// Events taken from the stream to apply together.
#[derive(Default)]
struct ArrivedBatch {
    events: Vec<StreamEvent>,
    trace_parents: Vec<String>,
    /// Per partition: the last event's sequence and the partition's head when it was sent.
    last_by_partition: BTreeMap<u32, (u64, u64)>,
}

/// `first` and whatever else the stream has already received, up to [`MAX_BATCH`]: a live event
/// is applied at once, a backlog in large transactions.
async fn take_arrived(
    first: pb::StreamConversationEventsResponse,
    stream: &mut tonic::Streaming<pb::StreamConversationEventsResponse>,
) -> Result<ArrivedBatch, Failure> {
    let mut batch = ArrivedBatch::default();
    let mut next = Some(first);
    while let Some(message) = next.take() {
        let head = message.partition_head;
        let Some(event) = message.event else {
            return Err("the conversation event stream sent no event".into());
        };
        if !event.trace_parent.is_empty() {
            batch.trace_parents.push(event.trace_parent.clone());
        }
        batch
            .last_by_partition
            .insert(event.partition, (event.sequence, head));
        batch.events.push(StreamEvent {
            workspace: event.workspace_id.clone(),
            partition: event.partition,
            sequence: event.sequence,
            change: translate(event),
        });
        if batch.events.len() < MAX_BATCH {
            // `message()` is cancel-safe: a message not yet arrived stays for the next call.
            next = match stream.message().now_or_never() {
                Some(Ok(Some(message))) => Some(message),
                Some(Err(error)) => return Err(error.into()),
                Some(Ok(None)) | None => None,
            };
        }
    }
    Ok(batch)
}

/// A rebuild in progress: where the cursor stood when it was asked for.
struct PendingRebuild {
    target: BTreeMap<u32, u64>,
    reply: RebuildRequest,
}

struct Consumer {
    store: MetricsStore,
    conversations: ConversationServiceClient<AuthenticatedChannel>,
    applied: watch::Sender<u64>,
    positions: AppliedPositions,
    pending: Option<PendingRebuild>,
    lag: LagReporter,
    behind: bool,
    leases: PartitionLeases,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

impl Consumer {
    /// Reads from the stored cursor and applies events until shutdown (Ok) or an error. A rebuild
    /// request resets the aggregates and starts the stream again from zero.
    async fn run(
        &mut self,
        requests: &mut mpsc::Receiver<RebuildRequest>,
        shutdown: &CancellationToken,
        connected: &mut bool,
    ) -> Result<(), Failure> {
        let mut ticks = tokio::time::interval(REBALANCE_EVERY);
        'connect: loop {
            // The producer says how many partitions there are: nothing to configure, nothing to
            // get wrong.
            let info = self
                .conversations
                .clone()
                .get_conversation_event_stream_info(pb::GetConversationEventStreamInfoRequest {})
                .await?
                .into_inner();
            let leased =
                assignment(&mut self.leases, self.store.cursor(), info.partition_count).await?;
            let held = leased.as_ref().map_or(&[][..], |a| a.partitions.as_slice());
            self.lag.keep_only(held, &mut self.behind).await;
            let Some(Assignment { partitions, cursor }) = leased else {
                // Other replicas consume every partition: stand by, ready to take over.
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    Some(reply) = requests.recv() => self.start_rebuild(reply).await?,
                    _ = ticks.tick() => self.finish_rebuild_if_done().await?,
                }
                continue 'connect;
            };
            let request = pb::StreamConversationEventsRequest { cursor, partitions };
            let mut stream = self
                .conversations
                .clone()
                .stream_conversation_events(request)
                .await?
                .into_inner();
            *connected = true;
            self.finish_rebuild_if_done().await?;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    Some(reply) = requests.recv() => {
                        self.start_rebuild(reply).await?;
                        continue 'connect;
                    }
                    _ = ticks.tick() => {
                        if self.leases.rebalance().await? {
                            continue 'connect;
                        }
                        self.finish_rebuild_if_done().await?;
                    }
                    message = stream.message() => {
                        let Some(first) = message? else {
                            return Err("the conversation event stream ended".into());
                        };
                        let batch = take_arrived(first, &mut stream).await?;
                        self.apply(batch).await?;
                        self.finish_rebuild_if_done().await?;
                    }
                }
            }
        }
    }

    /// Applies a batch in one transaction, then publishes what it applied.
    async fn apply(&mut self, batch: ArrivedBatch) -> Result<(), Failure> {
        // A span of its own, linked to the calls that made the changes.
        let span = tracing::info_span!(
            target: "charla::consumer",
            "apply conversation events",
            otel.kind = "consumer",
            events = batch.events.len(),
        );
        for trace_parent in batch.trace_parents.iter().take(MAX_LINKS) {
            charla_runtime::telemetry::link_to_trace_parent(&span, trace_parent);
        }
        let applied = self
            .store
            .apply_batch(&batch.events)
            .instrument(span)
            .await?;
        for (partition, (sequence, head)) in &batch.last_by_partition {
            self.positions.committed(*partition, *sequence);
            self.lag
                .observe(*partition, head.saturating_sub(*sequence), &mut self.behind)
                .await;
        }
        if applied > 0 {
            self.applied.send_modify(|count| *count += applied as u64);
        }
        Ok(())
    }

    async fn start_rebuild(&mut self, reply: RebuildRequest) -> Result<(), Failure> {
        // A rebuild resets every partition but re-reads only the ones this replica leases, so
        // with other replicas consuming, their partitions would stay reset until their next event.
        let members = self.leases.members().await?;
        if members > 1 {
            let _answered = reply.send(Err(ApiError::precondition(
                "REBUILD_NEEDS_ONE_REPLICA",
                format!(
                    "{members} metrics replicas consume this database, and a rebuild re-reads only \
                     the partitions of the replica it reaches; scale the metrics service to one \
                     replica, rebuild, then scale it back"
                ),
            )));
            return Ok(());
        }
        if let Some(earlier) = self.pending.take() {
            let _gone = earlier.reply.send(Err(ApiError::precondition(
                "REBUILD_SUPERSEDED",
                "a newer rebuild replaced this one",
            )));
        }
        let target: BTreeMap<u32, u64> =
            self.store.cursor().positions().await?.into_iter().collect();
        // Waiting reads trust what was published: take it back before the stored positions go.
        self.positions.reset();
        self.store.reset_all().await?;
        self.applied.send_modify(|count| *count += 1);
        self.pending = Some(PendingRebuild { target, reply });
        Ok(())
    }

    async fn finish_rebuild_if_done(&mut self) -> Result<(), Failure> {
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        let now: BTreeMap<u32, u64> = self.store.cursor().positions().await?.into_iter().collect();
        let done = pending
            .target
            .iter()
            .all(|(partition, sequence)| now.get(partition).copied().unwrap_or(0) >= *sequence);
        if done && let Some(pending) = self.pending.take() {
            let _gone = pending.reply.send(Ok(pending.target.values().sum()));
        }
        Ok(())
    }
}

fn micros(timestamp: Option<prost_types::Timestamp>) -> i64 {
    timestamp
        .and_then(|t| std::time::SystemTime::try_from(t).ok())
        .map(charla_runtime::clock::to_micros)
        .unwrap_or_default()
}

fn duration(value: Option<prost_types::Duration>) -> Option<Duration> {
    value.and_then(|d| Duration::try_from(d).ok())
}

fn channel_names(channel: Option<&pb::Channel>) -> (String, String) {
    let channel = channel.cloned().unwrap_or_default();
    let channel_type =
        charla_proto::charla::contact::v1::ChannelType::try_from(channel.channel_type)
            .unwrap_or_default()
            .as_str_name()
            .to_owned();
    (channel_type, channel.channel_id)
}

fn open_source(value: i32) -> String {
    pb::OpenSource::try_from(value)
        .unwrap_or_default()
        .as_str_name()
        .to_owned()
}

/// What an event changes in the metrics.
pub fn translate(event: pb::ConversationEvent) -> Change {
    use pb::conversation_event::Payload;
    let conversation = event.conversation_id;
    let event_time = micros(event.occurred_at);
    match event.payload {
        Some(Payload::Opened(opened)) => {
            let (channel_type, channel_id) = channel_names(opened.channel.as_ref());
            Change::Opened {
                conversation,
                contact: event.contact_id,
                dimensions: Dimensions {
                    channel_type,
                    channel_id,
                    opened_by: open_source(opened.opened_by),
                    ..Dimensions::default()
                },
                opened_at: micros(opened.opened_at),
                imported: event.imported,
            }
        }
        Some(Payload::Assigned(assigned)) => Change::Assigned {
            conversation,
            assignee: assigned.assignee_user_id,
            team: assigned.team_id,
        },
        Some(Payload::Unassigned(unassigned)) => Change::Assigned {
            conversation,
            assignee: unassigned.assignee_user_id,
            team: unassigned.team_id,
        },
        Some(Payload::Closed(closed)) => {
            let (channel_type, channel_id) = channel_names(closed.channel.as_ref());
            let record = closed.encode_to_vec();
            let closed_by = pb::CloseSource::try_from(closed.closed_by)
                .unwrap_or_default()
                .as_str_name()
                .to_owned();
            let opened_at = micros(closed.opened_at);
            let automation = Automation::of(
                AutomationFacts {
                    first_automated_message: closed.first_automated_message_at.map(|at| {
                        Duration::from_micros(
                            u64::try_from(micros(Some(at)) - opened_at).unwrap_or_default(),
                        )
                    }),
                    first_human_message: duration(closed.first_response_time),
                    first_assignment: duration(closed.time_to_first_assignment),
                },
                &closed_by,
            );
            Change::Closed {
                conversation,
                contact: event.contact_id,
                dimensions: Dimensions {
                    assignee: closed.assignee_user_id,
                    team: closed.team_id,
                    channel_type,
                    channel_id,
                    opened_by: open_source(closed.opened_by),
                    closed_by,
                    category: closed.closing_category,
                    automated_by: match automation {
                        Automation::NotAutomated => String::new(),
                        _ => closed.first_automated_author_id,
                    },
                },
                opened_at,
                closed_at: micros(closed.closed_at),
                closure: Closure {
                    resolution: duration(closed.resolution_time).unwrap_or_default(),
                    first_response: duration(closed.first_response_time),
                    response_times: closed
                        .response_times
                        .into_iter()
                        .filter_map(|d| Duration::try_from(d).ok())
                        .collect(),
                    time_to_first_assignment: duration(closed.time_to_first_assignment),
                    assignment_count: closed.assignment_count.max(0) as u32,
                    automation,
                    response_started_at: closed
                        .response_started_at
                        .iter()
                        .map(|at| micros(Some(*at)))
                        .collect(),
                },
                imported: event.imported,
                record,
            }
        }
        Some(Payload::MessageRecorded(message)) if message.first_response => {
            Change::FirstResponse {
                conversation,
                at: event_time,
            }
        }
        Some(Payload::MessageRecorded(_)) | None => Change::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_server::Health;
    use tonic_health::server::HealthService;

    async fn status(health: &HealthReporter, name: &str) -> ServingStatus {
        let answer = HealthService::from_health_reporter(health.clone())
            .check(tonic::Request::new(HealthCheckRequest {
                service: name.into(),
            }))
            .await
            .expect("a known name")
            .into_inner();
        match answer.status {
            1 => ServingStatus::Serving,
            2 => ServingStatus::NotServing,
            other => panic!("status {other}"),
        }
    }

    #[tokio::test]
    async fn freshness_goes_not_serving_while_any_partition_lags_and_the_service_stays_serving() {
        let health = HealthReporter::new();
        let service = "charla.metrics.v1.MetricsService";
        health
            .set_service_status(service, ServingStatus::Serving)
            .await;
        health
            .set_service_status(FRESHNESS, ServingStatus::Serving)
            .await;
        let metrics = ServiceMetrics::new();
        let mut lag = LagReporter::new(health.clone(), 10, &metrics);
        let mut behind = false;

        lag.observe(0, 25, &mut behind).await;
        assert_eq!(status(&health, FRESHNESS).await, ServingStatus::NotServing);
        assert_eq!(status(&health, service).await, ServingStatus::Serving);
        assert_eq!(status(&health, "").await, ServingStatus::Serving);
        assert!(
            metrics
                .render()
                .await
                .contains("charla_consumer_lag_events{stream=\"conversation\",partition=\"0\"} 25")
        );

        // Another partition keeping up doesn't hide the one that lags.
        lag.observe(1, 0, &mut behind).await;
        assert_eq!(status(&health, FRESHNESS).await, ServingStatus::NotServing);

        lag.observe(0, 10, &mut behind).await;
        assert_eq!(status(&health, FRESHNESS).await, ServingStatus::Serving);
        assert_eq!(status(&health, service).await, ServingStatus::Serving);

        // A partition handed to another replica is that replica's to report.
        lag.observe(1, 500, &mut behind).await;
        assert_eq!(status(&health, FRESHNESS).await, ServingStatus::NotServing);
        lag.keep_only(&[0], &mut behind).await;
        assert_eq!(status(&health, FRESHNESS).await, ServingStatus::Serving);
        let text = metrics.render().await;
        assert!(!text.contains("partition=\"1\""), "{text}");
    }

    #[test]
    fn a_consumer_falls_behind_past_the_allowed_lag() {
        assert!(!falls_behind(0, 100));
        assert!(!falls_behind(100, 100));
        assert!(falls_behind(101, 100));
    }
}
