//! [CloudEvents 1.0](https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md)
//! JSON structured mode for [`Envelope`].
//!
//! | Envelope field   | CloudEvents attribute                                  |
//! |------------------|--------------------------------------------------------|
//! | `event_id`       | `id` (UUID string)                                     |
//! | `event_type`     | `type`                                                 |
//! | `source`         | `source`                                               |
//! | `aggregate_id`   | `subject` (left out when empty)                        |
//! | `timestamp`      | `time` (RFC 3339, UTC, nanoseconds kept)               |
//! | `payload`        | `data`, with `datacontenttype` `application/json`     |
//! | `correlation_id` | extension [`CORRELATION_ID`] (UUID string)             |
//! | `causation_id`   | extension [`CAUSATION_ID`] (left out when `None`)      |
//! | `version`        | extension [`EVENT_VERSION`] (integer)                  |
//! | `headers`        | one extension per header whose name is a valid extension name (`a-z0-9`, 1 to 20 characters) and not taken; all others JSON-encoded in [`SAGA_HEADERS`] |
//!
//! The round trip is exact: `from_cloudevent(&to_cloudevent(&e)) == e` for every envelope
//! with a non-empty `event_type` and `source` and a timestamp in the years 0000 to 9999
//! (what CloudEvents and RFC 3339 can express; [`to_cloudevent_json`] checks this).
//!
//! Reading a CloudEvent another system wrote:
//! * `specversion` must be `"1.0"`; `id` (a UUID), `source` and `type` must be non-empty
//!   strings.
//! * `time` is required: an envelope always has a timestamp, and inventing one ("now") would
//!   make redeliveries of one event differ. A missing `time` is an error.
//! * `data` must be JSON: `datacontenttype` absent, `application/json`, `text/json` or
//!   `application/*+json`. `data_base64` (binary data) is rejected.
//! * Without [`CORRELATION_ID`] the event starts a conversation: correlation id = its `id`.
//!   Without [`EVENT_VERSION`] it is version 1. Without `subject` the aggregate id is empty.
//!   Without `data` the payload is `null`.
//! * Every other attribute (extensions, `dataschema`) becomes a header; numbers and booleans
//!   are stringified, `null` means absent, objects and arrays are rejected.
//!
//! Every problem is an [`Error::InvalidEnvelope`] saying what is wrong; no input panics.
//!
//! ```
//! use saga_core::{Envelope, cloudevents};
//! let env = Envelope::new("order.placed", "order-1", serde_json::json!({"total_cents": 5000}))
//!     .with_source("/orders")
//!     .with_header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
//! let doc = cloudevents::to_cloudevent(&env);
//! assert_eq!(doc["specversion"], "1.0");
//! assert_eq!(doc["subject"], "order-1");
//! assert_eq!(doc["traceparent"], env.headers["traceparent"].as_str());
//! assert_eq!(cloudevents::from_cloudevent(&doc)?, env);
//! # Ok::<(), saga_core::Error>(())
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, SecondsFormat, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::envelope::Envelope;
use crate::error::{Error, Result};

/// The only CloudEvents version read and written.
pub const SPEC_VERSION: &str = "1.0";
/// The `datacontenttype` written: `data` is always JSON.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// Extension attribute holding [`Envelope::correlation_id`].
pub const CORRELATION_ID: &str = "correlationid";
/// Extension attribute holding [`Envelope::causation_id`].
pub const CAUSATION_ID: &str = "causationid";
/// Extension attribute holding [`Envelope::version`] (a JSON integer).
pub const EVENT_VERSION: &str = "eventversion";
/// Extension attribute holding, JSON-encoded as one string, the headers that cannot be
/// extension attributes of their own.
pub const SAGA_HEADERS: &str = "sagaheaders";

/// Attribute names with a meaning of their own: a header of one of these names travels in
/// [`SAGA_HEADERS`].
const RESERVED: [&str; 13] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
    "data",
    CORRELATION_ID,
    CAUSATION_ID,
    EVENT_VERSION,
    SAGA_HEADERS,
];

/// The binary-data member of the JSON format, which this mapping does not support.
const DATA_BASE64: &str = "data_base64";

