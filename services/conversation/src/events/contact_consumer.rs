//! Consumes the contact service's event stream: a ContactsMerged event closes the secondary
//! contact's open conversation with CONTACT_MERGE. The cursor lives in this service's database
//! and advances in the same transaction as the close, so each event takes effect once, across
//! restarts and redeliveries. Replicas share the stream's partitions through leases.

use std::time::Duration;

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::applied::AppliedPositions;
use charla_runtime::consumer::{Assignment, Backoff, ConsumerCursor, assignment};
use charla_runtime::lease::PartitionLeases;
use charla_runtime::workspace::WorkspaceId;
use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::contacts::ContactDirectory;
use crate::domain::ContactId;
use crate::store::ConversationStore;

/// This consumer's name in `consumer_cursors` and in its leases.
pub const CONSUMER: &str = "contact-events";

/// How often a replica rebalances its partition leases.
const REBALANCE_EVERY: Duration = Duration::from_secs(2);

/// The most events that concern no conversation passed over in one transaction.
const MAX_PASSED_OVER: usize = 1000;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What the consumer works with.
pub struct ContactConsumer {
    pub store: ConversationStore,
    pub cursor: ConsumerCursor,
    pub leases: PartitionLeases,
    pub contacts: ContactDirectory,
    /// Told each position once applied, for reads that wait on it (`min_contact_positions`).
    pub applied: AppliedPositions,
}

/// Runs the consumer until `shutdown`, reconnecting with a growing delay while the contact
/// service is away (back to the shortest once a connection worked).
pub fn spawn(mut consumer: ContactConsumer, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            let mut connected = false;
            if let Err(error) = consumer.consume(&shutdown, &mut connected).await {
                let retry_in = backoff.next_delay(connected);
                tracing::warn!(%error, ?retry_in, "contact event stream interrupted");
            } else {
                return;
            }
            if !backoff.wait(connected, &shutdown).await {
                return;
            }
        }
    });
}

impl ContactConsumer {
    /// Reads the partitions this replica leases, from the stored cursor, and applies events until
    /// shutdown (Ok) or an error; a change of leases reconnects.
    async fn consume(
        &mut self,
        shutdown: &CancellationToken,
        connected: &mut bool,
    ) -> Result<(), Failure> {
        let mut ticks = tokio::time::interval(REBALANCE_EVERY);
        'connect: loop {
            // The producer says how many partitions there are: nothing to configure.
            let info = self
                .contacts
                .client()
                .get_contact_event_stream_info(pb::GetContactEventStreamInfoRequest {})
                .await?
                .into_inner();
            let leased = assignment(&mut self.leases, &self.cursor, info.partition_count).await?;
            let Some(Assignment { partitions, cursor }) = leased else {
                // Other replicas read every partition: stand by, ready to take over.
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = ticks.tick() => {}
                }
                continue 'connect;
            };
            let request = pb::StreamContactEventsRequest { cursor, partitions };
            let mut stream = self
                .contacts
                .client()
                .stream_contact_events(request)
                .await?
                .into_inner();
            *connected = true;
            // A merge that ended a run of events passed over, to apply next.
            let mut pending: Option<pb::ContactEvent> = None;
            loop {
                let event = match pending.take() {
                    Some(_) if shutdown.is_cancelled() => return Ok(()),
                    Some(event) => event,
                    None => {
                        let message = tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = ticks.tick() => {
                                if self.leases.rebalance().await? {
                                    continue 'connect;
                                }
                                continue;
                            }
                            message = stream.message() => message?,
                        };
                        let Some(event) = message.and_then(|m| m.event) else {
                            return Err("the contact event stream ended".into());
                        };
                        event
                    }
                };
                if is_merge(&event) {
                    self.apply_merge(event).await?;
                } else {
                    pending = self.pass_over(event, &mut stream).await?;
                }
            }
        }
    }

    /// Applies a merge in a span of its own, linked to the call that made it; the conversation it
    /// closes carries this span's context on in its own event.
    async fn apply_merge(&self, event: pb::ContactEvent) -> Result<(), Failure> {
        let span = tracing::info_span!(
            target: "charla::consumer",
            "apply contact event",
            otel.kind = "consumer",
            partition = event.partition,
            sequence = event.sequence,
        );
        charla_runtime::telemetry::link_to_trace_parent(&span, &event.trace_parent);
        self.close_merged(event).instrument(span).await
    }

    /// Moves the cursor past `first` and the events already received after it that concern no
    /// conversation (most contact events), in one transaction: a burst of new contacts costs one
    /// commit, not one each. Returns the event that ended the run, if one did (a merge).
    async fn pass_over(
        &self,
        first: pb::ContactEvent,
        stream: &mut tonic::Streaming<pb::StreamContactEventsResponse>,
    ) -> Result<Option<pb::ContactEvent>, Failure> {
        let mut positions = vec![(first.partition, first.sequence)];
        let mut ended_by = None;
        while positions.len() < MAX_PASSED_OVER {
            match arrived(stream)? {
                Some(event) if is_merge(&event) => {
                    ended_by = Some(event);
                    break;
                }
                Some(event) => positions.push((event.partition, event.sequence)),
                None => break,
            }
        }
        self.store
            .pass_over_contact_events(&self.cursor, &positions)
            .await?;
        for (partition, sequence) in positions {
            self.applied.committed(partition, sequence);
        }
        Ok(ended_by)
    }

    /// Records the merge and closes the secondary contact's open conversation, with the cursor.
    async fn close_merged(&self, event: pb::ContactEvent) -> Result<(), Failure> {
        let Some(pb::contact_event::Payload::Merged(merged)) = &event.payload else {
            return Err("only a merge is applied on its own".into());
        };
        let workspace = uuid::Uuid::parse_str(&event.workspace_id)?;
        let secondary = uuid::Uuid::parse_str(&merged.secondary_contact_id)?;
        let primary = uuid::Uuid::parse_str(&merged.primary_contact_id)?;
        let merge = (
            WorkspaceId::new(workspace),
            ContactId::from_uuid(secondary),
            ContactId::from_uuid(primary),
        );
        self.store
            .apply_contact_merge(&self.cursor, event.partition, event.sequence, merge)
            .await?;
        self.applied.committed(event.partition, event.sequence);
        Ok(())
    }
}

fn is_merge(event: &pb::ContactEvent) -> bool {
    matches!(event.payload, Some(pb::contact_event::Payload::Merged(_)))
}

/// The next event if the stream has received it already, without waiting for one.
fn arrived(
    stream: &mut tonic::Streaming<pb::StreamContactEventsResponse>,
) -> Result<Option<pb::ContactEvent>, Failure> {
    // `message()` is cancel-safe: a message not yet arrived stays for the next call.
    match stream.message().now_or_never() {
        Some(Ok(Some(message))) => match message.event {
            Some(event) => Ok(Some(event)),
            None => Err("the contact event stream sent no event".into()),
        },
        Some(Err(error)) => Err(error.into()),
        Some(Ok(None)) | None => Ok(None),
    }
}
