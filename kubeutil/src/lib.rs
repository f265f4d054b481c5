//! Kubernetes glue shared by the operator and the webhook (separate pods
//! that must see the same in-cluster state).
#![forbid(unsafe_code)]

pub mod keyring_secret;
pub mod root_key_secret;
