//! The files in `deploy/` agree with the binary they deploy.
//!
//! Every service of [`Service::ALL`] runs in the compose file and in Kubernetes as
//! `reference-app serve <name>` on its port; every variable they set is one `serve` reads,
//! and the whole command line parses (with clap, as the binary would); every URL names the
//! right host and port; every metric and label a dashboard query or an alert names is one the
//! app exports; the scrape path is the one the app serves; the Dockerfile builds and starts
//! this package's binary. Each check reads the files' text, so the drift cases at the end
//! feed it a broken copy and expect the complaint.

#[path = "deploy_files/compose.rs"]
mod compose;
#[path = "deploy_files/contract.rs"]
mod contract;
#[path = "deploy_files/dockerfile.rs"]
mod dockerfile;
#[path = "deploy_files/k8s.rs"]
mod k8s;
#[path = "deploy_files/monitoring.rs"]
mod monitoring;
#[path = "deploy_files/promql.rs"]
mod promql;
#[path = "deploy_files/service.rs"]
mod service;
#[path = "deploy_files/yaml.rs"]
mod yaml;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use reference_app::topology::Service;
use yaml_rust2::Yaml;

use compose::check_compose;
use contract::{Exported, ServeCli};
use dockerfile::check_dockerfile;
use k8s::check_k8s;
use monitoring::{check_dashboard, check_prometheus};
use service::parse_url;

/// The image every service runs.
const IMAGE: &str = "saga-reference-app:latest";

/// The services run with two replicas, competing for their queues.
const SCALED: [Service; 4] = [
    Service::Order,
    Service::Inventory,
    Service::Payment,
    Service::Shipping,
];

/// What a check found wrong, one line each.
type Problems = Vec<String>;

