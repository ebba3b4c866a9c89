//! One service's command line and variables, checked against `reference-app serve`.

use std::collections::{BTreeMap, BTreeSet};

use reference_app::topology::Service;

use crate::Problems;
use crate::contract::{ServeCli, upstream};

/// A URL's parts, as far as the checks need them.
#[derive(Debug)]
pub(crate) struct Url {
    pub(crate) scheme: String,
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) path: String,
}

pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` has no scheme"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user.to_owned()), hostport),
        None => (None, authority),
    };
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| format!("`{url}` names no port"))?;
    let port = port
        .parse()
        .map_err(|_| format!("`{url}` has a bad port"))?;
    Ok(Url {
        scheme: scheme.to_owned(),
        user,
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

/// The URL a service is reached at from its neighbours.
pub(crate) fn service_url(svc: Service) -> String {
    format!("http://{}:{}", svc.name(), svc.default_port())
}

/// Hosts reachable from the services, with the ports that answer there.
pub(crate) type Hosts = BTreeMap<String, BTreeSet<u16>>;

/// One service's command line and variables, as compose or Kubernetes give them.
pub(crate) fn check_service(
    cli: &ServeCli,
    svc: Service,
    args: &[String],
    env: &BTreeMap<String, String>,
    hosts: &Hosts,
    at: &str,
) -> Problems {
    let mut p = Problems::new();
    for name in env.keys().filter(|name| !cli.knows_env(name)) {
        p.push(format!(
            "{at}: `reference-app serve` reads no variable {name}"
        ));
    }
    let known: BTreeMap<_, _> = env
        .iter()
        .filter(|(name, _)| cli.knows_env(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if args.len() != 2 || args[0] != "serve" || args[1] != svc.name() {
        p.push(format!(
            "{at}: the command is {args:?}, not [\"serve\", \"{svc}\"]"
        ));
    }
    let parsed = match cli.parse(args, &known) {
        Ok(parsed) => parsed,
        Err(e) => {
            p.push(format!("{at}: {e}"));
            return p;
        }
    };
    if parsed.service != svc {
        p.push(format!("{at}: runs {}, not {svc}", parsed.service));
    }
    if parsed.port != Some(svc.default_port()) {
        p.push(format!(
            "{at}: listens on {:?}, not {}",
            parsed.port,
            svc.default_port()
        ));
    }
    if parsed.host != "0.0.0.0" {
        p.push(format!(
            "{at}: listens on {} (only 0.0.0.0 is reachable from other containers)",
            parsed.host
        ));
    }
    let reaches = |p: &mut Problems, what: &str, url: &str, schemes: &[&str]| match parse_url(url) {
        Err(e) => p.push(format!("{at}: {what}: {e}")),
        Ok(u) => {
            if !schemes.contains(&u.scheme.as_str()) {
                p.push(format!("{at}: {what} `{url}` is not {schemes:?}"));
            }
            if !hosts
                .get(&u.host)
                .is_some_and(|ports| ports.contains(&u.port))
            {
                p.push(format!(
                    "{at}: {what} `{url}`: nothing listens at {}:{}",
                    u.host, u.port
                ));
            }
        }
    };
    match (&parsed.database_url, svc.has_database()) {
        (Some(url), true) => reaches(&mut p, "DATABASE_URL", url, &["postgres", "postgresql"]),
        (None, true) => p.push(format!("{at}: no DATABASE_URL")),
        (Some(_), false) => p.push(format!(
            "{at}: {svc} keeps no database but gets DATABASE_URL"
        )),
        (None, false) => {}
    }
    match (&parsed.broker_url, svc) {
        (Some(url), _) => reaches(&mut p, "BROKER_URL", url, &["amqp", "amqps", "nats"]),
        (None, Service::Web) => {}
        (None, _) => p.push(format!("{at}: no BROKER_URL")),
    }
    match (&parsed.redis_url, svc) {
        (Some(url), Service::Analytics) => reaches(&mut p, "REDIS_URL", url, &["redis", "rediss"]),
        (None, Service::Analytics) => p.push(format!("{at}: analytics gets no REDIS_URL")),
        (Some(_), _) => p.push(format!("{at}: only analytics uses REDIS_URL")),
        (None, _) => {}
    }
    for other in Service::ALL.into_iter().filter(|s| *s != Service::Web) {
        let var = format!("{}_URL", other.name().to_uppercase());
        let got = upstream(&parsed, other).unwrap_or_default();
        if (svc == Service::Web || env.contains_key(&var)) && got != service_url(other) {
            p.push(format!(
                "{at}: {var} is `{got}`, not `{}`",
                service_url(other)
            ));
        }
    }
    p
}
