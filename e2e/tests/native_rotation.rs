//! `KeyRotationPolicy` `strategy: Native` against a real API server and
//! moto's AWS KMS: the operator hands the schedule to the provider and
//! keeps it in line with the policy and the key's state.
//!
//! - Active key under a Native policy: rotation enabled at moto on the
//!   primary version's KMS key; `status.nativeRotation` says SameVersion.
//! - A manual rotation (a new Keyward version = a new KMS key) moves the
//!   native schedule onto the new primary.
//! - Suspend turns it off at the provider, resume back on; the policy
//!   moving to Managed turns it off for good.
//! - Cloud KMS (the in-process double, `--gcp-anonymous`): the schedule is
//!   set on the CryptoKey (period, `nextRotationTime` = version 1 + 90d);
//!   when the provider rotates, the operator adopts the new version as
//!   primary, deactivates the old one and says `RotatedByProvider`.
//! - The local provider has no native rotation: Degraded
//!   `NativeRotationUnavailable`, and Keyward keeps the schedule itself.

#[path = "support/in_process.rs"]
mod in_process;
#[allow(dead_code)]
#[path = "providers_support/peers.rs"]
mod peers;

use anyhow::{Context as _, Result, ensure};
use keyward_crds::{KeyRotationPolicy, ManagedKey, NativeRotationEffect};
use keyward_e2e::keys::{degraded_reason, ready, wait_key};
use keyward_e2e::{crds, with_temp_ns};
use keyward_gcp_double::{Double, KEY_RING};
use keyward_operator::Config;
use keyward_provider_aws::AwsKmsProvider;
use keyward_provider_select::ProviderArgs;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use peers::Moto;
use serde_json::{Value, json};
use std::time::Instant;

const REGION: &str = "eu-west-1";

