//! The keyring document and its operations, with no I/O: the store loads it,
//! applies one of these, and writes it back. The version rules are core's
//! [`KeyRecord`], shared with the PKCS#11 provider.

use crate::crypto::{RsaKeySize, RsaPrivateKey, fill_random};
use crate::provider::key_record::{self, KeyRecord};
use crate::provider::{
    DeletionTarget, KeyAlgorithm, KeyInfo, KeySpec, ProviderError, Result, VersionState,
};
use crate::secret::SecretBytes;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

pub const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize, Default)]
pub struct Keyring {
    pub format: u32,
    /// Counts the writes of this keyring (the store adds one to each). It
    /// is inside the encryption, so it cannot be edited; the highest one
    /// written is also kept outside ([`super::KeyringBackend::generation_floor`]),
    /// so an older keyring written back is recognised and refused.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub generation: u64,
    pub keys: Vec<LocalKey>,
}

fn is_zero(generation: &u64) -> bool {
    *generation == 0
}

pub type LocalKey = KeyRecord<LocalVersion>;

/// Deliberately not `Debug` or `Clone`: it holds key material.
#[derive(Serialize, Deserialize)]
pub struct LocalVersion {
    pub version: u32,
    pub state: VersionState,
    pub created_at: u64,
    pub deletion_at: Option<u64>,
    /// AES key bytes, or an RSA, P-256 or Ed25519 private key as PKCS#8
    /// DER; empty once destroyed.
    #[serde(with = "super::material")]
    pub material: SecretBytes,
}

key_record::recorded_version!(LocalVersion);

fn new_material(algorithm: KeyAlgorithm) -> SecretBytes {
    match algorithm {
        KeyAlgorithm::Aes256 => {
            let mut key = vec![0u8; 32];
            fill_random(&mut key);
            SecretBytes::new(key)
        }
        KeyAlgorithm::Rsa3072 => {
            SecretBytes::from(RsaPrivateKey::generate(RsaKeySize::Bits3072).pkcs8_der())
        }
        KeyAlgorithm::Rsa4096 => {
            SecretBytes::from(RsaPrivateKey::generate(RsaKeySize::Bits4096).pkcs8_der())
        }
        signing => {
            let scheme = signing.signing().expect("every other algorithm signs");
            SecretBytes::from(crate::crypto::signing::generate(scheme).as_slice())
        }
    }
}

