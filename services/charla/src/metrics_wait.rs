//! Waiting until the metrics service reflects what a command wrote, so `charla demo` and
//! `charla import` say "ready" only when the reports show the data: a GetDashboard call with the
//! writes' positions as `min_positions`, which the service answers once it has applied them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use charla_proto::charla::contact::v1::PartitionCursor;
use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;
use tonic::metadata::{Ascii, MetadataValue};

/// How the metrics are waited for.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsWait {
    /// URL of the metrics service, waited on until its reports reflect what was written.
    #[arg(
        long,
        env = "CHARLA_METRICS_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub metrics_url: String,

    /// Seconds to wait for the metrics service to catch up before giving up (the data is
    /// written either way).
    #[arg(long, default_value_t = 600)]
    pub metrics_wait_secs: u64,

    /// Don't wait for the metrics service (a deployment without one, say).
    #[arg(long)]
    pub no_metrics_wait: bool,
}

/// Each GetDashboard call waits at most this long; a longer wait is several calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

/// The highest position written in each partition: what the reports must reflect.
#[derive(Debug, Default, Clone)]
pub struct Written(BTreeMap<u32, u64>);

impl Written {
    /// Notes a write's `event_position`.
    pub fn note(&mut self, position: Option<&PartitionCursor>) {
        if let Some(position) = position {
            let highest = self.0.entry(position.partition).or_default();
            *highest = (*highest).max(position.sequence);
        }
    }

    fn cursor(&self) -> Vec<PartitionCursor> {
        self.0
            .iter()
            .map(|(partition, sequence)| PartitionCursor {
                partition: *partition,
                sequence: *sequence,
            })
            .collect()
    }
}

impl MetricsWait {
    /// Waits until the metrics service reflects `written`; an error says why it could not tell.
    pub async fn wait(
        &self,
        bearer: &MetadataValue<Ascii>,
        written: &Written,
    ) -> Result<(), String> {
        if self.no_metrics_wait || written.0.is_empty() {
            return Ok(());
        }
        let url = &self.metrics_url;
        let mut client = MetricsServiceClient::connect(url.clone())
            .await
            .map_err(|e| format!("can't reach the metrics service at {url}: {e}"))?;
        let patience = Duration::from_secs(self.metrics_wait_secs);
        let started = Instant::now();
        loop {
            let mut request = tonic::Request::new(metrics_pb::GetDashboardRequest {
                time_zone: String::new(),
                min_positions: written.cursor(),
            });
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            request.set_timeout(CALL_TIMEOUT.min(patience.saturating_sub(started.elapsed())));
            match client.get_dashboard(request).await {
                Ok(_) => return Ok(()),
                // A call that outlived its timeout ends as DEADLINE_EXCEEDED, or as CANCELLED
                // ("Timeout expired") when tonic's timeout layer ends it: ask again.
                Err(status)
                    if matches!(
                        status.code(),
                        tonic::Code::DeadlineExceeded
                            | tonic::Code::Cancelled
                            | tonic::Code::Unavailable
                    ) && started.elapsed() < patience =>
                {
                    println!("  still waiting for the metrics service to catch up...");
                }
                Err(status) => {
                    return Err(format!(
                        "the metrics service at {url} did not confirm it reflects the data: {}",
                        status.message()
                    ));
                }
            }
        }
    }

    /// `host:port` of the metrics URL, for commands to print.
    pub fn address(&self) -> &str {
        self.metrics_url
            .split_once("://")
            .map_or(self.metrics_url.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
    }
}
