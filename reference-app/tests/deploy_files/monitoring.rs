//! Monitoring: `deploy/prometheus.yml`, its rule file, and the Grafana dashboard with its
//! provisioned datasource.

use std::collections::BTreeSet;

use reference_app::metrics::{self, METRIC_NAMES};
use reference_app::topology::Service;
use serde_json::Value;
use yaml_rust2::Yaml;

use crate::contract::Exported;
use crate::{Deploy, Problems, promql, yaml};

/// The metric and label names of one query, checked against what the app exports; returns
/// the families it uses.
fn check_expr(expr: &str, exported: &Exported, at: &str, p: &mut Problems) -> BTreeSet<String> {
    let refs = match promql::refs(expr) {
        Ok(refs) => refs,
        Err(e) => {
            p.push(format!("{at}: {e}"));
            return BTreeSet::new();
        }
    };
    if refs.metrics.is_empty() {
        p.push(format!("{at}: `{expr}` names no metric"));
    }
    let mut families = BTreeSet::new();
    let mut labels = BTreeSet::new();
    for m in &refs.metrics {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| m.strip_suffix(suffix))
            .find(|base| METRIC_NAMES.contains(base))
            .unwrap_or(m);
        if !METRIC_NAMES.contains(&family) {
            p.push(format!("{at}: {m} is not a metric of METRIC_NAMES"));
            continue;
        }
        families.insert(family.to_owned());
        match exported.sample_labels.get(m) {
            Some(l) => labels.extend(l.iter().cloned()),
            None => p.push(format!(
                "{at}: {m} is no series of {family} (a {})",
                exported
                    .family_types
                    .get(family)
                    .map_or("?", String::as_str)
            )),
        }
    }
    for label in refs.labels.difference(&labels) {
        p.push(format!("{at}: label {label} is not on {:?}", refs.metrics));
    }
    families
}

pub(crate) fn check_prometheus(d: &Deploy, exported: &Exported) -> Problems {
    const FILE: &str = "prometheus.yml";
    let mut p = Problems::new();
    let docs = match d.yaml(FILE) {
        Ok(docs) => docs,
        Err(e) => return vec![e],
    };
    let doc = docs.first().unwrap_or(&Yaml::Null);
    let jobs = yaml::items(doc, &["scrape_configs"]);
    let mut targets = BTreeSet::new();
    for job in jobs {
        let name = yaml::text(job, &["job_name"]).unwrap_or_default();
        let path = yaml::text(job, &["metrics_path"]).unwrap_or_else(|| "/metrics".into());
        if path != metrics::PATH {
            p.push(format!(
                "{FILE}: job {name} scrapes {path}, the app serves {}",
                metrics::PATH
            ));
        }
        for config in yaml::items(job, &["static_configs"]) {
            targets.extend(
                yaml::items(config, &["targets"])
                    .iter()
                    .filter_map(yaml::scalar),
            );
        }
    }
    let wanted: BTreeSet<String> = Service::ALL
        .iter()
        .map(|s| format!("{}:{}", s.name(), s.default_port()))
        .collect();
    if targets != wanted {
        p.push(format!(
            "{FILE}: scrapes {targets:?}, the services are {wanted:?}"
        ));
    }
    let compose = d.yaml("docker-compose.yml").unwrap_or_default();
    let mounts: Vec<String> = compose
        .first()
        .map(|c| {
            yaml::items(c, &["services", "prometheus", "volumes"])
                .iter()
                .filter_map(yaml::scalar)
                .collect()
        })
        .unwrap_or_default();
    let mut mounted = |file: &str| {
        let wanted = format!("./{file}:/etc/prometheus/{file}");
        if !mounts.iter().any(|m| m.starts_with(&wanted)) {
            p.push(format!(
                "docker-compose.yml: prometheus does not mount {wanted}"
            ));
        }
    };
    mounted(FILE);
    let rule_files: Vec<String> = yaml::items(doc, &["rule_files"])
        .iter()
        .filter_map(yaml::scalar)
        .collect();
    for rules in &rule_files {
        mounted(rules);
    }
    for rules in rule_files {
        let Some(text) = d.files.get(&rules) else {
            p.push(format!("{FILE}: rule file {rules} is not in deploy/"));
            continue;
        };
        let docs = match yaml::load(text) {
            Ok(docs) => docs,
            Err(e) => {
                p.push(format!("{rules}: {e}"));
                continue;
            }
        };
        for group in docs.iter().flat_map(|doc| yaml::items(doc, &["groups"])) {
            for rule in yaml::items(group, &["rules"]) {
                let name = yaml::text(rule, &["alert"])
                    .or_else(|| yaml::text(rule, &["record"]))
                    .unwrap_or_default();
                let expr = yaml::text(rule, &["expr"]).unwrap_or_default();
                check_expr(&expr, exported, &format!("{rules}: {name}"), &mut p);
            }
        }
    }
    p
}

