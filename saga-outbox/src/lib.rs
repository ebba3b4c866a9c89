//! saga-outbox
