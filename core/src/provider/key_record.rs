//! A key's versions and the rules for using and retiring them, for the
//! providers that keep their own records (the local keyring, PKCS#11 token
//! metadata). Plain data with no I/O: a provider loads a record, applies one
//! of these, does its own storage work, and writes the record back.

use super::{
    Claim, DeletionTarget, KeyAlgorithm, KeyInfo, KeySpec, ProviderError, Result, VersionInfo,
    VersionState,
};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One key as a provider records it. The field names and their order are
/// the stored JSON of every provider that uses it: never rename or reorder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct KeyRecord<V> {
    pub id: String,
    pub name: String,
    pub algorithm: KeyAlgorithm,
    pub owner: Option<String>,
    pub description: Option<String>,
    pub primary: u32,
    /// When the whole key is destroyed (Unix seconds), once scheduled.
    pub deletion_at: Option<u64>,
    pub versions: Vec<V>,
    /// The cluster that uses the key, for providers that keep claims.
    /// Absent from records written before claims existed.
    #[serde(default)]
    pub claim: Option<ClaimRecord>,
}

/// A [`Claim`] as stored: the cluster id and renewal time (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRecord {
    pub cluster: String,
    pub renewed_at: u64,
}

impl ClaimRecord {
    pub fn from_claim(claim: &Claim) -> Self {
        ClaimRecord {
            cluster: claim.cluster.clone(),
            renewed_at: unix_seconds(claim.renewed_at),
        }
    }

    pub fn to_claim(&self) -> Claim {
        Claim {
            cluster: self.cluster.clone(),
            renewed_at: system_time(self.renewed_at),
        }
    }
}

/// What the rules read and change in one recorded version. A provider that
/// keeps more in a version (the local provider keeps its key material)
/// implements it; the others use [`VersionRecord`].
pub trait RecordedVersion {
    fn number(&self) -> u32;
    fn state(&self) -> VersionState;
    fn created_at(&self) -> u64;
    fn deletion_at(&self) -> Option<u64>;
    fn set_state(&mut self, state: VersionState, deletion_at: Option<u64>);
}

/// A version with nothing but its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionRecord {
    pub version: u32,
    pub state: VersionState,
    pub created_at: u64,
    pub deletion_at: Option<u64>,
}

/// What is due for destruction now: the whole key, or single versions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub whole_key: bool,
    pub versions: Vec<u32>,
}

pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn system_time(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

impl VersionRecord {
    /// A fresh, enabled version.
    pub fn new(version: u32, now: u64) -> Self {
        VersionRecord {
            version,
            state: VersionState::Enabled,
            created_at: now,
            deletion_at: None,
        }
    }
}

/// Implements [`RecordedVersion`] for a struct whose lifecycle fields are
/// named as in [`VersionRecord`] (the stored format fixes those names).
macro_rules! recorded_version {
    ($type:ty) => {
        impl $crate::provider::key_record::RecordedVersion for $type {
            fn number(&self) -> u32 {
                self.version
            }
            fn state(&self) -> $crate::provider::VersionState {
                self.state
            }
            fn created_at(&self) -> u64 {
                self.created_at
            }
            fn deletion_at(&self) -> Option<u64> {
                self.deletion_at
            }
            fn set_state(
                &mut self,
                state: $crate::provider::VersionState,
                deletion_at: Option<u64>,
            ) {
                self.state = state;
                self.deletion_at = deletion_at;
            }
        }
    };
}
pub(crate) use recorded_version;

recorded_version!(VersionRecord);

impl<V: Serialize> Serialize for KeyRecord<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_after(serializer, "KeyRecord", 0, |_| Ok(()))
    }
}

impl<V: Serialize> KeyRecord<V> {
    /// Writes the record's fields as one struct named `name`, after the
    /// `extra` fields that `head` writes (a provider's own stamp, such as
    /// PKCS#11's format and generation). The names and order here must match
    /// the derived `Deserialize`; `json_keeps_its_field_names_and_order`
    /// pins both.
    pub fn serialize_after<S: Serializer>(
        &self,
        serializer: S,
        name: &'static str,
        extra: usize,
        head: impl FnOnce(&mut S::SerializeStruct) -> Result<(), S::Error>,
    ) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct(name, extra + 9)?;
        head(&mut out)?;
        out.serialize_field("id", &self.id)?;
        out.serialize_field("name", &self.name)?;
        out.serialize_field("algorithm", &self.algorithm)?;
        out.serialize_field("owner", &self.owner)?;
        out.serialize_field("description", &self.description)?;
        out.serialize_field("primary", &self.primary)?;
        out.serialize_field("deletion_at", &self.deletion_at)?;
        out.serialize_field("versions", &self.versions)?;
        // Left out until set, so records without one read as before.
        match &self.claim {
            Some(claim) => out.serialize_field("claim", claim)?,
            None => out.skip_field("claim")?,
        }
        out.end()
    }
}

