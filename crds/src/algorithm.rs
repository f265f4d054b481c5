//! Key algorithms and what each may be used for.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Key algorithm.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Algorithm {
    /// AES-256, a symmetric key-encryption key.
    #[default]
    #[serde(rename = "AES256")]
    Aes256,
    /// RSA 3072-bit (RSA-OAEP-SHA256 for sealing, or RSA-PSS signing).
    #[serde(rename = "RSA3072")]
    Rsa3072,
    /// RSA 4096-bit.
    #[serde(rename = "RSA4096")]
    Rsa4096,
    /// ECDSA on NIST P-256, signing only.
    #[serde(rename = "ECP256")]
    EcP256,
    /// Ed25519, signing only.
    #[serde(rename = "ED25519")]
    Ed25519,
}

/// What the key does.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum KeyUsage {
    /// Symmetric key-encryption key: the provider wraps and unwraps data keys.
    #[default]
    Wrap,
    /// Asymmetric decryption: anyone seals offline with the public key
    /// (RSA-OAEP); only the provider can unwrap.
    Seal,
    /// Signing and verification.
    Sign,
}

impl Algorithm {
    /// Every algorithm, in documentation order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Aes256,
        Algorithm::Rsa3072,
        Algorithm::Rsa4096,
        Algorithm::EcP256,
        Algorithm::Ed25519,
    ];

    /// Whether the key has a public half that Keyward publishes in status.
    pub const fn is_asymmetric(self) -> bool {
        !matches!(self, Algorithm::Aes256)
    }

    /// The usages this algorithm supports.
    pub const fn usages(self) -> &'static [KeyUsage] {
        match self {
            Algorithm::Aes256 => &[KeyUsage::Wrap],
            Algorithm::Rsa3072 | Algorithm::Rsa4096 => &[KeyUsage::Seal, KeyUsage::Sign],
            Algorithm::EcP256 | Algorithm::Ed25519 => &[KeyUsage::Sign],
        }
    }

    /// The name used in YAML.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::Aes256 => "AES256",
            Algorithm::Rsa3072 => "RSA3072",
            Algorithm::Rsa4096 => "RSA4096",
            Algorithm::EcP256 => "ECP256",
            Algorithm::Ed25519 => "ED25519",
        }
    }
}

impl KeyUsage {
    /// Every usage, in documentation order.
    pub const ALL: [KeyUsage; 3] = [KeyUsage::Wrap, KeyUsage::Seal, KeyUsage::Sign];

    /// The algorithms that support this usage.
    pub fn algorithms(self) -> Vec<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .filter(|a| a.usages().contains(&self))
            .collect()
    }

    /// The name used in YAML.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyUsage::Wrap => "Wrap",
            KeyUsage::Seal => "Seal",
            KeyUsage::Sign => "Sign",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_usage_has_an_algorithm_and_back() {
        for usage in KeyUsage::ALL {
            assert!(!usage.algorithms().is_empty(), "{usage}");
        }
        assert_eq!(
            KeyUsage::Seal.algorithms(),
            [Algorithm::Rsa3072, Algorithm::Rsa4096]
        );
        assert_eq!(KeyUsage::Wrap.algorithms(), [Algorithm::Aes256]);
    }

    #[test]
    fn yaml_names_round_trip() {
        for a in Algorithm::ALL {
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(json, format!("\"{a}\""));
        }
    }
}