fn new_key_id() -> String {
    let mut bytes = [0u8; 8];
    fill_random(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("local-{hex}")
}

fn new_version(version: u32, algorithm: KeyAlgorithm, now: u64) -> LocalVersion {
    LocalVersion {
        version,
        state: VersionState::Enabled,
        created_at: now,
        deletion_at: None,
        material: new_material(algorithm),
    }
}

impl Keyring {
    pub fn new() -> Self {
        Keyring {
            format: FORMAT,
            generation: 0,
            keys: Vec::new(),
        }
    }

    /// Finds a key by id or by name.
    pub fn find(&self, key: &str) -> Result<&LocalKey> {
        self.keys
            .iter()
            .find(|k| k.id == key || k.name == key)
            .ok_or_else(|| ProviderError::UnknownKey(key.to_owned()))
    }

    fn find_mut(&mut self, key: &str) -> Result<&mut LocalKey> {
        self.keys
            .iter_mut()
            .find(|k| k.id == key || k.name == key)
            .ok_or_else(|| ProviderError::UnknownKey(key.to_owned()))
    }

    pub fn create(&mut self, spec: &KeySpec, now: u64) -> Result<KeyInfo> {
        if spec.owner.is_some()
            && let Some(existing) = self.keys.iter().find(|k| k.owner == spec.owner)
        {
            return Ok(existing.info());
        }
        if spec.name.is_empty() || spec.name.starts_with("local-") {
            return Err(ProviderError::InvalidRequest(format!(
                "`{}` is not a usable key name (empty, or starting with the id prefix `local-`)",
                spec.name
            )));
        }
        if self.keys.iter().any(|k| k.name == spec.name) {
            return Err(ProviderError::InvalidRequest(format!(
                "a key named `{}` already exists; pick another name or rotate the existing key",
                spec.name
            )));
        }
        let key = LocalKey::new(spec, new_key_id(), new_version(1, spec.algorithm, now));
        let info = key.info();
        self.keys.push(key);
        Ok(info)
    }

    /// Records the key's stable owner. The keyring keeps no claims: every
    /// cluster holds its own copy of it.
    pub fn set_owner(&mut self, key: &str, owner: &str) -> Result<()> {
        self.find_mut(key)?.set_owner(owner, None);
        Ok(())
    }

    pub fn rotate(&mut self, key: &str, now: u64) -> Result<KeyInfo> {
        let key = self.find_mut(key)?;
        key.refuse_if_pending_deletion()?;
        let next = key.next_version();
        key.push_primary(new_version(next, key.algorithm, now));
        Ok(key.info())
    }

    pub fn set_enabled(&mut self, key: &str, version: u32, enabled: bool) -> Result<()> {
        self.find_mut(key)?.set_enabled(version, enabled)
    }

    pub fn schedule_deletion(
        &mut self,
        key: &str,
        target: DeletionTarget,
        window: Duration,
        now: u64,
    ) -> Result<SystemTime> {
        self.find_mut(key)?.schedule_deletion(target, window, now)
    }

    pub fn cancel_deletion(&mut self, key: &str, target: DeletionTarget) -> Result<()> {
        self.find_mut(key)?.cancel_deletion(target)
    }

    /// When the next scheduled deletion falls due (unix seconds).
    pub fn next_due(&self) -> Option<u64> {
        self.keys.iter().filter_map(|key| key.next_due()).min()
    }

    /// Destroys what is due: versions lose their material, keys disappear.
    /// Returns whether anything changed.
    pub fn purge_due(&mut self, now: u64) -> bool {
        let before = self.keys.len();
        self.keys.retain(|key| !key.due(now).whole_key);
        let mut changed = self.keys.len() != before;
        for key in &mut self.keys {
            for number in key.due(now).versions {
                if let Some(version) = key.mark_destroyed(number) {
                    version.material = SecretBytes::default();
                    changed = true;
                }
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::key_record::system_time;

    fn spec(name: &str, owner: Option<&str>) -> KeySpec {
        KeySpec {
            name: name.into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: owner.map(Into::into),
            description: None,
        }
    }

    /// A keyring as it is stored today (inside the encrypted Secret): a key
    /// with a destroyed, a pending, a disabled and an enabled primary version,
    /// and a key whose whole deletion is scheduled.
    const STORED: &str = concat!(
        r#"{"format":1,"keys":["#,
        r#"{"id":"local-00112233445566aa","name":"payments","algorithm":"AES256","owner":"uid-1","description":"db key","primary":4,"deletion_at":null,"versions":["#,
        r#"{"version":1,"state":"destroyed","created_at":100,"deletion_at":150,"material":""},"#,
        r#"{"version":2,"state":"pendingDeletion","created_at":200,"deletion_at":9000,"material":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="},"#,
        r#"{"version":3,"state":"disabled","created_at":300,"deletion_at":null,"material":"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="},"#,
        r#"{"version":4,"state":"enabled","created_at":400,"deletion_at":null,"material":"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="}]},"#,
        r#"{"id":"local-00112233445566bb","name":"retired","algorithm":"RSA3072","owner":null,"description":null,"primary":1,"deletion_at":5000,"versions":["#,
        r#"{"version":1,"state":"enabled","created_at":10,"deletion_at":null,"material":"cnNhLXBrY3M4"}]}]}"#,
    );

    fn stored() -> Keyring {
        serde_json::from_str(STORED).unwrap()
    }

    #[test]
    fn stored_keyring_reserialises_byte_for_byte() {
        let ring = stored();
        assert_eq!(serde_json::to_string(&ring).unwrap(), STORED);
        let key = ring.find("payments").unwrap();
        assert_eq!(key.versions[0].material.len(), 0);
        assert_eq!(key.versions[3].material.expose(), &[3u8; 32]);
        assert_eq!(
            ring.find("retired").unwrap().versions[0].material.expose(),
            b"rsa-pkcs8"
        );
    }

    #[test]
    fn stored_keyring_answers_as_before() {
        let ring = stored();
        let key = ring.find("local-00112233445566aa").unwrap();
        assert_eq!(key.primary_for_wrap().unwrap().version, 4);
        assert_eq!(
            key.version_for_unwrap(3).err(),
            Some(ProviderError::VersionDisabled {
                key: key.id.clone(),
                version: 3
            })
        );
        assert_eq!(
            key.version_for_unwrap(2).err(),
            Some(ProviderError::PendingDeletion {
                key: key.id.clone(),
                version: 2
            })
        );
        assert_eq!(
            key.version_for_unwrap(1).err(),
            Some(ProviderError::UnknownVersion {
                key: key.id.clone(),
                version: 1
            })
        );
        let info = key.info();
        assert_eq!(info.primary_version, 4);
        assert_eq!(info.deletion_at, None);
        assert_eq!(info.versions[1].created_at, system_time(200));
        assert_eq!(info.versions[1].deletion_at, Some(system_time(9000)));
        assert_eq!(
            info.versions.iter().map(|v| v.state).collect::<Vec<_>>(),
            [
                VersionState::Destroyed,
                VersionState::PendingDeletion,
                VersionState::Disabled,
                VersionState::Enabled
            ]
        );
        let retired = ring.find("retired").unwrap();
        assert_eq!(retired.info().deletion_at, Some(system_time(5000)));
        let pending_key = ProviderError::PendingDeletion {
            key: retired.id.clone(),
            version: 1,
        };
        assert_eq!(retired.primary_for_wrap().err(), Some(pending_key.clone()));
        assert_eq!(retired.version_for_unwrap(1).err(), Some(pending_key));
        // The local provider looks the version up before it checks the key's
        // own deletion (PKCS#11 does the opposite).
        assert_eq!(
            retired.version_for_unwrap(7).err(),
            Some(ProviderError::UnknownVersion {
                key: retired.id.clone(),
                version: 7
            })
        );
    }

    #[test]
    fn operations_on_a_stored_keyring_write_the_same_form() {
        let mut ring = stored();
        assert_eq!(
            ring.set_enabled("payments", 1, true).err(),
            Some(ProviderError::UnknownVersion {
                key: "local-00112233445566aa".into(),
                version: 1
            })
        );
        assert_eq!(
            ring.set_enabled("payments", 2, true).err(),
            Some(ProviderError::PendingDeletion {
                key: "local-00112233445566aa".into(),
                version: 2
            })
        );
        assert!(matches!(
            ring.set_enabled("retired", 1, false),
            Err(ProviderError::PendingDeletion { version: 1, .. })
        ));
        ring.set_enabled("payments", 3, true).unwrap();
        let again = ring
            .schedule_deletion(
                "payments",
                DeletionTarget::Version(2),
                Duration::from_secs(1),
                0,
            )
            .unwrap();
        assert_eq!(
            again,
            system_time(9000),
            "a second request keeps the first date"
        );
        ring.schedule_deletion(
            "payments",
            DeletionTarget::Version(3),
            Duration::from_secs(50),
            100,
        )
        .unwrap();
        ring.cancel_deletion("payments", DeletionTarget::Version(2))
            .unwrap();
        ring.cancel_deletion("payments", DeletionTarget::Version(4))
            .unwrap();
        assert!(matches!(
            ring.cancel_deletion("payments", DeletionTarget::Version(1)),
            Err(ProviderError::UnknownVersion { version: 1, .. })
        ));
        assert!(ring.purge_due(5000));
        assert!(!ring.purge_due(5000));
        let expected = concat!(
            r#"{"format":1,"keys":["#,
            r#"{"id":"local-00112233445566aa","name":"payments","algorithm":"AES256","owner":"uid-1","description":"db key","primary":4,"deletion_at":null,"versions":["#,
            r#"{"version":1,"state":"destroyed","created_at":100,"deletion_at":150,"material":""},"#,
            r#"{"version":2,"state":"disabled","created_at":200,"deletion_at":null,"material":"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="},"#,
            r#"{"version":3,"state":"destroyed","created_at":300,"deletion_at":150,"material":""},"#,
            r#"{"version":4,"state":"enabled","created_at":400,"deletion_at":null,"material":"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM="}]}]}"#,
        );
        assert_eq!(serde_json::to_string(&ring).unwrap(), expected);
    }

    #[test]
    fn create_is_idempotent_per_owner_and_names_are_unique() {
        let mut ring = Keyring::new();
        let first = ring.create(&spec("a", Some("uid-1")), 0).unwrap();
        let again = ring.create(&spec("a", Some("uid-1")), 5).unwrap();
        assert_eq!(first.key_id, again.key_id);
        assert_eq!(ring.keys.len(), 1);
        let clash = ring.create(&spec("a", Some("uid-2")), 0).unwrap_err();
        assert!(clash.to_string().contains("already exists"), "{clash}");
    }

    #[test]
    fn rotation_moves_primary_and_keeps_old_versions_for_unwrap() {
        let mut ring = Keyring::new();
        ring.create(&spec("a", None), 0).unwrap();
        let info = ring.rotate("a", 10).unwrap();
        assert_eq!(info.primary_version, 2);
        let key = ring.find("a").unwrap();
        assert_eq!(key.primary_for_wrap().unwrap().version, 2);
        assert!(key.version_for_unwrap(1).is_ok());
    }

    #[test]
    fn deletion_window_then_purge_destroys_only_due_versions() {
        let mut ring = Keyring::new();
        ring.create(&spec("a", None), 0).unwrap();
        ring.rotate("a", 0).unwrap();
        let primary = ring.schedule_deletion("a", DeletionTarget::Version(2), Duration::ZERO, 0);
        assert!(
            primary
                .unwrap_err()
                .to_string()
                .contains("rotate the key first")
        );
        ring.schedule_deletion("a", DeletionTarget::Version(1), Duration::from_secs(100), 0)
            .unwrap();
        assert!(matches!(
            ring.find("a").unwrap().version_for_unwrap(1),
            Err(ProviderError::PendingDeletion { .. })
        ));
        assert!(!ring.purge_due(99));
        ring.cancel_deletion("a", DeletionTarget::Version(1))
            .unwrap();
        assert_eq!(
            ring.find("a").unwrap().version(1).unwrap().state,
            VersionState::Disabled
        );
        ring.schedule_deletion("a", DeletionTarget::Version(1), Duration::from_secs(100), 0)
            .unwrap();
        assert!(ring.purge_due(100));
        let key = ring.find("a").unwrap();
        assert!(matches!(
            key.version(1),
            Err(ProviderError::UnknownVersion { .. })
        ));
        assert!(key.versions[0].material.is_empty());
    }

    #[test]
    fn whole_key_deletion_removes_the_key_when_due() {
        let mut ring = Keyring::new();
        ring.create(&spec("a", None), 0).unwrap();
        ring.schedule_deletion("a", DeletionTarget::WholeKey, Duration::from_secs(7), 0)
            .unwrap();
        assert!(matches!(
            ring.rotate("a", 1),
            Err(ProviderError::PendingDeletion { .. })
        ));
        assert!(ring.purge_due(7));
        assert!(matches!(ring.find("a"), Err(ProviderError::UnknownKey(_))));
    }

    #[test]
    fn disabled_versions_neither_wrap_nor_unwrap() {
        let mut ring = Keyring::new();
        ring.create(&spec("a", None), 0).unwrap();
        ring.set_enabled("a", 1, false).unwrap();
        let key = ring.find("a").unwrap();
        assert!(matches!(
            key.primary_for_wrap(),
            Err(ProviderError::VersionDisabled { .. })
        ));
        assert!(matches!(
            key.version_for_unwrap(1),
            Err(ProviderError::VersionDisabled { .. })
        ));
    }
}
