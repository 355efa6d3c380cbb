//! `HistoricalConversation` in the proto JSON mapping, one per line (NDJSON): what
//! `charla import conversations` reads and `charla demo --write` writes. Field names are accepted
//! in lowerCamelCase (the mapping's own) or as in the .proto; enums by name or number; timestamps in
//! RFC 3339.

use charla_proto::charla::contact::v1::ChannelType;
use charla_proto::charla::conversation::v1 as pb;
use serde_json::{Map, Value, json};

/// Why a line can't be read.
pub type LineError = String;

fn field<'a>(object: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    object.get(camel).or_else(|| object.get(snake))
}

fn text(object: &Map<String, Value>, camel: &str, snake: &str) -> Result<String, LineError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(format!("{camel}: expected a string, got {other}")),
    }
}

fn timestamp(
    object: &Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Result<Option<prost_types::Timestamp>, LineError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            let parsed: jiff::Timestamp = text
                .parse()
                .map_err(|e| format!("{camel}: `{text}` is not an RFC 3339 time ({e})"))?;
            Ok(Some(prost_types::Timestamp {
                seconds: parsed.as_second(),
                nanos: parsed.subsec_nanosecond(),
            }))
        }
        Some(other) => Err(format!("{camel}: expected an RFC 3339 string, got {other}")),
    }
}

fn enumeration(
    object: &Map<String, Value>,
    camel: &str,
    snake: &str,
    from_name: impl Fn(&str) -> Option<i32>,
) -> Result<i32, LineError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(name)) => {
            from_name(name).ok_or_else(|| format!("{camel}: unknown value `{name}`"))
        }
        Some(Value::Number(number)) => number
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| format!("{camel}: `{number}` is not an enum number")),
        Some(other) => Err(format!("{camel}: expected an enum name, got {other}")),
    }
}

fn objects<'a>(
    object: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Result<Vec<&'a Map<String, Value>>, LineError> {
    match field(object, camel, snake) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.as_object()
                    .ok_or_else(|| format!("{camel}[{index}]: expected an object"))
            })
            .collect(),
        Some(other) => Err(format!("{camel}: expected a list, got {other}")),
    }
}

/// One line of NDJSON as an import item.
pub fn parse_line(line: &str) -> Result<pb::HistoricalConversation, LineError> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let object = value.as_object().ok_or("expected a JSON object")?;
    let channel = match field(object, "channel", "channel") {
        Some(Value::Object(channel)) => Some(pb::Channel {
            channel_type: enumeration(channel, "channelType", "channel_type", |n| {
                ChannelType::from_str_name(n).map(|c| c as i32)
            })?,
            channel_id: text(channel, "channelId", "channel_id")?,
        }),
        None | Some(Value::Null) => None,
        Some(other) => return Err(format!("channel: expected an object, got {other}")),
    };
    let messages = objects(object, "messages", "messages")?
        .into_iter()
        .map(|m| {
            Ok(pb::HistoricalMessage {
                message_id: text(m, "messageId", "message_id")?,
                sent_at: timestamp(m, "sentAt", "sent_at")?,
                direction: enumeration(m, "direction", "direction", |n| {
                    pb::MessageDirection::from_str_name(n).map(|d| d as i32)
                })?,
                author_kind: enumeration(m, "authorKind", "author_kind", |n| {
                    pb::AuthorKind::from_str_name(n).map(|a| a as i32)
                })?,
                author_id: text(m, "authorId", "author_id")?,
            })
        })
        .collect::<Result<_, LineError>>()?;
    let assignments = objects(object, "assignments", "assignments")?
        .into_iter()
        .map(|a| {
            Ok(pb::HistoricalAssignment {
                assigned_at: timestamp(a, "assignedAt", "assigned_at")?,
                assignee_user_id: text(a, "assigneeUserId", "assignee_user_id")?,
                team_id: text(a, "teamId", "team_id")?,
                actor_id: text(a, "actorId", "actor_id")?,
            })
        })
        .collect::<Result<_, LineError>>()?;
    Ok(pb::HistoricalConversation {
        external_id: text(object, "externalId", "external_id")?,
        contact_id: text(object, "contactId", "contact_id")?,
        channel,
        opened_at: timestamp(object, "openedAt", "opened_at")?,
        opened_by: enumeration(object, "openedBy", "opened_by", |n| {
            pb::OpenSource::from_str_name(n).map(|s| s as i32)
        })?,
        opened_by_id: text(object, "openedById", "opened_by_id")?,
        messages,
        assignments,
        closed_at: timestamp(object, "closedAt", "closed_at")?,
        closed_by: enumeration(object, "closedBy", "closed_by", |n| {
            pb::CloseSource::from_str_name(n).map(|s| s as i32)
        })?,
        closed_by_id: text(object, "closedById", "closed_by_id")?,
        closing_category: text(object, "closingCategory", "closing_category")?,
        closing_summary: text(object, "closingSummary", "closing_summary")?,
    })
}

