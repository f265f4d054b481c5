//! Whether the ManagedKey a SealedSecret names may take re-wrapped data:
//! only a key the operator reports Active, not being deleted, whose
//! provider key is the one the items are sealed under. The caller already
//! proved `update` on the SealedSecret, so the reason may be told to them.

use keyward_crds::{KeyState, ManagedKey};

/// `Err` is a sentence for the caller and the audit log, with what to do.
pub fn usable_for_wrapping(
    key: Option<&ManagedKey>,
    reference: &str,
    provider_key_id: &str,
    target_version: u32,
) -> Result<(), String> {
    let Some(key) = key else {
        return Err(format!(
            "ManagedKey {reference} (spec.keyRef) does not exist, so nothing is re-wrapped under \
             it; re-seal the values under an existing key"
        ));
    };
    if key.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "ManagedKey {reference} is pending deletion; re-seal the values under another key"
        ));
    }
    let Some((status, state)) = key
        .status
        .as_ref()
        .and_then(|status| Some((status, status.state?)))
    else {
        return Err(format!(
            "ManagedKey {reference} has no reported state yet (is the keyward operator \
             running?); retry once `kubectl get managedkey` shows it Active"
        ));
    };
    if let Some(reported) = &status.provider_key_id
        && reported != provider_key_id
    {
        return Err(format!(
            "the items are sealed under provider key `{provider_key_id}`, but ManagedKey \
             {reference} is provider key `{reported}`; re-seal the values with `keyward seal`"
        ));
    }
    if state != KeyState::Active {
        return Err(format!(
            "ManagedKey {reference} is {state}: {}",
            advice(state)
        ));
    }
    if let Some(version) = status.version(target_version) {
        if version.state != KeyState::Active {
            return Err(format!(
                "version {target_version} of ManagedKey {reference} is {}: {}",
                version.state,
                advice(version.state)
            ));
        }
        if version.destroy_scheduled_at.is_some() {
            return Err(format!(
                "version {target_version} of ManagedKey {reference} is scheduled for \
                 destruction; re-seal the values under another key"
            ));
        }
    }
    Ok(())
}

fn advice(state: KeyState) -> &'static str {
    match state {
        KeyState::PreActivation => {
            "it is not activated yet; retry once it is Active (spec.state: Active or activateAt)"
        }
        KeyState::Suspended => "it wraps nothing until it is Active again (spec.state: Active)",
        KeyState::Deactivated => "it only decrypts now; re-seal the values under another key",
        KeyState::Compromised => {
            "retry once the operator's emergency rotation has made a new version primary"
        }
        KeyState::Destroyed => "re-seal the values under another key",
        KeyState::Active => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(status: serde_json::Value, deleting: bool) -> ManagedKey {
        let mut metadata = json!({"name": "db", "namespace": "team"});
        if deleting {
            metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": metadata, "spec": {"provider": {"local": {}}}, "status": status,
        }))
        .unwrap()
    }

    fn active() -> serde_json::Value {
        json!({"providerKeyId": "k1", "state": "Active", "primaryVersion": 2,
               "versions": [{"version": 1, "state": "Compromised"}, {"version": 2, "state": "Active"}]})
    }

    fn check(key: Option<&ManagedKey>) -> Result<(), String> {
        usable_for_wrapping(key, "team/db", "k1", 2)
    }

    #[test]
    fn only_an_active_key_takes_rewrapped_items() {
        // Off a compromised version onto the new primary: the point of rewrap.
        assert_eq!(check(Some(&key(active(), false))), Ok(()));
        // The operator has not listed the provider's newest version yet.
        assert_eq!(
            usable_for_wrapping(Some(&key(active(), false)), "team/db", "k1", 3),
            Ok(())
        );

        let refused = |status: serde_json::Value, deleting: bool| {
            check(Some(&key(status, deleting))).unwrap_err()
        };
        for (state, says) in [
            ("Suspended", "spec.state: Active"),
            ("Deactivated", "another key"),
            ("Compromised", "emergency rotation"),
            ("Destroyed", "another key"),
            ("PreActivation", "not activated"),
        ] {
            let mut status = active();
            status["state"] = json!(state);
            let text = refused(status, false);
            assert!(
                text.contains(&format!("team/db is {state}")) && text.contains(says),
                "{text}"
            );
        }
        let mut status = active();
        status["versions"][1]["state"] = json!("Suspended");
        assert!(refused(status, false).contains("version 2 of ManagedKey team/db is Suspended"));
        let mut status = active();
        status["versions"][1]["destroyScheduledAt"] = json!("2026-02-01T00:00:00Z");
        assert!(refused(status, false).contains("scheduled for destruction"));
        assert!(refused(active(), true).contains("pending deletion"));
        assert!(refused(json!(null), false).contains("operator"));
        let mut status = active();
        status["providerKeyId"] = json!("k2");
        assert!(refused(status, false).contains("provider key `k2`"));
        assert!(check(None).unwrap_err().contains("does not exist"));
    }
}
