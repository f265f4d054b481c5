//! The local keyring's root key wrapped by AWS KMS (moto), with the operator
//! in-process started as the binary is with `--root-key-wrapping-key`:
//!
//! - only the wrapped root key is stored; a copy of the keyring and
//!   root-key Secrets (what etcd or its backup holds) opens nothing, neither
//!   without the KMS nor with another KMS; with the KMS it opens;
//! - an older keyring written back into its Secret is refused by a process
//!   that saw a newer one and by a freshly started one;
//! - destroyed material leaves the stored keyring seconds after it is due;
//! - turning wrapping on for a keyring whose root key is in the clear wraps
//!   that key (nothing re-encrypted, nothing lost); a clear key that differs
//!   from the wrapped one, or a keyring whose root key is gone, stops the
//!   operator instead of starting a new key.

use crate::{KEYRING, REGION, ROOT_KEY, in_process, key_id, managed_key, seal, wait_sealed_ready};
use anyhow::{Context as _, Result, ensure};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, open_secret};
use keyward_core::local::LocalProvider;
use keyward_core::provider::{DeletionTarget, KeyAlgorithm, KeyProvider, KeySpec};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::keys::{ready, wait_key};
use keyward_e2e::{crds, namespace};
use keyward_kubeutil::keyring_secret::{self, Location, generation_config_map};
use keyward_kubeutil::root_key_secret::{self, Wrapping, wrapped_secret_name};
use keyward_operator::Config;
use keyward_provider_select::{ProviderArgs, Providers};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const VALUE: &str = "only-with-the-kms";

fn aws(endpoint: &str) -> ProviderArgs {
    ProviderArgs {
        aws_region: Some(REGION.into()),
        aws_endpoint_url: Some(endpoint.to_owned()),
        ..ProviderArgs::default()
    }
}

/// A KMS key for wrapping, created at `kms` the way an administrator would.
async fn wrapping_key(kms: &Providers) -> Result<String> {
    let spec = aes_key("local-root");
    let aws = kms.aws().context("AWS KMS is configured")?;
    Ok(aws.create_key(&spec).await?.key_id)
}

fn aes_key(name: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm: KeyAlgorithm::Aes256,
        owner: None,
        description: None,
    }
}

fn at<'a>(ns: &'a str, wrapping: Option<Wrapping<'a>>) -> Location<'a> {
    Location {
        wrapping,
        ..Location::clear(ns, KEYRING, ROOT_KEY)
    }
}

pub async fn run(client: Client, ns: String, kms: String, other_kms: String) -> Result<()> {
    crds::install_keyward_crds(&client).await?;
    let external = Providers::connect(&aws(&kms)).await?;
    let wrap_key = wrapping_key(&external).await?;
    let wrapping = Wrapping {
        key_id: &wrap_key,
        provider: &external,
    };
    let dir = tempfile::tempdir()?;
    let mut config = Config::for_namespace(&ns, dir.path().join("audit.log"));
    config.providers = ProviderArgs {
        root_key_wrapping_key: Some(wrap_key.clone()),
        ..aws(&kms)
    };
    let operator = in_process::start_operator(&client, config);

    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
    keys.create(
        &PostParams::default(),
        &managed_key("app", json!({"local": {}}))?,
    )
    .await?;
    let app = key_id(&wait_key(&keys, "app", "Ready", ready).await?)?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    ensure!(
        secrets.get_opt(ROOT_KEY).await?.is_none(),
        "a root key is stored in the clear although wrapping is on"
    );
    let wrapped = secrets.get(&wrapped_secret_name(ROOT_KEY)).await?;
    ensure!(
        wrapped.immutable == Some(true),
        "the wrapped root key Secret is mutable"
    );

    // The webhook's view, opened from the same flags; it seals as `keyward seal` does.
    let webhook =
        keyring_secret::open_local_provider_at(client.clone(), at(&ns, Some(wrapping))).await?;
    seal(&client, &ns, &webhook, "app", &app, VALUE).await?;
    let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
    wait_sealed_ready(&sealed, "app").await?;

    copies_alone_open_nothing(&client, &ns, &sealed, wrapping, &other_kms).await?;
    an_older_keyring_is_refused(&client, &ns, &keys, (&webhook, &app), wrapping).await?;
    destroyed_material_is_erased_when_due(&client, &ns, wrapping).await?;
    operator.abort();
    turning_wrapping_on_keeps_the_key_in_use(&client, wrapping).await?;
    let _ = operator.await;
    Ok(())
}

/// The SealedSecret's value, opened through `provider`.
async fn open_app(sealed: &Api<SealedSecret>, ns: &str, provider: &dyn KeyProvider) -> Result<()> {
    let secret = sealed.get("app").await?;
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: "app".into(),
        key_ref: format!("{ns}/app"),
        access: Vec::new(),
    };
    let opened = open_secret(&target, provider, &secret.spec.encrypted_data)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.item, e.error))?;
    let value = opened.get("password").map(SecretBytes::expose);
    ensure!(value == Some(VALUE.as_bytes()), "opened to other bytes");
    Ok(())
}

