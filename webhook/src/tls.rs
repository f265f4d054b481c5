//! Serving certificates: read from files (e.g. a cert-manager Secret
//! mounted in the pod, reloaded when they change: [`file_reload`]) or
//! self-bootstrapped: a CA and a serving
//! certificate for the given names, with the CA patched into the webhook
//! configurations as `caBundle`. Bootstrapped certificates are renewed
//! before they expire ([`rotation`]) and swapped under the running
//! listener ([`resolver`]).

pub mod der;
pub mod file_reload;
pub mod probe;
pub mod resolver;
pub mod rotation;

use anyhow::{Context, Result, bail};
use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A CA and the serving certificate it signed, as PEM.
pub struct Bootstrapped {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
    /// Kept so the serving certificate can be renewed under the same CA
    /// (the `caBundle` stays valid). `None` for a Secret written before
    /// renewal existed: the next renewal then makes a new CA.
    pub ca_key_pem: Option<Zeroizing<String>>,
}

/// How long bootstrapped certificates live. Each is renewed when a third
/// of its lifetime is left; the CA also when it has less than two serving
/// certificates' lifetimes left.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub ca: std::time::Duration,
    pub leaf: std::time::Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ca: std::time::Duration::from_secs(5 * 365 * 86_400),
            leaf: std::time::Duration::from_secs(90 * 86_400),
        }
    }
}

const CA_NAME: &str = "keyward-webhook CA";

/// Makes a CA and a serving certificate for `sans` (DNS names or IPs)
/// with the default lifetimes.
pub fn bootstrap(sans: &[String]) -> Result<Bootstrapped> {
    bootstrap_with(sans, &Lifetimes::default())
}

/// Makes a CA and a serving certificate for `sans` (DNS names or IPs).
pub fn bootstrap_with(sans: &[String], lifetimes: &Lifetimes) -> Result<Bootstrapped> {
    let (ca_pem, ca_key_pem) = make_ca(lifetimes.ca)?;
    let (cert_pem, key_pem) = issue_leaf(&ca_key_pem, sans, lifetimes.leaf)?;
    Ok(Bootstrapped {
        ca_pem,
        cert_pem,
        key_pem,
        ca_key_pem: Some(ca_key_pem),
    })
}

/// Backdated a little against clock skew, but never by a large share of
/// a short (test) lifetime.
fn validity(params: &mut CertificateParams, lifetime: std::time::Duration) -> Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let lifetime = time::Duration::try_from(lifetime)?;
    params.not_before = now - (lifetime / 10_i32).min(time::Duration::hours(1));
    params.not_after = now + lifetime;
    Ok(())
}

fn ca_params(lifetime: std::time::Duration) -> Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut params, lifetime)?;
    Ok(params)
}

fn make_ca(lifetime: std::time::Duration) -> Result<(String, Zeroizing<String>)> {
    let key = KeyPair::generate()?;
    let cert = ca_params(lifetime)?.self_signed(&key)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

/// A serving certificate signed by the CA whose key is `ca_key_pem`. The
/// issuer is named as the CA names itself, so the chain verifies.
pub fn issue_leaf(
    ca_key_pem: &str,
    sans: &[String],
    lifetime: std::time::Duration,
) -> Result<(String, Zeroizing<String>)> {
    if sans.is_empty() {
        bail!("give at least one name for the serving certificate (--tls-san)");
    }
    let ca_key = KeyPair::from_pem(ca_key_pem).context("reading the CA key")?;
    let issuer = Issuer::new(ca_params(lifetime)?, ca_key);
    let mut params = CertificateParams::new(sans.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, sans[0].as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, lifetime)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), Zeroizing::new(key.serialize_pem())))
}

const CA_ITEM: &str = "ca.crt";
const CA_KEY_ITEM: &str = "ca.key";
const CERT_ITEM: &str = "tls.crt";
const KEY_ITEM: &str = "tls.key";

