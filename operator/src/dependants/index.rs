//! An in-memory index of which ManagedKey versions each SealedSecret uses,
//! fed by one watch of SealedSecrets (see `triggers.rs`), so a ManagedKey
//! reconcile counts its dependants without listing every SealedSecret.
//!
//! It holds only the projection the counts need (key reference and the
//! (provider key id, version) pairs of the item headers), not the objects:
//! the SealedSecret controller already keeps one full copy of each.
//!
//! Until the watch's initial list is complete the index refuses to count:
//! a count taken from a half-filled index would say "no dependants" and let
//! a version that secrets still need be destroyed.

use crate::annotations::{NO_GIT_COPY, REWRAPPED_GENERATION, REWRAPPED_TO, parse_rewrapped_to};
use crate::sealed_view::SealedView;
use kube::ResourceExt;
use kube::runtime::watcher::Event;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// (namespace, name) of a ManagedKey or a SealedSecret.
pub type Id = (String, String);

/// What one SealedSecret needs: its key, the (provider key id, version)
/// pairs its items were sealed under, those its copy in Git still needs
/// (`status.gitBehind`, under the same provider key), and whether its spec
/// is the operator's own re-wrap (no one applied anything since).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Uses {
    key: Id,
    versions: Versions,
    for_git: Versions,
    /// The spec is Git's copy, put back behind a re-wrap the operator
    /// already made (and will not make again): it waits for Git.
    withheld: bool,
    rewrapped: bool,
}

/// (provider key id, version) pairs, sorted and distinct: a secret uses one
/// or two, so a boxed slice (a `BTreeSet` node is ~400 bytes each; at
/// 10,000 secrets that was 4 MB).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Versions(Box<[(Arc<str>, u32)]>);

impl FromIterator<(Arc<str>, u32)> for Versions {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, u32)>>(pairs: I) -> Self {
        let mut pairs: Vec<_> = pairs.into_iter().collect();
        pairs.sort();
        pairs.dedup();
        Versions(pairs.into_boxed_slice())
    }
}

impl Versions {
    fn iter(&self) -> std::slice::Iter<'_, (Arc<str>, u32)> {
        self.0.iter()
    }

    fn first(&self) -> Option<&(Arc<str>, u32)> {
        self.0.first()
    }

    fn contains(&self, pair: &(Arc<str>, u32)) -> bool {
        self.0.binary_search(pair).is_ok()
    }

    /// Every pair in `self` or `other`, once.
    fn union<'a>(&'a self, other: &'a Versions) -> impl Iterator<Item = &'a (Arc<str>, u32)> {
        self.iter()
            .chain(other.iter().filter(|pair| !self.contains(pair)))
    }
}

fn uses(secret: &SealedView) -> Option<(Id, Uses)> {
    let id = (secret.namespace()?, secret.name_any());
    let key = (
        secret.key_namespace()?.to_owned(),
        secret.spec.key_ref.name.clone(),
    );
    let versions: Versions = secret
        .spec
        .items
        .readable()
        .iter()
        .map(|item| (Arc::clone(&item.key_id), item.version))
        .collect();
    let no_git_copy = secret.annotations().get(NO_GIT_COPY).map(String::as_str) == Some("true");
    let status = secret.status();
    let git_behind = status.as_ref().and_then(|s| s.git_behind.as_ref());
    let for_git = match (versions.first(), git_behind) {
        (Some((key_id, _)), Some(behind)) if !no_git_copy => behind
            .versions
            .iter()
            .map(|version| (Arc::clone(key_id), *version))
            .collect(),
        _ => Versions::default(),
    };
    let withheld = parse_rewrapped_to(secret.annotations().get(REWRAPPED_TO).map(String::as_str))
        .is_some_and(|(to, key_id)| {
            versions
                .iter()
                .any(|(id, version)| **id == *key_id && *version < to)
        });
    let rewrapped = secret
        .annotations()
        .get(REWRAPPED_GENERATION)
        .and_then(|g| g.parse::<i64>().ok())
        .is_some_and(|g| Some(g) == secret.metadata.generation);
    Some((
        id,
        Uses {
            key,
            versions,
            for_git,
            withheld,
            rewrapped,
        },
    ))
}

/// The index has not seen the complete list of SealedSecrets yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotSynced;

