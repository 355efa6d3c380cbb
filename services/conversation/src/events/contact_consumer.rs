//! Consumes the contact service's event stream: a ContactsMerged event closes the secondary
//! contact's open conversation with CONTACT_MERGE. The cursor lives in this service's database
//! and advances in the same transaction as the close, so each event takes effect once, across
//! restarts and redeliveries. Replicas share the stream's partitions through leases.

use std::time::Duration;

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::consumer::{Assignment, Backoff, ConsumerCursor, assignment};
use charla_runtime::lease::PartitionLeases;
use charla_runtime::workspace::WorkspaceId;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::contacts::ContactDirectory;
use crate::domain::ContactId;
use crate::store::ConversationStore;

/// This consumer's name in `consumer_cursors` and in its leases.
pub const CONSUMER: &str = "contact-events";

/// How often a replica rebalances its partition leases.
const REBALANCE_EVERY: Duration = Duration::from_secs(2);

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// What the consumer works with.
pub struct ContactConsumer {
    pub store: ConversationStore,
    pub cursor: ConsumerCursor,
    pub leases: PartitionLeases,
    pub contacts: ContactDirectory,
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
            loop {
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
                // A span of its own, linked to the call that made the change; a conversation it
                // closes carries this span's context on in its own event.
                let span = tracing::info_span!(
                    target: "charla::consumer",
                    "apply contact event",
                    otel.kind = "consumer",
                    partition = event.partition,
                    sequence = event.sequence,
                );
                charla_runtime::telemetry::link_to_trace_parent(&span, &event.trace_parent);
                self.apply(event).instrument(span).await?;
            }
        }
    }

    async fn apply(&self, event: pb::ContactEvent) -> Result<(), Failure> {
        let close_merged = match &event.payload {
            Some(pb::contact_event::Payload::Merged(merged)) => {
                let workspace = uuid::Uuid::parse_str(&event.workspace_id)?;
                let secondary = uuid::Uuid::parse_str(&merged.secondary_contact_id)?;
                let primary = uuid::Uuid::parse_str(&merged.primary_contact_id)?;
                Some((
                    WorkspaceId::new(workspace),
                    ContactId::from_uuid(secondary),
                    ContactId::from_uuid(primary),
                ))
            }
            _ => None,
        };
        self.store
            .apply_contact_event(&self.cursor, event.partition, event.sequence, close_merged)
            .await?;
        Ok(())
    }
}
