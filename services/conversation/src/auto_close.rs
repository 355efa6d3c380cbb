//! The auto-close scheduler: every few moments, closes the conversations whose deadline passed.
//! It keeps no deadlines of its own; the database has them all.

use std::time::Duration;

use charla_runtime::clock::SharedClock;
use charla_runtime::service_metrics::{ServiceMetrics, clamp};
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

/// `charla_auto_close_backlog`: open conversations whose auto-close deadline has passed, counted
/// when Prometheus scrapes. It stays near zero while the scheduler keeps up.
pub fn watch_backlog(metrics: &ServiceMetrics, store: ConversationStore, clock: SharedClock) {
    let backlog = metrics.gauges(
        "charla_auto_close_backlog",
        "Open conversations past their auto-close deadline, not yet closed",
    );
    metrics.refresh_on_scrape(move || {
        let (store, clock, backlog) = (store.clone(), clock.clone(), backlog.clone());
        async move {
            match store.count_due(clock.now()).await {
                Ok(due) => {
                    backlog.get_or_create(&Vec::new()).set(clamp(due));
                }
                Err(error) => tracing::debug!(%error, "can't count the auto-close backlog"),
            }
        }
    });
}
