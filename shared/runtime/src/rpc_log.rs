//! One log line per call: the tower layer every server runs outermost among its own layers, so a
//! call refused by authentication, shed for load, cut by the timeout or dropped by its client is
//! still told. The line names the gRPC method, the status code, the latency (until the answer's
//! last byte: a stream's whole life), the workspace once authentication knows it, and the caller's
//! W3C trace id when it sent one; never a token, a key or a message body. Health checks log at
//! DEBUG (probes call them every few seconds), everything else at INFO.
//!
//! What it observes is also handed to a [`CallObserver`] (the Prometheus metrics), so logs and
//! metrics count the same calls with the same codes.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body::{Body as HttpBody, Frame, SizeHint};
use prost::Message;
use tonic::Code;
use tracing::Instrument;

use crate::auth::{Caller, Role};
use crate::workspace::{WORKSPACE_HEADER, WorkspaceId};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The label of a path that names no method this server knows: a caller can send any path, and
/// neither logs nor metrics should grow with what a caller makes up (OpenTelemetry's `_OTHER`).
pub const OTHER: &str = "_OTHER";

/// A call's method, as OpenTelemetry's RPC conventions name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcMethod {
    /// The full service name, `charla.contact.v1.ContactService`, or [`OTHER`].
    pub service: Arc<str>,
    /// The method, `CreateContact`, or [`OTHER`].
    pub method: Arc<str>,
}

impl RpcMethod {
    fn other() -> Self {
        Self {
            service: OTHER.into(),
            method: OTHER.into(),
        }
    }
}

/// Something told about every finished call (the Prometheus metrics).
pub trait CallObserver: Send + Sync + 'static {
    /// `method` answered `code` after `latency`.
    fn call_finished(&self, method: &RpcMethod, code: Code, latency: Duration);
}

/// The methods the compiled-in descriptors declare: charla's, health's and reflection's.
#[derive(Debug)]
pub struct KnownMethods {
    methods: HashSet<(Arc<str>, Arc<str>)>,
}

impl KnownMethods {
    /// Every method of every service in the descriptor sets the servers serve from.
    pub fn compiled_in() -> Arc<Self> {
        static KNOWN: OnceLock<Arc<KnownMethods>> = OnceLock::new();
        KNOWN
            .get_or_init(|| {
                Arc::new(Self::from_descriptor_sets(&[
                    charla_proto::FILE_DESCRIPTOR_SET,
                    tonic_health::pb::FILE_DESCRIPTOR_SET,
                    tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                    tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
                ]))
            })
            .clone()
    }

    fn from_descriptor_sets(sets: &[&[u8]]) -> Self {
        let mut methods = HashSet::new();
        for encoded in sets {
            // The sets are compiled in; one that doesn't decode only leaves its methods `_OTHER`.
            let Ok(set) = prost_types::FileDescriptorSet::decode(*encoded) else {
                continue;
            };
            for file in set.file {
                for service in &file.service {
                    let full = match file.package() {
                        "" => service.name().to_owned(),
                        package => format!("{package}.{}", service.name()),
                    };
                    let full: Arc<str> = full.into();
                    for method in &service.method {
                        methods.insert((full.clone(), method.name().into()));
                    }
                }
            }
        }
        Self { methods }
    }

    /// The method a request path (`/package.Service/Method`) calls, or [`OTHER`] for both parts
    /// when no compiled-in service declares it.
    pub fn resolve(&self, path: &str) -> RpcMethod {
        let Some((service, method)) = path.strip_prefix('/').and_then(|rest| rest.split_once('/'))
        else {
            return RpcMethod::other();
        };
        match self
            .methods
            .get(&(Arc::<str>::from(service), Arc::<str>::from(method)))
        {
            Some((service, method)) => RpcMethod {
                service: service.clone(),
                method: method.clone(),
            },
            None => RpcMethod::other(),
        }
    }
}

/// Where the authentication layer leaves the workspace of a call for its log line.
#[derive(Debug, Clone, Default)]
pub struct CallWorkspace(Arc<OnceLock<WorkspaceId>>);

