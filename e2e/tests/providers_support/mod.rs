//! Glue for `providers.rs`: the real provider peers it runs against, and
//! the operator and webhook binaries as processes.

pub mod adopted;
pub mod azure;
pub mod binaries;
pub mod claims;
pub mod hung;
pub mod online_seal;
pub mod peers;
pub mod rebuild;
pub mod wrapped_root;
