//! Service level targets through the real services: a workspace sets calendar-time targets,
//! then business-time ones; each conversation is held to the targets in effect when it opened,
//! and the achieved and breached counts are those the test works out by hand; a rebuild gives the
//! same; bad targets are refused naming the field.

use std::time::SystemTime;

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::conversation::v1::{AuthorKind, CloseSource};
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, backend_tests};
use jiff::Timestamp;

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(
    conversations_are_held_to_the_targets_in_effect_when_they_opened,
    bad_targets_are_refused_naming_the_field,
    the_dashboard_lists_conversations_at_risk_and_a_watch_hears_of_a_breach,
);

/// An instant of June 2026, UTC ("01T08:00" is Monday June 1st, 08:00).
fn june(at: &str) -> SystemTime {
    let utc: Timestamp = format!("2026-06-{at}:00Z").parse().unwrap();
    charla_runtime::clock::from_micros(utc.as_microsecond())
}

fn minutes(n: i64) -> Option<prost_types::Duration> {
    Some(prost_types::Duration {
        seconds: n * 60,
        nanos: 0,
    })
}

async fn update(env: &MetricsEnv, at: &str, settings: pb::ReportSettings, path: &str) {
    env.clock.set(june(at));
    env.metrics()
        .await
        .update_report_settings(env.req(pb::UpdateReportSettingsRequest {
            settings: Some(settings),
            update_mask: Some(prost_types::FieldMask {
                paths: vec![path.into()],
            }),
        }))
        .await
        .unwrap();
}

async fn set_targets(env: &MetricsEnv, at: &str, targets: pb::SlaTargets) {
    let settings = pb::ReportSettings {
        sla_targets: Some(targets),
        ..Default::default()
    };
    update(env, at, settings, "sla_targets").await;
}

