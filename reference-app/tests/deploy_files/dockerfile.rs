//! `deploy/Dockerfile`, read instruction by instruction.

use std::collections::BTreeSet;
use std::path::Path;

use reference_app::topology::Service;

use crate::contract::ServeCli;
use crate::{Deploy, Problems, yaml};

/// The Dockerfile's instructions (continuations joined, comments dropped), as (keyword, rest).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                let joined = std::mem::take(&mut current);
                if let Some((kw, rest)) = joined.trim().split_once(char::is_whitespace) {
                    out.push((
                        kw.to_uppercase(),
                        rest.split_whitespace().collect::<Vec<_>>().join(" "),
                    ));
                }
            }
        }
    }
    out
}

pub(crate) fn check_dockerfile(d: &Deploy, cli: &ServeCli) -> Problems {
    const FILE: &str = "Dockerfile";
    let mut p = Problems::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_reference-app"))
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    let all = instructions(d.text(FILE));
    let stages: Vec<&[(String, String)]> = {
        let starts: Vec<usize> = all
            .iter()
            .enumerate()
            .filter(|(_, (kw, _))| kw == "FROM")
            .map(|(i, _)| i)
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(n, &s)| &all[s..starts.get(n + 1).copied().unwrap_or(all.len())])
            .collect()
    };
    let [builder, runtime] = stages.as_slice() else {
        return vec![format!(
            "{FILE}: {} stages, wanted a builder and a runtime",
            stages.len()
        )];
    };
    if !builder[0]
        .1
        .eq_ignore_ascii_case("rust:1-bookworm AS builder")
    {
        p.push(format!("{FILE}: the builder is `FROM {}`", builder[0].1));
    }
    let build = format!(
        "cargo build --release -p {} --locked",
        env!("CARGO_PKG_NAME")
    );
    if !builder
        .iter()
        .any(|(kw, rest)| kw == "RUN" && rest.contains(&build))
    {
        p.push(format!("{FILE}: the builder does not `{build}`"));
    }
    if runtime[0].1 != "debian:bookworm-slim" {
        p.push(format!("{FILE}: the runtime is `FROM {}`", runtime[0].1));
    }
    let installed = format!("/usr/local/bin/{bin}");
    if !runtime.iter().any(|(kw, rest)| {
        kw == "COPY" && rest.starts_with("--from=builder") && rest.ends_with(&installed)
    }) {
        p.push(format!(
            "{FILE}: the runtime does not copy the builder's binary to {installed}"
        ));
    }
    match runtime.iter().rev().find(|(kw, _)| kw == "USER") {
        Some((_, user)) if !["root", "0"].contains(&user.split(':').next().unwrap_or_default()) => {
        }
        other => p.push(format!(
            "{FILE}: the runtime runs as {other:?}, not as a non-root user"
        )),
    }
    let entrypoint = runtime
        .iter()
        .rev()
        .find(|(kw, _)| kw == "ENTRYPOINT")
        .map(|(_, rest)| rest.as_str());
    let entry: Option<Vec<String>> = entrypoint.and_then(|e| serde_json::from_str(e).ok());
    if entry != Some(vec![bin.clone()]) {
        p.push(format!(
            "{FILE}: ENTRYPOINT is {entrypoint:?}, not [\"{bin}\"]"
        ));
    }
    let mut exposed = BTreeSet::new();
    for (_, rest) in runtime.iter().filter(|(kw, _)| kw == "EXPOSE") {
        for item in rest.split_whitespace() {
            let item = item.split('/').next().unwrap_or_default();
            let (lo, hi) = item.split_once('-').unwrap_or((item, item));
            if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
                exposed.extend(lo..=hi);
            }
        }
    }
    for svc in Service::ALL
        .iter()
        .filter(|s| !exposed.contains(&s.default_port()))
    {
        p.push(format!(
            "{FILE}: port {} of {svc} is not exposed",
            svc.default_port()
        ));
    }
    let mut host = None;
    for (_, rest) in runtime.iter().filter(|(kw, _)| kw == "ENV") {
        let (name, value) = rest.split_once(['=', ' ']).unwrap_or((rest, ""));
        if !cli.knows_env(name) {
            p.push(format!(
                "{FILE}: ENV {name} is no variable of `reference-app serve`"
            ));
        }
        if name == "HOST" {
            host = Some(value.to_owned());
        }
    }
    if host.as_deref() != Some("0.0.0.0") {
        p.push(format!(
            "{FILE}: HOST is {host:?}; the services must listen on 0.0.0.0"
        ));
    }
    let compose = d.yaml("docker-compose.yml").unwrap_or_default();
    for svc in Service::ALL {
        let test = compose
            .first()
            .and_then(|c| yaml::get(c, &["services", svc.name(), "healthcheck", "test"]))
            .and_then(yaml::strings)
            .unwrap_or_default();
        if let Some(tool) = test.get(1).filter(|_| test[0] == "CMD") {
            let installs = runtime.iter().any(|(kw, rest)| {
                kw == "RUN"
                    && rest.contains("apt-get install")
                    && rest.split_whitespace().any(|w| w == tool)
            });
            if !installs {
                p.push(format!(
                    "{FILE}: the runtime does not install {tool}, which {svc}'s health check runs"
                ));
            }
        }
    }
    p
}
