//! Business-time metrics through the real services: a workspace sets business hours (New York,
//! Monday to Friday 09:00-17:00, Memorial Day off), changes them to round the clock, then removes
//! them; conversations opened before, under and after each schedule are measured by the one in
//! effect when they opened, as the test works out by hand, and a rebuild gives the same numbers.

use std::time::SystemTime;

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::conversation::v1::{AuthorKind, CloseSource};
use charla_proto::charla::metrics::v1 as pb;
use charla_testing::{Backend, backend_tests};
use jiff::Timestamp;

use crate::helpers::{MetricsEnv, spawn_env};

backend_tests!(
    durations_in_business_time_follow_the_schedule_in_effect_at_opening,
    bad_business_hours_are_refused_naming_the_field,
);

const MINUTE: u64 = 60;
const HOUR: u64 = 3600;

/// An instant given in New York's local time in May 2026 (EDT, UTC-4).
fn new_york(local: &str) -> SystemTime {
    let utc: Timestamp = format!("{local}-04:00").parse().unwrap();
    charla_runtime::clock::from_micros(utc.as_microsecond())
}

fn interval(day: pb::DayOfWeek, start: &str, end: &str) -> pb::BusinessInterval {
    pb::BusinessInterval {
        day: day as i32,
        start_time: start.into(),
        end_time: end.into(),
    }
}

fn weekdays_nine_to_five() -> pb::BusinessHours {
    use pb::DayOfWeek::*;
    pb::BusinessHours {
        time_zone: "America/New_York".into(),
        intervals: [Monday, Tuesday, Wednesday, Thursday, Friday]
            .map(|day| interval(day, "09:00", "17:00"))
            .to_vec(),
        holidays: vec!["2026-05-25".into()],
    }
}

fn round_the_clock() -> pb::BusinessHours {
    use pb::DayOfWeek::*;
    pb::BusinessHours {
        time_zone: "America/New_York".into(),
        intervals: [
            Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday,
        ]
        .map(|day| interval(day, "00:00", "24:00"))
        .to_vec(),
        holidays: Vec::new(),
    }
}

