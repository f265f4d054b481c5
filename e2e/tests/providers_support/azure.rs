//! Azure Key Vault through the binaries as they ship. The Key Vault double
//! (with its Entra ID token endpoint) runs in this process; the operator
//! and `keyward-webhook serve` are child processes that reach it only
//! through `--azure-vault-url` and the Workload Identity variables, with a
//! ServiceAccount token the real API server issued for
//! `api://AzureADTokenExchange`. The double checks that token as Entra
//! checks a federated credential: issuer, subject, audience, expiry and the
//! signature against the cluster's own `/openid/v1/jwks`.
//!
//! The flow: key Ready with its tags at the vault (and an edit), a key
//! naming another vault Degraded, a value sealed offline from the
//! published public key and opened by the webhook (`unwrapKey` at the
//! vault), rotation (a second Key Vault version), Destroyed soft-deletes the
//! key and moving back recovers it, and deleting the ManagedKey soft-deletes
//! it again.

use crate::providers_support::binaries::{self, Process};
use crate::{
    TagPeer, first_tags, key_id, managed_key, password_opened_for_a_pod, tags_follow_the_spec,
    wait_sealed_ready,
};
use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::ServiceAccount;
use keyward_core::SecretBytes;
use keyward_core::crypto;
use keyward_core::envelope::{PublicSealingKey, Scope, SecretTarget, Wrapping, seal_secret};
use keyward_crds::{KeyState, ManagedKey, SealedSecret};
use keyward_e2e::federation;
use keyward_e2e::keys::{degraded_reason, ready, wait_key};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use keyward_azure_double::{Double, Federation, Options};

/// The application (client) id of the managed identity in the test.
const CLIENT_ID: &str = "5f1c7a2e-0000-4000-8000-00000000a2e1";
/// The ServiceAccount both binaries run as here.
const ACCOUNT: &str = "keyward-azure";

