//! Hostile input, case by case: NUL bytes in time zones and filters refused by name, times at
//! every extreme, a dashboard asked for when the clock is at the end of the calendar, unreadable
//! and oversize requests, and a megabyte time zone that the error quotes only in part.

use std::time::{Duration, SystemTime};

use charla_proto::charla::metrics::v1 as pb;
use charla_testing::raw::call_raw;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use tonic::Code;

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(
    text_with_a_nul_is_refused_by_name,
    report_times_at_every_extreme_are_refused_by_name,
    a_dashboard_past_the_calendar_is_a_precondition_not_a_bad_field,
    unreadable_and_oversize_requests_are_the_callers_mistake,
);

/// A quarter-hour edge (a whole number of 15 minutes since the epoch).
const START: i64 = 1_780_000_200;

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds, nanos: 0 })
}

fn report(
    time_zone: &str,
    filter: Option<pb::ConversationFilter>,
) -> pb::GetConversationMetricsRequest {
    pb::GetConversationMetricsRequest {
        start_time: at(START),
        end_time: at(START + 86_400),
        time_zone: time_zone.into(),
        granularity: pb::Granularity::Hour as i32,
        filter,
        group_by: 0,
        ..Default::default()
    }
}

async fn start(backend: Backend) -> Option<MetricsEnv> {
    spawn_env(
        backend,
        SystemTime::UNIX_EPOCH + Duration::from_secs(START as u64),
    )
    .await
}

async fn text_with_a_nul_is_refused_by_name(backend: Backend) {
    let Some(env) = start(backend).await else {
        return;
    };
    let mut client = env.metrics().await;
    client
        .get_conversation_metrics(env.req(report("UTC", None)))
        .await
        .expect("a good request works");
    assert_invalid_field(
        client
            .get_conversation_metrics(env.req(report("UTC\0", None)))
            .await,
        "time_zone",
    );
    assert_invalid_field(
        client
            .get_dashboard(env.req(pb::GetDashboardRequest {
                time_zone: "\0".into(),
                ..Default::default()
            }))
            .await,
        "time_zone",
    );
    assert_invalid_field(
        client
            .watch_dashboard(env.req(pb::WatchDashboardRequest {
                time_zone: "Asia/Kolkata\0".into(),
            }))
            .await,
        "time_zone",
    );
    let filters = [
        (
            pb::ConversationFilter {
                assignee_user_ids: vec!["ana".into(), "l\0i".into()],
                ..Default::default()
            },
            "filter.assignee_user_ids[1]",
        ),
        (
            pb::ConversationFilter {
                team_ids: vec!["\0".into()],
                ..Default::default()
            },
            "filter.team_ids[0]",
        ),
        (
            pb::ConversationFilter {
                channel_ids: vec!["wa\0".into()],
                ..Default::default()
            },
            "filter.channel_ids[0]",
        ),
        (
            pb::ConversationFilter {
                closing_categories: vec!["Spam\0".into()],
                ..Default::default()
            },
            "filter.closing_categories[0]",
        ),
    ];
    for (filter, field) in filters {
        assert_invalid_field(
            client
                .get_conversation_metrics(env.req(report("UTC", Some(filter.clone()))))
                .await,
            field,
        );
        assert_invalid_field(
            client
                .get_leaderboard(env.req(pb::GetLeaderboardRequest {
                    start_time: at(START),
                    end_time: at(START + 86_400),
                    subject: pb::LeaderboardSubject::Users as i32,
                    ranking: pb::LeaderboardRanking::ClosedCount as i32,
                    filter: Some(filter.clone()),
                    limit: 0,
                    ..Default::default()
                }))
                .await,
            field,
        );
        assert_invalid_field(
            client
                .export_conversations(env.req(pb::ExportConversationsRequest {
                    start_time: at(START),
                    end_time: at(START + 86_400),
                    filter: Some(filter),
                    ..Default::default()
                }))
                .await,
            field,
        );
    }
}

