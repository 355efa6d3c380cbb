//! Request fields named by path (`contact.contact_id`, `page_size`), set from the text of a path
//! variable or query parameters through the proto3 JSON mapping, so a query parameter reads as
//! the same field would in a JSON body (`CHANNEL_TYPE_WHATSAPP`, `2026-11-29T00:00:00Z`, `25`).

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

/// The fields along the dotted `path` from `message`, each part a field's proto or JSON name;
/// every field but the last a singular message. `None` when there is no such field.
pub fn resolve(message: &MessageDescriptor, path: &str) -> Option<Vec<FieldDescriptor>> {
    let mut fields: Vec<FieldDescriptor> = Vec::new();
    let mut current = message.clone();
    for name in path.split('.') {
        if let Some(previous) = fields.last() {
            match previous.kind() {
                Kind::Message(inner) if !previous.is_list() && !previous.is_map() => {
                    current = inner;
                }
                _ => return None,
            }
        }
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))?;
        fields.push(field);
    }
    Some(fields)
}

/// The proto names of `fields`, dotted: how errors name a field.
pub fn proto_path(fields: &[FieldDescriptor]) -> String {
    let names: Vec<&str> = fields.iter().map(FieldDescriptor::name).collect();
    names.join(".")
}

/// Sets the field at `fields` (from [`resolve`]) in `message` to `texts`: one text, or several
/// for a repeated field. The error says why the text is not a value of the field.
pub fn set_from_text(
    message: &mut DynamicMessage,
    fields: &[FieldDescriptor],
    texts: &[String],
) -> Result<(), String> {
    let Some((leaf, parents)) = fields.split_last() else {
        return Err("no field".into());
    };
    if leaf.is_map() {
        return Err("a map can't be given in the path or the query".into());
    }
    let json = if leaf.is_list() {
        serde_json::Value::Array(
            texts
                .iter()
                .map(|text| json_of(leaf, text))
                .collect::<Result<_, _>>()?,
        )
    } else {
        match texts {
            [text] => json_of(leaf, text)?,
            _ => return Err("given more than once".into()),
        }
    };
    // The JSON mapping of the one field, read as its message reads it.
    let object = serde_json::json!({ leaf.json_name(): json });
    let parsed = DynamicMessage::deserialize(leaf.parent_message().clone(), object)
        .map_err(|error| error.to_string())?;
    let value = parsed.get_field(leaf).into_owned();
    let mut target = message;
    for parent in parents {
        target = match target.get_field_mut(parent) {
            Value::Message(inner) => inner,
            _ => return Err("not inside a message".into()),
        };
    }
    target.set_field(leaf, value);
    Ok(())
}

/// The JSON of one text for `field`: a boolean for a bool (the JSON mapping has no quoted
/// booleans), the text read as JSON for a message that is not a well-known type (a list of
/// messages, such as `min_positions`, can't be given field by field), a string for everything
/// else (the mapping reads numbers, enums, timestamps, durations and field masks from strings).
fn json_of(field: &FieldDescriptor, text: &str) -> Result<serde_json::Value, String> {
    if let Kind::Message(message) = field.kind()
        && !message.full_name().starts_with("google.protobuf.")
    {
        return serde_json::from_str(text)
            .map_err(|error| format!("is not the JSON of a {}: {error}", message.name()));
    }
    let is_bool = match field.kind() {
        Kind::Bool => true,
        Kind::Message(message) => message.full_name() == "google.protobuf.BoolValue",
        _ => false,
    };
    if !is_bool {
        return Ok(serde_json::Value::String(text.to_owned()));
    }
    match text {
        "true" => Ok(serde_json::Value::Bool(true)),
        "false" => Ok(serde_json::Value::Bool(false)),
        _ => Err(format!("{text:?} is not true or false")),
    }
}