fn time_text(time: &Option<prost_types::Timestamp>) -> Value {
    match time.and_then(|t| jiff::Timestamp::new(t.seconds, t.nanos).ok()) {
        Some(t) => Value::String(t.to_string()),
        None => Value::Null,
    }
}

fn without_empty(mut object: Map<String, Value>) -> Value {
    object.retain(|_, value| !matches!(value, Value::Null) && value.as_str() != Some(""));
    Value::Object(object)
}

/// An import item as one line of NDJSON (lowerCamelCase, enums by name, empty fields left out).
pub fn to_line(item: &pb::HistoricalConversation) -> String {
    let channel = item.channel.clone().unwrap_or_default();
    let name = |value: Option<&'static str>| value.map(Value::from).unwrap_or(Value::Null);
    let messages: Vec<Value> = item
        .messages
        .iter()
        .map(|m| {
            let json = json!({
                "messageId": m.message_id,
                "sentAt": time_text(&m.sent_at),
                "direction": name(pb::MessageDirection::try_from(m.direction).ok().map(|d| d.as_str_name())),
                "authorKind": name(pb::AuthorKind::try_from(m.author_kind).ok().map(|a| a.as_str_name())),
                "authorId": m.author_id,
            });
            without_empty(json.as_object().cloned().unwrap_or_default())
        })
        .collect();
    let assignments: Vec<Value> = item
        .assignments
        .iter()
        .map(|a| {
            let json = json!({
                "assignedAt": time_text(&a.assigned_at),
                "assigneeUserId": a.assignee_user_id,
                "teamId": a.team_id,
                "actorId": a.actor_id,
            });
            without_empty(json.as_object().cloned().unwrap_or_default())
        })
        .collect();
    let closed_by = pb::CloseSource::try_from(item.closed_by)
        .ok()
        .filter(|s| *s != pb::CloseSource::Unspecified)
        .map(|s| s.as_str_name());
    let json = json!({
        "externalId": item.external_id,
        "contactId": item.contact_id,
        "channel": {
            "channelType": name(ChannelType::try_from(channel.channel_type).ok().map(|c| c.as_str_name())),
            "channelId": channel.channel_id,
        },
        "openedAt": time_text(&item.opened_at),
        "openedBy": name(pb::OpenSource::try_from(item.opened_by).ok().map(|s| s.as_str_name())),
        "openedById": item.opened_by_id,
        "messages": messages,
        "assignments": assignments,
        "closedAt": time_text(&item.closed_at),
        "closedBy": name(closed_by),
        "closedById": item.closed_by_id,
        "closingCategory": item.closing_category,
        "closingSummary": item.closing_summary,
    });
    without_empty(json.as_object().cloned().unwrap_or_default()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> pb::HistoricalConversation {
        pb::HistoricalConversation {
            external_id: "rio-7".into(),
            contact_id: "0190f5a2-5a6e-7000-8000-000000000001".into(),
            channel: Some(pb::Channel {
                channel_type: ChannelType::Viber as i32,
                channel_id: "vb".into(),
            }),
            opened_at: Some(prost_types::Timestamp {
                seconds: 1_780_000_000,
                nanos: 0,
            }),
            opened_by: pb::OpenSource::WelcomeEvent as i32,
            messages: vec![pb::HistoricalMessage {
                message_id: "m1".into(),
                sent_at: Some(prost_types::Timestamp {
                    seconds: 1_780_000_060,
                    nanos: 500_000_000,
                }),
                direction: pb::MessageDirection::Outbound as i32,
                author_kind: pb::AuthorKind::User as i32,
                author_id: "ana".into(),
            }],
            assignments: vec![pb::HistoricalAssignment {
                assigned_at: Some(prost_types::Timestamp {
                    seconds: 1_780_000_030,
                    nanos: 0,
                }),
                assignee_user_id: "ana".into(),
                ..Default::default()
            }],
            closed_at: Some(prost_types::Timestamp {
                seconds: 1_780_003_600,
                nanos: 0,
            }),
            closed_by: pb::CloseSource::AutoClose as i32,
            closing_category: "Support".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_item_survives_a_round_trip_through_json() {
        assert_eq!(parse_line(&to_line(&item())).unwrap(), item());
    }

    #[test]
    fn proto_field_names_and_enum_numbers_are_accepted_too() {
        let line = r#"{"external_id":"x","channel":{"channel_type":5,"channel_id":"vb"},"opened_by":"OPEN_SOURCE_API","opened_at":"2026-05-28T20:26:40Z"}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(
            parsed.channel.unwrap().channel_type,
            ChannelType::Viber as i32
        );
        assert_eq!(parsed.opened_by, pb::OpenSource::Api as i32);
        assert_eq!(parsed.opened_at.unwrap().seconds, 1_780_000_000);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        assert!(parse_line("{").unwrap_err().starts_with("not JSON"));
        assert!(
            parse_line(r#"{"openedBy":"SOMETIMES"}"#)
                .unwrap_err()
                .contains("openedBy")
        );
        assert!(
            parse_line(r#"{"openedAt":"yesterday"}"#)
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
