//! Keyward key provider for AWS KMS.
//!
//! One Keyward key is a set of KMS keys, one per version ("managed"
//! rotation), tied together by aliases and tags (see [`naming`]). Wrapping
//! is KMS `Encrypt` with the wrap context as `EncryptionContext`; unwrapping
//! is `Decrypt` pinned to the version's KMS key; re-wrapping is `ReEncrypt`,
//! so the DEK never leaves KMS. Native KMS rotation is available too, as
//! provider-specific methods ([`rotation`]).
#![forbid(unsafe_code)]

mod adopt;
mod claims;
mod config;
mod errors;
mod keys;
pub mod naming;
mod provider;
pub mod rotation;
mod signing;
mod user_tags;

pub use config::{AwsKmsConfig, CredentialSource, RetrySettings, StaticCredentials, Timeouts};
pub use errors::{At, classify};
pub use provider::AwsKmsProvider;
pub use rotation::NativeRotation;
