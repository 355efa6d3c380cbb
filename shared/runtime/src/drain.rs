//! Leaving gracefully. On SIGTERM a service first tells whoever checks its health that it is going
//! (NOT_SERVING for each of its services and for the server as a whole), keeps serving for the
//! configured delay so that load balancers and peers move their calls elsewhere, and only then
//! fires the shutdown token: the server stops accepting and drains the calls in flight.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Turns a server's health answers to NOT_SERVING.
#[derive(Clone)]
pub struct HealthSwitch {
    health: HealthReporter,
    services: Vec<&'static str>,
}

impl HealthSwitch {
    /// The switch of the services `services` that `health` reports on.
    pub fn new(health: HealthReporter, services: Vec<&'static str>) -> Self {
        Self { health, services }
    }

    /// Every service, and the server as a whole (the empty name), answers NOT_SERVING.
    pub async fn not_serving(&self) {
        for service in self.services.iter().copied().chain([""]) {
            self.health
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    }
}

/// Once `signalled` fires: NOT_SERVING through `switch`, `delay` more of serving, then `shutdown`.
pub fn announce_then_shut_down(
    signalled: CancellationToken,
    switch: HealthSwitch,
    delay: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        tokio::select! {
            _ = signalled.cancelled() => {}
            // Stopped for another reason (a failure): nothing to announce.
            _ = shutdown.cancelled() => return,
        }
        switch.not_serving().await;
        if !delay.is_zero() {
            tracing::info!(
                delay_secs = delay.as_secs(),
                "health NOT_SERVING; serving on until the drain"
            );
            tokio::time::sleep(delay).await;
        }
        shutdown.cancel();
    });
}
