#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod broker;
pub mod clock;
pub mod cloudevents;
pub mod dead_letter;
pub mod envelope;
pub mod error;
pub mod event;
pub mod handler;
pub mod idempotency;
pub mod inbox;
pub mod memory;
pub mod outbox;
pub mod registry;
pub mod retry;
pub mod saga;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod topic;

pub mod guide {
    //! The concepts guide: envelope, saga, the six promises.
    #![doc = include_str!("../docs/concepts.md")]
}

pub use broker::{
    DeadLetterReplay, Delivery, DeliveryStream, Publisher, Settled, Subscriber, Subscription,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dead_letter::{DeadLetter, DeadLetterStore};
pub use envelope::Envelope;
pub use error::{Error, ErrorKind, Result};
pub use event::Event;
pub use handler::HandlerError;
pub use idempotency::IdempotencyStore;
pub use inbox::Inbox;
pub use outbox::OutboxStore;
pub use registry::EventRegistry;

pub use retry::{RetryDecision, RetryPolicy};
pub use topic::TopicPattern;