#[test]
fn native_rotation_follows_the_policy_and_the_key_state() {
    let moto = Moto::start().expect("moto");
    // SAFETY: the only test of this binary, before any runtime thread or
    // client exists. The AWS SDK reads its credential chain from here, as
    // in production (IRSA there, fixed keys for moto here).
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let endpoint = moto.endpoint.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cloud_kms = runtime.block_on(Double::start());
    let cloud_endpoint = cloud_kms.endpoint();
    let cloud_kms = std::sync::Arc::new(cloud_kms);
    let double = cloud_kms.clone();
    runtime.block_on(with_temp_ns(move |client, ns| async move {
        let started = Instant::now();
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let audit_log = dir.path().join("audit.log");
        let mut config = Config::for_namespace(&ns, audit_log.clone());
        config.providers = ProviderArgs {
            aws_region: Some(REGION.into()),
            aws_endpoint_url: Some(endpoint.clone()),
            gcp_key_ring: Some(KEY_RING.into()),
            gcp_endpoint: Some(cloud_endpoint.clone()),
            gcp_anonymous: true,
            ..ProviderArgs::default()
        };
        let operator = in_process::start_operator(&client, config);
        let moto_kms = AwsKmsProvider::connect(keyward_provider_aws::AwsKmsConfig {
            region: Some(REGION.into()),
            endpoint: Some(endpoint.clone()),
            ..Default::default()
        })
        .await?;

        let policies: Api<KeyRotationPolicy> = Api::namespaced(client.clone(), &ns);
        policies
            .create(&PostParams::default(), &policy("native", "Native")?)
            .await?;
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        keys.create(
            &PostParams::default(),
            &key("kms", json!({"aws": {"region": REGION}}))?,
        )
        .await?;

        // On at the provider for version 1.
        let kms = wait_key(&keys, "kms", "natively rotating v1", |k| {
            ready(k) && native_version(k) == Some(1)
        })
        .await?;
        println!("native rotation on for v1 after {:?}", started.elapsed());
        let status = kms.status.clone().context("status")?;
        let native = status.native_rotation.clone().context("nativeRotation")?;
        ensure!(
            native.effect == NativeRotationEffect::SameVersion,
            "{native:?}"
        );
        ensure!(native.period.to_string() == "90d", "{native:?}");
        let key_id = status.provider_key_id.clone().context("providerKeyId")?;
        ensure!(moto_kms.native_rotation(&key_id).await?.enabled);

        // A manual rotation makes version 2 (its own KMS key): the schedule
        // moves onto it.
        annotate(&keys, "kms", "keyward.io/rotate", "now").await?;
        wait_key(&keys, "kms", "natively rotating v2", |k| {
            native_version(k) == Some(2) && primary(k) == Some(2)
        })
        .await?;
        ensure!(moto_kms.native_rotation(&key_id).await?.enabled);
        // Version 1's KMS key only decrypts now: its schedule is stopped.
        let v1_alias = keyward_provider_aws::naming::version_alias(&key_id, 1);
        let v1 = moto_kms
            .client()
            .describe_key()
            .key_id(&v1_alias)
            .send()
            .await?;
        let v1_key = v1
            .key_metadata()
            .context("v1 metadata")?
            .key_id()
            .to_owned();
        let v1_rotation = moto_kms
            .client()
            .get_key_rotation_status()
            .key_id(&v1_key)
            .send()
            .await?;
        ensure!(
            !v1_rotation.key_rotation_enabled(),
            "version 1's KMS key still rotates natively"
        );
        println!("moved to v2 after {:?}", started.elapsed());

        // Suspended: off at the provider; Active again: back on.
        set_state(&keys, "kms", "Suspended").await?;
        wait_key(&keys, "kms", "suspended, native off", |k| {
            state(k).as_deref() == Some("Suspended") && native_version(k).is_none()
        })
        .await?;
        ensure!(
            !moto_kms.native_rotation(&key_id).await?.enabled,
            "a suspended key still rotates at the provider"
        );
        set_state(&keys, "kms", "Active").await?;
        wait_key(&keys, "kms", "resumed, native on", |k| {
            ready(k) && native_version(k) == Some(2)
        })
        .await?;
        ensure!(moto_kms.native_rotation(&key_id).await?.enabled);

        // The policy moves to Managed: off, and Keyward's own schedule.
        policies
            .patch(
                "native",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"strategy": "Managed"}})),
            )
            .await?;
        let managed = wait_key(&keys, "kms", "managed again", |k| {
            native_version(k).is_none() && next_rotation(k).is_some()
        })
        .await?;
        ensure!(!moto_kms.native_rotation(&key_id).await?.enabled);
        println!("managed again after {:?}", started.elapsed());
        ensure!(primary(&managed) == Some(2));

        cloud_kms_rotation_is_adopted(&keys, &policies, &double).await?;
        println!("Cloud KMS rotation adopted after {:?}", started.elapsed());

        // The local provider cannot rotate natively: said, and covered.
        policies
            .create(&PostParams::default(), &policy("native-local", "Native")?)
            .await?;
        let mut local = key("local", json!({"local": {}}))?;
        local.spec.rotation_policy_ref = Some(keyward_crds::PolicyReference {
            name: "native-local".into(),
        });
        keys.create(&PostParams::default(), &local).await?;
        let local = wait_key(&keys, "local", "Degraded", |k| {
            ready(k) && degraded_reason(k).is_some()
        })
        .await?;
        let reason = degraded_reason(&local).unwrap_or_default();
        ensure!(
            reason.starts_with("NativeRotationUnavailable: ")
                && reason.contains("use strategy Managed"),
            "{reason}"
        );
        ensure!(
            next_rotation(&local).is_some() && native_version(&local).is_none(),
            "the local key has no schedule: {:?}",
            local.status
        );

        let audit = std::fs::read_to_string(&audit_log)?;
        let records = audit.matches("key.native-rotation").count();
        ensure!(records >= 4, "{records} native-rotation audit records");
        let adopted = audit
            .lines()
            .filter(|l| l.contains("key.rotate") && l.contains(r#""reason":"native""#))
            .count();
        ensure!(adopted == 1, "{adopted} audit records of a native rotation");
        operator.abort();
        Ok(())
    }));
}