impl std::fmt::Display for NotSynced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the operator has not finished listing SealedSecrets, so dependant counts are unknown \
             and nothing is destroyed yet; it retries (if this persists, check that its RBAC \
             allows list and watch on sealedsecrets)",
        )
    }
}

/// Per key version, how many SealedSecrets of one ManagedKey...
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// ...use it, in the cluster copy or in the copy Git still holds.
    pub all: BTreeMap<u32, u32>,
    /// ...need it only for their copy in Git (`status.gitBehind`; the
    /// cluster copy is on another version).
    pub git_only: BTreeMap<u32, u32>,
    /// ...wait for Git: the Git-only ones, and those whose spec is Git's
    /// copy put back behind the operator's re-wrap (every version it uses).
    /// The operator has nothing left to do for them.
    pub for_git: BTreeMap<u32, u32>,
    /// ...use it in a spec that is the operator's own re-wrap: a re-wrap in
    /// flight while a version was retired may land on it after the count,
    /// and only those may bring a Compromised version back from pending
    /// destruction.
    pub rewrapped: BTreeMap<u32, u32>,
}

#[derive(Default)]
struct State {
    secrets: HashMap<Id, Uses>,
    /// Secrets by the key they reference, for cheap counts.
    by_key: HashMap<Id, BTreeSet<Id>>,
    /// A (re-)list in progress: collected here, swapped in when complete.
    relist: Option<HashMap<Id, Uses>>,
}

impl State {
    fn insert(&mut self, id: Id, new: Uses) -> Option<Uses> {
        self.by_key
            .entry(new.key.clone())
            .or_default()
            .insert(id.clone());
        let old = self.secrets.insert(id.clone(), new.clone());
        if let Some(old) = old.as_ref().filter(|old| old.key != new.key) {
            self.unlink(&old.key, &id);
        }
        old
    }

    fn remove(&mut self, id: &Id) -> Option<Uses> {
        let old = self.secrets.remove(id)?;
        self.unlink(&old.key, id);
        Some(old)
    }

    fn unlink(&mut self, key: &Id, secret: &Id) {
        if let Some(secrets) = self.by_key.get_mut(key) {
            secrets.remove(secret);
            if secrets.is_empty() {
                self.by_key.remove(key);
            }
        }
    }
}

pub struct Dependants {
    state: Mutex<State>,
    synced: watch::Sender<bool>,
}

impl Default for Dependants {
    fn default() -> Self {
        Dependants {
            state: Mutex::default(),
            synced: watch::Sender::new(false),
        }
    }
}

