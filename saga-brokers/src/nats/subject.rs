//! AMQP-style patterns and names onto NATS subjects and consumer names.

use saga_core::{Error, Result, TopicPattern};

/// Whether `token` may be one token of a NATS subject we publish to.
fn plain_token(token: &str) -> bool {
    !token.is_empty()
        && token != "*"
        && token != ">"
        && !token.chars().any(|c| c.is_whitespace() || c == '\0')
}

/// `<prefix>.<event_type>`, or `InvalidArgument` if the event type is not a NATS subject.
pub(crate) fn subject(prefix: &str, event_type: &str) -> Result<String> {
    if !event_type.split('.').all(plain_token) {
        return Err(Error::InvalidArgument(format!(
            "event type `{event_type}` is not a valid NATS subject (empty word, whitespace, `*` or `>`)"
        )));
    }
    Ok(format!("{prefix}.{event_type}"))
}

/// The consumer's filter subject for `patterns`, and whether the adapter must also match
/// client side (the filter is wider than the patterns).
pub(crate) fn filter(prefix: &str, patterns: &[String]) -> Result<(String, bool)> {
    let mut parsed = Vec::with_capacity(patterns.len());
    for p in patterns {
        parsed.push(TopicPattern::parse(p)?);
        if p.split('.').any(|w| {
            w.chars()
                .any(|c| c.is_whitespace() || c == '>' || c == '\0')
        }) {
            return Err(Error::InvalidPattern {
                pattern: p.clone(),
                reason: "NATS subjects cannot hold whitespace or `>`".into(),
            });
        }
    }
    match patterns {
        [one] if one == "#" => Ok((format!("{prefix}.>"), false)),
        [one] if !one.split('.').any(|w| w == "#") => Ok((format!("{prefix}.{one}"), false)),
        _ => Ok((format!("{prefix}.>"), true)),
    }
}

/// A durable consumer name for a subscription name: `[A-Za-z0-9-]` kept, `_` doubled, any other
/// byte written `_hh` (hex), so distinct names stay distinct.
pub(crate) fn durable_name(subscription: &str) -> String {
    let mut out = String::with_capacity(subscription.len());
    for b in subscription.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => out.push(char::from(b)),
            b'_' => out.push_str("__"),
            other => out.push_str(&format!("_{other:02x}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_the_patterns() {
        let f = |p: &[&str]| filter("p", &p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(f(&["order.*"]).ok(), Some(("p.order.*".into(), false)));
        assert_eq!(f(&["#"]).ok(), Some(("p.>".into(), false)));
        assert_eq!(f(&["payment.#"]).ok(), Some(("p.>".into(), true)));
        assert_eq!(f(&["a", "b"]).ok(), Some(("p.>".into(), true)));
        assert!(matches!(f(&["a..b"]), Err(Error::InvalidPattern { .. })));
        assert!(matches!(f(&["a.>"]), Err(Error::InvalidPattern { .. })));
    }

    #[test]
    fn subjects_reject_wildcards() {
        assert_eq!(
            subject("p", "order.placed").ok(),
            Some("p.order.placed".into())
        );
        assert!(subject("p", "order.*").is_err());
        assert!(subject("p", "").is_err());
        assert!(subject("p", "a b").is_err());
    }

    #[test]
    fn durable_names_are_injective_and_valid() {
        assert_eq!(durable_name("billing-orders"), "billing-orders");
        assert_eq!(durable_name("a.b"), "a_2eb");
        assert_ne!(durable_name("a_2eb"), durable_name("a.b"));
        assert!(
            durable_name("x y.z*>")
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        );
    }
}