/// The bootstrapped certificate every replica shares: read from Secret
/// `name`, or made and stored there by whichever replica starts first.
/// The chart creates that Secret empty (the webhook may not create
/// Secrets); the first replica fills it with an update guarded by
/// resourceVersion, and a replica that loses the race adopts the winner's.
/// Restarts keep the same CA, so the `caBundle` stays valid.
pub async fn shared_bootstrap(
    client: &Client,
    namespace: &str,
    name: &str,
    sans: &[String],
) -> Result<Bootstrapped> {
    shared_bootstrap_with(client, namespace, name, sans, &Lifetimes::default()).await
}

/// [`shared_bootstrap`] with the given lifetimes.
pub async fn shared_bootstrap_with(
    client: &Client,
    namespace: &str,
    name: &str,
    sans: &[String],
    lifetimes: &Lifetimes,
) -> Result<Bootstrapped> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let post = PostParams::default();
    // Each round ends unless another writer changed the Secret under us.
    for _ in 0..5 {
        let stored = api
            .get_opt(name)
            .await
            .with_context(|| format!("reading Secret {namespace}/{name}"))?;
        if let Some(secret) = stored.as_ref().filter(|s| is_filled(s)) {
            return from_secret(secret, namespace, name);
        }
        let made = bootstrap_with(sans, lifetimes)?;
        let written = match &stored {
            // The chart's empty Secret (or an unusable partial one).
            Some(secret) => {
                if secret.data.as_ref().is_some_and(|d| !d.is_empty()) {
                    tracing::warn!(
                        namespace,
                        name,
                        "the TLS Secret holds no whole certificate; replacing it"
                    );
                }
                api.replace(name, &post, &refilled(secret, &made)).await
            }
            // Without the chart (e.g. an admin client in tests): create it.
            None => api.create(&post, &to_secret(&made, namespace, name)).await,
        };
        match written {
            Ok(_) => {
                tracing::info!(
                    namespace,
                    name,
                    "stored the bootstrapped serving certificate"
                );
                return Ok(made);
            }
            // Another replica wrote first: read theirs on the next round.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(kube::Error::Api(status)) if status.code == 403 && stored.is_none() => {
                bail!(
                    "Secret {namespace}/{name} does not exist and this webhook may not create it; \
                     the Helm chart creates it (webhook.tls.mode=selfSigned): run `helm upgrade` \
                     to restore it, or create an empty Secret of that name ({})",
                    status.message
                )
            }
            Err(error) => {
                return Err(error).with_context(|| format!("storing Secret {namespace}/{name}"));
            }
        }
    }
    bail!(
        "Secret {namespace}/{name} kept changing while the webhook tried to store its certificate"
    )
}

/// True when `secret` holds a whole certificate (a CA key is optional: a
/// Secret from before renewal has none).
fn is_filled(secret: &Secret) -> bool {
    let data = secret.data.as_ref();
    [CA_ITEM, CERT_ITEM, KEY_ITEM].iter().all(|item| {
        data.and_then(|d| d.get(*item))
            .is_some_and(|v| !v.0.is_empty())
    })
}

/// `stored` with `made` as its data. Metadata (resourceVersion, so the
/// update fails if someone wrote in between, and the chart's labels) and the
/// type, which cannot change, are kept.
pub(crate) fn refilled(stored: &Secret, made: &Bootstrapped) -> Secret {
    let namespace = stored.metadata.namespace.as_deref().unwrap_or_default();
    let name = stored.metadata.name.as_deref().unwrap_or_default();
    let mut updated = to_secret(made, namespace, name);
    updated.metadata = stored.metadata.clone();
    updated.type_ = stored.type_.clone();
    updated
}

