//! The self-healing policies, each with its fault injected: a payment gateway outage opens the
//! circuit breaker (charges then fail fast, and the circuit closes again after the outage);
//! a message no retry can cure is dead-lettered at once with its diagnosis, and not when the
//! policy is switched off.

mod support;

use std::time::Duration;

use reference_app::healing::{BreakerMode, PolicySwitch};
use reference_app::topology::Service;
use saga_ai::healing::DriftConfig;
use saga_core::Envelope;
use saga_core::dead_letter::{DeadLetterFilter, DeadLetterStatus};
use serde_json::{Value, json};
use support::{App, order_body};

fn body_for_new_customer(product: &Value) -> Value {
    let mut body = order_body(product, 1, "94102");
    body["customer_id"] = json!(uuid::Uuid::now_v7());
    body
}

async fn gateway(app: &App) -> Value {
    app.get(Service::Payment, "/gateway").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_outage_opens_the_circuit_and_it_closes_after_the_outage() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_custom(dir.path(), |s| {
        s.healing.breaker_mode = BreakerMode::FailFast;
    })
    .await;
    let products = app.products().await;
    let laptop = &products["Laptop Pro 14"];
    let payment = app.system.url(Service::Payment);

    // Bad outage requests are refused with the field named.
    let bad = app
        .client
        .post(format!("{payment}/gateway/outage"))
        .json(&json!({"error_rate": 2.0, "seconds": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(
        problem["errors"].as_array().map(Vec::len),
        Some(2),
        "{problem}"
    );

    assert_eq!(gateway(&app).await["circuit"], "closed");
    let started = app
        .client
        .post(format!("{payment}/gateway/outage"))
        .json(&json!({"error_rate": 1.0, "seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status().as_u16(), 200);
    let status: Value = started.json().await.unwrap();
    assert_eq!(status["simulated"], true);
    assert!(
        status["outage"]["remaining_secs"].as_f64().unwrap() > 50.0,
        "{status}"
    );

    // Orders during the outage: their charges fail and are retried until ten failures in
    // the window open the circuit; then they fail fast and the sagas compensate.
    let mut ids = Vec::new();
    for _ in 0..6 {
        let (code, order) = app.place(&body_for_new_customer(laptop), None).await;
        assert_eq!(code, 201, "{order}");
        ids.push(order["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let done = app.wait(id).await;
        assert_ne!(
            done["order"]["status"], "confirmed",
            "charged during an outage: {done}"
        );
    }
    assert_eq!(gateway(&app).await["circuit"], "open");
    let tx = app
        .get(Service::Payment, &format!("/transactions/{}", ids[5]))
        .await;
    assert_eq!(tx["status"], "failed", "{tx}");
    assert!(
        tx["failure_reason"]
            .as_str()
            .unwrap_or("")
            .contains("circuit is open"),
        "{tx}"
    );

    // The outage ends; after the breaker's 10 s pause, probes go through and close it.
    let ended = app
        .client
        .delete(format!("{payment}/gateway/outage"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_secs(10)).await;
    for _ in 0..3 {
        let (code, order) = app.place(&body_for_new_customer(laptop), None).await;
        assert_eq!(code, 201, "{order}");
        let done = app.wait(order["id"].as_str().unwrap()).await;
        assert_eq!(done["order"]["status"], "confirmed", "{done}");
    }
    assert_eq!(gateway(&app).await["circuit"], "closed");

    // Each decision with how it went: every opening settled by the closing, the probes by
    // their result, the closing at once.
    let records = records_about(
        &app,
        "circuit-breaker",
        "payment-gateway",
        Duration::from_secs(20),
        |r| {
            ["open_circuit", "half_open_circuit", "close_circuit"]
                .iter()
                .all(|k| r.iter().any(|a| a["kind"] == *k))
                && r.iter().all(|a| a["outcome"].is_string())
        },
    )
    .await;
    let outcomes = |kind: &str| -> Vec<String> {
        records
            .iter()
            .filter(|a| a["kind"] == kind)
            .map(|a| a["outcome"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let opened = outcomes("open_circuit");
    assert!(
        !opened.is_empty() && opened.iter().all(|o| o.contains("the gateway recovered")),
        "{records:#?}"
    );
    assert!(
        outcomes("half_open_circuit")
            .iter()
            .any(|o| o.contains("the probes succeeded")),
        "{records:#?}"
    );
    let closed = outcomes("close_circuit");
    assert!(
        !closed.is_empty() && closed.iter().all(|o| !o.is_empty()),
        "{records:#?}"
    );
    app.stop().await;
}

async fn dead_letters(app: &App, n: usize) -> Vec<saga_core::DeadLetter> {
    let store = app.system.broker().unwrap().dead_letters.clone();
    let filter = DeadLetterFilter {
        status: Some(DeadLetterStatus::Pending),
        ..DeadLetterFilter::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = store.list(&filter).await.unwrap();
        if list.len() >= n || tokio::time::Instant::now() > deadline {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A charge request whose body is not an order: no retry can ever handle it.
async fn inject_poison(app: &App) -> Envelope {
    let poison = Envelope::new(
        "payment.requested",
        "o-poison",
        json!({"order_id": "not-a-uuid", "total_amount": "x"}),
    );
    app.system
        .broker()
        .unwrap()
        .publisher
        .publish(std::slice::from_ref(&poison))
        .await
        .unwrap();
    poison
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_dead_lettered_at_once_with_its_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_custom(dir.path(), |_| {}).await;
    let poison = inject_poison(&app).await;
    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.envelope.event_id, poison.event_id);
    assert_eq!(letter.attempts, 1, "not retried: {letter:?}");
    let error = letter.last_error.as_deref().unwrap_or("");
    assert!(error.contains("poison message (undecodable)"), "{letter:?}");
    assert!(
        error.contains("replay"),
        "the diagnosis says what to do: {error}"
    );
    // The decision's record, with its outcome once the dead letter was stored.
    let records = records_about(
        &app,
        "poison-messages",
        &poison.event_id.to_string(),
        Duration::from_secs(20),
        |r| r.iter().any(|a| a["outcome"].is_string()),
    )
    .await;
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["kind"], "dead_letter", "{records:#?}");
    assert!(
        records[0]["outcome"]
            .as_str()
            .unwrap_or("")
            .contains("stored as a dead letter of `payment`"),
        "{records:#?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_policy_off_the_failure_is_dead_lettered_without_a_diagnosis() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_custom(dir.path(), |s| {
        s.healing.off = vec![PolicySwitch::PoisonMessages];
    })
    .await;
    let poison = inject_poison(&app).await;
    let letters = dead_letters(&app, 1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].envelope.event_id, poison.event_id);
    let error = letters[0].last_error.as_deref().unwrap_or("");
    assert!(!error.contains("poison message"), "{error}");
    app.stop().await;
}

/// The AI service's records of `policy` about `subject`, once `ok` holds for them (`wait` at
/// most; they trail the decisions by the relay and the AI service's subscription).
async fn records_about(
    app: &App,
    policy: &str,
    subject: &str,
    wait: Duration,
    ok: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let all = app
            .get(
                Service::Ai,
                &format!("/self-healing/actions?policy={policy}&limit=100"),
            )
            .await;
        let about: Vec<Value> = all["actions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["subject"] == subject)
            .cloned()
            .collect();
        if ok(&about) || tokio::time::Instant::now() > deadline {
            return about;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A system whose payment step takes longer than its deadline: the gateway answers after 3 s,
/// a step may take 1 s.
async fn stuck_payments(dir: &std::path::Path, off: Vec<PolicySwitch>) -> App {
    App::start_custom(dir, |s| {
        s.gateway.latency = Duration::from_millis(3000);
        s.step_deadline = Duration::from_millis(1000);
        s.healing.off = off;
    })
    .await
}

/// How many times the order's saga sent `command`, as its saga log says.
async fn sent(app: &App, order: &str, command: &str) -> usize {
    let log = app
        .get(Service::Order, &format!("/orders/{order}/saga-logs"))
        .await;
    log.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["event_type"] == command)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_payment_is_retried_once_then_compensated_and_both_decisions_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let app = stuck_payments(dir.path(), Vec::new()).await;
    let products = app.products().await;
    let (code, order) = app
        .place(&body_for_new_customer(&products["Webcam HD"]), None)
        .await;
    assert_eq!(code, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    let done = app.wait(&id).await;
    assert_eq!(done["order"]["status"], "cancelled", "{done}");
    assert_eq!(done["saga_status"], "compensated", "{done}");
    assert_eq!(sent(&app, &id, "payment.requested").await, 2, "one retry");

    // Both decisions, each with what it saw, what it did and how it went.
    // (On a loaded machine another step may pass its 1 s deadline too: its records are left
    // aside.)
    let payment_step = |a: &Value| {
        a["observed"]
            .as_str()
            .unwrap_or("")
            .contains("process_payment")
    };
    let records: Vec<Value> =
        records_about(&app, "stuck-sagas", &id, Duration::from_secs(20), |r| {
            let paid: Vec<&Value> = r.iter().filter(|a| payment_step(a)).collect();
            paid.len() >= 2 && paid.iter().all(|a| a["outcome"].is_string())
        })
        .await
        .into_iter()
        .filter(|a| payment_step(a))
        .collect();
    assert_eq!(records.len(), 2, "{records:?}");
    let kind = |k: &str| records.iter().find(|a| a["kind"] == k).cloned();
    let retry = kind("retry_step").unwrap_or_else(|| panic!("no retry: {records:?}"));
    let compensate = kind("compensate").unwrap_or_else(|| panic!("no compensation: {records:?}"));
    for action in [&retry, &compensate] {
        assert_eq!(action["service"], "order", "{action}");
        assert_eq!(action["policy"], "stuck_saga", "{action}");
        let observed = action["observed"].as_str().unwrap();
        assert!(
            observed.contains("process_payment") && observed.contains("deadline"),
            "{action}"
        );
    }
    assert!(
        retry["action"].as_str().unwrap().contains("again"),
        "{retry}"
    );
    assert!(
        retry["outcome"].as_str().unwrap().contains("no reply"),
        "{retry}"
    );
    assert!(
        compensate["outcome"]
            .as_str()
            .unwrap()
            .contains("compensated"),
        "{compensate}"
    );
    assert!(
        compensate["outcome"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{compensate}"
    );
    // The retry came first.
    assert!(
        retry["at"].as_str() < compensate["at"].as_str(),
        "{records:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_stuck_saga_policy_off_the_step_is_compensated_at_once_and_nothing_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let app = stuck_payments(dir.path(), vec![PolicySwitch::StuckSagas]).await;
    let products = app.products().await;
    let (code, order) = app
        .place(&body_for_new_customer(&products["Webcam HD"]), None)
        .await;
    assert_eq!(code, 201, "{order}");
    let id = order["id"].as_str().unwrap().to_owned();
    // The saga still ends: compensated at the first deadline, without a retry.
    let done = app.wait(&id).await;
    assert_eq!(done["order"]["status"], "cancelled", "{done}");
    assert_eq!(sent(&app, &id, "payment.requested").await, 1, "no retry");
    let all = app
        .get(Service::Ai, "/self-healing/actions?policy=stuck-sagas")
        .await;
    let policy = all["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "stuck-sagas")
        .cloned()
        .unwrap();
    assert_eq!(policy["enabled"], false, "{all}");
    // Records trail a decision by a second or so (the relay, then the AI service's
    // subscription); none comes in five.
    let wait = Duration::from_secs(5);
    let records = records_about(&app, "stuck-sagas", &id, wait, |r| !r.is_empty()).await;
    assert!(records.is_empty(), "{records:?}");
    app.stop().await;
}

/// Places `n` orders at once and waits for their sagas to end.
async fn orders_through(app: &App, product: &Value, n: usize) {
    let placed = futures_util::future::join_all(
        (0..n).map(|_| async { app.place(&body_for_new_customer(product), None).await }),
    )
    .await;
    for (code, order) in &placed {
        assert_eq!(*code, 201, "{order}");
        let done = app.wait(order["id"].as_str().unwrap()).await;
        assert_eq!(done["order"]["status"], "confirmed", "{done}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_step_that_slows_down_is_flagged_as_drifting() {
    let dir = tempfile::tempdir().unwrap();
    // A small detector: judged from 8 durations, against the median of the latest 5, for
    // steps at least 1.2 s slower. The payment step slows by about 2.5 s; the other steps'
    // noise on a busy machine is not that large (a CI run under parallel tests saw shipping
    // go from 98 to 732 ms, which a 500 ms margin flagged).
    let app = App::start_custom(dir.path(), |s| {
        s.healing.drift = DriftConfig {
            baseline: 50,
            min_baseline: 8,
            window: 5,
            ratio: 1.5,
            sigmas: 3.0,
            min_increase_ms: 1200.0,
        };
    })
    .await;
    let products = app.products().await;
    let laptop = &products["Laptop Pro 14"];
    let payment_figures = |v: &Value| {
        v["drift"]["steps"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["step"] == "process_payment").cloned())
    };

    // The baseline: payments at the gateway's 1 ms.
    orders_through(&app, laptop, 14).await;
    let anomalies = app
        .eventually(Service::Ai, "/anomalies", |v| payment_figures(v).is_some())
        .await;
    assert_eq!(anomalies["drift"]["enabled"], true, "{anomalies}");
    let before = payment_figures(&anomalies).unwrap();
    assert_eq!(before["flagged"], false, "{anomalies}");

    // The fault: the gateway slows down to 2.5 s per charge.
    app.set_gateway_latency(2500).await;
    orders_through(&app, laptop, 5).await;

    // The detector flags the step, says what it saw, and the record reaches the AI service.
    let records = records_about(
        &app,
        "duration-drift",
        "process_payment",
        Duration::from_secs(20),
        |r| r.iter().any(|a| a["kind"] == "flag_drift"),
    )
    .await;
    let flag = records
        .iter()
        .find(|a| a["kind"] == "flag_drift")
        .unwrap_or_else(|| panic!("no drift flagged: {records:?}"));
    assert_eq!(flag["service"], "ai", "{flag}");
    assert_eq!(flag["policy"], "duration_drift", "{flag}");
    assert!(
        flag["observed"].as_str().unwrap().contains("baseline"),
        "{flag}"
    );
    assert!(
        flag["action"].as_str().unwrap().contains("flagged"),
        "{flag}"
    );
    assert!(
        flag["outcome"].as_str().unwrap().contains("/anomalies"),
        "{flag}"
    );
    let after = payment_figures(&app.get(Service::Ai, "/anomalies").await).unwrap();
    assert_eq!(after["flagged"], true, "{after}");
    assert!(
        after["recent_median_ms"].as_f64().unwrap() >= 2500.0,
        "{after}"
    );
    // Only the slowed step drifted.
    let all = app
        .get(Service::Ai, "/self-healing/actions?policy=duration-drift")
        .await;
    let drifted: Vec<&Value> = all["actions"].as_array().unwrap().iter().collect();
    assert!(
        !drifted.is_empty() && drifted.iter().all(|a| a["subject"] == "process_payment"),
        "{all}"
    );
    app.stop().await;
}
