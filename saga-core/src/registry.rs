//! The event registry: which event types a process knows, at which version, and the
//! upcasters that bring old payloads up to date.
//!
//! Every [`Envelope`] carries its payload's schema `version`. When a type's schema changes,
//! its version goes up by one and an *upcaster* (a function from the old JSON payload to
//! the new one) is registered for the step. [`EventRegistry::upcast`] applies the chain
//! `v1 -> v2 -> ... -> current` in order; [`EventRegistry::decode`] then deserializes the
//! typed [`Event`]. Messages written years ago keep reading.
//!
//! What can go wrong, each a typed [`Error`] that dead-letters the message with its reason:
//!
//! | Case                                              | Error                          |
//! |---------------------------------------------------|--------------------------------|
//! | type not registered                               | [`Error::UnknownEventType`]    |
//! | version newer than the current one                | [`Error::UnsupportedVersion`]  |
//! | no upcaster for one step of the chain             | [`Error::MissingUpcaster`]     |
//! | version 0 (versions start at 1)                   | [`Error::InvalidEnvelope`]     |
//! | an upcaster returns `Err` or panics, the payload does not deserialize, or `decode::<E>` is called on another type | [`Error::PayloadMismatch`] |
//!
//! ```
//! use saga_core::{Envelope, Event, registry::EventRegistry};
//! use serde::{Deserialize, Serialize};
//! use serde_json::{Value, json};
//!
//! /// Version 3: v2 renamed `amount` to `total_cents`, v3 added `currency`.
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct OrderPlaced { order_id: String, total_cents: i64, currency: String }
//! impl Event for OrderPlaced {
//!     const EVENT_TYPE: &'static str = "order.placed";
//!     const VERSION: u32 = 3;
//! }
//!
//! fn rename_amount(mut v: Value) -> Result<Value, String> {
//!     let obj = v.as_object_mut().ok_or("payload is not an object")?;
//!     let amount = obj.remove("amount").ok_or("`amount` is missing")?;
//!     obj.insert("total_cents".into(), amount);
//!     Ok(v)
//! }
//!
//! fn add_currency(mut v: Value) -> Result<Value, String> {
//!     let obj = v.as_object_mut().ok_or("payload is not an object")?;
//!     obj.entry("currency").or_insert_with(|| json!("EUR"));
//!     Ok(v)
//! }
//!
//! let mut registry = EventRegistry::new();
//! registry
//!     .register::<OrderPlaced>()
//!     .register_upcaster("order.placed", 1, rename_amount)
//!     .register_upcaster("order.placed", 2, add_currency);
//!
//! // A message written by the first release of the order service:
//! let v1 = Envelope::new("order.placed", "o-1", json!({"order_id": "o-1", "amount": 5000}));
//! let order: OrderPlaced = registry.decode(&v1)?;
//! assert_eq!(order, OrderPlaced { order_id: "o-1".into(), total_cents: 5000, currency: "EUR".into() });
//!
//! let upcast = registry.upcast(v1)?;
//! assert_eq!(upcast.version, 3);
//! # Ok::<(), saga_core::Error>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::event::Event;

/// A function that turns a payload of version `n` into one of version `n + 1`; `Err` says
/// why the payload cannot be converted.
type Upcaster = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync + 'static>;

/// What the registry knows about one event type.
#[derive(Clone, Default)]
struct TypeEntry {
    /// The current version; `None` while only upcasters were registered.
    current: Option<u32>,
    /// Upcasters keyed by the version they start from.
    upcasters: BTreeMap<u32, Upcaster>,
}

/// Known event types, their current versions and the upcasters between versions.
///
/// Build it once at start-up, then share it (`Arc<EventRegistry>`; it is `Send + Sync`
/// and cheap to clone). Registration order does not matter: an upcaster may be registered
/// before its type.
#[derive(Clone, Default)]
pub struct EventRegistry {
    types: BTreeMap<String, TypeEntry>,
}

impl fmt::Debug for EventRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, entry) in &self.types {
            let upcasters: Vec<_> = entry.upcasters.keys().collect();
            map.entry(name, &(entry.current, upcasters));
        }
        map.finish()
    }
}

impl EventRegistry {
    /// An empty registry: every type is unknown.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `E` at its current version `E::VERSION`.
    pub fn register<E: Event>(&mut self) -> &mut Self {
        self.register_type(E::EVENT_TYPE, E::VERSION)
    }

    /// Registers a type by name at `current_version`, for events handled as raw JSON with
    /// no Rust type. Registering a type again replaces its current version (its upcasters
    /// stay). Versions start at 1: a type registered at 0 accepts no envelope.
    pub fn register_type(&mut self, event_type: &str, current_version: u32) -> &mut Self {
        self.entry(event_type).current = Some(current_version);
        self
    }

