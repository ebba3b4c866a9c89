//! Typed events: a serde type with a type name and a schema version.

use serde::{Serialize, de::DeserializeOwned};

/// A typed event or command payload.
///
/// ```
/// use saga_core::Event;
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct OrderPlaced { order_id: String, total_cents: i64 }
/// impl Event for OrderPlaced {
///     const EVENT_TYPE: &'static str = "order.placed";
///     const VERSION: u32 = 2;
/// }
/// let env = saga_core::Envelope::from_event("o-1", &OrderPlaced { order_id: "o-1".into(), total_cents: 5 }).unwrap();
/// assert_eq!((env.event_type.as_str(), env.version), ("order.placed", 2));
/// ```
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The type name carried in [`crate::Envelope::event_type`].
    const EVENT_TYPE: &'static str;
    /// The current schema version of this type.
    const VERSION: u32;
}
