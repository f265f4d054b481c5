//! Key metadata, with no token I/O. PKCS#11 has no portable place for
//! "owner", "primary version", "disabled" or "destroy on date", so each key
//! keeps them in one JSON document stored on the token as a private CKO_DATA
//! object (see `token.rs`). The version rules are core's [`KeyRecord`],
//! shared with the local provider.

use keyward_core::provider::key_record::{KeyRecord, VersionRecord};
use keyward_core::provider::{KeySpec, ProviderError, Result};
use serde::{Deserialize, Serialize, Serializer};

pub const FORMAT: u32 = 1;
/// Prefix of every key id; names may not start with it, so an id and a name
/// never collide in `describe_key`.
pub const ID_PREFIX: &str = "p11k-";

/// Stored as one JSON object: the stamp fields first, then the record's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMeta {
    pub format: u32,
    /// Bumped on every write; when a crash leaves two documents for one key,
    /// the higher generation wins.
    pub generation: u64,
    pub key: KeyRecord<VersionRecord>,
}

/// The fields a document has besides the record's.
#[derive(Deserialize)]
struct Stamp {
    format: u32,
    generation: u64,
}

pub fn new_key_id() -> String {
    let mut bytes = [0u8; 8];
    keyward_core::crypto::fill_random(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{ID_PREFIX}{hex}")
}

pub fn check_name(name: &str) -> Result<()> {
    let usable = !name.is_empty()
        && !name.starts_with(ID_PREFIX)
        && name.len() <= 200
        && !name.chars().any(|c| c.is_control());
    if usable {
        Ok(())
    } else {
        Err(ProviderError::InvalidRequest(format!(
            "`{name}` is not a usable key name (empty, over 200 bytes, control characters, or starting with the id prefix `{ID_PREFIX}`)"
        )))
    }
}

impl Serialize for KeyMeta {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        self.key.serialize_after(serializer, "KeyMeta", 2, |out| {
            out.serialize_field("format", &self.format)?;
            out.serialize_field("generation", &self.generation)
        })
    }
}