impl<V: RecordedVersion> KeyRecord<V> {
    /// A new key whose first version, `first`, is primary.
    pub fn new(spec: &KeySpec, id: String, first: V) -> Self {
        KeyRecord {
            id,
            name: spec.name.clone(),
            algorithm: spec.algorithm,
            owner: spec.owner.clone(),
            description: spec.description.clone(),
            primary: first.number(),
            deletion_at: None,
            versions: vec![first],
            claim: None,
        }
    }

    /// Records the key's stable owner and, when given, the claim on it.
    pub fn set_owner(&mut self, owner: &str, claim: Option<&Claim>) {
        self.owner = Some(owner.to_owned());
        if let Some(claim) = claim {
            self.claim = Some(ClaimRecord::from_claim(claim));
        }
    }

    pub fn info(&self) -> KeyInfo {
        KeyInfo {
            key_id: self.id.clone(),
            name: self.name.clone(),
            algorithm: self.algorithm,
            owner: self.owner.clone(),
            primary_version: self.primary,
            versions: self
                .versions
                .iter()
                .map(|v| VersionInfo {
                    version: v.number(),
                    state: v.state(),
                    created_at: system_time(v.created_at()),
                    deletion_at: v.deletion_at().map(system_time),
                })
                .collect(),
            deletion_at: self.deletion_at.map(system_time),
            claim: self.claim.as_ref().map(ClaimRecord::to_claim),
        }
    }

    fn unknown_version(&self, number: u32) -> ProviderError {
        ProviderError::UnknownVersion {
            key: self.id.clone(),
            version: number,
        }
    }

    /// A version that still exists (destroyed ones are unknown).
    pub fn version(&self, number: u32) -> Result<&V> {
        self.versions
            .iter()
            .find(|v| v.number() == number && v.state() != VersionState::Destroyed)
            .ok_or_else(|| self.unknown_version(number))
    }

    fn version_mut(&mut self, number: u32) -> Result<&mut V> {
        let unknown = self.unknown_version(number);
        self.versions
            .iter_mut()
            .find(|v| v.number() == number)
            .ok_or(unknown)
    }

    pub fn next_version(&self) -> u32 {
        self.versions.iter().map(|v| v.number()).max().unwrap_or(0) + 1
    }

    /// Records a new version and makes it primary.
    pub fn push_primary(&mut self, version: V) {
        self.primary = version.number();
        self.versions.push(version);
    }

    pub fn refuse_if_pending_deletion(&self) -> Result<()> {
        match self.deletion_at {
            Some(_) => Err(ProviderError::PendingDeletion {
                key: self.id.clone(),
                version: self.primary,
            }),
            None => Ok(()),
        }
    }

    pub fn set_enabled(&mut self, number: u32, enabled: bool) -> Result<()> {
        self.refuse_if_pending_deletion()?;
        let id = self.id.clone();
        let version = self.version_mut(number)?;
        match version.state() {
            VersionState::Enabled | VersionState::Disabled => {
                let state = if enabled {
                    VersionState::Enabled
                } else {
                    VersionState::Disabled
                };
                let deletion_at = version.deletion_at();
                version.set_state(state, deletion_at);
                Ok(())
            }
            VersionState::PendingDeletion => Err(ProviderError::PendingDeletion {
                key: id,
                version: number,
            }),
            VersionState::Destroyed => Err(ProviderError::UnknownVersion {
                key: id,
                version: number,
            }),
        }
    }