fn assert_none(problems: Problems) {
    assert!(
        problems.is_empty(),
        "{} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The text files of `deploy/`, by path relative to it.
#[derive(Clone)]
struct Deploy {
    files: BTreeMap<String, String>,
}

impl Deploy {
    fn load() -> Self {
        fn walk(dir: &Path, root: &Path, files: &mut BTreeMap<String, String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, root, files);
                } else {
                    let rel = path
                        .strip_prefix(root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned();
                    files.insert(rel, fs::read_to_string(&path).unwrap());
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(&deploy_dir(), &deploy_dir(), &mut files);
        Self { files }
    }

    fn text(&self, rel: &str) -> &str {
        self.files
            .get(rel)
            .map_or_else(|| panic!("deploy/{rel} is missing"), String::as_str)
    }

    fn yaml(&self, rel: &str) -> Result<Vec<Yaml>, String> {
        yaml::load(self.text(rel)).map_err(|e| format!("{rel}: {e}"))
    }

    /// A copy with `from` replaced by `to` in `rel` (which must contain it).
    fn with(&self, rel: &str, from: &str, to: &str) -> Self {
        let text = self.text(rel);
        assert!(text.contains(from), "deploy/{rel} has no `{from}`");
        let mut copy = self.clone();
        copy.files
            .insert(rel.to_owned(), text.replacen(from, to, 1));
        copy
    }

    /// Every check.
    fn problems(&self) -> Problems {
        let cli = ServeCli::new();
        let exported = Exported::new();
        [
            check_compose(self, &cli),
            check_k8s(self, &cli),
            check_prometheus(self, &exported),
            check_dashboard(self, &exported),
            check_dockerfile(self, &cli),
        ]
        .concat()
    }
}

#[test]
fn compose_runs_every_service_as_the_binary_expects() {
    assert_none(check_compose(&Deploy::load(), &ServeCli::new()));
}

#[test]
fn kubernetes_runs_every_service_as_the_binary_expects() {
    assert_none(check_k8s(&Deploy::load(), &ServeCli::new()));
}

#[test]
fn prometheus_scrapes_every_service_and_alerts_name_exported_metrics() {
    assert_none(check_prometheus(&Deploy::load(), &Exported::new()));
}

#[test]
fn the_dashboard_shows_every_metric_and_names_only_exported_ones() {
    assert_none(check_dashboard(&Deploy::load(), &Exported::new()));
}

#[test]
fn the_dockerfile_builds_and_starts_this_binary() {
    assert_none(check_dockerfile(&Deploy::load(), &ServeCli::new()));
}

#[test]
fn database_urls_match_the_postgres_they_name() {
    let d = Deploy::load();
    let compose = d.yaml("docker-compose.yml").unwrap();
    let env = |svc: &str| {
        yaml::get(&compose[0], &["services", svc, "environment"])
            .and_then(yaml::string_map)
            .unwrap()
    };
    let pg = env("postgres");
    let url = parse_url(&env("order")["DATABASE_URL"]).unwrap();
    let creds = format!("{}:{}", pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"]);
    assert_eq!(url.user.as_deref(), Some(creds.as_str()));
    assert_eq!(url.path, format!("/{}", pg["POSTGRES_DB"]));
}

/// Each broken copy of a file is caught, with a line that names the fault.
#[test]
fn a_drifted_file_is_caught() {
    let d = Deploy::load();
    assert_none(d.problems());
    #[rustfmt::skip]
    let cases = [
        ("docker-compose.yml", "BROKER_URL: amqp", "BROKR_URL: amqp", "reads no variable BROKR_URL"),
        ("docker-compose.yml", "ORDER_URL: http://order:8001", "ORDER_URL: http://order:8011", "ORDER_URL is `http://order:8011`"),
        ("docker-compose.yml", "command: [\"serve\", \"payment\"]", "command: [\"serve\", \"paymnt\"]", "does not parse"),
        ("docker-compose.yml", "PORT: \"8004\"", "PORT: \"8040\"", "listens on Some(8040)"),
        ("docker-compose.yml", "REDIS_URL: redis://redis:6379", "REDIS_URL: redis://cache:6379", "nothing listens at cache:6379"),
        ("docker-compose.yml", "http://127.0.0.1:8002/health", "http://127.0.0.1:8002/healthz", "does not ask GET /health on 8002"),
        ("k8s/config.yaml", "INVENTORY_URL: http://inventory:8002", "INVENTORY_URL: http://inventory:8003", "INVENTORY_URL is `http://inventory:8003`"),
        ("k8s/order.yaml", "args: [\"serve\", \"order\"]", "args: [\"serve\", \"orders\"]", "does not parse"),
        ("k8s/payment.yaml", "key: BROKER_URL", "key: BROKER_ULR", "BROKER_URL has no value"),
        ("k8s/shipping.yaml", "replicas: 2", "replicas: 1", "1 replica(s)"),
        ("k8s/ai.yaml", "path: /metrics/prometheus", "path: /metrics", "annotation prometheus.io/path"),
        ("k8s/inventory.yaml", "path: /health", "path: /healthz", "readinessProbe asks Some(\"/healthz\")"),
        ("k8s/notification.yaml", "key: HOST", "key: HOSTS", "HOST has no value"),
        ("k8s/web.yaml", "containerPort: 8000", "containerPort: 8080", "no named container port 8000"),
        ("k8s/kustomization.yaml", "  - ai.yaml\n", "", "kustomization.yaml lists"),
        ("prometheus.yml", "metrics_path: /metrics/prometheus", "metrics_path: /metrics", "scrapes /metrics"),
        ("prometheus.yml", "- analytics:8006", "- analytics:8060", "\"analytics:8060\""),
        ("prometheus-rules.yml", "saga_app_outbox_lag_seconds", "saga_app_outbox_lag", "saga_app_outbox_lag is not a metric"),
        ("grafana/dashboard.json", "saga_app_orders_placed_total", "saga_app_order_placed_total", "saga_app_order_placed_total is not a metric"),
        ("grafana/dashboard.json", "by (outcome) (rate(saga_app_payments_total", "by (result) (rate(saga_app_payments_total", "label result is not on"),
        ("grafana/dashboard.json", "saga_app_sagas_finished_total", "saga_app_sagas_finished_total_bucket", "no series of saga_app_sagas_finished_total"),
        ("Dockerfile", "EXPOSE 8000-8007", "EXPOSE 8000-8006", "port 8007 of ai is not exposed"),
        ("Dockerfile", "USER 10001:10001", "USER root", "not as a non-root user"),
        ("Dockerfile", "--locked", "", "does not `cargo build --release -p reference-app --locked`"),
    ];
    for (file, from, to, complaint) in cases {
        let problems = d.with(file, from, to).problems();
        assert!(
            problems.iter().any(|p| p.contains(complaint)),
            "{file}: `{from}` -> `{to}` should be caught with `{complaint}`; got:\n  {}",
            problems.join("\n  ")
        );
    }
}
