//! Keyward key provider for Google Cloud KMS.
//!
//! One Keyward key is one CryptoKey in a configured key ring, labelled
//! with its owner's uid (`keyward-owner`) so a retried create finds it
//! again; Keyward versions are CryptoKeyVersions. Symmetric keys wrap with
//! `Encrypt`/`Decrypt` and the wrap context as additional authenticated
//! data; RSA-OAEP keys (`ASYMMETRIC_DECRYPT`) publish their public key for
//! offline sealing and unwrap with `AsymmetricDecrypt`; signing keys
//! (`ASYMMETRIC_SIGN`: RSA-PSS, ECDSA P-256, Ed25519) sign with
//! `AsymmetricSign` and publish each version's public key. Native automatic
//! rotation is a provider-specific method ([`rotation`]).
//!
//! Built on the official `google-cloud-kms-v1` client (REST/JSON over
//! HTTPS). The tests run against a test double of the Cloud KMS REST API
//! (`providers/gcp-double`), not against Google's service.
#![forbid(unsafe_code)]

mod adopt;
mod claims;
mod config;
mod errors;
mod keys;
pub mod naming;
mod provider;
mod retry;
pub mod rotation;
mod signing;
mod user_labels;

pub use config::{CredentialSource, GcpKmsConfig, ProtectionLevel, RetrySettings, Timeouts};
pub use errors::{At, classify};
pub use provider::GcpKmsProvider;
pub use rotation::NativeRotation;