    /// Schedules destruction `window` after `now`. Asking again keeps the
    /// first date; the primary version can only go with the whole key.
    pub fn schedule_deletion(
        &mut self,
        target: DeletionTarget,
        window: Duration,
        now: u64,
    ) -> Result<SystemTime> {
        let at = now.saturating_add(window.as_secs());
        match target {
            DeletionTarget::WholeKey => Ok(system_time(*self.deletion_at.get_or_insert(at))),
            DeletionTarget::Version(number) => {
                if number == self.primary {
                    return Err(ProviderError::InvalidRequest(format!(
                        "version {number} is the primary version of `{}`; rotate the key first, or delete the whole key",
                        self.name
                    )));
                }
                let unknown = self.unknown_version(number);
                let version = self.version_mut(number)?;
                match version.state() {
                    VersionState::Destroyed => Err(unknown),
                    VersionState::PendingDeletion => {
                        Ok(system_time(version.deletion_at().unwrap_or(at)))
                    }
                    VersionState::Enabled | VersionState::Disabled => {
                        version.set_state(VersionState::PendingDeletion, Some(at));
                        Ok(system_time(at))
                    }
                }
            }
        }
    }

    /// A cancelled version comes back disabled, as in AWS KMS: enabling it
    /// again is a separate, deliberate step.
    pub fn cancel_deletion(&mut self, target: DeletionTarget) -> Result<()> {
        match target {
            DeletionTarget::WholeKey => {
                self.deletion_at = None;
                Ok(())
            }
            DeletionTarget::Version(number) => {
                let unknown = self.unknown_version(number);
                let version = self.version_mut(number)?;
                match version.state() {
                    VersionState::PendingDeletion => {
                        version.set_state(VersionState::Disabled, None);
                        Ok(())
                    }
                    VersionState::Destroyed => Err(unknown),
                    VersionState::Enabled | VersionState::Disabled => Ok(()),
                }
            }
        }
    }

    pub fn due(&self, now: u64) -> Due {
        Due {
            whole_key: self.deletion_at.is_some_and(|at| at <= now),
            versions: self
                .versions
                .iter()
                .filter(|v| {
                    v.state() == VersionState::PendingDeletion
                        && v.deletion_at().is_some_and(|at| at <= now)
                })
                .map(|v| v.number())
                .collect(),
        }
    }

    /// The earliest scheduled destruction, of the key or of a version.
    pub fn next_due(&self) -> Option<u64> {
        self.deletion_at
            .into_iter()
            .chain(
                self.versions
                    .iter()
                    .filter(|v| v.state() == VersionState::PendingDeletion)
                    .filter_map(|v| v.deletion_at()),
            )
            .min()
    }

    /// Marks a version destroyed (its date stays as a record) and returns
    /// it, so the caller can drop what it kept for it.
    pub fn mark_destroyed(&mut self, number: u32) -> Option<&mut V> {
        let version = self.version_mut(number).ok()?;
        let deletion_at = version.deletion_at();
        version.set_state(VersionState::Destroyed, deletion_at);
        Some(version)
    }

    /// The primary version, when it may wrap.
    pub fn primary_for_wrap(&self) -> Result<&V> {
        self.usable(self.primary)
    }

    /// Version `number`, when it may unwrap.
    pub fn version_for_unwrap(&self, number: u32) -> Result<&V> {
        self.usable(number)
    }

    /// A missing or destroyed version is `UnknownVersion` even while the
    /// whole key awaits deletion: cancelling that would not bring it back.
    fn usable(&self, number: u32) -> Result<&V> {
        let version = self.version(number)?;
        self.refuse_if_pending_deletion()?;
        refuse_unusable(&self.id, version.number(), version.state())?;
        Ok(version)
    }
}

