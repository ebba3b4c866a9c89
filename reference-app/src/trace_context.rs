//! W3C trace context (`traceparent`, `tracestate`) from the HTTP request that places an order
//! to the last event of its saga.
//!
//! `POST /orders` reads the request's `traceparent`: a valid one keeps its trace id and its
//! sampled flag, and the order service's handling of the request becomes the parent (a new
//! parent id); `tracestate` is kept with it. Without one (or with one that does not parse, as
//! the W3C recommendation says: then `tracestate` is dropped too) the order starts a trace of
//! its own. The context goes into the headers of `order.placed` and of every command; the
//! participants' replies carry their command's (`Envelope::caused_by`); the order service
//! keeps each saga's context beside it, so the commands a deadline sends and the `order.*`
//! events carry it as well, and the shipping service keeps the shipment's, for `dispatched`
//! and `delivered`. Every event of one saga shares one trace id.

use axum::http::HeaderMap;
use saga_core::Envelope;

/// The target of the spans that follow a saga (`place_order`, and `handle` for each
/// delivery): the log leaves them out, the OTLP exporter (feature `otlp`) sends them.
pub const SPAN_TARGET: &str = "saga_trace";

/// The `traceparent` header.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header.
pub const TRACESTATE: &str = "tracestate";

/// A parsed `traceparent` (version 00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace, 16 bytes, never all zero.
    pub trace_id: u128,
    /// The caller's span, 8 bytes, never all zero.
    pub parent_id: u64,
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value; `None` when it is not a valid one (wrong length or case,
    /// version `ff`, an all-zero id). A later version's longer value is read by its first
    /// four fields, as the recommendation asks.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        let mut parts = value.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let hex = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        if !hex(version, 2)
            || version == "ff"
            || !hex(trace, 32)
            || !hex(parent, 16)
            || !hex(flags, 2)
        {
            return None;
        }
        // Version 00 has exactly four fields.
        if version == "00" && (parts.next().is_some() || value.len() != 55) {
            return None;
        }
        let trace_id = u128::from_str_radix(trace, 16).ok()?;
        let parent_id = u64::from_str_radix(parent, 16).ok()?;
        let flags = u8::from_str_radix(flags, 16).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace (sampled), this process its root.
    pub fn root() -> Self {
        Self {
            trace_id: fastrand::u128(..).max(1),
            parent_id: fastrand::u64(..).max(1),
            flags: 0x01,
        }
    }

    /// The same trace, with this process's span (a new parent id) as the parent.
    pub fn child(&self) -> Self {
        Self {
            parent_id: fastrand::u64(..).max(1),
            ..*self
        }
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The header value, version 00.
    pub fn header(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// The trace context a message carries: `traceparent` and, if any, `tracestate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent`.
    pub parent: TraceParent,
    /// `tracestate`, as received.
    pub state: Option<String>,
}

impl TraceContext {
    /// The context of work done for an HTTP request: a child of the request's valid
    /// `traceparent` (its `tracestate` kept), or a new trace.
    pub fn for_request(headers: &HeaderMap) -> Self {
        Self::for_request_in(headers, &tracing::Span::none())
    }

    /// The same, the work done in `span`: when the span is exported (feature `otlp`), it
    /// becomes the caller's child and its own ids are the context's.
    pub fn for_request_in(headers: &HeaderMap, span: &tracing::Span) -> Self {
        let parent = headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(TraceParent::parse);
        #[cfg(feature = "otlp")]
        {
            if let Some(p) = &parent {
                crate::otlp::set_parent(span, p);
            }
            if let Some(own) = crate::otlp::exported(span) {
                let mut ctx = Self::for_request_in(headers, &tracing::Span::none());
                ctx.parent = own;
                return ctx;
            }
        }
        #[cfg(not(feature = "otlp"))]
        let _ = span;
        match parent {
            Some(p) => Self {
                parent: p.child(),
                state: headers
                    .get(TRACESTATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && s.len() <= 512)
                    .map(str::to_owned),
            },
            None => Self {
                parent: TraceParent::root(),
                state: None,
            },
        }
    }

    /// The context stored as text (`traceparent`, `tracestate`); `None` when it does not parse.
    pub fn from_stored(parent: &str, state: Option<String>) -> Option<Self> {
        Some(Self {
            parent: TraceParent::parse(parent)?,
            state,
        })
    }

    /// The context an envelope carries, if a valid one.
    pub fn of(envelope: &Envelope) -> Option<Self> {
        Self::from_stored(
            envelope.headers.get(TRACEPARENT)?,
            envelope.headers.get(TRACESTATE).cloned(),
        )
    }

    /// Puts the context into `envelope`'s headers (replacing any).
    pub fn stamp(&self, envelope: &mut Envelope) {
        envelope
            .headers
            .insert(TRACEPARENT.to_owned(), self.parent.header());
        match &self.state {
            Some(s) => {
                envelope.headers.insert(TRACESTATE.to_owned(), s.clone());
            }
            None => {
                envelope.headers.remove(TRACESTATE);
            }
        }
    }
}

/// The span a consumer handles `envelope` in (target [`SPAN_TARGET`]): with the OTLP
/// exporter, a child of the envelope's trace context.
pub fn delivery_span(subscription: &str, envelope: &Envelope) -> tracing::Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "handle",
        subscription,
        event_type = %envelope.event_type,
        event_id = %envelope.event_id,
    );
    #[cfg(feature = "otlp")]
    if !span.is_disabled()
        && let Some(ctx) = TraceContext::of(envelope)
    {
        crate::otlp::set_parent(&span, &ctx.parent);
    }
    span
}

/// The span a consumer handles a batch of `envelopes` in (target [`SPAN_TARGET`]): one span
/// for their one unit of work, which, with the OTLP exporter, follows from each envelope's
/// trace context (a span has one parent; the batch is linked to every message's trace).
pub fn batch_span(subscription: &str, envelopes: &[std::sync::Arc<Envelope>]) -> tracing::Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "handle_batch",
        subscription,
        messages = envelopes.len(),
    );
    #[cfg(feature = "otlp")]
    if !span.is_disabled() {
        for envelope in envelopes {
            if let Some(ctx) = TraceContext::of(envelope) {
                crate::otlp::add_link(&span, &ctx.parent);
            }
        }
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_recommendations_examples_parse_and_bad_values_do_not() {
        let p = TraceParent::parse(EXAMPLE).unwrap();
        assert_eq!(p.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.parent_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(p.header(), EXAMPLE);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        // A later version may add fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what")
                .is_some()
        );
    }

    #[test]
    fn a_request_context_continues_the_callers_trace_or_starts_one() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, EXAMPLE.parse().unwrap());
        headers.insert(TRACESTATE, "congo=t61rcWkgMzE".parse().unwrap());
        let ctx = TraceContext::for_request(&headers);
        assert_eq!(
            ctx.parent.trace_id_hex(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_ne!(ctx.parent.parent_id, 0x00f0_67aa_0ba9_02b7, "our own span");
        assert_eq!(ctx.parent.flags, 1);
        assert_eq!(ctx.state.as_deref(), Some("congo=t61rcWkgMzE"));

        headers.insert(TRACEPARENT, "garbage".parse().unwrap());
        let fresh = TraceContext::for_request(&headers);
        assert_eq!(
            fresh.state, None,
            "tracestate goes with an invalid traceparent"
        );
        assert_ne!(fresh.parent.trace_id, 0);
        let mut env = Envelope::new("x", "a", serde_json::json!({}));
        fresh.stamp(&mut env);
        assert_eq!(TraceContext::of(&env), Some(fresh));
    }
}
