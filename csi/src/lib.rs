//! Keyward's CSI node plugin: SealedSecrets as an inline ephemeral volume.
//! The kubelet calls NodePublishVolume with the pod's bound token; the
//! plugin unseals through the webhook's unseal API on the pod's behalf and
//! writes the values into a fresh tmpfs at the target path, replacing them
//! atomically on every republish; NodeUnpublishVolume wipes and unmounts.
#![forbid(unsafe_code)]

pub mod authority;
pub mod events;
pub mod files;
pub mod grpc;
pub mod metrics;
pub mod mount;
pub mod plugin;
pub mod proto;
pub mod publish;
pub mod serve;
