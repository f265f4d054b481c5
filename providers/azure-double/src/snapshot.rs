//! What a test may look at: a key's versions (enabled flag, validity,
//! tags) and its deleted state, without key material.

use crate::vault::Vault;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSnapshot {
    /// The 32-hex-digit version id.
    pub id: String,
    /// `RSA`, `RSA-HSM`, `EC` or `EC-HSM`.
    pub kty: &'static str,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub tags: BTreeMap<String, String>,
    pub key_ops: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedSnapshot {
    /// Unix seconds.
    pub deleted_date: i64,
    /// Unix seconds: `deleted_date` plus the retention period.
    pub scheduled_purge_date: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySnapshot {
    /// In creation order; the last is the key's current version.
    pub versions: Vec<VersionSnapshot>,
    /// Set while the key is soft-deleted.
    pub deleted: Option<DeletedSnapshot>,
    /// Whether a rotation policy was set, and whether it rotates.
    pub has_rotation_policy: bool,
    pub policy_rotates: bool,
}

pub(crate) fn of(vault: &Vault, name: &str) -> Option<KeySnapshot> {
    let key = vault.keys.get(name)?;
    Some(KeySnapshot {
        versions: key
            .versions
            .iter()
            .map(|v| VersionSnapshot {
                id: v.id.clone(),
                kty: v.kty,
                enabled: v.enabled,
                nbf: v.nbf,
                exp: v.exp,
                tags: v.tags.clone(),
                key_ops: v.key_ops.clone(),
            })
            .collect(),
        deleted: key.deleted.as_ref().map(|d| DeletedSnapshot {
            deleted_date: d.date,
            scheduled_purge_date: d.scheduled_purge,
        }),
        has_rotation_policy: key.policy.is_some(),
        policy_rotates: key.policy.as_ref().is_some_and(|p| p.rotates()),
    })
}
