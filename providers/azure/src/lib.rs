//! Keyward key provider for Azure Key Vault (vault keys, not Managed HSM).
//!
//! One Keyward key is one Key Vault key; Keyward's numbered versions are
//! Key Vault key versions tagged `keyward-version=N`. The owner, a
//! cluster's claim and the algorithm are tags on the versions too. RSA
//! keys seal (`wrapKey`/`unwrapKey` with `RSA-OAEP-256`, the public key
//! published for offline sealing); RSA-PSS (`PS256`) and P-256 (`ES256`)
//! keys sign. Key Vault has no symmetric keys (those are Managed HSM only)
//! and no Ed25519: both are refused at create.
//!
//! Per-version deletion is Keyward-enforced (the version is disabled and
//! tagged with its destruction time); whole-key deletion is Key Vault's
//! soft delete, cancelled by recovering the key. The provider never purges.
//!
//! Built on the official `azure_security_keyvault_keys` client; tests run
//! against the loopback Key Vault double (`providers/azure-double`).
#![forbid(unsafe_code)]

mod adopt;
mod claims;
mod config;
mod deletion;
mod errors;
mod identity;
pub mod naming;
mod provider;
mod signing;
mod spki;
mod user_tags;
mod versions;
mod wrapping;

pub use config::AzureKeyVaultConfig;
pub use errors::{At, classify};
pub use identity::{WORKLOAD_IDENTITY_ENV, workload_identity};
pub use provider::AzureKeyVaultProvider;
