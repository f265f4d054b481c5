//! What every reconcile gets: clients, the provider, metrics, audit, events.

use crate::audit::Audit;
use crate::counted_provider::{self, CountedProvider};
use crate::dependants::Dependants;
use crate::events::Events;
use crate::managed_key::claim::ClaimSettings;
use crate::metrics::Metrics;
use keyward_core::KeyProvider;
use keyward_core::provider::KeyInfo;
use keyward_crds::{KeyRotationPolicy, KeyVersionStatus, ProviderSpec};
use keyward_provider_select::{NotServed, Providers};
use kube::Client;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Field manager of every status the operator applies.
pub const FIELD_MANAGER: &str = "keyward-operator";

pub struct Context {
    pub client: Client,
    /// Calls on existing keys, routed to their provider by key id.
    pub provider: Arc<dyn KeyProvider>,
    /// The providers by kind, to create a key where its spec says.
    pub providers: Arc<Providers>,
    pub recorder: Events,
    pub metrics: Arc<Metrics>,
    pub audit: Audit,
    /// Namespace to watch, or all.
    pub watch_namespace: Option<String>,
    /// This cluster's id and the lease of its claims on provider keys.
    pub claims: ClaimSettings,
    /// Which key versions the SealedSecrets use, kept by one shared watch.
    pub dependants: Arc<Dependants>,
    /// KeyRotationPolicies, kept by the ManagedKey controller's watch of
    /// them (which also wakes the keys that name an edited policy).
    pub policies: Store<KeyRotationPolicy>,
    /// Wraps the operator made per (provider key id, version) that the
    /// ManagedKey controller has not yet added to `versions[].operations`
    /// (the SealedSecret controller does not write ManagedKey status itself).
    operations: Mutex<BTreeMap<(String, u32), u64>>,
    /// The highest `versions[].operations` this process wrote per (provider
    /// key id, version). A reconcile may start from a cached ManagedKey
    /// older than its own last status write; counts only grow, so it must
    /// not write a smaller one back (it would lose wraps).
    written_operations: Mutex<BTreeMap<(String, u32), u64>>,
    /// The provider call bounds and the keys just created, shared by
    /// `provider` and every `provider_for`.
    calls: Arc<counted_provider::Shared>,
}

impl Context {
    pub fn new(
        client: Client,
        providers: Arc<Providers>,
        metrics: Arc<Metrics>,
        audit: Audit,
        watch_namespace: Option<String>,
        policies: Store<KeyRotationPolicy>,
        claims: ClaimSettings,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let calls = Arc::<counted_provider::Shared>::default();
        Context {
            recorder: Events::new(client.clone(), reporter),
            client,
            // Every provider call is counted and timed by operation.
            provider: Arc::new(CountedProvider::new(
                Arc::clone(&providers) as Arc<dyn KeyProvider>,
                Arc::clone(&metrics),
                Arc::clone(&calls),
            )),
            providers,
            metrics,
            audit,
            watch_namespace,
            claims,
            dependants: Arc::default(),
            policies,
            operations: Mutex::default(),
            written_operations: Mutex::default(),
            calls,
        }
    }

    /// The provider a ManagedKey's `spec.provider` names (calls counted), or
    /// why this operator cannot serve it (a Degraded reason and message).
    pub fn provider_for(&self, spec: &ProviderSpec) -> Result<Arc<dyn KeyProvider>, NotServed> {
        let provider = self.providers.for_spec(spec)?;
        Ok(Arc::new(CountedProvider::new(
            provider,
            Arc::clone(&self.metrics),
            Arc::clone(&self.calls),
        )))
    }

    /// What `create_key` returned for `key_id` a moment ago, once
    /// ([`counted_provider::Shared::just_created`]).
    pub fn just_created(&self, key_id: &str) -> Option<KeyInfo> {
        self.calls.just_created(key_id)
    }

    /// Records `count` provider operations on a key version.
    pub fn count_operations(&self, key_id: &str, version: u32, count: u64) {
        let mut pending = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        *pending.entry((key_id.to_owned(), version)).or_default() += count;
    }

    /// Takes the operations not yet recorded for `key_id` (version -> count).
    pub fn take_operations(&self, key_id: &str) -> BTreeMap<u32, u64> {
        let mut pending = self.operations.lock().unwrap_or_else(|e| e.into_inner());
        let versions: Vec<u32> = pending
            .keys()
            .filter(|(id, _)| id == key_id)
            .map(|(_, v)| *v)
            .collect();
        versions
            .into_iter()
            .filter_map(|v| Some((v, pending.remove(&(key_id.to_owned(), v))?)))
            .collect()
    }

    /// Puts back operations taken for a status write that failed.
    pub fn restore_operations(&self, key_id: &str, taken: &BTreeMap<u32, u64>) {
        for (version, count) in taken {
            self.count_operations(key_id, *version, *count);
        }
    }

    /// Raises each version's count to what this process last wrote for it.
    pub fn floor_operations(&self, key_id: &str, versions: &mut [KeyVersionStatus]) {
        let written = self
            .written_operations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for version in versions {
            if let Some(floor) = written.get(&(key_id.to_owned(), version.version)) {
                version.operations = version.operations.max(*floor);
            }
        }
    }

    /// Remembers the counts of a status write that succeeded.
    pub fn wrote_operations(&self, key_id: &str, versions: &[KeyVersionStatus]) {
        let mut written = self
            .written_operations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for version in versions.iter().filter(|v| v.operations > 0) {
            let entry = written
                .entry((key_id.to_owned(), version.version))
                .or_default();
            *entry = (*entry).max(version.operations);
        }
    }

    /// KeyRotationPolicy `namespace/name`, from the watch's store
    /// ([`read_cached`]).
    pub async fn policy(
        &self,
        namespace: &str,
        name: &str,
    ) -> crate::Result<Option<Arc<KeyRotationPolicy>>> {
        read_cached(&self.policies, &self.client, namespace, name).await
    }

    /// An `Api` over the watched namespace (or all namespaces).
    pub fn api<K>(&self) -> kube::Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.watch_namespace {
            Some(ns) => kube::Api::namespaced(self.client.clone(), ns),
            None => kube::Api::all(self.client.clone()),
        }
    }
}

/// How long a reconcile waits for a watch's first list before it asks the
/// API server instead.
const STORE_PATIENCE: Duration = Duration::from_secs(10);

/// Object `namespace/name` from a watch's `store`, else from the API server.
///
/// A store that has not finished its first list would report objects that
/// exist as missing, so it is read only once ready (waiting up to
/// [`STORE_PATIENCE`]; the controllers poll the watch meanwhile). A miss is
/// confirmed with a GET: it is rare (a wrong reference, or an object created
/// a moment ago that the watch has not delivered yet), and "does not exist"
/// must not come from a lagging copy. A hit may be slightly stale; callers
/// that act irreversibly on it re-read (see `sealed_secret.rs`).
pub async fn read_cached<K>(
    store: &Store<K>,
    client: &Client,
    namespace: &str,
    name: &str,
) -> crate::Result<Option<Arc<K>>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let ready = tokio::time::timeout(STORE_PATIENCE, store.wait_until_ready()).await;
    if matches!(ready, Ok(Ok(())))
        && let Some(found) = store.get(&ObjectRef::new(name).within(namespace))
    {
        return Ok(Some(found));
    }
    let api: kube::Api<K> = kube::Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(Arc::new))
}
