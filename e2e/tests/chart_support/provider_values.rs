//! `providers.azure` in both identity modes and `providers.gcp.keyRing`,
//! as the API server stores what the chart renders, and the templates'
//! refusals of incomplete values.

use super::{Names, RELEASE, chart, merge, values};
use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ServiceAccount, Volume};
use keyward_e2e::helm::Helm;
use kube::{Api, Client};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const VAULT: &str = "https://acme-prod.vault.azure.net";
const OPERATOR_ID: &str = "11111111-2222-3333-4444-555555555555";
const WEBHOOK_ID: &str = "66666666-7777-8888-9999-000000000000";
const TENANT: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
const KEY_RING: &str = "projects/demo/locations/europe-west1/keyRings/keyward";
const TOKEN_FILE: &str = "/var/run/secrets/azure/tokens/azure-identity-token";

/// Values with `providers.azure` enabled, both client ids, and `extra`.
fn azure(extra: Value) -> Value {
    let mut settings = json!({
        "enabled": true, "operatorClientId": OPERATOR_ID, "webhookClientId": WEBHOOK_ID,
    });
    merge(&mut settings, extra);
    values(json!({ "providers": { "azure": settings } }))
}

pub async fn check(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let helm = Helm::from_env()?;
    refusals(&helm, ns).await?;
    let parts = [(&names.operator, OPERATOR_ID), (&names.webhook, WEBHOOK_ID)];
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);

    // AKS: pod label and ServiceAccount annotations; the AKS webhook
    // injects AZURE_* and the token.
    let mut aks = azure(json!({ "vaultUrl": VAULT, "tenantId": TENANT }));
    merge(
        &mut aks,
        json!({ "providers": { "gcp": { "enabled": true, "keyRing": KEY_RING } } }),
    );
    helm.install(RELEASE, &chart(), ns, &aks)
        .await
        .context("install, azure AKS mode")?;
    for (name, id) in parts {
        let annotations = accounts.get(name).await?.metadata.annotations;
        let annotations = annotations.unwrap_or_default();
        ensure!(
            annotations
                .get("azure.workload.identity/client-id")
                .map(String::as_str)
                == Some(id)
                && annotations
                    .get("azure.workload.identity/tenant-id")
                    .map(String::as_str)
                    == Some(TENANT),
            "{name}: annotations {annotations:?}"
        );
        let (labels, env, volumes) = pod_parts(client, ns, name).await?;
        ensure!(
            labels
                .get("azure.workload.identity/use")
                .map(String::as_str)
                == Some("true"),
            "{name}: labels {labels:?}"
        );
        ensure!(
            env.get("KEYWARD_AZURE_VAULT_URL").map(String::as_str) == Some(VAULT)
                && env.get("KEYWARD_GCP_KEY_RING").map(String::as_str) == Some(KEY_RING),
            "{name}: env {env:?}"
        );
        ensure!(
            !env.contains_key("AZURE_CLIENT_ID")
                && !volumes.iter().any(|v| v.name == "azure-identity-token"),
            "{name}: AKS mode must leave AZURE_* and the token to the AKS webhook"
        );
    }

    // Elsewhere: the chart projects the token and sets AZURE_* itself.
    let projected = azure(json!({
        "vaultUrl": VAULT, "tenantId": TENANT, "aksWorkloadIdentityWebhook": false,
        "caSecret": { "name": "proxy-ca" },
    }));
    helm.upgrade(RELEASE, &chart(), ns, &projected)
        .await
        .context("upgrade, azure projected token")?;
    for (name, id) in parts {
        let annotations = accounts.get(name).await?.metadata.annotations;
        ensure!(
            !annotations
                .unwrap_or_default()
                .contains_key("azure.workload.identity/client-id"),
            "{name}: still annotated for the AKS webhook"
        );
        let (labels, env, volumes) = pod_parts(client, ns, name).await?;
        ensure!(
            !labels.contains_key("azure.workload.identity/use"),
            "{name}: labels {labels:?}"
        );
        for (var, want) in [
            ("AZURE_CLIENT_ID", id),
            ("AZURE_TENANT_ID", TENANT),
            ("AZURE_FEDERATED_TOKEN_FILE", TOKEN_FILE),
            ("KEYWARD_AZURE_CA_FILE", "/etc/keyward/azure-ca/ca.crt"),
        ] {
            ensure!(
                env.get(var).map(String::as_str) == Some(want),
                "{name}: {var} in {env:?}"
            );
        }
        ensure!(
            !env.contains_key("KEYWARD_GCP_KEY_RING"),
            "{name}: gcp is off now"
        );
        let token = (volumes.iter())
            .find(|v| v.name == "azure-identity-token")
            .and_then(|v| v.projected.as_ref())
            .and_then(|p| p.sources.as_ref())
            .and_then(|s| s.first())
            .and_then(|s| s.service_account_token.as_ref())
            .with_context(|| format!("{name}: no projected azure-identity-token"))?;
        ensure!(
            token.audience.as_deref() == Some("api://AzureADTokenExchange")
                && token.expiration_seconds == Some(3600),
            "{name}: token projection {token:?}"
        );
        ensure!(
            volumes.iter().any(|v| v.name == "azure-ca"),
            "{name}: no azure-ca volume"
        );
    }
    helm.uninstall(RELEASE, ns).await?;
    Ok(())
}

/// Incomplete or unsafe values fail the render with what to set.
async fn refusals(helm: &Helm, ns: &str) -> Result<()> {
    let refused = [
        (
            values(json!({ "providers": { "azure": { "enabled": true } } })),
            "needs providers.azure.vaultUrl",
        ),
        (
            azure(json!({ "vaultUrl": "http://acme.vault.azure.net" })),
            "https:// URL without a path",
        ),
        (
            values(json!({ "providers": { "azure": {
                "enabled": true, "vaultUrl": VAULT, "operatorClientId": OPERATOR_ID,
            } } })),
            "providers.azure.webhookClientId",
        ),
        (
            azure(json!({ "vaultUrl": VAULT, "aksWorkloadIdentityWebhook": false })),
            "set providers.azure.tenantId",
        ),
        (
            azure(json!({ "vaultUrl": VAULT, "skipChallengeResourceCheck": true })),
            "only for a Key Vault test double",
        ),
        (
            values(json!({ "providers": { "gcp": { "enabled": true } } })),
            "needs providers.gcp.keyRing",
        ),
    ];
    for (bad, want) in refused {
        let error = match helm.install(RELEASE, &chart(), ns, &bad).await {
            Ok(_) => bail!("helm install accepted {bad}"),
            Err(error) => format!("{error:#}"),
        };
        ensure!(
            error.contains(want),
            "the error for {bad} should say `{want}`: {error}"
        );
    }
    Ok(())
}

type PodParts = (
    BTreeMap<String, String>,
    BTreeMap<String, String>,
    Vec<Volume>,
);

/// Deployment `name`'s pod labels, first container's env and volumes.
async fn pod_parts(client: &Client, ns: &str, name: &str) -> Result<PodParts> {
    let template = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await?
        .spec
        .context("spec")?
        .template;
    let labels = template.metadata.and_then(|m| m.labels).unwrap_or_default();
    let pod = template.spec.context("pod spec")?;
    let env = (pod.containers[0]
        .env
        .clone()
        .unwrap_or_default()
        .into_iter())
    .map(|e| (e.name, e.value.unwrap_or_default()))
    .collect();
    Ok((labels, env, pod.volumes.unwrap_or_default()))
}