/// The CloudEvents JSON document for `env`.
///
/// The result is a valid CloudEvent when `env.event_type` and `env.source` are non-empty and
/// the timestamp's year is in 0000..=9999; otherwise [`from_cloudevent`] rejects it
/// ([`to_cloudevent_json`] checks up front).
pub fn to_cloudevent(env: &Envelope) -> Value {
    let mut doc = Map::new();
    doc.insert("specversion".into(), SPEC_VERSION.into());
    doc.insert("id".into(), env.event_id.to_string().into());
    doc.insert("source".into(), env.source.clone().into());
    doc.insert("type".into(), env.event_type.clone().into());
    if !env.aggregate_id.is_empty() {
        doc.insert("subject".into(), env.aggregate_id.clone().into());
    }
    doc.insert("time".into(), format_time(env.timestamp).into());
    doc.insert("datacontenttype".into(), JSON_CONTENT_TYPE.into());
    doc.insert(CORRELATION_ID.into(), env.correlation_id.to_string().into());
    if let Some(causation) = env.causation_id {
        doc.insert(CAUSATION_ID.into(), causation.to_string().into());
    }
    doc.insert(EVENT_VERSION.into(), env.version.into());
    insert_headers(&mut doc, &env.headers);
    doc.insert("data".into(), env.payload.clone());
    Value::Object(doc)
}

/// The envelope a CloudEvents JSON document describes; see the [module docs](self) for what
/// is required and how foreign attributes are kept.
pub fn from_cloudevent(doc: &Value) -> Result<Envelope> {
    let attrs = doc
        .as_object()
        .ok_or_else(|| invalid("a CloudEvent must be a JSON object"))?;
    check_format(attrs)?;
    let event_id = required_uuid(attrs, "id")?;
    Ok(Envelope {
        event_id,
        event_type: required_str(attrs, "type")?.to_owned(),
        aggregate_id: optional_str(attrs, "subject")?
            .unwrap_or_default()
            .to_owned(),
        correlation_id: optional_uuid(attrs, CORRELATION_ID)?.unwrap_or(event_id),
        causation_id: optional_uuid(attrs, CAUSATION_ID)?,
        timestamp: parse_time(attrs)?,
        version: parse_version(attrs)?,
        source: required_str(attrs, "source")?.to_owned(),
        headers: parse_headers(attrs)?,
        payload: attr(attrs, "data").cloned().unwrap_or(Value::Null),
    })
}

/// `env` as CloudEvents JSON bytes, after checking that the document will be a valid
/// CloudEvent (non-empty type and source, a year RFC 3339 can write).
pub fn to_cloudevent_json(env: &Envelope) -> Result<Vec<u8>> {
    check_encodable(env)?;
    serde_json::to_vec(&to_cloudevent(env)).map_err(|e| invalid(e.to_string()))
}

/// The envelope in CloudEvents JSON bytes; malformed JSON is an [`Error::InvalidEnvelope`].
pub fn from_cloudevent_json(bytes: &[u8]) -> Result<Envelope> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a JSON document: {e}")))?;
    from_cloudevent(&doc)
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidEnvelope {
        reason: reason.into(),
    }
}

/// Lower-case ASCII letters and digits, 1 to 20 characters.
fn is_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether a header of this name can be an extension attribute of its own.
fn is_free_extension_name(name: &str) -> bool {
    is_extension_name(name) && !RESERVED.contains(&name)
}

// ---- encoding -------------------------------------------------------------------------

fn format_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn insert_headers(doc: &mut Map<String, Value>, headers: &BTreeMap<String, String>) {
    let mut packed = Map::new();
    for (name, value) in headers {
        let target = if is_free_extension_name(name) {
            &mut *doc
        } else {
            &mut packed
        };
        target.insert(name.clone(), value.clone().into());
    }
    if !packed.is_empty() {
        doc.insert(
            SAGA_HEADERS.into(),
            Value::Object(packed).to_string().into(),
        );
    }
}

fn check_encodable(env: &Envelope) -> Result<()> {
    if env.event_type.is_empty() {
        return Err(invalid(
            "event_type is empty; CloudEvents requires a `type`",
        ));
    }
    if env.source.is_empty() {
        return Err(invalid("source is empty; CloudEvents requires a `source`"));
    }
    if !(0..=9999).contains(&env.timestamp.year()) {
        return Err(invalid(format!(
            "timestamp {} is outside the years 0000..=9999 that RFC 3339 can write",
            env.timestamp
        )));
    }
    Ok(())
}

// ---- decoding -------------------------------------------------------------------------

/// The attribute's value; JSON `null` counts as absent.
fn attr<'a>(attrs: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    attrs.get(name).filter(|v| !v.is_null())
}

fn optional_str<'a>(attrs: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>> {
    match attr(attrs, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(invalid(format!(
            "attribute `{name}` must be a string, found {other}"
        ))),
    }
}