/// Why version `number` of `key` in `state` may not wrap, unwrap or sign:
/// disabled, pending deletion, or destroyed (as unknown); `Ok` when enabled.
pub fn refuse_unusable(key: &str, number: u32, state: VersionState) -> Result<()> {
    let key = key.to_owned();
    match state {
        VersionState::Enabled => Ok(()),
        VersionState::Disabled => Err(ProviderError::VersionDisabled {
            key,
            version: number,
        }),
        VersionState::PendingDeletion => Err(ProviderError::PendingDeletion {
            key,
            version: number,
        }),
        VersionState::Destroyed => Err(ProviderError::UnknownVersion {
            key,
            version: number,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "k-1";

    /// Versions 1..=4: destroyed, pending deletion (due at 900), disabled,
    /// enabled and primary.
    fn record() -> KeyRecord<VersionRecord> {
        let version = |version, state, deletion_at| VersionRecord {
            version,
            state,
            created_at: u64::from(version) * 100,
            deletion_at,
        };
        KeyRecord {
            id: KEY.into(),
            name: "payments".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("uid-1".into()),
            description: None,
            primary: 4,
            deletion_at: None,
            claim: None,
            versions: vec![
                version(1, VersionState::Destroyed, Some(150)),
                version(2, VersionState::PendingDeletion, Some(900)),
                version(3, VersionState::Disabled, None),
                version(4, VersionState::Enabled, None),
            ],
        }
    }

    fn unknown(version: u32) -> Option<ProviderError> {
        Some(ProviderError::UnknownVersion {
            key: KEY.into(),
            version,
        })
    }

    fn pending(version: u32) -> Option<ProviderError> {
        Some(ProviderError::PendingDeletion {
            key: KEY.into(),
            version,
        })
    }

    fn disabled(version: u32) -> Option<ProviderError> {
        Some(ProviderError::VersionDisabled {
            key: KEY.into(),
            version,
        })
    }

    fn states(record: &KeyRecord<VersionRecord>) -> Vec<VersionState> {
        record.versions.iter().map(|v| v.state).collect()
    }

    const JSON: &str = concat!(
        r#"{"id":"k-1","name":"payments","algorithm":"AES256","owner":"uid-1","description":null,"primary":4,"deletion_at":null,"versions":["#,
        r#"{"version":1,"state":"destroyed","created_at":100,"deletion_at":150},"#,
        r#"{"version":2,"state":"pendingDeletion","created_at":200,"deletion_at":900},"#,
        r#"{"version":3,"state":"disabled","created_at":300,"deletion_at":null},"#,
        r#"{"version":4,"state":"enabled","created_at":400,"deletion_at":null}]}"#,
    );

    #[test]
    fn json_keeps_its_field_names_and_order() {
        assert_eq!(serde_json::to_string(&record()).unwrap(), JSON);
        let read: KeyRecord<VersionRecord> = serde_json::from_str(JSON).unwrap();
        assert_eq!(read, record());
    }

    #[test]
    fn serialize_after_writes_the_head_first() {
        struct Stamped(KeyRecord<VersionRecord>);
        impl Serialize for Stamped {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0
                    .serialize_after(s, "Stamped", 1, |out| out.serialize_field("format", &1))
            }
        }
        let json = serde_json::to_string(&Stamped(record())).unwrap();
        assert_eq!(json, format!(r#"{{"format":1,{}"#, &JSON[1..]));
    }

    #[test]
    fn only_enabled_versions_wrap_and_unwrap() {
        let record = record();
        assert_eq!(record.primary_for_wrap().unwrap().version, 4);
        assert_eq!(record.version_for_unwrap(4).unwrap().version, 4);
        assert_eq!(record.version_for_unwrap(3).err(), disabled(3));
        assert_eq!(record.version_for_unwrap(2).err(), pending(2));
        assert_eq!(record.version_for_unwrap(1).err(), unknown(1));
        assert_eq!(record.version_for_unwrap(9).err(), unknown(9));
        assert_eq!(record.version(1).err(), unknown(1));
        assert_eq!(record.version(2).unwrap().version, 2);
    }

    #[test]
    fn a_key_pending_deletion_refuses_use_but_a_missing_version_is_unknown() {
        let mut record = record();
        record.deletion_at = Some(50);
        assert_eq!(record.primary_for_wrap().err(), pending(4));
        assert_eq!(record.version_for_unwrap(3).err(), pending(4));
        assert_eq!(record.version_for_unwrap(9).err(), unknown(9));
        assert_eq!(record.set_enabled(3, true).err(), pending(4));
        assert_eq!(record.refuse_if_pending_deletion().err(), pending(4));
    }

    #[test]
    fn enabling_and_disabling() {
        let mut record = record();
        record.set_enabled(3, true).unwrap();
        record.set_enabled(4, false).unwrap();
        record.set_enabled(4, false).unwrap();
        assert_eq!(record.set_enabled(2, true).err(), pending(2));
        assert_eq!(record.set_enabled(1, true).err(), unknown(1));
        assert_eq!(record.set_enabled(9, true).err(), unknown(9));
        assert_eq!(
            states(&record),
            [
                VersionState::Destroyed,
                VersionState::PendingDeletion,
                VersionState::Enabled,
                VersionState::Disabled
            ]
        );
        assert_eq!(record.versions[1].deletion_at, Some(900));
    }

    #[test]
    fn scheduling_keeps_the_first_date_and_spares_the_primary() {
        let mut record = record();
        let primary = record
            .schedule_deletion(DeletionTarget::Version(4), Duration::ZERO, 0)
            .unwrap_err();
        assert_eq!(
            primary.to_string(),
            "invalid request: version 4 is the primary version of `payments`; rotate the key first, or delete the whole key"
        );
        let again = record.schedule_deletion(DeletionTarget::Version(2), Duration::from_secs(5), 0);
        assert_eq!(again.unwrap(), system_time(900));
        let third =
            record.schedule_deletion(DeletionTarget::Version(3), Duration::from_secs(5), 10);
        assert_eq!(third.unwrap(), system_time(15));
        assert_eq!(record.versions[2].state, VersionState::PendingDeletion);
        let destroyed = record.schedule_deletion(DeletionTarget::Version(1), Duration::ZERO, 0);
        assert_eq!(destroyed.err(), unknown(1));
        let missing = record.schedule_deletion(DeletionTarget::Version(9), Duration::ZERO, 0);
        assert_eq!(missing.err(), unknown(9));
        let whole = record.schedule_deletion(DeletionTarget::WholeKey, Duration::from_secs(7), 3);
        assert_eq!(whole.unwrap(), system_time(10));
        let whole = record.schedule_deletion(DeletionTarget::WholeKey, Duration::from_secs(99), 5);
        assert_eq!(whole.unwrap(), system_time(10));
        assert_eq!(record.deletion_at, Some(10));
        let late = record.schedule_deletion(DeletionTarget::Version(3), Duration::MAX, u64::MAX);
        assert_eq!(late.unwrap(), system_time(15));
    }

    #[test]
    fn a_cancelled_version_comes_back_disabled() {
        let mut record = record();
        record.cancel_deletion(DeletionTarget::Version(2)).unwrap();
        assert_eq!(record.versions[1].state, VersionState::Disabled);
        assert_eq!(record.versions[1].deletion_at, None);
        record.cancel_deletion(DeletionTarget::Version(4)).unwrap();
        assert_eq!(record.versions[3].state, VersionState::Enabled);
        assert_eq!(
            record.cancel_deletion(DeletionTarget::Version(1)).err(),
            unknown(1)
        );
        assert_eq!(
            record.cancel_deletion(DeletionTarget::Version(9)).err(),
            unknown(9)
        );
        record.deletion_at = Some(10);
        record.cancel_deletion(DeletionTarget::WholeKey).unwrap();
        assert_eq!(record.deletion_at, None);
    }

    #[test]
    fn due_next_due_and_destruction() {
        let mut record = record();
        assert_eq!(record.next_due(), Some(900));
        assert_eq!(record.due(899), Due::default());
        assert_eq!(record.due(900).versions, [2]);
        record.deletion_at = Some(500);
        assert_eq!(record.next_due(), Some(500));
        assert_eq!(
            record.due(900),
            Due {
                whole_key: true,
                versions: vec![2]
            }
        );
        let destroyed = record.mark_destroyed(2).unwrap();
        assert_eq!(destroyed.state, VersionState::Destroyed);
        assert_eq!(destroyed.deletion_at, Some(900));
        assert!(record.mark_destroyed(9).is_none());
        assert_eq!(record.due(900).versions, Vec::<u32>::new());
        record.deletion_at = None;
        assert_eq!(record.next_due(), None);
    }

    #[test]
    fn rotation_and_info() {
        let mut record = record();
        assert_eq!(record.next_version(), 5);
        record.push_primary(VersionRecord::new(5, 1000));
        assert_eq!(record.primary_for_wrap().unwrap().version, 5);
        record.deletion_at = Some(2000);
        let info = record.info();
        assert_eq!(info.key_id, KEY);
        assert_eq!(info.name, "payments");
        assert_eq!(info.owner.as_deref(), Some("uid-1"));
        assert_eq!(info.primary_version, 5);
        assert_eq!(info.deletion_at, Some(system_time(2000)));
        assert_eq!(
            info.versions[1],
            VersionInfo {
                version: 2,
                state: VersionState::PendingDeletion,
                created_at: system_time(200),
                deletion_at: Some(system_time(900)),
            }
        );
        assert_eq!(info.versions[4].state, VersionState::Enabled);
        assert_eq!(
            KeyRecord::<VersionRecord> {
                versions: Vec::new(),
                ..record
            }
            .next_version(),
            1
        );
    }

    #[test]
    fn unix_seconds_round_trip() {
        assert_eq!(unix_seconds(system_time(1234)), 1234);
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
