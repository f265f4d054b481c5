//! What Keyward's question kinds (`DataKeyRequest`, `SealedSecretReview`)
//! share at admission: like `TokenReview`, each is created only to be
//! answered, so only a dry-run create is taken (nothing is ever stored),
//! and the answer goes back in `status`, as a patch of the object the API
//! server returns.

use crate::admission::Request;
use kube::core::admission::Operation;
use serde::de::DeserializeOwned;

/// The object of a dry-run create of `kind`, and its namespace.
pub fn asked<T: DeserializeOwned>(request: &Request, kind: &str) -> Result<(T, String), String> {
    if request.operation != Operation::Create {
        return Err(format!("a {kind} is only created"));
    }
    if !request.dry_run {
        return Err(format!(
            "a {kind} is answered only with dryRun=All and is never stored; use the keyward \
             CLI, or `kubectl create --dry-run=server -o yaml`"
        ));
    }
    let object: T = crate::admission::typed(request, false)?
        .ok_or_else(|| "the request has no object".to_owned())?;
    let namespace = request
        .namespace
        .clone()
        .ok_or_else(|| format!("a {kind} is namespaced"))?;
    Ok((object, namespace))
}

/// The JSONPatch that puts `answer` in `status`.
pub fn status_patch<T: serde::Serialize>(answer: &T) -> Result<json_patch::Patch, String> {
    let patch = serde_json::json!([{ "op": "add", "path": "/status", "value": answer }]);
    serde_json::from_value(patch).map_err(|e| e.to_string())
}

/// Appends `event` to the audit log; false (counted and logged) when it
/// cannot, and the caller then refuses: an answer must not go unrecorded.
pub async fn audited(
    audit: &std::sync::Arc<keyward_core::audit::AuditLog>,
    event: keyward_core::audit::Event,
) -> bool {
    let audit = std::sync::Arc::clone(audit);
    let action = event.action.clone();
    let error = match tokio::task::spawn_blocking(move || audit.append(event)).await {
        Ok(Ok(())) => return true,
        Ok(Err(error)) => error.to_string(),
        Err(error) => format!("audit task: {error}"),
    };
    crate::metrics::metrics().audit_write_failure();
    tracing::error!(%error, %action, "cannot write the audit log, so the request is refused");
    false
}