fn required_str<'a>(attrs: &'a Map<String, Value>, name: &str) -> Result<&'a str> {
    match optional_str(attrs, name)? {
        Some(s) if !s.is_empty() => Ok(s),
        Some(_) => Err(invalid(format!("attribute `{name}` is empty"))),
        None => Err(invalid(format!("required attribute `{name}` is missing"))),
    }
}

fn optional_uuid(attrs: &Map<String, Value>, name: &str) -> Result<Option<Uuid>> {
    optional_str(attrs, name)?
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|e| invalid(format!("attribute `{name}` is not a UUID ({s:?}): {e}")))
        })
        .transpose()
}

fn required_uuid(attrs: &Map<String, Value>, name: &str) -> Result<Uuid> {
    let s = required_str(attrs, name)?;
    Uuid::parse_str(s)
        .map_err(|e| invalid(format!("attribute `{name}` is not a UUID ({s:?}): {e}")))
}

/// `specversion`, the data's content type and the absence of `data_base64`.
fn check_format(attrs: &Map<String, Value>) -> Result<()> {
    match attr(attrs, "specversion") {
        Some(Value::String(v)) if v == SPEC_VERSION => {}
        Some(other) => {
            return Err(invalid(format!(
                "specversion must be \"{SPEC_VERSION}\", found {other}"
            )));
        }
        None => return Err(invalid("required attribute `specversion` is missing")),
    }
    if attrs.contains_key(DATA_BASE64) {
        return Err(invalid(
            "`data_base64` (binary data) is not supported; only JSON `data` is",
        ));
    }
    match optional_str(attrs, "datacontenttype")? {
        Some(media) if !is_json_media_type(media) => Err(invalid(format!(
            "datacontenttype {media:?} is not JSON; only JSON data is supported"
        ))),
        _ => Ok(()),
    }
}

/// `application/json`, `text/json` or `application/*+json`, parameters ignored.
fn is_json_media_type(media: &str) -> bool {
    let essence = media.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence == "text/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn parse_time(attrs: &Map<String, Value>) -> Result<DateTime<Utc>> {
    let text = optional_str(attrs, "time")?.ok_or_else(|| {
        invalid("required attribute `time` is missing (an envelope needs a timestamp)")
    })?;
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| invalid(format!("attribute `time` is not RFC 3339 ({text:?}): {e}")))
}

/// [`EVENT_VERSION`] as a JSON integer (or a string of digits); 1 when absent.
fn parse_version(attrs: &Map<String, Value>) -> Result<u32> {
    let parsed = match attr(attrs, EVENT_VERSION) {
        None => return Ok(1),
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Some(Value::String(s)) => s.parse::<u32>().ok(),
        Some(_) => None,
    };
    parsed.ok_or_else(|| {
        invalid(format!(
            "attribute `{EVENT_VERSION}` must be an integer in 0..={}",
            u32::MAX
        ))
    })
}

/// Every non-reserved attribute, then the entries of [`SAGA_HEADERS`].
fn parse_headers(attrs: &Map<String, Value>) -> Result<BTreeMap<String, String>> {
    let mut headers = BTreeMap::new();
    for (name, value) in attrs {
        if RESERVED.contains(&name.as_str()) && name != "dataschema" {
            continue;
        }
        if !is_extension_name(name) {
            return Err(invalid(format!(
                "attribute name {name:?} is not a CloudEvents attribute name (a-z, 0-9, at most 20)"
            )));
        }
        if let Some(text) = scalar_to_string(name, value)? {
            headers.insert(name.clone(), text);
        }
    }
    merge_packed_headers(attrs, &mut headers)?;
    Ok(headers)
}

/// A scalar attribute value as header text; `None` for `null`.
fn scalar_to_string(name: &str, value: &Value) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Array(_) | Value::Object(_) => Err(invalid(format!(
            "extension attribute `{name}` must be a string, number or boolean"
        ))),
    }
}

fn merge_packed_headers(
    attrs: &Map<String, Value>,
    headers: &mut BTreeMap<String, String>,
) -> Result<()> {
    let Some(packed) = optional_str(attrs, SAGA_HEADERS)? else {
        return Ok(());
    };
    let packed: BTreeMap<String, String> = serde_json::from_str(packed).map_err(|e| {
        invalid(format!(
            "`{SAGA_HEADERS}` must be a JSON-encoded object of strings: {e}"
        ))
    })?;
    for (name, value) in packed {
        if headers.contains_key(&name) {
            return Err(invalid(format!(
                "header {name:?} appears both as an attribute and in `{SAGA_HEADERS}`"
            )));
        }
        headers.insert(name, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