async fn report_times_at_every_extreme_are_refused_by_name(backend: Backend) {
    let Some(env) = start(backend).await else {
        return;
    };
    let mut client = env.metrics().await;
    for (seconds, nanos) in [
        (i64::MIN, 0),
        (i64::MAX, i32::MAX),
        (-62_135_596_801, 0),
        (253_402_300_800, 0),
        (START, -1),
        (START, 1_000_000_000),
    ] {
        let time = Some(prost_types::Timestamp { seconds, nanos });
        assert_invalid_field(
            client
                .get_conversation_metrics(env.req(pb::GetConversationMetricsRequest {
                    start_time: time,
                    ..report("UTC", None)
                }))
                .await,
            "start_time",
        );
        assert_invalid_field(
            client
                .export_conversations(env.req(pb::ExportConversationsRequest {
                    start_time: at(START),
                    end_time: time,
                    filter: None,
                    ..Default::default()
                }))
                .await,
            "end_time",
        );
    }
    // The whole calendar at once, in a zone west of UTC (local times before the year 1): refused
    // by name, not a failure.
    let status = client
        .get_conversation_metrics(env.req(pb::GetConversationMetricsRequest {
            start_time: at(-62_135_596_800),
            end_time: at(253_402_300_799 - 299),
            time_zone: "America/Guayaquil".into(),
            granularity: pb::Granularity::Month as i32,
            ..report("UTC", None)
        }))
        .await
        .expect_err("too much, or out of range");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

async fn a_dashboard_past_the_calendar_is_a_precondition_not_a_bad_field(backend: Backend) {
    let Some(env) = start(backend).await else {
        return;
    };
    // The test clock in the last hours of 9999, past the end of the calendar the reports use
    // (whose days must fit every zone): no zone has a "today" there.
    let end_of_calendar = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    env.clock.set(end_of_calendar - Duration::from_secs(3_600));
    let mut client = env.metrics().await;
    for zone in ["UTC", "Asia/Kolkata"] {
        assert_code(
            client
                .get_dashboard(env.req(pb::GetDashboardRequest {
                    time_zone: zone.into(),
                    ..Default::default()
                }))
                .await,
            Code::FailedPrecondition,
        );
    }
    env.clock
        .set(end_of_calendar - Duration::from_secs(3 * 86_400));
    client
        .get_dashboard(env.req(pb::GetDashboardRequest {
            time_zone: "Asia/Kolkata".into(),
            ..Default::default()
        }))
        .await
        .expect("three days earlier, today is a day of the calendar");
}

async fn unreadable_and_oversize_requests_are_the_callers_mistake(backend: Backend) {
    let Some(env) = start(backend).await else {
        return;
    };
    const SERVICE: &str = "/charla.metrics.v1.MetricsService";
    for (method, streaming) in [
        ("GetConversationMetrics", false),
        ("WatchDashboard", true),
        ("ExportConversations", true),
    ] {
        assert_code(
            call_raw(
                env.metrics_addr,
                &format!("{SERVICE}/{method}"),
                streaming,
                vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0xff],
                env.workspace,
            )
            .await,
            Code::InvalidArgument,
        );
    }
    let mut client = env.metrics().await;
    assert_code(
        client
            .get_dashboard(env.req(pb::GetDashboardRequest {
                time_zone: "Z".repeat(5 << 20),
                ..Default::default()
            }))
            .await,
        Code::ResourceExhausted,
    );
    // A megabyte zone name: refused by name, and quoted only in part.
    let status = client
        .get_dashboard(env.req(pb::GetDashboardRequest {
            time_zone: "Z".repeat(1 << 20),
            ..Default::default()
        }))
        .await
        .expect_err("no such zone");
    assert!(status.message().len() < 1024, "{}", status.message().len());
    assert!(status.details().len() < 1024);
    assert_invalid_field(Err::<(), _>(status), "time_zone");
}