/// Opens a conversation at `opened`, has a user answer at `answered` (if any), closes it at
/// `closed`.
async fn conversation(env: &MetricsEnv, opened: &str, answered: Option<&str>, closed: &str) {
    let contact = env.new_contact(env.workspace).await;
    env.clock.set(june(opened));
    let id = env
        .message(
            env.workspace,
            &contact,
            ChannelType::Whatsapp,
            AuthorKind::Contact,
            "",
        )
        .await
        .unwrap()
        .conversation_id;
    if let Some(at) = answered {
        env.clock.set(june(at));
        env.message(
            env.workspace,
            &contact,
            ChannelType::Whatsapp,
            AuthorKind::User,
            "ana",
        )
        .await;
    }
    env.clock.set(june(closed));
    env.conversations()
        .await
        .close_conversation(env.req(conversation_pb::CloseConversationRequest {
            conversation_id: id,
            source: CloseSource::User as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
}

async fn report(env: &MetricsEnv) -> pb::GetConversationMetricsResponse {
    env.metrics()
        .await
        .get_conversation_metrics(env.req(pb::GetConversationMetricsRequest {
            start_time: Some(june("01T00:00").into()),
            end_time: Some(june("03T00:00").into()),
            granularity: pb::Granularity::Day as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
}

/// (first response achieved, breached, resolution achieved, breached)
fn counts(sla: &pb::SlaStats) -> (i64, i64, i64, i64) {
    (
        sla.first_response_achieved_count,
        sla.first_response_breached_count,
        sla.resolution_achieved_count,
        sla.resolution_breached_count,
    )
}

async fn conversations_are_held_to_the_targets_in_effect_when_they_opened(backend: Backend) {
    let Some(env) = spawn_env(backend, june("01T08:00")).await else {
        return;
    };
    // Before any target: held to nothing.
    conversation(&env, "01T08:01", Some("01T08:05"), "01T08:09").await;
    set_targets(
        &env,
        "01T08:10",
        pb::SlaTargets {
            first_response: minutes(5),
            resolution: minutes(60),
            business_time: false,
        },
    )
    .await;
    // Answered in 3 min, resolved in 30: both met.
    conversation(&env, "01T08:20", Some("01T08:23"), "01T08:50").await;
    // Answered in 10, resolved in 90: both missed.
    conversation(&env, "01T09:00", Some("01T09:10"), "01T10:30").await;
    // Closed unanswered after 4 min: no first response count; resolved in time.
    conversation(&env, "01T10:40", None, "01T10:44").await;
    // Left unanswered 20 min: first response missed; resolved in time.
    conversation(&env, "01T11:00", None, "01T11:20").await;
    // Exactly at both targets: met.
    conversation(&env, "01T11:30", Some("01T11:35"), "01T12:30").await;
    // Business hours, then a 30-minute first response target in business time only.
    let hours = pb::BusinessHours {
        time_zone: "UTC".into(),
        intervals: (1..=5)
            .map(|day| pb::BusinessInterval {
                day,
                start_time: "09:00".into(),
                end_time: "17:00".into(),
            })
            .collect(),
        holidays: Vec::new(),
    };
    let settings = pb::ReportSettings {
        business_hours: Some(hours),
        ..Default::default()
    };
    update(&env, "01T13:00", settings, "business_hours").await;
    set_targets(
        &env,
        "01T13:05",
        pb::SlaTargets {
            first_response: minutes(30),
            resolution: None,
            business_time: true,
        },
    )
    .await;
    // Monday 16:50 to Tuesday 09:10 is 20 business minutes (16 h 20 min of calendar): met.
    conversation(&env, "01T16:50", Some("02T09:10"), "02T09:20").await;
    env.clock.set(june("02T12:00"));
    env.settle().await;

    let live = report(&env).await;
    let sla = live.totals.unwrap().sla.unwrap();
    assert_eq!(counts(&sla), (3, 2, 4, 1));
    assert_eq!(sla.first_response_achievement_rate, 3.0 / 5.0);
    assert_eq!(sla.resolution_achievement_rate, 4.0 / 5.0);
    let daily: Vec<_> = live
        .series
        .iter()
        .map(|bucket| counts(&bucket.metrics.unwrap().sla.unwrap()))
        .collect();
    assert_eq!(daily, [(2, 2, 4, 1), (1, 0, 0, 0)]);

    env.metrics()
        .await
        .rebuild_aggregates(tonic::Request::new(pb::RebuildAggregatesRequest {}))
        .await
        .unwrap();
    let rebuilt = report(&env).await;
    assert_eq!(
        rebuilt.totals, live.totals,
        "a rebuild gives the live numbers"
    );
    assert_eq!(rebuilt.series, live.series);
    env.stop().await;
}

/// (conversation, target, breached) of a dashboard's at-risk list.
fn at_risk(dashboard: &pb::Dashboard) -> Vec<(String, pb::SlaTarget, bool)> {
    dashboard
        .at_risk
        .iter()
        .map(|a| (a.conversation_id.clone(), a.target(), a.breached))
        .collect()
}

async fn the_dashboard_lists_conversations_at_risk_and_a_watch_hears_of_a_breach(backend: Backend) {
    let Some(env) = spawn_env(backend, june("01T09:00")).await else {
        return;
    };
    set_targets(
        &env,
        "01T09:30",
        pb::SlaTargets {
            first_response: minutes(20),
            resolution: minutes(60),
            business_time: false,
        },
    )
    .await;
    // One left unanswered, one answered after 5 minutes; both opened at 10:00.
    let mut opened = Vec::new();
    for answered in [false, true] {
        let contact = env.new_contact(env.workspace).await;
        env.clock.set(june("01T10:00"));
        let id = env
            .message(
                env.workspace,
                &contact,
                ChannelType::Whatsapp,
                AuthorKind::Contact,
                "",
            )
            .await
            .unwrap()
            .conversation_id;
        if answered {
            env.clock.set(june("01T10:05"));
            env.message(
                env.workspace,
                &contact,
                ChannelType::Whatsapp,
                AuthorKind::User,
                "ana",
            )
            .await;
        }
        opened.push(id);
    }
    let (unanswered, answered) = (opened[0].clone(), opened[1].clone());
    env.settle().await;
    let dashboard = |at: &'static str| {
        let env = &env;
        async move {
            env.clock.set(june(at));
            env.metrics()
                .await
                .get_dashboard(env.req(pb::GetDashboardRequest::default()))
                .await
                .unwrap()
                .into_inner()
                .dashboard
                .unwrap()
        }
    };
    use pb::SlaTarget::{FirstResponse, Resolution};
    // 10:14: nothing past three quarters of a target yet.
    assert_eq!(at_risk(&dashboard("01T10:14").await), []);
    // 10:16: the unanswered one is past 15 of its 20 minutes.
    assert_eq!(
        at_risk(&dashboard("01T10:16").await),
        [(unanswered.clone(), FirstResponse, false)]
    );
    // 10:50: it missed its first response; both are past 45 of their 60 minutes to resolve.
    let late = dashboard("01T10:50").await;
    assert_eq!(at_risk(&late)[0], (unanswered.clone(), FirstResponse, true));
    let mut resolving: Vec<_> = at_risk(&late)[1..].to_vec();
    resolving.sort();
    let mut want = vec![
        (unanswered.clone(), Resolution, false),
        (answered.clone(), Resolution, false),
    ];
    want.sort();
    assert_eq!(resolving, want);
    assert_eq!(
        late.at_risk[0].deadline,
        Some(june("01T10:20").into()),
        "opening plus the target"
    );

    // A watch half a second before the resolution deadline is sent a new dashboard when it
    // passes, with no event to wake it: by the clock alone, well before the 30 s refresh.
    env.clock
        .set(june("01T10:59") + std::time::Duration::from_millis(59_500));
    let mut watch = env
        .metrics()
        .await
        .watch_dashboard(env.req(pb::WatchDashboardRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap().dashboard.unwrap();
    assert!(
        first
            .at_risk
            .iter()
            .all(|a| a.target() == FirstResponse || !a.breached)
    );
    env.clock.set(june("01T11:01"));
    let pushed = tokio::time::timeout(std::time::Duration::from_secs(10), watch.message())
        .await
        .expect("pushed when the deadline passed")
        .unwrap()
        .unwrap()
        .dashboard
        .unwrap();
    assert!(
        pushed
            .at_risk
            .iter()
            .filter(|a| a.target() == Resolution)
            .all(|a| a.breached),
        "{:?}",
        pushed.at_risk
    );
    env.stop().await;
}

async fn bad_targets_are_refused_naming_the_field(backend: Backend) {
    let Some(env) = spawn_env(backend, june("01T08:00")).await else {
        return;
    };
    let mut metrics = env.metrics().await;
    let request = |first_response, resolution| pb::UpdateReportSettingsRequest {
        settings: Some(pb::ReportSettings {
            sla_targets: Some(pb::SlaTargets {
                first_response,
                resolution,
                business_time: false,
            }),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["sla_targets".into()],
        }),
    };
    for (first, resolution, field) in [
        (minutes(0), None, "settings.sla_targets.first_response"),
        (minutes(-5), None, "settings.sla_targets.first_response"),
        (
            None,
            minutes(366 * 24 * 60),
            "settings.sla_targets.resolution",
        ),
    ] {
        charla_testing::assert_invalid_field(
            metrics
                .update_report_settings(env.req(request(first, resolution)))
                .await,
            field,
        );
    }
    let settings = metrics
        .get_report_settings(env.req(pb::GetReportSettingsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .settings
        .unwrap();
    assert_eq!(settings.sla_targets, None, "nothing was stored");
    env.stop().await;
}
