//! The MetricsService gRPC handlers.

pub mod business_hours;
pub mod convert;
mod csv;
pub mod settings;

use std::pin::Pin;
use std::time::Duration;

use charla_proto::charla::contact::v1::PartitionCursor;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::conversation::v1::conversation_service_client::ConversationServiceClient;
use charla_proto::charla::metrics::v1 as pb;
use charla_proto::charla::metrics::v1::metrics_service_server::MetricsService;
use charla_runtime::ApiError;
use charla_runtime::applied;
use charla_runtime::auth::credential::AuthenticatedChannel;
use charla_runtime::auth::{Role, authorize, authorize_service};
use charla_runtime::clock::{SharedClock, to_micros};
use charla_runtime::fair_share::stream_slot;
use charla_runtime::validate::text;
use charla_runtime::workspace::WORKSPACE_HEADER;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::consumer::ConsumerHandle;
use crate::domain::{Dimension, TargetKind};
use crate::reports::{self, DashboardNumbers, MetricsQuery, Ranking};
use crate::store::{ClosedFact, MetricsStore};
use convert::{
    group_key, median_and_average, metrics_to_proto, parse_filter, parse_granularity,
    parse_group_by, required_micros, timestamp,
};

/// A live dashboard is recomputed at least this often, so "today" rolls over at midnight.
const DASHBOARD_REFRESH: Duration = Duration::from_secs(30);
/// Export rows read per query.
const EXPORT_PAGE: i64 = 500;

/// The gRPC face of the metrics service.
#[derive(Debug, Clone)]
pub struct MetricsApi {
    store: MetricsStore,
    consumer: ConsumerHandle,
    producer: Producer,
    clock: SharedClock,
    allow_rebuild: bool,
    shutdown: CancellationToken,
}

/// The conversation service as reads that wait on `min_positions` see it.
#[derive(Debug, Clone)]
pub struct Producer {
    /// Asked how far its stream is, to refuse positions it never wrote.
    pub conversations: ConversationServiceClient<AuthenticatedChannel>,
    /// The server's request timeout: a wait ends before it.
    pub request_timeout: Duration,
}

/// How long the producer may take to say how far its stream is.
const STREAM_INFO_TIMEOUT: Duration = Duration::from_secs(2);

impl Producer {
    async fn stream_heads(&self) -> Option<applied::StreamHeads> {
        let mut request = Request::new(conversation_pb::GetConversationEventStreamInfoRequest {});
        request.set_timeout(STREAM_INFO_TIMEOUT);
        let info = self
            .conversations
            .clone()
            .get_conversation_event_stream_info(request)
            .await
            .ok()?
            .into_inner();
        let heads = info
            .heads
            .iter()
            .map(|head| (head.partition, head.sequence))
            .collect();
        Some((info.partition_count, heads))
    }
}

impl MetricsApi {
    pub fn new(
        store: MetricsStore,
        consumer: ConsumerHandle,
        producer: Producer,
        clock: SharedClock,
        allow_rebuild: bool,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            store,
            consumer,
            producer,
            clock,
            allow_rebuild,
            shutdown,
        }
    }

    /// What a read of `workspace` reflects: waits until the consumer has applied the request's
    /// `min_positions` (within the call's deadline; see `charla_runtime::applied`), then returns
    /// the positions of the workspace's latest applied events, read before the numbers are.
    async fn reflect(
        &self,
        workspace: &str,
        metadata: &tonic::metadata::MetadataMap,
        wanted: &[PartitionCursor],
    ) -> Result<Vec<PartitionCursor>, ApiError> {
        const FIELD: &str = "min_positions";
        let wanted = applied::parse_min_positions(FIELD, wanted)?;
        applied::wait_until_applied(
            FIELD,
            self.store.cursor(),
            self.consumer.positions(),
            &wanted,
            applied::wait_budget(metadata, self.producer.request_timeout),
            self.producer.stream_heads(),
        )
        .await?;
        let positions = self.store.workspace_positions(workspace).await?;
        Ok(applied::to_cursor(&positions))
    }
}

/// The closing-time range and filter of an export, checked.
struct ExportRange {
    start: i64,
    end: i64,
    filter: crate::domain::Filter,
}

impl ExportRange {
    /// Checks the fields ExportConversations and ExportConversationsCsv share.
    fn parse(
        start_time: Option<&prost_types::Timestamp>,
        end_time: Option<&prost_types::Timestamp>,
        filter: Option<&pb::ConversationFilter>,
    ) -> Result<Self, ApiError> {
        let start = required_micros("start_time", start_time)?;
        let end = required_micros("end_time", end_time)?;
        if end <= start {
            return Err(ApiError::invalid("end_time", "must be after start_time"));
        }
        Ok(Self {
            start,
            end,
            filter: parse_filter(filter)?,
        })
    }
}

