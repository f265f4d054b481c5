//! Glue shared by the operator and the webhook (separate pods that must
//! see the same in-cluster state), and the metrics registry both export.
#![forbid(unsafe_code)]

pub mod keyring_secret;
pub mod metrics;
pub mod root_key_secret;
