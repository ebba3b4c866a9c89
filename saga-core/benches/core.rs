//! Single-thread throughput of the saga core's hot paths.
//!
//! Run with `cargo bench -p saga-core --bench core`; results go to docs/BENCHMARKS.md.
//!
//! * `saga/transition`: one reply applied by the pure transition function (a step completes and
//!   the next command is emitted): the orchestrator's whole decision, without I/O.
//! * `envelope/json_roundtrip`: an order event envelope encoded to JSON bytes and decoded back.
//! * `envelope/serde_json_value_roundtrip` is the ceiling: the same document as a plain
//!   `serde_json::Value`, the least work any JSON envelope can do.

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use saga_core::Envelope;
use saga_core::saga::transition::{self, SagaInput};
use saga_core::saga::{SagaDefinition, StepDefinition};

fn order_saga() -> SagaDefinition {
    let step = |name: &str, base: &str| {
        StepDefinition::new(
            name,
            format!("{base}.requested"),
            format!("{base}.done"),
            format!("{base}.failed"),
        )
        .compensate_with(format!("{base}.undo"), Some(&format!("{base}.undone")))
        .deadline(Duration::from_secs(30))
    };
    SagaDefinition::new(
        "order",
        vec![
            step("fraud_check", "fraud"),
            step("reserve_inventory", "inventory.reserve"),
            step("process_payment", "payment"),
            step("schedule_shipping", "shipping"),
        ],
    )
    .expect("valid")
}

fn order_event() -> Envelope {
    Envelope::new(
        "order.placed",
        "0193a3c5-8a6e-7c2b-9f1e-2d4c5b6a7980",
        serde_json::json!({
            "order_id": "0193a3c5-8a6e-7c2b-9f1e-2d4c5b6a7980",
            "customer_id": "123e4567-e89b-12d3-a456-426614174000",
            "items": [{"product_id": "p-1", "quantity": 2, "price_cents": 2500}],
            "total_cents": 5000,
            "shipping_address": {"street": "123 Main St", "city": "San Francisco", "state": "CA", "zip": "94102"}
        }),
    )
    .with_header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
}

fn saga_transition(c: &mut Criterion) {
    let def = order_saga();
    let now = chrono::Utc::now();
    let started = transition::start(
        &def,
        uuid::Uuid::now_v7(),
        "order-1",
        order_event().payload,
        now,
    );
    let reply = Envelope::new("fraud.done", "order-1", serde_json::json!({"score": 0.02}))
        .caused_by(&started.commands[0].to_envelope(now));
    let mut group = c.benchmark_group("saga");
    group.throughput(Throughput::Elements(1));
    group.bench_function("transition", |b| {
        b.iter(|| {
            transition::handle(
                &def,
                black_box(&started.instance),
                SagaInput::Reply(black_box(&reply)),
                now,
            )
            .expect("applies")
        })
    });
    group.finish();
}

fn envelope_json(c: &mut Criterion) {
    let env = order_event();
    let value = serde_json::to_value(&env).expect("encodes");
    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Elements(1));
    group.bench_function("json_roundtrip", |b| {
        b.iter(|| {
            let bytes = black_box(&env).to_json().expect("encodes");
            Envelope::from_json(black_box(&bytes)).expect("decodes")
        })
    });
    group.bench_function("serde_json_value_roundtrip", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&value)).expect("encodes");
            serde_json::from_slice::<serde_json::Value>(black_box(&bytes)).expect("decodes")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = saga_transition, envelope_json
}
criterion_main!(benches);
