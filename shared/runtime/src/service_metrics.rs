//! What a service tells Prometheus: every call's count and latency by method and code, named after
//! OpenTelemetry's RPC semantic conventions (`rpc_server_duration_seconds`, a histogram, and
//! `rpc_server_requests_total`, labelled `rpc_system="grpc"`, `rpc_service`, `rpc_method`,
//! `rpc_grpc_status_code` as the number), plus the gauges each service adds (event heads,
//! consumer lag, database pool, auto-close backlog). Gauges that read the database are refreshed
//! when Prometheus scrapes, each within a short bound, so an idle service does no work for them.
//! The admin listener ([`crate::admin`]) serves [`ServiceMetrics::render`].

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use tonic::Code;

use crate::db::Database;
use crate::event_log::EventLog;
use crate::rpc_log::{CallObserver, RpcMethod};

/// Labels of the RPC metrics, as OpenTelemetry's RPC conventions name the attributes.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc_system: &'static str,
    rpc_service: String,
    rpc_method: String,
    rpc_grpc_status_code: u8,
}

/// A gauge's labels, as `(name, value)` pairs.
pub type Labels = Vec<(String, String)>;

/// A family of gauges, one per label set.
pub type GaugeFamily = Family<Labels, Gauge>;

type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The longest a scrape waits for one refresh (a slow database leaves that gauge as it was).
const REFRESH_BOUND: Duration = Duration::from_secs(2);

/// The metrics of one service process.
pub struct ServiceMetrics {
    registry: Mutex<Registry>,
    rpc_duration: Family<RpcLabels, Histogram, fn() -> Histogram>,
    rpc_requests: Family<RpcLabels, Counter>,
    refreshes: Mutex<Vec<Refresh>>,
}

impl std::fmt::Debug for ServiceMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceMetrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    // 1 ms to ~33 s, doubling: local calls take milliseconds, streams and imports up to the
    // request timeout.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl ServiceMetrics {
    /// Metrics with the RPC families registered and nothing else yet.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::default();
        let rpc_duration = Family::<RpcLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "rpc_server_duration",
            "How long calls took, until the answer's last byte (a stream's whole life)",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rpc_server_requests",
            "Calls answered, by method and status code",
            rpc_requests.clone(),
        );
        Arc::new(Self {
            registry: Mutex::new(registry),
            rpc_duration,
            rpc_requests,
            refreshes: Mutex::new(Vec::new()),
        })
    }

    /// Registers a gauge family `name` (charla's own are prefixed `charla_`).
    pub fn gauges(&self, name: &str, help: &str) -> GaugeFamily {
        let family = GaugeFamily::default();
        self.lock_registry().register(name, help, family.clone());
        family
    }

    /// Runs `refresh` before each scrape (bounded: see [`REFRESH_BOUND`]).
    pub fn refresh_on_scrape<F, Fut>(&self, refresh: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let refresh: Refresh = Arc::new(move || Box::pin(refresh()));
        self.refreshes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(refresh);
    }

    /// `charla_db_pool_connections` (open) and `charla_db_pool_idle_connections` of `db`'s pool.
    pub fn watch_database(&self, db: &Database) {
        let open = self.gauges(
            "charla_db_pool_connections",
            "Connections the database pool holds open",
        );
        let idle = self.gauges(
            "charla_db_pool_idle_connections",
            "Open connections of the database pool not in use",
        );
        let db = db.clone();
        self.refresh_on_scrape(move || {
            let pool = db.pool();
            open.get_or_create(&Vec::new()).set(i64::from(pool.size()));
            idle.get_or_create(&Vec::new()).set(pool.num_idle() as i64);
            std::future::ready(())
        });
    }

    /// `charla_event_head{stream, partition}`: the last sequence of each partition of the event
    /// log `events` (the `stream` label names it: `contact`, `conversation`).
    pub fn watch_event_heads(&self, events: &EventLog, stream: &'static str) {
        let heads = self.gauges(
            "charla_event_head",
            "The last sequence number of each partition of the service's event stream",
        );
        let events = events.clone();
        self.refresh_on_scrape(move || {
            let (events, heads) = (events.clone(), heads.clone());
            async move {
                for partition in 0..events.partitions() {
                    match events.head(partition).await {
                        Ok(head) => {
                            let labels = vec![
                                ("stream".to_owned(), stream.to_owned()),
                                ("partition".to_owned(), partition.to_string()),
                            ];
                            heads.get_or_create(&labels).set(clamp(head));
                        }
                        Err(error) => {
                            tracing::debug!(%error, "can't read an event head for /metrics");
                            return;
                        }
                    }
                }
            }
        });
    }

    /// The exposition (OpenMetrics text), after refreshing what is read at scrape time.
    pub async fn render(&self) -> String {
        let refreshes: Vec<Refresh> = self
            .refreshes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for refresh in refreshes {
            if tokio::time::timeout(REFRESH_BOUND, refresh())
                .await
                .is_err()
            {
                tracing::debug!("a /metrics refresh took too long; its gauge is left as it was");
            }
        }
        let mut text = String::new();
        // Writing to a String can't fail.
        let _infallible =
            prometheus_client::encoding::text::encode(&mut text, &self.lock_registry());
        text
    }

    fn lock_registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CallObserver for ServiceMetrics {
    fn call_finished(&self, method: &RpcMethod, code: Code, latency: Duration) {
        let labels = RpcLabels {
            rpc_system: "grpc",
            rpc_service: method.service.to_string(),
            rpc_method: method.method.to_string(),
            rpc_grpc_status_code: code as u8,
        };
        self.rpc_duration
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
        self.rpc_requests.get_or_create(&labels).inc();
    }
}

/// A count as a gauge value (saturating: no count comes near `i64::MAX`).
pub fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_counted_and_timed_by_method_and_code() {
        let metrics = ServiceMetrics::new();
        let method = RpcMethod {
            service: "charla.contact.v1.ContactService".into(),
            method: "GetContact".into(),
        };
        metrics.call_finished(&method, Code::Ok, Duration::from_millis(3));
        metrics.call_finished(&method, Code::Ok, Duration::from_millis(5));
        metrics.call_finished(&method, Code::NotFound, Duration::from_millis(1));
        let text = metrics.render().await;
        let labels = r#"rpc_system="grpc",rpc_service="charla.contact.v1.ContactService",rpc_method="GetContact""#;
        assert!(
            text.contains(&format!(
                "rpc_server_requests_total{{{labels},rpc_grpc_status_code=\"0\"}} 2"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "rpc_server_requests_total{{{labels},rpc_grpc_status_code=\"5\"}} 1"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "rpc_server_duration_seconds_count{{{labels},rpc_grpc_status_code=\"0\"}} 2"
            )),
            "{text}"
        );
        assert!(text.contains("# TYPE rpc_server_duration_seconds histogram"));
    }

    #[tokio::test]
    async fn gauges_are_refreshed_when_scraped() {
        let metrics = ServiceMetrics::new();
        let gauge = metrics.gauges("charla_test_gauge", "A test gauge");
        let scrapes = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let counted = scrapes.clone();
        metrics.refresh_on_scrape(move || {
            let now = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            gauge
                .get_or_create(&vec![("kind".into(), "x".into())])
                .set(now);
            std::future::ready(())
        });
        metrics.render().await;
        let text = metrics.render().await;
        assert!(text.contains("charla_test_gauge{kind=\"x\"} 2"), "{text}");
    }
}
