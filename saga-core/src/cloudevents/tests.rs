use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn sample() -> Envelope {
    let parent = Envelope::new("order.placed", "order-1", json!({}));
    Envelope::new(
        "payment.requested",
        "order-1",
        json!({"amount_cents": 5000, "currency": "EUR"}),
    )
    .caused_by(&parent)
    .with_version(3)
    .with_source("/payments")
    .with_timestamp(Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap())
    .with_header(
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    .with_header("Idempotency-Key", "k-1")
    .with_header("type", "shadowed")
}

fn foreign() -> Value {
    json!({
        "specversion": "1.0",
        "id": "0190c6a4-5d2e-7cc3-9a37-1d5c2b0f6e11",
        "source": "https://shop.example.com/orders",
        "type": "com.example.order.placed",
        "time": "2024-05-01T14:30:00.5+02:00",
        "data": {"order_id": "o-9"}
    })
}

fn reason(err: Error) -> String {
    match err {
        Error::InvalidEnvelope { reason } => reason,
        other => panic!("expected InvalidEnvelope, got {other:?}"),
    }
}

fn parse_err(doc: Value) -> String {
    reason(from_cloudevent(&doc).expect_err("document should be rejected"))
}

fn with(mut doc: Value, name: &str, value: Value) -> Value {
    doc[name] = value;
    doc
}

fn without(mut doc: Value, name: &str) -> Value {
    if let Some(attrs) = doc.as_object_mut() {
        attrs.remove(name);
    }
    doc
}

// ---- encoding -------------------------------------------------------------------------

#[test]
fn maps_fields_to_attributes() {
    let env = sample();
    let doc = to_cloudevent(&env);
    assert_eq!(doc["specversion"], "1.0");
    assert_eq!(doc["id"], env.event_id.to_string());
    assert_eq!(doc["type"], "payment.requested");
    assert_eq!(doc["source"], "/payments");
    assert_eq!(doc["subject"], "order-1");
    assert_eq!(doc["time"], "2024-05-01T12:00:00Z");
    assert_eq!(doc["datacontenttype"], "application/json");
    assert_eq!(doc[CORRELATION_ID], env.correlation_id.to_string());
    assert_eq!(doc[CAUSATION_ID], env.causation_id.unwrap().to_string());
    assert_eq!(doc[EVENT_VERSION], 3);
    assert_eq!(doc["data"], env.payload);
}

#[test]
fn extension_named_headers_become_attributes() {
    let doc = to_cloudevent(&sample());
    assert_eq!(
        doc["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
}

#[test]
fn other_headers_are_packed_into_sagaheaders() {
    let doc = to_cloudevent(&sample());
    let packed: Value = serde_json::from_str(doc[SAGA_HEADERS].as_str().unwrap()).unwrap();
    assert_eq!(
        packed,
        json!({"Idempotency-Key": "k-1", "type": "shadowed"})
    );
    assert_eq!(doc["type"], "payment.requested");
}

#[test]
fn optional_attributes_are_left_out() {
    let env = Envelope::new("order.placed", "", json!(null));
    let doc = to_cloudevent(&env);
    for name in ["subject", CAUSATION_ID, SAGA_HEADERS] {
        assert!(doc.get(name).is_none(), "{name} should be absent");
    }
}

#[test]
fn time_keeps_nanoseconds() {
    let at = Utc.timestamp_opt(1_714_564_800, 123_456_789).unwrap();
    let env = sample().with_timestamp(at);
    let doc = to_cloudevent(&env);
    assert_eq!(doc["time"], "2024-05-01T12:00:00.123456789Z");
    assert_eq!(from_cloudevent(&doc).unwrap().timestamp, at);
}

#[test]
fn json_bytes_round_trip() {
    let env = sample();
    let bytes = to_cloudevent_json(&env).unwrap();
    assert_eq!(from_cloudevent_json(&bytes).unwrap(), env);
}

#[test]
fn json_encoding_rejects_empty_source() {
    let err = to_cloudevent_json(&sample().with_source("")).unwrap_err();
    assert!(reason(err).contains("source is empty"));
}

#[test]
fn json_encoding_rejects_empty_type() {
    let mut env = sample();
    env.event_type.clear();
    assert!(reason(to_cloudevent_json(&env).unwrap_err()).contains("event_type is empty"));
}

#[test]
fn json_encoding_rejects_years_rfc3339_cannot_write() {
    let at = Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap();
    let err = to_cloudevent_json(&sample().with_timestamp(at)).unwrap_err();
    assert!(reason(err).contains("0000..=9999"));
}

// ---- decoding a foreign event ---------------------------------------------------------

#[test]
fn foreign_event_gets_defaults() {
    let env = from_cloudevent(&foreign()).unwrap();
    assert_eq!(env.event_type, "com.example.order.placed");
    assert_eq!(env.source, "https://shop.example.com/orders");
    assert_eq!(env.aggregate_id, "");
    assert_eq!(env.correlation_id, env.event_id);
    assert_eq!(env.causation_id, None);
    assert_eq!(env.version, 1);
    assert!(env.headers.is_empty());
    assert_eq!(env.payload, json!({"order_id": "o-9"}));
}

#[test]
fn foreign_time_is_converted_to_utc() {
    let env = from_cloudevent(&foreign()).unwrap();
    let expected = Utc.timestamp_opt(1_714_566_600, 500_000_000).unwrap();
    assert_eq!(env.timestamp, expected);
}

#[test]
fn missing_data_is_null_payload() {
    let env = from_cloudevent(&without(foreign(), "data")).unwrap();
    assert_eq!(env.payload, Value::Null);
}

#[test]
fn foreign_extensions_become_headers() {
    let doc = with(foreign(), "partitionkey", json!("p-7"));
    let doc = with(doc, "sequence", json!(42));
    let doc = with(doc, "sampled", json!(true));
    let doc = with(doc, "dataschema", json!("https://example.com/schema/v1"));
    let doc = with(doc, "gone", Value::Null);
    let headers = from_cloudevent(&doc).unwrap().headers;
    let expected: BTreeMap<String, String> = [
        ("dataschema", "https://example.com/schema/v1"),
        ("partitionkey", "p-7"),
        ("sampled", "true"),
        ("sequence", "42"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(headers, expected);
}

#[test]
fn json_media_types_are_accepted() {
    for media in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "text/json",
        "application/cloudevents+json",
    ] {
        let doc = with(foreign(), "datacontenttype", json!(media));
        assert!(from_cloudevent(&doc).is_ok(), "{media} should be accepted");
    }
}

#[test]
fn version_may_be_a_string_of_digits() {
    let doc = with(foreign(), EVENT_VERSION, json!("4"));
    assert_eq!(from_cloudevent(&doc).unwrap().version, 4);
}

// ---- rejections -----------------------------------------------------------------------

#[test]
fn rejects_non_objects() {
    assert!(parse_err(json!([1, 2])).contains("JSON object"));
}

#[test]
fn rejects_missing_specversion() {
    assert!(parse_err(without(foreign(), "specversion")).contains("specversion"));
}

#[test]
fn rejects_other_specversions() {
    assert!(parse_err(with(foreign(), "specversion", json!("0.3"))).contains("\"1.0\""));
}

#[test]
fn rejects_missing_required_attributes() {
    for name in ["id", "source", "type"] {
        let reason = parse_err(without(foreign(), name));
        assert!(reason.contains(&format!("`{name}` is missing")), "{reason}");
    }
}

#[test]
fn rejects_empty_required_attributes() {
    for name in ["id", "source", "type"] {
        let reason = parse_err(with(foreign(), name, json!("")));
        assert!(reason.contains(&format!("`{name}` is empty")), "{reason}");
    }
}

#[test]
fn rejects_non_string_attributes() {
    assert!(parse_err(with(foreign(), "type", json!(7))).contains("must be a string"));
}

#[test]
fn rejects_id_that_is_not_a_uuid() {
    assert!(parse_err(with(foreign(), "id", json!("A234-1234"))).contains("not a UUID"));
}

#[test]
fn rejects_missing_time() {
    assert!(parse_err(without(foreign(), "time")).contains("`time` is missing"));
}

#[test]
fn rejects_bad_time() {
    let reason = parse_err(with(foreign(), "time", json!("yesterday")));
    assert!(reason.contains("not RFC 3339"));
}

#[test]
fn rejects_bad_correlation_and_causation_ids() {
    for name in [CORRELATION_ID, CAUSATION_ID] {
        let reason = parse_err(with(foreign(), name, json!("nope")));
        assert!(
            reason.contains(name) && reason.contains("not a UUID"),
            "{reason}"
        );
    }
}

#[test]
fn rejects_data_base64() {
    let doc = with(without(foreign(), "data"), "data_base64", json!("AAEC"));
    assert!(parse_err(doc).contains("`data_base64` (binary data) is not supported"));
}

#[test]
fn rejects_non_json_content_type() {
    let reason = parse_err(with(foreign(), "datacontenttype", json!("text/plain")));
    assert!(reason.contains("not JSON"));
}

#[test]
fn rejects_bad_event_version() {
    for bad in [json!(-1), json!(1.5), json!(4_294_967_296_u64), json!("v2")] {
        let reason = parse_err(with(foreign(), EVENT_VERSION, bad));
        assert!(reason.contains(EVENT_VERSION), "{reason}");
    }
}

#[test]
fn rejects_structured_extension_values() {
    let reason = parse_err(with(foreign(), "tags", json!(["a"])));
    assert!(reason.contains("`tags` must be a string, number or boolean"));
}

#[test]
fn rejects_invalid_attribute_names() {
    let reason = parse_err(with(foreign(), "Trace-Id", json!("x")));
    assert!(reason.contains("not a CloudEvents attribute name"));
}

#[test]
fn rejects_malformed_sagaheaders() {
    let reason = parse_err(with(foreign(), SAGA_HEADERS, json!("{\"a\": 1}")));
    assert!(reason.contains(SAGA_HEADERS));
}

#[test]
fn rejects_header_both_attribute_and_packed() {
    let doc = with(foreign(), "tenant", json!("a"));
    let doc = with(doc, SAGA_HEADERS, json!("{\"tenant\":\"b\"}"));
    assert!(parse_err(doc).contains("appears both"));
}

#[test]
fn rejects_bytes_that_are_not_json() {
    let err = from_cloudevent_json(b"{\"specversion\":").unwrap_err();
    assert!(reason(err).contains("not a JSON document"));
}

// ---- properties -----------------------------------------------------------------------

/// Arbitrary JSON; floats only when `floats` (JSON text need not round-trip them exactly).
fn arb_json(floats: bool) -> impl Strategy<Value = Value> {
    let float = if floats {
        any::<f64>().prop_map(|f| json!(f)).boxed()
    } else {
        any::<i64>().prop_map(|i| json!(i)).boxed()
    };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        float,
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".*", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,20}",
        "[a-z0-9]{21,24}",
        prop::sample::select(RESERVED.to_vec()).prop_map(str::to_owned),
        Just(DATA_BASE64.to_owned()),
        ".*",
    ]
}

/// The instants RFC 3339 can write: 0000-01-01 to 9999-12-31, any nanosecond.
fn arb_time() -> impl Strategy<Value = DateTime<Utc>> {
    (-62_167_219_200_i64..=253_402_300_799, 0u32..1_000_000_000)
        .prop_filter_map("representable", |(s, n)| DateTime::from_timestamp(s, n))
}

fn arb_envelope(floats: bool) -> impl Strategy<Value = Envelope> {
    (
        (any::<u128>(), ".+", ".*", any::<u128>()),
        (
            proptest::option::of(any::<u128>()),
            arb_time(),
            any::<u32>(),
            ".+",
        ),
        prop::collection::btree_map(arb_header_name(), ".*", 0..6),
        arb_json(floats),
    )
        .prop_map(
            |(
                (id, event_type, aggregate_id, corr),
                (cause, timestamp, version, source),
                headers,
                payload,
            )| {
                Envelope {
                    event_id: Uuid::from_u128(id),
                    event_type,
                    aggregate_id,
                    correlation_id: Uuid::from_u128(corr),
                    causation_id: cause.map(Uuid::from_u128),
                    timestamp,
                    version,
                    source,
                    headers,
                    payload,
                }
            },
        )
}

/// A valid document with one attribute replaced by an arbitrary value.
fn arb_mutated_doc() -> impl Strategy<Value = Value> {
    (arb_envelope(true), arb_header_name(), arb_json(true))
        .prop_map(|(env, name, value)| with(to_cloudevent(&env), &name, value))
}

proptest! {
    #[test]
    fn round_trip_is_exact(env in arb_envelope(true)) {
        prop_assert_eq!(from_cloudevent(&to_cloudevent(&env))?, env);
    }

    #[test]
    fn json_bytes_round_trip_is_exact(env in arb_envelope(false)) {
        let bytes = to_cloudevent_json(&env)?;
        prop_assert_eq!(from_cloudevent_json(&bytes)?, env);
    }

    #[test]
    fn arbitrary_json_never_panics(doc in arb_json(true)) {
        let _ = from_cloudevent(&doc);
    }

    #[test]
    fn mutated_documents_never_panic(doc in arb_mutated_doc()) {
        let _ = from_cloudevent(&doc);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = from_cloudevent_json(&bytes);
    }
}

#[test]
fn leap_second_round_trips() {
    let at = Utc.timestamp_opt(1_483_228_799, 1_250_000_000).unwrap();
    let env = sample().with_timestamp(at);
    assert_eq!(to_cloudevent(&env)["time"], "2016-12-31T23:59:60.250Z");
    assert_eq!(from_cloudevent(&to_cloudevent(&env)).unwrap(), env);
}