/// Both Secrets copied into another namespace, as a restore from an etcd
/// backup would bring them: nothing opens without the KMS that wrapped the
/// root key; with it, the SealedSecret opens.
async fn copies_alone_open_nothing(
    client: &Client,
    ns: &str,
    sealed: &Api<SealedSecret>,
    wrapping: Wrapping<'_>,
    other_kms: &str,
) -> Result<()> {
    let copy_ns = namespace::create_temp_ns(client).await?;
    let outcome = async {
        let from: Api<Secret> = Api::namespaced(client.clone(), ns);
        let to: Api<Secret> = Api::namespaced(client.clone(), &copy_ns);
        for name in [KEYRING.to_owned(), wrapped_secret_name(ROOT_KEY)] {
            let original = from.get(&name).await?;
            let copy = Secret {
                metadata: ObjectMeta {
                    name: Some(name),
                    ..ObjectMeta::default()
                },
                data: original.data,
                ..Secret::default()
            };
            to.create(&PostParams::default(), &copy).await?;
        }

        let error = refusal(
            keyring_secret::open_local_provider_at(client.clone(), at(&copy_ns, None)).await,
        )?;
        ensure!(error.contains("the root key is wrapped by"), "{error}");

        // Another KMS, with a key of the same alias: it cannot unwrap.
        let theirs = Providers::connect(&aws(other_kms)).await?;
        ensure!(
            wrapping_key(&theirs).await? == wrapping.key_id,
            "same alias at their KMS"
        );
        let stolen = Wrapping {
            key_id: wrapping.key_id,
            provider: &theirs,
        };
        let error = refusal(
            keyring_secret::open_local_provider_at(client.clone(), at(&copy_ns, Some(stolen)))
                .await,
        )?;
        ensure!(error.contains("did not unwrap the root key"), "{error}");

        // A legitimate restore, with the KMS: everything opens.
        let restored =
            keyring_secret::open_local_provider_at(client.clone(), at(&copy_ns, Some(wrapping)))
                .await?;
        open_app(sealed, ns, &restored).await?;
        println!("the copied Secrets open nothing without the KMS, and everything with it");
        Ok(())
    }
    .await;
    Api::<Namespace>::all(client.clone())
        .delete(&copy_ns, &DeleteParams::background())
        .await?;
    outcome
}

fn refusal<T>(result: Result<T, keyring_secret::Error>) -> Result<String> {
    match result {
        Ok(_) => anyhow::bail!("opened"),
        Err(e) => Ok(e.to_string()),
    }
}

/// The keyring Secret's data as stored.
async fn keyring_data(secrets: &Api<Secret>) -> Result<BTreeMap<String, k8s_openapi::ByteString>> {
    secrets
        .get(KEYRING)
        .await?
        .data
        .context("keyring Secret without data")
}

async fn write_keyring(
    secrets: &Api<Secret>,
    data: BTreeMap<String, k8s_openapi::ByteString>,
) -> Result<()> {
    let mut secret = secrets.get(KEYRING).await?;
    secret.data = Some(data);
    secrets
        .replace(KEYRING, &PostParams::default(), &secret)
        .await?;
    Ok(())
}

/// A copy of the keyring taken before a rotation, written back after it:
/// refused by the running webhook view and by a fresh process; the newest
/// keyring written back is accepted again.
async fn an_older_keyring_is_refused(
    client: &Client,
    ns: &str,
    keys: &Api<ManagedKey>,
    (webhook, app): (&LocalProvider, &str),
    wrapping: Wrapping<'_>,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let old = keyring_data(&secrets).await?;
    keys.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"keyward.io/rotate": "1"}}})),
    )
    .await?;
    wait_key(keys, "app", "primary version 2", |key| {
        key.status.as_ref().and_then(|s| s.primary_version) == Some(2)
    })
    .await?;
    ensure!(webhook.describe_key(app).await?.primary_version == 2);
    let newest = keyring_data(&secrets).await?;
    let recorded = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(&generation_config_map(KEYRING))
        .await?;
    println!("recorded keyring generation: {:?}", recorded.data);

    write_keyring(&secrets, old).await?;
    let error = webhook
        .describe_key(app)
        .await
        .err()
        .context("the running process read the older keyring")?;
    ensure!(
        error.to_string().contains("an older copy was written back"),
        "{error}"
    );
    let fresh =
        keyring_secret::open_local_provider_at(client.clone(), at(ns, Some(wrapping))).await?;
    let error = fresh
        .describe_key(app)
        .await
        .err()
        .context("a fresh process read the older keyring")?;
    ensure!(
        error.to_string().contains("an older copy was written back"),
        "{error}"
    );
    ensure!(error.to_string().contains("delete configmap"), "{error}");

    write_keyring(&secrets, newest).await?;
    ensure!(fresh.describe_key(app).await?.primary_version == 2);
    ensure!(webhook.describe_key(app).await?.primary_version == 2);
    println!("an older keyring written back was refused; the newest one is accepted");
    Ok(())
}

