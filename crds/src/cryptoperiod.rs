//! Default cryptoperiods from NIST SP 800-57 Part 1 Rev. 5, section 5.3.6
//! and Table 1, applied when a KeyRotationPolicy leaves a field unset.
//!
//! | usage | NIST key type | originator usage (NIST) | default rotation | recipient usage (NIST) | default retention |
//! |---|---|---|---|---|---|
//! | Wrap | symmetric key-wrapping key | <= 2 years | 1y | <= OUP + 3 years | 3y |
//! | Seal | private key-transport key | <= 2 years in total | 1y | (within the 2 years) | 1y |
//! | Sign | private signature key | 1-3 years | 1y | public verification key: several years | 3y |
//!
//! AES-256 versions also default to at most 2^32 wrap operations, the
//! invocation limit of SP 800-38D section 8.3 for AES-GCM with random
//! 96-bit nonces.

use crate::HumanDuration;
use crate::algorithm::{Algorithm, KeyUsage};

/// 2^32, the AES-GCM random-nonce invocation limit (SP 800-38D 8.3).
pub const AES_GCM_MAX_INVOCATIONS: u64 = 1 << 32;

/// Recommended lifetimes for one key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cryptoperiod {
    /// How long a version is primary (encrypts) before rotation.
    pub rotation_period: HumanDuration,
    /// How long a deactivated version keeps decrypting.
    pub decrypt_retention: HumanDuration,
    /// Operations per version before an early rotation, if limited.
    pub max_operations: Option<u64>,
    /// The SP 800-57 key type the numbers come from.
    pub nist_key_type: &'static str,
}

/// The default cryptoperiod for a key of this algorithm and usage.
pub fn recommended(algorithm: Algorithm, usage: KeyUsage) -> Cryptoperiod {
    let max_operations = (algorithm == Algorithm::Aes256).then_some(AES_GCM_MAX_INVOCATIONS);
    match usage {
        KeyUsage::Wrap => Cryptoperiod {
            rotation_period: HumanDuration::from_years(1),
            decrypt_retention: HumanDuration::from_years(3),
            max_operations,
            nist_key_type: "symmetric key-wrapping key",
        },
        KeyUsage::Seal => Cryptoperiod {
            rotation_period: HumanDuration::from_years(1),
            decrypt_retention: HumanDuration::from_years(1),
            max_operations,
            nist_key_type: "private key-transport key",
        },
        KeyUsage::Sign => Cryptoperiod {
            rotation_period: HumanDuration::from_years(1),
            decrypt_retention: HumanDuration::from_years(3),
            max_operations,
            nist_key_type: "private signature key",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_stay_within_nist_limits() {
        let two_years = HumanDuration::from_years(2);
        for algorithm in Algorithm::ALL {
            for &usage in algorithm.usages() {
                let p = recommended(algorithm, usage);
                assert!(p.rotation_period <= HumanDuration::from_years(3));
                if usage != KeyUsage::Sign {
                    assert!(p.rotation_period <= two_years, "{algorithm} {usage}");
                }
                if usage == KeyUsage::Seal {
                    let total = p.rotation_period.as_secs() + p.decrypt_retention.as_secs();
                    assert!(
                        total <= two_years.as_secs(),
                        "private key-transport key <= 2y"
                    );
                }
            }
        }
        assert_eq!(
            recommended(Algorithm::Aes256, KeyUsage::Wrap).max_operations,
            Some(1 << 32)
        );
        assert_eq!(
            recommended(Algorithm::Rsa4096, KeyUsage::Seal).max_operations,
            None
        );
    }
}
