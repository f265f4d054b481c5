//! Glue shared by the operator and the webhook (separate pods that must
//! see the same in-cluster state), and the metrics registry and log format both use.
#![forbid(unsafe_code)]

pub mod keyring_secret;
pub mod logging;
pub mod metrics;
pub mod root_key_secret;
