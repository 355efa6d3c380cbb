//! Bad report requests: each names its field.

use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, assert_code, assert_invalid_field, backend_tests};
use tonic::Code;

use crate::helpers::spawn_env;

backend_tests!(bad_report_requests_name_their_field);

/// A quarter-hour edge (a whole number of 15 minutes since the epoch).
const START: i64 = 1_780_000_200;

fn seconds(s: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp {
        seconds: s,
        nanos: 0,
    })
}

async fn bad_report_requests_name_their_field(backend: Backend) {
    let Some(env) = spawn_env(backend, std::time::SystemTime::now()).await else {
        return;
    };
    let mut client = env.metrics().await;
    let day = 86_400;
    let good = pb::GetConversationMetricsRequest {
        start_time: seconds(START),
        end_time: seconds(START + 7 * day),
        time_zone: "Asia/Kolkata".into(),
        granularity: pb::Granularity::Day as i32,
        filter: None,
        group_by: 0,
        ..Default::default()
    };
    client
        .get_conversation_metrics(env.req(good.clone()))
        .await
        .expect("a good request works");
    let in_utc = pb::GetConversationMetricsRequest {
        time_zone: String::new(),
        ..good.clone()
    };
    client
        .get_conversation_metrics(env.req(in_utc))
        .await
        .expect("an empty time zone means UTC");
    let cases = [
        (
            pb::GetConversationMetricsRequest {
                time_zone: "Mars/Olympus_Mons".into(),
                ..good.clone()
            },
            "time_zone",
        ),
        (
            pb::GetConversationMetricsRequest {
                end_time: good.start_time,
                ..good.clone()
            },
            "end_time",
        ),
        (
            pb::GetConversationMetricsRequest {
                start_time: good.end_time,
                end_time: good.start_time,
                ..good.clone()
            },
            "end_time",
        ),
        (
            pb::GetConversationMetricsRequest {
                start_time: None,
                ..good.clone()
            },
            "start_time",
        ),
        (
            pb::GetConversationMetricsRequest {
                start_time: seconds(good.start_time.unwrap().seconds + 1),
                ..good.clone()
            },
            "start_time",
        ),
        (
            pb::GetConversationMetricsRequest {
                granularity: pb::Granularity::Hour as i32,
                end_time: seconds(good.start_time.unwrap().seconds + 60 * day),
                ..good.clone()
            },
            "granularity",
        ),
        (
            pb::GetConversationMetricsRequest {
                granularity: 0,
                ..good.clone()
            },
            "granularity",
        ),
        (
            pb::GetConversationMetricsRequest {
                group_by: 42,
                ..good.clone()
            },
            "group_by",
        ),
        (
            pb::GetConversationMetricsRequest {
                filter: Some(pb::ConversationFilter {
                    channel_types: vec![3, 99],
                    ..Default::default()
                }),
                ..good.clone()
            },
            "filter.channel_types[1]",
        ),
    ];
    for (request, field) in cases {
        assert_invalid_field(
            client.get_conversation_metrics(env.req(request)).await,
            field,
        );
    }
    assert_code(
        client
            .get_conversation_metrics(charla_testing::with_token("not-a-jwt", good.clone()))
            .await,
        Code::Unauthenticated,
    );
    assert_invalid_field(
        client
            .get_dashboard(env.req(pb::GetDashboardRequest {
                time_zone: "Nowhere/Land".into(),
                ..Default::default()
            }))
            .await,
        "time_zone",
    );
    assert_invalid_field(
        client
            .get_leaderboard(env.req(pb::GetLeaderboardRequest {
                subject: 0,
                ranking: pb::LeaderboardRanking::ClosedCount as i32,
                start_time: good.start_time,
                end_time: good.end_time,
                filter: None,
                limit: 0,
                ..Default::default()
            }))
            .await,
        "subject",
    );
    // Rebuilding is an operator's switch: off unless the service was started with it.
    let mut env = env;
    env.allow_rebuild = false;
    env.restart_metrics().await;
    let status = charla_testing::assert_code(
        env.metrics()
            .await
            .rebuild_aggregates(tonic::Request::new(pb::RebuildAggregatesRequest {}))
            .await,
        Code::FailedPrecondition,
    );
    assert!(
        status.message().contains("CHARLA_ALLOW_REBUILD=true"),
        "{status:?}"
    );
    env.stop().await;
}
