//! The gRPC face of an event log: a stream RPC's cursor and partitions in, the stored events out,
//! decoded and wrapped in the service's response message. Every service's stream RPC is this.

use std::pin::Pin;

use charla_proto::charla::contact::v1::{ContactEvent, PartitionCursor};
use charla_proto::charla::conversation::v1::ConversationEvent;
use tokio_stream::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::ApiError;
use crate::event_log::{EventLog, StreamRequest};
use crate::workspace::WorkspaceId;

/// A server stream of responses.
pub type ResponseStream<R> = Pin<Box<dyn Stream<Item = Result<R, tonic::Status>> + Send>>;

/// An event message that states its own position in the log. The stored message holds the
/// partition position it was appended at; a stream scoped to one workspace numbers events by
/// workspace sequence instead, so the position read is written into every event sent.
pub trait LoggedEvent: prost::Message + Default + 'static {
    /// Sets the event's `partition` and `sequence`.
    fn set_position(&mut self, partition: u32, sequence: u64);
}

impl LoggedEvent for ContactEvent {
    fn set_position(&mut self, partition: u32, sequence: u64) {
        (self.partition, self.sequence) = (partition, sequence);
    }
}

impl LoggedEvent for ConversationEvent {
    fn set_position(&mut self, partition: u32, sequence: u64) {
        (self.partition, self.sequence) = (partition, sequence);
    }
}

/// Streams `log` from `cursor` over `partitions` (all when empty), only `workspace`'s events when
/// given (then numbered, cursor included, by workspace sequence), until `shutdown`. Each stored
/// event is decoded as `E` and answered with `respond(event, head)`, the head being the last
/// sequence of the partition, or of the workspace for a scoped stream.
pub fn stream_events<E, R>(
    log: &EventLog,
    partitions: &[u32],
    cursor: &[PartitionCursor],
    workspace: Option<WorkspaceId>,
    shutdown: CancellationToken,
    respond: fn(E, u64) -> R,
) -> Result<ResponseStream<R>, ApiError>
where
    E: LoggedEvent,
    R: Send + 'static,
{
    let cursor: Vec<(u32, u64)> = cursor
        .iter()
        .map(|position| (position.partition, position.sequence))
        .collect();
    let wanted = StreamRequest::parse(log.partitions(), partitions, &cursor, workspace)?;
    let events = log.stream(wanted, shutdown);
    let stream = tokio_stream::wrappers::ReceiverStream::new(events).map(move |stored| {
        let stored = stored?;
        let mut event = E::decode(stored.payload.as_slice())
            .map_err(|e| ApiError::Internal(format!("stored event is unreadable: {e}")))?;
        event.set_position(stored.partition, stored.sequence);
        Ok(respond(event, stored.head))
    });
    Ok(Box::pin(stream))
}

/// How a log is partitioned and each partition's last sequence: the stream-info RPCs' answer.
pub async fn stream_info(log: &EventLog) -> Result<(u32, Vec<PartitionCursor>), ApiError> {
    let mut heads = Vec::new();
    for partition in 0..log.partitions() {
        let sequence = log.head(partition).await?;
        heads.push(PartitionCursor {
            partition,
            sequence,
        });
    }
    Ok((log.partitions(), heads))
}
