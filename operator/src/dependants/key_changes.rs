//! The SealedSecret controller's one watch of ManagedKeys. It fills the
//! store its reconciles read keys from, and wakes a key's SealedSecrets only
//! when something they read from the key changed (`Reads`). The ManagedKey
//! controller's own status writes (dependant counts, operations, condition
//! messages) change none of it: at 1,000 keys x 10 secrets each such write
//! used to re-run all ten secrets.

use super::index::Id;
use super::triggers::key_meta;
use futures::{Stream, StreamExt, stream};
use keyward_crds::conditions::{self, ROTATING};
use keyward_crds::{KeyState, ManagedKey};
use kube::ResourceExt;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, store::Writer};
use kube::runtime::watcher::Event;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeSet, HashMap};

/// What a SealedSecret reconcile reads from its ManagedKey: the key and
/// version states `assess` and `rewrap::decide` look at, the primary a
/// re-wrap targets, and the `Rotating` condition's status and reason (an
/// edit of the policy's `rewrap` mode flips it, and the secrets then have
/// to decide again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reads {
    generation: Option<i64>,
    deleting: bool,
    provider_key_id: Option<String>,
    state: Option<KeyState>,
    primary_version: Option<u32>,
    versions: Vec<(u32, KeyState)>,
    rotating: Option<(String, String)>,
}

impl Reads {
    pub fn of(key: &ManagedKey) -> Reads {
        let status = key.status.as_ref();
        Reads {
            generation: key.metadata.generation,
            deleting: key.metadata.deletion_timestamp.is_some(),
            provider_key_id: status.and_then(|s| s.provider_key_id.clone()),
            state: status.and_then(|s| s.state),
            primary_version: status.and_then(|s| s.primary_version),
            versions: status
                .map(|s| s.versions.iter().map(|v| (v.version, v.state)).collect())
                .unwrap_or_default(),
            rotating: status
                .and_then(|s| conditions::find(&s.conditions, ROTATING))
                .map(|c| (c.status.clone(), c.reason.clone())),
        }
    }
}

fn id(key: &ManagedKey) -> Option<Id> {
    Some((key.namespace()?, key.name_any()))
}

/// The last `Reads` seen per key, to tell a change that matters to the
/// secrets from one that does not.
#[derive(Default)]
pub struct KeyChanges {
    seen: HashMap<Id, Reads>,
    /// A (re-)list in progress.
    relist: Option<HashMap<Id, Reads>>,
    synced: bool,
}

impl KeyChanges {
    /// Applies one watch event; returns the keys whose SealedSecrets have to
    /// be reconciled again.
    pub fn apply(&mut self, event: &Event<ManagedKey>) -> Vec<Id> {
        let mut changed = BTreeSet::new();
        match event {
            Event::Init => self.relist = Some(HashMap::new()),
            Event::InitApply(key) => {
                if let (Some(relist), Some(id)) = (self.relist.as_mut(), id(key)) {
                    relist.insert(id, Reads::of(key));
                }
            }
            // kube's store swaps a re-list in only now, so the wake-ups wait
            // for it too (else a woken reconcile could read the old copy).
            Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                for (id, reads) in &self.seen {
                    if listed.get(id) != Some(reads) {
                        changed.insert(id.clone());
                    }
                }
                for (id, reads) in &listed {
                    if self.seen.get(id) != Some(reads) {
                        changed.insert(id.clone());
                    }
                }
                self.seen = listed;
                // Every SealedSecret is reconciled at start anyway.
                if !self.synced {
                    self.synced = true;
                    changed.clear();
                }
            }
            Event::Apply(key) => {
                if let Some(id) = id(key) {
                    let reads = Reads::of(key);
                    if self.seen.get(&id) != Some(&reads) {
                        self.seen.insert(id.clone(), reads);
                        changed.insert(id);
                    }
                }
            }
            Event::Delete(key) => {
                if let Some(id) = id(key) {
                    self.seen.remove(&id);
                    changed.insert(id);
                }
            }
        }
        changed.into_iter().collect()
    }
}

/// What the SealedSecret controller keeps of each ManagedKey (see
/// `crate::slim`): its reconciles read what [`Reads`] lists, of the
/// conditions only `Rotating`. The others (several, each with a message)
/// stay with the ManagedKey controller's own copy.
fn slim_for_secrets(key: &mut ManagedKey) {
    crate::slim::slim(key);
    if let Some(status) = key.status.as_mut() {
        status.conditions.retain(|c| c.type_ == ROTATING);
    }
}

