//! What every reconcile gets: clients, the provider, metrics, audit, events.

use crate::audit::Audit;
use crate::metrics::Metrics;
use keyward_core::KeyProvider;
use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use std::sync::Arc;

/// Field manager of every status the operator applies.
pub const FIELD_MANAGER: &str = "keyward-operator";

pub struct Context {
    pub client: Client,
    pub provider: Arc<dyn KeyProvider>,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub audit: Audit,
    /// Namespace to watch, or all.
    pub watch_namespace: Option<String>,
}

impl Context {
    pub fn new(
        client: Client,
        provider: Arc<dyn KeyProvider>,
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
            provider,
            metrics,
            audit,
            watch_namespace,
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
