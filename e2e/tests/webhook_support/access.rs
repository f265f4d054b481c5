//! `spec.access` is bound into each value (envelope version 2): a
//! namespace-scope value sealed for one ServiceAccount, copied into a
//! SealedSecret without `spec.access`, is refused at admission, and if it
//! gets past a down admission webhook it still does not open at unseal;
//! widening `spec.access` of the original is refused too.

use super::{PASSWORD, Webhook, injector_image, seal_password, token_for};
use anyhow::{Result, bail, ensure};
use keyward_core::envelope::{Scope, SecretTarget};
use keyward_crds::SealedSecret;
use keyward_e2e::{crds, pods, with_temp_ns};
use keyward_webhook::inject;
use keyward_webhook::unseal::UnsealRequest;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_value_sealed_for_one_service_account_opens_for_no_other() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let image = injector_image().await?;
        let dir = tempfile::tempdir()?;
        let restricted = sealed_for_api(&client, &ns).await?;
        let webhook = Webhook::start(&client, &ns, dir.path(), image).await?;
        let result = access_flow(&client, &ns, &webhook, restricted).await;
        if result.is_err() {
            println!("audit log:\n{}", webhook.audit_log());
        }
        webhook.stop(&client).await;
        result
    })
    .await;
}

async fn access_flow(
    client: &Client,
    ns: &str,
    webhook: &Webhook,
    restricted: SealedSecret,
) -> Result<()> {
    let secrets: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
    secrets.create(&PostParams::default(), &restricted).await?;
    let widened =
        "value was sealed for ServiceAccounts api but the SealedSecret's spec.access lets";

    // Copied without spec.access: refused at admission.
    let mut copy = restricted.clone();
    copy.metadata.name = Some("copied".into());
    copy.spec.access = None;
    match secrets.create(&PostParams::default(), &copy).await {
        Err(kube::Error::Api(status))
            if status.message.contains(widened)
                && status.message.contains("any ServiceAccount") =>
        {
            println!("copy without spec.access refused: {}", status.message);
        }
        other => bail!("a restricted value copied without spec.access was admitted: {other:?}"),
    }
    // The original's spec.access widened: refused at admission.
    let widen = json!({"spec": {"access": {"serviceAccounts": ["api", "intruder"]}}});
    match secrets
        .patch("restricted", &PatchParams::default(), &Patch::Merge(&widen))
        .await
    {
        Err(kube::Error::Api(status)) if status.message.contains("api, intruder") => {
            println!("widened spec.access refused: {}", status.message);
        }
        other => bail!("widening spec.access was admitted: {other:?}"),
    }

    // Past a down admission webhook, the copy is stored, but does not open.
    webhook.select_validation(client, "nowhere").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    while secrets.create(&dry, &copy).await.is_err() {
        ensure!(Instant::now() < deadline, "validation never went away");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    secrets.create(&PostParams::default(), &copy).await?;
    webhook.select_validation(client, ns).await?;
    let (image, pull) = (&webhook.injector.0, webhook.injector.1);
    let holder = pods::starting_pod(client, ns, "holder", "copied", (image, pull)).await?;
    let request = UnsealRequest {
        token: token_for(client, ns, &holder, "keyward").await?,
        namespace: ns.to_owned(),
        pod: "holder".into(),
        secrets: vec!["copied".into()],
    };
    let url = format!("{}/v1/unseal", webhook.api_url);
    match inject::unseal_once(&url, &webhook.ca_pem, &request).await {
        Err(error) if error.to_string().starts_with("denied") => {}
        other => bail!(
            "the copied value was not refused at unseal: {:?}",
            other.map(|_| "values")
        ),
    }
    let audit = webhook.audit_log();
    ensure!(
        audit.contains(widened) && !audit.contains(PASSWORD),
        "the audit log lacks why the copy did not open"
    );
    println!("copy past admission: denied at unseal, audited");
    Ok(())
}

/// SealedSecret `restricted`: one namespace-scope value sealed for
/// ServiceAccount `api`, under a fresh key of the namespace's keyring.
async fn sealed_for_api(client: &Client, ns: &str) -> Result<SealedSecret> {
    let target = SecretTarget {
        scope: Scope::Namespace,
        namespace: ns.to_owned(),
        secret_name: "restricted".into(),
        key_ref: format!("{ns}/db"),
        access: vec!["api".into()],
    };
    let encrypted = seal_password(client, ns, &format!("{ns}-restricted"), &target).await?;
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "restricted", "namespace": ns},
        "spec": {"keyRef": {"name": "db"}, "scope": "namespace",
                 "access": {"serviceAccounts": ["api"]}, "encryptedData": encrypted},
    }))?)
}
