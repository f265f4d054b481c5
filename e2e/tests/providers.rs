//! The operator and the webhook's unseal path against real provider peers:
//! AWS KMS (moto on loopback, reached through `--aws-endpoint-url`) and
//! PKCS#11 (a SoftHSM2 token). The operator runs in-process with the same
//! `Config` the binary parses, its provider flags set; the webhook's unseal
//! API is served in-process over TLS with the providers built exactly as
//! `keyward-webhook serve` builds them from the same flags.
//!
//! For each provider: ManagedKey -> Ready with a real key at the peer
//! (checked through the provider crate's describe), SealedSecret sealed with
//! it -> Ready, and POST /v1/unseal with a pod-bound token opens it. A key
//! naming a provider the operator was not started with is Degraded.

mod providers_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::{KeyProvider, provider::KeyInfo};
use keyward_crds::conditions::{self, READY};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::keys::{degraded_reason, ready, wait_key};
use keyward_e2e::{crds, with_temp_ns};
use keyward_operator::{Config, http::Readiness, metrics::Metrics};
use keyward_provider_select::{ProviderArgs, Providers};
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, UnsealRequest, Unsealer};
use keyward_webhook::{AppState, inject, router, server, tls};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use providers_support::peers::{Moto, SOFTHSM_MODULE, SoftHsm, TOKEN};
use serde_json::{Value, json};

const KEYRING: &str = "keyward-local-keyring";
const ROOT_KEY: &str = "keyward-local-root-key";
const REGION: &str = "eu-west-1";

