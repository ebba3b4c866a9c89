//! Envelope <-> AMQP message: properties, headers, the attempt number.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use saga_core::Envelope;

/// Header carrying the attempt number of a retried copy.
pub(crate) const ATTEMPT_HEADER: &str = "x-saga-attempt";
/// Header carrying the aggregate id (for operators; the body is authoritative).
pub(crate) const AGGREGATE_HEADER: &str = "x-saga-aggregate-id";

/// Persistent JSON message: `message_id` = `event_id`, `type` = `event_type`, the envelope
/// headers as AMQP headers, and `attempt` when it is a retried copy.
pub(crate) fn properties(envelope: &Envelope, attempt: Option<u32>) -> BasicProperties {
    let mut headers = FieldTable::default();
    for (k, v) in &envelope.headers {
        if let Ok(key) = ShortString::try_new(k.clone()) {
            headers.insert(key, AMQPValue::LongString(LongString::from(v.as_str())));
        }
    }
    headers.insert(
        AGGREGATE_HEADER.into(),
        AMQPValue::LongString(LongString::from(envelope.aggregate_id.as_str())),
    );
    if let Some(attempt) = attempt {
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongUInt(attempt));
    }
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(envelope.event_id.to_string().into())
        .with_correlation_id(envelope.correlation_id.to_string().into())
        .with_headers(headers);
    if let Ok(kind) = ShortString::try_new(envelope.event_type.clone()) {
        props = props.with_type(kind);
    }
    if let Ok(at) = u64::try_from(envelope.timestamp.timestamp()) {
        props = props.with_timestamp(at);
    }
    props
}

fn as_u32(v: &AMQPValue) -> Option<u32> {
    let n: i128 = match v {
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        _ => return None,
    };
    u32::try_from(n).ok()
}

/// The attempt number of a delivery: the retried copy's base attempt (1 for a first publish)
/// plus RabbitMQ's count of earlier deliveries of this copy (`x-delivery-count` on quorum
/// queues, the `redelivered` flag otherwise).
pub(crate) fn attempt(props: &BasicProperties, redelivered: bool) -> u32 {
    let headers = props.headers().as_ref();
    let get = |k: &str| headers.and_then(|h| h.inner().get(k)).and_then(as_u32);
    let base = get(ATTEMPT_HEADER).unwrap_or(1).max(1);
    let earlier = match get("x-delivery-count") {
        Some(n) => n,
        None => u32::from(redelivered),
    };
    base.saturating_add(earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props_with(h: &[(&str, AMQPValue)]) -> BasicProperties {
        let mut t = FieldTable::default();
        for (k, v) in h {
            t.insert((*k).into(), v.clone());
        }
        BasicProperties::default().with_headers(t)
    }

    #[test]
    fn first_delivery_is_attempt_one() {
        assert_eq!(attempt(&BasicProperties::default(), false), 1);
    }

    #[test]
    fn redelivery_counts() {
        assert_eq!(attempt(&BasicProperties::default(), true), 2);
        let p = props_with(&[("x-delivery-count", AMQPValue::LongLongInt(2))]);
        assert_eq!(attempt(&p, true), 3);
    }

    #[test]
    fn retried_copy_starts_at_its_header() {
        let p = props_with(&[(ATTEMPT_HEADER, AMQPValue::LongUInt(3))]);
        assert_eq!(attempt(&p, false), 3);
        let p = props_with(&[
            (ATTEMPT_HEADER, AMQPValue::LongUInt(3)),
            ("x-delivery-count", AMQPValue::LongInt(1)),
        ]);
        assert_eq!(attempt(&p, true), 4);
    }

    #[test]
    fn properties_carry_the_ids_and_headers() {
        let e = Envelope::new("order.placed", "o-1", serde_json::json!({}))
            .with_header("traceparent", "00-abc");
        let p = properties(&e, Some(2));
        assert_eq!(
            p.message_id().as_ref().map(|s| s.as_str().to_owned()),
            Some(e.event_id.to_string())
        );
        let h = p
            .headers()
            .as_ref()
            .map(|h| h.inner().clone())
            .unwrap_or_default();
        assert!(h.contains_key("traceparent"));
        assert_eq!(attempt(&p, false), 2);
    }
}
