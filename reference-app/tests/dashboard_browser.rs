//! The dashboard in headless Chromium, driven through WebDriver (chromedriver), against the
//! embedded system: an order placed in the form is watched live until its saga ends; a
//! compensated order (zip 00000: the carrier cannot deliver) and a failed one (more Limited
//! Edition Vinyl than there is) read differently from a completed one; the orders list
//! filters; the system page shows the eight services and the charts; a dead letter is
//! replayed and another discarded through the confirmation dialog; on the AI page the
//! assistant, asked in its chat box for an order's status, names it, and the self-healing
//! panel lists the policies' decisions; with an admin token the page asks for it once and
//! sends it.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! or `CHROME_BIN` and `CHROMEDRIVER` naming them). Without them the test prints SKIP, unless
//! CI is set (`CI=true` or `SAGA_SERVICES_STRICT=1`): then it fails. With
//! `SAVE_SCREENSHOTS=1` it saves the main pages to `docs/screenshots/*.png`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use reference_app::topology::Service;
use serde_json::{Value, json};
use support::{App, order_body};

/// The first of `names` found as an executable in `PATH`.
fn in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `(chromium, chromedriver)`, from `CHROME_BIN` and `CHROMEDRIVER` or `PATH`.
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let from_env = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
    };
    let chromium = from_env("CHROME_BIN").or_else(|| {
        in_path(&[
            "chromium",
            "chromium-browser",
            "google-chrome",
            "google-chrome-stable",
        ])
    })?;
    let driver = from_env("CHROMEDRIVER").or_else(|| in_path(&["chromedriver"]))?;
    Some((chromium, driver))
}

fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
        || std::env::var("SAGA_SERVICES_STRICT").is_ok_and(|v| v == "1")
}

/// A chromedriver of this test, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers.
    async fn start(program: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let status = format!("{}/status", driver.url);
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(&status).send().await
                && r.status().is_success()
            {
                return driver;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("chromedriver did not answer on {status}");
    }
}

