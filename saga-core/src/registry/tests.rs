use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Trail {
    steps: Vec<u32>,
}

impl Event for Trail {
    const EVENT_TYPE: &'static str = "test.trail";
    const VERSION: u32 = 4;
}

/// An upcaster that records its step in the payload's `steps` array.
fn record(from: u32) -> impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static {
    move |mut v| {
        let steps = v
            .get_mut("steps")
            .and_then(Value::as_array_mut)
            .ok_or("no `steps` array")?;
        steps.push(json!(from));
        Ok(v)
    }
}

fn trail_registry() -> EventRegistry {
    let mut registry = EventRegistry::new();
    registry
        .register::<Trail>()
        .register_upcaster("test.trail", 3, record(3))
        .register_upcaster("test.trail", 1, record(1))
        .register_upcaster("test.trail", 2, record(2));
    registry
}

fn trail(version: u32) -> Envelope {
    Envelope::new("test.trail", "a-1", json!({"steps": []})).with_version(version)
}

#[test]
fn empty_registry_knows_nothing() {
    let registry = EventRegistry::new();
    assert!(!registry.knows("test.trail"));
    assert_eq!(registry.current_version("test.trail"), None);
    assert_eq!(registry.event_types().count(), 0);
}

#[test]
fn register_records_the_current_version() {
    let registry = trail_registry();
    assert!(registry.knows("test.trail"));
    assert_eq!(registry.current_version("test.trail"), Some(4));
}

#[test]
fn event_types_lists_registered_types_in_order() {
    let mut registry = trail_registry();
    registry
        .register_type("b.raw", 1)
        .register_upcaster("only.upcasters", 1, Ok);
    let types: Vec<_> = registry.event_types().collect();
    assert_eq!(types, ["b.raw", "test.trail"]);
}

#[test]
fn upcasters_alone_do_not_make_a_type_known() {
    let mut registry = EventRegistry::new();
    registry.register_upcaster("x.y", 1, Ok);
    assert!(!registry.knows("x.y"));
}

#[test]
fn registering_again_replaces_the_version() {
    let mut registry = trail_registry();
    registry.register_type("test.trail", 5);
    assert_eq!(registry.current_version("test.trail"), Some(5));
}

#[test]
fn upcast_applies_the_chain_in_order() {
    let up = trail_registry().upcast(trail(1)).unwrap();
    assert_eq!(up.version, 4);
    assert_eq!(up.payload, json!({"steps": [1, 2, 3]}));
}

#[test]
fn upcast_starts_at_the_envelope_version() {
    let up = trail_registry().upcast(trail(3)).unwrap();
    assert_eq!(up.payload, json!({"steps": [3]}));
}

#[test]
fn upcast_keeps_the_other_fields() {
    let env = trail(2).with_header("traceparent", "t");
    let up = trail_registry().upcast(env.clone()).unwrap();
    assert_eq!((up.event_id, up.headers), (env.event_id, env.headers));
}

#[test]
fn current_envelope_is_returned_as_is() {
    let env = trail(4);
    assert_eq!(trail_registry().upcast(env.clone()).unwrap(), env);
}

#[test]
fn decode_upcasts_then_deserializes() {
    let decoded: Trail = trail_registry().decode(&trail(2)).unwrap();
    assert_eq!(decoded, Trail { steps: vec![2, 3] });
}

#[test]
fn unknown_type_is_reported() {
    let err = trail_registry()
        .upcast(Envelope::new("nope", "a", json!({})))
        .unwrap_err();
    assert!(matches!(err, Error::UnknownEventType { event_type } if event_type == "nope"));
}

#[test]
fn version_zero_is_an_invalid_envelope() {
    let err = trail_registry().upcast(trail(0)).unwrap_err();
    assert!(matches!(err, Error::InvalidEnvelope { reason } if reason.contains("version 0")));
}

#[test]
fn newer_version_is_unsupported() {
    let err = trail_registry().upcast(trail(5)).unwrap_err();
    assert!(matches!(
        err,
        Error::UnsupportedVersion {
            version: 5,
            latest: 4,
            ..
        }
    ));
}

#[test]
fn gap_in_chain_is_found_before_any_upcaster_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let mut registry = EventRegistry::new();
    registry
        .register::<Trail>()
        .register_upcaster("test.trail", 1, move |v| {
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(v)
        })
        .register_upcaster("test.trail", 3, Ok);
    let err = registry.upcast(trail(1)).unwrap_err();
    assert!(matches!(err, Error::MissingUpcaster { from: 2, .. }));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn failing_upcaster_is_a_payload_mismatch() {
    let env = Envelope::new("test.trail", "a", json!("not an object")).with_version(2);
    let err = trail_registry().upcast(env).unwrap_err();
    let Error::PayloadMismatch {
        version, reason, ..
    } = err
    else {
        panic!("expected PayloadMismatch, got {err:?}");
    };
    assert_eq!(version, 2);
    assert_eq!(reason, "upcaster 2 -> 3 failed: no `steps` array");
}

