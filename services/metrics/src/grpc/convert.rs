//! The gRPC edge's conversions. Enum dimensions are stored under their proto names
//! (`CHANNEL_TYPE_WHATSAPP`, `OPEN_SOURCE_USER`...), so they map both ways without tables.

use std::time::Duration;

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as conversation_pb;
use charla_proto::charla::metrics::v1 as pb;
use charla_runtime::ApiError;
use charla_runtime::clock::to_timestamp;
use charla_runtime::validate::text_list;

use super::settings::window_to_proto;
use crate::domain::{Dimension, Filter, Granularity, RecontactWindow, Summary, Tally};

/// An instant field, required, as microseconds since the epoch.
pub fn required_micros(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<i64, ApiError> {
    let value = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    let time = charla_runtime::clock::parse_timestamp(field, value)?;
    Ok(charla_runtime::clock::to_micros(time))
}

/// The proto timestamp of an instant in microseconds.
pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    to_timestamp(charla_runtime::clock::from_micros(micros))
}

fn duration(micros: f64) -> prost_types::Duration {
    let micros = micros.round().max(0.0) as u64;
    prost_types::Duration::try_from(Duration::from_micros(micros)).unwrap_or_default()
}

/// A required granularity.
pub fn parse_granularity(value: i32) -> Result<Granularity, ApiError> {
    match pb::Granularity::try_from(value) {
        Ok(pb::Granularity::Hour) => Ok(Granularity::Hour),
        Ok(pb::Granularity::Day) => Ok(Granularity::Day),
        Ok(pb::Granularity::Week) => Ok(Granularity::Week),
        Ok(pb::Granularity::Month) => Ok(Granularity::Month),
        Ok(pb::Granularity::Unspecified) => Err(ApiError::invalid("granularity", "is required")),
        Err(_) => Err(ApiError::invalid(
            "granularity",
            format!("unknown granularity {value}"),
        )),
    }
}

/// An optional group-by dimension.
pub fn parse_group_by(value: i32) -> Result<Option<Dimension>, ApiError> {
    let dimension = match pb::GroupBy::try_from(value) {
        Ok(pb::GroupBy::Unspecified) => return Ok(None),
        Ok(pb::GroupBy::Assignee) => Dimension::Assignee,
        Ok(pb::GroupBy::Team) => Dimension::Team,
        Ok(pb::GroupBy::ChannelType) => Dimension::ChannelType,
        Ok(pb::GroupBy::Channel) => Dimension::Channel,
        Ok(pb::GroupBy::OpenedBy) => Dimension::OpenedBy,
        Ok(pb::GroupBy::ClosedBy) => Dimension::ClosedBy,
        Ok(pb::GroupBy::ClosingCategory) => Dimension::Category,
        Ok(pb::GroupBy::AutomatedBy) => Dimension::AutomatedBy,
        Err(_) => {
            return Err(ApiError::invalid(
                "group_by",
                format!("unknown group {value}"),
            ));
        }
    };
    Ok(Some(dimension))
}

fn enum_names<E>(
    field: &str,
    values: &[i32],
    name: impl Fn(E) -> &'static str,
) -> Result<Vec<String>, ApiError>
where
    E: TryFrom<i32>,
{
    values
        .iter()
        .enumerate()
        .map(|(index, value)| {
            let known = E::try_from(*value).map_err(|_| {
                ApiError::invalid(
                    format!("{field}[{index}]"),
                    format!("unknown value {value}"),
                )
            })?;
            let name = name(known);
            if name.ends_with("_UNSPECIFIED") {
                return Err(ApiError::invalid(
                    format!("{field}[{index}]"),
                    "must be specified",
                ));
            }
            Ok(name.to_owned())
        })
        .collect()
}

/// A filter; `None` accepts everything. An empty string in an id list matches "none" (no
/// assignee, say).
pub fn parse_filter(filter: Option<&pb::ConversationFilter>) -> Result<Filter, ApiError> {
    let mut parsed = Filter::default();
    let Some(filter) = filter else {
        return Ok(parsed);
    };
    let strings = |field: &str, values: &[String]| -> Result<Vec<String>, ApiError> {
        Ok(text_list(field, values)?
            .into_iter()
            .map(str::to_owned)
            .collect())
    };
    parsed.only(
        Dimension::Assignee,
        strings("filter.assignee_user_ids", &filter.assignee_user_ids)?,
    );
    parsed.only(
        Dimension::Team,
        strings("filter.team_ids", &filter.team_ids)?,
    );
    parsed.only(
        Dimension::ChannelType,
        enum_names(
            "filter.channel_types",
            &filter.channel_types,
            |c: ChannelType| c.as_str_name(),
        )?,
    );
    parsed.only(
        Dimension::Channel,
        strings("filter.channel_ids", &filter.channel_ids)?,
    );
    parsed.only(
        Dimension::OpenedBy,
        enum_names(
            "filter.opened_by",
            &filter.opened_by,
            |s: conversation_pb::OpenSource| s.as_str_name(),
        )?,
    );
    parsed.only(
        Dimension::ClosedBy,
        enum_names(
            "filter.closed_by",
            &filter.closed_by,
            |s: conversation_pb::CloseSource| s.as_str_name(),
        )?,
    );
    parsed.only(
        Dimension::Category,
        strings("filter.closing_categories", &filter.closing_categories)?,
    );
    parsed.only(
        Dimension::AutomatedBy,
        strings("filter.automated_by_ids", &filter.automated_by_ids)?,
    );
    Ok(parsed)
}

