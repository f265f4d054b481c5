use crate::crypto::signing::SigningAlgorithm;
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
    /// RSA-3072 for RSA-PSS-SHA256 signatures (usage `Sign`).
    #[serde(rename = "RSA3072_PSS")]
    RsaPss3072,
    /// RSA-4096 for RSA-PSS-SHA256 signatures (usage `Sign`).
    #[serde(rename = "RSA4096_PSS")]
    RsaPss4096,
    /// ECDSA on P-256 with SHA-256 (usage `Sign`).
    #[serde(rename = "ECP256")]
    EcP256,
    /// Ed25519 (usage `Sign`).
    #[serde(rename = "ED25519")]
    Ed25519,
}

impl KeyAlgorithm {
    /// Every algorithm, in documentation order.
    pub const ALL: [KeyAlgorithm; 7] = [
        KeyAlgorithm::Aes256,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::RsaPss3072,
        KeyAlgorithm::RsaPss4096,
        KeyAlgorithm::EcP256,
        KeyAlgorithm::Ed25519,
    ];

    /// An RSA-OAEP key that anyone seals to offline (usage `Seal`).
    pub fn is_sealing(self) -> bool {
        matches!(self, KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096)
    }

    /// How the key wraps data keys; `None` for a signing key, which wraps none.
    pub fn wrap_algorithm(self) -> Option<WrapAlgorithm> {
        match self {
            KeyAlgorithm::Aes256 => Some(WrapAlgorithm::Symmetric),
            KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => Some(WrapAlgorithm::RsaOaepSha256),
            _ => None,
        }
    }

    /// The signing scheme of a signing key; `None` for the others.
    pub fn signing(self) -> Option<SigningAlgorithm> {
        match self {
            KeyAlgorithm::RsaPss3072 => Some(SigningAlgorithm::RsaPss3072Sha256),
            KeyAlgorithm::RsaPss4096 => Some(SigningAlgorithm::RsaPss4096Sha256),
            KeyAlgorithm::EcP256 => Some(SigningAlgorithm::EcdsaP256Sha256),
            KeyAlgorithm::Ed25519 => Some(SigningAlgorithm::Ed25519),
            _ => None,
        }
    }

    /// The key's wrapping, or the error a provider returns when asked to
    /// wrap or unwrap with a signing key.
    pub fn wrapping(self, key_id: &str) -> Result<WrapAlgorithm, super::ProviderError> {
        self.wrap_algorithm()
            .ok_or_else(|| super::ProviderError::WrongKeyType {
                key: key_id.to_owned(),
                expected: "a key that wraps data keys (usage Wrap or Seal)",
                actual: self.describe(),
            })
    }

    pub fn describe(self) -> &'static str {
        match self {
            KeyAlgorithm::Aes256 => "a symmetric AES256 key",
            KeyAlgorithm::Rsa3072 => "an asymmetric RSA3072 key",
            KeyAlgorithm::Rsa4096 => "an asymmetric RSA4096 key",
            KeyAlgorithm::RsaPss3072 => "an RSA3072 signing key",
            KeyAlgorithm::RsaPss4096 => "an RSA4096 signing key",
            KeyAlgorithm::EcP256 => "an ECP256 signing key",
            KeyAlgorithm::Ed25519 => "an ED25519 signing key",
        }
    }

    /// The name used in the keyring and in errors.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Aes256 => "AES256",
            KeyAlgorithm::Rsa3072 => "RSA3072",
            KeyAlgorithm::Rsa4096 => "RSA4096",
            KeyAlgorithm::RsaPss3072 => "RSA3072_PSS",
            KeyAlgorithm::RsaPss4096 => "RSA4096_PSS",
            KeyAlgorithm::EcP256 => "ECP256",
            KeyAlgorithm::Ed25519 => "ED25519",
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let upper = s.to_ascii_uppercase();
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == upper)
            .ok_or_else(|| {
                let names: Vec<&str> = KeyAlgorithm::ALL.iter().map(|a| a.as_str()).collect();
                format!("unknown algorithm `{s}`; use {}", names.join(", "))
            })
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

/// A signature made by a signing key's primary version.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    pub key_id: String,
    pub version: u32,
    pub algorithm: SigningAlgorithm,
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signature")
            .field("key_id", &self.key_id)
            .field("version", &self.version)
            .field("algorithm", &self.algorithm)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The public half of one version of a signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    pub key_id: String,
    pub version: u32,
    pub algorithm: SigningAlgorithm,
    /// SubjectPublicKeyInfo DER.
    pub spki_der: Vec<u8>,
}