/// The stored material of `key`'s version `version`, decrypted from the
/// keyring Secret as it is (nothing purged on the way).
async fn stored_material(
    secrets: &Api<Secret>,
    root: &[u8; 32],
    key: &str,
    version: usize,
) -> Result<String> {
    let data = keyring_data(secrets).await?;
    let bytes = &data
        .get(keyward_core::local::KEYRING_FILE)
        .context("keyring item")?
        .0;
    let nonce_len = keyward_core::crypto::NONCE_LEN;
    let nonce: [u8; 12] = bytes[5..5 + nonce_len].try_into()?;
    let json = keyward_core::crypto::open(root, &nonce, &bytes[..5], &bytes[5 + nonce_len..])
        .map_err(|_| anyhow::anyhow!("the keyring does not decrypt under the root key"))?;
    let document: serde_json::Value = serde_json::from_slice(&json)?;
    let found = document["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["name"] == key))
        .context("key in the stored keyring")?;
    Ok(found["versions"][version - 1]["material"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// A version scheduled for destruction with no window, by another process:
/// the operator's erasure loop removes its bytes from the stored keyring.
async fn destroyed_material_is_erased_when_due(
    client: &Client,
    ns: &str,
    wrapping: Wrapping<'_>,
) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let root = root_key_secret::load(client.clone(), ns, ROOT_KEY, Some(wrapping)).await?;
    let root = root.to_dek();
    let other =
        keyring_secret::open_local_provider_at(client.clone(), at(ns, Some(wrapping))).await?;
    let spec = aes_key("scratch");
    let key = other.create_key(&spec).await?;
    other.rotate_key(&key.key_id).await?;
    other
        .schedule_deletion(&key.key_id, DeletionTarget::Version(1), Duration::ZERO)
        .await?;
    let due = Instant::now();
    ensure!(
        !stored_material(&secrets, root.expose(), "scratch", 1)
            .await?
            .is_empty(),
        "the material was already gone when scheduled"
    );
    loop {
        if stored_material(&secrets, root.expose(), "scratch", 1)
            .await?
            .is_empty()
        {
            break;
        }
        ensure!(
            due.elapsed() < Duration::from_secs(30),
            "still stored 30 s after it fell due"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(
        !stored_material(&secrets, root.expose(), "scratch", 2)
            .await?
            .is_empty(),
        "the primary version was erased too"
    );
    println!(
        "destroyed material left the stored keyring {:?} after it fell due",
        due.elapsed()
    );
    Ok(())
}

/// An installation that ran with the root key in the clear, started with
/// wrapping: the same key is wrapped and the keyring still opens. Then the
/// two ways a restore can go wrong are refused with what to do.
async fn turning_wrapping_on_keeps_the_key_in_use(
    client: &Client,
    wrapping: Wrapping<'_>,
) -> Result<()> {
    let ns = namespace::create_temp_ns(client).await?;
    let outcome = async {
        let clear = keyring_secret::local_provider_at(client.clone(), at(&ns, None)).await?;
        let spec = aes_key("before");
        let key = clear.create_key(&spec).await?;
        let context = [("keyward.io/namespace".to_owned(), ns.clone())].into();
        let dek = keyward_core::Dek::generate();
        let sealed = clear.wrap_dek(&key.key_id, &dek, &context).await?;

        let wrapped = keyring_secret::local_provider_at(client.clone(), at(&ns, Some(wrapping))).await?;
        let opened = wrapped.unwrap_dek(&sealed, &context).await?;
        ensure!(opened.expose() == dek.expose(), "the wrapped key is not the key in use");
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        ensure!(secrets.get_opt(&wrapped_secret_name(ROOT_KEY)).await?.is_some());
        ensure!(secrets.get_opt(ROOT_KEY).await?.is_some(), "the clear key is left to the administrator");

        // A clear key that is not the wrapped one: stop, name both.
        secrets.delete(ROOT_KEY, &DeleteParams::default()).await?;
        let other = Secret {
            metadata: ObjectMeta {
                name: Some(ROOT_KEY.into()),
                ..ObjectMeta::default()
            },
            data: Some([(root_key_secret::ROOT_KEY_ITEM.to_owned(), k8s_openapi::ByteString(vec![7; 32]))].into()),
            ..Secret::default()
        };
        secrets.create(&PostParams::default(), &other).await?;
        let error = refusal(keyring_secret::local_provider_at(client.clone(), at(&ns, Some(wrapping))).await)?;
        ensure!(error.contains("holds a different root key"), "{error}");

        // The root key gone while the keyring exists: no new key is made.
        secrets.delete(ROOT_KEY, &DeleteParams::default()).await?;
        secrets.delete(&wrapped_secret_name(ROOT_KEY), &DeleteParams::default()).await?;
        let error = refusal(keyring_secret::local_provider_at(client.clone(), at(&ns, Some(wrapping))).await)?;
        ensure!(error.contains("restore the root key Secret from backup"), "{error}");
        ensure!(
            secrets.get_opt(&wrapped_secret_name(ROOT_KEY)).await?.is_none(),
            "a new root key was stored"
        );
        println!("turning wrapping on kept the key in use; a mismatched or missing root key stops the start");
        Ok(())
    }
    .await;
    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::background())
        .await?;
    outcome
}