/// One test function: the peers' settings live in the process environment
/// (SoftHSM2 reads SOFTHSM2_CONF, the AWS SDK its credential chain), set
/// once here before any runtime thread or client exists.
#[test]
fn aws_kms_and_pkcs11_keys_are_created_sealed_and_unsealed() {
    let moto = Moto::start().expect("moto");
    let hsm = SoftHsm::start().expect("SoftHSM2");
    set_peer_environment(&hsm.conf);
    let args = ProviderArgs {
        aws_region: Some(REGION.into()),
        aws_endpoint_url: Some(moto.endpoint.clone()),
        pkcs11_module: Some(SOFTHSM_MODULE.into()),
        pkcs11_token_label: Some(TOKEN.into()),
        pkcs11_pin_file: Some(hsm.pin_file.clone()),
        ..ProviderArgs::default()
    };
    let endpoint = moto.endpoint.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(with_temp_ns(move |client, ns| async move {
        let started = Instant::now();
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let mut config = Config::for_namespace(&ns, dir.path().join("audit.log"));
        config.providers = args.clone();
        let operator = start_operator(&client, config);

        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        for (name, provider) in [
            ("kms", json!({"aws": {"region": REGION}})),
            ("hsm", json!({"pkcs11": {"tokenLabel": TOKEN}})),
            ("elsewhere", json!({"aws": {"region": "us-east-2"}})),
            (
                "cloud",
                json!({"gcp": {"project": "acme-prod", "location": "global", "keyRing": "r"}}),
            ),
        ] {
            keys.create(&PostParams::default(), &managed_key(name, provider)?)
                .await?;
        }

        let kms = wait_key(&keys, "kms", "Ready", ready).await?;
        println!("aws ManagedKey Ready after {:?}", started.elapsed());
        let kms_id = key_id(&kms)?;
        // The providers as the webhook builds them from the same flags (the
        // operator has created the local root key Secret by now).
        let local = keyward_kubeutil::keyring_secret::open_local_provider(
            client.clone(),
            &ns,
            KEYRING,
            ROOT_KEY,
        )
        .await?;
        let providers = Arc::new(Providers::connect(&args).await?.with_local(Arc::new(local)));
        ensure!(providers.names() == ["local", "aws", "pkcs11"]);

        ensure!(kms_id.starts_with("alias/keyward/"), "{kms_id}");
        let at_moto = aws_describe(&endpoint, &kms_id).await?;
        check_peer_key("moto", &kms, &at_moto)?;

        let hsm_key = wait_key(&keys, "hsm", "Ready", ready).await?;
        let hsm_id = key_id(&hsm_key)?;
        ensure!(hsm_id.starts_with("p11k-"), "{hsm_id}");
        let at_token = providers.describe_key(&hsm_id).await?;
        check_peer_key("SoftHSM2", &hsm_key, &at_token)?;

        // Keys the operator cannot serve: Degraded with what to do.
        let elsewhere = wait_key(&keys, "elsewhere", "Degraded", |k| {
            degraded_reason(k).is_some()
        })
        .await?;
        let reason = degraded_reason(&elsewhere).unwrap_or_default();
        ensure!(
            reason.starts_with("ProviderMismatch: ") && reason.contains(REGION),
            "{reason}"
        );
        let cloud = wait_key(&keys, "cloud", "Degraded", |k| degraded_reason(k).is_some()).await?;
        let reason = degraded_reason(&cloud).unwrap_or_default();
        ensure!(
            reason.starts_with("ProviderNotConfigured: ") && reason.contains("--gcp-key-ring"),
            "{reason}"
        );

        // Seal one SealedSecret per key, as `keyward seal` does online.
        let values = [("kms", "moto-kept-this"), ("hsm", "softhsm-kept-this")];
        for (key, value) in values {
            let id = if key == "kms" { &kms_id } else { &hsm_id };
            seal(&client, &ns, providers.as_ref(), key, id, value).await?;
        }
        let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        for (name, _) in values {
            wait_sealed_ready(&sealed, name).await?;
        }

        // The webhook's unseal API, over TLS, with a token bound to a pod
        // annotated for both SealedSecrets.
        let (url, ca_pem, webhook) = serve_unseal(&client, &providers, dir.path()).await?;
        let pod = reader_pod(&client, &ns).await?;
        let token = token_for(&client, &ns, &pod).await?;
        let request = UnsealRequest {
            token,
            namespace: ns.clone(),
            pod: pod.name_any(),
            secrets: values.iter().map(|(n, _)| (*n).to_owned()).collect(),
        };
        let opened = inject::unseal_once(&format!("{url}/v1/unseal"), &ca_pem, &request)
            .await
            .with_context(|| {
                let audit = std::fs::read_to_string(dir.path().join("unseal.log"));
                format!("unseal audit: {}", audit.unwrap_or_default())
            })?;
        for (name, value) in values {
            let got = opened
                .secrets
                .get(name)
                .and_then(|items| items.get("password"))
                .with_context(|| format!("no {name}/password in the unseal response"))?;
            let plain = base64::engine::general_purpose::STANDARD.decode(got.as_bytes())?;
            ensure!(plain == value.as_bytes(), "{name} opened to other bytes");
        }
        webhook.abort();
        println!(
            "sealed and unsealed through AWS KMS and PKCS#11 after {:?}",
            started.elapsed()
        );

        // Deleting the keys (their SealedSecrets first: dependants block it)
        // schedules deletion at the peers; then stop.
        sealed
            .delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        keys.delete_collection(&DeleteParams::default(), &ListParams::default())
            .await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !keys.list(&ListParams::default()).await?.items.is_empty() {
            ensure!(
                Instant::now() < deadline,
                "ManagedKeys kept their finalizers"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let at_moto = aws_describe(&endpoint, &kms_id).await?;
        ensure!(
            at_moto.deletion_at.is_some(),
            "the KMS key is not scheduled for deletion: {at_moto:?}"
        );
        operator.abort();
        let _ = operator.await;
        let text = std::fs::read_to_string(dir.path().join("audit.log"))?;
        ensure!(text.contains(&kms_id) && text.contains(&hsm_id));
        Ok(())
    }));
    drop(moto);
}

#[allow(unsafe_code)]
fn set_peer_environment(softhsm_conf: &Path) {
    // SAFETY: called once, from the only test of this binary, before any
    // runtime thread or client exists; nothing reads the environment
    // concurrently. SoftHSM2 takes its config only from SOFTHSM2_CONF, and
    // the operator's AWS client uses the SDK's default credential chain,
    // which is what production uses (IRSA there, fixed keys for moto here).
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", softhsm_conf);
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
}

fn start_operator(client: &Client, config: Config) -> tokio::task::JoinHandle<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "keyward_operator=info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
    let client = client.clone();
    tokio::spawn(async move {
        let metrics = Arc::new(Metrics::default());
        if let Err(error) =
            keyward_operator::run(client, &config, metrics, Readiness::default()).await
        {
            panic!("operator stopped: {error}");
        }
    })
}

fn managed_key(name: &str, provider: Value) -> Result<ManagedKey> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": name},
        "spec": {"provider": provider, "deletionWindow": "7d"},
    }))?)
}

fn key_id(key: &ManagedKey) -> Result<String> {
    key.status
        .as_ref()
        .and_then(|s| s.provider_key_id.clone())
        .context("no status.providerKeyId")
}

