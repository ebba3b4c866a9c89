//! The invariant checker (`reference-app check`): after the seed's scenarios on the embedded
//! system every invariant holds, with rows to check; each kind of tampering with a service's
//! tables is caught by its invariant and by no other; the binary exits non-zero exactly when
//! something is violated. On Postgres (with `DATABASE_URL`) the same statements run against
//! the distributed mode's schemas.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use reference_app::check::{self, Databases, Report};
use reference_app::db::Db;
use reference_app::services;
use reference_app::topology::Service;
use reference_app::with_db;
use saga_core::Envelope;
use saga_core::dead_letter::DeadLetter;
use serde_json::Value;
use support::{App, order_body};

const INVARIANTS: [&str; 9] = [
    "orders_terminal",
    "stock_conserved",
    "single_charge",
    "refunds_match_outcome",
    "shipments_match_outcome",
    "one_notification_per_event",
    "outbox_drained",
    "dead_letters_have_reasons",
    "reservations_match_orders",
];

async fn exec(db: &Db, sql: &str) -> u64 {
    let sql = db.qualify(sql);
    with_db!(db, store => {
        sqlx::query(sql.clone())
            .execute(store.write_pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .rows_affected()
    })
}

async fn text(db: &Db, sql: &str) -> String {
    let sql = db.qualify(sql);
    let (v,): (String,) = with_db!(db, store => {
        sqlx::query_as(sql.clone())
            .fetch_one(store.read_pool())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    v
}

fn violated(report: &Report) -> Vec<&str> {
    report
        .invariants
        .iter()
        .filter(|i| i.violations > 0)
        .map(|i| i.name.as_str())
        .collect()
}

/// Checks and asserts that `name` alone is violated.
async fn only(dbs: &Databases, name: &str) -> Report {
    let report = check::check(dbs).await.unwrap();
    assert_eq!(violated(&report), vec![name], "{report}");
    report
}

/// Runs `reference-app check` on `dir`: (exit success, stdout).
fn run_binary(dir: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reference-app"))
        .arg("check")
        .args(extra)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run reference-app check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// What the scenarios left, for the tampering.
struct Orders {
    confirmed: String,
    declined: String,
    refunded: String,
    laptop: String,
}

/// The seed's scenarios with keyed orders, so that the gateway's decisions (half declined,
/// seeded per order id) are the same on every run: confirmed orders, declined payments,
/// shipping failures refunded, an order beyond the stock; and a poison message dead-lettered.
async fn scenarios(app: &App) -> Orders {
    let products = app.products().await;
    let laptop = &products["Laptop Pro 14"];
    let mouse = &products["Wireless Mouse"];
    let vinyl = &products["Limited Edition Vinyl"];
    let mut placed: Vec<(String, &str)> = Vec::new();
    for i in 0..6 {
        let (status, o) = app
            .place(
                &order_body(laptop, 1, "94102"),
                Some(&format!("chk-ok-{i}")),
            )
            .await;
        assert_eq!(status, 201, "{o}");
        placed.push((o["id"].as_str().unwrap().to_owned(), "94102"));
    }
    for i in 0..4 {
        let (status, o) = app
            .place(
                &order_body(mouse, 2, "00000"),
                Some(&format!("chk-zip-{i}")),
            )
            .await;
        assert_eq!(status, 201, "{o}");
        placed.push((o["id"].as_str().unwrap().to_owned(), "00000"));
    }
    let (status, o) = app
        .place(&order_body(vinyl, 6, "94102"), Some("chk-vinyl"))
        .await;
    assert_eq!(status, 201, "{o}");
    let no_stock = o["id"].as_str().unwrap().to_owned();
    let done = app.wait(&no_stock).await;
    assert_eq!(done["order"]["status"], "failed", "{done}");

    let (mut confirmed, mut declined, mut refunded) = (Vec::new(), Vec::new(), Vec::new());
    for (id, zip) in &placed {
        let done = app.wait(id).await;
        let tx = app
            .get(Service::Payment, &format!("/transactions/{id}"))
            .await;
        match (
            done["order"]["status"].as_str().unwrap(),
            tx["status"].as_str().unwrap(),
            *zip,
        ) {
            ("confirmed", "processed", "94102") => confirmed.push(id.clone()),
            ("cancelled", "failed", _) => declined.push(id.clone()),
            ("cancelled", "refunded", "00000") => refunded.push(id.clone()),
            other => panic!("order {id}: unexpected outcome {other:?}: {done}"),
        }
    }
    assert!(
        !confirmed.is_empty() && !declined.is_empty() && !refunded.is_empty(),
        "the keys cover every outcome: confirmed {confirmed:?}, declined {declined:?}, \
         refunded {refunded:?}"
    );
    // Deliveries done: the last events of the confirmed orders.
    for id in &confirmed {
        app.eventually(Service::Shipping, &format!("/shipments/{id}"), |s| {
            s["status"] == "delivered"
        })
        .await;
    }
    // A message no handler can take: dead-lettered, with its reason.
    let poison = Envelope::new(
        "fraud.check.requested",
        "o-poison",
        serde_json::json!({"nope": 1}),
    );
    let broker = app.system.broker().unwrap();
    broker
        .publisher
        .publish(std::slice::from_ref(&poison))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while broker.dead_letters.pending_count().await.unwrap() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Orders {
        confirmed: confirmed[0].clone(),
        declined: declined[0].clone(),
        refunded: refunded[0].clone(),
        laptop: laptop["id"].as_str().unwrap().to_owned(),
    }
}

/// Checks until every invariant holds: consumers and relays catch up a moment after the last
/// saga ends (20 s at most).
async fn quiet(dbs: &Databases) -> Report {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let report = check::check(dbs).await.unwrap();
        if report.ok() {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never quiet:\n{report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scenarios_keep_every_invariant_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_in(dir.path(), 0.5, Duration::from_millis(1)).await;
    let orders = scenarios(&app).await;
    let report = quiet(&Databases::of_system(&app.system).unwrap()).await;
    let names: Vec<&str> = report.invariants.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, INVARIANTS);
    for inv in &report.invariants {
        assert!(inv.checked > 0, "nothing checked: {inv:?}");
        assert!(inv.examples.is_empty(), "{inv:?}");
    }
    assert_eq!(report.get("orders_terminal").unwrap().checked, 11);
    assert_eq!(report.get("dead_letters_have_reasons").unwrap().checked, 1);
    app.stop().await;

    // The binary on the stopped system's files: a table, exit 0; JSON with --json.
    let (ok, out) = run_binary(dir.path(), &[]);
    assert!(ok, "{out}");
    assert!(out.contains("all 9 invariants hold"), "{out}");
    let (ok, out) = run_binary(dir.path(), &["--json"]);
    assert!(ok, "{out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["invariants"].as_array().unwrap().len(), 9, "{json}");
    // No embedded system there: an error, not a report.
    let empty = tempfile::tempdir().unwrap();
    let (ok, out) = run_binary(empty.path(), &[]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        !empty.path().join("order.db").exists(),
        "the checker creates nothing"
    );

    let dbs = Databases::open_embedded(dir.path()).await.unwrap();
    assert!(check::check(&dbs).await.unwrap().ok());
    let report = tamper_one_kind_at_a_time(&dbs, dir.path(), &orders).await;
    pruned_events_still_count(&dbs, &orders, &report).await;
    dbs.close().await;
}

/// Each kind of tampering, undone before the next; returns the report once all are undone.
async fn tamper_one_kind_at_a_time(dbs: &Databases, dir: &Path, orders: &Orders) -> Report {
    let order = dbs.db(Service::Order).unwrap();
    let inventory = dbs.db(Service::Inventory).unwrap();
    let payment = dbs.db(Service::Payment).unwrap();
    let shipping = dbs.db(Service::Shipping).unwrap();
    let notification = dbs.db(Service::Notification).unwrap();

    // 1. A saga that never ended.
    let saga = text(
        order,
        &format!(
            "SELECT correlation_id FROM {{t}}orders WHERE id = '{}'",
            orders.confirmed
        ),
    )
    .await;
    let sql =
        |status: &str| format!("UPDATE {{t}}sagas SET status = '{status}' WHERE id = '{saga}'");
    assert_eq!(exec(order, &sql("running")).await, 1);
    only(dbs, "orders_terminal").await;
    exec(order, &sql("completed")).await;

    // 2. Stock from nowhere; the binary says so too, and exits non-zero.
    let sql = |d: i64| {
        format!(
            "UPDATE {{t}}products SET available = available + ({d}) WHERE id = '{}'",
            orders.laptop
        )
    };
    assert_eq!(exec(inventory, &sql(1)).await, 1);
    let report = only(dbs, "stock_conserved").await;
    assert_eq!(report.get("stock_conserved").unwrap().violations, 1);
    assert!(
        report.get("stock_conserved").unwrap().examples[0].contains(&orders.laptop),
        "{report}"
    );
    let (ok, out) = run_binary(dir, &["--json"]);
    assert!(!ok, "a violation exits non-zero: {out}");
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["invariants"][1]["name"], "stock_conserved");
    assert_eq!(json["invariants"][1]["violations"], 1);
    let (ok, out) = run_binary(dir, &[]);
    assert!(!ok && out.contains("VIOLATED"), "{out}");
    exec(inventory, &sql(-1)).await;

    // 3. A refund of a declined charge.
    let sql = format!(
        "INSERT INTO {{t}}refunds (order_id, refund_id, amount_cents, gateway_reference, \
         created_at) SELECT order_id, 'forged', amount_cents, 'sim_re_forged', created_at \
         FROM {{t}}transactions WHERE order_id = '{}'",
        orders.declined
    );
    assert_eq!(exec(payment, &sql).await, 1);
    only(dbs, "single_charge").await;
    let undo = format!(
        "DELETE FROM {{t}}refunds WHERE order_id = '{}'",
        orders.declined
    );
    exec(payment, &undo).await;

    // 4. A refund of a confirmed order.
    let sql = sql.replace(&orders.declined, &orders.confirmed);
    assert_eq!(exec(payment, &sql).await, 1);
    only(dbs, "refunds_match_outcome").await;
    exec(payment, &undo.replace(&orders.declined, &orders.confirmed)).await;

    // 5. A shipment for an order whose shipping failed.
    let sql = format!(
        "INSERT INTO {{t}}shipments (order_id, shipment_id, tracking_number, carrier, status, \
         address, correlation_id, created_at, updated_at) SELECT '{}', 'forged', 'SIMX', \
         carrier, status, address, correlation_id, created_at, updated_at FROM {{t}}shipments \
         WHERE order_id = '{}'",
        orders.refunded, orders.confirmed
    );
    assert_eq!(exec(shipping, &sql).await, 1);
    only(dbs, "shipments_match_outcome").await;
    let undo = format!(
        "DELETE FROM {{t}}shipments WHERE order_id = '{}'",
        orders.refunded
    );
    exec(shipping, &undo).await;

    // 6. A notification lost.
    type Row = (
        String,
        String,
        String,
        String,
        String,
        String,
        String,
        String,
    );
    let columns = "id, event_id, order_id, event_type, channel, recipient, message, created_at";
    let select = notification.qualify(&format!(
        "SELECT {columns} FROM {{t}}notifications WHERE order_id = $1 \
         AND event_type = 'order.confirmed'"
    ));
    let row: Row = with_db!(notification, store => {
        sqlx::query_as(select.clone())
            .bind(&orders.confirmed)
            .fetch_one(store.read_pool())
            .await
            .unwrap()
    });
    let delete = format!(
        "DELETE FROM {{t}}notifications WHERE event_id = '{}'",
        row.1
    );
    assert_eq!(exec(notification, &delete).await, 1);
    let report = only(dbs, "one_notification_per_event").await;
    assert!(
        report.get("one_notification_per_event").unwrap().examples[0].contains(&row.1),
        "{report}"
    );
    let insert = notification.qualify(&format!(
        "INSERT INTO {{t}}notifications ({columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ));
    with_db!(notification, store => {
        sqlx::query(insert.clone())
            .bind(&row.0)
            .bind(&row.1)
            .bind(&row.2)
            .bind(&row.3)
            .bind(&row.4)
            .bind(&row.5)
            .bind(&row.6)
            .bind(&row.7)
            .execute(store.write_pool())
            .await
            .unwrap();
    });

    // 7. An event left in an outbox for a minute: a published one put back as pending.
    let event = text(payment, "SELECT MIN(event_id) FROM {t}outbox_published").await;
    let sql = format!(
        "INSERT INTO {{t}}outbox (event_id, aggregate_id, part, envelope, created_at) \
         SELECT event_id, aggregate_id, part, envelope, created_at - 60000000000 \
         FROM {{t}}outbox_published WHERE event_id = '{event}'"
    );
    assert_eq!(exec(payment, &sql).await, 1);
    let report = only(dbs, "outbox_drained").await;
    assert_eq!(report.get("outbox_drained").unwrap().violations, 1);
    let lenient = check::check_with(
        dbs,
        &check::CheckOptions {
            outbox_lag: Duration::from_secs(3600),
        },
    )
    .await
    .unwrap();
    assert!(lenient.ok(), "a lag of an hour allows it: {lenient}");
    exec(
        payment,
        &format!("DELETE FROM {{t}}outbox WHERE event_id = '{event}'"),
    )
    .await;

    // 8. A dead letter that does not say why.
    let store = &dbs.dead_letter_stores()[0];
    let letter = DeadLetter::new(
        "notification",
        Envelope::new("order.placed", "o-x", serde_json::json!({})),
        "  ",
        1,
        None,
        chrono::Utc::now(),
    );
    let forged = letter.id;
    store.put(letter).await.unwrap();
    only(dbs, "dead_letters_have_reasons").await;
    let dead_letters = Db::open_sqlite(&dir.join("dead_letters.db"), false)
        .await
        .unwrap();
    exec(
        &dead_letters,
        &format!("DELETE FROM dead_letters WHERE id = '{forged}'"),
    )
    .await;
    dead_letters.close().await;

    // 9. A confirmed order's units back to merely reserved.
    let sql = |status: &str| {
        format!(
            "UPDATE {{t}}reservations SET status = '{status}' WHERE order_id = '{}'",
            orders.confirmed
        )
    };
    assert_eq!(exec(inventory, &sql("reserved")).await, 1);
    only(dbs, "reservations_match_orders").await;
    exec(inventory, &sql("committed")).await;

    // Everything undone: all hold again, for the library and the binary.
    let report = check::check(dbs).await.unwrap();
    assert!(report.ok(), "{report}");
    let (ok, out) = run_binary(dir, &[]);
    assert!(ok, "{out}");
    report
}

/// Retention: events pruned from the analytics log still count, so their notifications are
/// still held to one each.
async fn pruned_events_still_count(dbs: &Databases, orders: &Orders, report: &Report) {
    let notification = dbs.db(Service::Notification).unwrap();
    let analytics = dbs.db(Service::Analytics).unwrap();
    let notified = |r: &Report| r.get("one_notification_per_event").unwrap().checked;
    let logged = services::analytics::logged_events(analytics).await.unwrap();
    let middle = logged[logged.len() / 2].timestamp;
    let pruned = services::analytics::prune(analytics, middle).await.unwrap();
    assert!(
        pruned > 0 && (pruned as usize) < logged.len(),
        "pruned {pruned}"
    );
    let after = check::check(dbs).await.unwrap();
    assert!(after.ok(), "{after}");
    assert_eq!(notified(&after), notified(report));
    let everything = chrono::Utc::now() + chrono::Duration::seconds(1);
    services::analytics::prune(analytics, everything)
        .await
        .unwrap();
    assert!(check::check(dbs).await.unwrap().ok());
    let delete = format!(
        "DELETE FROM {{t}}notifications WHERE order_id = '{}' AND event_type = 'order.placed'",
        orders.refunded
    );
    assert_eq!(exec(notification, &delete).await, 1);
    let report = only(dbs, "one_notification_per_event").await;
    assert_eq!(
        report.get("one_notification_per_event").unwrap().violations,
        1,
        "{report}"
    );
}

/// The same statements on Postgres: the distributed mode's schemas, made by the services'
/// migrations. Needs `DATABASE_URL`; without it the test prints `SKIP` and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checker_reads_the_distributed_schemas() {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("SKIP the_checker_reads_the_distributed_schemas: DATABASE_URL not set");
        return;
    };
    // The random end of a v7 id: schema names stay under Postgres' identifier limit.
    let prefix = format!("chk{}_", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let absent = Databases::connect_postgres(&url, &prefix).await;
    assert!(absent.is_err(), "no schemas yet: an error");
    // The services' schemas, as `serve` makes them.
    for svc in Service::ALL.into_iter().filter(|s| s.has_database()) {
        Db::connect_postgres(&url, &svc.schema(&prefix), 1)
            .await
            .unwrap()
            .close()
            .await;
    }
    let dbs = Databases::connect_postgres(&url, &prefix).await.unwrap();
    let migrations: BTreeMap<Service, &[&str]> = BTreeMap::from([
        (Service::Order, services::order::MIGRATIONS),
        (Service::Inventory, services::inventory::MIGRATIONS),
        (Service::Payment, services::payment::MIGRATIONS),
        (Service::Shipping, services::shipping::MIGRATIONS),
        (Service::Notification, services::notification::MIGRATIONS),
        (Service::Analytics, services::analytics::MIGRATIONS),
        (Service::Ai, services::ai::MIGRATIONS),
    ]);
    for (svc, statements) in &migrations {
        dbs.db(*svc).unwrap().migrate(statements).await.unwrap();
    }
    let outcome = async {
        let report = check::check(&dbs).await?;
        assert!(report.ok(), "{report}");
        let inventory = dbs.db(Service::Inventory)?;
        exec(
            inventory,
            "INSERT INTO {t}products (id, name, description, price_cents, available, reserved, \
             sold, initial_stock) VALUES ('p', 'P', 'd', 100, 4, 1, 0, 6)",
        )
        .await;
        exec(
            dbs.db(Service::Analytics)?,
            "INSERT INTO {t}event_log (event_id, event_type, aggregate_id, correlation_id, \
             occurred_at, recorded_at, body) VALUES ('e1', 'order.placed', 'o', 'c', 'x', 'x', '{}')",
        )
        .await;
        let report = check::check(&dbs).await?;
        assert_eq!(
            violated(&report),
            vec!["stock_conserved", "one_notification_per_event"],
            "{report}"
        );
        anyhow::Ok(())
    }
    .await;
    for svc in migrations.keys() {
        exec(
            dbs.db(*svc).unwrap(),
            &format!("DROP SCHEMA {} CASCADE", svc.schema(&prefix)),
        )
        .await;
    }
    dbs.close().await;
    outcome.unwrap();
}
