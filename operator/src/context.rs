//! What every reconcile gets: clients, the provider, metrics, audit, events.

use crate::audit::Audit;
use crate::counted_provider::CountedProvider;
use crate::dependants::Dependants;
use crate::metrics::Metrics;
use keyward_core::KeyProvider;
use keyward_crds::ProviderSpec;
use keyward_provider_select::{NotServed, Providers};
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Field manager of every status the operator applies.
pub const FIELD_MANAGER: &str = "keyward-operator";

pub struct Context {
    pub client: Client,
    /// Calls on existing keys, routed to their provider by key id.
    pub provider: Arc<dyn KeyProvider>,
    /// The providers by kind, to create a key where its spec says.
    pub providers: Arc<Providers>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub audit: Audit,
    /// Namespace to watch, or all.
    pub watch_namespace: Option<String>,
    /// Which key versions the SealedSecrets use, kept by one shared watch.
    pub dependants: Arc<Dependants>,
    /// Wraps and unwraps the operator made per (provider key id, version)
    /// that the ManagedKey controller has not yet added to
    /// `versions[].operations` (the SealedSecret controller does not write
    /// ManagedKey status itself).
    operations: Mutex<BTreeMap<(String, u32), u64>>,
}

impl Context {
    pub fn new(
        client: Client,
        providers: Arc<Providers>,
        metrics: Arc<Metrics>,
        audit: Audit,
        watch_namespace: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            // Every provider call is counted and timed by operation.
            provider: Arc::new(CountedProvider::new(
                Arc::clone(&providers) as Arc<dyn KeyProvider>,
                Arc::clone(&metrics),
            )),
            providers,
            metrics,
            audit,
            watch_namespace,
            dependants: Arc::default(),
            operations: Mutex::default(),
        }
    }

    /// The provider a ManagedKey's `spec.provider` names (calls counted), or
    /// why this operator cannot serve it (a Degraded reason and message).
    pub fn provider_for(&self, spec: &ProviderSpec) -> Result<Arc<dyn KeyProvider>, NotServed> {
        let provider = self.providers.for_spec(spec)?;
        Ok(Arc::new(CountedProvider::new(
            provider,
            Arc::clone(&self.metrics),
        )))
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