/// The key as moto holds it, read by the AWS provider crate directly.
async fn aws_describe(endpoint: &str, key_id: &str) -> Result<KeyInfo> {
    let config = keyward_provider_aws::AwsKmsConfig {
        region: Some(REGION.into()),
        endpoint: Some(endpoint.to_owned()),
        ..Default::default()
    };
    let aws = keyward_provider_aws::AwsKmsProvider::connect(config).await?;
    Ok(aws.describe_key(key_id).await?)
}

/// The peer's key is owned by the ManagedKey and matches its status.
fn check_peer_key(peer: &str, key: &ManagedKey, at_peer: &KeyInfo) -> Result<()> {
    let status = key.status.as_ref().context("status")?;
    ensure!(
        at_peer.owner == key.uid(),
        "{peer}: key owned by {:?}, not {:?}",
        at_peer.owner,
        key.uid()
    );
    ensure!(
        Some(at_peer.primary_version) == status.primary_version && at_peer.primary_version == 1,
        "{peer}: primary {} vs status {:?}",
        at_peer.primary_version,
        status.primary_version
    );
    ensure!(at_peer.deletion_at.is_none(), "{peer}: {at_peer:?}");
    Ok(())
}

async fn seal(
    client: &Client,
    ns: &str,
    provider: &dyn KeyProvider,
    key: &str,
    key_id: &str,
    value: &str,
) -> Result<()> {
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: key.to_owned(),
        // What the webhook rebuilds from the SealedSecret: `<namespace>/<key>`.
        key_ref: format!("{ns}/{key}"),
    };
    let items: BTreeMap<String, SecretBytes> = [(
        "password".to_owned(),
        SecretBytes::new(value.as_bytes().to_vec()),
    )]
    .into();
    let sealed = seal_secret(&target, Wrapping::Provider { provider, key_id }, &items).await?;
    let secret: SealedSecret = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": key},
        "spec": {"keyRef": {"name": key}, "encryptedData": sealed},
    }))?;
    Api::<SealedSecret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(())
}

async fn wait_sealed_ready(api: &Api<SealedSecret>, name: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let secret = api.get(name).await?;
        if let Some(status) = secret
            .status
            .as_ref()
            .filter(|s| conditions::is_true(&s.conditions, READY))
        {
            ensure!(
                status.key_versions == [("password".to_owned(), 1)].into(),
                "{name}: {status:?}"
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "SealedSecret {name} not Ready within 60 s: {:?}",
            secret.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `/v1/unseal` served in-process over TLS on 127.0.0.1, as `serve` does.
async fn serve_unseal(
    client: &Client,
    providers: &Arc<Providers>,
    dir: &Path,
) -> Result<(String, String, tokio::task::JoinHandle<()>)> {
    let made = tls::bootstrap(&["127.0.0.1".to_owned()])?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let state = AppState {
        injector: Arc::new(InjectorConfig {
            image: "unused".into(),
            image_pull_policy: None,
            unseal_url: format!("{url}/v1/unseal"),
            ca_pem: Some(made.ca_pem.clone()),
        }),
        unsealer: Some(Arc::new(Unsealer {
            client: client.clone(),
            provider: Arc::new(DecryptOnly::new(
                Arc::clone(providers) as Arc<dyn KeyProvider>
            )),
            audit: Arc::new(keyward_core::audit::AuditLog::new(&dir.join("unseal.log"))),
            limiter: RateLimiter::new(5, 1.0),
            audience: keyward_webhook::annotations::AUDIENCE.to_owned(),
        })),
    };
    let tls_config = tls::server_config(&made.cert_pem, &made.key_pem)?;
    let task = tokio::spawn(server::serve_tls(listener, tls_config, router(state)));
    Ok((url, made.ca_pem, task))
}

/// A pod annotated for both SealedSecrets that no node matches: it never
/// runs (nothing is pulled), but it exists, which is all a bound token needs.
async fn reader_pod(client: &Client, ns: &str) -> Result<Pod> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "reader", "annotations": {"keyward.io/inject": "kms,hsm"}},
        "spec": {
            "nodeSelector": {"keyward.io/e2e-no-such-node": "true"},
            "containers": [{"name": "app", "image": "keyward.local/never-pulled:e2e"}],
        },
    }))?;
    Ok(Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await?)
}

async fn token_for(client: &Client, ns: &str, pod: &Pod) -> Result<String> {
    let audience = keyward_webhook::annotations::AUDIENCE;
    keyward_e2e::pods::pod_bound_token(client, ns, pod, audience).await
}
