//! Read your writes across services. A write answers with the position of the event it produced;
//! a read in a consuming service may name positions it must reflect (`min_positions`) and waits
//! until the consumer has applied them, within the call's deadline.
//!
//! The consumer publishes what it has applied through [`AppliedPositions`] after each commit,
//! which wakes the waiting reads of its own process at once; what it publishes is applied, so a
//! read it covers needs no further look. The stored cursor also covers the partitions other
//! replicas consume, so a waiting read checks it on every other wake-up and at least every
//! [`RECHECK`].

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use charla_proto::charla::contact::v1::PartitionCursor;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::ApiError;
use crate::consumer::ConsumerCursor;

/// How often a waiting read looks at the stored cursor without a wake-up from its own process:
/// the pace at which it notices what other replicas apply.
const RECHECK: Duration = Duration::from_millis(100);

/// How long a waiting read waits before it asks the producer whether the positions it waits for
/// were ever written.
const ASK_PRODUCER_AFTER: Duration = Duration::from_millis(50);

/// Positions by partition: the last sequence applied (or wanted) in each.
pub type Positions = BTreeMap<u32, u64>;

/// The consumer's side: publishes each position once its transaction has committed.
#[derive(Debug, Clone)]
pub struct AppliedPositions {
    sender: watch::Sender<Positions>,
}

impl Default for AppliedPositions {
    fn default() -> Self {
        Self {
            sender: watch::Sender::new(Positions::new()),
        }
    }
}

impl AppliedPositions {
    /// Call after committing the event at `sequence` of `partition` (or a batch ending there).
    pub fn committed(&self, partition: u32, sequence: u64) {
        self.sender.send_modify(|positions| {
            let applied = positions.entry(partition).or_default();
            *applied = (*applied).max(sequence);
        });
    }

    /// Call before the stored positions are reset (a rebuild): waiting reads trust what was
    /// published, so it must go first.
    pub fn reset(&self) {
        self.sender.send_modify(Positions::clear);
    }

    /// Wakes on each publication.
    pub fn subscribe(&self) -> watch::Receiver<Positions> {
        self.sender.subscribe()
    }
}

/// The producer's stream as it stands: its partition count and each partition's last sequence.
pub type StreamHeads = (u32, Positions);

/// The `min_positions`-like field `field`: at most one wanted sequence per partition (the
/// highest, when a partition is named twice).
pub fn parse_min_positions(field: &str, cursor: &[PartitionCursor]) -> Result<Positions, ApiError> {
    let mut wanted = Positions::new();
    for position in cursor {
        if position.sequence > i64::MAX as u64 {
            return Err(ApiError::invalid(
                field,
                "a sequence is beyond any the event stream hands out",
            ));
        }
        let entry = wanted.entry(position.partition).or_default();
        *entry = (*entry).max(position.sequence);
    }
    Ok(wanted)
}

/// The positions as the answer's `positions` field.
pub fn to_cursor(positions: &Positions) -> Vec<PartitionCursor> {
    positions
        .iter()
        .map(|(partition, sequence)| PartitionCursor {
            partition: *partition,
            sequence: *sequence,
        })
        .collect()
}

fn covers(applied: &Positions, wanted: &Positions) -> bool {
    wanted
        .iter()
        .all(|(partition, sequence)| applied.get(partition).copied().unwrap_or(0) >= *sequence)
}

/// How long a read may wait: the server's `request_timeout`, or the client's `grpc-timeout` when
/// sooner, less a margin to answer before the client gives up: a fifth, at most a second (the
/// time the call took to reach the handler counts against the client's deadline too).
pub fn wait_budget(metadata: &MetadataMap, request_timeout: Duration) -> Duration {
    let budget = crate::import::client_timeout(metadata)
        .map_or(request_timeout, |timeout| timeout.min(request_timeout));
    budget.saturating_sub((budget / 5).min(Duration::from_secs(1)))
}