/// Notes, for the log line, the workspace a verified `caller` acts in: its token's, or for a
/// service token the one it names with `x-workspace-id` (when that is a UUID; whether the token
/// may act there is the handler's check, the line only says what was asked).
pub fn note_caller<B>(request: &http::Request<B>, caller: &Caller) {
    let Some(slot) = request.extensions().get::<CallWorkspace>() else {
        return;
    };
    let named = || {
        request
            .headers()
            .get(WORKSPACE_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| uuid::Uuid::parse_str(text.trim()).ok())
            .map(WorkspaceId::new)
    };
    let workspace = match caller.role {
        Role::Service => named().or(caller.workspace),
        _ => caller.workspace,
    };
    if let Some(workspace) = workspace {
        let _first_wins = slot.0.set(workspace);
    }
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`), when it is one
/// and not the all-zero invalid id.
pub fn trace_id_of(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.trim().split('-');
    let (version, trace_id, parent_id, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace_id, 32)
        && hex(parent_id, 16)
        && hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0');
    valid.then(|| trace_id.to_owned())
}

/// Adds [`RpcLog`] around a service.
#[derive(Clone)]
pub struct RpcLogLayer {
    methods: Arc<KnownMethods>,
    observer: Option<Arc<dyn CallObserver>>,
}

impl RpcLogLayer {
    /// Logs every call; tells `observer` too when there is one.
    pub fn new(observer: Option<Arc<dyn CallObserver>>) -> Self {
        Self {
            methods: KnownMethods::compiled_in(),
            observer,
        }
    }
}

impl<S> tower::Layer<S> for RpcLogLayer {
    type Service = RpcLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcLog {
            inner,
            layer: self.clone(),
        }
    }
}

/// Logs each call once it has finished.
#[derive(Clone)]
pub struct RpcLog<S> {
    inner: S,
    layer: RpcLogLayer,
}

impl<S, B> tower::Service<http::Request<B>> for RpcLog<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let workspace = CallWorkspace::default();
        request.extensions_mut().insert(workspace.clone());
        let method = self.layer.methods.resolve(request.uri().path());
        let span = crate::telemetry::server_span(
            &format!("{}/{}", method.service, method.method),
            request.headers(),
        );
        span.record("rpc.service", &*method.service);
        span.record("rpc.method", &*method.method);
        let trace_id =
            crate::telemetry::trace_id_of(&span).or_else(|| trace_id_of(request.headers()));
        let mut record = CallRecord {
            method,
            trace_id,
            workspace,
            observer: self.layer.observer.clone(),
            started: Instant::now(),
            finished: false,
            span: span.clone(),
        };
        let answer = span.in_scope(|| self.inner.call(request));
        Box::pin(
            async move {
                match answer.await {
                    Ok(response) => {
                        // A trailers-only answer (every error tonic makes) has its status in the
                        // headers; otherwise it comes in the trailers, after the last message.
                        if let Some(code) = status_code(response.headers()) {
                            record.finish(code);
                        }
                        Ok(response
                            .map(|body| tonic::body::Body::new(RecordedBody { body, record })))
                    }
                    Err(error) => {
                        let error = error.into();
                        record.finish(code_of_error(&*error));
                        Err(error)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// The code of a layer's error, as tonic's server will answer it.
fn code_of_error(error: &(dyn std::error::Error + 'static)) -> Code {
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Code::ResourceExhausted;
    }
    if let Some(status) = error.downcast_ref::<tonic::Status>() {
        return status.code();
    }
    Code::Unknown
}

fn status_code(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?;
    Some(Code::from_bytes(value.as_bytes()))
}

/// One call on its way: told once, when it ends (or, dropped unfinished, as CANCELLED: the client
/// went away or the server's timeout cut it).
struct CallRecord {
    method: RpcMethod,
    trace_id: Option<String>,
    workspace: CallWorkspace,
    observer: Option<Arc<dyn CallObserver>>,
    started: Instant,
    finished: bool,
    /// The call's trace span: it ends when the record goes, with the call.
    span: tracing::Span,
}

impl CallRecord {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let latency = self.started.elapsed();
        self.span.record("rpc.grpc.status_code", code as i64);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        if let Some(observer) = &self.observer {
            observer.call_finished(&self.method, code, latency);
        }
        let latency_ms = latency.as_secs_f64() * 1000.0;
        let workspace = self.workspace.0.get().map(tracing::field::display);
        let code_name = code_name(code);
        macro_rules! line {
            ($level:expr) => {
                tracing::event!(
                    target: "charla::rpc",
                    $level,
                    rpc.service = &*self.method.service,
                    rpc.method = &*self.method.method,
                    grpc.code = code_name,
                    latency_ms = (latency_ms * 1000.0).round() / 1000.0,
                    workspace,
                    trace_id = self.trace_id.as_deref(),
                    "rpc"
                )
            };
        }
        if &*self.method.service == tonic_health::pb::health_server::SERVICE_NAME {
            line!(tracing::Level::DEBUG);
        } else {
            line!(tracing::Level::INFO);
        }
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        self.finish(Code::Cancelled);
    }
}

/// Whether `code` is the server's failure rather than the caller's, as OpenTelemetry's gRPC
/// conventions count a server span's error status.
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The code's name as gRPC spells it (`NOT_FOUND`), which is what people search logs for.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// An answer's body that finishes its call's record at its trailers, its end, or its drop.
struct RecordedBody {
    body: tonic::body::Body,
    record: CallRecord,
}

impl HttpBody for RecordedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_code) {
                    this.record.finish(code);
                }
            }
            Poll::Ready(Some(Err(status))) => this.record.finish(status.code()),
            // Ended without a status: the client sees none, which gRPC reads as UNKNOWN.
            Poll::Ready(None) => this.record.finish(Code::Unknown),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_path_names_its_service_and_method() {
        let known = KnownMethods::compiled_in();
        let method = known.resolve("/charla.contact.v1.ContactService/CreateContact");
        assert_eq!(&*method.service, "charla.contact.v1.ContactService");
        assert_eq!(&*method.method, "CreateContact");
        let health = known.resolve("/grpc.health.v1.Health/Check");
        assert_eq!(&*health.method, "Check");
    }

    #[test]
    fn a_made_up_path_is_other() {
        let known = KnownMethods::compiled_in();
        for path in [
            "/charla.contact.v1.ContactService/NoSuchMethod",
            "/made.Up/Method",
            "/",
            "",
            "/charla.contact.v1.ContactService",
        ] {
            assert_eq!(known.resolve(path), RpcMethod::other(), "{path}");
        }
    }

    #[test]
    fn a_traceparent_gives_its_trace_id() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            trace_id_of(&headers).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            headers.insert("traceparent", bad.parse().unwrap());
            assert_eq!(trace_id_of(&headers), None, "{bad}");
        }
    }
}
