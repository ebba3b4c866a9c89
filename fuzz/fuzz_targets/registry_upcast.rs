//! Any envelope (type, version, JSON payload) through a registry with a v1 -> v2 -> v3 chain
//! gives the current version or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use saga_core::{Envelope, Event, EventRegistry};

#[derive(serde::Serialize, serde::Deserialize)]
struct OrderPlaced {
    order_id: String,
    total_cents: i64,
    currency: String,
}

impl Event for OrderPlaced {
    const EVENT_TYPE: &'static str = "order.placed";
    const VERSION: u32 = 3;
}

/// Upcasters written carefully (a panicking one is caught by the registry, but libFuzzer
/// counts any panic as a crash, so this target exercises the registry, not panics).
fn registry() -> EventRegistry {
    let mut r = EventRegistry::new();
    r.register::<OrderPlaced>()
        .register_upcaster("order.placed", 1, |mut v| {
            let map = v
                .as_object_mut()
                .ok_or_else(|| "v1 payload is not an object".to_owned())?;
            let total = map
                .get("total")
                .cloned()
                .ok_or_else(|| "v1 has no total".to_owned())?;
            map.insert("total_cents".into(), total);
            Ok(v)
        })
        .register_upcaster("order.placed", 2, |mut v| {
            let map = v
                .as_object_mut()
                .ok_or_else(|| "v2 payload is not an object".to_owned())?;
            map.entry("currency")
                .or_insert_with(|| serde_json::json!("EUR"));
            Ok(v)
        });
    r
}

fuzz_target!(|data: &[u8]| {
    let Some((&version, rest)) = data.split_first() else {
        return;
    };
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(rest) else {
        return;
    };
    let event_type = if version % 7 == 0 {
        "order.unknown"
    } else {
        "order.placed"
    };
    let env = Envelope::new(event_type, "o-1", payload).with_version(u32::from(version % 6));
    let r = registry();
    if let Ok(up) = r.upcast(env.clone()) {
        assert_eq!(up.version, 3);
    }
    let _ = r.decode::<OrderPlaced>(&env);
});