/// Cloud KMS: the schedule lands on the CryptoKey, and a rotation the
/// provider makes becomes Keyward's next version.
async fn cloud_kms_rotation_is_adopted(
    keys: &Api<ManagedKey>,
    policies: &Api<KeyRotationPolicy>,
    double: &Double,
) -> Result<()> {
    let [project, location, ring] = match KEY_RING.split('/').collect::<Vec<_>>()[..] {
        ["projects", project, "locations", location, "keyRings", ring] => [project, location, ring],
        _ => anyhow::bail!("unexpected key ring {KEY_RING}"),
    };
    let provider = json!({"gcp": {"project": project, "location": location, "keyRing": ring}});
    // The AWS part moved policy `native` to Managed: a policy of its own.
    policies
        .create(&PostParams::default(), &policy("native-gcp", "Native")?)
        .await?;
    let mut cloud = key("cloud", provider)?;
    cloud.spec.rotation_policy_ref = Some(keyward_crds::PolicyReference {
        name: "native-gcp".into(),
    });
    keys.create(&PostParams::default(), &cloud).await?;
    let cloud = wait_key(keys, "cloud", "natively rotating v1", |k| {
        ready(k) && native_version(k) == Some(1)
    })
    .await?;
    let status = cloud.status.clone().context("status")?;
    let native = status.native_rotation.clone().context("nativeRotation")?;
    ensure!(
        native.effect == NativeRotationEffect::NewVersion,
        "{native:?}"
    );
    let crypto_key = status.provider_key_id.clone().context("providerKeyId")?;
    let held = double
        .key(&crypto_key)
        .context("no CryptoKey in the double")?;
    ensure!(
        held.rotation_period_secs == Some(90 * 86_400),
        "period at the double: {:?}",
        held.rotation_period_secs
    );
    let created = status.versions[0].created_at.clone().context("createdAt")?;
    let expected_next = created.0.as_second() + 90 * 86_400;
    ensure!(
        held.next_rotation_secs == Some(expected_next),
        "nextRotationTime {:?}, expected version 1 + 90d = {expected_next}",
        held.next_rotation_secs
    );
    let reported = native.next_rotation_at.context("nextRotationAt")?;
    ensure!(reported.0.as_second() == expected_next, "{reported:?}");

    // Google rotates on schedule. The operator looks again 2 minutes after
    // nextRotationTime; here a label change makes it look now.
    let made = double.fire_scheduled_rotation(&crypto_key)?;
    ensure!(made == 2, "the double made version {made}");
    let touch = json!({"metadata": {"labels": {"e2e-touch": "1"}}});
    keys.patch("cloud", &PatchParams::default(), &Patch::Merge(&touch))
        .await?;
    let adopted = wait_key(keys, "cloud", "version 2 adopted", |k| {
        primary(k) == Some(2) && native_version(k) == Some(2)
    })
    .await?;
    let versions = &adopted.status.as_ref().context("status")?.versions;
    let states: Vec<String> = versions.iter().map(|v| format!("{:?}", v.state)).collect();
    ensure!(states == ["Deactivated", "Active"], "{states:?}");

    // Deleted: the schedule goes first, or Cloud KMS would keep making
    // enabled versions of a key whose versions are all being destroyed.
    keys.delete("cloud", &Default::default()).await?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let held = double.key(&crypto_key).context("CryptoKey gone")?;
        let destroying = held
            .version_states
            .values()
            .all(|s| *s == "DESTROY_SCHEDULED");
        if destroying {
            ensure!(
                held.rotation_period_secs.is_none() && held.next_rotation_secs.is_none(),
                "a deleted key still rotates: {:?}",
                held.rotation_period_secs
            );
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "not scheduled for destruction: {:?}",
            held.version_states
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(())
}

fn policy(name: &str, strategy: &str) -> Result<KeyRotationPolicy> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "KeyRotationPolicy",
        "metadata": {"name": name},
        "spec": {"strategy": strategy, "rotationPeriod": "90d"},
    }))?)
}

fn key(name: &str, provider: Value) -> Result<ManagedKey> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": name},
        "spec": {
            "provider": provider,
            "deletionWindow": "7d",
            "rotationPolicyRef": {"name": "native"},
        },
    }))?)
}

async fn annotate(keys: &Api<ManagedKey>, name: &str, key: &str, value: &str) -> Result<()> {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    keys.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

async fn set_state(keys: &Api<ManagedKey>, name: &str, state: &str) -> Result<()> {
    let patch = json!({"spec": {"state": state}});
    keys.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn native_version(key: &ManagedKey) -> Option<u32> {
    Some(key.status.as_ref()?.native_rotation.as_ref()?.version)
}

fn primary(key: &ManagedKey) -> Option<u32> {
    key.status.as_ref()?.primary_version
}

fn next_rotation(key: &ManagedKey) -> Option<String> {
    Some(
        key.status
            .as_ref()?
            .next_rotation_at
            .as_ref()?
            .0
            .to_string(),
    )
}

fn state(key: &ManagedKey) -> Option<String> {
    let state = key.status.as_ref()?.state?;
    Some(format!("{state:?}"))
}
