//! Serving certificates: read from files (e.g. a cert-manager Secret
//! mounted in the pod) or self-bootstrapped: a fresh CA and a serving
//! certificate for the given names, with the CA patched into the webhook
//! configurations as `caBundle`.

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
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A CA and the serving certificate it signed, as PEM.
pub struct Bootstrapped {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: Zeroizing<String>,
}

/// Makes a CA and a serving certificate for `sans` (DNS names or IPs),
/// valid for a year. The CA's key is dropped: nothing else is ever signed.
pub fn bootstrap(sans: &[String]) -> Result<Bootstrapped> {
    if sans.is_empty() {
        bail!("give at least one name for the serving certificate (--tls-san)");
    }
    let now = time::OffsetDateTime::now_utc();
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "keyward-webhook CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = now - time::Duration::hours(1);
    ca_params.not_after = now + time::Duration::days(365);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let mut params = CertificateParams::new(sans.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, sans[0].as_str());
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(365);
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Bootstrapped {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: Zeroizing::new(key.serialize_pem()),
    })
}

const CA_ITEM: &str = "ca.crt";
const CERT_ITEM: &str = "tls.crt";
const KEY_ITEM: &str = "tls.key";

/// The bootstrapped certificate every replica shares: read from Secret
/// `name`, or made and stored there by whichever replica starts first (a
/// create conflict means another replica won: use theirs). Restarts keep
/// the same CA, so the `caBundle` stays valid.
pub async fn shared_bootstrap(
    client: &Client,
    namespace: &str,
    name: &str,
    sans: &[String],
) -> Result<Bootstrapped> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if let Some(secret) = api.get_opt(name).await? {
        return from_secret(&secret, namespace, name);
    }
    let made = bootstrap(sans)?;
    let item = |text: &str| ByteString(text.as_bytes().to_vec());
    let secret = Secret {
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
        data: Some(
            [
                (CA_ITEM.to_owned(), item(&made.ca_pem)),
                (CERT_ITEM.to_owned(), item(&made.cert_pem)),
                (KEY_ITEM.to_owned(), item(&made.key_pem)),
            ]
            .into(),
        ),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(
                namespace,
                name,
                "stored the bootstrapped serving certificate"
            );
            Ok(made)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            from_secret(&api.get(name).await?, namespace, name)
        }
        Err(error) => Err(error).with_context(|| format!("creating Secret {namespace}/{name}")),
    }
}

fn from_secret(secret: &Secret, namespace: &str, name: &str) -> Result<Bootstrapped> {
    let data = secret.data.as_ref();
    let text = |key: &str| {
        data.and_then(|d| d.get(key))
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .with_context(|| {
                format!(
                    "Secret {namespace}/{name} has no `{key}`; delete it to have a new one made"
                )
            })
    };
    Ok(Bootstrapped {
        ca_pem: text(CA_ITEM)?,
        cert_pem: text(CERT_ITEM)?,
        key_pem: Zeroizing::new(text(KEY_ITEM)?),
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

/// Reads a certificate and key from files.
pub fn from_files(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let cert_pem =
        std::fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
    let key_pem = Zeroizing::new(
        std::fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?,
    );
    server_config(&cert_pem, &key_pem)
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
}
