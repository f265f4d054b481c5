//! A KMS key made outside Keyward, as Terraform makes one (moto), adopted
//! by a ManagedKey's `spec.existingKey`: Ready on that very key, seals and
//! rotates like any other; deleting the ManagedKey (no `deletionPolicy`:
//! `Retain` for an adopted key) leaves the key enabled and unscheduled. A
//! reference to no key is Degraded with what to check.

use crate::{REGION, in_process, key_id, seal, wait_sealed_ready};
use anyhow::{Context as _, Result, ensure};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::crds;
use keyward_e2e::keys::{degraded_reason, ready, wait_key};
use keyward_operator::Config;
use keyward_provider_select::{ProviderArgs, Providers};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

pub async fn run(client: Client, ns: String, args: ProviderArgs) -> Result<()> {
    let providers = Providers::connect(&args).await?;
    let aws = providers.aws().context("AWS KMS is configured")?;
    // What `resource "aws_kms_key"` plus `aws_kms_alias` make.
    let kms = aws.client();
    let made = kms
        .create_key()
        .description("payments (terraform)")
        .send()
        .await?
        .key_metadata
        .context("CreateKey metadata")?;
    let terraform_id = made.key_id().to_owned();
    kms.create_alias()
        .alias_name("alias/terraform/payments")
        .target_key_id(&terraform_id)
        .send()
        .await?;

    crds::install_keyward_crds(&client).await?;
    let dir = tempfile::tempdir()?;
    let mut config = Config::for_namespace(&ns, dir.path().join("audit.log"));
    config.providers = args.clone();
    let operator = in_process::start_operator(&client, config);
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
    for (name, reference) in [
        ("payments", "alias/terraform/payments"),
        ("nothing", "alias/terraform/nothing"),
    ] {
        let key: ManagedKey = serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": name},
            "spec": {"provider": {"aws": {"region": REGION}}, "deletionWindow": "7d",
                     "existingKey": reference},
        }))?;
        keys.create(&PostParams::default(), &key).await?;
    }
    let payments = wait_key(&keys, "payments", "Ready", ready).await?;
    let id = key_id(&payments)?;
    ensure!(id == format!("alias/keyward/keyward/{ns}/payments"), "{id}");
    let v1 = aws
        .client()
        .describe_key()
        .key_id(format!("{id}/v1"))
        .send()
        .await?;
    ensure!(
        v1.key_metadata.as_ref().map(|m| m.key_id()) == Some(terraform_id.as_str()),
        "version 1 is not the Terraform key: {v1:?}"
    );
    let nothing = wait_key(&keys, "nothing", "Degraded", |k| {
        degraded_reason(k).is_some()
    })
    .await?;
    let reason = degraded_reason(&nothing).unwrap_or_default();
    ensure!(
        reason.starts_with("ProviderRefused")
            && reason.contains("no KMS key `alias/terraform/nothing`"),
        "{reason}"
    );

    // Sealed, rotated, still open: an adopted key is a Keyward key.
    seal(
        &client,
        &ns,
        &providers,
        "payments",
        &id,
        "terraform-made-this",
    )
    .await?;
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    wait_sealed_ready(&sealed, "payments").await?;
    let rotate = json!({"metadata": {"annotations": {"keyward.io/rotate": "1"}}});
    keys.patch("payments", &PatchParams::default(), &Patch::Merge(&rotate))
        .await?;
    wait_key(&keys, "payments", "on version 2", |k| {
        k.status.as_ref().and_then(|s| s.primary_version) == Some(2)
    })
    .await?;

    // Deleted: the Terraform key stays as it was.
    sealed.delete("payments", &DeleteParams::default()).await?;
    keyward_e2e::keys::delete_all(&keys).await?;
    let after = aws
        .client()
        .describe_key()
        .key_id(&terraform_id)
        .send()
        .await?
        .key_metadata
        .context("metadata")?;
    ensure!(
        after.deletion_date().is_none() && after.enabled(),
        "deleting the ManagedKey touched the Terraform key: {after:?}"
    );
    let audit = std::fs::read_to_string(dir.path().join("audit.log"))?;
    ensure!(
        audit.contains("key.adopt-existing") && audit.contains("key.retain"),
        "{audit}"
    );
    operator.abort();
    let _ = operator.await;
    Ok(())
}
