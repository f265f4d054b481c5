//! Glue for `webhook_perf.rs`: the webhook served in-process with a chosen
//! provider stack, its registration, the injector image, a SealedSecret of
//! ten items, pod-bound tokens and percentiles. Copied in small from
//! `webhook.rs` (whose helpers are private to that test binary).

pub mod image;
pub mod registration;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::Pod;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_crds::SealedSecret;
use keyward_kubeutil::keyring_secret;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::server::{PreAuthLimits, ServerLimits};
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, Unsealer};
use keyward_webhook::{AppState, admission_router, server, tls};
use kube::api::PostParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;

pub const KEYRING: &str = "keyward-local-keyring";
pub const ROOT_KEY: &str = "keyward-local-root-key";
/// The SealedSecret every perf pod asks for.
pub const SECRET: &str = "ten";
pub const ITEMS: usize = 10;

/// The webhook on 127.0.0.1 with a fresh certificate, unsealing through
/// `provider` (already wrapped in whatever cache/counter the test wants).
pub struct Webhook {
    tasks: [JoinHandle<()>; 2],
    /// The admission listener.
    pub url: String,
    /// The tenant API listener.
    pub api_url: String,
    pub ca_pem: String,
}

impl Webhook {
    pub async fn start(
        client: &Client,
        provider: Arc<dyn KeyProvider>,
        audit_dir: &Path,
        injector_image: (String, &str),
    ) -> Result<Self> {
        let made = tls::bootstrap(&["127.0.0.1".to_owned()])?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let api_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let api_url = format!("https://{}", api_listener.local_addr()?);
        let state = AppState {
            injector: Arc::new(InjectorConfig {
                image: injector_image.0.clone(),
                image_pull_policy: Some(injector_image.1.to_owned()),
                unseal_url: format!("{api_url}/v1/unseal"),
                ca_pem: Some(made.ca_pem.clone()),
                default_delivery: Default::default(),
            }),
            unsealer: Some(Arc::new(Unsealer {
                client: client.clone(),
                provider: Arc::new(DecryptOnly::new(provider)),
                audit: Arc::new(keyward_core::audit::AuditLog::new(
                    &audit_dir.join("unseal-audit.log"),
                )),
                // Per pod; high so the sequential latency loop (one pod,
                // hundreds of calls) measures the path, not the limiter.
                limiter: RateLimiter::new(100_000, 100_000.0),
                audience: "keyward".into(),
                injector_image: injector_image.0,
            })),
        };
        let config = tls::server_config(&made.cert_pem, &made.key_pem)?;
        // Every perf pod unseals from 127.0.0.1: one source, so the
        // pre-authentication limit is lifted to measure the path.
        let unlimited = PreAuthLimits {
            burst: 1_000_000,
            per_second: 1_000_000.0,
            source_burst: 1_000_000,
            source_per_second: 1_000_000.0,
            ..PreAuthLimits::default()
        };
        let tasks = [
            tokio::spawn(server::serve_tls(
                listener,
                config.clone(),
                admission_router(state.clone()),
                ServerLimits::admission(),
            )),
            tokio::spawn(server::serve_tls(
                api_listener,
                config,
                server::api_router_with(state, &unlimited),
                // The same for the per-source connection cap and rate: 100
                // pods unseal at once, all from 127.0.0.1.
                ServerLimits {
                    max_connections_per_source: ServerLimits::api().max_connections,
                    connect_rate_per_source: None,
                    ..ServerLimits::api()
                },
            )),
        ];
        Ok(Webhook {
            tasks,
            url,
            api_url,
            ca_pem: made.ca_pem,
        })
    }

    pub fn unseal_url(&self) -> String {
        format!("{}/v1/unseal", self.api_url)
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Creates the keyring (as the operator does), a key, and the SealedSecret
/// `ten` in `ns` with [`ITEMS`] items sealed together (one DEK).
pub async fn create_sealed_secret(client: &Client, ns: &str) -> Result<()> {
    let provider = keyring_secret::local_provider(client.clone(), ns, KEYRING, ROOT_KEY).await?;
    let key = provider
        .create_key(&KeySpec {
            name: format!("{ns}-perf"),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some(format!("e2e-{ns}")),
            description: None,
        })
        .await?;
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: SECRET.to_owned(),
        key_ref: format!("{ns}/perf"),
        access: Vec::new(),
    };
    let items: BTreeMap<String, SecretBytes> = (0..ITEMS)
        .map(|i| {
            (
                format!("item-{i}"),
                SecretBytes::new(
                    format!("value-{i}-of-a-realistic-length-0123456789").into_bytes(),
                ),
            )
        })
        .collect();
    let wrapping = Wrapping::Provider {
        provider: &provider,
        key_id: &key.key_id,
    };
    let encrypted = seal_secret(&target, wrapping, &items).await?;
    let sealed: SealedSecret = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": SECRET, "namespace": ns},
        "spec": {"keyRef": {"name": "perf"}, "encryptedData": encrypted},
    }))?;
    Api::<SealedSecret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sealed)
        .await?;
    Ok(())
}

/// The token the projected volume gives the injector (audience `keyward`).
pub async fn pod_token(client: &Client, ns: &str, pod: &Pod) -> Result<String> {
    keyward_e2e::pods::pod_bound_token(client, ns, pod, "keyward").await
}

/// Nearest-rank percentile of sorted durations.
pub fn pct(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// `p50 X ms, p95|p99 Y ms, max Z ms` of unsorted durations.
pub fn summary(mut times: Vec<Duration>, tail: usize) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "p50 {:.1} ms, p{tail} {:.1} ms, max {:.1} ms (n={})",
        ms(pct(&times, 50)),
        ms(pct(&times, tail)),
        ms(*times.last().unwrap_or(&Duration::ZERO)),
        times.len()
    )
}

/// When the container first wrote a line containing `needle` (stdout or
/// stderr), from the CRI log on the node (`KEYWARD_E2E_POD_LOG_DIR`;
/// containerd stamps each line with ns resolution as it reads it). `None`
/// on a cluster whose node logs are not local, or before the line is there.
pub fn output_at(pod: &Pod, container: &str, needle: &str) -> Option<k8s_openapi::jiff::Timestamp> {
    let root = std::env::var_os("KEYWARD_E2E_POD_LOG_DIR")?;
    let dir = Path::new(&root)
        .join(format!(
            "{}_{}_{}",
            pod.namespace()?,
            pod.name_any(),
            pod.uid()?
        ))
        .join(container);
    let log = std::fs::read_to_string(dir.join("0.log")).ok()?;
    let line = log.lines().find(|line| line.contains(needle))?;
    line.split(' ').next()?.parse().ok()
}
