//! Reading Cloud KMS state: crypto keys, their versions, and what they
//! mean as a Keyward [`KeyInfo`].

use crate::claims;
use crate::errors::At;
use crate::naming::{self, OWNER_LABEL};
use crate::provider::GcpKmsProvider;
use crate::retry::Idempotent;
use google_cloud_kms_v1::model::crypto_key::CryptoKeyPurpose;
use google_cloud_kms_v1::model::crypto_key_version::{
    CryptoKeyVersionAlgorithm, CryptoKeyVersionState,
};
use google_cloud_kms_v1::model::{CryptoKey, CryptoKeyVersion};
use keyward_core::provider::{
    KeyAlgorithm, KeyInfo, ProviderError, Result, VersionInfo, VersionState, WrapAlgorithm,
};
use std::time::{Duration, Instant, SystemTime};

pub(crate) fn to_system_time(ts: Option<&google_cloud_wkt::Timestamp>) -> Option<SystemTime> {
    ts.and_then(|t| SystemTime::try_from(*t).ok())
}

/// The Keyward algorithm of a crypto key, if it is one Keyward can use.
pub(crate) fn algorithm_of(key: &CryptoKey) -> Result<KeyAlgorithm> {
    let template = key
        .version_template
        .as_ref()
        .map(|t| t.algorithm.clone())
        .unwrap_or(CryptoKeyVersionAlgorithm::Unspecified);
    // Any symmetric encryption key wraps; asymmetric keys must match one
    // Keyward algorithm exactly (purpose and version template).
    if key.purpose == CryptoKeyPurpose::EncryptDecrypt {
        return Ok(KeyAlgorithm::Aes256);
    }
    KeyAlgorithm::ALL
        .into_iter()
        .find(|a| purpose_of(*a) == key.purpose && version_algorithm(*a) == template)
        .ok_or_else(|| ProviderError::InvalidRequest(format!(
            "crypto key `{}` ({:?}, {template:?}) is not a kind Keyward uses; Keyward keys are ENCRYPT_DECRYPT, RSA_DECRYPT_OAEP_3072/4096_SHA256, RSA_SIGN_PSS_3072/4096_SHA256, EC_SIGN_P256_SHA256 or EC_SIGN_ED25519",
            key.name, key.purpose
        )))
}

/// The CryptoKey purpose that holds `algorithm`.
pub(crate) fn purpose_of(algorithm: KeyAlgorithm) -> CryptoKeyPurpose {
    if algorithm.is_sealing() {
        CryptoKeyPurpose::AsymmetricDecrypt
    } else if algorithm.signing().is_some() {
        CryptoKeyPurpose::AsymmetricSign
    } else {
        CryptoKeyPurpose::EncryptDecrypt
    }
}

/// Only symmetric (ENCRYPT_DECRYPT) keys have a primary version in Cloud
/// KMS, get new versions ready at once and rotate automatically; sealing
/// and signing keys have none of these.
pub(crate) fn is_symmetric(algorithm: KeyAlgorithm) -> bool {
    algorithm.wrap_algorithm() == Some(WrapAlgorithm::Symmetric)
}

pub(crate) fn version_algorithm(algorithm: KeyAlgorithm) -> CryptoKeyVersionAlgorithm {
    match algorithm {
        KeyAlgorithm::Aes256 => CryptoKeyVersionAlgorithm::GoogleSymmetricEncryption,
        KeyAlgorithm::Rsa3072 => CryptoKeyVersionAlgorithm::RsaDecryptOaep3072Sha256,
        KeyAlgorithm::Rsa4096 => CryptoKeyVersionAlgorithm::RsaDecryptOaep4096Sha256,
        KeyAlgorithm::RsaPss3072 => CryptoKeyVersionAlgorithm::RsaSignPss3072Sha256,
        KeyAlgorithm::RsaPss4096 => CryptoKeyVersionAlgorithm::RsaSignPss4096Sha256,
        KeyAlgorithm::EcP256 => CryptoKeyVersionAlgorithm::EcSignP256Sha256,
        KeyAlgorithm::Ed25519 => CryptoKeyVersionAlgorithm::EcSignEd25519,
    }
}

