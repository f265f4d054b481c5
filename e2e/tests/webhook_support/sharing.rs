//! A ManagedKey opens another namespace's SealedSecrets only while its
//! owner shares it with that namespace (`spec.shareWith`): admission
//! refuses an ungranted reference, a grant makes it work, and revoking the
//! grant stops the next unseal.

use super::{PASSWORD, SELECTOR_LABEL, Webhook, injector_image, seal_password, token_for};
use anyhow::{Result, bail, ensure};
use base64::Engine;
use k8s_openapi::api::core::v1::Namespace;
use keyward_core::envelope::{Scope, SecretTarget};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::{crds, namespace, pods, with_temp_ns};
use keyward_webhook::inject;
use keyward_webhook::unseal::UnsealRequest;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

#[tokio::test]
async fn a_key_opens_another_namespaces_secrets_only_while_its_owner_shares_it() {
    with_temp_ns(|client, owner| async move {
        crds::install_keyward_crds(&client).await?;
        let image = injector_image().await?;
        let tenant = namespace::create_temp_ns(&client).await?;
        let dir = tempfile::tempdir()?;
        let result = async {
            // The webhook's configurations select namespaces by this label.
            let label = json!({"metadata": {"labels": {SELECTOR_LABEL: owner}}});
            Api::<Namespace>::all(client.clone())
                .patch(&tenant, &PatchParams::default(), &Patch::Merge(&label))
                .await?;
            // Sealed first: this creates the keyring the webhook opens.
            let sealed = sealed_with_key_of(&client, &owner, &tenant).await?;
            let webhook = Webhook::start(&client, &owner, dir.path(), image).await?;
            let result = sharing_flow(&client, &owner, &tenant, &webhook, &sealed).await;
            if result.is_err() {
                println!("audit log:\n{}", webhook.audit_log());
            }
            webhook.stop(&client).await;
            result
        }
        .await;
        let _ = Api::<Namespace>::all(client.clone())
            .delete(&tenant, &DeleteParams::background())
            .await;
        result
    })
    .await;
}

async fn sharing_flow(
    client: &Client,
    owner: &str,
    tenant: &str,
    webhook: &Webhook,
    sealed: &SealedSecret,
) -> Result<()> {
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), owner);
    let key: ManagedKey = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "db"}, "spec": {"provider": {"local": {}}},
    }))?;
    keys.create(&PostParams::default(), &key).await?;
    let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), tenant);

    let not_shared = format!("ManagedKey {owner}/db is not shared with namespace {tenant}");
    match secrets.create(&PostParams::default(), sealed).await {
        Err(kube::Error::Api(status)) if status.message.contains(&not_shared) => {
            println!("ungranted reference refused: {}", status.message);
        }
        other => bail!("a SealedSecret naming an unshared key was admitted: {other:?}"),
    }

    share_with(&keys, json!([tenant])).await?;
    secrets.create(&PostParams::default(), sealed).await?;
    let (image, pull) = (&webhook.injector.0, webhook.injector.1);
    let holder = pods::starting_pod(client, tenant, "holder", "shared", (image, pull)).await?;
    let request = UnsealRequest {
        token: token_for(client, tenant, &holder, "keyward").await?,
        namespace: tenant.to_owned(),
        pod: "holder".into(),
        secrets: vec!["shared".into()],
    };
    let url = format!("{}/v1/unseal", webhook.api_url);
    let opened = inject::unseal_once(&url, &webhook.ca_pem, &request).await?;
    let value =
        base64::engine::general_purpose::STANDARD.decode(&*opened.secrets["shared"]["password"])?;
    ensure!(
        value == PASSWORD.as_bytes(),
        "the granted secret opened to another value"
    );
    println!("granted: the tenant's pod opened a secret sealed under {owner}/db");

    // Revoked: the next unseal is refused, and the pod is told why.
    share_with(&keys, json!([])).await?;
    match inject::unseal_once(&url, &webhook.ca_pem, &request).await {
        Err(error) if error.to_string().contains(&not_shared) => {
            println!("revoked: {error}");
        }
        other => bail!(
            "an unseal after revoking the grant was not refused for it: {:?}",
            other.map(|_| "values")
        ),
    }
    let audit = webhook.audit_log();
    ensure!(
        audit.contains(&not_shared) && audit.contains("\"outcome\":\"denied\""),
        "the audit log lacks the sharing denial"
    );
    Ok(())
}

async fn share_with(keys: &Api<ManagedKey>, namespaces: serde_json::Value) -> Result<()> {
    let patch = json!({"spec": {"shareWith": {"namespaces": namespaces}}});
    keys.patch("db", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// SealedSecret `shared` of namespace `tenant`, sealed under ManagedKey
/// `owner/db` (a fresh key in the owner's local keyring).
async fn sealed_with_key_of(client: &Client, owner: &str, tenant: &str) -> Result<SealedSecret> {
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: tenant.to_owned(),
        secret_name: "shared".into(),
        key_ref: format!("{owner}/db"),
        access: Vec::new(),
    };
    let encrypted = seal_password(client, owner, &format!("{owner}-shared"), &target).await?;
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "shared", "namespace": tenant},
        "spec": {"keyRef": {"name": "db", "namespace": owner}, "encryptedData": encrypted},
    }))?)
}
