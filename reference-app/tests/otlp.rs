//! The OTLP exporter (feature `otlp`): it is configured from an endpoint without a collector
//! (nothing listens there; nothing in the test depends on the network), and the spans it
//! exports follow the sagas' trace context: a delivery's span is a child of its envelope's
//! `traceparent`, the order service's `place_order` span a child of the request's, and its own
//! ids are what the saga's envelopes then carry. Spans of other targets are not exported.
#![cfg(feature = "otlp")]

use axum::http::HeaderMap;
use reference_app::otlp::{Otlp, exported};
use reference_app::trace_context::{SPAN_TARGET, TraceContext, TraceParent, delivery_span};
use saga_core::Envelope;
use tracing_subscriber::layer::SubscriberExt;

const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn the_exporter_is_configured_and_its_spans_follow_the_sagas_trace() {
    assert!(Otlp::new("https://collector:4318/v1/traces", "order").is_err());
    // Port 9 on loopback: no collector; what the batch processor sends is refused.
    let endpoint = "http://127.0.0.1:9/v1/traces";
    let otlp = Otlp::new(endpoint, "order").expect("the exporter is configured");
    assert_eq!(otlp.endpoint(), endpoint);
    let caller = TraceParent::parse(CALLER).unwrap();
    let subscriber = tracing_subscriber::registry().with(otlp.layer());
    tracing::subscriber::with_default(subscriber, || {
        // A delivery: its span continues the envelope's trace.
        let envelope = Envelope::new("payment.requested", "o-1", serde_json::json!({}))
            .with_header("traceparent", CALLER);
        let span = delivery_span("payment", &envelope);
        let own = exported(&span).expect("the delivery's span is exported");
        assert_eq!(own.trace_id, caller.trace_id);
        assert_ne!(own.parent_id, caller.parent_id, "a span of its own");

        // The request placing an order: its span is the parent the envelopes name.
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", CALLER.parse().unwrap());
        let place = tracing::info_span!(target: SPAN_TARGET, "place_order");
        let ctx = TraceContext::for_request_in(&headers, &place);
        assert_eq!(Some(ctx.parent), exported(&place));
        assert_eq!(ctx.parent.trace_id, caller.trace_id);
        assert_ne!(ctx.parent.parent_id, caller.parent_id);

        // Without a caller's trace, a new one; other targets are not exported.
        let fresh = tracing::info_span!(target: SPAN_TARGET, "place_order");
        let ctx = TraceContext::for_request_in(&HeaderMap::new(), &fresh);
        assert_ne!(ctx.parent.trace_id, caller.trace_id);
        assert_eq!(Some(ctx.parent), exported(&fresh));
        let other = tracing::info_span!("unrelated");
        assert_eq!(exported(&other), None);
    });
    // Sending fails (no collector); stopping the exporter must not hang on it.
    let started = std::time::Instant::now();
    let _ = otlp.shutdown();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