/// Runs the whole flow in namespace `ns`.
pub async fn key_vault_through_the_binaries(client: Client, ns: String) -> Result<()> {
    let operator_bin =
        keyward_e2e::binaries::build_binary("keyward-operator", "keyward-operator", false).await?;
    let webhook_bin =
        keyward_e2e::binaries::build_binary("keyward-webhook", "keyward-webhook", false).await?;
    keyward_e2e::crds::install_keyward_crds(&client).await?;
    let dir = tempfile::tempdir()?;

    let token_file = dir.path().join("azure-identity-token");
    let token = federated_token(&client, &ns).await?;
    std::fs::write(&token_file, &token)?;
    let federation = Federation {
        jwks: Some(federation::cluster_jwks(&client).await?),
        ..Federation::new(
            CLIENT_ID,
            &federation::claim(&token, "iss")?,
            &format!("system:serviceaccount:{ns}:{ACCOUNT}"),
        )
    };
    let vault = Double::start_with(Options {
        federation: Some(federation),
        ..Options::default()
    })
    .await;
    let ca_file = dir.path().join("azure-ca.pem");
    std::fs::write(&ca_file, vault.ca_pem())?;
    let flags = vec![
        format!("--azure-vault-url={}", vault.vault_url()),
        format!("--azure-ca-file={}", ca_file.display()),
        "--azure-skip-challenge-resource-check".to_owned(),
    ];
    let env = identity_env(&vault, &token_file);
    let operator = binaries::operator(&operator_bin, &ns, dir.path(), &flags, &env.borrowed())?;
    let mut run = Run {
        client,
        ns,
        vault,
        dir,
        webhook_bin,
        flags,
        env,
        operator,
        webhook: None,
    };
    let started = Instant::now();
    let outcome = run.flow().await;
    outcome.with_context(|| run.logs())?;
    println!(
        "Azure Key Vault through the binaries: created, tagged, sealed, unsealed, rotated, soft-deleted, recovered, deleted; a Terraform key adopted and kept; in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// The Workload Identity variables the AKS webhook (or the chart) sets.
struct IdentityEnv(Vec<(&'static str, String)>);

impl IdentityEnv {
    fn borrowed(&self) -> Vec<(&str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

fn identity_env(vault: &Double, token_file: &Path) -> IdentityEnv {
    IdentityEnv(vec![
        ("AZURE_CLIENT_ID", CLIENT_ID.to_owned()),
        ("AZURE_TENANT_ID", vault.tenant().to_owned()),
        (
            "AZURE_FEDERATED_TOKEN_FILE",
            token_file.display().to_string(),
        ),
        ("AZURE_AUTHORITY_HOST", vault.authority_host()),
    ])
}

/// A token of ServiceAccount [`ACCOUNT`] for Entra's token exchange, as
/// the kubelet projects it into the pod.
async fn federated_token(client: &Client, ns: &str) -> Result<String> {
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), ns);
    let account: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": ACCOUNT}}))?;
    accounts.create(&PostParams::default(), &account).await?;
    federation::service_account_token(client, ns, ACCOUNT, Federation::DEFAULT_AUDIENCE).await
}

struct Run {
    client: Client,
    ns: String,
    vault: Double,
    dir: tempfile::TempDir,
    webhook_bin: PathBuf,
    flags: Vec<String>,
    env: IdentityEnv,
    operator: Process,
    webhook: Option<Process>,
}

impl Run {
    fn logs(&self) -> String {
        let mut logs = self.operator.log_tail(60);
        if let Some(webhook) = &self.webhook {
            logs = format!("{logs}\n{}", webhook.log_tail(30));
        }
        let refusal = self.vault.last_refusal().unwrap_or_default();
        format!("{logs}\nEntra double's last refusal: {refusal}")
    }

    async fn flow(&mut self) -> Result<()> {
        let keys: Api<ManagedKey> = Api::namespaced(self.client.clone(), &self.ns);
        let started = Instant::now();
        let provider = json!({"azure": {"vaultUrl": self.vault.vault_url()}});
        let mut key = managed_key("azure", provider)?;
        key.spec.algorithm = keyward_crds::Algorithm::Rsa3072;
        key.spec.usage = keyward_crds::KeyUsage::Seal;
        key.spec.tags = first_tags();
        keys.create(&PostParams::default(), &key).await?;
        let key = wait_key(&keys, "azure", "Ready", ready).await;
        self.operator.check_running()?;
        let key = key?;
        println!("azure ManagedKey Ready after {:?}", started.elapsed());
        ensure!(
            self.vault.tokens_issued() >= 1,
            "the operator reached the vault without a token from the Entra endpoint"
        );
        let id = key_id(&key)?;
        let name = id
            .strip_prefix(&format!("{}/keys/", self.vault.vault_url()))
            .with_context(|| format!("{id} is not a key of the vault"))?
            .to_owned();
        let stored = self.vault.key(&name).context("no key in the double")?;
        let owner = format!("{}/azure", self.ns);
        let first = stored.versions.first().context("no version")?;
        ensure!(
            first.kty.starts_with("RSA")
                && first.tags.get("keyward-owner") == Some(&owner)
                && first.tags.get("keyward-version").map(String::as_str) == Some("1"),
            "{stored:?}"
        );
        let at_vault = TagPeer::Azure {
            vault: &self.vault,
            name: &name,
        };
        tags_follow_the_spec(&at_vault, &keys, "azure").await?;

        self.another_vault_is_not_served(&keys).await?;
        let value = "key-vault-kept-this";
        self.seal_offline(&keys, value).await?;
        self.unseal_through_the_webhook(value).await?;

        // Rotation by annotation: a second Key Vault version.
        let annotate = json!({"metadata": {"annotations": {"keyward.io/rotate": "e2e-1"}}});
        keys.patch("azure", &PatchParams::default(), &Patch::Merge(&annotate))
            .await?;
        wait_key(&keys, "azure", "rotated to version 2", |k| {
            k.status.as_ref().and_then(|s| s.primary_version) == Some(2)
        })
        .await?;
        let stored = self.vault.key(&name).context("key gone")?;
        let newest = stored.versions.last().context("no version")?;
        ensure!(
            stored.versions.len() == 2
                && newest.tags.get("keyward-version").map(String::as_str) == Some("2"),
            "after rotation: {stored:?}"
        );

        self.destroyed_is_soft_deleted_and_recovered(&keys, &name)
            .await?;
        self.adopted_key_is_kept(&keys).await?;

        // Deleting the resource soft-deletes the key again.
        keyward_e2e::keys::delete_and_wait_gone(&keys, "azure").await?;
        let stored = self.vault.key(&name).context("key purged")?;
        ensure!(
            stored.deleted.is_some(),
            "deleting the ManagedKey left the key: {stored:?}"
        );
        let audit = std::fs::read_to_string(self.dir.path().join("audit.log"))?;
        ensure!(audit.contains(&id), "the operator's audit log lacks {id}");
        ensure!(
            audit.contains("key.adopt-existing") && audit.contains("key.retain"),
            "the audit log lacks the adoption or the retained key: {audit}"
        );
        Ok(())
    }

    /// One installation serves one vault; a key naming another is refused
    /// with what to do, and nothing is made anywhere.
    async fn another_vault_is_not_served(&mut self, keys: &Api<ManagedKey>) -> Result<()> {
        let provider = json!({"azure": {"vaultUrl": "https://elsewhere.vault.azure.net"}});
        let mut other = managed_key("elsewhere", provider)?;
        other.spec.algorithm = keyward_crds::Algorithm::Rsa3072;
        other.spec.usage = keyward_crds::KeyUsage::Seal;
        keys.create(&PostParams::default(), &other).await?;
        let refused = wait_key(keys, "elsewhere", "Degraded", |k| {
            degraded_reason(k).is_some()
        })
        .await?;
        let reason = degraded_reason(&refused).unwrap_or_default();
        ensure!(
            reason.starts_with("ProviderMismatch") && reason.contains("--azure-vault-url"),
            "{reason}"
        );
        ensure!(
            self.vault.key("elsewhere").is_none(),
            "a key was made for another vault"
        );
        keyward_e2e::keys::delete_and_wait_gone(keys, "elsewhere").await?;
        Ok(())
    }

    /// As `keyward seal` does offline: RSA-OAEP-256 with the public key the
    /// ManagedKey publishes, no call to the vault.
    async fn seal_offline(&mut self, keys: &Api<ManagedKey>, value: &str) -> Result<()> {
        let key = keys.get("azure").await?;
        let status = key.status.context("status")?;
        let pem = status.public_key.clone().context("no status.publicKey")?;
        let sealing = PublicSealingKey {
            key: crypto::public_key_from_pem(&pem)?,
            key_version: status.primary_version.context("no primary version")?,
            provider_key_id: status.provider_key_id.clone().context("no key id")?,
        };
        let target = SecretTarget {
            scope: Scope::Strict,
            namespace: self.ns.clone(),
            secret_name: "azure".to_owned(),
            key_ref: format!("{}/azure", self.ns),
            access: Vec::new(),
        };
        let items: BTreeMap<String, SecretBytes> = [(
            "password".to_owned(),
            SecretBytes::new(value.as_bytes().to_vec()),
        )]
        .into();
        self.vault.reset_calls();
        let sealed = seal_secret(&target, Wrapping::PublicKey(&sealing), &items).await?;
        ensure!(
            self.vault.calls("WrapKey") == 0,
            "offline sealing called the vault"
        );
        let secret: SealedSecret = serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": "azure"},
            "spec": {"keyRef": {"name": "azure"}, "encryptedData": sealed},
        }))?;
        let secrets: Api<SealedSecret> = Api::namespaced(self.client.clone(), &self.ns);
        secrets.create(&PostParams::default(), &secret).await?;
        wait_sealed_ready(&secrets, "azure").await
    }

    /// The webhook binary opens the value for a pod: `unwrapKey` at the vault.
    async fn unseal_through_the_webhook(&mut self, value: &str) -> Result<()> {
        let (client, ns, dir) = (&self.client, self.ns.as_str(), self.dir.path());
        let issued = self.vault.tokens_issued();
        let webhook = binaries::webhook(
            &self.webhook_bin,
            ns,
            dir,
            &self.flags,
            &self.env.borrowed(),
        )
        .await?;
        self.vault.reset_calls();
        let plain = password_opened_for_a_pod(client, ns, dir, &webhook, "azure").await;
        self.webhook = Some(webhook.process);
        let plain = plain?;
        ensure!(plain == value.as_bytes(), "azure opened to other bytes");
        ensure!(
            self.vault.calls("UnwrapKey") >= 1,
            "the webhook did not call unwrapKey"
        );
        ensure!(
            self.vault.tokens_issued() > issued,
            "the webhook got no token of its own from the Entra endpoint"
        );
        Ok(())
    }

    /// Destroyed soft-deletes the key in the vault; moving back to
    /// Deactivated within the deletion window recovers it.
    /// A Key Vault key made outside Keyward (as Terraform makes one, HSM
    /// protected) adopted by `spec.existingKey`: Ready on that very key,
    /// rotated in place (still HSM), and left in the vault when the
    /// ManagedKey goes (`Retain` for adopted keys). A reference to no key
    /// is Degraded with what to check.
    async fn adopted_key_is_kept(&mut self, keys: &Api<ManagedKey>) -> Result<()> {
        let made = json!({
            "kty": "RSA-HSM", "key_size": 3072, "key_ops": ["wrapKey", "unwrapKey"],
            "tags": {"managed-by": "terraform"},
        });
        let terraform_version = self
            .vault
            .create_key("tf-orders", made)
            .await
            .map_err(anyhow::Error::msg)?;
        let vault = self.vault.vault_url();
        for (name, target) in [("orders", "tf-orders"), ("nothing", "tf-nothing")] {
            let provider = json!({"azure": {"vaultUrl": vault}});
            let mut key = managed_key(name, provider)?;
            key.spec.algorithm = keyward_crds::Algorithm::Rsa3072;
            key.spec.usage = keyward_crds::KeyUsage::Seal;
            key.spec.existing_key = Some(format!("{vault}/keys/{target}"));
            keys.create(&PostParams::default(), &key).await?;
        }
        let orders = wait_key(keys, "orders", "Ready", ready).await?;
        ensure!(
            key_id(&orders)? == format!("{vault}/keys/tf-orders"),
            "{orders:?}"
        );
        let stored = self.vault.key("tf-orders").context("no tf-orders")?;
        let adopted = &stored.versions[0];
        let owner = format!("{}/orders", self.ns);
        ensure!(
            adopted.id == terraform_version
                && adopted.tags.get("keyward-version").map(String::as_str) == Some("1")
                && adopted.tags.get("keyward-owner") == Some(&owner)
                && adopted.tags.get("managed-by").map(String::as_str) == Some("terraform"),
            "the adopted version: {adopted:?}"
        );
        let nothing = wait_key(keys, "nothing", "Degraded", |k| {
            degraded_reason(k).is_some()
        })
        .await?;
        let reason = degraded_reason(&nothing).unwrap_or_default();
        ensure!(
            reason.starts_with("ProviderRefused") && reason.contains("no key `tf-nothing`"),
            "{reason}"
        );

        let annotate = json!({"metadata": {"annotations": {"keyward.io/rotate": "e2e-1"}}});
        keys.patch("orders", &PatchParams::default(), &Patch::Merge(&annotate))
            .await?;
        wait_key(keys, "orders", "rotated to version 2", |k| {
            k.status.as_ref().and_then(|s| s.primary_version) == Some(2)
        })
        .await?;
        let stored = self.vault.key("tf-orders").context("no tf-orders")?;
        let newest = stored.versions.last().context("no version")?;
        ensure!(
            stored.versions.len() == 2 && newest.kty == "RSA-HSM",
            "after rotating the adopted key: {stored:?}"
        );

        keyward_e2e::keys::delete_and_wait_gone(keys, "orders").await?;
        keyward_e2e::keys::delete_and_wait_gone(keys, "nothing").await?;
        let stored = self.vault.key("tf-orders").context("tf-orders purged")?;
        ensure!(
            stored.deleted.is_none() && stored.versions.iter().all(|v| v.enabled),
            "deleting the ManagedKey touched the Terraform key: {stored:?}"
        );
        println!(
            "the Key Vault double: tf-orders adopted as version 1, rotated to an RSA-HSM version 2, kept after the ManagedKey went"
        );
        Ok(())
    }

    async fn destroyed_is_soft_deleted_and_recovered(
        &mut self,
        keys: &Api<ManagedKey>,
        name: &str,
    ) -> Result<()> {
        let secrets: Api<SealedSecret> = Api::namespaced(self.client.clone(), &self.ns);
        secrets.delete("azure", &DeleteParams::default()).await?;
        for state in [
            KeyState::Deactivated,
            KeyState::Destroyed,
            KeyState::Deactivated,
        ] {
            let patch = json!({"spec": {"state": state}});
            keys.patch("azure", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            wait_key(keys, "azure", &format!("{state}"), |k| {
                k.status.as_ref().and_then(|s| s.state) == Some(state)
            })
            .await?;
            let stored = self.vault.key(name).context("key purged")?;
            let soft_deleted = stored.deleted.is_some();
            ensure!(
                soft_deleted == (state == KeyState::Destroyed),
                "{state}: the vault holds {stored:?}"
            );
            println!("azure key {state}: soft-deleted in the vault: {soft_deleted}");
        }
        Ok(())
    }
}