/// Waits until `wanted` is applied: by the stored `cursor`, or by what this process's consumer
/// published through `applied` after committing it.
///
/// Returns at once when what was published or stored covers `wanted`. Otherwise waits for the
/// consumer, up to `budget`, and meanwhile asks `heads` how far the producer's stream is: a
/// partition it doesn't have, or a sequence past its head, can never be applied
/// (FAILED_PRECONDITION, reason POSITION_NOT_WRITTEN, naming `field`); when the producer can't be
/// asked (`None`, or no answer before the deadline), the wait goes on. The question is put only
/// after [`ASK_PRODUCER_AFTER`] of waiting, and runs beside the wait.
/// DEADLINE_EXCEEDED (reason POSITIONS_NOT_APPLIED, metadata `applied`) if the consumer doesn't
/// get there in time.
pub async fn wait_until_applied<H>(
    field: &str,
    cursor: &ConsumerCursor,
    mut applied: watch::Receiver<Positions>,
    wanted: &Positions,
    budget: Duration,
    heads: H,
) -> Result<(), ApiError>
where
    H: Future<Output = Option<StreamHeads>>,
{
    // Nothing wanted, or nothing this process's consumer hasn't published: no read needed.
    if covers(&applied.borrow_and_update(), wanted) {
        return Ok(());
    }
    let deadline = Instant::now() + budget;
    let stored = |positions: Vec<(u32, u64)>| positions.into_iter().collect::<Positions>();
    let mut now = stored(cursor.positions().await?);
    if covers(&now, wanted) {
        return Ok(());
    }
    // A live write is applied within milliseconds: the producer is asked only when the wait lasts
    // (asked at once, its answer competed with the write's own way through). Asking must not eat
    // the caller's deadline either: no answer in time counts as none.
    let heads = tokio::time::timeout_at(deadline, async {
        tokio::time::sleep(ASK_PRODUCER_AFTER).await;
        heads.await
    });
    tokio::pin!(heads);
    let (mut heads_pending, mut watching) = (true, true);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                let reached = to_cursor(&now)
                    .iter()
                    .map(|p| format!("{}:{}", p.partition, p.sequence))
                    .collect::<Vec<_>>()
                    .join(",");
                return Err(ApiError::DeadlineExceeded {
                    reason: "POSITIONS_NOT_APPLIED",
                    message: format!(
                        "the consumer had not applied {field} before the deadline; applied so \
                         far (partition:sequence): {reached}"
                    ),
                    metadata: vec![("applied", reached)],
                });
            }
            answer = &mut heads, if heads_pending => {
                heads_pending = false;
                if let Ok(Some(heads)) = answer {
                    refuse_unwritten(field, wanted, &heads)?;
                }
                continue;
            }
            changed = applied.changed(), if watching => {
                // Published only after its commit, so what it covers is applied for good (a
                // rebuild clears it before it resets the stored positions).
                if changed.is_err() {
                    watching = false;
                } else if covers(&applied.borrow_and_update(), wanted) {
                    return Ok(());
                }
            }
            _ = tokio::time::sleep(RECHECK) => {}
        }
        // The stored cursor also covers the partitions other replicas consume.
        now = stored(cursor.positions().await?);
        if covers(&now, wanted) {
            return Ok(());
        }
    }
}

/// FAILED_PRECONDITION when `wanted` names a partition or sequence the producer's stream, as
/// `heads` describes it, doesn't have.
fn refuse_unwritten(field: &str, wanted: &Positions, heads: &StreamHeads) -> Result<(), ApiError> {
    let (partition_count, heads) = heads;
    for (partition, sequence) in wanted {
        let head = heads.get(partition).copied().unwrap_or(0);
        if partition >= partition_count || *sequence > head {
            return Err(ApiError::precondition(
                "POSITION_NOT_WRITTEN",
                format!(
                    "{field}: the event stream has no event {sequence} in partition \
                     {partition} (it has {partition_count} partitions; that one ends at \
                     {head}): pass positions this deployment's writes answered"
                ),
            )
            .with_metadata("field", field.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_partitions_keep_the_highest_wanted_sequence() {
        let cursor = [(0, 4), (1, 2), (0, 9)].map(|(partition, sequence)| PartitionCursor {
            partition,
            sequence,
        });
        let wanted = parse_min_positions("min_positions", &cursor).unwrap();
        assert_eq!(wanted, Positions::from([(0, 9), (1, 2)]));
        let too_far = [PartitionCursor {
            partition: 0,
            sequence: u64::MAX,
        }];
        assert!(parse_min_positions("min_positions", &too_far).is_err());
    }

    #[test]
    fn positions_cover_what_they_reach_in_every_wanted_partition() {
        let applied = Positions::from([(0, 5), (1, 3)]);
        assert!(covers(&applied, &Positions::from([(0, 5)])));
        assert!(covers(&applied, &Positions::new()));
        assert!(!covers(&applied, &Positions::from([(0, 5), (1, 4)])));
        assert!(!covers(&applied, &Positions::from([(2, 1)])));
    }
}
