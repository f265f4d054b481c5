//! What a pod may unseal, read from what admission fixed rather than from
//! what anyone can edit later: the secrets come from the injector's
//! arguments (a container's command and args cannot change once the pod
//! exists; the `keyward.io/inject` annotation can), and only while that
//! injector runs, so a pod that has started, finished or never got its
//! injector holds no entitlement.
//!
//! A pod that never went through the webhook (no opt-in label) could carry
//! a hand-written `keyward-inject`. It gets nothing it would not get by
//! opting in: the image must be the configured injector image (which holds
//! Keyward's binary only), and the pod must pass the same shape checks as
//! at admission (`pod_guard`: a memory-backed secrets volume, the token
//! mounted by the injector alone, the injector mounting nothing else).

use super::authorise::{Denial, DenialKind};
use crate::annotations::{self as a, requested_secrets};
use crate::pod_guard;
use k8s_openapi::api::core::v1::{Container, ContainerState, Pod};

/// The SealedSecrets `pod` was admitted for, if it may unseal now.
pub fn fixed_at_admission(pod: &Pod, injector_image: &str) -> Result<Vec<String>, Denial> {
    let injector = pod
        .spec
        .as_ref()
        .and_then(|spec| spec.init_containers.as_ref())
        .and_then(|init| init.iter().find(|c| c.name == a::INIT_CONTAINER))
        .ok_or_else(|| {
            Denial::new(
                DenialKind::NotInjected,
                format!(
                    "pod has no `{}` init container: it was not admitted through Keyward's \
                     webhook (label it {}={})",
                    a::INIT_CONTAINER,
                    a::INJECTION_LABEL,
                    a::INJECTION_ENABLED
                ),
            )
        })?;
    let image = injector.image.as_deref().unwrap_or_default();
    // The repository, not the tag: a pod admitted just before an upgrade
    // still starts with the previous release's injector.
    if repository(image) != repository(injector_image) {
        return Err(Denial::new(
            DenialKind::NotInjected,
            format!(
                "the pod's `{}` runs image `{image}`, not from the configured injector image's \
                 repository `{}`",
                a::INIT_CONTAINER,
                repository(injector_image)
            ),
        ));
    }
    pod_guard::check(pod).map_err(|why| Denial::new(DenialKind::NotInjected, why))?;
    injector_running(pod)?;
    Ok(secrets_argument(injector))
}

/// Only while the pod starts: the injector's own status says it runs.
fn injector_running(pod: &Pod) -> Result<(), Denial> {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("unknown");
    let state = injector_state(pod);
    // The kubelet reports a started container up to a second or so after
    // it runs, so an injector's first call can arrive before its own
    // `running`: "not yet" is retryable, "finished" is final.
    let (kind, now) = match state {
        Some(ContainerState {
            running: Some(_), ..
        }) => return Ok(()),
        Some(ContainerState {
            terminated: Some(_),
            ..
        }) => (DenialKind::NotStarting, "has finished"),
        Some(ContainerState {
            waiting: Some(_), ..
        }) => (DenialKind::NotRunningYet, "is waiting to start"),
        _ => (DenialKind::NotRunningYet, "has not started"),
    };
    Err(Denial::new(
        kind,
        format!(
            "secrets are handed out only while a pod starts, and this pod's injector {now} \
             (pod phase {phase})"
        ),
    ))
}

/// Whether the pod sits on a node with its injector about to run (no
/// status for it yet, or waiting while its container is created): only
/// then is a late `running` worth waiting for. An unscheduled pod, or an
/// injector stuck on its image, is not.
pub fn injector_being_created(pod: &Pod) -> bool {
    let scheduled = pod
        .spec
        .as_ref()
        .is_some_and(|spec| spec.node_name.is_some());
    let starting = match injector_state(pod) {
        // No status for the injector yet.
        None => true,
        Some(state) => state.waiting.as_ref().is_some_and(|waiting| {
            matches!(
                waiting.reason.as_deref(),
                None | Some("PodInitializing" | "ContainerCreating")
            )
        }),
    };
    scheduled && starting
}