/// Runs `probe` every 100 ms until it gives something; panics after 30 s saying `what`.
async fn until<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never showed {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Evaluates a JavaScript expression in the page.
async fn js(c: &Client, expression: &str) -> Value {
    c.execute(&format!("return ({expression});"), vec![])
        .await
        .unwrap_or_else(|e| panic!("{expression}: {e}"))
}

/// Clicks the element `css` selects. The page re-renders its tables as data arrives, so an
/// element found a moment ago may be gone (stale): it is looked up again, for up to 5 s.
async fn click(c: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let clicked = match c.find(Locator::Css(css)).await {
            Ok(element) => element.click().await,
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => return,
            Err(e) if tokio::time::Instant::now() >= deadline => panic!("{css}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The text of the element `css` selects, once there is one.
async fn text_of(c: &Client, css: &str) -> String {
    until(css, || async {
        c.find(Locator::Css(css)).await.ok()?.text().await.ok()
    })
    .await
}

/// Waits until the element `css` selects contains `needle`.
async fn until_text(c: &Client, css: &str, needle: &str) {
    until(&format!("{needle} in {css}"), || async {
        let text = c.find(Locator::Css(css)).await.ok()?.text().await.ok()?;
        text.contains(needle).then_some(())
    })
    .await;
}

/// Answers the open confirmation dialog with its button `button` (`#confirm-ok` or
/// `#confirm-cancel`).
async fn answer_dialog(c: &Client, button: &str) {
    let choice = until("the confirmation dialog", || async {
        let open = js(c, "document.getElementById('confirm').open").await;
        if open != json!(true) {
            return None;
        }
        c.find(Locator::Css(button)).await.ok()
    })
    .await;
    choice.click().await.unwrap();
}

/// What the order page shows: the outcome's state and the timeline's event types.
async fn saga_view(c: &Client) -> (String, Vec<String>) {
    let v = js(
        c,
        "{ state: (document.getElementById('outcome') || {dataset: {}}).dataset.state || '', \
           lines: [...document.querySelectorAll('#timeline li')].map(li => li.dataset.eventType) }",
    )
    .await;
    let lines = v["lines"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    (v["state"].as_str().unwrap_or("").to_owned(), lines)
}

/// The background colour of the order page's outcome.
const OUTCOME_COLOUR: &str = "getComputedStyle(document.getElementById('outcome')).backgroundColor";

const TERMINAL: [&str; 3] = ["completed", "compensated", "failed"];

/// The order's id once the page shows it (`#/orders/{id}`).
async fn order_on_page(c: &Client) -> String {
    until("an order's page", || async {
        let url = c.current_url().await.ok()?;
        let id = url.fragment()?.strip_prefix("/orders/")?.to_owned();
        uuid::Uuid::parse_str(&id).ok().map(|_| id)
    })
    .await
}

/// Fills the new-order form with `quantity` of `product` to `zip` and places it; returns the
/// order's id once its page shows.
async fn place_in_form(c: &Client, web: &str, product: &str, quantity: u32, zip: &str) -> String {
    c.goto(&format!("{web}/#/new")).await.unwrap();
    let row = format!("tr[data-product-name=\"{product}\"] input[name=quantity]");
    let input = until("the catalog", || async {
        c.find(Locator::Css(&row)).await.ok()
    })
    .await;
    input.clear().await.unwrap();
    input.send_keys(&quantity.to_string()).await.unwrap();
    let zip_field = c.find(Locator::Css("#zip")).await.unwrap();
    zip_field.clear().await.unwrap();
    zip_field.send_keys(zip).await.unwrap();
    // The total follows the quantities.
    let total = c.find(Locator::Css("#order-total")).await.unwrap();
    assert_ne!(total.text().await.unwrap(), "$0.00");
    click(c, "#place-order").await;
    order_on_page(c).await
}

/// Watches the order page until the saga ends (30 s at most); returns every distinct view
/// seen, in order.
async fn watch_to_the_end(c: &Client) -> Vec<(String, Vec<String>)> {
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let view = saga_view(c).await;
        if seen.last() != Some(&view) {
            seen.push(view.clone());
        }
        if TERMINAL.contains(&view.0.as_str()) {
            return seen;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the saga never ended on the page: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Saves a screenshot of the page when `SAVE_SCREENSHOTS=1`.
async fn screenshot(c: &Client, name: &str) {
    screenshot_at(c, name, None).await;
}

/// Saves a screenshot when `SAVE_SCREENSHOTS=1`: the page from its top, or from the element
/// `css` selects.
async fn screenshot_at(c: &Client, name: &str, css: Option<&str>) {
    if std::env::var("SAVE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        // Let the last fetches land.
        tokio::time::sleep(Duration::from_millis(600)).await;
        let scroll = match css {
            Some(css) => format!("document.querySelector({css:?}).scrollIntoView()"),
            None => "window.scrollTo(0, 0)".to_owned(),
        };
        c.execute(&scroll, vec![]).await.unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_watches_sagas_live_and_replays_dead_letters() {
    let Some((chromium, chromedriver)) = browser_tools() else {
        assert!(
            !strict(),
            "chromium and chromedriver are needed for the dashboard's browser test \
             (apt-get install chromium chromium-driver, or set CHROME_BIN and CHROMEDRIVER)"
        );
        eprintln!("SKIP: no chromium and chromedriver; the dashboard's browser test did not run");
        return;
    };
    let driver = Driver::start(&chromedriver).await;
    let dir = tempfile::tempdir().unwrap();
    // The gateway takes a second and a half: the steps after it arrive while the page shows.
    let app = App::start_in(dir.path(), 0.0, Duration::from_millis(1500)).await;
    let web = app.system.url(Service::Web);
    let products = app.products().await;

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=en-US"],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session");

    // 1. An order placed in the form, watched live until its saga completes. If the machine
    //    is so slow that the page first shows an already finished saga, another order is
    //    placed (three tries).
    let mut live = None;
    for _ in 0..3 {
        let id = place_in_form(&c, &web, "Laptop Pro 14", 1, "94102").await;
        // A mark on the page: it is the same page (no reload) at the end.
        js(&c, "window.__same_page = true").await;
        let seen = watch_to_the_end(&c).await;
        assert_eq!(js(&c, "window.__same_page === true").await, true);
        if seen[0].0 == "running" {
            live = Some((id, seen));
            break;
        }
    }
    let (id, seen) = live.expect("the order page showed a running saga before its end");
    screenshot(&c, "order-completed").await;
    let (state, last) = seen.last().unwrap().clone();
    assert_eq!(state, "completed", "{seen:?}");
    // Lines arrived while the page was open: the timeline grew through several views.
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(
        seen.iter()
            .any(|(s, l)| s == "running" && l.len() < last.len()),
        "{seen:?}"
    );
    for expected in [
        "order.placed",
        "fraud.check.passed",
        "inventory.reserved",
        "payment.requested",
        "payment.processed",
        "order.confirmed",
        "shipping.scheduled",
    ] {
        assert!(last.contains(&expected.to_owned()), "{expected}: {last:?}");
    }
    // Every line of the saga log is on the page.
    let log = app
        .get(Service::Order, &format!("/orders/{id}/saga-logs"))
        .await;
    for line in log.as_array().unwrap() {
        if line["step"] != "delivery" {
            assert!(last.contains(&line["event_type"].as_str().unwrap().to_owned()));
        }
    }
    let completed_colour = js(&c, OUTCOME_COLOUR).await;
    let label = text_of(&c, "#outcome-label").await;
    assert!(label.starts_with("Completed"), "{label}");

    // 2. A compensated order: zip 00000, the carrier cannot deliver after the payment.
    let cancelled = place_in_form(&c, &web, "Wireless Mouse", 1, "00000").await;
    let seen = watch_to_the_end(&c).await;
    let (state, lines) = seen.last().unwrap().clone();
    assert_eq!(state, "compensated", "{seen:?}");
    for expected in [
        "shipping.failed",
        "payment.refund.requested",
        "payment.refunded",
        "inventory.release.requested",
        "inventory.released",
        "order.cancelled",
    ] {
        assert!(
            lines.contains(&expected.to_owned()),
            "{expected}: {lines:?}"
        );
    }
    let label = text_of(&c, "#outcome-label").await;
    assert!(label.starts_with("Compensated"), "{label}");
    let colour = js(&c, OUTCOME_COLOUR).await;
    assert_ne!(
        colour, completed_colour,
        "a compensated saga looks different"
    );
    let compensated_steps = js(
        &c,
        "[...document.querySelectorAll('#steps .step.compensated')].map(s => s.dataset.step)",
    )
    .await;
    assert_eq!(
        compensated_steps,
        json!(["reserve_inventory", "process_payment"])
    );
    // The side panels show the refund.
    until_text(&c, "#panel-payment", "refunded").await;
    screenshot(&c, "order-compensated").await;

    // 3. A failed order (placed through the API), found in the list by its status.
    let (status, failed) = app
        .place(
            &order_body(&products["Limited Edition Vinyl"], 6, "94102"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{failed}");
    let failed = failed["id"].as_str().unwrap().to_owned();
    app.wait(&failed).await;
    c.goto(&format!("{web}/#/orders")).await.unwrap();
    let rows = |status: Option<&'static str>| {
        let c = &c;
        async move {
            let v = js(
                c,
                "[...document.querySelectorAll('#orders-table tbody tr[data-order-id]')]\
                 .map(r => [r.dataset.orderId, r.dataset.status])",
            )
            .await;
            let rows: Vec<(String, String)> = serde_json::from_value(v).ok()?;
            let ok = match status {
                Some(s) => !rows.is_empty() && rows.iter().all(|(_, st)| st == s),
                None => rows.len() >= 3,
            };
            ok.then_some(rows)
        }
    };
    let all = until("the orders", || rows(None)).await;
    for o in [&id, &cancelled, &failed] {
        assert!(all.iter().any(|(i, _)| i == o), "{o} not listed: {all:?}");
    }
    screenshot(&c, "orders").await;
    c.find(Locator::Css("#status-filter"))
        .await
        .unwrap()
        .select_by_value("failed")
        .await
        .unwrap();
    let only = until("the failed orders", || rows(Some("failed"))).await;
    assert_eq!(only, [(failed.clone(), "failed".to_owned())]);
    click(&c, &format!("tr[data-order-id=\"{failed}\"] a")).await;
    assert_eq!(order_on_page(&c).await, failed);
    let seen = watch_to_the_end(&c).await;
    assert_eq!(seen.last().unwrap().0, "failed", "{seen:?}");
    let label = text_of(&c, "#outcome-label").await;
    assert!(label.starts_with("Failed"), "{label}");
    // Searching by a part of an id finds the order.
    c.goto(&format!("{web}/#/orders?q={}", &cancelled[24..]))
        .await
        .unwrap();
    let found = until("the search result", || async {
        let v = js(
            &c,
            "[...document.querySelectorAll('#orders-table tbody tr[data-order-id]')].map(r => r.dataset.orderId)",
        )
        .await;
        let ids: Vec<String> = serde_json::from_value(v).ok()?;
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    assert_eq!(found, std::slice::from_ref(&cancelled));

    // 4. The system page: eight healthy services, the figures and the charts.
    c.goto(&format!("{web}/#/system")).await.unwrap();
    let services = until("the services", || async {
        let v = js(
            &c,
            "[...document.querySelectorAll('#services .service')].map(s => [s.dataset.service, s.dataset.status])",
        )
        .await;
        let list: Vec<(String, String)> = serde_json::from_value(v).ok()?;
        (list.len() == 8).then_some(list)
    })
    .await;
    assert!(services.iter().all(|(_, s)| s == "healthy"), "{services:?}");
    until("the charts and figures", || async {
        let charts = js(&c, "document.querySelectorAll('#charts svg.chart').length").await;
        let orders = js(
            &c,
            "(document.querySelector('#kpi-orders .value') || {}).textContent",
        )
        .await;
        let orders: u64 = orders.as_str()?.parse().ok()?;
        (charts == json!(4) && orders >= 3).then_some(())
    })
    .await;
    screenshot(&c, "system").await;

    // 5. Dead letters: two poison messages (screening requests that are no order), one
    //    replayed and one discarded through the confirmation dialog.
    app.publish_poison(&["o-poison-1", "o-poison-2"]).await;
    c.goto(&format!("{web}/#/dead-letters")).await.unwrap();
    let pending_rows = || async {
        let v = js(
            &c,
            "[...document.querySelectorAll('#dead-letters-table tr[data-id]')].map(r => r.dataset.id)",
        )
        .await;
        serde_json::from_value::<Vec<String>>(v).unwrap_or_default()
    };
    let letters = until("two dead letters", || async {
        let ids = pending_rows().await;
        (ids.len() == 2).then_some(ids)
    })
    .await;
    screenshot(&c, "dead-letters").await;
    let button =
        |id: &str, action: &str| format!("tr[data-id=\"{id}\"] button[data-action={action}]");
    // Cancelled: nothing happens.
    click(&c, &button(&letters[0], "replay")).await;
    answer_dialog(&c, "#confirm-cancel").await;
    let letter = app
        .get(Service::Order, &format!("/dead-letters/{}", letters[0]))
        .await;
    assert_eq!(letter["status"], "pending");
    // Confirmed: replayed (it fails again and comes back as a new dead letter).
    click(&c, &button(&letters[0], "replay")).await;
    answer_dialog(&c, "#confirm-ok").await;
    app.eventually(
        Service::Order,
        &format!("/dead-letters/{}", letters[0]),
        |v| v["status"] == "replayed",
    )
    .await;
    let after = until("the replayed letter gone from the pending ones", || async {
        let ids = pending_rows().await;
        (ids.len() == 2 && !ids.contains(&letters[0])).then_some(ids)
    })
    .await;
    assert!(after.contains(&letters[1]));
    // Discarded.
    click(&c, &button(&letters[1], "discard")).await;
    answer_dialog(&c, "#confirm-ok").await;
    app.eventually(
        Service::Order,
        &format!("/dead-letters/{}", letters[1]),
        |v| v["status"] == "discarded",
    )
    .await;
    until("the discarded letter gone", || async {
        let ids = pending_rows().await;
        (ids.len() == 1 && !ids.contains(&letters[1])).then_some(())
    })
    .await;

    // 6. The AI page: the screening of an order, with its reasons.
    c.goto(&format!("{web}/#/ai")).await.unwrap();
    let select = until("the recent orders", || async {
        let s = c.find(Locator::Css("#ai-order")).await.ok()?;
        let n = js(&c, "document.querySelectorAll('#ai-order option').length").await;
        (n.as_u64()? > 1).then_some(s)
    })
    .await;
    select.select_by_value(&id).await.unwrap();
    until_text(&c, "#ai-analysis", "Fraud score").await;
    // The assistant, asked in its chat box for the compensated order's status, names it.
    let status = app
        .get(Service::Order, &format!("/orders/{cancelled}"))
        .await["status"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(status, "cancelled");
    let question = c.find(Locator::Css("#ai-question")).await.unwrap();
    question
        .send_keys(&format!("what's the status of order {cancelled}?"))
        .await
        .unwrap();
    click(&c, "#ai-ask").await;
    let answer = until("the assistant's answer", || async {
        let v = js(
            &c,
            "[...document.querySelectorAll('#chat-log li.chat-answer[data-intent]')]             .map(li => [li.dataset.intent, li.querySelector('.chat-text').textContent])",
        )
        .await;
        let answers: Vec<(String, String)> = serde_json::from_value(v).ok()?;
        answers.into_iter().next()
    })
    .await;
    assert_eq!(answer.0, "order_status", "{answer:?}");
    assert!(
        answer.1.contains(&cancelled) && answer.1.contains(&status),
        "{answer:?}"
    );
    // The question stays in the log above its answer.
    let asked = text_of(&c, "#chat-log li.chat-user").await;
    assert!(asked.contains(&cancelled), "{asked}");
    // The self-healing panel lists the poison messages' decisions of step 5.
    until("the poison-message decisions", || async {
        let n = js(
            &c,
            "document.querySelectorAll('#healing-table tr[data-policy=poison_message]').length",
        )
        .await;
        (n.as_u64()? >= 2).then_some(())
    })
    .await;
    screenshot(&c, "ai").await;
    screenshot_at(&c, "ai-self-healing", Some("#ai-healing")).await;

    // 7. The form screens an order before placing it.
    c.goto(&format!("{web}/#/new")).await.unwrap();
    let input = until("the catalog", || async {
        c.find(Locator::Css(
            "tr[data-product-name=\"Noise-Cancelling Headphones\"] input[name=quantity]",
        ))
        .await
        .ok()
    })
    .await;
    input.clear().await.unwrap();
    input.send_keys("2").await.unwrap();
    click(&c, "#check-risk").await;
    until_text(&c, "#risk", "Fraud score").await;
    screenshot(&c, "new-order").await;

    c.close().await.unwrap();
    drop(driver);
    app.stop().await;
}

/// With `--admin-token`, the dashboard's replay answers 401 at first; the page asks for the
/// token (a prompt), keeps it for the tab and sends the replay again with it, which works; a
/// later action in the same tab needs no second prompt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_asks_for_the_admin_token_and_sends_it() {
    const TOKEN: &str = "dashboard-t0ken";
    let Some((chromium, chromedriver)) = browser_tools() else {
        assert!(
            !strict(),
            "chromium and chromedriver are needed for the dashboard's browser test \
             (apt-get install chromium chromium-driver, or set CHROME_BIN and CHROMEDRIVER)"
        );
        eprintln!("SKIP: no chromium and chromedriver; the dashboard's browser test did not run");
        return;
    };
    let driver = Driver::start(&chromedriver).await;
    let dir = tempfile::tempdir().unwrap();
    let app = App::start_custom(dir.path(), |s| {
        s.admin_token = reference_app::http::AdminToken::new(TOKEN);
    })
    .await;
    let web = app.system.url(Service::Web);
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--lang=en-US"],
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session");

    app.publish_poison(&["token-poison-1", "token-poison-2"])
        .await;
    c.goto(&format!("{web}/#/dead-letters")).await.unwrap();
    let letters = until("two dead letters", || async {
        let v = js(
            &c,
            "[...document.querySelectorAll('#dead-letters-table tr[data-id]')].map(r => r.dataset.id)",
        )
        .await;
        let ids = serde_json::from_value::<Vec<String>>(v).unwrap_or_default();
        (ids.len() == 2).then_some(ids)
    })
    .await;
    let button =
        |id: &str, action: &str| format!("tr[data-id=\"{id}\"] button[data-action={action}]");
    click(&c, &button(&letters[0], "replay")).await;
    answer_dialog(&c, "#confirm-ok").await;
    // The 401 makes the page prompt for the token.
    let asked = until("the prompt for the admin token", || async {
        c.get_alert_text().await.ok()
    })
    .await;
    assert!(asked.contains("admin token"), "{asked}");
    c.send_alert_text(TOKEN).await.unwrap();
    c.accept_alert().await.unwrap();
    app.eventually(
        Service::Order,
        &format!("/dead-letters/{}", letters[0]),
        |v| v["status"] == "replayed",
    )
    .await;
    // The same tab sends the token it keeps: no second prompt.
    click(&c, &button(&letters[1], "discard")).await;
    answer_dialog(&c, "#confirm-ok").await;
    app.eventually(
        Service::Order,
        &format!("/dead-letters/{}", letters[1]),
        |v| v["status"] == "discarded",
    )
    .await;
    assert!(c.get_alert_text().await.is_err(), "a second prompt");

    c.close().await.unwrap();
    drop(driver);
    app.stop().await;
}
