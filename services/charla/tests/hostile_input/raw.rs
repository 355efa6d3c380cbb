//! Calling any RPC with bytes: through a codec that passes message bodies untouched (so a body
//! may be anything at all), and as plain HTTP/2 requests for bodies that are not even gRPC frames.

use std::time::Duration;

use bytes::Bytes;
use charla_runtime::auth::Role;
use charla_testing::raw::RawCodec;
use http_body_util::BodyExt;
use prost_reflect::MethodDescriptor;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tower::ServiceExt;

/// The credentials a call carries.
pub enum Caller {
    /// An admin token of the workspace.
    Workspace(uuid::Uuid),
    /// A service token acting in the workspace (`x-workspace-id`).
    Service(uuid::Uuid),
    /// No token at all.
    Nobody,
    /// An `authorization` that is not a token.
    Garbage,
}

fn path(method: &MethodDescriptor) -> String {
    format!("/{}/{}", method.parent_service().full_name(), method.name())
}

fn request<T>(message: T, caller: &Caller) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(20));
    let bearer = match caller {
        Caller::Workspace(id) => Some(charla_testing::token(Role::Admin, Some(*id))),
        Caller::Service(id) => {
            request
                .metadata_mut()
                .insert("x-workspace-id", id.to_string().parse().expect("a UUID"));
            Some(charla_testing::token(Role::Service, None))
        }
        Caller::Nobody => None,
        Caller::Garbage => Some("acme%00".to_owned()),
    };
    if let Some(bearer) = bearer {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {bearer}").parse().expect("ASCII metadata"),
        );
    }
    request
}

/// Calls `method` with `bodies` (one, or any number for a client stream) and returns the
/// answers: the response message, or up to a few messages of a response stream (a stream that
/// follows new events is left after a short wait).
pub async fn call(
    channel: Channel,
    method: &MethodDescriptor,
    bodies: Vec<Vec<u8>>,
    caller: &Caller,
) -> Result<Vec<Vec<u8>>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
    let path: http::uri::PathAndQuery = path(method).parse().expect("a method path");
    let first = bodies.first().cloned().unwrap_or_default();
    match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => grpc
            .unary(request(first, caller), path, RawCodec)
            .await
            .map(|response| vec![response.into_inner()]),
        (false, true) => {
            let stream = grpc
                .server_streaming(request(first, caller), path, RawCodec)
                .await?
                .into_inner();
            first_messages(stream).await
        }
        (true, false) => {
            let stream = tokio_stream::iter(bodies);
            grpc.client_streaming(request(stream, caller), path, RawCodec)
                .await
                .map(|response| vec![response.into_inner()])
        }
        (true, true) => {
            let stream = tokio_stream::iter(bodies);
            let stream = grpc
                .streaming(request(stream, caller), path, RawCodec)
                .await?
                .into_inner();
            first_messages(stream).await
        }
    }
}

async fn first_messages(mut stream: tonic::Streaming<Vec<u8>>) -> Result<Vec<Vec<u8>>, Status> {
    let mut messages = Vec::new();
    for _ in 0..3 {
        match tokio::time::timeout(Duration::from_millis(30), stream.message()).await {
            Ok(Ok(Some(message))) => messages.push(message),
            Ok(Ok(None)) | Err(_) => break,
            Ok(Err(status)) => return Err(status),
        }
    }
    Ok(messages)
}

/// Posts `body` as it is (no gRPC framing added) to `method` and returns the gRPC status code
/// the server answers, from the headers or the trailers.
pub async fn post_raw(
    channel: Channel,
    method: &MethodDescriptor,
    body: Vec<u8>,
    workspace: uuid::Uuid,
) -> Code {
    let request = http::Request::builder()
        .method("POST")
        .uri(path(method))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header(
            "authorization",
            format!(
                "Bearer {}",
                charla_testing::token(Role::Admin, Some(workspace))
            ),
        )
        .body(tonic::body::Body::new(http_body_util::Full::new(
            Bytes::from(body),
        )))
        .expect("a request");
    let response = match channel.oneshot(request).await {
        Ok(response) => response,
        Err(error) => return Status::from_error(error.into()).code(),
    };
    if let Some(status) = response.headers().get("grpc-status") {
        return Code::from_bytes(status.as_bytes());
    }
    // The answer began: read until its trailers, but not for ever (a stream may follow events).
    let collected =
        tokio::time::timeout(Duration::from_millis(200), response.into_body().collect());
    match collected.await {
        Ok(Ok(body)) => body
            .trailers()
            .and_then(|trailers| trailers.get("grpc-status"))
            .map_or(Code::Unknown, |status| Code::from_bytes(status.as_bytes())),
        Ok(Err(status)) => Status::from_error(status.into()).code(),
        Err(_) => Code::Ok,
    }
}