    /// Registers the upcaster of `event_type` from `from_version` to `from_version + 1`,
    /// replacing any earlier one for that step. `f` returns `Err(reason)` for a payload it
    /// cannot convert; decoding then fails with [`Error::PayloadMismatch`].
    pub fn register_upcaster(
        &mut self,
        event_type: &str,
        from_version: u32,
        f: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> &mut Self {
        self.entry(event_type)
            .upcasters
            .insert(from_version, Arc::new(f));
        self
    }

    /// Whether `event_type` is registered (upcasters alone do not count).
    pub fn knows(&self, event_type: &str) -> bool {
        self.current_version(event_type).is_some()
    }

    /// The current version of `event_type`, if it is registered.
    pub fn current_version(&self, event_type: &str) -> Option<u32> {
        self.types.get(event_type).and_then(|entry| entry.current)
    }

    /// The registered event types, in name order.
    pub fn event_types(&self) -> impl Iterator<Item = &str> + '_ {
        self.types
            .iter()
            .filter(|(_, entry)| entry.current.is_some())
            .map(|(name, _)| name.as_str())
    }

    /// `envelope` at the current version of its type, its payload passed through each
    /// upcaster from its version on, in order. An envelope already current is returned as is.
    ///
    /// Errors: [`Error::UnknownEventType`], [`Error::InvalidEnvelope`] for version 0,
    /// [`Error::UnsupportedVersion`], [`Error::MissingUpcaster`] (checked before any upcaster
    /// runs), [`Error::PayloadMismatch`] when an upcaster fails.
    pub fn upcast(&self, mut envelope: Envelope) -> Result<Envelope> {
        let payload = std::mem::take(&mut envelope.payload);
        let (version, payload) =
            self.upcast_payload(&envelope.event_type, envelope.version, payload)?;
        envelope.version = version;
        envelope.payload = payload;
        Ok(envelope)
    }

    /// The typed event in `envelope`: checks that it holds an `E`, upcasts it and
    /// deserializes the payload.
    ///
    /// Errors: those of [`EventRegistry::upcast`], and [`Error::PayloadMismatch`] when the
    /// envelope's type is not `E::EVENT_TYPE`, when the registry's current version of the
    /// type is not `E::VERSION`, or when the payload does not deserialize into `E`.
    pub fn decode<E: Event>(&self, envelope: &Envelope) -> Result<E> {
        let event_type = envelope.event_type.as_str();
        if event_type != E::EVENT_TYPE {
            return Err(mismatch(
                event_type,
                envelope.version,
                format!(
                    "decoding `{}` but the envelope holds `{event_type}`",
                    E::EVENT_TYPE
                ),
            ));
        }
        let (version, payload) =
            self.upcast_payload(event_type, envelope.version, envelope.payload.clone())?;
        if version != E::VERSION {
            return Err(mismatch(
                event_type,
                version,
                format!(
                    "the registry's current version is {version} but the Rust type is version {}",
                    E::VERSION
                ),
            ));
        }
        serde_json::from_value(payload).map_err(|e| mismatch(event_type, version, e.to_string()))
    }

    fn entry(&mut self, event_type: &str) -> &mut TypeEntry {
        self.types.entry(event_type.to_owned()).or_default()
    }

    /// The payload brought from `version` to the current version of `event_type`.
    fn upcast_payload(
        &self,
        event_type: &str,
        version: u32,
        payload: Value,
    ) -> Result<(u32, Value)> {
        let (entry, current) = self
            .types
            .get(event_type)
            .and_then(|entry| Some((entry, entry.current?)))
            .ok_or_else(|| Error::UnknownEventType {
                event_type: event_type.to_owned(),
            })?;
        let payload = chain(entry, event_type, version, current)?
            .into_iter()
            .try_fold(payload, |payload, (from, upcaster)| {
                // An upcaster is user code and may panic on a payload it did not expect (indexing
                // a JSON number as an object, say); that is a payload that does not fit, never a
                // crashed consumer.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| upcaster(payload)))
                        .unwrap_or_else(|panic| {
                            Err(format!("it panicked: {}", panic_message(&panic)))
                        });
                outcome.map_err(|reason| {
                    let reason = format!("upcaster {from} -> {} failed: {reason}", from + 1);
                    mismatch(event_type, from, reason)
                })
            })?;
        Ok((current, payload))
    }
}

/// The text of a caught panic, when it has one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// The upcasters leading from `version` to `current`, in order; checks the version first.
fn chain<'a>(
    entry: &'a TypeEntry,
    event_type: &str,
    version: u32,
    current: u32,
) -> Result<Vec<(u32, &'a Upcaster)>> {
    if version == 0 {
        return Err(Error::InvalidEnvelope {
            reason: format!("event `{event_type}` has version 0; versions start at 1"),
        });
    }
    if version > current {
        return Err(Error::UnsupportedVersion {
            event_type: event_type.to_owned(),
            version,
            latest: current,
        });
    }
    (version..current)
        .map(|from| {
            entry
                .upcasters
                .get(&from)
                .map(|upcaster| (from, upcaster))
                .ok_or_else(|| Error::MissingUpcaster {
                    event_type: event_type.to_owned(),
                    from,
                })
        })
        .collect()
}

fn mismatch(event_type: &str, version: u32, reason: String) -> Error {
    Error::PayloadMismatch {
        event_type: event_type.to_owned(),
        version,
        reason,
    }
}

#[cfg(test)]
mod tests;
