//! Which changes to a SealedSecret itself wake its reconcile. Its own status
//! write (10,000 of them at cold start) must not: that woke every secret
//! once more to compute the status it had just written.
//!
//! A reconcile reads, from the SealedSecret itself:
//! - `spec` (key reference, scope, items, template, access): any change
//!   bumps `metadata.generation`;
//! - the `keyward.io/rewrapped-generation` annotation, read together with
//!   the generation to tell the operator's own re-wrap from an apply (the
//!   re-wrap writes both at once, so the generation alone would do; it is
//!   hashed all the same, as the reconcile reads it);
//! - name, namespace and uid (a secret deleted and created again under the
//!   same name is new: kube's filter keys its memory by uid too);
//! - its own `status`, as the operator last wrote it.
//!
//! So a change of generation or of that annotation wakes it, as does any
//! first sight of an object (start, or kube's one-hour expiry of what the
//! filter remembers); status-only and other metadata changes (labels, other
//! annotations, finalizers, managed fields) do not. Nothing a reconcile
//! decides depends on those. Setting `deletionTimestamp` bumps the
//! generation anyway; there is no finalizer to run.
//!
//! Not covered: a status edited by someone else is put right at the
//! secret's next wake-up (its key changes, its spec changes, the operator
//! restarts), not at once. Key changes wake secrets through
//! `key_changes.rs`; materialised Secrets through the controller's `owns`
//! watch; neither goes through this filter.

use crate::annotations::REWRAPPED_GENERATION;
use kube::{Resource, ResourceExt};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

/// The `kube::runtime::Predicate` of the SealedSecret controller's main
/// watch: a hash of what a reconcile reads from the object, less status.
pub fn secret_changes<K: Resource>(secret: &K) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    secret.meta().generation.hash(&mut hasher);
    secret
        .annotations()
        .get(REWRAPPED_GENERATION)
        .hash(&mut hasher);
    Some(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{envelope, view as secret};
    use super::*;
    use crate::sealed_view::SealedView;
    use futures::{StreamExt, stream};
    use keyward_crds::SealedSecretStatus;
    use kube::runtime::{WatchStreamExt, watcher};

    fn stored(generation: i64, uid: &str) -> SealedView {
        let mut s = secret("apps", "creds", "db", &[("password", envelope("k1", 1))]);
        s.metadata.generation = Some(generation);
        s.metadata.uid = Some(uid.into());
        s.metadata.resource_version = Some(format!("{generation}00"));
        s
    }

    /// Names of the objects that get through, in order.
    async fn woken(events: Vec<SealedView>) -> Vec<String> {
        stream::iter(events.into_iter().map(Ok::<_, watcher::Error>))
            .predicate_filter(secret_changes, Default::default())
            .map(|s| {
                let s = s.unwrap();
                format!(
                    "{}@{}",
                    s.metadata.generation.unwrap_or_default(),
                    s.resource_version().unwrap_or_default()
                )
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn the_controllers_own_status_write_wakes_nothing() {
        let first = stored(1, "u1");
        let mut written = first.clone();
        written.set_status(Some(SealedSecretStatus {
            observed_generation: Some(1),
            key_versions: [("password".to_owned(), 1)].into(),
            ..SealedSecretStatus::default()
        }));
        written.metadata.resource_version = Some("101".into());
        // Metadata a reconcile does not read: labels, other annotations,
        // finalizers.
        let mut labelled = written.clone();
        labelled.labels_mut().insert("team".into(), "pay".into());
        labelled
            .annotations_mut()
            .insert("kubectl.kubernetes.io/note".into(), "x".into());
        labelled.finalizers_mut().push("example.com/hold".into());
        labelled.metadata.resource_version = Some("102".into());
        assert_eq!(
            woken(vec![first, written, labelled]).await,
            ["1@100"],
            "only the first sight wakes it"
        );
    }

    #[tokio::test]
    async fn what_a_reconcile_reads_from_the_secret_wakes_it() {
        let first = stored(1, "u1");
        // A spec change (an apply from Git, or the operator's re-wrap with
        // its annotation in the same write).
        let applied = stored(2, "u1");
        let mut rewrapped = stored(3, "u1");
        rewrapped
            .annotations_mut()
            .insert(REWRAPPED_GENERATION.into(), "3".into());
        // The annotation alone (someone removed it): read, so it wakes.
        let mut edited = stored(3, "u1");
        edited.metadata.resource_version = Some("301".into());
        // Deleted and created again under the same name: generation 1 again.
        let recreated = stored(1, "u2");
        // Graceful deletion bumps the generation.
        let mut deleting = stored(2, "u2");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                "2026-01-01T00:00:00Z".parse().unwrap(),
            ));
        assert_eq!(
            woken(vec![first, applied, rewrapped, edited, recreated, deleting]).await,
            ["1@100", "2@200", "3@300", "3@301", "1@100", "2@200"]
        );
    }

    #[test]
    fn the_hash_ignores_status_and_follows_generation_and_the_rewrap_annotation() {
        let base = stored(4, "u1");
        let mut with_status = base.clone();
        with_status.set_status(Some(SealedSecretStatus {
            observed_generation: Some(4),
            rewrapped_since_git: true,
            ..SealedSecretStatus::default()
        }));
        assert_eq!(secret_changes(&base), secret_changes(&with_status));
        assert_ne!(secret_changes(&base), secret_changes(&stored(5, "u1")));
        let mut annotated = base.clone();
        annotated
            .annotations_mut()
            .insert(REWRAPPED_GENERATION.into(), "4".into());
        assert_ne!(secret_changes(&base), secret_changes(&annotated));
    }
}
