//! The OpenAPI 3.1 document of a server's HTTP/JSON routes, written from the same descriptors the
//! routes come from: each operation with its path and query parameters, body and answer, every
//! message as a schema in the proto3 JSON mapping, and the proto comments as descriptions.

use std::collections::BTreeMap;

use prost_reflect::{DescriptorPool, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value, json};

use super::routes::Route;

/// How deep query parameters reach into nested messages (`filter.channel.channel_type`).
const MAX_QUERY_DEPTH: usize = 4;

/// The document of `routes`, those of `services` (full names).
pub fn document(pool: &DescriptorPool, services: &[&str], routes: &[Route]) -> Value {
    let mut schemas = Schemas::default();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for route in routes {
        let operation = operation(route, &mut schemas);
        paths
            .entry(route.template.openapi_path())
            .or_default()
            .insert(route.http_method.as_str().to_ascii_lowercase(), operation);
    }
    if let Some(status) = pool.get_message_by_name("google.rpc.Status") {
        schemas.reference(&status);
    }
    let names: Vec<String> = services
        .iter()
        .filter_map(|name| pool.get_service_by_name(name))
        .filter(|service| routes.iter().any(|r| r.method.parent_service() == service))
        .map(|service| service.name().to_owned())
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("charla {}", names.join(", ")),
            "version": "v1",
            "description": "The HTTP/JSON form of charla's gRPC API (google.api.http routes, \
                proto3 JSON mapping). Streaming methods are gRPC only. Errors are \
                google.rpc.Status JSON.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas.done,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    })
}

fn operation(route: &Route, schemas: &mut Schemas) -> Value {
    let method = &route.method;
    let input = method.input();
    let mut parameters = Vec::new();
    let mut bound: Vec<String> = Vec::new();
    for field_path in route.template.field_paths() {
        if let Some(fields) = super::fields::resolve(&input, field_path)
            && let Some(leaf) = fields.last()
        {
            parameters.push(json!({
                "name": field_path,
                "in": "path",
                "required": true,
                "description": comment_of(leaf.parent_file(), leaf.path()).unwrap_or_default(),
                "schema": schemas.field(leaf),
            }));
            bound.push(super::fields::proto_path(&fields));
        }
    }
    if route.body != "*" {
        let mut query = Vec::new();
        query_parameters(&input, "", &route.body, &bound, 0, &mut query);
        for (name, leaf) in query {
            parameters.push(json!({
                "name": name,
                "in": "query",
                "description": comment_of(leaf.parent_file(), leaf.path()).unwrap_or_default(),
                "schema": schemas.field(&leaf),
            }));
        }
    }
    let comment = comment_of(method.parent_file(), method.path()).unwrap_or_default();
    let mut operation = json!({
        "operationId": format!("{}_{}", method.parent_service().name(), method.name()),
        "tags": [method.parent_service().name()],
        "summary": comment.lines().next().unwrap_or_default(),
        "description": comment,
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": response_schema(route, schemas)}},
            },
            "default": {
                "description": "An error: google.rpc.Status, under the HTTP status of its code",
                "content": {"application/json": {"schema": {"$ref": reference("google.rpc.Status")}}},
            },
        },
    });
    let body = match route.body.as_str() {
        "" => None,
        "*" => Some(schemas.reference(&input)),
        field => input.get_field_by_name(field).map(|f| schemas.field(&f)),
    };
    if let Some(schema) = body {
        operation["requestBody"] = json!({
            "required": false,
            "content": {"application/json": {"schema": schema}},
        });
    }
    operation
}

fn response_schema(route: &Route, schemas: &mut Schemas) -> Value {
    let output = route.method.output();
    match output.get_field_by_name(&route.response_body) {
        Some(field) if !route.response_body.is_empty() => schemas.field(&field),
        _ => schemas.reference(&output),
    }
}

/// The fields a query may set: every field of `message` not set by the path or the body, nested
/// messages by dotted names, but not maps or lists of messages.
fn query_parameters(
    message: &MessageDescriptor,
    prefix: &str,
    body: &str,
    bound: &[String],
    depth: usize,
    into: &mut Vec<(String, FieldDescriptor)>,
) {
    for field in message.fields() {
        let name = format!("{prefix}{}", field.name());
        if (depth == 0 && field.name() == body) || bound.contains(&name) || field.is_map() {
            continue;
        }
        match field.kind() {
            Kind::Message(inner) if !is_scalar_like(&inner) => {
                if !field.is_list() && depth < MAX_QUERY_DEPTH {
                    let prefix = format!("{name}.");
                    query_parameters(&inner, &prefix, body, bound, depth + 1, into);
                }
            }
            _ => into.push((name, field)),
        }
    }
}

