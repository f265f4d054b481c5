//! A key's versions as Keyward sees them: Key Vault versions numbered by
//! their `keyward-version` tag, with the state Keyward gives them
//! (disabled versions tagged `keyward-destroy-at` are pending deletion,
//! then destroyed once the time has passed).

use crate::naming::{self, ALGORITHM_TAG, DESTROY_AT_TAG, OWNER_TAG, VERSION_TAG};
use azure_security_keyvault_keys::models::{KeyAttributes, KeyProperties};
use keyward_core::provider::key_record::system_time;
use keyward_core::provider::{
    KeyAlgorithm, KeyInfo, ProviderError, Result, VersionInfo, VersionState,
};
use std::collections::HashMap;
use std::time::SystemTime;

/// One Key Vault version that carries a Keyward number.
#[derive(Debug, Clone)]
pub(crate) struct Version {
    pub number: u32,
    /// Key Vault's 32-hex-digit version id.
    pub id: String,
    pub enabled: bool,
    pub created: SystemTime,
    /// The vault's soft-delete retention, as Key Vault reports it.
    pub recoverable_days: Option<i32>,
    pub tags: HashMap<String, String>,
}

impl Version {
    /// From a listed or fetched version; `None` when it has no Keyward
    /// number (a version made outside Keyward).
    pub fn of(
        kid: Option<&str>,
        attributes: Option<&KeyAttributes>,
        tags: Option<&HashMap<String, String>>,
    ) -> Option<Version> {
        let tags = tags.cloned().unwrap_or_default();
        let number = tags
            .get(VERSION_TAG)?
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)?;
        let id = naming::version_id(kid?)?.to_owned();
        Some(Version {
            number,
            id,
            enabled: attributes.and_then(|a| a.enabled).unwrap_or(true),
            created: attributes
                .and_then(|a| a.created)
                .map(SystemTime::from)
                .unwrap_or(std::time::UNIX_EPOCH),
            recoverable_days: attributes.and_then(|a| a.recoverable_days),
            tags,
        })
    }

    pub fn from_properties(properties: &KeyProperties) -> Option<Version> {
        Version::of(
            properties.kid.as_deref(),
            properties.attributes.as_ref(),
            properties.tags.as_ref(),
        )
    }

    /// When Keyward destroys this version, once scheduled.
    pub fn destroy_at(&self) -> Option<SystemTime> {
        self.tags
            .get(DESTROY_AT_TAG)
            .and_then(|s| s.parse::<u64>().ok())
            .map(system_time)
    }

    pub fn state(&self, now: SystemTime) -> VersionState {
        match self.destroy_at() {
            Some(at) if at <= now => VersionState::Destroyed,
            Some(_) => VersionState::PendingDeletion,
            None if self.enabled => VersionState::Enabled,
            None => VersionState::Disabled,
        }
    }
}

/// One version per number: the first made. A Key Vault rotation policy
/// (which Keyward's keys must not have, but a user may set) copies the
/// current version's tags, `keyward-version` included, onto the version it
/// makes; that copy is not Keyward's version and is left out, so a number
/// always names the version its envelopes were wrapped with. Key Vault's
/// times have whole seconds: a copy made within the same second as the
/// original is told apart by nothing, so ties go to the lower version id,
/// the same in every process but possibly the copy.
pub(crate) fn distinct(mut list: Vec<Version>) -> Vec<Version> {
    list.sort_by(|a, b| (a.number, a.created, &a.id).cmp(&(b.number, b.created, &b.id)));
    list.dedup_by_key(|v| v.number);
    list
}

/// All Keyward versions of one Key Vault key, by number.
#[derive(Debug, Clone)]
pub(crate) struct Versions {
    pub name: String,
    pub list: Vec<Version>,
}

impl Versions {
    /// Sorted by number; an empty list is an unknown key (the name is
    /// taken by a key Keyward did not make).
    pub fn new(name: &str, mut list: Vec<Version>) -> Result<Versions> {
        if list.is_empty() {
            return Err(ProviderError::InvalidRequest(format!(
                "Key Vault key `{name}` has no version tagged `{VERSION_TAG}`: it was not made by Keyward; pick another name"
            )));
        }
        list.sort_by_key(|v| v.number);
        Ok(Versions {
            name: name.to_owned(),
            list,
        })
    }

