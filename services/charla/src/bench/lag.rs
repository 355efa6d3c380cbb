//! Section 2, event lag: from a write's answer to a metrics read that reflects it. Each sample
//! records a message, then asks GetDashboard with the write's `event_position` as
//! `min_positions` (the call waits until the metrics service has applied it). The floor is the
//! same GetDashboard call without positions, right after: what the read costs with nothing to wait
//! for.

use std::time::Instant;

use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::metrics::v1 as metrics_pb;
use charla_proto::charla::metrics::v1::metrics_service_client::MetricsServiceClient;

use super::figures::{Figure, Measure, Section, median, ms, quantile};
use super::fleet::Fleet;
use super::people::{self, Workspace, inbound};

/// Runs the event lag section: `samples` writes per round.
pub async fn run(fleet: &Fleet, rounds: u32, samples: usize) -> Result<Section, String> {
    let workspace = Workspace::new(fleet)?;
    let regular = people::contacts(fleet.channel("contact").await?, &workspace, "lag", 1).await?;
    let mut conversations = ConversationServiceClient::new(fleet.channel("conversation").await?);
    let mut metrics = MetricsServiceClient::new(fleet.channel("metrics").await?);
    let dashboard = |positions| {
        workspace.request(metrics_pb::GetDashboardRequest {
            time_zone: String::new(),
            min_positions: positions,
        })
    };
    let (mut lag_p50, mut lag_p99, mut floor_p50, mut floor_p99) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let (mut lags, mut floors) = (Vec::new(), Vec::new());
        for sample in 0..samples {
            let written = conversations
                .record_message(
                    workspace.request(inbound(&regular[0], format!("lag-{round}-{sample}"))),
                )
                .await
                .map_err(|s| format!("RecordMessage: {}", s.message()))?
                .into_inner();
            let position = written
                .event_position
                .ok_or("RecordMessage answered without an event position")?;
            let acknowledged = Instant::now();
            metrics
                .get_dashboard(dashboard(vec![position]))
                .await
                .map_err(|s| format!("GetDashboard with min_positions: {}", s.message()))?;
            lags.push(ms(acknowledged.elapsed()));
            let asked = Instant::now();
            metrics
                .get_dashboard(dashboard(Vec::new()))
                .await
                .map_err(|s| format!("GetDashboard: {}", s.message()))?;
            floors.push(ms(asked.elapsed()));
        }
        lag_p50.push(quantile(&lags, 0.5));
        lag_p99.push(quantile(&lags, 0.99));
        floor_p50.push(quantile(&floors, 0.5));
        floor_p99.push(quantile(&floors, 0.99));
    }
    let mut section = Section::new(
        "event_lag",
        "2. Event lag: write answered → metrics reflect it",
    );
    section.figures.push(Figure::against(
        Measure::new(
            "lag p50 (GetDashboard waiting for the write)",
            median(&lag_p50),
            "ms",
        ),
        Measure::new("GetDashboard alone p50", median(&floor_p50), "ms"),
    ));
    section.figures.push(Figure::against(
        Measure::new("lag p99", median(&lag_p99), "ms"),
        Measure::new("GetDashboard alone p99", median(&floor_p99), "ms"),
    ));
    section.notes.push(format!(
        "{samples} writes per round, one after another; percentiles per round, then the median \
         over rounds"
    ));
    Ok(section)
}