/// Well-known types whose JSON is a single string, number or boolean.
fn is_scalar_like(message: &MessageDescriptor) -> bool {
    well_known(message.full_name())
        .is_some_and(|schema| schema.get("type") != Some(&"object".into()))
}

/// The schema of a well-known type's JSON form.
fn well_known(name: &str) -> Option<Value> {
    Some(match name {
        "google.protobuf.Timestamp" => json!({"type": "string", "format": "date-time"}),
        "google.protobuf.Duration" => {
            json!({"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]{1,9})?s$"})
        }
        "google.protobuf.FieldMask" => {
            json!({"type": "string", "description": "Field paths, comma-separated, in lowerCamelCase"})
        }
        "google.protobuf.StringValue" => json!({"type": "string"}),
        "google.protobuf.BytesValue" => json!({"type": "string", "format": "byte"}),
        "google.protobuf.BoolValue" => json!({"type": "boolean"}),
        "google.protobuf.Int32Value" | "google.protobuf.UInt32Value" => json!({"type": "integer"}),
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => {
            json!({"type": "string", "format": "int64"})
        }
        "google.protobuf.FloatValue" | "google.protobuf.DoubleValue" => json!({"type": "number"}),
        "google.protobuf.Any" => json!({
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
            "additionalProperties": true,
        }),
        "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
        "google.protobuf.Value" => json!({}),
        "google.protobuf.ListValue" => json!({"type": "array", "items": {}}),
        "google.protobuf.Empty" => json!({"type": "object"}),
        _ => return None,
    })
}

fn reference(full_name: &str) -> String {
    format!("#/components/schemas/{full_name}")
}

/// The schemas written so far, by full name.
#[derive(Default)]
struct Schemas {
    done: BTreeMap<String, Value>,
}

impl Schemas {
    /// A reference to `message`'s schema, written (with those of its fields) the first time.
    fn reference(&mut self, message: &MessageDescriptor) -> Value {
        if let Some(schema) = well_known(message.full_name()) {
            return schema;
        }
        let name = message.full_name().to_owned();
        if !self.done.contains_key(&name) {
            // Placed first, so a message that contains itself refers to itself.
            self.done.insert(name.clone(), Value::Null);
            let mut properties = Map::new();
            for field in message.fields() {
                let mut schema = self.field(&field);
                if let Some(text) = comment_of(field.parent_file(), field.path())
                    && let Value::Object(object) = &mut schema
                {
                    object.insert("description".into(), text.into());
                }
                properties.insert(field.json_name().to_owned(), schema);
            }
            let schema = json!({
                "type": "object",
                "description": comment_of(message.parent_file(), message.path()).unwrap_or_default(),
                "properties": properties,
            });
            self.done.insert(name.clone(), schema);
        }
        json!({"$ref": reference(&name)})
    }

    /// The schema of a field's JSON value (an array for a list, an object for a map).
    fn field(&mut self, field: &FieldDescriptor) -> Value {
        if field.is_map()
            && let Kind::Message(entry) = field.kind()
        {
            let values = self.kind(&entry.map_entry_value_field().kind());
            return json!({"type": "object", "additionalProperties": values});
        }
        let single = self.kind(&field.kind());
        if field.is_list() {
            json!({"type": "array", "items": single})
        } else {
            single
        }
    }

    fn kind(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Double | Kind::Float => json!({"type": "number"}),
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                json!({"type": "integer", "format": "int32"})
            }
            Kind::Uint32 | Kind::Fixed32 => json!({"type": "integer", "format": "uint32"}),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
                json!({"type": "string", "format": "int64"})
            }
            Kind::Uint64 | Kind::Fixed64 => json!({"type": "string", "format": "uint64"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::String => json!({"type": "string"}),
            Kind::Bytes => json!({"type": "string", "format": "byte"}),
            Kind::Message(message) => self.reference(message),
            Kind::Enum(enumeration) => enum_schema(enumeration),
        }
    }
}

fn enum_schema(enumeration: &EnumDescriptor) -> Value {
    let names: Vec<String> = enumeration
        .values()
        .map(|value| value.name().to_owned())
        .collect();
    json!({"type": "string", "enum": names})
}

/// The leading comment of the element at `path` in `file`, trimmed.
fn comment_of(file: prost_reflect::FileDescriptor, path: &[i32]) -> Option<String> {
    let info = file.file_descriptor_proto().source_code_info.as_ref()?;
    let location = info
        .location
        .iter()
        .find(|location| location.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    Some(lines.join("\n").trim().to_owned())
}
