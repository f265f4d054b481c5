//! The operator and the webhook's unseal path against real provider peers:
//! AWS KMS (moto on loopback, reached through `--aws-endpoint-url`) and
//! PKCS#11 (a SoftHSM2 token). The operator runs in-process with the same
//! `Config` the binary parses, its provider flags set; the webhook's unseal
//! API is served in-process over TLS with the providers built exactly as
//! `keyward-webhook serve` builds them from the same flags.
//!
//! For each provider: ManagedKey -> Ready with a real key at the peer
//! (checked through the provider crate's describe), SealedSecret sealed with
//! it by `keyward seal` through the API server (`providers_support::
//! online_seal`) -> Ready, and POST /v1/unseal with a pod-bound token opens it. A key
//! naming a provider the operator was not started with is Degraded.
//!
//! Cloud KMS: the real `keyward-operator` and `keyward-webhook serve`
//! binaries as processes, reaching the Cloud KMS REST test double
//! (`keyward-gcp-double`, in this process) through `--gcp-endpoint` and
//! `--gcp-anonymous` (the operator through `KEYWARD_GCP_ANONYMOUS`): key
//! Ready, SealedSecret Ready, unseal, rotation by annotation (version 2 in
//! the double), deletion (every version `DESTROY_SCHEDULED`).
//!
//! A wrapped local root key (`providers_support::wrapped_root`): the
//! operator with `--root-key-wrapping-key` at moto; copies of the keyring
//! Secrets, an older keyring written back, erasure of destroyed material.
//!
//! Azure Key Vault (`providers_support::azure`): the same binaries against
//! the Key Vault double, signed in through Workload Identity with a token
//! the API server issued: Ready, tags, another vault refused, offline seal,
//! unseal, rotation, Destroyed soft-deletes and moving back recovers.
//!
//! A hung KMS: the webhook binary with `--aws-endpoint-url` at a server that
//! never answers (`providers_support::hung`).

#[path = "support/in_process.rs"]
mod in_process;
mod providers_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use base64::Engine;
use k8s_openapi::api::core::v1::Pod;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::{KeyProvider, provider::KeyInfo, provider::Tags};
use keyward_crds::conditions::{self, READY};
use keyward_crds::{ManagedKey, SealedSecret};
use keyward_e2e::keys::{degraded_reason, ready, wait_key};
use keyward_e2e::{cluster, crds, with_temp_ns};
use keyward_gcp_double::{Double, KEY_RING};
use keyward_operator::Config;
use keyward_provider_select::{ProviderArgs, Providers};
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::ServerLimits;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, UnsealRequest, UnsealResponse, Unsealer};
use keyward_webhook::{AppState, admission_router, api_router, inject, server, tls};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use providers_support::binaries::{self, Process};
use providers_support::online_seal;
use providers_support::peers::{Moto, SOFTHSM_MODULE, SoftHsm, TOKEN};
use serde_json::{Value, json};

const KEYRING: &str = "keyward-local-keyring";
const ROOT_KEY: &str = "keyward-local-root-key";
const REGION: &str = "eu-west-1";

/// Held by each test of this binary for its whole run, so they run one at
/// a time: the AWS/PKCS#11 test sets the process environment, which must
/// not happen while another test's threads may read it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `test` in a fresh namespace with moto started (and the SoftHSM2
/// token when `hsm`), given the operator's flags for them.
fn with_peers<F, Fut>(hsm: bool, test: F)
where
    F: FnOnce(Client, String, ProviderArgs) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let _alone = one_at_a_time();
    let moto = Moto::start().expect("moto");
    let args = if hsm {
        let hsm = softhsm();
        set_peer_environment(&hsm.conf);
        aws_and_pkcs11(&moto, hsm)
    } else {
        set_aws_credentials();
        aws_only(&moto)
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(with_temp_ns(move |client, ns| test(client, ns, args)));
    drop(moto);
}

