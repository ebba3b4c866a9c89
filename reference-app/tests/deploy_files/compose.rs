//! `deploy/docker-compose.yml`.

use std::collections::BTreeSet;

use reference_app::topology::Service;
use yaml_rust2::Yaml;

use crate::contract::ServeCli;
use crate::service::{Hosts, check_service, parse_url};
use crate::{Deploy, IMAGE, Problems, deploy_dir, yaml};

/// A service's dependencies in compose (`depends_on` as a list or a mapping).
fn depends_on(s: &Yaml) -> BTreeSet<String> {
    let Some(d) = yaml::get(s, &["depends_on"]) else {
        return BTreeSet::new();
    };
    yaml::strings(d)
        .unwrap_or_else(|| {
            d.as_hash()
                .into_iter()
                .flatten()
                .filter_map(|(k, _)| yaml::scalar(k))
                .collect()
        })
        .into_iter()
        .collect()
}

pub(crate) fn check_compose(d: &Deploy, cli: &ServeCli) -> Problems {
    const FILE: &str = "docker-compose.yml";
    let docs = match d.yaml(FILE) {
        Ok(docs) => docs,
        Err(e) => return vec![e],
    };
    let Some(doc) = docs.first() else {
        return vec![format!("{FILE} is empty")];
    };
    let mut p = Problems::new();
    let names = yaml::keys(doc, &["services"]);
    let mut hosts = Hosts::new();
    for name in &names {
        let ports = yaml::items(doc, &["services", name, "ports"])
            .iter()
            .filter_map(yaml::scalar)
            .filter_map(|m| m.rsplit(':').next()?.split('/').next()?.parse::<u16>().ok());
        hosts.entry(name.clone()).or_default().extend(ports);
    }
    for svc in Service::ALL {
        let at = format!("{FILE}: service {svc}");
        let Some(s) = yaml::get(doc, &["services", svc.name()]) else {
            p.push(format!("{at} is missing"));
            continue;
        };
        if yaml::text(s, &["image"]).as_deref() != Some(IMAGE) {
            p.push(format!("{at}: image is not {IMAGE}"));
        }
        let Some(args) = yaml::get(s, &["command"]).and_then(yaml::strings) else {
            p.push(format!("{at}: `command` is not a list of words"));
            continue;
        };
        let env = yaml::get(s, &["environment"])
            .and_then(yaml::string_map)
            .unwrap_or_default();
        p.extend(check_service(cli, svc, &args, &env, &hosts, &at));
        let port = svc.default_port();
        let ports: Vec<String> = yaml::items(s, &["ports"])
            .iter()
            .filter_map(yaml::scalar)
            .collect();
        if !ports.contains(&format!("{port}:{port}")) {
            p.push(format!(
                "{at}: port {port} is not published as the seed's ({ports:?})"
            ));
        }
        let health = yaml::get(s, &["healthcheck", "test"])
            .and_then(yaml::strings)
            .unwrap_or_default();
        if !health.contains(&format!("http://127.0.0.1:{port}/health")) {
            p.push(format!(
                "{at}: the health check {health:?} does not ask GET /health on {port}"
            ));
        }
        let deps = depends_on(s);
        for (var, value) in &env {
            if let Ok(u) = parse_url(value) {
                let infra = !Service::ALL.iter().any(|s| s.name() == u.host);
                if infra && !deps.contains(&u.host) {
                    p.push(format!(
                        "{at}: uses {} ({var}) but does not depend on it",
                        u.host
                    ));
                }
            }
        }
    }
    let builders: Vec<&str> = names
        .iter()
        .filter(|n| yaml::get(doc, &["services", n.as_str(), "build"]).is_some())
        .map(String::as_str)
        .collect();
    match builders.as_slice() {
        [one] => {
            let context =
                yaml::text(doc, &["services", one, "build", "context"]).unwrap_or_default();
            let dockerfile =
                yaml::text(doc, &["services", one, "build", "dockerfile"]).unwrap_or_default();
            let built = deploy_dir()
                .join(context)
                .join(dockerfile)
                .canonicalize()
                .ok();
            if built != deploy_dir().join("Dockerfile").canonicalize().ok() {
                p.push(format!("{FILE}: {one} does not build deploy/Dockerfile"));
            }
            if yaml::text(doc, &["services", one, "image"]).as_deref() != Some(IMAGE) {
                p.push(format!("{FILE}: {one} builds an image other than {IMAGE}"));
            }
        }
        other => p.push(format!(
            "{FILE}: {other:?} build the image; exactly one should"
        )),
    }
    for name in &names {
        for volume in yaml::items(doc, &["services", name, "volumes"])
            .iter()
            .filter_map(yaml::scalar)
        {
            let source = volume.split(':').next().unwrap_or_default();
            if let Some(rel) = source.strip_prefix("./") {
                if !d
                    .files
                    .keys()
                    .any(|f| f == rel || f.starts_with(&format!("{rel}/")))
                {
                    p.push(format!(
                        "{FILE}: {name} mounts {source}, which is not in deploy/"
                    ));
                }
            }
        }
    }
    p
}