fn duration_stats(summary: Option<Summary>) -> Option<pb::DurationStats> {
    summary.map(|s| pb::DurationStats {
        count: s.count as i64,
        sum: Some(duration(s.sum as f64)),
        average: Some(duration(s.average)),
        min: Some(duration(s.min as f64)),
        max: Some(duration(s.max as f64)),
        median: Some(duration(s.median)),
        p90: Some(duration(s.p90)),
        p95: Some(duration(s.p95)),
        p99: Some(duration(s.p99)),
    })
}

fn count_stats(summary: Option<Summary>) -> Option<pb::CountStats> {
    summary.map(|s| pb::CountStats {
        count: s.count as i64,
        sum: s.sum,
        average: s.average,
        min: s.min,
        max: s.max,
        median: s.median.round(),
        p90: s.p90.round(),
        p95: s.p95.round(),
        p99: s.p99.round(),
    })
}

/// The proto form of a tally, its re-contacts counted within `window`.
pub fn metrics_to_proto(tally: &Tally, window: RecontactWindow) -> pb::ConversationMetrics {
    let closed = &tally.closed;
    let bands = closed.bands;
    pb::ConversationMetrics {
        opened_count: tally.opened,
        closed_count: closed.closed as i64,
        unique_contacts_closed_count: tally.closed.contacts.estimate() as i64,
        resolution_time: duration_stats(closed.resolution.summary()),
        first_response_time: duration_stats(closed.first_response.summary()),
        response_time: duration_stats(closed.response.summary()),
        responses_per_conversation: count_stats(closed.responses_per_conversation.summary()),
        time_to_first_assignment: duration_stats(closed.time_to_first_assignment.summary()),
        assignments_per_conversation: count_stats(closed.assignments_per_conversation.summary()),
        first_response_bands: Some(pb::FirstResponseBands {
            under_30s: bands.under_30s as i64,
            from_30s_to_2m: bands.from_30s_to_2m as i64,
            from_2m_to_5m: bands.from_2m_to_5m as i64,
            from_5m_to_10m: bands.from_5m_to_10m as i64,
            from_10m_to_30m: bands.from_10m_to_30m as i64,
            from_30m_to_1h: bands.from_30m_to_1h as i64,
            over_1h: bands.over_1h as i64,
            no_response: bands.no_response as i64,
        }),
        automation: Some(pb::AutomationStats {
            automated_count: closed.automated as i64,
            contained_count: closed.contained as i64,
            handed_off_count: closed.handed_off as i64,
            containment_rate: rate(closed.contained, closed.automated),
            handoff_rate: rate(closed.handed_off, closed.automated),
            time_to_handoff: duration_stats(closed.time_to_handoff.summary()),
        }),
        business_time: Some(pb::BusinessTimeStats {
            resolution_time: duration_stats(closed.business_resolution.summary()),
            first_response_time: duration_stats(closed.business_first_response.summary()),
            time_to_first_assignment: duration_stats(
                closed.business_time_to_first_assignment.summary(),
            ),
            response_time: duration_stats(closed.business_response.summary()),
        }),
        sla: Some(pb::SlaStats {
            first_response_achieved_count: closed.sla.first_response_achieved as i64,
            first_response_breached_count: closed.sla.first_response_breached as i64,
            first_response_achievement_rate: rate(
                closed.sla.first_response_achieved,
                closed.sla.first_response_achieved + closed.sla.first_response_breached,
            ),
            resolution_achieved_count: closed.sla.resolution_achieved as i64,
            resolution_breached_count: closed.sla.resolution_breached as i64,
            resolution_achievement_rate: rate(
                closed.sla.resolution_achieved,
                closed.sla.resolution_achieved + closed.sla.resolution_breached,
            ),
        }),
        recontact: Some(pb::RecontactStats {
            window: Some(window_to_proto(window)),
            recontacted_count: closed.recontact.within(window) as i64,
            recontact_rate: rate(closed.recontact.within(window), closed.closed),
        }),
    }
}

/// `part / whole`, 0 when `whole` is 0.
fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The proto key of a group.
pub fn group_key(dimension: Dimension, value: &str) -> pb::GroupKey {
    use pb::group_key::Key;
    let key = match dimension {
        Dimension::Assignee => Key::AssigneeUserId(value.to_owned()),
        Dimension::Team => Key::TeamId(value.to_owned()),
        Dimension::ChannelType => Key::ChannelType(
            ChannelType::from_str_name(value).unwrap_or(ChannelType::Unspecified) as i32,
        ),
        Dimension::Channel => Key::ChannelId(value.to_owned()),
        Dimension::OpenedBy => Key::OpenedBy(
            conversation_pb::OpenSource::from_str_name(value)
                .unwrap_or(conversation_pb::OpenSource::Unspecified) as i32,
        ),
        Dimension::ClosedBy => Key::ClosedBy(
            conversation_pb::CloseSource::from_str_name(value)
                .unwrap_or(conversation_pb::CloseSource::Unspecified) as i32,
        ),
        Dimension::Category => Key::ClosingCategory(value.to_owned()),
        Dimension::AutomatedBy => Key::AutomatedById(value.to_owned()),
    };
    pb::GroupKey { key: Some(key) }
}

/// The median and average of a distribution, as durations.
pub fn median_and_average(
    summary: Option<Summary>,
) -> (Option<prost_types::Duration>, Option<prost_types::Duration>) {
    match summary {
        Some(s) => (Some(duration(s.median)), Some(duration(s.average))),
        None => (None, None),
    }
}
