//! An Event on the pod when a republish replaced its files, so
//! `kubectl describe pod` shows when a running app got new values. Names
//! the SealedSecrets, never a value. Posted in the background: the kubelet's
//! publish does not wait for the API server.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

/// The reason `kubectl get events` shows.
pub const REFRESHED: &str = "SecretsRefreshed";

#[derive(Clone)]
pub struct RefreshEvents {
    recorder: Recorder,
}

/// The pod whose volume was refreshed.
pub struct RefreshedPod {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
    pub secrets: String,
}

impl RefreshEvents {
    pub fn new(client: Client, node: &str) -> Self {
        let reporter = Reporter {
            controller: "keyward-csi".into(),
            instance: Some(node.to_owned()),
        };
        RefreshEvents {
            recorder: Recorder::new(client, reporter),
        }
    }

    pub fn refreshed(&self, pod: RefreshedPod) {
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            let reference = ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: Some(pod.namespace.clone()),
                name: Some(pod.name.clone()),
                uid: pod.uid,
                ..ObjectReference::default()
            };
            let event = Event {
                type_: EventType::Normal,
                reason: REFRESHED.into(),
                note: Some(format!(
                    "Keyward replaced the files of SealedSecret(s) {} in the running pod: \
                     a value changed (re-sealed)",
                    pod.secrets
                )),
                action: "Refresh".into(),
                secondary: None,
            };
            if let Err(error) = recorder.publish(&event, &reference).await {
                tracing::warn!(namespace = %pod.namespace, pod = %pod.name, %error,
                    "could not post the refresh Event (the plugin's ServiceAccount needs `create` on events.k8s.io events)");
            }
        });
    }
}