async fn set_business_hours(env: &MetricsEnv, at: &str, hours: Option<pb::BusinessHours>) {
    env.clock.set(new_york(at));
    let answer = env
        .metrics()
        .await
        .update_report_settings(env.req(pb::UpdateReportSettingsRequest {
            settings: Some(pb::ReportSettings {
                business_hours: hours.clone(),
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["business_hours".into()],
            }),
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.settings.unwrap().business_hours, hours);
}

/// One conversation, in New York local times: opened, optionally assigned and answered, closed.
struct Scripted {
    opened: &'static str,
    assigned: Option<&'static str>,
    answered: Option<&'static str>,
    closed: &'static str,
}

async fn play(env: &MetricsEnv, c: &Scripted) {
    let contact = env.new_contact(env.workspace).await;
    env.clock.set(new_york(c.opened));
    let conversation = env
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
    let mut client = env.conversations().await;
    if let Some(at) = c.assigned {
        env.clock.set(new_york(at));
        client
            .assign_conversation(env.req(conversation_pb::AssignConversationRequest {
                conversation_id: conversation.clone(),
                assignee_user_id: "ana".into(),
                ..Default::default()
            }))
            .await
            .unwrap();
    }
    if let Some(at) = c.answered {
        env.clock.set(new_york(at));
        env.message(
            env.workspace,
            &contact,
            ChannelType::Whatsapp,
            AuthorKind::User,
            "ana",
        )
        .await;
    }
    env.clock.set(new_york(c.closed));
    client
        .close_conversation(env.req(conversation_pb::CloseConversationRequest {
            conversation_id: conversation,
            source: CloseSource::User as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
}

fn seconds(stats: &pb::DurationStats) -> (i64, u64, u64, u64) {
    (
        stats.count,
        stats.sum.unwrap().seconds as u64,
        stats.min.unwrap().seconds as u64,
        stats.max.unwrap().seconds as u64,
    )
}

async fn report(env: &MetricsEnv) -> pb::GetConversationMetricsResponse {
    env.metrics()
        .await
        .get_conversation_metrics(env.req(pb::GetConversationMetricsRequest {
            start_time: Some(new_york("2026-05-01T00:00:00").into()),
            end_time: Some(new_york("2026-06-01T00:00:00").into()),
            time_zone: "America/New_York".into(),
            granularity: pb::Granularity::Week as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
}

async fn durations_in_business_time_follow_the_schedule_in_effect_at_opening(backend: Backend) {
    let Some(env) = spawn_env(backend, new_york("2026-05-01T08:00:00")).await else {
        return;
    };
    // Before any schedule: no business time.
    play(
        &env,
        &Scripted {
            opened: "2026-05-01T10:00:00",
            assigned: None,
            answered: None,
            closed: "2026-05-01T10:30:00",
        },
    )
    .await;
    set_business_hours(&env, "2026-05-01T11:00:00", Some(weekdays_nine_to_five())).await;
    // Friday 16:00 to Monday 10:00: 1 h on Friday, 1 h on Monday; assigned after 30 min, first
    // response Monday 09:30, 1 h 30 min of business time.
    play(
        &env,
        &Scripted {
            opened: "2026-05-01T16:00:00",
            assigned: Some("2026-05-01T16:30:00"),
            answered: Some("2026-05-04T09:30:00"),
            closed: "2026-05-04T10:00:00",
        },
    )
    .await;
    // Opened on a Saturday, answered the same day (no business time), closed Monday 09:15.
    play(
        &env,
        &Scripted {
            opened: "2026-05-09T12:00:00",
            assigned: None,
            answered: Some("2026-05-09T13:00:00"),
            closed: "2026-05-11T09:15:00",
        },
    )
    .await;
    // Friday 16:00 to Tuesday 09:30 across Memorial Day: 1 h + 30 min.
    play(
        &env,
        &Scripted {
            opened: "2026-05-22T16:00:00",
            assigned: None,
            answered: None,
            closed: "2026-05-26T09:30:00",
        },
    )
    .await;
    // Opened under the weekday schedule, closed after the change: still measured by it, Tuesday
    // 11:00-17:00 and Wednesday 09:00-10:00 (round the clock would make it 23 h).
    let contact = env.new_contact(env.workspace).await;
    env.clock.set(new_york("2026-05-26T11:00:00"));
    let straddling = env
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
    set_business_hours(&env, "2026-05-26T12:00:00", Some(round_the_clock())).await;
    env.clock.set(new_york("2026-05-27T10:00:00"));
    env.conversations()
        .await
        .close_conversation(env.req(conversation_pb::CloseConversationRequest {
            conversation_id: straddling,
            source: CloseSource::User as i32,
            ..Default::default()
        }))
        .await
        .unwrap();
    // Under round the clock: Wednesday 20:00 to 22:00 is 2 h.
    play(
        &env,
        &Scripted {
            opened: "2026-05-27T20:00:00",
            assigned: None,
            answered: None,
            closed: "2026-05-27T22:00:00",
        },
    )
    .await;
    set_business_hours(&env, "2026-05-28T00:00:00", None).await;
    // After the schedule is removed: no business time.
    play(
        &env,
        &Scripted {
            opened: "2026-05-28T10:00:00",
            assigned: None,
            answered: None,
            closed: "2026-05-28T11:00:00",
        },
    )
    .await;
    env.clock.set(new_york("2026-05-30T00:00:00"));
    env.settle().await;

    let live = report(&env).await;
    let totals = live.totals.unwrap();
    assert_eq!(totals.closed_count, 7);
    let business = totals.business_time.unwrap();
    let resolutions = [2 * HOUR, 15 * MINUTE, 90 * MINUTE, 7 * HOUR, 2 * HOUR];
    assert_eq!(
        seconds(&business.resolution_time.unwrap()),
        (5, resolutions.iter().sum(), 15 * MINUTE, 7 * HOUR)
    );
    assert_eq!(
        seconds(&business.first_response_time.unwrap()),
        (2, 90 * MINUTE, 0, 90 * MINUTE)
    );
    assert_eq!(
        seconds(&business.time_to_first_assignment.unwrap()),
        (1, 30 * MINUTE, 30 * MINUTE, 30 * MINUTE)
    );
    // Each reply answered the opening message: Friday 16:00 to Monday 09:30, and a Saturday one.
    assert_eq!(
        seconds(&business.response_time.unwrap()),
        (2, 90 * MINUTE, 0, 90 * MINUTE)
    );
    // The calendar-time numbers count every conversation.
    assert_eq!(totals.resolution_time.unwrap().count, 7);
    // The weeks (Monday to Monday) split the conversations by their closing time.
    let weekly: Vec<i64> = live
        .series
        .iter()
        .map(|bucket| {
            bucket
                .metrics
                .unwrap()
                .business_time
                .unwrap()
                .resolution_time
                .map_or(0, |stats| stats.count)
        })
        .collect();
    assert_eq!(weekly, [0, 1, 1, 0, 3]);

    let settings = env
        .metrics()
        .await
        .get_report_settings(env.req(pb::GetReportSettingsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settings.settings.unwrap().business_hours, None);

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

async fn bad_business_hours_are_refused_naming_the_field(backend: Backend) {
    let Some(env) = spawn_env(backend, new_york("2026-05-01T08:00:00")).await else {
        return;
    };
    let mut metrics = env.metrics().await;
    let update = |hours: pb::BusinessHours| pb::UpdateReportSettingsRequest {
        settings: Some(pb::ReportSettings {
            business_hours: Some(hours),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["business_hours".into()],
        }),
    };
    let mut zero_length = weekdays_nine_to_five();
    zero_length.intervals[2].end_time = "09:00".into();
    let mut unknown_zone = weekdays_nine_to_five();
    unknown_zone.time_zone = "Mars/Olympus_Mons".into();
    let mut overlapping = weekdays_nine_to_five();
    overlapping
        .intervals
        .push(interval(pb::DayOfWeek::Monday, "16:00", "18:00"));
    let mut bad_holiday = weekdays_nine_to_five();
    bad_holiday.holidays.push("1969-12-31".into());
    for (hours, field) in [
        (zero_length, "settings.business_hours.intervals[2].end_time"),
        (unknown_zone, "settings.business_hours.time_zone"),
        (overlapping, "settings.business_hours.intervals[5]"),
        (bad_holiday, "settings.business_hours.holidays[1]"),
    ] {
        charla_testing::assert_invalid_field(
            metrics.update_report_settings(env.req(update(hours))).await,
            field,
        );
    }
    // Nothing was stored.
    let settings = metrics
        .get_report_settings(env.req(pb::GetReportSettingsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(settings.settings.unwrap().business_hours, None);
    env.stop().await;
}
