//! A gRPC answer as an HTTP/JSON one: the response message in the proto3 JSON mapping, or the
//! error as `google.rpc.Status` JSON (`code`, `message`, `details` each with its `@type`) under
//! the HTTP status the google.rpc.Code table gives its code.

use bytes::{Buf, Bytes};
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tonic::Code;

use super::routes::Route;

/// What an answer's body is made of.
type Body = tonic::body::Body;

/// The HTTP status of a gRPC code, as google/rpc/code.proto maps them.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A JSON answer.
pub fn json(status: StatusCode, body: Vec<u8>) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(Bytes::from(body))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// `status` as `google.rpc.Status` JSON, its details rendered with `pool` (every charla type and
/// the google.rpc error details).
pub fn error(pool: &DescriptorPool, status: &tonic::Status) -> http::Response<Body> {
    let mut object = serde_json::Map::new();
    if let Some(decoded) = rpc_status(pool, status.details()) {
        object = decoded;
    }
    object.insert("code".into(), (status.code() as i32).into());
    object.insert("message".into(), status.message().into());
    object
        .entry("details")
        .or_insert_with(|| serde_json::Value::Array(Vec::new()));
    let body = serde_json::to_vec(&object).unwrap_or_default();
    json(http_status(status.code()), body)
}

/// The google.rpc.Status a gRPC error carries in `grpc-status-details-bin`, as JSON; `None` when
/// there is none or it can't be rendered (a detail of a type the pool doesn't know).
fn rpc_status(
    pool: &DescriptorPool,
    details: &[u8],
) -> Option<serde_json::Map<String, serde_json::Value>> {
    if details.is_empty() {
        return None;
    }
    let descriptor = pool.get_message_by_name("google.rpc.Status")?;
    let message = DynamicMessage::decode(descriptor, details).ok()?;
    match serde_json::to_value(&message) {
        Ok(serde_json::Value::Object(object)) => Some(object),
        Ok(_) => None,
        Err(error) => {
            tracing::debug!(%error, "error details not rendered as JSON");
            None
        }
    }
}

/// The gRPC answer of `route`'s method as an HTTP/JSON answer.
pub async fn from_grpc<B>(
    pool: &DescriptorPool,
    route: &Route,
    response: http::Response<B>,
) -> http::Response<Body>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<tonic::codegen::StdError>,
{
    // A call that fails before answering has its status in the headers ("trailers-only").
    if let Some(status) = tonic::Status::from_header_map(response.headers())
        && status.code() != Code::Ok
    {
        return error(pool, &status);
    }
    let collected = match response.into_body().collect().await {
        Ok(collected) => collected,
        Err(failure) => return error(pool, &tonic::Status::from_error(failure.into())),
    };
    if let Some(status) = collected
        .trailers()
        .and_then(tonic::Status::from_header_map)
        && status.code() != Code::Ok
    {
        return error(pool, &status);
    }
    let message = first_message(collected.to_bytes())
        .and_then(|bytes| DynamicMessage::decode(route.method.output(), bytes).ok());
    let Some(message) = message else {
        return error(pool, &tonic::Status::internal("the answer held no message"));
    };
    match response_json(route, &message) {
        Ok(body) => json(StatusCode::OK, body),
        Err(failure) => error(
            pool,
            &tonic::Status::internal(format!("the answer can't be written as JSON: {failure}")),
        ),
    }
}

/// The message of a gRPC body (one uncompressed length-prefixed frame: the call asks for no
/// compression).
fn first_message(mut data: Bytes) -> Option<Bytes> {
    if data.len() < 5 || data[0] != 0 {
        return None;
    }
    data.advance(1);
    let length = usize::try_from(data.get_u32()).ok()?;
    (data.len() >= length).then(|| data.split_to(length))
}

/// The answer's JSON: the whole message, or only its `response_body` field.
fn response_json(route: &Route, message: &DynamicMessage) -> Result<Vec<u8>, serde_json::Error> {
    if route.response_body.is_empty() {
        return serde_json::to_vec(message);
    }
    let whole = message.serialize_with_options(
        serde_json::value::Serializer,
        &SerializeOptions::new().skip_default_fields(false),
    )?;
    let name = route
        .method
        .output()
        .get_field_by_name(&route.response_body)
        .map(|field| field.json_name().to_owned())
        .unwrap_or_default();
    serde_json::to_vec(whole.get(&name).unwrap_or(&serde_json::Value::Null))
}
