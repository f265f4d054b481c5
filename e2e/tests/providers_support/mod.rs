//! Glue for `providers.rs`: the real provider peers it runs against.

pub mod peers;
