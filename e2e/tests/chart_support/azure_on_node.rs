//! Azure Key Vault through the chart's pods on the node. The Key Vault
//! double (with its Entra ID token endpoint) listens on 127.0.0.1, which the
//! chart's host-network pods reach. The chart runs in its non-AKS identity
//! mode: it projects each ServiceAccount's token for
//! `api://AzureADTokenExchange` and sets `AZURE_*` itself, and the double
//! accepts those tokens as Entra accepts a federated credential (issuer,
//! subject per ServiceAccount, audience, expiry, and the signature against
//! the cluster's `/openid/v1/jwks`). Then: a sealing key Ready in the
//! vault, `keyward seal` through the cluster, and an opted-in pod reads the
//! value its injector unsealed (`unwrapKey` at the vault).

use super::on_node::{self, Flow};
use super::{keyward_api, merge};
use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{Pod, Secret};
use keyward_azure_double::{Double, Federation};
use keyward_e2e::federation;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const OPERATOR_CLIENT_ID: &str = "0a7e0000-0000-4000-8000-0000000000a1";
const WEBHOOK_CLIENT_ID: &str = "0a7e0000-0000-4000-8000-0000000000a2";
const CA_SECRET: &str = "azure-vault-ca";

/// Before `helm install`: the vault's CA as a Secret, one federated
/// credential per ServiceAccount the chart will make, and the values that
/// turn Azure on.
pub async fn prepare(client: &Client, flow: &Flow, vault: &Double) -> Result<Value> {
    let ca = json!({
        "metadata": { "name": CA_SECRET },
        "stringData": { "ca.crt": vault.ca_pem() },
    });
    Api::<Secret>::namespaced(client.clone(), &flow.release_ns)
        .create(&PostParams::default(), &serde_json::from_value(ca)?)
        .await?;
    let issuer = federation::issuer(client, &flow.release_ns).await?;
    let jwks = federation::cluster_jwks(client).await?;
    let names = flow.names();
    for (client_id, account) in [
        (OPERATOR_CLIENT_ID, &names.operator),
        (WEBHOOK_CLIENT_ID, &names.webhook),
    ] {
        let subject = format!("system:serviceaccount:{}:{account}", flow.release_ns);
        vault.add_federation(Federation {
            jwks: Some(jwks.clone()),
            ..Federation::new(client_id, &issuer, &subject)
        });
    }
    Ok(json!({ "providers": { "azure": {
        "enabled": true,
        "vaultUrl": vault.vault_url(),
        "tenantId": vault.tenant(),
        "operatorClientId": OPERATOR_CLIENT_ID,
        "webhookClientId": WEBHOOK_CLIENT_ID,
        "aksWorkloadIdentityWebhook": false,
        "authorityHost": vault.authority_host(),
        "caSecret": { "name": CA_SECRET },
        "skipChallengeResourceCheck": true,
    } } }))
}

/// The values for [`prepare`] merged into the chart's overlay.
pub async fn overlay(client: &Client, flow: &Flow, base: &mut Value) -> Result<()> {
    if let Some(vault) = &flow.azure {
        merge(base, prepare(client, flow, vault).await?);
    }
    Ok(())
}

/// A sealing key in the vault, a value sealed under it with `keyward seal`
/// through the cluster, an opted-in pod that reads it; both pods signed in
/// through the Entra endpoint with their projected tokens.
pub async fn seal_and_read(client: &Client, flow: &Flow, cli: &Path) -> Result<()> {
    let vault = flow.azure.as_ref().context("the flow has no vault")?;
    let keys = keyward_api(client, &flow.release_ns, "ManagedKey", "managedkeys");
    let key = json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": { "name": "vault-app" },
        "spec": {
            "provider": { "azure": { "vaultUrl": vault.vault_url() } },
            "algorithm": "RSA3072", "usage": "Seal", "deletionWindow": "7d",
            "shareWith": { "namespaces": [flow.app_ns] },
        },
    });
    keys.create(&PostParams::default(), &serde_json::from_value(key)?)
        .await?;
    on_node::wait_key_ready(&keys, "vault-app").await?;
    let made = keys.get("vault-app").await?;
    let key_id = made.data["status"]["providerKeyId"]
        .as_str()
        .context("no status.providerKeyId")?
        .to_owned();
    let name = key_id
        .strip_prefix(&format!("{}/keys/", vault.vault_url()))
        .with_context(|| format!("{key_id} is not a key of the vault"))?;
    let stored = vault.key(name).context("no key in the vault")?;
    ensure!(
        stored.versions.len() == 1 && stored.versions[0].kty.starts_with("RSA"),
        "{stored:?}"
    );
    ensure!(
        vault.tokens_issued() >= 1,
        "the operator pod reached the vault without an Entra token ({:?})",
        vault.last_refusal()
    );
    println!("== vault-app Ready in the Key Vault double as {key_id}");

    let sealed = on_node::seal_as(flow, cli, "vaultdb", "vault-app").await?;
    let sealed_secrets = keyward_api(client, &flow.app_ns, "SealedSecret", "sealedsecrets");
    let post = PostParams::default();
    on_node::through_webhook(|| sealed_secrets.create(&post, &sealed))
        .await
        .context("the vault's SealedSecret through the validating webhook")?;

    vault.reset_calls();
    let issued = vault.tokens_issued();
    let pods = Api::<Pod>::namespaced(client.clone(), &flow.app_ns);
    let reader = on_node::reader_pod_of(flow, "vault-reader", "vaultdb")?;
    let pod = on_node::through_webhook(|| pods.create(&post, &reader)).await?;
    let read = on_node::read_injected(client, &pods, &pod).await;
    let read = read.with_context(|| format!("Entra refusal: {:?}", vault.last_refusal()))?;
    ensure!(
        read == on_node::SECRET_VALUE,
        "the vault reader read {read:?}"
    );
    ensure!(
        vault.calls("UnwrapKey") >= 1,
        "the webhook opened the value without unwrapKey at the vault"
    );
    println!(
        "== pod {}/vault-reader read the value unwrapped by Key Vault (Entra tokens issued: {issued} before, {} after)",
        flow.app_ns,
        vault.tokens_issued()
    );

    // The key has a dependant until the SealedSecret goes.
    sealed_secrets
        .delete("vaultdb", &DeleteParams::default())
        .await?;
    keys.delete("vault-app", &DeleteParams::default()).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while keys.get_opt("vault-app").await?.is_some() {
        ensure!(Instant::now() < deadline, "vault-app kept its finalizer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stored = vault.key(name).context("key purged")?;
    ensure!(
        stored.deleted.is_some(),
        "deleting the ManagedKey left the key live: {stored:?}"
    );
    Ok(())
}
