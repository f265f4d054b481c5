//! The provider's identity in a cluster: Azure Workload Identity, the
//! Kubernetes ServiceAccount token exchanged at Microsoft Entra ID for a
//! Key Vault token by the official `azure_identity` credential.
//!
//! The credential reads what the AKS workload-identity webhook (or the
//! chart, elsewhere) puts in the pod: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
//! `AZURE_FEDERATED_TOKEN_FILE` and, for sovereign clouds or a test double,
//! `AZURE_AUTHORITY_HOST`. It re-reads the projected token file as the
//! kubelet refreshes it.

use crate::config::transport;
use azure_core::credentials::TokenCredential;
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use keyward_core::provider::{ProviderError, Result};
use std::sync::Arc;

/// The environment variables the credential needs, in the order a user
/// checks them.
pub const WORKLOAD_IDENTITY_ENV: [&str; 3] = [
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
];

/// A Workload Identity credential from the pod's environment, its HTTPS
/// calls to Entra ID also trusting `ca_pem`. Fails, naming what is missing,
/// when the pod was not set up for Workload Identity.
pub fn workload_identity(ca_pem: Option<&str>) -> Result<Arc<dyn TokenCredential>> {
    let missing: Vec<&str> = WORKLOAD_IDENTITY_ENV
        .into_iter()
        .filter(|name| std::env::var_os(name).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return Err(ProviderError::InvalidRequest(format!(
            "Azure Workload Identity is not set up in this pod: {} missing; label the pod \
             azure.workload.identity/use=true and annotate its ServiceAccount with \
             azure.workload.identity/client-id (AKS), or set providers.azure.tenantId and the \
             client ids with aksWorkloadIdentityWebhook=false in the chart",
            missing.join(", ")
        )));
    }
    let options = WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: ClientOptions {
                transport: transport(ca_pem)?,
                ..Default::default()
            },
        },
        ..Default::default()
    };
    let credential = WorkloadIdentityCredential::new(Some(options)).map_err(|e| {
        ProviderError::InvalidRequest(format!("Azure Workload Identity could not start: {e}"))
    })?;
    Ok(credential)
}
