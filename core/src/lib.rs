//! Keyward core: the envelope format, the key-provider interface, the embedded
//! `local` provider and the secret-memory types they share.
//!
//! Nothing here talks to Kubernetes; the operator, webhook and CLI build on it.
// `deny`, not `forbid`: `locked`, which calls `mlock`, is the one exception.
#![deny(unsafe_code)]

pub mod audit;
pub mod crypto;
pub mod envelope;
pub mod hardening;
pub mod local;
mod locked;
pub mod provider;
pub mod secret;

pub use envelope::{EnvelopeError, Scope, ScopeContext};
pub use provider::{KeyProvider, ProviderError};
pub use secret::{Dek, SecretBytes};
