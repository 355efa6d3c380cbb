//! HTTP/JSON beside gRPC on the same port: every unary method with a `google.api.http` option is
//! served at its route, in the proto3 JSON mapping, and `GET /openapi.json` describes those
//! routes. The routes come from the compiled-in descriptors at start-up, never from a list kept by
//! hand. A JSON request becomes an in-process gRPC call through the layers inside this one
//! (authentication with the request's own `authorization` header, fair share, limits, timeouts),
//! and its answer comes back as JSON; an error as `google.rpc.Status` JSON under the HTTP status
//! of its code. gRPC and gRPC-Web requests (`content-type: application/grpc...`) pass untouched.
//!
//! Why not a library: the Rust transcoders we weighed either read their own annotations instead
//! of `google.api.http` (tinc, tonneau) or bring a gateway of their own (structured-proxy: its
//! own auth, CORS, rate limits, YAML config, an HTTP client, Envoy's protos: 25 more crates).
//! prost-reflect, already in the tree, does the one hard part, the JSON mapping of any message.

mod fields;
mod openapi;
mod request;
mod response;
mod routes;
mod template;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body_util::{BodyExt, Full, Limited};
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};

use crate::error::ApiError;
use routes::Route;

pub use response::http_status;

/// Where each server serves the OpenAPI document of its routes.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The largest JSON body read: tonic's own default limit on a decoded gRPC message.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// How much sooner than the server's request timeout a JSON call gives up. tonic's own timer,
/// outside this layer, would otherwise cut the call first and answer in gRPC's form (CANCELLED
/// in headers, HTTP 200), which an HTTP client doesn't read; this one answers DEADLINE_EXCEEDED
/// as JSON.
const DEADLINE_MARGIN: Duration = Duration::from_millis(20);

