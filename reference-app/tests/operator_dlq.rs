//! `reference-app dlq list|replay|discard` against a running embedded system: a poison
//! message is dead-lettered with its reason, listed, replayed (and dead-lettered again), then
//! discarded.

mod support;

use std::process::Command;
use std::time::Duration;

use saga_core::dead_letter::{DeadLetterFilter, DeadLetterStatus};
use support::App;

fn dlq(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_reference-app"))
        .arg("dlq")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env("RUST_LOG", "warn")
        // The embedded system: not the distributed one CI's environment points at.
        .env_remove("DATABASE_URL")
        .env_remove("BROKER_URL")
        .output()
        .expect("run reference-app dlq");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn pending(app: &App, n: usize) -> Vec<saga_core::DeadLetter> {
    let store = app.system.broker().unwrap().dead_letters.clone();
    let filter = DeadLetterFilter {
        status: Some(DeadLetterStatus::Pending),
        ..DeadLetterFilter::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = store.list(&filter).await.unwrap();
        if list.len() >= n || tokio::time::Instant::now() > deadline {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_replays_and_discards_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_in(dir.path(), 0.0, Duration::from_millis(1)).await;
    let poison = app.publish_poison(&["o-poison"]).await.remove(0);
    let letters = pending(&app, 1).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].envelope.event_id, poison.event_id);
    assert!(
        letters[0]
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("order payload"),
        "{letters:?}"
    );

    let (ok, out) = dlq(dir.path(), &["list"]);
    assert!(ok, "{out}");
    let listed: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["event_type"], "fraud.check.requested");
    assert_eq!(listed[0]["subscription"], "ai");
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    // Replayed: delivered again, fails again, a new dead letter; the first is no longer pending.
    let (ok, out) = dlq(dir.path(), &["replay", &id]);
    assert!(ok && out.contains("replayed"), "{out}");
    let (ok, out) = dlq(dir.path(), &["replay", &id]);
    assert!(
        ok && out.contains("not pending"),
        "a second replay is a no-op: {out}"
    );
    let again = pending(&app, 1).await;
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].id.to_string(), id);

    let second = again[0].id.to_string();
    let (ok, out) = dlq(dir.path(), &["discard", &second]);
    assert!(ok && out.contains("discarded"), "{out}");
    let (ok, out) = dlq(dir.path(), &["list"]);
    assert!(ok && out.trim().is_empty(), "nothing pending: {out}");
    let (ok, _) = dlq(dir.path(), &["discard", &uuid::Uuid::now_v7().to_string()]);
    assert!(!ok, "an unknown id is an error");
    app.stop().await;
}
