//! The envelope every message travels in.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::event::Event;

/// The default [`Envelope::source`]: a relative URI reference, valid as a CloudEvents `source`.
pub const DEFAULT_SOURCE: &str = "saga-core";

/// A message with the metadata that makes it traceable, deduplicable and versioned.
///
/// * `event_id` is a UUID v7 (time-ordered); it is the message id on every broker and the
///   key of every consumer's inbox.
/// * `correlation_id` ties together everything one business transaction caused (the saga id);
///   `causation_id` names the message that caused this one. [`Envelope::caused_by`] sets both.
/// * `version` is the payload's schema version; see [`crate::registry`] for upcasting.
/// * `headers` carry context such as W3C `traceparent`.
///
/// ```
/// use saga_core::Envelope;
/// let placed = Envelope::new("order.placed", "order-1", serde_json::json!({"total": 5000}));
/// let reserve = Envelope::new("inventory.reserve.requested", "order-1", serde_json::json!({}))
///     .caused_by(&placed);
/// assert_eq!(reserve.correlation_id, placed.correlation_id);
/// assert_eq!(reserve.causation_id, Some(placed.event_id));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id of this message (UUID v7).
    pub event_id: Uuid,
    /// The type name, dotted lower case: `order.placed`.
    pub event_type: String,
    /// The entity this event is about; order per aggregate is kept by this key.
    pub aggregate_id: String,
    /// The id shared by every message of one business transaction.
    pub correlation_id: Uuid,
    /// The message that caused this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// When the event happened (RFC 3339 on the wire, nanoseconds kept).
    #[serde(with = "rfc3339")]
    pub timestamp: DateTime<Utc>,
    /// Schema version of `payload`.
    pub version: u32,
    /// Who produced it (a service name or URI reference).
    #[serde(default = "default_source")]
    pub source: String,
    /// Context headers (trace context, idempotency key, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The event's data.
    pub payload: serde_json::Value,
}

/// Timestamps as RFC 3339 text, written and read with chrono's RFC 3339 routines directly
/// (chrono's generic serde path is slower and accepts looser forms).
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer, de};

    pub(super) fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| de::Error::custom(format!("timestamp `{text}` is not RFC 3339: {e}")))
    }
}

fn default_source() -> String {
    DEFAULT_SOURCE.to_owned()
}

impl Envelope {
    /// A new envelope with a fresh UUID v7 id, the current time, version 1 and a new
    /// correlation id equal to its own id (the start of a conversation).
    pub fn new(
        event_type: impl Into<String>,
        aggregate_id: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        let event_id = Uuid::now_v7();
        Self {
            event_id,
            event_type: event_type.into(),
            aggregate_id: aggregate_id.into(),
            correlation_id: event_id,
            causation_id: None,
            timestamp: Utc::now(),
            version: 1,
            source: default_source(),
            headers: BTreeMap::new(),
            payload,
        }
    }

    /// An envelope holding a typed [`Event`], with its type name and schema version.
    pub fn from_event<E: Event>(aggregate_id: impl Into<String>, event: &E) -> Result<Self> {
        let payload = serde_json::to_value(event).map_err(|e| Error::PayloadMismatch {
            event_type: E::EVENT_TYPE.to_owned(),
            version: E::VERSION,
            reason: e.to_string(),
        })?;
        Ok(Self::new(E::EVENT_TYPE, aggregate_id, payload).with_version(E::VERSION))
    }

    /// Makes this envelope a consequence of `parent`: same correlation id, causation = parent's id.
    /// Trace headers (`traceparent`, `tracestate`) are carried over unless already set.
    #[must_use]
    pub fn caused_by(mut self, parent: &Envelope) -> Self {
        self.correlation_id = parent.correlation_id;
        self.causation_id = Some(parent.event_id);
        for key in ["traceparent", "tracestate"] {
            if let Some(v) = parent.headers.get(key) {
                self.headers
                    .entry(key.to_owned())
                    .or_insert_with(|| v.clone());
            }
        }
        self
    }

    /// Sets the id (for derived, deterministic ids such as saga commands).
    #[must_use]
    pub fn with_id(mut self, id: Uuid) -> Self {
        self.event_id = id;
        self
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = id;
        self
    }

    /// Sets the schema version.
    #[must_use]
    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Sets the timestamp.
    #[must_use]
    pub fn with_timestamp(mut self, at: DateTime<Utc>) -> Self {
        self.timestamp = at;
        self
    }

    /// Sets the source.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(key.into(), value.into());
        self
    }

    /// Encodes the envelope as JSON bytes (the wire format of every adapter).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::InvalidEnvelope {
            reason: e.to_string(),
        })
    }

    /// Decodes an envelope from JSON bytes; any malformed input is an
    /// [`Error::InvalidEnvelope`], never a panic.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::InvalidEnvelope {
            reason: e.to_string(),
        })
    }
}