/// The state the kubelet last reported for the pod's injector.
fn injector_state(pod: &Pod) -> Option<&ContainerState> {
    pod.status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == a::INIT_CONTAINER)?
        .state
        .as_ref()
}

/// An image reference without its tag or digest
/// (`registry:5000/keyward/webhook:0.3@sha256:…` → `registry:5000/keyward/webhook`).
fn repository(image: &str) -> &str {
    let image = image.split('@').next().unwrap_or(image);
    match image.rfind(':') {
        // A colon after the last slash starts the tag; before it, a port.
        Some(colon) if !image[colon..].contains('/') => &image[..colon],
        _ => image,
    }
}

/// The value after `--secrets` in the injector's command line.
fn secrets_argument(injector: &Container) -> Vec<String> {
    let argv: Vec<&str> = injector
        .command
        .iter()
        .flatten()
        .chain(injector.args.iter().flatten())
        .map(String::as_str)
        .collect();
    argv.windows(2)
        .find(|pair| pair[0] == "--secrets")
        .map(|pair| requested_secrets(pair[1]))
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{Value, json};

    pub const IMAGE: &str = "keyward/webhook:test";

    /// A pod as admission leaves it, its injector in state `state`
    /// (`running`, `terminated`, `waiting`), asking for `secrets`.
    pub fn admitted_pod(secrets: &str, state: &str) -> Value {
        json!({
            "metadata": {"name": "app", "namespace": "team", "uid": "uid-1",
                          "annotations": {a::INJECT: secrets}},
            "spec": {
                "serviceAccountName": "api",
                "initContainers": [{
                    "name": a::INIT_CONTAINER, "image": IMAGE,
                    "command": ["/keyward-webhook"],
                    "args": ["inject", "--secrets", secrets, "--mount-path", "/run/keyward"],
                    "volumeMounts": [
                        {"name": a::SECRETS_VOLUME, "mountPath": "/run/keyward"},
                        {"name": a::TOKEN_VOLUME, "mountPath": a::TOKEN_DIR, "readOnly": true},
                    ],
                }],
                "containers": [{"name": "app", "image": "app",
                    "volumeMounts": [{"name": a::SECRETS_VOLUME, "mountPath": "/run/keyward"}]}],
                "volumes": [{"name": a::SECRETS_VOLUME, "emptyDir": {"medium": "Memory"}}],
            },
            "status": {"phase": "Pending", "initContainerStatuses": [{
                "name": a::INIT_CONTAINER, "image": IMAGE, "imageID": "", "ready": false,
                "restartCount": 0, "state": {state: {}},
            }]},
        })
    }

    fn pod(value: Value) -> Pod {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_starting_pod_gets_the_secrets_its_injector_names() {
        let secrets = fixed_at_admission(&pod(admitted_pod("db, api", "running")), IMAGE);
        assert_eq!(secrets.unwrap(), vec!["db", "api"]);
    }

    #[test]
    fn the_annotation_edited_after_admission_changes_nothing() {
        let mut edited = admitted_pod("db", "running");
        edited["metadata"]["annotations"][a::INJECT] = json!("db,payments");
        assert_eq!(fixed_at_admission(&pod(edited), IMAGE).unwrap(), vec!["db"]);
    }

    #[test]
    fn only_while_the_injector_runs() {
        for (state, kind, says) in [
            ("terminated", DenialKind::NotStarting, "has finished"),
            ("waiting", DenialKind::NotRunningYet, "is waiting to start"),
        ] {
            let denial = fixed_at_admission(&pod(admitted_pod("db", state)), IMAGE).unwrap_err();
            assert_eq!(denial.kind, kind);
            assert!(denial.reason.contains(says), "{}", denial.reason);
        }
        let mut no_status = admitted_pod("db", "running");
        no_status["status"] = json!({"phase": "Pending"});
        let denial = fixed_at_admission(&pod(no_status), IMAGE).unwrap_err();
        assert!(
            denial.reason.contains("has not started"),
            "{}",
            denial.reason
        );
    }

    #[test]
    fn a_pod_without_the_configured_injector_gets_nothing() {
        let mut bare = admitted_pod("db", "running");
        bare["spec"]["initContainers"] = json!([]);
        let denial = fixed_at_admission(&pod(bare), IMAGE).unwrap_err();
        assert_eq!(denial.kind, DenialKind::NotInjected);
        assert!(denial.reason.contains(a::INJECTION_LABEL));

        let mut other_image = admitted_pod("db", "running");
        other_image["spec"]["initContainers"][0]["image"] = json!("attacker/shell:latest");
        let denial = fixed_at_admission(&pod(other_image), IMAGE).unwrap_err();
        assert!(
            denial.reason.contains("attacker/shell:latest"),
            "{}",
            denial.reason
        );

        let mut extra_mount = admitted_pod("db", "running");
        extra_mount["spec"]["initContainers"][0]["volumeMounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "node-disk", "mountPath": "/out"}));
        let denial = fixed_at_admission(&pod(extra_mount), IMAGE).unwrap_err();
        assert_eq!(denial.kind, DenialKind::NotInjected);
        assert!(denial.reason.contains("node-disk"), "{}", denial.reason);

        let mut on_disk = admitted_pod("db", "running");
        on_disk["spec"]["volumes"][0] =
            json!({"name": a::SECRETS_VOLUME, "hostPath": {"path": "/tmp"}});
        let denial = fixed_at_admission(&pod(on_disk), IMAGE).unwrap_err();
        assert_eq!(denial.kind, DenialKind::NotInjected);
    }

    #[test]
    fn only_a_scheduled_pod_whose_injector_is_being_created_is_waited_for() {
        let mut creating = admitted_pod("db", "waiting");
        creating["spec"]["nodeName"] = json!("node-1");
        creating["status"]["initContainerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "PodInitializing"}});
        assert!(injector_being_created(&pod(creating.clone())));
        let mut pulling = creating.clone();
        pulling["status"]["initContainerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert!(!injector_being_created(&pod(pulling)));
        let mut unscheduled = creating;
        unscheduled["spec"]["nodeName"] = Value::Null;
        assert!(!injector_being_created(&pod(unscheduled)));
        let mut finished = admitted_pod("db", "terminated");
        finished["spec"]["nodeName"] = json!("node-1");
        assert!(!injector_being_created(&pod(finished)));
    }

    #[test]
    fn another_tag_of_the_injector_image_is_the_same_injector() {
        let mut upgraded = admitted_pod("db", "running");
        upgraded["spec"]["initContainers"][0]["image"] = json!("keyward/webhook:previous");
        assert!(fixed_at_admission(&pod(upgraded), IMAGE).is_ok());
        assert_eq!(
            repository("reg:5000/keyward/webhook:0.3@sha256:ab"),
            "reg:5000/keyward/webhook"
        );
        assert_eq!(
            repository("reg:5000/keyward/webhook"),
            "reg:5000/keyward/webhook"
        );
        assert_eq!(repository("webhook@sha256:ab"), "webhook");
    }

    #[test]
    fn the_secrets_argument_is_read_from_command_and_args() {
        let injector: Container = serde_json::from_value(json!({
            "name": "keyward-inject",
            "command": ["/keyward-webhook", "inject", "--secrets", "a,b"],
        }))
        .unwrap();
        assert_eq!(secrets_argument(&injector), vec!["a", "b"]);
        let none: Container = serde_json::from_value(json!({"name": "keyward-inject"})).unwrap();
        assert!(secrets_argument(&none).is_empty());
    }
}