/// The Secret that shares `made` between replicas.
pub(crate) fn to_secret(made: &Bootstrapped, namespace: &str, name: &str) -> Secret {
    let item = |text: &str| ByteString(text.as_bytes().to_vec());
    let mut data: std::collections::BTreeMap<String, ByteString> = [
        (CA_ITEM.to_owned(), item(&made.ca_pem)),
        (CERT_ITEM.to_owned(), item(&made.cert_pem)),
        (KEY_ITEM.to_owned(), item(&made.key_pem)),
    ]
    .into();
    if let Some(ca_key) = &made.ca_key_pem {
        data.insert(CA_KEY_ITEM.to_owned(), item(ca_key));
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(
                [(
                    "app.kubernetes.io/component".to_owned(),
                    "webhook-tls".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(data),
        ..Secret::default()
    }
}

pub(crate) fn from_secret(secret: &Secret, namespace: &str, name: &str) -> Result<Bootstrapped> {
    let data = secret.data.as_ref();
    let text = |key: &str| {
        data.and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .with_context(|| {
                format!(
                    "Secret {namespace}/{name} has no `{key}`; restart the webhook to have a new certificate made"
                )
            })
    };
    Ok(Bootstrapped {
        ca_pem: text(CA_ITEM)?,
        cert_pem: text(CERT_ITEM)?,
        key_pem: Zeroizing::new(text(KEY_ITEM)?),
        ca_key_pem: text(CA_KEY_ITEM).ok().map(Zeroizing::new),
    })
}

/// A rustls server configuration from PEM text.
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("reading the serving certificate PEM")?;
    if certs.is_empty() {
        bail!("the serving certificate file holds no CERTIFICATE block");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .context("reading the serving key PEM (PKCS#8, PKCS#1 or SEC1)")?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the serving certificate and key do not match")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes `ca_pem` as the `caBundle` of every webhook in the named configurations.
pub async fn patch_ca_bundle(
    client: &Client,
    mutating: Option<&str>,
    validating: Option<&str>,
    ca_pem: &str,
) -> Result<()> {
    let bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    if let Some(name) = mutating {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let config = api
            .get(name)
            .await
            .with_context(|| format!("MutatingWebhookConfiguration {name}"))?;
        let webhooks: Vec<_> = config
            .webhooks
            .unwrap_or_default()
            .iter()
            .map(|w| json!({"name": w.name, "clientConfig": {"caBundle": bundle}}))
            .collect();
        patch(&api, name, webhooks).await?;
    }
    if let Some(name) = validating {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let config = api
            .get(name)
            .await
            .with_context(|| format!("ValidatingWebhookConfiguration {name}"))?;
        let webhooks: Vec<_> = config
            .webhooks
            .unwrap_or_default()
            .iter()
            .map(|w| json!({"name": w.name, "clientConfig": {"caBundle": bundle}}))
            .collect();
        patch(&api, name, webhooks).await?;
    }
    Ok(())
}

async fn patch<K>(api: &Api<K>, name: &str, webhooks: Vec<serde_json::Value>) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    // Strategic merge keys webhooks by name, so only caBundle changes.
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({"webhooks": webhooks})),
    )
    .await
    .with_context(|| format!("patching caBundle into {name}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrapped_certificate_serves() {
        let made = bootstrap(&["127.0.0.1".into(), "keyward-webhook.keyward.svc".into()]).unwrap();
        assert!(made.ca_pem.contains("BEGIN CERTIFICATE"));
        server_config(&made.cert_pem, &made.key_pem).unwrap();
    }

    #[test]
    fn the_charts_empty_secret_is_filled_in_place() {
        let empty = Secret {
            metadata: ObjectMeta {
                name: Some("kw-keyward-webhook-tls".into()),
                namespace: Some("keyward".into()),
                resource_version: Some("42".into()),
                labels: Some([("app.kubernetes.io/managed-by".into(), "Helm".into())].into()),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".into()),
            ..Secret::default()
        };
        assert!(!is_filled(&empty));
        let made = bootstrap(&["127.0.0.1".into()]).unwrap();
        let filled = refilled(&empty, &made);
        // The type cannot change on update; the resourceVersion makes the
        // update fail when another replica filled it first.
        assert_eq!(filled.type_.as_deref(), Some("Opaque"));
        assert_eq!(filled.metadata, empty.metadata);
        assert!(is_filled(&filled));
        let read = from_secret(&filled, "keyward", "kw-keyward-webhook-tls").unwrap();
        assert_eq!(read.ca_pem, made.ca_pem);
        assert!(read.ca_key_pem.is_some());

        let mut partial = filled.clone();
        partial.data.as_mut().unwrap().remove(KEY_ITEM);
        assert!(!is_filled(&partial), "a Secret without tls.key is refilled");
    }
}
