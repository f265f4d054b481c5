//! Which key providers a Keyward binary talks to.
//!
//! The operator and the webhook flatten [`ProviderArgs`] into their flags
//! (`--aws-region`, `--pkcs11-module`, `--gcp-key-ring`,
//! `--azure-vault-url`, ...), turn them
//! into the providers' own config types ([`ProviderArgs::plan`]), connect
//! ([`Providers::connect`]) and add the local provider they open from the
//! cluster. [`Providers`] is then both a lookup by ManagedKey spec (for
//! creating keys, and for a clear "not configured" message) and a
//! `KeyProvider` that routes every call on an existing key by its key id.
#![forbid(unsafe_code)]

mod args;
mod error;
mod providers;
mod route;

pub use args::{AzureSettings, Plan, ProviderArgs};
pub use error::{FlagError, NotServed, SetupError};
pub use providers::Providers;
pub use route::{Kind, kind_of_key_id};
