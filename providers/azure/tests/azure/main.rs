//! The Azure Key Vault provider against the loopback Key Vault double
//! (`providers/azure-double`), through the official SDK. One test binary
//! (the SDK is large to link).

mod adoption;
mod common;
mod conformance;
mod failures;
mod lifecycle;
mod signing;