/// Every query of a dashboard: panel target `expr`s and variable queries.
fn dashboard_queries(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "definition", Value::String(q)) => out.push(q.clone()),
                    ("query", Value::String(q)) => out.push(q.clone()),
                    _ => dashboard_queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_queries(i, out)),
        _ => {}
    }
}

/// Every datasource uid a dashboard names.
fn dashboard_datasources(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(uid) = map
                .get("datasource")
                .and_then(|ds| ds.get("uid"))
                .and_then(Value::as_str)
            {
                out.insert(uid.to_owned());
            }
            map.values().for_each(|v| dashboard_datasources(v, out));
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_datasources(i, out)),
        _ => {}
    }
}

pub(crate) fn check_dashboard(d: &Deploy, exported: &Exported) -> Problems {
    const FILE: &str = "grafana/dashboard.json";
    let mut p = Problems::new();
    let dashboard: Value = match serde_json::from_str(d.text(FILE)) {
        Ok(v) => v,
        Err(e) => return vec![format!("{FILE}: {e}")],
    };
    let panels = dashboard["panels"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if panels.is_empty() {
        p.push(format!("{FILE}: no panels"));
    }
    let mut shown = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        let mut queries = Vec::new();
        dashboard_queries(panel, &mut queries);
        if title.is_empty() || queries.is_empty() {
            p.push(format!("{FILE}: panel {title:?} has no title or no query"));
        }
        for q in queries {
            shown.extend(check_expr(
                &q,
                exported,
                &format!("{FILE}: panel {title:?}"),
                &mut p,
            ));
        }
    }
    let mut variables = Vec::new();
    dashboard_queries(&dashboard["templating"], &mut variables);
    for q in variables {
        check_expr(&q, exported, &format!("{FILE}: variable query"), &mut p);
    }
    for name in METRIC_NAMES.iter().filter(|n| !shown.contains(**n)) {
        p.push(format!("{FILE}: no panel shows {name}"));
    }
    let provisioned = d
        .yaml("grafana/provisioning/datasources/prometheus.yml")
        .ok()
        .and_then(|docs| {
            docs.first()
                .and_then(|doc| yaml::items(doc, &["datasources"]).first().cloned())
        });
    let uid = provisioned
        .as_ref()
        .and_then(|ds| yaml::text(ds, &["uid"]))
        .unwrap_or_default();
    let url = provisioned
        .as_ref()
        .and_then(|ds| yaml::text(ds, &["url"]))
        .unwrap_or_default();
    let mut uids = BTreeSet::new();
    dashboard_datasources(&dashboard, &mut uids);
    if uids != BTreeSet::from([uid.clone()]) {
        p.push(format!(
            "{FILE}: uses datasources {uids:?}, the provisioned one is {uid:?}"
        ));
    }
    if !url.starts_with("http://prometheus:9090") {
        p.push(format!(
            "the provisioned datasource points at {url:?}, not compose's prometheus"
        ));
    }
    p
}
