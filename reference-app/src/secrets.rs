//! Keeping secrets out of logs and error messages: the password of a database or broker URL
//! is replaced by `***` wherever the app names the URL ([`redact_url`]), and any error text
//! that came from a driver given the URL is scrubbed of it ([`scrub`]).
//!
//! Problem documents never carry these texts at all (`impl From<AppError> for Problem` answers
//! a fixed detail; the error goes to the log, redacted).

/// `url` with the password of its user part replaced by `***`
/// (`postgres://app:***@db:5432/shop`); a URL without one is returned as it is.
pub fn redact_url(url: &str) -> String {
    match password_span(url) {
        Some((start, end)) => format!("{}***{}", &url[..start], &url[end..]),
        None => url.to_owned(),
    }
}

/// `text` with every occurrence of `url` replaced by its redacted form and of its password
/// (as written, and percent-decoded) by `***`.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Some((start, end)) = password_span(url) {
        let raw = &url[start..end];
        let decoded = percent_decode(raw);
        for secret in [raw, decoded.as_str()] {
            if !secret.is_empty() {
                out = out.replace(secret, "***");
            }
        }
    }
    out
}

/// The byte range of the password in `scheme://user:password@host...`, if there is one.
fn password_span(url: &str) -> Option<(usize, usize)> {
    let authority_start = url.find("://")? + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // The user part ends at the last `@` of the authority (a password may hold an `@`).
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    (colon + 1 < at).then_some((authority_start + colon + 1, authority_start + at))
}

/// `%xx` sequences decoded (invalid ones kept as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_and_the_rest_kept() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/shop?sslmode=disable"),
            "postgres://app:***@db:5432/shop?sslmode=disable"
        );
        assert_eq!(
            redact_url("amqp://guest:p@ss@rabbit:5672/%2f"),
            "amqp://guest:***@rabbit:5672/%2f"
        );
        for plain in [
            "postgres://app@db/shop",
            "nats://127.0.0.1:4222",
            "postgres://db/shop?user=a:b@c",
            "not a url",
            "postgres://app:@db/shop",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
    }

    #[test]
    fn scrubbing_removes_the_password_in_every_form() {
        let url = "postgres://app:p%40ss%21@db/shop";
        let text = format!("failed: {url}; password p%40ss! or p@ss! rejected");
        let out = scrub(&text, url);
        assert!(
            !out.contains("p%40ss%21") && !out.contains("p@ss!"),
            "{out}"
        );
        assert!(out.contains("postgres://app:***@db/shop"), "{out}");
    }
}