#[test]
fn decode_rejects_another_type() {
    let mut registry = trail_registry();
    registry.register_type("other", 1);
    let env = Envelope::new("other", "a", json!({"steps": []}));
    let err = registry.decode::<Trail>(&env).unwrap_err();
    assert!(matches!(
        err,
        Error::PayloadMismatch { reason, .. } if reason.contains("the envelope holds `other`")
    ));
}

#[test]
fn decode_rejects_a_payload_that_does_not_fit() {
    let env = Envelope::new("test.trail", "a", json!({"steps": "x"})).with_version(4);
    let err = trail_registry().decode::<Trail>(&env).unwrap_err();
    assert!(matches!(
        err,
        Error::PayloadMismatch { version: 4, reason, .. } if reason.contains("invalid type")
    ));
}

#[test]
fn decode_rejects_a_registry_at_another_version_than_the_type() {
    let mut registry = trail_registry();
    registry.register_type("test.trail", 3);
    let err = registry.decode::<Trail>(&trail(3)).unwrap_err();
    assert!(matches!(
        err,
        Error::PayloadMismatch { reason, .. } if reason.contains("Rust type is version 4")
    ));
}

#[test]
fn registry_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<EventRegistry>();
    let registry = Arc::new(trail_registry());
    let shared = Arc::clone(&registry);
    let decoded = std::thread::spawn(move || shared.decode::<Trail>(&trail(3)))
        .join()
        .unwrap()
        .unwrap();
    assert_eq!(decoded.steps, [3]);
}

#[test]
fn debug_lists_types_versions_and_upcasters() {
    let text = format!("{:?}", trail_registry());
    assert_eq!(text, r#"{"test.trail": (Some(4), [1, 2, 3])}"#);
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".*".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arbitrary JSON, often a payload the upcasters accept.
fn arb_payload() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_json(),
        prop::collection::vec(any::<u32>(), 0..3).prop_map(|steps| json!({ "steps": steps })),
    ]
}

fn arb_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("test.trail".to_owned()),
        Just("other".to_owned()),
        ".*"
    ]
}

fn arb_version() -> impl Strategy<Value = u32> {
    prop_oneof![0u32..7, any::<u32>()]
}

/// The outcome of an upcast, as a name a property can compare.
fn outcome(result: &Result<Envelope>) -> &'static str {
    match result {
        Ok(env) if env.version == 4 => "current",
        Ok(_) => "ok at another version",
        Err(Error::InvalidEnvelope { .. }) => "invalid",
        Err(Error::UnsupportedVersion { .. }) => "unsupported",
        Err(Error::PayloadMismatch { .. }) => "mismatch",
        Err(Error::UnknownEventType { .. }) => "unknown",
        Err(_) => "other error",
    }
}

proptest! {
    #[test]
    fn upcast_result_matches_the_envelope(event_type in arb_type(), version in arb_version(), payload in arb_payload()) {
        let upcastable = payload.get("steps").is_some_and(Value::is_array);
        let env = Envelope::new(event_type.clone(), "a", payload).with_version(version);
        let got = outcome(&trail_registry().upcast(env));
        let expected = match (event_type.as_str(), version) {
            ("test.trail", 0) => "invalid",
            ("test.trail", 5..) => "unsupported",
            ("test.trail", 4) => "current",
            ("test.trail", _) if upcastable => "current",
            ("test.trail", _) => "mismatch",
            _ => "unknown",
        };
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn decode_never_panics(event_type in arb_type(), version in arb_version(), payload in arb_payload()) {
        let env = Envelope::new(event_type, "a", payload).with_version(version);
        let _ = trail_registry().decode::<Trail>(&env);
    }

    /// The CI form of the `registry_upcast` fuzz target: any bytes, read as it reads them (the
    /// first byte picks the type and version, the rest is the payload if it is JSON), give the
    /// current version or a typed error, and decoding never panics.
    #[test]
    fn upcast_of_arbitrary_bytes_is_current_or_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 1..256)) {
        let (&version, rest) = bytes.split_first().unwrap();
        let payload = serde_json::from_slice::<Value>(rest).unwrap_or(Value::Null);
        let event_type = if version % 7 == 0 { "other" } else { "test.trail" };
        let env = Envelope::new(event_type, "a", payload).with_version(u32::from(version % 6));
        let got = outcome(&trail_registry().upcast(env.clone()));
        prop_assert!(
            matches!(got, "current" | "invalid" | "unsupported" | "mismatch" | "unknown"),
            "{} for {:?}",
            got,
            env
        );
        let _ = trail_registry().decode::<Trail>(&env);
    }
}
