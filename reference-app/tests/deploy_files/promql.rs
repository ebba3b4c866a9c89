//! The metric and label names a PromQL expression (or a Grafana `label_values(...)` query)
//! refers to: a small lexer, enough for dashboards and alert rules.

use std::collections::BTreeSet;

/// Names referred to by an expression.
#[derive(Debug, Default)]
pub(crate) struct Refs {
    pub(crate) metrics: BTreeSet<String>,
    pub(crate) labels: BTreeSet<String>,
}

const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const GROUPINGS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const KEYWORDS: &[&str] = &["bool", "and", "or", "unless", "offset", "atan2"];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The names `expr` refers to.
pub(crate) fn refs(expr: &str) -> Result<Refs, String> {
    let mut out = Refs::default();
    scan(expr, &mut out)?;
    Ok(out)
}

fn scan(expr: &str, out: &mut Refs) -> Result<(), String> {
    let s: Vec<char> = expr.chars().collect();
    let next_non_ws = |mut j: usize| {
        while j < s.len() && s[j].is_whitespace() {
            j += 1;
        }
        (j, s.get(j).copied())
    };
    let mut in_braces = false;
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        if c.is_whitespace() || "(),+-*/%^=!~<>".contains(c) {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&s, i).ok_or_else(|| format!("unclosed string in `{expr}`"))?;
        } else if c == '[' {
            i = skip_to(&s, i, ']').ok_or_else(|| format!("unclosed `[` in `{expr}`"))?;
        } else if c == '{' {
            in_braces = true;
            i += 1;
        } else if c == '}' {
            in_braces = false;
            i += 1;
        } else if c == '$' {
            // A Grafana variable: `$service`, `${service}`, `$__rate_interval`.
            i += 1;
            if s.get(i) == Some(&'{') {
                i = skip_to(&s, i, '}').ok_or_else(|| format!("unclosed `${{` in `{expr}`"))?;
            } else {
                while i < s.len() && ident_char(s[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let start = i;
            while i < s.len() && ident_char(s[i]) {
                i += 1;
            }
            let ident: String = s[start..i].iter().collect();
            let (j, next) = next_non_ws(i);
            if in_braces {
                out.labels.insert(ident);
            } else if GROUPINGS.contains(&ident.as_str()) {
                if next == Some('(') {
                    let end =
                        skip_to(&s, j, ')').ok_or_else(|| format!("unclosed `(` in `{expr}`"))?;
                    let list: String = s[j + 1..end - 1].iter().collect();
                    for label in list.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                        out.labels.insert(label.to_owned());
                    }
                    i = end;
                }
            } else if ident == "label_values" && next == Some('(') {
                // Grafana: label_values(<selector>, <label>) or label_values(<label>).
                let end = skip_to(&s, j, ')').ok_or_else(|| format!("unclosed `(` in `{expr}`"))?;
                let args: String = s[j + 1..end - 1].iter().collect();
                let (selector, label) = args.rsplit_once(',').unwrap_or(("", &args));
                scan(selector, out)?;
                out.labels.insert(label.trim().to_owned());
                i = end;
            } else if KEYWORDS.contains(&ident.as_str())
                || AGGREGATIONS.contains(&ident.as_str())
                || next == Some('(')
            {
                // An operator, an aggregation or a function call.
            } else {
                out.metrics.insert(ident);
            }
        } else {
            return Err(format!("unexpected `{c}` in `{expr}`"));
        }
    }
    Ok(())
}

/// The index after the string starting at `i`.
fn skip_string(s: &[char], i: usize) -> Option<usize> {
    let quote = s[i];
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            '\\' if quote != '`' => j += 2,
            c if c == quote => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// The index after the first `close` after `i` at the same nesting depth.
fn skip_to(s: &[char], i: usize, close: char) -> Option<usize> {
    let open = s[i];
    let mut depth = 0;
    let mut j = i;
    while j < s.len() {
        let c = s[j];
        if c == '"' || c == '\'' || c == '`' {
            j = skip_string(s, j)?;
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return Some(j + 1);
            }
        }
        j += 1;
    }
    None
}

#[test]
fn the_lexer_tells_metrics_from_functions_labels_and_variables() {
    let r = refs(
        r#"histogram_quantile(0.95, sum by (le, route) (rate(a_bucket{service=~"$service", x!="}"}[$__rate_interval]))) / on(job) group_left b_total offset 5m > bool 1e3"#,
    )
    .unwrap();
    assert_eq!(r.metrics, ["a_bucket", "b_total"].map(String::from).into());
    assert_eq!(
        r.labels,
        ["job", "le", "route", "service", "x"]
            .map(String::from)
            .into()
    );
    let r = refs("label_values(m_total{a=\"1\"}, service)").unwrap();
    assert_eq!(r.metrics, ["m_total"].map(String::from).into());
    assert_eq!(r.labels, ["a", "service"].map(String::from).into());
    let r = refs("sum(x) by (outcome) * 60").unwrap();
    assert_eq!(r.metrics, ["x"].map(String::from).into());
    assert!(refs("sum(rate(x[5m").is_err());
    assert!(refs("x{a=\"1}").is_err());
}
