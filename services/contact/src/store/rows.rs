//! Turning rows into contacts and contacts into column values. Custom fields and tags are stored
//! as JSON text, the same on SQLite and PostgreSQL.

use std::collections::BTreeMap;

use charla_runtime::ApiError;
use charla_runtime::clock::{from_micros, to_micros};
use charla_runtime::workspace::WorkspaceId;
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::domain::{
    ChannelIdentity, ChannelType, Contact, ContactId, ContactStatus, CustomFields, CustomValue,
    Email, FieldKey, Language, Name, Phone, Profile, Tag, Tags,
};

/// The columns `contact_from_row` reads, in order.
pub const CONTACT_COLUMNS: &str = "contact_id, first_name, last_name, email, phone, language, \
     custom_fields, tags, status, merged_into, created_at, updated_at";

/// A stored value that no longer parses: a bug or a hand edit, never a client's mistake.
fn corrupt(what: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("stored {what} is unreadable: {detail}"))
}

fn uuid(text: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|e| corrupt("id", e))
}

/// A contact row (without identities, which the caller adds).
pub fn contact_from_row(workspace: WorkspaceId, row: &AnyRow) -> Result<Contact, ApiError> {
    let text = |column: &str| -> Result<String, ApiError> { Ok(row.try_get::<String, _>(column)?) };
    let id = ContactId::from_uuid(uuid(&text("contact_id")?)?);
    let status = match text("status")?.as_str() {
        "active" => ContactStatus::Active,
        "blocked" => ContactStatus::Blocked,
        "merged" => {
            let into: Option<String> = row.try_get("merged_into")?;
            let into = into.ok_or_else(|| corrupt("merge", "no merged_into"))?;
            ContactStatus::Merged {
                into: ContactId::from_uuid(uuid(&into)?),
            }
        }
        other => return Err(corrupt("status", other)),
    };
    let profile = Profile {
        first_name: Name::parse(&text("first_name")?).map_err(|e| corrupt("first_name", e))?,
        last_name: Name::parse(&text("last_name")?).map_err(|e| corrupt("last_name", e))?,
        email: Email::parse(&text("email")?).map_err(|e| corrupt("email", e))?,
        phone: Phone::parse(&text("phone")?).map_err(|e| corrupt("phone", e))?,
        language: Language::parse(&text("language")?).map_err(|e| corrupt("language", e))?,
        custom_fields: custom_fields_from_json(&text("custom_fields")?)?,
        tags: tags_from_json(&text("tags")?)?,
    };
    Ok(Contact {
        id,
        workspace,
        profile,
        identities: Vec::new(),
        status,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
    })
}

/// An identity row: `channel_type, channel_id, external_id`.
pub fn identity_from_row(row: &AnyRow) -> Result<ChannelIdentity, ApiError> {
    let channel_type: String = row.try_get("channel_type")?;
    Ok(ChannelIdentity {
        channel_type: ChannelType::from_name(&channel_type)
            .ok_or_else(|| corrupt("channel type", &channel_type))?,
        channel_id: row.try_get("channel_id")?,
        external_id: row.try_get("external_id")?,
    })
}

/// The `status` column of a contact.
pub fn status_name(status: ContactStatus) -> &'static str {
    match status {
        ContactStatus::Active => "active",
        ContactStatus::Blocked => "blocked",
        ContactStatus::Merged { .. } => "merged",
    }
}

/// The JSON text of custom fields: `{"key": {"text": "..."}}`, `{"number": 1.5}`, `{"bool": true}`
/// or `{"time_micros": 1700000000000000}`.
pub fn custom_fields_to_json(fields: &CustomFields) -> String {
    let map: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(key, value)| {
            let value = match value {
                CustomValue::Text(text) => json!({ "text": text }),
                CustomValue::Number(number) => json!({ "number": number }),
                CustomValue::Bool(flag) => json!({ "bool": flag }),
                CustomValue::Time(time) => json!({ "time_micros": to_micros(*time) }),
            };
            (key.as_str().to_owned(), value)
        })
        .collect();
    Value::Object(map).to_string()
}

fn custom_fields_from_json(text: &str) -> Result<CustomFields, ApiError> {
    let bad = |detail: &dyn std::fmt::Display| corrupt("custom fields", detail.to_string());
    let Value::Object(map) = serde_json::from_str(text).map_err(|e| bad(&e))? else {
        return Err(bad(&"not an object"));
    };
    let mut fields = BTreeMap::new();
    for (key, value) in map {
        let key = FieldKey::parse(&key).map_err(|e| bad(&e))?;
        let value = if let Some(text) = value.get("text").and_then(Value::as_str) {
            CustomValue::Text(text.to_owned())
        } else if let Some(number) = value.get("number").and_then(Value::as_f64) {
            CustomValue::Number(number)
        } else if let Some(flag) = value.get("bool").and_then(Value::as_bool) {
            CustomValue::Bool(flag)
        } else if let Some(micros) = value.get("time_micros").and_then(Value::as_i64) {
            CustomValue::Time(from_micros(micros))
        } else {
            return Err(bad(&value));
        };
        fields.insert(key, value);
    }
    CustomFields::new(fields).map_err(|e| bad(&e))
}

/// The JSON text of tags: an array of strings, in order.
pub fn tags_to_json(tags: &Tags) -> String {
    Value::Array(tags.iter().map(|t| Value::from(t.as_str())).collect()).to_string()
}

fn tags_from_json(text: &str) -> Result<Tags, ApiError> {
    let names: Vec<String> = match serde_json::from_str(text) {
        Ok(Value::Array(items)) => items
            .into_iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt("tags", "not strings"))?,
        _ => return Err(corrupt("tags", text)),
    };
    let tags = names
        .iter()
        .map(|name| Tag::parse(name))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt("tags", e))?;
    Tags::new(tags).map_err(|e| corrupt("tags", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_fields_survive_json() {
        let key = |k: &str| FieldKey::parse(k).unwrap();
        let fields = CustomFields::new(BTreeMap::from([
            (key("plan"), CustomValue::Text("pro".into())),
            (key("score"), CustomValue::Number(4.5)),
            (key("vip"), CustomValue::Bool(true)),
            (
                key("since"),
                CustomValue::Time(from_micros(1_700_000_000_000_001)),
            ),
        ]))
        .unwrap();
        let text = custom_fields_to_json(&fields);
        assert_eq!(custom_fields_from_json(&text).unwrap(), fields);
    }

    #[test]
    fn tags_survive_json_in_order() {
        let tags = Tags::new(["b", "a"].map(|t| Tag::parse(t).unwrap())).unwrap();
        assert_eq!(tags_from_json(&tags_to_json(&tags)).unwrap(), tags);
    }
}