/// The operator's flags for moto and the shared SoftHSM2 token.
fn aws_and_pkcs11(moto: &Moto, hsm: &SoftHsm) -> ProviderArgs {
    ProviderArgs {
        pkcs11_module: Some(SOFTHSM_MODULE.into()),
        pkcs11_token_label: Some(TOKEN.into()),
        pkcs11_pin_file: Some(hsm.pin_file.clone()),
        ..aws_only(moto)
    }
}

fn aws_only(moto: &Moto) -> ProviderArgs {
    ProviderArgs {
        aws_region: Some(REGION.into()),
        aws_endpoint_url: Some(moto.endpoint.clone()),
        ..ProviderArgs::default()
    }
}

/// One token for the whole binary: SoftHSM2 reads its configuration once
/// per process, when the module is first initialised, so every test here
/// uses this one (its directory outlives the process; it is a temp dir).
fn softhsm() -> &'static SoftHsm {
    static HSM: OnceLock<SoftHsm> = OnceLock::new();
    HSM.get_or_init(|| SoftHsm::start().expect("SoftHSM2"))
}

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The peers' settings live in the process environment (SoftHSM2 reads
/// SOFTHSM2_CONF, the AWS SDK its credential chain), set here before any
/// runtime thread or client of this test exists.
#[test]
fn aws_kms_and_pkcs11_keys_are_created_sealed_and_unsealed() {
    let _alone = one_at_a_time();
    let moto = Moto::start().expect("moto");
    let hsm = softhsm();
    set_peer_environment(&hsm.conf);
    let args = aws_and_pkcs11(&moto, hsm);
    let endpoint = moto.endpoint.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(with_temp_ns(move |client, ns| async move {
        let started = Instant::now();
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let mut config = Config::for_namespace(&ns, dir.path().join("audit.log"));
        config.providers = args.clone();
        let operator = in_process::start_operator(&client, config);

        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
        let mut tagged = managed_key("kms", json!({"aws": {"region": REGION}}))?;
        tagged.spec.tags = first_tags();
        keys.create(&PostParams::default(), &tagged).await?;
        for (name, provider) in [
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
        // The operator has created the local root key Secret by now.
        let providers = webhook_providers(&client, &ns, &args).await?;
        ensure!(providers.names() == ["local", "aws", "pkcs11"]);

        ensure!(kms_id.starts_with("alias/keyward/"), "{kms_id}");
        let at_moto = aws_describe(&endpoint, &kms_id).await?;
        check_peer_key("moto", &kms, &at_moto)?;
        let at_moto = TagPeer::Moto {
            endpoint: &endpoint,
            key_id: &kms_id,
        };
        tags_follow_the_spec(&at_moto, &keys, "kms").await?;

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

        // One SealedSecret per key, sealed by the CLI through the API
        // server: a data key from the webhook's admission, the value
        // encrypted in the CLI.
        let data_keys = online_seal::answer_data_keys(&client, &ns, &providers, dir.path()).await?;
        let values = [("kms", "moto-kept-this"), ("hsm", "softhsm-kept-this")];
        let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), &ns);
        for (key, value) in values {
            let secret = data_keys.seal(key, value).await?;
            sealed.create(&PostParams::default(), &secret).await?;
        }
        data_keys.stop().await;
        for (name, _) in values {
            wait_sealed_ready(&sealed, name).await?;
        }

        // The webhook's unseal API, over TLS, with a token bound to a pod
        // annotated for both SealedSecrets.
        let (url, ca_pem, webhook) = serve_unseal(&client, &providers, dir.path()).await?;
        let pod = reader_pod(&client, &ns, "kms,hsm").await?;
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
        check_opened(&opened, &values)?;
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
        keyward_e2e::keys::delete_all(&keys).await?;
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

/// Two clusters and one KMS and HSM: the second is refused the keys the
/// first claims, and takes them over once the first is gone
/// (`providers_support::claims`).
#[test]
fn a_second_cluster_is_refused_claimed_keys_until_the_first_is_gone() {
    with_peers(true, providers_support::claims::run);
}

/// A KMS key made as Terraform makes one, adopted by reference and kept
/// when its ManagedKey goes (`providers_support::adopted`).
#[test]
fn a_terraform_made_kms_key_is_adopted_and_outlives_its_managed_key() {
    with_peers(false, providers_support::adopted::run);
}

/// The cluster torn down and rebuilt from the same manifests: KMS, HSM and
/// (restored from its backup) local keys come back on the same provider
/// keys, and a pod opens every value (`providers_support::rebuild`).
#[test]
fn a_cluster_rebuilt_from_git_gets_its_keys_and_values_back() {
    with_peers(true, providers_support::rebuild::run);
}

/// A hung AWS KMS (a loopback server that accepts and never answers) under
/// the real webhook binary: unseals of local secrets keep answering while
/// the AWS ones are stuck, and those fail at --provider-timeout-seconds
/// with a 503 that names the provider, also in the injector's final error.
#[test]
fn a_hung_kms_fails_its_unseals_at_the_deadline_and_holds_up_no_others() {
    let _alone = one_at_a_time();
    let moto = Moto::start().expect("moto");
    set_aws_credentials();
    let endpoint = moto.endpoint.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(with_temp_ns(move |client, ns| async move {
        providers_support::hung::run(client, ns, endpoint).await
    }));
    drop(moto);
}

/// The local root key wrapped by AWS KMS: copies of the keyring Secrets
/// alone open nothing, an older keyring written back is refused, destroyed
/// material leaves the stored keyring when due (`wrapped_root`).
#[test]
fn a_wrapped_local_root_key_keeps_copies_closed_and_refuses_rollback() {
    let _alone = one_at_a_time();
    let moto = Moto::start().expect("moto");
    let other_moto = Moto::start().expect("a second moto: another KMS");
    set_aws_credentials();
    let (kms, other_kms) = (moto.endpoint.clone(), other_moto.endpoint.clone());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(with_temp_ns(move |client, ns| async move {
        providers_support::wrapped_root::run(client, ns, kms, other_kms).await
    }));
    drop((moto, other_moto));
}

/// Cloud KMS through the binaries as they ship: the double runs in this
/// process, the operator and the webhook are child processes that reach it
/// only through their provider flags.
#[test]
fn cloud_kms_keys_go_through_the_operator_and_webhook_binaries() {
    let _alone = one_at_a_time();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(with_temp_ns(move |client, ns| async move {
        let operator_bin =
            keyward_e2e::binaries::build_binary("keyward-operator", "keyward-operator", false)
                .await?;
        let webhook_bin =
            keyward_e2e::binaries::build_binary("keyward-webhook", "keyward-webhook", false)
                .await?;
        crds::install_keyward_crds(&client).await?;
        let kms = Double::start().await;
        let dir = tempfile::tempdir()?;
        let gcp_flags = vec![
            format!("--gcp-key-ring={KEY_RING}"),
            format!("--gcp-endpoint={}", kms.endpoint()),
        ];
        // The operator takes the switch from its variable (as the chart
        // sets it), the webhook from the flag.
        let operator = binaries::operator(
            &operator_bin,
            &ns,
            dir.path(),
            &gcp_flags,
            &[("KEYWARD_GCP_ANONYMOUS", "true")],
        )?;
        let mut run = CloudKms {
            client,
            ns,
            kms,
            dir,
            webhook_bin,
            gcp_flags,
            operator,
            webhook: None,
        };
        let started = Instant::now();
        let outcome = run.flow().await;
        outcome.with_context(|| run.logs())?;
        println!(
            "Cloud KMS through the binaries: created, sealed, unsealed, rotated, deleted in {:?}",
            started.elapsed()
        );
        Ok(())
    }));
}

/// The Cloud KMS case's peers and processes.
struct CloudKms {
    client: Client,
    ns: String,
    kms: Double,
    dir: tempfile::TempDir,
    webhook_bin: PathBuf,
    gcp_flags: Vec<String>,
    operator: Process,
    webhook: Option<Process>,
}

impl CloudKms {
    /// The binaries' last lines, for a failure.
    fn logs(&self) -> String {
        let mut logs = self.operator.log_tail(60);
        if let Some(webhook) = &self.webhook {
            logs = format!("{logs}\n{}", webhook.log_tail(30));
        }
        logs
    }

    /// Key Ready, sealed, unsealed, rotated, deleted; checked in the double.
    async fn flow(&mut self) -> Result<()> {
        let (client, ns, kms) = (&self.client, self.ns.as_str(), &self.kms);
        let dir = self.dir.path();

        let started = Instant::now();
        let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
        let (project, location, ring) = match KEY_RING.split('/').collect::<Vec<_>>()[..] {
            ["projects", project, "locations", location, "keyRings", ring] => {
                (project, location, ring)
            }
            _ => anyhow::bail!("unexpected key ring {KEY_RING}"),
        };
        let provider = json!({"gcp": {"project": project, "location": location, "keyRing": ring}});
        let mut tagged = managed_key("gcp", provider)?;
        tagged.spec.tags = first_tags();
        keys.create(&PostParams::default(), &tagged).await?;

        // Ready, with a CryptoKey in the double owned by the ManagedKey.
        let key = wait_key(&keys, "gcp", "Ready", ready).await;
        self.operator.check_running()?;
        let key = key?;
        println!("gcp ManagedKey Ready after {:?}", started.elapsed());
        let id = key_id(&key)?;
        ensure!(id.starts_with(&format!("{KEY_RING}/cryptoKeys/")), "{id}");
        let stored = kms.key(&id).context("no CryptoKey in the double")?;
        let owner = keyward_provider_gcp::naming::owner_label_value(&format!(
            "{}/{}",
            key.namespace().unwrap_or_default(),
            key.name_any()
        ));
        ensure!(
            stored.labels.get("keyward-owner") == Some(&owner),
            "owner label {:?}, not {owner}",
            stored.labels.get("keyward-owner"),
        );
        ensure!(
            stored.purpose == "ENCRYPT_DECRYPT" && stored.primary == Some(1),
            "{stored:?}"
        );
        let at_double = TagPeer::Double { kms, id: &id };
        tags_follow_the_spec(&at_double, &keys, "gcp").await?;
        let stored = kms.key(&id).context("no CryptoKey in the double")?;
        ensure!(
            stored.labels.get("keyward-owner") == Some(&owner),
            "an edit of spec.tags took the owner label: {:?}",
            stored.labels
        );
        // The same flags in this process: a provider like the binaries' own.
        let args = ProviderArgs {
            gcp_key_ring: Some(KEY_RING.into()),
            gcp_endpoint: Some(kms.endpoint()),
            gcp_anonymous: true,
            ..ProviderArgs::default()
        };
        let providers = Providers::connect(&args).await?;
        check_peer_key(
            "the Cloud KMS double",
            &key,
            &providers.describe_key(&id).await?,
        )?;

        // Sealed with it (online, as `keyward seal` does), accepted by the operator.
        let value = "cloud-kms-kept-this";
        seal(client, ns, &providers, "gcp", &id, value).await?;
        let sealed: Api<SealedSecret> = Api::namespaced(client.clone(), ns);
        wait_sealed_ready(&sealed, "gcp").await?;

        // The webhook binary opens it for a pod: Decrypt at the double.
        let webhook_args = [&self.gcp_flags[..], &["--gcp-anonymous".to_owned()]].concat();
        let webhook = binaries::webhook(&self.webhook_bin, ns, dir, &webhook_args, &[]).await?;
        kms.reset_calls();
        let plain = password_opened_for_a_pod(client, ns, dir, &webhook, "gcp").await;
        self.webhook = Some(webhook.process);
        let plain = plain?;
        ensure!(plain == value.as_bytes(), "gcp opened to other bytes");
        ensure!(
            kms.calls("Decrypt") >= 1,
            "the webhook did not call Decrypt"
        );
        println!(
            "unsealed through the webhook binary after {:?}",
            started.elapsed()
        );

        // Rotation by annotation: version 2 in the double, primary there too.
        let annotate = json!({"metadata": {"annotations": {"keyward.io/rotate": "e2e-1"}}});
        keys.patch("gcp", &PatchParams::default(), &Patch::Merge(&annotate))
            .await?;
        wait_key(&keys, "gcp", "rotated to version 2", |k| {
            k.status.as_ref().and_then(|s| s.primary_version) == Some(2)
        })
        .await?;
        let stored = kms.key(&id).context("CryptoKey gone")?;
        ensure!(
            stored.versions == 2 && stored.primary == Some(2),
            "after rotation: {stored:?}"
        );

        // Deletion (the SealedSecret first: dependants block it) schedules the
        // destruction of every version in the double.
        sealed.delete("gcp", &DeleteParams::default()).await?;
        keys.delete("gcp", &DeleteParams::default()).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while keys.get_opt("gcp").await?.is_some() {
            self.operator.check_running()?;
            ensure!(
                Instant::now() < deadline,
                "the ManagedKey kept its finalizer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stored = kms.key(&id).context("CryptoKey gone")?;
        ensure!(
            stored
                .version_states
                .values()
                .all(|state| *state == "DESTROY_SCHEDULED"),
            "after deletion: {stored:?}"
        );
        ensure!(
            providers.describe_key(&id).await?.deletion_at.is_some(),
            "the provider does not see the key scheduled for deletion"
        );
        let audit = std::fs::read_to_string(dir.join("audit.log"))?;
        ensure!(audit.contains(&id), "the operator's audit log lacks {id}");
        Ok(())
    }
}

/// Azure Key Vault through the binaries, with Workload Identity against
/// the double's Entra endpoint (`providers_support::azure`).
#[test]
fn azure_key_vault_keys_go_through_the_operator_and_webhook_binaries() {
    let _alone = one_at_a_time();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(with_temp_ns(
        providers_support::azure::key_vault_through_the_binaries,
    ));
}

#[allow(unsafe_code)]
fn set_peer_environment(softhsm_conf: &Path) {
    // SAFETY: as for `set_aws_credentials`.
    unsafe {
        std::env::set_var("SOFTHSM2_CONF", softhsm_conf);
    }
    set_aws_credentials();
}

#[allow(unsafe_code)]
fn set_aws_credentials() {
    // SAFETY: called once per test, holding ONE_AT_A_TIME (so no other test
    // of this binary runs), before this test's runtime thread or client
    // exists; nothing reads the environment concurrently. SoftHSM2 takes its
    // config only from SOFTHSM2_CONF, and the AWS clients (the operator's,
    // and the webhook binary's, which inherits them) use the SDK's default
    // credential chain, which is what production uses (IRSA there, fixed
    // keys for moto here).
    unsafe {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
}

fn first_tags() -> Tags {
    [("team", "payments"), ("cost-center", "c4711")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Where a key's tags are read back: moto (ListResourceTags, through the
/// AWS provider crate), the Cloud KMS double's stored CryptoKey labels, or
/// the Key Vault double's tags on the key's newest version.
enum TagPeer<'a> {
    Moto {
        endpoint: &'a str,
        key_id: &'a str,
    },
    Double {
        kms: &'a Double,
        id: &'a str,
    },
    Azure {
        vault: &'a keyward_azure_double::Double,
        name: &'a str,
    },
}

impl TagPeer<'_> {
    fn name(&self) -> &'static str {
        match self {
            TagPeer::Moto { .. } => "moto",
            TagPeer::Double { .. } => "the Cloud KMS double",
            TagPeer::Azure { .. } => "the Key Vault double",
        }
    }

    /// The user's tags there, without Keyward's own.
    async fn tags(&self) -> Result<Tags> {
        match self {
            TagPeer::Moto { endpoint, key_id } => {
                let config = keyward_provider_aws::AwsKmsConfig {
                    region: Some(REGION.into()),
                    endpoint: Some((*endpoint).to_owned()),
                    ..Default::default()
                };
                let aws = keyward_provider_aws::AwsKmsProvider::connect(config).await?;
                Ok(aws.tags(key_id).await?)
            }
            TagPeer::Double { kms, id } => {
                let stored = kms.key(id).context("no CryptoKey in the double")?;
                Ok(stored
                    .labels
                    .into_iter()
                    .filter(|(name, _)| !name.starts_with("keyward-"))
                    .collect())
            }
            TagPeer::Azure { vault, name } => {
                let stored = vault.key(name).context("no key in the Key Vault double")?;
                let newest = stored.versions.last().context("a key without versions")?;
                Ok((newest.tags.iter())
                    .filter(|(name, _)| !name.starts_with("keyward-"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect())
            }
        }
    }
}

/// `spec.tags` are at the peer once the key is Ready, and an edit (one
/// changed, one removed, one added) reaches it too.
async fn tags_follow_the_spec(at: &TagPeer<'_>, keys: &Api<ManagedKey>, name: &str) -> Result<()> {
    let peer = at.name();
    let first = first_tags();
    let created = at.tags().await?;
    ensure!(
        created == first,
        "{peer}: tags after create {created:?}, not {first:?}"
    );
    let edited: Tags = [("team", "billing"), ("env", "prod")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let patch = json!({"spec": {"tags": {"team": "billing", "env": "prod", "cost-center": null}}});
    keys.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_key(keys, name, "tags synced", |k| {
        k.status.as_ref().is_some_and(|s| s.tags == edited)
    })
    .await?;
    let now = at.tags().await?;
    ensure!(
        now == edited,
        "{peer}: tags after an edit {now:?}, not {edited:?}"
    );
    println!("{peer}: tags {first:?} after create, {now:?} after an edit");
    Ok(())
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

/// The peer's key is owned by the ManagedKey (`namespace/name`) and
/// matches its status.
fn check_peer_key(peer: &str, key: &ManagedKey, at_peer: &KeyInfo) -> Result<()> {
    let status = key.status.as_ref().context("status")?;
    let owner = format!("{}/{}", key.namespace().unwrap_or_default(), key.name_any());
    // Cloud KMS labels hold it encoded.
    let label = keyward_provider_gcp::naming::owner_label_value(&owner);
    ensure!(
        at_peer.owner.as_deref() == Some(owner.as_str())
            || at_peer.owner.as_deref() == Some(label.as_str()),
        "{peer}: key owned by {:?}, not {owner}",
        at_peer.owner
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
        access: Vec::new(),
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

/// The providers as the webhook builds them from the same flags, with the
/// namespace's in-cluster keyring.
async fn webhook_providers(
    client: &Client,
    ns: &str,
    args: &ProviderArgs,
) -> Result<Arc<Providers>> {
    let local = keyward_kubeutil::keyring_secret::open_local_provider(
        client.clone(),
        ns,
        KEYRING,
        ROOT_KEY,
    )
    .await?;
    Ok(Arc::new(
        Providers::connect(args).await?.with_local(Arc::new(local)),
    ))
}

/// The `password` of SealedSecret `name` as the webhook binary opens it for
/// a starting pod (POST /v1/unseal with the pod's bound token).
async fn password_opened_for_a_pod(
    client: &Client,
    ns: &str,
    dir: &Path,
    webhook: &binaries::Webhook,
    name: &str,
) -> Result<Vec<u8>> {
    let pod = reader_pod(client, ns, name).await?;
    let request = UnsealRequest {
        token: token_for(client, ns, &pod).await?,
        namespace: ns.to_owned(),
        pod: pod.name_any(),
        secrets: vec![name.to_owned()],
    };
    let url = format!("{}/v1/unseal", webhook.url);
    let opened = inject::unseal_once(&url, &webhook.ca_pem, &request)
        .await
        .with_context(|| {
            let audit = std::fs::read_to_string(dir.join("unseal.log"));
            format!("unseal audit: {}", audit.unwrap_or_default())
        })?;
    let got = opened
        .secrets
        .get(name)
        .and_then(|items| items.get("password"))
        .with_context(|| format!("no {name}/password in the unseal response"))?;
    Ok(base64::engine::general_purpose::STANDARD.decode(got.as_bytes())?)
}

/// Each SealedSecret's `password` came back as the value sealed.
fn check_opened(opened: &UnsealResponse, values: &[(&str, &str)]) -> Result<()> {
    for (name, value) in values {
        let got = opened
            .secrets
            .get(*name)
            .and_then(|items| items.get("password"))
            .with_context(|| format!("no {name}/password in the unseal response"))?;
        let plain = base64::engine::general_purpose::STANDARD.decode(got.as_bytes())?;
        ensure!(plain == value.as_bytes(), "{name} opened to other bytes");
    }
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
    // The tenant API only: nothing here registers admission.
    serve_webhook(client, providers, &dir.join("unseal.log"), Listener::Api).await
}

/// Which of the webhook's two listeners to serve.
enum Listener {
    Admission,
    Api,
}

/// One of the webhook's routers over `providers`, in-process over TLS on
/// 127.0.0.1: its URL, CA and task.
async fn serve_webhook(
    client: &Client,
    providers: &Arc<Providers>,
    audit_log: &Path,
    listener_kind: Listener,
) -> Result<(String, String, tokio::task::JoinHandle<()>)> {
    let made = tls::bootstrap(&["127.0.0.1".to_owned()])?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    let state = webhook_state(client, providers, &url, &made.ca_pem, audit_log);
    let tls_config = tls::server_config(&made.cert_pem, &made.key_pem)?;
    let task = match listener_kind {
        Listener::Admission => tokio::spawn(server::serve_tls(
            listener,
            tls_config,
            admission_router(state),
            ServerLimits::admission(),
        )),
        Listener::Api => tokio::spawn(server::serve_tls(
            listener,
            tls_config,
            api_router(state),
            ServerLimits::api(),
        )),
    };
    Ok((url, made.ca_pem, task))
}

/// The webhook's shared state over `providers`, as `serve` builds it.
fn webhook_state(
    client: &Client,
    providers: &Arc<Providers>,
    url: &str,
    ca_pem: &str,
    audit_log: &Path,
) -> AppState {
    AppState {
        injector: Arc::new(InjectorConfig {
            image: cluster::busybox_image().0,
            image_pull_policy: None,
            unseal_url: format!("{url}/v1/unseal"),
            ca_pem: Some(ca_pem.to_owned()),
            default_delivery: Default::default(),
        }),
        unsealer: Some(Arc::new(Unsealer {
            client: client.clone(),
            provider: Arc::new(DecryptOnly::new(
                Arc::clone(providers) as Arc<dyn KeyProvider>
            )),
            audit: Arc::new(keyward_core::audit::AuditLog::new(audit_log)),
            limiter: RateLimiter::new(5, 1.0),
            audience: keyward_webhook::annotations::AUDIENCE.to_owned(),
            injector_image: cluster::busybox_image().0,
        })),
    }
}

/// A pod shaped as admitted for `secrets` whose injector sleeps
/// (`pods::starting_pod`): while it runs, the pod's token may unseal.
async fn reader_pod(client: &Client, ns: &str, secrets: &str) -> Result<Pod> {
    reader_pod_named(client, ns, "reader", secrets).await
}

async fn reader_pod_named(client: &Client, ns: &str, name: &str, secrets: &str) -> Result<Pod> {
    let (image, pull) = cluster::busybox_image();
    keyward_e2e::pods::starting_pod(client, ns, name, secrets, (&image, pull)).await
}

async fn token_for(client: &Client, ns: &str, pod: &Pod) -> Result<String> {
    let audience = keyward_webhook::annotations::AUDIENCE;
    keyward_e2e::pods::pod_bound_token(client, ns, pod, audience).await
}
