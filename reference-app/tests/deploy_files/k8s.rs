//! `deploy/k8s/`: one Deployment and one Service per service, their ConfigMap and Secret.

use std::collections::{BTreeMap, BTreeSet};

use reference_app::metrics;
use reference_app::topology::Service;
use yaml_rust2::Yaml;

use crate::contract::ServeCli;
use crate::service::{Hosts, check_service};
use crate::{Deploy, IMAGE, Problems, SCALED, yaml};

/// The Kubernetes objects of `deploy/k8s`, by kind and name.
fn k8s_objects(d: &Deploy, p: &mut Problems) -> BTreeMap<(String, String), Yaml> {
    let mut objects = BTreeMap::new();
    let mut files = BTreeSet::new();
    let mut resources = BTreeSet::new();
    for rel in d.files.keys().filter(|f| f.starts_with("k8s/")) {
        let name = rel.trim_start_matches("k8s/").to_owned();
        let docs = match d.yaml(rel) {
            Ok(docs) => docs,
            Err(e) => {
                p.push(e);
                continue;
            }
        };
        if name == "kustomization.yaml" {
            for doc in &docs {
                resources.extend(
                    yaml::items(doc, &["resources"])
                        .iter()
                        .filter_map(yaml::scalar),
                );
            }
            continue;
        }
        files.insert(name);
        for doc in docs.into_iter().filter(|doc| !doc.is_null()) {
            let (Some(kind), Some(obj)) = (
                yaml::text(&doc, &["kind"]),
                yaml::text(&doc, &["metadata", "name"]),
            ) else {
                p.push(format!("{rel}: an object without kind or name"));
                continue;
            };
            if objects.insert((kind.clone(), obj.clone()), doc).is_some() {
                p.push(format!("{rel}: {kind} {obj} is defined twice"));
            }
        }
    }
    if files != resources {
        p.push(format!(
            "k8s/kustomization.yaml lists {resources:?}, the directory holds {files:?}"
        ));
    }
    objects
}

/// The string entries of `field` of every object of `kind`, by object name.
fn k8s_maps(
    objects: &BTreeMap<(String, String), Yaml>,
    kind: &str,
    field: &str,
) -> BTreeMap<String, BTreeMap<String, String>> {
    objects
        .iter()
        .filter(|((k, _), _)| k == kind)
        .map(|((_, name), obj)| {
            let map = yaml::get(obj, &[field])
                .and_then(yaml::string_map)
                .unwrap_or_default();
            (name.clone(), map)
        })
        .collect()
}

/// The port a probe or Service names: a number, or the name of a container port.
fn resolve_port(port: Option<&Yaml>, named: &BTreeMap<String, u16>) -> Option<u16> {
    let port = yaml::scalar(port?)?;
    port.parse().ok().or_else(|| named.get(&port).copied())
}