    /// The primary: the highest number among versions not destroyed (Key
    /// Vault has no primary of its own), or the highest when all are.
    pub fn primary(&self) -> &Version {
        let now = SystemTime::now();
        self.list
            .iter()
            .rev()
            .find(|v| v.state(now) != VersionState::Destroyed)
            .unwrap_or_else(|| self.list.last().expect("at least one version"))
    }

    /// The next number a rotation makes.
    pub fn next_number(&self) -> u32 {
        self.list.last().map_or(1, |v| v.number + 1)
    }

    pub fn get(&self, number: u32) -> Option<&Version> {
        self.list.iter().find(|v| v.number == number)
    }

    pub fn algorithm(&self) -> Result<KeyAlgorithm> {
        let tag = self.primary().tags.get(ALGORITHM_TAG);
        tag.and_then(|a| a.parse().ok()).ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "Key Vault key `{}` has no readable `{ALGORITHM_TAG}` tag ({})",
                self.name,
                tag.map_or("missing", String::as_str)
            ))
        })
    }

    pub fn info(&self, key_id: String, deletion_at: Option<SystemTime>) -> Result<KeyInfo> {
        let now = SystemTime::now();
        let primary = self.primary();
        Ok(KeyInfo {
            key_id,
            name: self.name.clone(),
            algorithm: self.algorithm()?,
            owner: primary.tags.get(OWNER_TAG).cloned(),
            primary_version: primary.number,
            versions: self
                .list
                .iter()
                .map(|v| VersionInfo {
                    version: v.number,
                    state: if deletion_at.is_some() {
                        VersionState::PendingDeletion
                    } else {
                        v.state(now)
                    },
                    created_at: v.created,
                    deletion_at: deletion_at.or(v.destroy_at()),
                })
                .collect(),
            deletion_at,
            claim: crate::claims::from_tags(&primary.tags),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(number: u32, enabled: bool, destroy_at: Option<u64>) -> Version {
        let mut tags: HashMap<String, String> = [
            (VERSION_TAG.to_owned(), number.to_string()),
            (ALGORITHM_TAG.to_owned(), "RSA3072".to_owned()),
        ]
        .into();
        if let Some(at) = destroy_at {
            tags.insert(DESTROY_AT_TAG.to_owned(), at.to_string());
        }
        Version {
            number,
            id: format!("{number:032x}"),
            enabled,
            created: std::time::UNIX_EPOCH,
            recoverable_days: None,
            tags,
        }
    }

    #[test]
    fn the_primary_is_the_highest_version_not_destroyed() {
        let far = 4_000_000_000;
        let versions = Versions::new(
            "kek",
            vec![
                version(2, false, Some(far)),
                version(1, true, None),
                version(3, false, Some(1)),
            ],
        )
        .unwrap();
        assert_eq!(versions.primary().number, 2);
        assert_eq!(versions.next_number(), 4);
        let now = SystemTime::now();
        assert_eq!(versions.get(3).unwrap().state(now), VersionState::Destroyed);
        assert_eq!(
            versions.get(2).unwrap().state(now),
            VersionState::PendingDeletion
        );
        assert_eq!(versions.get(1).unwrap().state(now), VersionState::Enabled);
        assert_eq!(versions.algorithm().unwrap(), KeyAlgorithm::Rsa3072);
        assert!(Versions::new("kek", vec![]).is_err());
    }

    #[test]
    fn a_copy_of_a_numbered_version_does_not_take_its_number() {
        let first = version(1, true, None);
        let mut copy = version(1, true, None);
        copy.id = format!("{:032x}", 9);
        copy.created = first.created + std::time::Duration::from_secs(60);
        let second = version(2, true, None);
        let kept = distinct(vec![copy, second.clone(), first.clone()]);
        let ids: Vec<(u32, &str)> = kept.iter().map(|v| (v.number, v.id.as_str())).collect();
        assert_eq!(ids, [(1, first.id.as_str()), (2, second.id.as_str())]);
    }
}