fn state_of(state: &CryptoKeyVersionState) -> VersionState {
    match state {
        CryptoKeyVersionState::Enabled => VersionState::Enabled,
        CryptoKeyVersionState::DestroyScheduled => VersionState::PendingDeletion,
        CryptoKeyVersionState::Destroyed => VersionState::Destroyed,
        // Pending generation/import, failed, disabled: not usable.
        _ => VersionState::Disabled,
    }
}

pub(crate) fn version_info(version: &CryptoKeyVersion) -> Option<VersionInfo> {
    Some(VersionInfo {
        version: naming::version_number(&version.name)?,
        state: state_of(&version.state),
        created_at: to_system_time(version.create_time.as_ref()).unwrap_or(SystemTime::UNIX_EPOCH),
        deletion_at: match version.state {
            CryptoKeyVersionState::DestroyScheduled => {
                to_system_time(version.destroy_time.as_ref())
            }
            _ => None,
        },
    })
}

/// Symmetric keys have a primary version in Cloud KMS; asymmetric keys do
/// not. A sealing key's primary is the newest enabled version (or, with
/// none enabled, the newest one not destroyed). A signing key's is its
/// newest version not destroyed, enabled or not: a signature must come
/// from the version the last rotation made, so disabling it stops signing
/// rather than falling back to an older key.
pub(crate) fn primary_of(
    key: &CryptoKey,
    algorithm: KeyAlgorithm,
    versions: &[VersionInfo],
) -> u32 {
    if is_symmetric(algorithm)
        && let Some(number) = key
            .primary
            .as_ref()
            .and_then(|v| naming::version_number(&v.name))
    {
        return number;
    }
    let newest = |keep: &dyn Fn(&VersionInfo) -> bool| {
        versions.iter().filter(|v| keep(v)).map(|v| v.version).max()
    };
    let not_destroyed = || newest(&|v| v.state != VersionState::Destroyed);
    if algorithm.signing().is_some() {
        return not_destroyed().unwrap_or(0);
    }
    newest(&|v| v.state == VersionState::Enabled)
        .or_else(not_destroyed)
        .unwrap_or(0)
}

/// Set when every version is destroyed or scheduled for destruction and
/// at least one is still scheduled: the key as a whole is going away.
pub(crate) fn whole_key_deletion(versions: &[VersionInfo]) -> Option<SystemTime> {
    let all_going = !versions.is_empty()
        && versions.iter().all(|v| {
            matches!(
                v.state,
                VersionState::PendingDeletion | VersionState::Destroyed
            )
        });
    if !all_going {
        return None;
    }
    versions.iter().filter_map(|v| v.deletion_at).max()
}

impl GcpKmsProvider {
    pub(crate) async fn get_key(&self, name: &str) -> Result<CryptoKey> {
        let at = At::key(name);
        let key = self
            .call("GetCryptoKey", Idempotent::Yes, at, || {
                self.client.get_crypto_key().set_name(name).send()
            })
            .await?;
        if let Ok(algorithm) = algorithm_of(&key) {
            self.remember_algorithm(name, algorithm);
        }
        Ok(key)
    }

