//! Starting the embedded system for a test, and talking to it.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reference_app::context::Settings;
use reference_app::payment_gateway::GatewayConfig;
use reference_app::system::{EmbeddedConfig, System, start_embedded};
use reference_app::topology::Service;
use serde_json::{Value, json};

/// The AI models, trained once and shared by the tests of this machine.
pub fn model_dir() -> PathBuf {
    std::env::temp_dir().join("reference-app-test-models")
}

pub struct App {
    pub system: System,
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

impl App {
    /// A fresh system in a temporary directory, the gateway declining `failure_rate`.
    pub async fn start(failure_rate: f64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut app = Self::start_in(dir.path(), failure_rate, Duration::from_millis(1)).await;
        app._dir = Some(dir);
        app
    }

    /// A system on the files in `dir`.
    pub async fn start_in(dir: &Path, failure_rate: f64, gateway_latency: Duration) -> Self {
        Self::start_with(dir, failure_rate, gateway_latency, Duration::from_secs(30)).await
    }

    /// A system on the files in `dir` with the test settings changed by `change`.
    pub async fn start_custom(dir: &Path, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings {
            gateway: GatewayConfig {
                failure_rate: 0.0,
                latency: Duration::from_millis(1),
                seed: 7,
            },
            delivery_step: Duration::from_millis(200),
            model_dir: model_dir(),
            ..Settings::default()
        };
        change(&mut settings);
        let config = EmbeddedConfig {
            data_dir: dir.to_path_buf(),
            host: "127.0.0.1".into(),
            base_port: 0,
            full_sync: false,
            settings,
        };
        let system = start_embedded(config)
            .await
            .expect("the embedded system starts");
        Self {
            system,
            client: reqwest::Client::new(),
            _dir: None,
        }
    }

    /// A system on the files in `dir` whose saga steps have `deadline`.
    pub async fn start_with(
        dir: &Path,
        failure_rate: f64,
        gateway_latency: Duration,
        deadline: Duration,
    ) -> Self {
        let config = EmbeddedConfig {
            data_dir: dir.to_path_buf(),
            host: "127.0.0.1".into(),
            base_port: 0,
            full_sync: false,
            settings: Settings {
                gateway: GatewayConfig {
                    failure_rate,
                    latency: gateway_latency,
                    seed: 7,
                },
                delivery_step: Duration::from_millis(200),
                step_deadline: deadline,
                model_dir: model_dir(),
                ..Settings::default()
            },
        };
        let system = start_embedded(config)
            .await
            .expect("the embedded system starts");
        Self {
            system,
            client: reqwest::Client::new(),
            _dir: None,
        }
    }

    pub async fn stop(self) {
        self.system.stop().await;
    }

    pub async fn get(&self, service: Service, path: &str) -> Value {
        let url = format!("{}{path}", self.system.url(service));
        let r = self.client.get(&url).send().await.unwrap();
        assert!(r.status().is_success(), "GET {url}: {}", r.status());
        r.json().await.unwrap()
    }

    /// Sets the simulated gateway's latency (`PUT /gateway/latency` on the payment service)
    /// and returns its answer, asserting it was accepted with that latency.
    pub async fn set_gateway_latency(&self, ms: u64) -> Value {
        let url = format!("{}/gateway/latency", self.system.url(Service::Payment));
        let r = self
            .client
            .put(&url)
            .json(&serde_json::json!({ "latency_ms": ms }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "PUT {url}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["latency_ms"], ms, "{answer}");
        answer
    }

    /// Sends `method` (no body) to `path` of `service`: the status, the media type and the
    /// JSON body (null if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        service: Service,
        path: &str,
    ) -> (u16, String, Value) {
        let url = format!("{}{path}", self.system.url(service));
        let r = self.client.request(method, &url).send().await.unwrap();
        let status = r.status().as_u16();
        let media = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, media, r.json().await.unwrap_or(Value::Null))
    }

    /// Publishes, for each key, a screening request whose payload is not an order: the AI
    /// service can never handle it, so it is dead-lettered at once with the reason (one key
    /// each, as a dead letter parks its key).
    pub async fn publish_poison(&self, keys: &[&str]) -> Vec<saga_core::Envelope> {
        let letters: Vec<saga_core::Envelope> = keys
            .iter()
            .map(|k| saga_core::Envelope::new("fraud.check.requested", *k, json!({"nope": 1})))
            .collect();
        let broker = self
            .system
            .broker()
            .expect("the embedded system has a broker");
        broker.publisher.publish(&letters).await.unwrap();
        letters
    }

    /// GETs `path` until `ok` holds (10 s at most).
    pub async fn eventually(
        &self,
        service: Service,
        path: &str,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}{path}", self.system.url(service));
            if let Ok(r) = self.client.get(&url).send().await
                && r.status().is_success()
            {
                let v: Value = r.json().await.unwrap();
                if ok(&v) {
                    return v;
                }
                if tokio::time::Instant::now() > deadline {
                    panic!("GET {url} never satisfied the condition; last: {v}");
                }
            } else if tokio::time::Instant::now() > deadline {
                panic!("GET {url} never answered");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The catalog by product name (waits until the order service knows it too).
    pub async fn products(&self) -> HashMap<String, Value> {
        let list = self
            .eventually(Service::Inventory, "/products", |v| {
                v.as_array().is_some_and(|a| !a.is_empty())
            })
            .await;
        list.as_array()
            .unwrap()
            .iter()
            .map(|p| (p["name"].as_str().unwrap().to_owned(), p.clone()))
            .collect()
    }

    /// POSTs an order; returns the status and the body. Retries 422 "unknown product" for a
    /// moment after start-up, while the order service learns the catalog.
    pub async fn place(&self, body: &Value, key: Option<&str>) -> (u16, Value) {
        let url = format!("{}/orders", self.system.url(Service::Order));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let mut req = self.client.post(&url).json(body);
            if let Some(k) = key {
                req = req.header("Idempotency-Key", k);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            let catalog_pending = status == 422
                && v.to_string().contains("unknown product")
                && tokio::time::Instant::now() < deadline
                && !body.to_string().contains("no-such-product");
            if !catalog_pending {
                return (status, v);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the order's saga to end (30 s at most).
    pub async fn wait(&self, id: &str) -> Value {
        let url = format!(
            "{}/orders/{id}/wait?timeout_ms=30000",
            self.system.url(Service::Order)
        );
        let v: Value = self
            .client
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["terminal"], true, "order {id} did not finish: {v}");
        v
    }
}

/// An order for `quantity` of `product` shipped to `zip`.
pub fn order_body(product: &Value, quantity: i64, zip: &str) -> Value {
    json!({
        "customer_id": "123e4567-e89b-12d3-a456-426614174000",
        "items": [{"product_id": product["id"], "quantity": quantity, "price": product["price"]}],
        "shipping_address": {"street": "123 Main St", "city": "San Francisco", "state": "CA", "zip": zip},
        "payment_method": {"type": "credit_card"}
    })
}

/// (available, reserved) of a product.
pub fn stock_of(product: &Value) -> (i64, i64) {
    (
        product["available_quantity"].as_i64().unwrap(),
        product["reserved_quantity"].as_i64().unwrap(),
    )
}
