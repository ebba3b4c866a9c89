//! What the SQLite and Postgres stores share: statements, row codecs, error mapping, the
//! store type and the trait impls written once.

pub(crate) mod backend;
pub(crate) mod batch_backend;
pub(crate) mod codec;
pub(crate) mod error;
pub(crate) mod statements;
pub(crate) mod store;
