//! What the binary accepts and exports: the `serve` command line (from clap) and the metrics
//! (from a rendered [`AppMetrics`]).

use std::collections::{BTreeMap, BTreeSet};

use clap::{CommandFactory, FromArgMatches};
use reference_app::cli::{Cli, ServeArgs};
use reference_app::metrics::AppMetrics;
use reference_app::topology::Service;

/// The `serve` subcommand: its long flags and environment variables, and a parser that reads
/// only what it is given (not this process's environment).
pub(crate) struct ServeCli {
    parser: clap::Command,
    env_to_long: BTreeMap<String, String>,
}

impl ServeCli {
    pub(crate) fn new() -> Self {
        let serve = Cli::command()
            .find_subcommand("serve")
            .expect("the CLI has a serve subcommand")
            .clone();
        let mut env_to_long = BTreeMap::new();
        for arg in serve.get_arguments() {
            if let (Some(env), Some(long)) = (arg.get_env(), arg.get_long()) {
                env_to_long.insert(env.to_str().unwrap().to_owned(), long.to_owned());
            }
        }
        assert!(
            env_to_long.contains_key("DATABASE_URL") && env_to_long.contains_key("ORDER_URL"),
            "the serve arguments were not found: {env_to_long:?}"
        );
        let parser = serve.mut_args(|arg| arg.env(None::<&'static str>));
        Self {
            parser,
            env_to_long,
        }
    }

    /// Whether `serve` reads the variable `env`.
    pub(crate) fn knows_env(&self, env: &str) -> bool {
        self.env_to_long.contains_key(env)
    }

    /// Parses `reference-app <args>` with the variables `env`, each passed as its flag.
    pub(crate) fn parse(
        &self,
        args: &[String],
        env: &BTreeMap<String, String>,
    ) -> Result<ServeArgs, String> {
        let Some((first, rest)) = args.split_first() else {
            return Err("no arguments".into());
        };
        if first != "serve" {
            return Err(format!("the command is `{first}`, not `serve`"));
        }
        let mut argv = vec!["serve".to_owned()];
        argv.extend(rest.iter().cloned());
        for (name, value) in env {
            let long = self
                .env_to_long
                .get(name)
                .ok_or_else(|| format!("`reference-app serve` reads no variable {name}"))?;
            argv.push(format!("--{long}"));
            argv.push(value.clone());
        }
        let matches = self
            .parser
            .clone()
            .try_get_matches_from(&argv)
            .map_err(|e| format!("{argv:?} does not parse: {e}"))?;
        ServeArgs::from_arg_matches(&matches).map_err(|e| e.to_string())
    }
}

/// The URL of `service` among the web front's upstreams (`None` for the web front).
pub(crate) fn upstream(args: &ServeArgs, service: Service) -> Option<&str> {
    let u = &args.upstreams;
    Some(match service {
        Service::Web => return None,
        Service::Order => &u.order_url,
        Service::Inventory => &u.inventory_url,
        Service::Payment => &u.payment_url,
        Service::Shipping => &u.shipping_url,
        Service::Notification => &u.notification_url,
        Service::Analytics => &u.analytics_url,
        Service::Ai => &u.ai_url,
    })
}

/// The exported series: each sample name (`..._total`, `..._bucket`, a gauge's name) with the
/// label names its samples carry, and each family's type.
pub(crate) struct Exported {
    pub(crate) sample_labels: BTreeMap<String, BTreeSet<String>>,
    pub(crate) family_types: BTreeMap<String, String>,
}

impl Exported {
    /// Renders the metrics of one service after one call of each recording method.
    pub(crate) fn new() -> Self {
        let m = AppMetrics::new(Service::Order);
        m.http_request("GET", "/orders/{id}", 200, 0.01);
        m.saga_started();
        m.saga_finished("completed", 1.0);
        m.event_consumed("sub", "order.placed", "acked");
        m.event_published(1);
        m.set_outbox_lag(0.1);
        m.set_dead_letters_pending(1);
        m.order_placed();
        m.payment("succeeded");
        let text = m.render();
        let mut sample_labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut family_types = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("a TYPE line has a type");
                family_types.insert(name.to_owned(), kind.to_owned());
            } else if !line.starts_with('#') && !line.is_empty() {
                let name_end = line.find(['{', ' ']).expect("a sample has a value");
                let labels = sample_labels
                    .entry(line[..name_end].to_owned())
                    .or_default();
                if line[name_end..].starts_with('{') {
                    labels.extend(label_names(&line[name_end + 1..]));
                }
            }
        }
        Self {
            sample_labels,
            family_types,
        }
    }
}

/// The label names of `a="x",b="y"} 1`.
fn label_names(s: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some((name, after)) = rest.split_once("=\"") {
        names.push(name.trim_start_matches(',').to_owned());
        let mut escaped = false;
        let end = after
            .char_indices()
            .find(|&(_, c)| {
                let closes = c == '"' && !escaped;
                escaped = c == '\\' && !escaped;
                closes
            })
            .map(|(i, _)| i)
            .expect("a label value is closed");
        rest = &after[end + 1..];
        if rest.starts_with('}') {
            break;
        }
    }
    names
}
