use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

/// Key/value pairs bound to a wrapped DEK (AWS KMS `EncryptionContext`, AAD
/// elsewhere). Keys are sorted, so the encoding is canonical.
pub type WrapContext = BTreeMap<String, String>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// AES-256: symmetric key-encryption key (usage `Wrap`).
    #[serde(rename = "AES256")]
    Aes256,
    /// RSA-3072 for RSA-OAEP-SHA256 (usage `Seal`).
    #[serde(rename = "RSA3072")]
    Rsa3072,
    /// RSA-4096 for RSA-OAEP-SHA256 (usage `Seal`).
    #[serde(rename = "RSA4096")]
    Rsa4096,
}

impl KeyAlgorithm {
    pub fn is_asymmetric(self) -> bool {
        !matches!(self, KeyAlgorithm::Aes256)
    }

    pub fn wrap_algorithm(self) -> WrapAlgorithm {
        if self.is_asymmetric() {
            WrapAlgorithm::RsaOaepSha256
        } else {
            WrapAlgorithm::Symmetric
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            KeyAlgorithm::Aes256 => "a symmetric AES256 key",
            KeyAlgorithm::Rsa3072 => "an asymmetric RSA3072 key",
            KeyAlgorithm::Rsa4096 => "an asymmetric RSA4096 key",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyAlgorithm::Aes256 => "AES256",
            KeyAlgorithm::Rsa3072 => "RSA3072",
            KeyAlgorithm::Rsa4096 => "RSA4096",
        })
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "AES256" => Ok(KeyAlgorithm::Aes256),
            "RSA3072" => Ok(KeyAlgorithm::Rsa3072),
            "RSA4096" => Ok(KeyAlgorithm::Rsa4096),
            _ => Err(format!(
                "unknown algorithm `{s}`; use AES256, RSA3072 or RSA4096"
            )),
        }
    }
}

/// How a DEK was wrapped; recorded in every envelope header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WrapAlgorithm {
    /// By a symmetric provider key, in the provider's own format.
    Symmetric,
    /// RSA-OAEP-SHA256 with the key version's public key (sealable offline).
    RsaOaepSha256,
}

impl WrapAlgorithm {
    pub fn code(self) -> u8 {
        match self {
            WrapAlgorithm::Symmetric => 1,
            WrapAlgorithm::RsaOaepSha256 => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(WrapAlgorithm::Symmetric),
            2 => Some(WrapAlgorithm::RsaOaepSha256),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    /// Human name, also the alias the key can be looked up by.
    pub name: String,
    pub algorithm: KeyAlgorithm,
    /// The owning resource's uid: makes `create_key` idempotent.
    pub owner: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VersionState {
    Enabled,
    Disabled,
    PendingDeletion,
    Destroyed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u32,
    pub state: VersionState,
    pub created_at: SystemTime,
    pub deletion_at: Option<SystemTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: String,
    pub name: String,
    pub algorithm: KeyAlgorithm,
    pub owner: Option<String>,
    pub primary_version: u32,
    pub versions: Vec<VersionInfo>,
    /// Set when the whole key is scheduled for destruction.
    pub deletion_at: Option<SystemTime>,
    /// Which cluster last said it uses the key, where the provider keeps
    /// claims ([`KeyProvider::keeps_claims`](super::KeyProvider::keeps_claims)).
    pub claim: Option<Claim>,
}

/// A cluster's claim on a key that several clusters could reach (a KMS or
/// HSM key). Its operator renews it while it runs, so a claim left
/// unrenewed for longer than the lease belongs to a cluster that is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The cluster's id (by default the uid of its `kube-system` namespace).
    pub cluster: String,
    pub renewed_at: SystemTime,
}

impl Claim {
    /// A claim as stored in two text fields (tags, labels): the cluster id
    /// and the renewal time in Unix seconds. None when either is missing
    /// or the time does not parse.
    pub fn from_stored(cluster: Option<&String>, renewed_at: Option<&String>) -> Option<Self> {
        let seconds = renewed_at?.parse::<u64>().ok()?;
        Some(Claim {
            cluster: cluster?.clone(),
            renewed_at: std::time::UNIX_EPOCH + Duration::from_secs(seconds),
        })
    }
}

/// What a deletion request applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionTarget {
    WholeKey,
    Version(u32),
}

/// A DEK as a provider wrapped it. `blob` is opaque outside the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedDek {
    pub key_id: String,
    pub version: u32,
    pub algorithm: WrapAlgorithm,
    pub blob: Vec<u8>,
}

impl fmt::Debug for WrappedDek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDek")
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .field("algorithm", &self.algorithm)
            .field("blob_len", &self.blob.len())
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct PublicKeyInfo {
    pub key_id: String,
    pub version: u32,
    pub public_key: crate::crypto::RsaPublicKey,
}

/// What the operator asks of a provider's own scheduled rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeSchedule {
    /// How often the provider rotates.
    pub period: Duration,
    /// When it should rotate first. Cloud KMS takes it as `nextRotationTime`;
    /// AWS KMS always counts the period from the moment rotation is enabled.
    pub first: SystemTime,
}

/// How a provider reports its own scheduled rotation of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NativeRotation {
    /// The period, when the provider reports it.
    pub period: Option<Duration>,
    /// When the provider rotates next, when it reports it.
    pub next_rotation: Option<SystemTime>,
    /// What a native rotation looks like from Keyward's side.
    pub shows_as: NativeRotationEffect,
}

/// Whether a native rotation makes a Keyward version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NativeRotationEffect {
    /// A new primary version appears in `describe_key` (Cloud KMS): the
    /// operator adopts it like one it made, and re-wraps dependants.
    NewVersion,
    /// New key material inside the same version (AWS KMS): the version
    /// number, and so every envelope, stays as it is; old material keeps
    /// decrypting and cannot be disabled or destroyed on its own.
    SameVersion,
}
