//! Envelope format v2 (v1 still read): one sealed value, self-describing
//! and versioned. The byte layout is specified in `docs/envelope-format.md`;
//! test vectors live in `core/tests/vectors/envelope-v1.json` and
//! `envelope-v2.json`.

mod context;
mod error;
mod format;
pub mod rewrap;
mod secret;

pub use context::{Scope, ScopeContext, SecretTarget, describe_access};
pub use error::{EnvelopeError, ItemError};
pub use format::{Envelope, MAGIC, VERSION, VERSION_UNBOUND};
pub use secret::{PublicSealingKey, Wrapping, open_secret, seal_secret};
