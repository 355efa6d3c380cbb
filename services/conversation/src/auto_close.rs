//! The auto-close scheduler: every few moments, closes the conversations whose deadline passed.
//! It keeps no deadlines of its own; the database has them all.

use std::time::Duration;

use charla_runtime::clock::SharedClock;
use tokio_util::sync::CancellationToken;

use crate::store::ConversationStore;

/// Scans for due deadlines every `interval` until `shutdown`.
pub fn spawn(
    store: ConversationStore,
    clock: SharedClock,
    interval: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            match store.close_due(clock.now()).await {
                Ok(0) => {}
                Ok(closed) => tracing::info!(closed, "auto-closed conversations"),
                Err(error) => tracing::warn!(%error, "auto-close scan failed; retrying"),
            }
        }
    });
}
