//! An HTTP/JSON request read as the gRPC request of its route, by the `google.api.http` rules:
//! the body (the whole request for `body: "*"`, one field for `body: "field"`, none without),
//! then the path variables, then, for fields neither of those set, the query parameters.

use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};

use super::fields::{proto_path, resolve, set_from_text};
use super::routes::Route;
use crate::error::ApiError;

/// The request message of `route`, from the path `variables` it matched, the query string and
/// the body (JSON; empty when none was sent).
pub fn request_message(
    route: &Route,
    variables: Vec<(String, String)>,
    query: Option<&str>,
    body: &[u8],
) -> Result<DynamicMessage, ApiError> {
    let input = route.method.input();
    let mut message = match route.body.as_str() {
        "" if !body.is_empty() => {
            return Err(ApiError::invalid(
                "body",
                "this route takes no body: send the fields as query parameters",
            ));
        }
        "" => DynamicMessage::new(input.clone()),
        "*" => parse_body(&input, body, "body", |json| json)?,
        field => {
            let name = input
                .get_field_by_name(field)
                .map(|f| f.json_name().to_owned())
                .unwrap_or_else(|| field.to_owned());
            parse_body(
                &input,
                body,
                field,
                |json| serde_json::json!({ name: json }),
            )?
        }
    };

    let mut bound: Vec<Vec<FieldDescriptor>> = Vec::new();
    for (field_path, value) in variables {
        let fields = resolve(&input, &field_path)
            .ok_or_else(|| ApiError::invalid(field_path.clone(), "no such field"))?;
        set_from_text(&mut message, &fields, &[value])
            .map_err(|description| ApiError::invalid(proto_path(&fields), description))?;
        bound.push(fields);
    }

    let from_path = bound.len();
    for (name, values) in query_parameters(query) {
        if route.body == "*" {
            return Err(ApiError::invalid(
                name,
                "this route reads every field from the body, none from the query",
            ));
        }
        let fields = resolve(&input, &name)
            .ok_or_else(|| ApiError::invalid(name.clone(), "no such field"))?;
        let field = proto_path(&fields);
        if fields[0].name() == route.body {
            return Err(ApiError::invalid(field, "this field is read from the body"));
        }
        if let Some(at) = bound.iter().position(|path| overlaps(path, &fields)) {
            let why = if at < from_path {
                "this field is set by the path"
            } else {
                "this field is given twice (by its proto and its JSON name?)"
            };
            return Err(ApiError::invalid(field, why));
        }
        set_from_text(&mut message, &fields, &values)
            .map_err(|description| ApiError::invalid(field.clone(), description))?;
        bound.push(fields);
    }
    Ok(message)
}

/// The body as the request (`name` "body") or as its field `name`, through `wrap`. An empty body
/// is an empty message, so `POST .../{id}:block` needs no `{}`.
fn parse_body(
    input: &MessageDescriptor,
    body: &[u8],
    name: &str,
    wrap: impl FnOnce(serde_json::Value) -> serde_json::Value,
) -> Result<DynamicMessage, ApiError> {
    if body.is_empty() {
        return Ok(DynamicMessage::new(input.clone()));
    }
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid(name, format!("not JSON: {error}")))?;
    let whole = wrap(json);
    match DynamicMessage::deserialize(input.clone(), whole.clone()) {
        Ok(message) => Ok(message),
        Err(error) => Err(ApiError::invalid(
            culprit(input, &whole, "").unwrap_or_else(|| name.to_owned()),
            error.to_string(),
        )),
    }
}

/// The path of the first field of `json` (an object for `message`) whose value the JSON mapping
/// refuses, found by reading the fields one at a time, down into nested objects: what an error
/// should name, as the mapping's own error names no field. `None` when each field reads alone.
fn culprit(message: &MessageDescriptor, json: &serde_json::Value, prefix: &str) -> Option<String> {
    let object = json.as_object()?;
    for (key, value) in object {
        let Some(field) = message
            .get_field_by_json_name(key)
            .or_else(|| message.get_field_by_name(key))
        else {
            return Some(format!("{prefix}{key}"));
        };
        let alone = serde_json::json!({ key: value });
        if DynamicMessage::deserialize(message.clone(), alone).is_ok() {
            continue;
        }
        let path = format!("{prefix}{}", field.name());
        if let Kind::Message(inner) = field.kind()
            && !field.is_list()
            && !field.is_map()
            && let Some(nested) = culprit(&inner, value, &format!("{path}."))
        {
            return Some(nested);
        }
        return Some(path);
    }
    None
}

/// The query's parameters, decoded, each name once with its values in order.
fn query_parameters(query: Option<&str>) -> Vec<(String, Vec<String>)> {
    let mut parameters: Vec<(String, Vec<String>)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match parameters.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, values)) => values.push(value.into_owned()),
            None => parameters.push((name.into_owned(), vec![value.into_owned()])),
        }
    }
    parameters
}

/// Whether one field path is the other or inside it.
fn overlaps(a: &[FieldDescriptor], b: &[FieldDescriptor]) -> bool {
    a.iter().zip(b).all(|(x, y)| x == y)
}