impl MetricsApi {
    /// Streams every row of the range, page by page, in closing order; stops at the first error
    /// (sent last) or when the receiver goes away.
    fn export_rows(
        &self,
        workspace: String,
        range: ExportRange,
    ) -> mpsc::Receiver<Result<pb::ConversationExportRow, Status>> {
        let (sender, receiver) = mpsc::channel(64);
        let (store, shutdown) = (self.store.clone(), self.shutdown.clone());
        tokio::spawn(async move {
            let mut after = None;
            loop {
                let page = match store
                    .closed_facts(
                        &workspace,
                        range.start,
                        range.end,
                        after.clone(),
                        EXPORT_PAGE,
                    )
                    .await
                {
                    Ok(page) => page,
                    Err(error) => {
                        let _closed = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                };
                for fact in page
                    .iter()
                    .filter(|fact| range.filter.accepts(&fact.dimensions))
                {
                    let row = export_row(fact).map_err(Status::from);
                    if shutdown.is_cancelled() || sender.send(row).await.is_err() {
                        return;
                    }
                }
                match page.last() {
                    Some(last) if page.len() as i64 == EXPORT_PAGE => {
                        after = Some((last.closed_at, last.conversation.clone()));
                    }
                    _ => return,
                }
            }
        });
        receiver
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn duration(micros: Option<f64>) -> Option<prost_types::Duration> {
    micros.map(|m| {
        prost_types::Duration::try_from(Duration::from_micros(m.round().max(0.0) as u64))
            .unwrap_or_default()
    })
}

fn dashboard_to_proto(numbers: &DashboardNumbers, now: i64, time_zone: &str) -> pb::Dashboard {
    pb::Dashboard {
        as_of: Some(timestamp(now)),
        time_zone: time_zone.to_owned(),
        day_start: Some(timestamp(numbers.day_start)),
        open_count: numbers.live.open,
        unassigned_count: numbers.live.unassigned,
        opened_today_count: numbers.opened_today,
        closed_today_count: numbers.closed_today,
        average_resolution_time: duration(numbers.average_resolution),
        median_resolution_time: duration(numbers.median_resolution),
        at_risk: numbers
            .at_risk
            .iter()
            .map(|at_risk| pb::AtRiskConversation {
                conversation_id: at_risk.conversation.clone(),
                contact_id: at_risk.contact.clone(),
                assignee_user_id: at_risk.assignee.clone(),
                target: match at_risk.target {
                    TargetKind::FirstResponse => pb::SlaTarget::FirstResponse,
                    TargetKind::Resolution => pb::SlaTarget::Resolution,
                } as i32,
                deadline: Some(timestamp(at_risk.deadline)),
                breached: at_risk.breached,
            })
            .collect(),
    }
}

/// The time zone field: an IANA name (checked where it is used), UTC when empty.
fn time_zone(value: &str) -> Result<String, ApiError> {
    let value = text("time_zone", value)?;
    Ok(if value.is_empty() { "UTC" } else { value }.to_owned())
}

fn export_row(fact: &ClosedFact) -> Result<pb::ConversationExportRow, ApiError> {
    let closed = conversation_pb::ConversationClosed::decode(fact.record.as_slice())
        .map_err(|e| ApiError::Internal(format!("stored close event is unreadable: {e}")))?;
    let channel = closed.channel.clone().unwrap_or_default();
    let counts = closed.message_counts.unwrap_or_default();
    let average_response = (!closed.response_times.is_empty()).then(|| {
        let total: u128 = closed
            .response_times
            .iter()
            .filter_map(|d| Duration::try_from(*d).ok())
            .map(|d| d.as_micros())
            .sum();
        total as f64 / closed.response_times.len() as f64
    });
    Ok(pb::ConversationExportRow {
        conversation_id: fact.conversation.clone(),
        contact_id: fact.contact.clone(),
        channel_type: channel.channel_type,
        channel_id: channel.channel_id,
        opened_at: closed.opened_at,
        opened_by: closed.opened_by,
        opened_by_id: closed.opened_by_id,
        closed_at: closed.closed_at,
        closed_by: closed.closed_by,
        closed_by_id: closed.closed_by_id,
        first_assignee_user_id: closed.first_assignee_user_id,
        // Events written before the last assignee was kept know only the assignee at close.
        last_assignee_user_id: if closed.last_assignee_user_id.is_empty() {
            closed.assignee_user_id.clone()
        } else {
            closed.last_assignee_user_id
        },
        assignee_user_id: closed.assignee_user_id,
        team_id: closed.team_id,
        first_assigned_at: closed.first_assigned_at,
        last_assigned_at: closed.last_assigned_at,
        assignment_count: closed.assignment_count,
        time_to_first_assignment: closed.time_to_first_assignment,
        first_response_at: closed.first_response_at,
        first_response_user_id: closed.first_response_user_id,
        first_response_time: closed.first_response_time,
        average_response_time: duration(average_response),
        response_count: counts.response_count,
        resolution_time: closed.resolution_time,
        closing_category: closed.closing_category,
        closing_summary: closed.closing_summary,
        inbound_message_count: counts.inbound_count,
        outbound_message_count: counts.outbound_count,
        user_outbound_message_count: counts.user_outbound_count,
        imported: fact.imported,
        external_id: closed.external_id,
        first_automated_message_at: closed.first_automated_message_at,
        first_automated_author_kind: closed.first_automated_author_kind,
        first_automated_author_id: closed.first_automated_author_id,
    })
}

#[tonic::async_trait]
impl MetricsService for MetricsApi {
    async fn get_conversation_metrics(
        &self,
        request: Request<pb::GetConversationMetricsRequest>,
    ) -> Result<Response<pb::GetConversationMetricsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?.to_string();
        let metadata = request.metadata().clone();
        let request = request.into_inner();
        let query = MetricsQuery {
            start: required_micros("start_time", request.start_time.as_ref())?,
            end: required_micros("end_time", request.end_time.as_ref())?,
            time_zone: time_zone(&request.time_zone)?,
            granularity: parse_granularity(request.granularity)?,
            filter: parse_filter(request.filter.as_ref())?,
            group_by: parse_group_by(request.group_by)?,
        };
        let window = request
            .recontact_window
            .as_ref()
            .map(|window| settings::parse_window("recontact_window", window))
            .transpose()?;
        let positions = self
            .reflect(&workspace, &metadata, &request.min_positions)
            .await?;
        let window = match window {
            Some(window) => window,
            None => self.store.recontact_window(&workspace).await?,
        };
        let report = reports::metrics(&self.store, &workspace, &query).await?;
        Ok(Response::new(pb::GetConversationMetricsResponse {
            positions,
            totals: Some(metrics_to_proto(&report.totals, window)),
            series: report
                .series
                .iter()
                .map(|(start, end, tally)| pb::MetricsBucket {
                    start_time: Some(timestamp(*start)),
                    end_time: Some(timestamp(*end)),
                    metrics: Some(metrics_to_proto(tally, window)),
                })
                .collect(),
            groups: match query.group_by {
                Some(dimension) => report
                    .groups
                    .iter()
                    .map(|(value, tally)| pb::MetricsGroup {
                        key: Some(group_key(dimension, value)),
                        metrics: Some(metrics_to_proto(tally, window)),
                    })
                    .collect(),
                None => Vec::new(),
            },
        }))
    }

    async fn get_dashboard(
        &self,
        request: Request<pb::GetDashboardRequest>,
    ) -> Result<Response<pb::GetDashboardResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?.to_string();
        let zone = time_zone(&request.get_ref().time_zone)?;
        let positions = self
            .reflect(
                &workspace,
                request.metadata(),
                &request.get_ref().min_positions,
            )
            .await?;
        let now = to_micros(self.clock.now());
        let numbers = reports::dashboard(&self.store, &workspace, now, &zone).await?;
        Ok(Response::new(pb::GetDashboardResponse {
            dashboard: Some(dashboard_to_proto(&numbers, now, &zone)),
            positions,
        }))
    }

    type WatchDashboardStream = Streamed<pb::WatchDashboardResponse>;

    async fn watch_dashboard(
        &self,
        request: Request<pb::WatchDashboardRequest>,
    ) -> Result<Response<Self::WatchDashboardStream>, Status> {
        let workspace = authorize(&request, Role::Agent)?.to_string();
        let slot = stream_slot(&request)?;
        let zone = time_zone(&request.get_ref().time_zone)?;
        let now = to_micros(self.clock.now());
        // Fail the call itself (not the stream) on a bad zone.
        let first = reports::dashboard(&self.store, &workspace, now, &zone).await?;
        let (sender, receiver) = mpsc::channel(16);
        let (store, clock, shutdown) = (
            self.store.clone(),
            self.clock.clone(),
            self.shutdown.clone(),
        );
        let mut applied = self.consumer.applied();
        tokio::spawn(async move {
            let mut last: Option<DashboardNumbers> = None;
            let mut numbers = Ok(first);
            let mut now = now;
            loop {
                // Wake when the at-risk list changes by the clock alone (a target is missed),
                // not only on new events and the periodic refresh.
                let mut wait = DASHBOARD_REFRESH;
                match numbers {
                    Ok(current) => {
                        if let Some(next) = current.next_change {
                            let until = u64::try_from(next.saturating_sub(now)).unwrap_or(0);
                            wait = wait.min(Duration::from_micros(until));
                        }
                        if last.as_ref() != Some(&current) {
                            let dashboard = dashboard_to_proto(&current, now, &zone);
                            let response = pb::WatchDashboardResponse {
                                dashboard: Some(dashboard),
                            };
                            if sender.send(Ok(response)).await.is_err() {
                                return;
                            }
                            last = Some(current);
                        }
                    }
                    Err(error) => {
                        let _closed = sender.send(Err(Status::from(error))).await;
                        return;
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = sender.closed() => return,
                    changed = applied.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(wait) => {}
                }
                now = to_micros(clock.now());
                numbers = reports::dashboard(&store, &workspace, now, &zone).await;
            }
        });
        Ok(Response::new(slot.hold(ReceiverStream::new(receiver))))
    }

    async fn get_leaderboard(
        &self,
        request: Request<pb::GetLeaderboardRequest>,
    ) -> Result<Response<pb::GetLeaderboardResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?.to_string();
        let metadata = request.metadata().clone();
        let request = request.into_inner();
        let by = match pb::LeaderboardSubject::try_from(request.subject) {
            Ok(pb::LeaderboardSubject::Users) => Dimension::Assignee,
            Ok(pb::LeaderboardSubject::Teams) => Dimension::Team,
            _ => return Err(ApiError::invalid("subject", "must be USERS or TEAMS").into()),
        };
        let ranking = match pb::LeaderboardRanking::try_from(request.ranking) {
            Ok(pb::LeaderboardRanking::ClosedCount) => Ranking::ClosedCount,
            Ok(pb::LeaderboardRanking::MedianResolutionTime) => Ranking::MedianResolution,
            Ok(pb::LeaderboardRanking::MedianFirstResponseTime) => Ranking::MedianFirstResponse,
            _ => return Err(ApiError::invalid("ranking", "must be a known ranking").into()),
        };
        let limit = match request.limit {
            0 => 10,
            1..=100 => request.limit as usize,
            _ => {
                return Err(
                    ApiError::invalid("limit", "must be between 0 (default 10) and 100").into(),
                );
            }
        };
        let range = (
            required_micros("start_time", request.start_time.as_ref())?,
            required_micros("end_time", request.end_time.as_ref())?,
        );
        let filter = parse_filter(request.filter.as_ref())?;
        let positions = self
            .reflect(&workspace, &metadata, &request.min_positions)
            .await?;
        let ranked =
            reports::leaderboard(&self.store, &workspace, range, by, &filter, ranking, limit)
                .await?;
        let entries = ranked
            .iter()
            .map(|(rank, who, stats)| {
                let (median_resolution, average_resolution) =
                    median_and_average(stats.resolution.summary());
                let (median_first, average_first) =
                    median_and_average(stats.first_response.summary());
                let (user_id, team_id) = match by {
                    Dimension::Team => (String::new(), who.clone()),
                    _ => (who.clone(), String::new()),
                };
                pb::LeaderboardEntry {
                    rank: *rank as i32,
                    user_id,
                    team_id,
                    closed_count: stats.closed as i64,
                    median_resolution_time: median_resolution,
                    median_first_response_time: median_first,
                    average_resolution_time: average_resolution,
                    average_first_response_time: average_first,
                }
            })
            .collect();
        Ok(Response::new(pb::GetLeaderboardResponse {
            entries,
            positions,
        }))
    }

    type ExportConversationsStream = Streamed<pb::ExportConversationsResponse>;

    async fn export_conversations(
        &self,
        request: Request<pb::ExportConversationsRequest>,
    ) -> Result<Response<Self::ExportConversationsStream>, Status> {
        let workspace = authorize(&request, Role::Agent)?.to_string();
        let slot = stream_slot(&request)?;
        let metadata = request.metadata().clone();
        let request = request.into_inner();
        let range = ExportRange::parse(
            request.start_time.as_ref(),
            request.end_time.as_ref(),
            request.filter.as_ref(),
        )?;
        self.reflect(&workspace, &metadata, &request.min_positions)
            .await?;
        let rows = ReceiverStream::new(self.export_rows(workspace, range))
            .map(|row| row.map(|row| pb::ExportConversationsResponse { row: Some(row) }));
        Ok(Response::new(slot.hold(rows)))
    }

    type ExportConversationsCsvStream = Streamed<pb::ExportConversationsCsvResponse>;

    async fn export_conversations_csv(
        &self,
        request: Request<pb::ExportConversationsCsvRequest>,
    ) -> Result<Response<Self::ExportConversationsCsvStream>, Status> {
        let workspace = authorize(&request, Role::Agent)?.to_string();
        let slot = stream_slot(&request)?;
        let metadata = request.metadata().clone();
        let request = request.into_inner();
        let range = ExportRange::parse(
            request.start_time.as_ref(),
            request.end_time.as_ref(),
            request.filter.as_ref(),
        )?;
        self.reflect(&workspace, &metadata, &request.min_positions)
            .await?;
        let mut rows = self.export_rows(workspace, range);
        let shutdown = self.shutdown.clone();
        let (sender, receiver) = mpsc::channel(4);
        tokio::spawn(async move {
            let send =
                |chunk: Vec<u8>| sender.send(Ok(pb::ExportConversationsCsvResponse { chunk }));
            let mut chunker = csv::Chunker::default();
            let _header_fits = chunker.push(csv::HEADER);
            while let Some(row) = rows.recv().await {
                let row = match row {
                    Ok(row) => row,
                    Err(status) => {
                        let _closed = sender.send(Err(status)).await;
                        return;
                    }
                };
                let fields = csv::record(&row);
                if let Some(chunk) = chunker.push(fields.iter().map(String::as_str))
                    && send(chunk).await.is_err()
                {
                    return;
                }
            }
            if shutdown.is_cancelled() {
                // The rows stopped early: a last chunk would make a cut document look whole.
                let stopping = ApiError::Unavailable(
                    "the metrics service is stopping; export the range again".into(),
                );
                let _closed = sender.send(Err(Status::from(stopping))).await;
                return;
            }
            if let Some(chunk) = chunker.finish() {
                let _closed = send(chunk).await;
            }
        });
        Ok(Response::new(slot.hold(ReceiverStream::new(receiver))))
    }

    async fn get_report_settings(
        &self,
        request: Request<pb::GetReportSettingsRequest>,
    ) -> Result<Response<pb::GetReportSettingsResponse>, Status> {
        let workspace = authorize(&request, Role::Agent)?.to_string();
        let settings = self.store.report_settings(&workspace).await?;
        Ok(Response::new(pb::GetReportSettingsResponse {
            settings: Some(settings::settings_to_proto(&settings)),
        }))
    }

    async fn update_report_settings(
        &self,
        request: Request<pb::UpdateReportSettingsRequest>,
    ) -> Result<Response<pb::UpdateReportSettingsResponse>, Status> {
        let workspace = authorize(&request, Role::Admin)?.to_string();
        let request = request.into_inner();
        let settings = self
            .store
            .update_report_settings(&workspace, to_micros(self.clock.now()), |current| {
                settings::apply_update(
                    current,
                    request.settings.as_ref(),
                    request.update_mask.as_ref(),
                )
            })
            .await?;
        Ok(Response::new(pb::UpdateReportSettingsResponse {
            settings: Some(settings::settings_to_proto(&settings)),
        }))
    }

    async fn rebuild_aggregates(
        &self,
        request: Request<pb::RebuildAggregatesRequest>,
    ) -> Result<Response<pb::RebuildAggregatesResponse>, Status> {
        if authorize_service(&request)?.is_some() {
            // A workspace named here would suggest a rebuild of that workspace alone.
            return Err(ApiError::invalid(
                WORKSPACE_HEADER,
                "RebuildAggregates rebuilds every workspace: call it with a service token that \
                 names no workspace",
            )
            .into());
        }
        if !self.allow_rebuild {
            return Err(ApiError::precondition(
                "REBUILD_DISABLED",
                "rebuilding recomputes every workspace's aggregates; start the metrics service with \
                 CHARLA_ALLOW_REBUILD=true to allow it",
            )
            .into());
        }
        let events_applied = self.consumer.rebuild().await?;
        let cursor = self
            .store
            .cursor()
            .positions()
            .await?
            .into_iter()
            .map(|(partition, sequence)| PartitionCursor {
                partition,
                sequence,
            })
            .collect();
        Ok(Response::new(pb::RebuildAggregatesResponse {
            events_applied,
            cursor,
        }))
    }
}