type Body = tonic::body::Body;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why HTTP/JSON can't be served.
#[derive(Debug, thiserror::Error)]
pub enum HttpJsonError {
    /// The compiled-in descriptors don't load.
    #[error("descriptors: {0}")]
    Descriptors(#[from] prost_reflect::DescriptorError),
    /// tonic-types' descriptors (the error details) don't decode.
    #[error("error detail descriptors: {0}")]
    DetailDescriptors(#[from] prost::DecodeError),
    /// A method's `google.api.http` option can't be served.
    #[error("google.api.http: {0}")]
    Route(#[from] routes::RouteError),
}

/// The routes of one server's services, and what answering them needs.
#[derive(Debug)]
pub struct HttpJson {
    pool: DescriptorPool,
    routes: Vec<Route>,
    openapi: Bytes,
    /// How long a call may take (see [`DEADLINE_MARGIN`]).
    deadline: Duration,
}

impl HttpJson {
    /// The routes of `services` (full names, as gRPC knows them), on a server that cancels calls
    /// after `request_timeout`.
    pub fn new(services: &[&str], request_timeout: Duration) -> Result<Self, HttpJsonError> {
        let pool = descriptor_pool()?;
        let routes = routes::routes_of(&pool, services)?;
        let document = openapi::document(&pool, services, &routes);
        let openapi = Bytes::from(serde_json::to_vec(&document).unwrap_or_default());
        Ok(Self {
            pool,
            routes,
            openapi,
            deadline: request_timeout.saturating_sub(DEADLINE_MARGIN),
        })
    }

    /// Answers one HTTP/JSON request, calling `grpc` (ready) for a route's method.
    async fn serve<S, B>(&self, mut grpc: S, request: Request<Body>) -> Response<Body>
    where
        S: tower::Service<Request<Body>, Response = Response<B>>,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path();
        if parts.method == Method::GET && path == OPENAPI_PATH {
            return response::json(StatusCode::OK, self.openapi.to_vec());
        }
        let Some((route, variables)) = self.routes.iter().find_map(|route| {
            (route.http_method == parts.method)
                .then(|| route.template.matches(path))
                .flatten()
                .map(|variables| (route, variables))
        }) else {
            let unknown = ApiError::not_found("HTTP route", format!("{} {path}", parts.method));
            return self.error(unknown);
        };
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(failure) if failure.is::<http_body_util::LengthLimitError>() => {
                return self.error(ApiError::ResourceExhausted {
                    reason: "BODY_TOO_LARGE",
                    message: format!("the request body is over {MAX_BODY_BYTES} bytes"),
                });
            }
            Err(failure) => {
                return self.error(ApiError::invalid("body", format!("unreadable: {failure}")));
            }
        };
        if !body.is_empty() && !is_json(&parts.headers) {
            return self.error(ApiError::invalid(
                "content-type",
                "a request body must be JSON: send content-type: application/json",
            ));
        }
        let message = match request::request_message(route, variables, parts.uri.query(), &body) {
            Ok(message) => message,
            Err(invalid) => return self.error(invalid),
        };
        let call = async {
            match grpc.call(grpc_request(route, parts, &message)).await {
                Ok(answer) => response::from_grpc(&self.pool, route, answer).await,
                Err(failure) => {
                    response::error(&self.pool, &tonic::Status::from_error(failure.into()))
                }
            }
        };
        match tokio::time::timeout(self.deadline, call).await {
            Ok(answer) => answer,
            Err(_) => response::error(
                &self.pool,
                &tonic::Status::deadline_exceeded(
                    "the call took longer than the server's request timeout",
                ),
            ),
        }
    }

    fn error(&self, error: ApiError) -> Response<Body> {
        response::error(&self.pool, &tonic::Status::from(error))
    }
}

/// Every charla type and the google.rpc error details, so errors' details render with `@type`.
fn descriptor_pool() -> Result<DescriptorPool, HttpJsonError> {
    let mut pool = DescriptorPool::decode(charla_proto::FILE_DESCRIPTOR_SET)?;
    // tonic-types names its copy of google.rpc.Status `status.proto`: a file of another name
    // defining the same types, which the pool refuses; charla's own is the one to keep.
    let details = prost_types::FileDescriptorSet::decode(tonic_types::pb::FILE_DESCRIPTOR_SET)?;
    let missing: Vec<_> = details
        .file
        .into_iter()
        .filter(|file| {
            let package = file.package();
            !file.message_type.iter().any(|message| {
                pool.get_message_by_name(&format!("{package}.{}", message.name()))
                    .is_some()
            })
        })
        .collect();
    pool.add_file_descriptor_protos(missing)?;
    Ok(pool)
}

/// The gRPC call of `route` with `message`, carrying the HTTP request's headers (the token, the
/// workspace) and its connection's extensions (peer address, TLS certificates).
fn grpc_request(
    route: &Route,
    parts: http::request::Parts,
    message: &DynamicMessage,
) -> Request<Body> {
    let encoded = message.encode_to_vec();
    let mut frame = Vec::with_capacity(encoded.len() + 5);
    frame.push(0); // not compressed
    // Under MAX_BODY_BYTES: the JSON of a message is never shorter than its encoding by much.
    frame.extend_from_slice(
        &u32::try_from(encoded.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    frame.extend_from_slice(&encoded);

    let mut request = Request::new(Body::new(Full::new(Bytes::from(frame))));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_maybe_shared(route.grpc_path.clone()).unwrap_or_default();
    // gRPC is HTTP/2; gRPC-Web's layer turns away any other HTTP/1.1 request.
    *request.version_mut() = Version::HTTP_2;
    let mut headers = parts.headers;
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
        header::ACCEPT_ENCODING,
        header::TE,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
    for name in ["keep-alive", "grpc-encoding", "grpc-accept-encoding"] {
        headers.remove(name);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    *request.headers_mut() = headers;
    *request.extensions_mut() = parts.extensions;
    request
}

/// Whether a request is gRPC or gRPC-Web, which this layer leaves alone.
fn is_grpc<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

/// Whether the content type is JSON (`application/json`, any parameters).
fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// The tower layer serving HTTP/JSON in front of a server's gRPC stack.
#[derive(Debug, Clone)]
pub struct HttpJsonLayer {
    shared: Arc<HttpJson>,
}

impl HttpJsonLayer {
    pub fn new(http_json: HttpJson) -> Self {
        Self {
            shared: Arc::new(http_json),
        }
    }
}

impl<S> tower::Layer<S> for HttpJsonLayer {
    type Service = HttpJsonService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpJsonService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`HttpJsonLayer`] wraps around the gRPC stack.
#[derive(Debug, Clone)]
pub struct HttpJsonService<S> {
    inner: S,
    shared: Arc<HttpJson>,
}

impl<S, B> tower::Service<Request<Body>> for HttpJsonService<S>
where
    S: tower::Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if is_grpc(&request) {
            let answer = self.inner.call(request);
            return Box::pin(async move { answer.await.map(|answer| answer.map(Body::new)) });
        }
        // The service polled ready is the one to call; a fresh clone stays for the next call.
        let fresh = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, fresh);
        let shared = self.shared.clone();
        Box::pin(async move { Ok(shared.serve(ready, request).await) })
    }
}