impl KeyMeta {
    pub fn new(spec: &KeySpec, id: String, now: u64) -> Self {
        KeyMeta {
            format: FORMAT,
            generation: 0,
            key: KeyRecord::new(spec, id, VersionRecord::new(1, now)),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("key metadata always serialises")
    }

    /// Reads the stamp and the record in two passes over the same bytes (the
    /// record ignores the stamp's fields), so errors keep serde's positions.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let unreadable = |e: serde_json::Error| {
            ProviderError::Storage(format!("unreadable Keyward key metadata on the token: {e}"))
        };
        let stamp: Stamp = serde_json::from_slice(bytes).map_err(unreadable)?;
        let key = serde_json::from_slice(bytes).map_err(unreadable)?;
        if stamp.format != FORMAT {
            return Err(ProviderError::Storage(format!(
                "key metadata format {} on the token is not supported (expected {FORMAT}); upgrade Keyward",
                stamp.format
            )));
        }
        Ok(KeyMeta {
            format: stamp.format,
            generation: stamp.generation,
            key,
        })
    }

    /// Records a version whose token objects now exist and makes it primary.
    pub fn add_primary(&mut self, version: u32, now: u64) {
        self.key.push_primary(VersionRecord::new(version, now));
    }

    pub fn primary_for_wrap(&self) -> Result<u32> {
        Ok(self.key.primary_for_wrap()?.version)
    }

    pub fn version_for_unwrap(&self, number: u32) -> Result<u32> {
        Ok(self.key.version_for_unwrap(number)?.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::provider::key_record::{Due, system_time};
    use keyward_core::provider::{DeletionTarget, KeyAlgorithm, VersionState};
    use std::time::Duration;

    fn key() -> KeyMeta {
        let spec = KeySpec {
            name: "payments".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("uid-1".into()),
            description: None,
        };
        KeyMeta::new(&spec, new_key_id(), 0)
    }

    /// Metadata as it is stored on tokens today: a destroyed, a pending, a
    /// disabled and an enabled primary version, and the whole key scheduled
    /// for deletion.
    const STORED: &str = concat!(
        r#"{"format":1,"generation":7,"id":"p11k-0011223344556677","name":"payments","algorithm":"AES256","owner":"uid-1","description":"db key","primary":4,"deletion_at":5000,"versions":["#,
        r#"{"version":1,"state":"destroyed","created_at":100,"deletion_at":150},"#,
        r#"{"version":2,"state":"pendingDeletion","created_at":200,"deletion_at":9000},"#,
        r#"{"version":3,"state":"disabled","created_at":300,"deletion_at":null},"#,
        r#"{"version":4,"state":"enabled","created_at":400,"deletion_at":null}]}"#,
    );

    fn pending(version: u32) -> Option<ProviderError> {
        Some(ProviderError::PendingDeletion {
            key: "p11k-0011223344556677".into(),
            version,
        })
    }

    #[test]
    fn stored_metadata_reserialises_byte_for_byte_and_answers_as_before() {
        let mut meta = KeyMeta::from_json(STORED.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(meta.to_json()).unwrap(), STORED);
        let info = meta.key.info();
        assert_eq!(info.deletion_at, Some(system_time(5000)));
        assert_eq!(info.versions[1].deletion_at, Some(system_time(9000)));
        assert_eq!(info.versions[2].created_at, system_time(300));
        assert_eq!(meta.primary_for_wrap().err(), pending(4));
        assert_eq!(meta.version_for_unwrap(3).err(), pending(4));
        // A version that does not exist is unknown, deletion or not.
        assert_eq!(
            meta.version_for_unwrap(9).err(),
            Some(ProviderError::UnknownVersion {
                key: meta.key.id.clone(),
                version: 9
            })
        );
        assert_eq!(meta.key.set_enabled(3, true).err(), pending(4));
        assert_eq!(meta.key.due(4999), Due::default());
        assert_eq!(
            meta.key.due(9000),
            Due {
                whole_key: true,
                versions: vec![2]
            }
        );
    }

    #[test]
    fn operations_on_stored_metadata_write_the_same_form() {
        let mut meta = KeyMeta::from_json(STORED.as_bytes()).unwrap();
        let at = meta
            .key
            .schedule_deletion(DeletionTarget::WholeKey, Duration::from_secs(1), 0)
            .unwrap();
        assert_eq!(
            at,
            system_time(5000),
            "a second request keeps the first date"
        );
        meta.key.cancel_deletion(DeletionTarget::WholeKey).unwrap();
        assert_eq!(meta.primary_for_wrap().unwrap(), 4);
        assert!(matches!(
            meta.version_for_unwrap(3),
            Err(ProviderError::VersionDisabled { version: 3, .. })
        ));
        assert_eq!(meta.version_for_unwrap(2).err(), pending(2));
        assert!(matches!(
            meta.version_for_unwrap(1),
            Err(ProviderError::UnknownVersion { version: 1, .. })
        ));
        assert_eq!(meta.key.set_enabled(2, true).err(), pending(2));
        assert!(matches!(
            meta.key.set_enabled(1, true),
            Err(ProviderError::UnknownVersion { version: 1, .. })
        ));
        meta.key.set_enabled(3, true).unwrap();
        meta.key
            .schedule_deletion(DeletionTarget::Version(3), Duration::from_secs(50), 100)
            .unwrap();
        meta.key
            .cancel_deletion(DeletionTarget::Version(2))
            .unwrap();
        meta.key
            .cancel_deletion(DeletionTarget::Version(4))
            .unwrap();
        assert_eq!(meta.key.due(150).versions, [3]);
        meta.key.mark_destroyed(3);
        meta.add_primary(meta.key.next_version(), 500);
        let expected = concat!(
            r#"{"format":1,"generation":7,"id":"p11k-0011223344556677","name":"payments","algorithm":"AES256","owner":"uid-1","description":"db key","primary":5,"deletion_at":null,"versions":["#,
            r#"{"version":1,"state":"destroyed","created_at":100,"deletion_at":150},"#,
            r#"{"version":2,"state":"disabled","created_at":200,"deletion_at":null},"#,
            r#"{"version":3,"state":"destroyed","created_at":300,"deletion_at":150},"#,
            r#"{"version":4,"state":"enabled","created_at":400,"deletion_at":null},"#,
            r#"{"version":5,"state":"enabled","created_at":500,"deletion_at":null}]}"#,
        );
        assert_eq!(String::from_utf8(meta.to_json()).unwrap(), expected);
    }

    #[test]
    fn unreadable_metadata_is_reported_as_before() {
        let cases = [
            (
                r#"{"format":1,"generation":0}"#,
                "missing field `id` at line 1 column 27",
            ),
            (
                r#"{"format":1,"generation":0,"id":"p11k-1","name":"a","algorithm":"AES256","owner":null,"description":null,"primary":1,"deletion_at":null,"versions":[{"version":1,"state":"gone","created_at":0,"deletion_at":null}]}"#,
                "unknown variant `gone`, expected one of `enabled`, `disabled`, `pendingDeletion`, `destroyed` at line 1 column 175",
            ),
            (
                r#"{"format":1,"generation":0,"id":7}"#,
                "invalid type: integer `7`, expected a string at line 1 column 33",
            ),
            (
                r#"{"format":"x"}"#,
                "invalid type: string \"x\", expected u32 at line 1 column 13",
            ),
        ];
        for (document, detail) in cases {
            assert_eq!(
                KeyMeta::from_json(document.as_bytes()).unwrap_err(),
                ProviderError::Storage(format!(
                    "unreadable Keyward key metadata on the token: {detail}"
                ))
            );
        }
    }

    #[test]
    fn json_round_trip_and_format_check() {
        let mut meta = key();
        meta.add_primary(2, 5);
        assert_eq!(KeyMeta::from_json(&meta.to_json()).unwrap(), meta);
        meta.format = 9;
        let error = KeyMeta::from_json(&meta.to_json()).unwrap_err();
        assert!(error.to_string().contains("upgrade Keyward"), "{error}");
        assert!(matches!(
            KeyMeta::from_json(b"{"),
            Err(ProviderError::Storage(_))
        ));
    }

    #[test]
    fn names_that_look_like_ids_are_refused() {
        assert!(check_name("payments/db").is_ok());
        assert!(check_name("p11k-0011").is_err());
        assert!(check_name("").is_err());
        assert!(check_name("a\nb").is_err());
    }

    #[test]
    fn disabled_and_pending_versions_are_refused() {
        let mut meta = key();
        meta.add_primary(2, 1);
        meta.key.set_enabled(1, false).unwrap();
        assert!(matches!(
            meta.version_for_unwrap(1),
            Err(ProviderError::VersionDisabled { .. })
        ));
        assert_eq!(meta.primary_for_wrap().unwrap(), 2);
        meta.key.set_enabled(1, true).unwrap();
        meta.key
            .schedule_deletion(DeletionTarget::Version(1), Duration::from_secs(10), 0)
            .unwrap();
        assert!(matches!(
            meta.version_for_unwrap(1),
            Err(ProviderError::PendingDeletion { .. })
        ));
        assert!(
            meta.key
                .schedule_deletion(DeletionTarget::Version(2), Duration::ZERO, 0)
                .unwrap_err()
                .to_string()
                .contains("rotate the key first")
        );
        assert_eq!(meta.key.due(9), Due::default());
        assert_eq!(meta.key.due(10).versions, [1]);
        meta.key.mark_destroyed(1);
        assert!(matches!(
            meta.version_for_unwrap(1),
            Err(ProviderError::UnknownVersion { .. })
        ));
    }

    #[test]
    fn cancelled_version_comes_back_disabled_and_whole_key_deletion_blocks_use() {
        let mut meta = key();
        meta.add_primary(2, 1);
        meta.key
            .schedule_deletion(DeletionTarget::Version(1), Duration::from_secs(10), 0)
            .unwrap();
        meta.key
            .cancel_deletion(DeletionTarget::Version(1))
            .unwrap();
        assert_eq!(meta.key.versions[0].state, VersionState::Disabled);
        let at = meta
            .key
            .schedule_deletion(DeletionTarget::WholeKey, Duration::from_secs(7), 0)
            .unwrap();
        let again = meta
            .key
            .schedule_deletion(DeletionTarget::WholeKey, Duration::from_secs(99), 3)
            .unwrap();
        assert_eq!(at, again, "a second request keeps the first date");
        assert!(matches!(
            meta.primary_for_wrap(),
            Err(ProviderError::PendingDeletion { .. })
        ));
        assert!(meta.key.due(7).whole_key);
        meta.key.cancel_deletion(DeletionTarget::WholeKey).unwrap();
        assert_eq!(meta.primary_for_wrap().unwrap(), 2);
    }
}