impl Dependants {
    /// Applies one watch event; returns the ManagedKeys whose dependants
    /// changed (so they are reconciled again). Status-only updates trigger
    /// nothing unless they change what Git's copy needs.
    pub fn apply(&self, event: Event<SealedView>) -> Vec<Id> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = BTreeSet::new();
        match event {
            Event::Init => state.relist = Some(HashMap::new()),
            Event::InitApply(secret) => {
                if let (Some(relist), Some((id, uses))) = (state.relist.as_mut(), uses(&secret)) {
                    relist.insert(id, uses);
                }
            }
            Event::InitDone => {
                let listed = state.relist.take().unwrap_or_default();
                let first = !*self.synced.borrow();
                // Secrets deleted or changed while no watch was open show up
                // only as a difference between the old and the new list.
                let old = std::mem::take(&mut *state);
                for (id, uses) in &old.secrets {
                    if listed.get(id) != Some(uses) {
                        changed.insert(uses.key.clone());
                    }
                }
                for (id, uses) in listed {
                    if old.secrets.get(&id) != Some(&uses) {
                        changed.insert(uses.key.clone());
                    }
                    state.insert(id, uses);
                }
                self.synced.send_replace(true);
                // Every key is reconciled at start anyway (and waits for this).
                if first {
                    changed.clear();
                }
            }
            Event::Apply(secret) => {
                if let Some((id, new)) = uses(&secret) {
                    let old = state.insert(id, new.clone());
                    if old.as_ref() != Some(&new) {
                        changed.insert(new.key);
                        changed.extend(old.map(|u| u.key));
                    }
                }
            }
            Event::Delete(secret) => {
                if let Some((id, _)) = uses(&secret) {
                    changed.extend(state.remove(&id).map(|u| u.key));
                }
            }
        }
        changed.into_iter().collect()
    }

    /// Version -> number of SealedSecrets with at least one item under it,
    /// in the cluster copy or in the copy Git still holds, for ManagedKey
    /// `key_namespace/key_name` whose provider key is `provider_key_id`,
    /// counting only secrets in namespaces the key is `shared_with` (so no
    /// other namespace pins its versions or blocks its deletion);
    /// [`NotSynced`] before the first complete list.
    pub fn count(
        &self,
        key_namespace: &str,
        key_name: &str,
        provider_key_id: &str,
        shared_with: impl Fn(&str) -> bool,
    ) -> Result<BTreeMap<u32, u32>, NotSynced> {
        self.counts(key_namespace, key_name, provider_key_id, shared_with)
            .map(|counts| counts.all)
    }

    /// Every tally a ManagedKey reconcile needs, in one pass over the
    /// key's SealedSecrets (see [`Counts`]).
    pub fn counts(
        &self,
        key_namespace: &str,
        key_name: &str,
        provider_key_id: &str,
        shared_with: impl Fn(&str) -> bool,
    ) -> Result<Counts, NotSynced> {
        if !*self.synced.borrow() {
            return Err(NotSynced);
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = Counts::default();
        let key = (key_namespace.to_owned(), key_name.to_owned());
        let referencing = state.by_key.get(&key).into_iter().flatten();
        for secret in referencing.filter(|(namespace, _)| shared_with(namespace)) {
            let Some(uses) = state.secrets.get(secret) else {
                continue;
            };
            let add = |map: &mut BTreeMap<u32, u32>, (_, version): &(Arc<str>, u32)| {
                *map.entry(*version).or_insert(0) += 1;
            };
            for used in uses
                .versions
                .union(&uses.for_git)
                .filter(|(id, _)| **id == *provider_key_id)
            {
                add(&mut counts.all, used);
                let git_only = !uses.versions.contains(used);
                if git_only {
                    add(&mut counts.git_only, used);
                }
                if git_only || uses.withheld {
                    add(&mut counts.for_git, used);
                }
                if uses.rewrapped && !git_only {
                    add(&mut counts.rewrapped, used);
                }
            }
        }
        Ok(counts)
    }

    /// [`Dependants::counts`], waiting up to `patience` for the first list.
    pub async fn counts_when_synced(
        &self,
        key_namespace: &str,
        key_name: &str,
        provider_key_id: &str,
        shared_with: impl Fn(&str) -> bool,
        patience: Duration,
    ) -> Result<Counts, NotSynced> {
        let mut synced = self.synced.subscribe();
        match tokio::time::timeout(patience, synced.wait_for(|s| *s)).await {
            Ok(Ok(_)) => self.counts(key_namespace, key_name, provider_key_id, shared_with),
            _ => Err(NotSynced),
        }
    }

    /// Number of SealedSecrets indexed (for tests and logs).
    pub fn len(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{envelope, view as secret};
    use super::*;

    fn id(ns: &str, name: &str) -> Id {
        (ns.to_owned(), name.to_owned())
    }

    fn synced(secrets: Vec<SealedView>) -> Dependants {
        let index = Dependants::default();
        index.apply(Event::Init);
        for s in secrets {
            index.apply(Event::InitApply(s));
        }
        index.apply(Event::InitDone);
        index
    }

    #[test]
    fn each_secret_counts_once_per_version_of_the_right_key() {
        let index = synced(vec![
            secret(
                "apps",
                "s1",
                "db",
                &[("a", envelope("k1", 1)), ("b", envelope("k1", 1))],
            ),
            secret(
                "apps",
                "s2",
                "db",
                &[("a", envelope("k1", 1)), ("b", envelope("k1", 2))],
            ),
            // Another key name, another namespace, another provider key, garbage.
            secret("apps", "s3", "other", &[("a", envelope("k1", 1))]),
            secret("ops", "s4", "db", &[("a", envelope("k1", 1))]),
            secret("apps", "s5", "db", &[("a", envelope("old-key", 1))]),
            secret("apps", "s6", "db", &[("a", "AAAA".into())]),
        ]);
        assert_eq!(
            index.count("apps", "db", "k1", |_| true),
            Ok([(1, 2), (2, 1)].into())
        );
        assert_eq!(index.len(), 6);
    }

    /// A SealedSecret whose copy in Git is behind (`status.gitBehind`) keeps
    /// those versions as dependants too; counted apart as Git-only unless
    /// its cluster copy uses them as well, and not at all when it has
    /// `keyward.io/no-git-copy: "true"`.
    #[test]
    fn versions_git_still_needs_are_dependants_and_counted_apart() {
        let behind = |versions: Vec<u32>, mut s: SealedView| {
            s.set_status(Some(keyward_crds::SealedSecretStatus {
                git_behind: Some(keyward_crds::GitBehind {
                    versions,
                    since: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                    ),
                }),
                ..Default::default()
            }));
            s
        };
        let rewrapped = behind(
            vec![1],
            secret("apps", "s1", "db", &[("a", envelope("k1", 2))]),
        );
        let reverted = behind(
            vec![1],
            secret("apps", "s2", "db", &[("a", envelope("k1", 1))]),
        );
        let mut no_copy = behind(
            vec![1],
            secret("apps", "s3", "db", &[("a", envelope("k1", 2))]),
        );
        no_copy
            .annotations_mut()
            .insert(NO_GIT_COPY.into(), "true".into());
        // Git's copy put back behind the operator's re-wrap onto version 2.
        let mut put_back = secret("apps", "s4", "db", &[("a", envelope("k1", 1))]);
        put_back
            .annotations_mut()
            .insert(REWRAPPED_TO.into(), "2:k1".into());
        let index = synced(vec![rewrapped, reverted, no_copy, put_back]);
        assert_eq!(
            index.count("apps", "db", "k1", |_| true),
            Ok([(1, 3), (2, 2)].into())
        );
        assert_eq!(
            index.counts("apps", "db", "k1", |_| true).unwrap().for_git,
            [(1, 2)].into()
        );
        assert_eq!(
            index.counts("apps", "db", "k1", |_| true).unwrap().git_only,
            [(1, 1)].into()
        );
        // Git catches up: a status without gitBehind releases version 1.
        let caught_up = secret("apps", "s1", "db", &[("a", envelope("k1", 2))]);
        let changed = index.apply(Event::Apply(caught_up));
        assert_eq!(changed, vec![("apps".to_owned(), "db".to_owned())]);
        assert_eq!(
            index.counts("apps", "db", "k1", |_| true).unwrap().for_git,
            [(1, 1)].into()
        );
    }

    /// The guard: before the initial list completes nothing is counted, so
    /// no reconcile can see "0 dependants" for a version a secret uses and
    /// schedule its destruction.
    #[tokio::test]
    async fn an_unsynced_index_refuses_to_count() {
        let index = Dependants::default();
        assert_eq!(index.count("apps", "db", "k1", |_| true), Err(NotSynced));
        index.apply(Event::Init);
        index.apply(Event::InitApply(secret(
            "apps",
            "s1",
            "db",
            &[("a", envelope("k1", 1))],
        )));
        // Half-way through the list: still refused, even with a count at hand.
        assert_eq!(index.count("apps", "db", "k1", |_| true), Err(NotSynced));
        let waited = index
            .counts_when_synced("apps", "db", "k1", |_| true, Duration::from_millis(20))
            .await;
        assert_eq!(waited, Err(NotSynced));
        index.apply(Event::InitDone);
        let counted = index
            .counts_when_synced("apps", "db", "k1", |_| true, Duration::from_millis(20))
            .await
            .map(|c| c.all);
        assert_eq!(counted, Ok([(1, 1)].into()));
    }

    #[tokio::test]
    async fn a_waiting_count_resumes_when_the_list_completes() {
        let index = std::sync::Arc::new(Dependants::default());
        let waiter = {
            let index = std::sync::Arc::clone(&index);
            tokio::spawn(async move {
                index
                    .counts_when_synced("apps", "db", "k1", |_| true, Duration::from_secs(10))
                    .await
                    .map(|c| c.all)
            })
        };
        tokio::task::yield_now().await;
        index.apply(Event::Init);
        index.apply(Event::InitApply(secret(
            "apps",
            "s1",
            "db",
            &[("a", envelope("k1", 2))],
        )));
        index.apply(Event::InitDone);
        assert_eq!(waiter.await.unwrap(), Ok([(2, 1)].into()));
    }

    #[test]
    fn only_changed_versions_trigger_the_key() {
        let s1 = secret("apps", "s1", "db", &[("a", envelope("k1", 1))]);
        let index = synced(vec![s1.clone()]);
        // The same items again (e.g. the SealedSecret controller wrote status).
        assert!(index.apply(Event::Apply(s1.clone())).is_empty());
        // Re-wrapped onto v2: the key must recount.
        let rewrapped = secret("apps", "s1", "db", &[("a", envelope("k1", 2))]);
        assert_eq!(index.apply(Event::Apply(rewrapped)), vec![id("apps", "db")]);
        assert_eq!(
            index.count("apps", "db", "k1", |_| true),
            Ok([(2, 1)].into())
        );
        // Moved to another key: both keys recount.
        let moved = secret("apps", "s1", "cache", &[("a", envelope("k9", 1))]);
        assert_eq!(
            index.apply(Event::Apply(moved.clone())),
            vec![id("apps", "cache"), id("apps", "db")]
        );
        assert_eq!(
            index.count("apps", "db", "k1", |_| true),
            Ok(BTreeMap::new())
        );
        assert_eq!(index.apply(Event::Delete(moved)), vec![id("apps", "cache")]);
        assert!(index.is_empty());
    }

    #[test]
    fn a_relist_keeps_counting_and_reports_what_changed_meanwhile() {
        let keep = secret("apps", "keep", "db", &[("a", envelope("k1", 1))]);
        let gone = secret("apps", "gone", "old", &[("a", envelope("k2", 1))]);
        // The first list triggers nothing: every key is reconciled at start.
        let index = Dependants::default();
        index.apply(Event::Init);
        index.apply(Event::InitApply(keep.clone()));
        index.apply(Event::InitApply(gone));
        assert!(index.apply(Event::InitDone).is_empty());
        // The watch broke; `gone` was deleted meanwhile (no Delete event).
        index.apply(Event::Init);
        index.apply(Event::InitApply(keep));
        // Mid-relist the previous complete list still answers.
        assert_eq!(
            index.count("apps", "old", "k2", |_| true),
            Ok([(1, 1)].into())
        );
        assert_eq!(index.apply(Event::InitDone), vec![id("apps", "old")]);
        assert_eq!(
            index.count("apps", "old", "k2", |_| true),
            Ok(BTreeMap::new())
        );
        assert_eq!(
            index.count("apps", "db", "k1", |_| true),
            Ok([(1, 1)].into())
        );
    }

    #[test]
    fn secrets_of_namespaces_the_key_is_not_shared_with_pin_nothing() {
        let mut foreign = secret("tenant", "s2", "db", &[("a", envelope("k1", 1))]);
        foreign.spec.key_ref.namespace = Some("apps".into());
        let index = synced(vec![
            secret("apps", "s1", "db", &[("a", envelope("k1", 2))]),
            foreign,
        ]);
        assert_eq!(
            index.count("apps", "db", "k1", |ns| ns == "apps"),
            Ok([(2, 1)].into()),
            "version 1, used only by an ungranted namespace, must count no dependant"
        );
        assert_eq!(
            index.count("apps", "db", "k1", |ns| ns == "apps" || ns == "tenant"),
            Ok([(1, 1), (2, 1)].into())
        );
    }

    #[test]
    fn only_a_spec_the_operator_wrote_counts_as_its_own_rewrap() {
        let stamped = |name: &str, generation: i64, annotated: &str| {
            let mut s = secret("apps", name, "db", &[("a", envelope("k1", 1))]);
            s.metadata.generation = Some(generation);
            s.metadata.annotations =
                Some([(REWRAPPED_GENERATION.to_owned(), annotated.to_owned())].into());
            s
        };
        let index = synced(vec![
            stamped("own", 4, "4"),
            // Applied (from Git) after the operator's re-wrap at generation 2.
            stamped("applied", 3, "2"),
            secret("apps", "plain", "db", &[("a", envelope("k1", 1))]),
        ]);
        assert_eq!(
            index.count("apps", "db", "k1", |_| true),
            Ok([(1, 3)].into())
        );
        assert_eq!(
            index
                .counts("apps", "db", "k1", |_| true)
                .unwrap()
                .rewrapped,
            [(1, 1)].into()
        );
    }
}
