//! Whether a ManagedKey read from the cluster can seal offline, and its
//! public sealing key if so: RSA with usage Seal, Ready, primary version
//! Active, and a public key in its status.

use anyhow::{Context, Result, anyhow, bail};
use keyward_core::crypto;
use keyward_core::envelope::PublicSealingKey;
use keyward_crds::conditions::{self, DEGRADED, READY};
use keyward_crds::{KeyState, KeyUsage, ManagedKey};

/// The public half of `key` (`namespace/name`, for messages) for `seal --cert`.
pub fn sealing_key(key: &ManagedKey, reference: &str) -> Result<PublicSealingKey> {
    let spec = &key.spec;
    if !spec.algorithm.is_asymmetric() || !spec.algorithm.usages().contains(&KeyUsage::Seal) {
        bail!(
            "ManagedKey {reference} is {} (usage {}): offline sealing needs an RSA key with \
             usage: Seal (algorithm RSA3072 or RSA4096); create one, or seal with a key you can \
             reach (`keyward seal --key`)",
            spec.algorithm,
            spec.usage
        );
    }
    if spec.usage != KeyUsage::Seal {
        bail!(
            "ManagedKey {reference} is {} but its usage is {}: offline sealing needs usage: Seal; \
             create a key with usage: Seal",
            spec.algorithm,
            spec.usage
        );
    }
    if key.metadata.deletion_timestamp.is_some() {
        bail!("ManagedKey {reference} is being deleted; seal with another key");
    }
    let status = key.status.as_ref().ok_or_else(|| {
        anyhow!(
            "ManagedKey {reference} has no status yet; is the keyward operator running? \
             Wait until `kubectl -n {} get managedkey {}` shows State Active",
            namespace_of(reference),
            name_of(reference)
        )
    })?;
    if !conditions::is_true(&status.conditions, READY) {
        let ready = conditions::find(&status.conditions, READY)
            .map(|c| format!(" ({}: {})", c.reason, c.message))
            .unwrap_or_default();
        let degraded = conditions::find(&status.conditions, DEGRADED)
            .filter(|c| c.status == "True")
            .map(|c| format!("; Degraded: {}: {}", c.reason, c.message))
            .unwrap_or_default();
        bail!(
            "ManagedKey {reference} is not Ready{ready}{degraded}; see `kubectl -n {} describe \
             managedkey {}`",
            namespace_of(reference),
            name_of(reference)
        );
    }
    let primary = status.primary().ok_or_else(|| {
        anyhow!("ManagedKey {reference} reports no primary version; retry shortly")
    })?;
    if primary.state != KeyState::Active || status.state != Some(KeyState::Active) {
        bail!(
            "the primary version {} of ManagedKey {reference} is {}, not Active: it seals \
             nothing new; activate the key (spec.state: Active) or seal with another key",
            primary.version,
            primary.state
        );
    }
    let provider_key_id = status
        .provider_key_id
        .clone()
        .ok_or_else(|| anyhow!("ManagedKey {reference} reports no providerKeyId; retry shortly"))?;
    let pem = status.public_key.as_deref().ok_or_else(|| {
        anyhow!("ManagedKey {reference} publishes no publicKey in its status; retry shortly")
    })?;
    let public = crypto::public_key_from_pem(pem).with_context(|| {
        format!("the publicKey of ManagedKey {reference} is not an RSA public key in PEM")
    })?;
    Ok(PublicSealingKey {
        key: public,
        key_version: primary.version,
        provider_key_id,
    })
}

fn namespace_of(reference: &str) -> &str {
    reference.split_once('/').map_or("default", |(ns, _)| ns)
}

fn name_of(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyring;
    use keyward_core::crypto::RsaPrivateKey;
    use serde_json::json;

    fn public_pem() -> String {
        let private = RsaPrivateKey::generate(keyward_core::crypto::RsaKeySize::Bits3072);
        crypto::public_key_to_pem(&private.public_key())
    }

    fn key(spec: serde_json::Value, status: serde_json::Value) -> ManagedKey {
        serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "app", "namespace": "shop"},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastTransitionTime": "2026-01-01T00:00:00Z"})
    }

    fn ready_status(pem: &str) -> serde_json::Value {
        json!({
            "providerKeyId": "lk-123", "state": "Active", "primaryVersion": 2,
            "versions": [{"version": 1, "state": "Deactivated"}, {"version": 2, "state": "Active"}],
            "publicKey": pem,
            "conditions": [condition("Ready", "True", "Active", "version 2 is primary")],
        })
    }

    const RSA_SEAL: &str =
        r#"{"provider": {"local": {}}, "algorithm": "RSA3072", "usage": "Seal"}"#;

    #[test]
    fn a_ready_rsa_key_gives_the_file_seal_reads() {
        let pem = public_pem();
        let spec: serde_json::Value = serde_json::from_str(RSA_SEAL).unwrap();
        let sealing = sealing_key(&key(spec, ready_status(&pem)), "shop/app").unwrap();
        assert_eq!(sealing.key_version, 2);
        assert_eq!(sealing.provider_key_id, "lk-123");
        let text = keyring::public_key_file("shop/app", &sealing);
        assert!(text.starts_with(
            "keyward-key: shop/app\nkeyward-key-version: 2\nkeyward-provider-key-id: lk-123\n"
        ));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.pub");
        std::fs::write(&file, &text).unwrap();
        let (read, named) = keyring::read_public_key_file(&file).unwrap();
        assert_eq!(named.as_deref(), Some("shop/app"));
        assert_eq!(read.key_version, 2);
        assert_eq!(crypto::public_key_to_pem(&read.key), pem);
    }

    #[test]
    fn refusals_say_why_and_what_to_do() {
        let pem = public_pem();
        let rsa: serde_json::Value = serde_json::from_str(RSA_SEAL).unwrap();
        let error = |spec: &serde_json::Value, status: serde_json::Value| {
            format!(
                "{:#}",
                sealing_key(&key(spec.clone(), status), "shop/app").unwrap_err()
            )
        };

        let aes = json!({"provider": {"local": {}}});
        let text = error(&aes, ready_status(&pem));
        assert!(text.contains("AES256") && text.contains("RSA"), "{text}");
        let sign = json!({"provider": {"local": {}}, "algorithm": "RSA4096", "usage": "Sign"});
        assert!(error(&sign, ready_status(&pem)).contains("usage: Seal"));

        let mut suspended = ready_status(&pem);
        suspended["state"] = json!("Suspended");
        suspended["versions"][1]["state"] = json!("Suspended");
        suspended["conditions"] = json!([
            condition("Ready", "False", "Suspended", "the key is Suspended"),
            condition("Degraded", "True", "ProviderUnavailable", "KMS timed out"),
        ]);
        let text = error(&rsa, suspended);
        assert!(
            text.contains("not Ready (Suspended")
                && text.contains("Degraded: ProviderUnavailable: KMS timed out")
                && text.contains("kubectl -n shop describe managedkey app"),
            "{text}"
        );

        let mut inactive = ready_status(&pem);
        inactive["versions"][1]["state"] = json!("Suspended");
        assert!(error(&rsa, inactive).contains("is Suspended, not Active"));

        let text = error(&rsa, json!(null));
        assert!(text.contains("operator"), "{text}");

        let mut no_pem = ready_status(&pem);
        no_pem.as_object_mut().unwrap().remove("publicKey");
        assert!(error(&rsa, no_pem).contains("publicKey"));
    }
}
