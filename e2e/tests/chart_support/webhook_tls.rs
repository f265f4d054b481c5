//! The webhook's self-bootstrapped TLS Secret under the chart's RBAC: the
//! chart creates it empty, the webhook (here its bootstrap code, run as the
//! webhook's ServiceAccount through impersonation) fills it with get and
//! update only, `helm upgrade` keeps what it wrote, and the webhook can
//! create no Secret, in particular not the operator's keyring.

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use super::Names;

/// A client that acts as ServiceAccount `ns/sa` (impersonation by the
/// tests' admin user): real API calls under the chart's RBAC.
pub async fn as_service_account(ns: &str, sa: &str) -> Result<Client> {
    let mut config = kube::Config::infer().await?;
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{ns}:{sa}"));
    Ok(Client::try_from(config)?)
}

pub fn tls_secret(names: &Names) -> String {
    format!("{}-tls", names.webhook)
}

/// The names a webhook replica of the release would put in its certificate.
fn sans(ns: &str, names: &Names) -> Vec<String> {
    vec![format!("{}.{ns}.svc", names.webhook)]
}

/// Right after install: the Secret is Helm's, Opaque and empty.
pub async fn check_created_empty(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let name = tls_secret(names);
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&name)
        .await
        .with_context(|| format!("the chart did not create Secret {name}"))?;
    ensure!(
        secret.type_.as_deref() == Some("Opaque"),
        "{name}: type {:?}",
        secret.type_
    );
    ensure!(
        secret.data.as_ref().is_none_or(|d| d.is_empty()),
        "{name} is not empty after install"
    );
    let managed_by = secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("app.kubernetes.io/managed-by"));
    ensure!(
        managed_by.map(String::as_str) == Some("Helm"),
        "{name}: managed-by {managed_by:?}"
    );
    Ok(())
}

/// Two webhook replicas start at once against the chart's empty Secret, as
/// the webhook's ServiceAccount: one fills it, the other loses the update
/// race and adopts the same certificate. Returns the stored CA.
pub async fn fill_as_two_replicas(ns: &str, names: &Names) -> Result<String> {
    let webhook = as_service_account(ns, &names.webhook).await?;
    let name = tls_secret(names);
    let sans = sans(ns, names);
    let (a, b) = tokio::join!(
        keyward_webhook::tls::shared_bootstrap(&webhook, ns, &name, &sans),
        keyward_webhook::tls::shared_bootstrap(&webhook, ns, &name, &sans),
    );
    let (a, b) = (
        a.context("replica 1 bootstrapping as the webhook")?,
        b.context("replica 2 bootstrapping as the webhook")?,
    );
    ensure!(
        a.ca_pem == b.ca_pem && a.cert_pem == b.cert_pem,
        "two racing replicas serve different certificates"
    );
    let stored = stored_ca(&webhook, ns, &name).await?;
    ensure!(stored == a.ca_pem, "the Secret holds another CA");
    println!("webhook TLS: two racing replicas filled {name} with one CA (get/update only)");
    Ok(stored)
}

/// The CA in the TLS Secret, as the webhook reads it.
pub async fn stored_ca(client: &Client, ns: &str, name: &str) -> Result<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    let ca = secret
        .data
        .and_then(|d| d.get("ca.crt").cloned())
        .with_context(|| format!("Secret {name} has no ca.crt"))?;
    Ok(String::from_utf8(ca.0)?)
}

/// The webhook's ServiceAccount cannot create Secrets: not the keyring's
/// two (planted before the operator's first start they would hold keys
/// an attacker knows), not any other.
pub async fn check_webhook_creates_no_secret(ns: &str, names: &Names) -> Result<()> {
    let webhook = as_service_account(ns, &names.webhook).await?;
    let api = Api::<Secret>::namespaced(webhook, ns);
    for name in [
        "keyward-local-keyring",
        "keyward-local-root-key",
        "anything",
    ] {
        let planted: Secret = serde_json::from_value(json!({
            "metadata": { "name": name },
            "data": { "root.key": ByteString(vec![0; 32]) },
        }))?;
        match api.create(&PostParams::default(), &planted).await {
            Err(kube::Error::Api(status)) if status.code == 403 => {}
            other => bail!("the webhook created Secret {ns}/{name}: {other:?}"),
        }
    }
    Ok(())
}

/// The Secret deleted: the webhook cannot make it again and says that the
/// chart does; `helm upgrade` then restores it (empty) for the webhook.
pub async fn check_missing_secret_error(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let name = tls_secret(names);
    Api::<Secret>::namespaced(client.clone(), ns)
        .delete(&name, &Default::default())
        .await?;
    let webhook = as_service_account(ns, &names.webhook).await?;
    let error =
        match keyward_webhook::tls::shared_bootstrap(&webhook, ns, &name, &sans(ns, names)).await {
            Ok(_) => bail!("the webhook bootstrapped without its Secret"),
            Err(error) => format!("{error:#}"),
        };
    ensure!(
        error.contains("may not create it") && error.contains("the Helm chart creates it"),
        "unclear error for a missing TLS Secret: {error}"
    );
    println!("webhook TLS without its Secret: {error}");
    Ok(())
}

/// A TLS Secret of that name that the release did not create (an older
/// chart's webhook created its own): install neither fails on it nor
/// takes it over, the webhook keeps serving its CA, and uninstall leaves it.
pub async fn check_foreign_secret_left_alone(
    client: &Client,
    ns: &str,
    names: &Names,
    helm: &keyward_e2e::helm::Helm,
) -> Result<()> {
    let name = tls_secret(names);
    // As the webhook did before the chart created the Secret.
    let old = keyward_webhook::tls::shared_bootstrap(client, ns, &name, &sans(ns, names)).await?;
    helm.install(super::RELEASE, &super::chart(), ns, &super::base_values())
        .await
        .context("helm install next to an existing TLS Secret")?;
    let secret = Api::<Secret>::namespaced(client.clone(), ns)
        .get(&name)
        .await?;
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    ensure!(
        !annotations.contains_key("meta.helm.sh/release-name"),
        "the chart took over {name}: {annotations:?}"
    );
    ensure!(
        stored_ca(client, ns, &name).await? == old.ca_pem,
        "install changed {name}"
    );
    let webhook = as_service_account(ns, &names.webhook).await?;
    let read =
        keyward_webhook::tls::shared_bootstrap(&webhook, ns, &name, &sans(ns, names)).await?;
    ensure!(read.ca_pem == old.ca_pem, "the webhook made a new CA");
    helm.uninstall(super::RELEASE, ns).await?;
    ensure!(
        Api::<Secret>::namespaced(client.clone(), ns)
            .get_opt(&name)
            .await?
            .is_some(),
        "uninstall deleted {name}, which the release did not create"
    );
    println!("webhook TLS: an existing {name} (not Helm's) is used as it is");
    Ok(())
}
