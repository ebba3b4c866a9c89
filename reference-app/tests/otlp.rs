//! The OTLP exporter (feature `otlp`): what it sends reaches a collector (a loopback listener
//! standing in for one), and, configured from an endpoint where nothing listens, the spans it
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

/// One HTTP request as a collector receives it.
struct Received {
    request_line: String,
    content_type: Option<String>,
    body: Vec<u8>,
}

/// Reads one request (head, then `content-length` bytes of body); `None` at end of stream.
fn read_request(stream: &mut std::net::TcpStream) -> Option<Received> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_owned();
    let mut content_type = None;
    let mut length = 0usize;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "content-type" => content_type = Some(value.trim().to_owned()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    Some(Received {
        request_line,
        content_type,
        body,
    })
}

/// The exporter against a collector: a listener on loopback that answers every request with
/// 200 and keeps what it got. The spans of a delivery arrive as OTLP/HTTP protobuf, carrying
/// the saga's trace id and the service's name.
#[test]
fn spans_reach_a_collector_over_otlp_http() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            while let Some(request) = read_request(&mut stream) {
                let ok = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
                );
                if tx.send(request).is_err() || ok.is_err() {
                    return;
                }
            }
        }
    });
    let otlp = Otlp::new(&format!("http://{addr}/v1/traces"), "order-service").unwrap();
    let subscriber = tracing_subscriber::registry().with(otlp.layer());
    tracing::subscriber::with_default(subscriber, || {
        let envelope = Envelope::new("payment.requested", "o-1", serde_json::json!({}))
            .with_header("traceparent", CALLER);
        let span = delivery_span("payment", &envelope);
        let _entered = span.enter();
    });
    otlp.shutdown().expect("the queued spans are sent");
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the collector received the spans");
    assert_eq!(got.request_line, "POST /v1/traces HTTP/1.1");
    assert_eq!(got.content_type.as_deref(), Some("application/x-protobuf"));
    let trace_id = TraceParent::parse(CALLER).unwrap().trace_id.to_be_bytes();
    let has = |needle: &[u8]| got.body.windows(needle.len()).any(|w| w == needle);
    assert!(has(&trace_id), "the saga's trace id is in the export");
    assert!(has(b"order-service"), "the service's name is in the export");
}