/// Watches ManagedKeys into `writer`'s store and yields the keys whose
/// SealedSecrets to wake (metadata only: name and namespace).
pub fn key_changes(
    api: Api<ManagedKey>,
    writer: Writer<ManagedKey>,
) -> impl Stream<Item = Result<PartialObjectMeta<ManagedKey>, watcher::Error>> + Send + 'static {
    let mut changes = KeyChanges::default();
    reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(slim_for_secrets),
    )
    .flat_map(move |event| {
        let keys: Vec<_> = match event {
            Ok(event) => changes
                .apply(&event)
                .into_iter()
                .map(key_meta)
                .map(Ok)
                .collect(),
            Err(error) => vec![Err(error)],
        };
        stream::iter(keys)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;
    use keyward_crds::{KeyVersionStatus, ManagedKeyStatus};

    fn version(version: u32, state: KeyState, dependants: u32) -> KeyVersionStatus {
        KeyVersionStatus {
            dependants,
            ..KeyVersionStatus::new(version, state)
        }
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    /// Key `apps/db`, v1 primary and Active, Ready, Rotating Idle.
    fn key() -> ManagedKey {
        let mut key: ManagedKey = serde_json::from_value(serde_json::json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": { "name": "db", "namespace": "apps", "generation": 1 },
            "spec": { "provider": { "local": {} }, "state": "Active" },
        }))
        .unwrap();
        key.status = Some(ManagedKeyStatus {
            provider_key_id: Some("k1".into()),
            state: Some(KeyState::Active),
            primary_version: Some(1),
            versions: vec![version(1, KeyState::Active, 0)],
            conditions: vec![
                condition("Ready", "True", "Active", "version 1"),
                condition(ROTATING, "False", "Idle", "nothing"),
            ],
            ..ManagedKeyStatus::default()
        });
        key
    }

    fn status(key: &mut ManagedKey) -> &mut ManagedKeyStatus {
        key.status.as_mut().unwrap()
    }

    fn db() -> Vec<Id> {
        vec![("apps".to_owned(), "db".to_owned())]
    }

    fn synced(keys: &[ManagedKey]) -> KeyChanges {
        let mut changes = KeyChanges::default();
        changes.apply(&Event::Init);
        for key in keys {
            changes.apply(&Event::InitApply(key.clone()));
        }
        assert!(
            changes.apply(&Event::InitDone).is_empty(),
            "the first list wakes nothing: every secret is reconciled at start"
        );
        changes
    }

    #[test]
    fn the_secrets_copy_of_a_key_keeps_what_they_read() {
        let full = key();
        let mut slim = full.clone();
        slim_for_secrets(&mut slim);
        assert_eq!(Reads::of(&slim), Reads::of(&full));
        let conditions = &slim.status.as_ref().unwrap().conditions;
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].type_, ROTATING);
    }

    #[test]
    fn the_controllers_own_status_writes_wake_no_secret() {
        let mut changes = synced(&[key()]);
        let mut next = key();
        // Dependant counts, operations, condition messages, a new
        // nextRotationAt, a new resourceVersion: nothing a secret reads.
        status(&mut next).versions[0].dependants = 10;
        status(&mut next).versions[0].operations = 42;
        status(&mut next).conditions[0].message = "version 1, 10 dependants".into();
        status(&mut next).conditions[1].message = "other words".into();
        status(&mut next).observed_generation = Some(1);
        next.metadata.resource_version = Some("99".into());
        assert!(changes.apply(&Event::Apply(next.clone())).is_empty());
        assert!(changes.apply(&Event::Apply(next)).is_empty());
    }

    #[test]
    fn what_a_secret_reads_wakes_it() {
        type Edit = fn(&mut ManagedKey);
        let edits: [(&str, Edit); 8] = [
            ("rotation", |k| {
                let s = status(k);
                s.versions[0].state = KeyState::Deactivated;
                s.versions.push(version(2, KeyState::Active, 0));
                s.primary_version = Some(2);
            }),
            ("compromise", |k| {
                status(k).versions[0].state = KeyState::Compromised;
            }),
            ("suspension", |k| {
                status(k).state = Some(KeyState::Suspended)
            }),
            ("another provider key", |k| {
                status(k).provider_key_id = Some("k2".into());
            }),
            ("a spec edit", |k| k.metadata.generation = Some(2)),
            ("deletion", |k| {
                k.metadata.deletion_timestamp = Some(Time(Timestamp::UNIX_EPOCH));
            }),
            ("eager re-wrap pending (policy edited)", |k| {
                status(k).conditions[1].status = "True".into();
                status(k).conditions[1].reason = "RewrappingDependants".into();
            }),
            ("first status", |k| k.status = None),
        ];
        for (what, edit) in edits {
            let mut changes = synced(&[key()]);
            let mut next = key();
            edit(&mut next);
            assert_eq!(changes.apply(&Event::Apply(next)), db(), "{what}");
        }
    }

    #[test]
    fn a_new_or_deleted_key_wakes_its_secrets() {
        let mut changes = synced(&[]);
        assert_eq!(changes.apply(&Event::Apply(key())), db());
        assert_eq!(changes.apply(&Event::Delete(key())), db());
    }

    #[test]
    fn a_relist_wakes_what_changed_while_the_watch_was_down() {
        let mut other = key();
        other.metadata.name = Some("cache".into());
        let mut changes = synced(&[key(), other.clone()]);
        let mut rotated = key();
        status(&mut rotated).primary_version = Some(2);
        // `cache` was deleted and `db` rotated meanwhile (no events for either).
        changes.apply(&Event::Init);
        assert!(changes.apply(&Event::InitApply(rotated)).is_empty());
        assert_eq!(
            changes.apply(&Event::InitDone),
            vec![
                ("apps".to_owned(), "cache".to_owned()),
                ("apps".to_owned(), "db".to_owned())
            ]
        );
        // A relist that finds nothing new wakes nothing.
        let mut same = key();
        status(&mut same).primary_version = Some(2);
        changes.apply(&Event::Init);
        changes.apply(&Event::InitApply(same));
        assert!(changes.apply(&Event::InitDone).is_empty());
    }
}
