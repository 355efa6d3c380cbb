//! Logging and traces: one subscriber for every service, human-readable or JSON, filtered by
//! `RUST_LOG`; and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, OpenTelemetry traces exported over
//! OTLP/gRPC (the standard `OTEL_*` variables apply: `OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `OTEL_BSP_SCHEDULE_DELAY`...). Trace context travels as
//! W3C `traceparent`: taken from callers ([`server_span`]), put on every peer call
//! ([`inject_current_into`]) and into every event ([`current_trace_parent`]).

use std::io::IsTerminal;
use std::sync::Arc;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Keeps the trace exporter of [`init`] alive; [`TelemetryGuard::shutdown`] sends what is left.
#[derive(Debug, Default)]
#[must_use = "dropping the guard without `shutdown` may lose the last traces"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports the spans still buffered and stops the exporter.
    pub async fn shutdown(self) {
        if let Some(provider) = self.provider {
            // The SDK blocks while it flushes; the export itself runs on this runtime.
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "could not send the last traces");
            }
        }
    }
}

/// Installs the global tracing subscriber, with OpenTelemetry export when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, naming the
/// process `service_name` unless `OTEL_SERVICE_NAME` says otherwise. Safe to call more than once
/// (later calls do nothing), which lets `charla up` start several services in one process. Call
/// it inside the tokio runtime: the exporter sends on it.
pub fn init(format: LogFormat, service_name: &str) -> TelemetryGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = otlp_configured()
        .then(|| tracer_provider(service_name))
        .flatten();
    // Traces take charla's own spans (calls, event hops) whatever RUST_LOG says about logs.
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("charla"))
            .with_filter(EnvFilter::new("charla=info"))
    });
    // Colour only for a person at a terminal: a file or a log pipeline gets plain text.
    let ansi = std::io::stdout().is_terminal();
    let registry = tracing_subscriber::registry().with(otel);
    let installed = match format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_filter(filter),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_ansi(ansi)
                    .with_filter(filter),
            )
            .try_init(),
    };
    if installed.is_err() {
        // Another subscriber was there first; its traces (if any) are what count.
        if let Some(provider) = provider {
            let _ = provider.shutdown();
        }
        return TelemetryGuard::default();
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    TelemetryGuard { provider }
}

fn otlp_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var(name).is_ok_and(|value| !value.trim().is_empty()))
}

fn tracer_provider(service_name: &str) -> Option<SdkTracerProvider> {
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
    {
        Ok(exporter) => exporter,
        Err(error) => {
            eprintln!("OpenTelemetry: can't build the OTLP exporter, no traces: {error}");
            return None;
        }
    };
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| format!("charla-{service_name}"));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(name)
        .build();
    Some(
        SdkTracerProvider::builder()
            .with_resource(resource)
            .with_batch_exporter(OnTokio::new(exporter))
            .build(),
    )
}

/// Runs an exporter's sends on the tokio runtime it was made on: the SDK's batch processor calls
/// it from a thread of its own, where tonic finds no runtime.
#[derive(Debug)]
struct OnTokio<E> {
    inner: Arc<E>,
    runtime: tokio::runtime::Handle,
}

impl<E> OnTokio<E> {
    fn new(inner: E) -> Self {
        Self {
            inner: Arc::new(inner),
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl<E: SpanExporter + Send + Sync + 'static> SpanExporter for OnTokio<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.export(batch).await })
            .await
            .unwrap_or_else(|error| Err(OTelSdkError::InternalFailure(error.to_string())))
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        // Called once, before the first export, while this is the only owner.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Puts the current span's trace context on a peer call's metadata.
pub fn inject_current_into(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
    }
}

/// The span of one served call, `kind=server`, a child of the caller's W3C trace context when
/// its headers carry one. `name` is `package.Service/Method`.
pub fn server_span(name: &str, headers: &http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        target: "charla::rpc",
        "rpc",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = tracing::field::Empty,
        rpc.method = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// The trace id of `span`, when it is being traced.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The current span's trace context as a W3C `traceparent` value, or "" when nothing is traced:
/// what an event carries so that its consumers can link back to the change that caused it.
pub fn current_trace_parent() -> String {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return String::new();
    }
    format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    )
}

/// Links `span` to the change an event's `trace_parent` names (a consumer applying the event).
pub fn link_to_trace_parent(span: &tracing::Span, trace_parent: &str) {
    if trace_parent.is_empty() {
        return;
    }
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(trace_parent) {
        headers.insert("traceparent", value);
    }
    let context = TraceContextPropagator::new().extract(&HeaderExtractor(&headers));
    let linked = context.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
}