pub(crate) fn check_k8s(d: &Deploy, cli: &ServeCli) -> Problems {
    let mut p = Problems::new();
    let objects = k8s_objects(d, &mut p);
    let config_maps = k8s_maps(&objects, "ConfigMap", "data");
    let secrets = k8s_maps(&objects, "Secret", "stringData");
    let mut hosts = Hosts::new();
    for ((kind, name), obj) in &objects {
        if kind == "Service" {
            let ports = yaml::items(obj, &["spec", "ports"])
                .iter()
                .filter_map(|port| yaml::text(port, &["port"])?.parse::<u16>().ok());
            hosts.entry(name.clone()).or_default().extend(ports);
        }
    }
    for svc in Service::ALL {
        let at = format!("k8s: Deployment {svc}");
        let port = svc.default_port();
        let Some(dep) = objects.get(&("Deployment".to_owned(), svc.name().to_owned())) else {
            p.push(format!("{at} is missing"));
            continue;
        };
        let replicas: i64 = yaml::text(dep, &["spec", "replicas"])
            .and_then(|r| r.parse().ok())
            .unwrap_or(1);
        let wanted = if SCALED.contains(&svc) { 2 } else { 1 };
        if replicas < wanted {
            p.push(format!(
                "{at}: {replicas} replica(s), wanted at least {wanted}"
            ));
        }
        let template = yaml::get(dep, &["spec", "template"]).unwrap_or(&Yaml::Null);
        let pod_labels = yaml::get(template, &["metadata", "labels"])
            .and_then(yaml::string_map)
            .unwrap_or_default();
        let selects = |selector: Option<&Yaml>| {
            let sel = selector.and_then(yaml::string_map).unwrap_or_default();
            !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
        };
        if !selects(yaml::get(dep, &["spec", "selector", "matchLabels"])) {
            p.push(format!(
                "{at}: its selector does not match its pods' labels"
            ));
        }
        let annotations = yaml::get(template, &["metadata", "annotations"])
            .and_then(yaml::string_map)
            .unwrap_or_default();
        for (key, value) in [
            ("prometheus.io/scrape", "true".to_owned()),
            ("prometheus.io/path", metrics::PATH.to_owned()),
            ("prometheus.io/port", port.to_string()),
        ] {
            if annotations.get(key) != Some(&value) {
                p.push(format!(
                    "{at}: annotation {key} is {:?}, not {value:?}",
                    annotations.get(key)
                ));
            }
        }
        let app_containers: Vec<&Yaml> = yaml::items(template, &["spec", "containers"])
            .iter()
            .filter(|c| yaml::text(c, &["image"]).as_deref() == Some(IMAGE))
            .collect();
        let [container] = app_containers.as_slice() else {
            p.push(format!(
                "{at}: {} containers run {IMAGE}, not one",
                app_containers.len()
            ));
            continue;
        };
        if let Some(command) = yaml::get(container, &["command"]) {
            p.push(format!(
                "{at}: `command` {command:?} replaces the image's entrypoint; give `args`"
            ));
        }
        let args = yaml::get(container, &["args"])
            .and_then(yaml::strings)
            .unwrap_or_default();
        let named: BTreeMap<String, u16> = yaml::items(container, &["ports"])
            .iter()
            .filter_map(|cp| {
                Some((
                    yaml::text(cp, &["name"])?,
                    yaml::text(cp, &["containerPort"])?.parse().ok()?,
                ))
            })
            .collect();
        if !named.values().any(|p| *p == port) {
            p.push(format!("{at}: no named container port {port}"));
        }
        let mut env = BTreeMap::new();
        for var in yaml::items(container, &["env"]) {
            let name = yaml::text(var, &["name"]).unwrap_or_default();
            let value = if let Some(value) = yaml::text(var, &["value"]) {
                Some(value)
            } else if let Some(r) = yaml::get(var, &["valueFrom", "configMapKeyRef"]) {
                let (m, k) = (
                    yaml::text(r, &["name"]).unwrap_or_default(),
                    yaml::text(r, &["key"]).unwrap_or_default(),
                );
                config_maps.get(&m).and_then(|m| m.get(&k)).cloned()
            } else if let Some(r) = yaml::get(var, &["valueFrom", "secretKeyRef"]) {
                let (s, k) = (
                    yaml::text(r, &["name"]).unwrap_or_default(),
                    yaml::text(r, &["key"]).unwrap_or_default(),
                );
                secrets.get(&s).and_then(|s| s.get(&k)).cloned()
            } else {
                None
            };
            match value {
                Some(value) => {
                    env.insert(name, value);
                }
                None => p.push(format!(
                    "{at}: {name} has no value (missing ConfigMap/Secret key?)"
                )),
            }
        }
        for from in yaml::items(container, &["envFrom"]) {
            let maps = [("configMapRef", &config_maps), ("secretRef", &secrets)];
            for (field, source) in maps {
                if let Some(name) = yaml::text(from, &[field, "name"]) {
                    env.extend(source.get(&name).cloned().unwrap_or_default());
                }
            }
        }
        p.extend(check_service(cli, svc, &args, &env, &hosts, &at));
        for probe in ["readinessProbe", "livenessProbe"] {
            let get = yaml::get(container, &[probe, "httpGet"]);
            let path = get.and_then(|g| yaml::text(g, &["path"]));
            let probe_port = resolve_port(get.and_then(|g| yaml::get(g, &["port"])), &named);
            if path.as_deref() != Some("/health") || probe_port != Some(port) {
                p.push(format!(
                    "{at}: {probe} asks {path:?} on {probe_port:?}, not /health on {port}"
                ));
            }
        }
        let Some(service) = objects.get(&("Service".to_owned(), svc.name().to_owned())) else {
            p.push(format!("k8s: Service {svc} is missing"));
            continue;
        };
        if !selects(yaml::get(service, &["spec", "selector"])) {
            p.push(format!(
                "k8s: Service {svc} does not select the Deployment's pods"
            ));
        }
        let serves = yaml::items(service, &["spec", "ports"]).iter().any(|sp| {
            yaml::text(sp, &["port"]).and_then(|n| n.parse().ok()) == Some(port)
                && resolve_port(yaml::get(sp, &["targetPort"]), &named) == Some(port)
        });
        if !serves {
            p.push(format!(
                "k8s: Service {svc} does not forward port {port} to the container's {port}"
            ));
        }
    }
    p
}
