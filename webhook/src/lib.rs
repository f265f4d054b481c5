//! Keyward webhook: mutates opted-in pods, validates ManagedKeys and
//! SealedSecrets at admission, and serves the unseal API to injectors.
//! The same binary is the injector (`keyward-webhook inject`).
//!
//! Where things are decided: `mutate` (what an opted-in pod gets),
//! `validate` (what admission refuses), `unseal::authorise` (who may read
//! which secret), `key_state` (what a key's lifecycle state allows), `tls`
//! (certificates), `inject` (the init container).
#![forbid(unsafe_code)]

pub mod admission;
pub mod annotations;
pub mod data_key;
pub mod destruction;
pub mod exec_env;
pub mod inject;
pub mod key_audit;
pub mod key_state;
pub mod metrics;
pub mod mutate;
pub mod pod_guard;
pub mod question;
pub mod review;
pub mod rewrap;
pub mod server;
pub mod sign;
pub mod tls;
pub mod unseal;
pub mod validate;

pub use server::{AppState, admission_router, api_router};
