//! What a pod with Keyward's CSI volume may unseal: the SealedSecrets its
//! inline volumes of driver [`CSI_DRIVER`] name in `volumeAttributes.secrets`
//! — fixed at creation, as a pod's volumes cannot change — while the pod
//! is not finished or being deleted. The kubelet hands the CSI node plugin
//! a token bound to the pod (the CSIDriver's `tokenRequests`); no container
//! of the pod may project a token of Keyward's audience itself, so only
//! the kubelet's path can present one.

use super::authorise::{Denial, DenialKind};
use crate::annotations::AUDIENCE;
use k8s_openapi::api::core::v1::Pod;

/// The CSI driver name (and the CSIDriver object's).
pub const CSI_DRIVER: &str = "csi.keyward.io";

/// The volume attribute that lists the SealedSecrets, comma-separated.
pub const SECRETS_ATTRIBUTE: &str = "secrets";

/// The SealedSecrets `pod`'s Keyward CSI volumes name; `None` when it has none.
pub fn declared(pod: &Pod) -> Option<Vec<String>> {
    let volumes = pod.spec.as_ref()?.volumes.as_ref()?;
    let ours: Vec<_> = volumes
        .iter()
        .filter_map(|v| v.csi.as_ref())
        .filter(|csi| csi.driver == CSI_DRIVER)
        .collect();
    if ours.is_empty() {
        return None;
    }
    let mut names: Vec<String> = ours
        .iter()
        .filter_map(|csi| csi.volume_attributes.as_ref()?.get(SECRETS_ATTRIBUTE))
        .flat_map(|list| split(list))
        .collect();
    names.sort();
    names.dedup();
    Some(names)
}

/// `a, b,c` → `[a, b, c]`, empty entries dropped.
pub fn split(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The SealedSecrets the CSI volumes of `pod` may unseal now.
pub fn entitled(pod: &Pod) -> Result<Vec<String>, Denial> {
    let names = declared(pod).unwrap_or_default();
    let phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending");
    if matches!(phase, "Succeeded" | "Failed") {
        return Err(Denial::new(
            DenialKind::NotStarting,
            format!("pod has finished ({phase})"),
        ));
    }
    if let Some(container) = projects_keyward_token(pod) {
        return Err(Denial::new(
            DenialKind::NotInjected,
            format!(
                "pod projects a ServiceAccount token of audience `{AUDIENCE}` into volume \
                 `{container}`: with Keyward's CSI volume only the kubelet may hold one; remove \
                 that projected token"
            ),
        ));
    }
    Ok(names)
}

/// The name of a projected volume of the pod that carries a token with
/// Keyward's audience, if any.
fn projects_keyward_token(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|volume| {
            volume
                .projected
                .as_ref()
                .and_then(|p| p.sources.as_ref())
                .is_some_and(|sources| {
                    sources.iter().any(|s| {
                        s.service_account_token
                            .as_ref()
                            .is_some_and(|t| t.audience.as_deref() == Some(AUDIENCE))
                    })
                })
        })
        .map(|volume| volume.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(volumes: serde_json::Value, phase: &str) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "app", "namespace": "team", "uid": "u1"},
            "spec": {"containers": [{"name": "app", "image": "app"}], "volumes": volumes},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    fn csi(driver: &str, secrets: &str) -> serde_json::Value {
        json!({"name": format!("v-{secrets}"), "csi": {"driver": driver,
               "volumeAttributes": {"secrets": secrets}}})
    }

    #[test]
    fn the_secrets_of_keyward_volumes_only() {
        let both = pod(
            json!([
                csi(CSI_DRIVER, "db, api"),
                csi(CSI_DRIVER, "db"),
                csi("other.csi", "x")
            ]),
            "Pending",
        );
        assert_eq!(declared(&both), Some(vec!["api".into(), "db".into()]));
        assert_eq!(entitled(&both).unwrap(), ["api", "db"]);
        let none = pod(json!([csi("other.csi", "db")]), "Running");
        assert_eq!(declared(&none), None);
    }

    #[test]
    fn a_finished_pod_or_one_holding_a_keyward_token_gets_nothing() {
        let done = pod(json!([csi(CSI_DRIVER, "db")]), "Succeeded");
        assert_eq!(entitled(&done).unwrap_err().kind, DenialKind::NotStarting);
        let token = json!({"name": "mine", "projected": {"sources": [
            {"serviceAccountToken": {"audience": AUDIENCE, "path": "t"}}]}});
        let holding = pod(json!([csi(CSI_DRIVER, "db"), token]), "Running");
        let denial = entitled(&holding).unwrap_err();
        assert_eq!(denial.kind, DenialKind::NotInjected);
        assert!(denial.reason.contains("`mine`"), "{}", denial.reason);
    }
}
