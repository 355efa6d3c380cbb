//! Consumes the contact service's event stream: a ContactsMerged event closes the secondary
//! contact's open conversation with CONTACT_MERGE. The cursor lives in this service's database
//! and advances in the same transaction as the close, so each event takes effect once, across
//! restarts and redeliveries.

use std::time::Duration;

use charla_proto::charla::contact::v1 as pb;
use charla_runtime::consumer::ConsumerCursor;
use charla_runtime::workspace::WorkspaceId;
use tokio_util::sync::CancellationToken;

use crate::contacts::ContactDirectory;
use crate::domain::ContactId;
use crate::store::ConversationStore;

/// This consumer's name in `consumer_cursors`.
pub const CONSUMER: &str = "contact-events";

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LONGEST_RETRY: Duration = Duration::from_secs(30);

/// Runs the consumer until `shutdown`, reconnecting with a growing delay while the contact
/// service is away.
pub fn spawn(
    store: ConversationStore,
    cursor: ConsumerCursor,
    contacts: ContactDirectory,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut delay = FIRST_RETRY;
        loop {
            match consume(&store, &cursor, &contacts, &shutdown).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?delay, "contact event stream interrupted");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(LONGEST_RETRY);
        }
    });
}

/// Reads from the stored cursor and applies events until shutdown (Ok) or an error.
async fn consume(
    store: &ConversationStore,
    consumer: &ConsumerCursor,
    contacts: &ContactDirectory,
    shutdown: &CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let cursor = consumer
        .positions()
        .await?
        .into_iter()
        .map(|(partition, sequence)| pb::PartitionCursor {
            partition,
            sequence,
        })
        .collect();
    let request = pb::StreamContactEventsRequest {
        cursor,
        partitions: Vec::new(),
    };
    let mut stream = contacts
        .client()
        .stream_contact_events(request)
        .await?
        .into_inner();
    loop {
        let message = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            message = stream.message() => message?,
        };
        let Some(event) = message.and_then(|m| m.event) else {
            return Err("the contact event stream ended".into());
        };
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
        store
            .apply_contact_event(consumer, event.partition, event.sequence, close_merged)
            .await?;
    }
}