    pub(crate) async fn versions(&self, name: &str) -> Result<Vec<VersionInfo>> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .call(
                    "ListCryptoKeyVersions",
                    Idempotent::Yes,
                    At::key(name),
                    || {
                        self.client
                            .list_crypto_key_versions()
                            .set_parent(name)
                            .set_page_size(100)
                            .set_page_token(token.clone())
                            .send()
                    },
                )
                .await?;
            all.extend(page.crypto_key_versions.iter().filter_map(version_info));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        all.sort_by_key(|v| v.version);
        Ok(all)
    }

    pub(crate) async fn info_of(
        &self,
        key: &CryptoKey,
        display_name: Option<&str>,
    ) -> Result<KeyInfo> {
        let algorithm = algorithm_of(key)?;
        let versions = self.versions(&key.name).await?;
        Ok(KeyInfo {
            key_id: key.name.clone(),
            name: display_name
                .map(str::to_owned)
                .unwrap_or_else(|| naming::short_id(&key.name).to_owned()),
            algorithm,
            owner: key.labels.get(OWNER_LABEL).cloned(),
            primary_version: primary_of(key, algorithm, &versions),
            deletion_at: whole_key_deletion(&versions),
            versions,
            claim: claims::from_labels(&key.labels),
        })
    }

    pub(crate) async fn info(&self, name: &str) -> Result<KeyInfo> {
        let key = self.get_key(name).await?;
        self.info_of(&key, None).await
    }

    /// The algorithm of a key; immutable in Cloud KMS, so cached.
    pub(crate) async fn algorithm(&self, name: &str) -> Result<KeyAlgorithm> {
        if let Some(known) = self.known_algorithm(name) {
            return Ok(known);
        }
        algorithm_of(&self.get_key(name).await?)
    }

    /// Asymmetric versions are generated in the background
    /// (`PENDING_GENERATION`); waits until the version is usable.
    pub(crate) async fn wait_generated(&self, key: &str, version: u32) -> Result<()> {
        let name = naming::version_name(key, version);
        let deadline = Instant::now() + self.config.timeouts.operation;
        let mut wait = Duration::from_millis(50);
        loop {
            let found = self
                .call(
                    "GetCryptoKeyVersion",
                    Idempotent::Yes,
                    At::version(key, version),
                    || self.client.get_crypto_key_version().set_name(&name).send(),
                )
                .await?;
            match found.state {
                CryptoKeyVersionState::PendingGeneration => {}
                CryptoKeyVersionState::GenerationFailed => {
                    return Err(ProviderError::Unavailable(format!(
                        "Cloud KMS failed to generate version {version} of `{key}`; rotate again"
                    )));
                }
                _ => return Ok(()),
            }
            if Instant::now() + wait > deadline {
                return Err(ProviderError::Unavailable(format!(
                    "version {version} of `{key}` is still being generated; retry shortly"
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_kms_v1::model::CryptoKeyVersionTemplate;

    fn crypto_key(algorithm: KeyAlgorithm) -> CryptoKey {
        CryptoKey::new()
            .set_name("k")
            .set_purpose(purpose_of(algorithm))
            .set_version_template(
                CryptoKeyVersionTemplate::new().set_algorithm(version_algorithm(algorithm)),
            )
    }

    fn version(version: u32, state: VersionState) -> VersionInfo {
        VersionInfo {
            version,
            state,
            created_at: SystemTime::UNIX_EPOCH,
            deletion_at: None,
        }
    }

    #[test]
    fn every_algorithm_is_read_back_from_the_key_it_makes() {
        for algorithm in KeyAlgorithm::ALL {
            assert_eq!(algorithm_of(&crypto_key(algorithm)).unwrap(), algorithm);
        }
        let mismatched =
            crypto_key(KeyAlgorithm::EcP256).set_purpose(CryptoKeyPurpose::AsymmetricDecrypt);
        assert!(matches!(
            algorithm_of(&mismatched),
            Err(ProviderError::InvalidRequest(m)) if m.contains("EC_SIGN_ED25519")
        ));
    }

    #[test]
    fn a_disabled_signing_primary_stays_primary_where_a_sealing_one_falls_back() {
        let versions = [
            version(1, VersionState::Enabled),
            version(2, VersionState::Disabled),
        ];
        let signing = crypto_key(KeyAlgorithm::EcP256);
        assert_eq!(primary_of(&signing, KeyAlgorithm::EcP256, &versions), 2);
        let sealing = crypto_key(KeyAlgorithm::Rsa3072);
        assert_eq!(primary_of(&sealing, KeyAlgorithm::Rsa3072, &versions), 1);
        let destroyed = [
            version(1, VersionState::Enabled),
            version(2, VersionState::Destroyed),
        ];
        assert_eq!(primary_of(&signing, KeyAlgorithm::EcP256, &destroyed), 1);
    }
}
