//! The OTLP exporter of the services' spans (feature `otlp`, `--otlp-endpoint`).
//!
//! Spans of the target [`SPAN_TARGET`] are exported: the
//! order service's `place_order` (a child of the request's `traceparent`; its span id becomes
//! the parent id the saga's envelopes carry) and one `handle` span per delivery a consumer
//! handles, a child of its envelope's `traceparent`. So a collector shows a saga as one
//! trace: the request, then each handler of each service, whichever process ran it. Spans go
//! over OTLP/HTTP with protobuf bodies (`http://collector:4318/v1/traces`), batched by the
//! SDK's processor on its own thread.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

use crate::trace_context::{SPAN_TARGET, TraceParent};

/// The exporter could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("OTLP exporter: {0}")]
pub struct OtlpError(String);

/// The exporter and its tracer provider; [`Otlp::shutdown`] sends what is left.
#[derive(Debug)]
pub struct Otlp {
    provider: SdkTracerProvider,
    endpoint: String,
}

impl Otlp {
    /// An exporter to `endpoint` (the collector's traces URL, `http://host:4318/v1/traces`)
    /// for the service `service` (its `service.name`). Nothing is sent until spans end.
    /// Call it outside the async runtime (the HTTP client it builds is a blocking one).
    pub fn new(endpoint: &str, service: &str) -> Result<Self, OtlpError> {
        if !endpoint.starts_with("http://") {
            return Err(OtlpError(format!(
                "{endpoint} is not an http:// URL (this build has no TLS)"
            )));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| OtlpError(e.to_string()))?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                Resource::builder_empty()
                    .with_service_name(format!("reference-app-{service}"))
                    .build(),
            )
            .build();
        Ok(Self {
            provider,
            endpoint: endpoint.to_owned(),
        })
    }

    /// Where spans go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The `tracing` layer that exports the spans of [`SPAN_TARGET`] (and nothing else).
    pub fn layer<S>(&self) -> impl Layer<S> + Send + Sync + 'static
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("reference-app"))
            .with_filter(Targets::new().with_target(SPAN_TARGET, tracing::Level::TRACE))
    }

    /// Sends the spans still queued and stops the exporter.
    pub fn shutdown(self) -> Result<(), OtlpError> {
        self.provider
            .shutdown()
            .map_err(|e| OtlpError(e.to_string()))
    }
}

/// Makes `span` a child of the remote span `parent` (a `traceparent`).
pub fn set_parent(span: &tracing::Span, parent: &TraceParent) {
    let remote = SpanContext::new(
        TraceId::from(parent.trace_id),
        SpanId::from(parent.parent_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let cx = opentelemetry::Context::new().with_remote_span_context(remote);
    if let Err(e) = span.set_parent(cx) {
        tracing::debug!(error = %e, "otlp: a span's parent was not set");
    }
}

/// Links `span` to the remote span `linked` (a span that handles several traces' messages
/// at once follows from each of them).
pub fn add_link(span: &tracing::Span, linked: &TraceParent) {
    span.add_link(SpanContext::new(
        TraceId::from(linked.trace_id),
        SpanId::from(linked.parent_id),
        TraceFlags::new(linked.flags),
        true,
        TraceState::default(),
    ));
}

/// The `traceparent` of `span` as exported (its own span id), if it is exported.
pub fn exported(span: &tracing::Span) -> Option<TraceParent> {
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    sc.is_valid().then(|| TraceParent {
        trace_id: u128::from_be_bytes(sc.trace_id().to_bytes()),
        parent_id: u64::from_be_bytes(sc.span_id().to_bytes()),
        flags: sc.trace_flags().to_u8(),
    })
}
