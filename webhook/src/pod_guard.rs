//! What a pod that reaches `/mutate` may not do with Keyward's volumes, so
//! the plaintext stays in memory and the unseal token stays with the
//! injector. The pod author writes the volumes and mounts; the webhook only
//! adds what is missing, so whatever they pre-declared is checked here.
//!
//! Refused: a `keyward-secrets` volume that is not a memory `emptyDir` (a
//! hostPath or PVC would put plaintext on a disk), a `keyward-token` volume
//! of another shape, any other volume projecting a token for Keyward's
//! audience, any container but the injector mounting a Keyward token, an
//! ephemeral container mounting either volume, and a container squatting
//! on the injector's name.

use crate::annotations as a;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Volume, VolumeMount};

/// `Err` is the whole admission message, saying what to change.
pub fn check(pod: &Pod) -> Result<(), String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    for volume in volumes {
        check_volume(volume)?;
    }
    let tokens: Vec<&str> = volumes
        .iter()
        .filter(|v| projects_keyward_token(v))
        .map(|v| v.name.as_str())
        .collect();
    for (kind, name, mounts) in containers(spec) {
        let injector = kind == Kind::Init && name == a::INIT_CONTAINER;
        if name == a::INIT_CONTAINER && !injector {
            return Err(format!(
                "the container name `{}` is reserved for Keyward's injector; rename the {} container",
                a::INIT_CONTAINER,
                kind.as_str()
            ));
        }
        for mount in mounts {
            if injector && !injector_may_mount(volumes, &mount.name) {
                return Err(format!(
                    "`{}` mounts volume `{}`; Keyward's injector mounts only `{}`, `{}` and \
                     read-only kinds (secret, projected, configMap, downwardAPI, e.g. the \
                     ServiceAccount token Kubernetes adds), so it cannot write the secrets \
                     anywhere else. Remove the mount",
                    a::INIT_CONTAINER,
                    mount.name,
                    a::SECRETS_VOLUME,
                    a::TOKEN_VOLUME
                ));
            }
            if !injector && tokens.contains(&mount.name.as_str()) {
                return Err(format!(
                    "{} container `{}` mounts volume `{}`, which holds the token Keyward's injector \
                     unseals with (audience `{}`); only the injector may mount it. Remove the \
                     mount: the app reads its secrets from the files the injector writes",
                    kind.as_str(),
                    name,
                    mount.name,
                    a::AUDIENCE
                ));
            }
            if kind == Kind::Ephemeral && is_secrets_mount(mount) {
                return Err(format!(
                    "ephemeral container `{}` mounts volume `{}`, which holds the pod's \
                     unsealed secrets; debug without mounting it",
                    name, mount.name
                ));
            }
        }
    }
    Ok(())
}

/// The `pods/ephemeralcontainers` subresource: from Kubernetes 1.22 the
/// object is the Pod; before, an `EphemeralContainers` object holding only
/// the list. Both are read, so an older API server is no way around it.
pub fn check_ephemeral(request: &crate::admission::Request) -> Result<(), String> {
    let Some(object) = request.object.as_ref() else {
        return Ok(());
    };
    let object =
        serde_json::to_value(object).map_err(|e| format!("cannot read the object: {e}"))?;
    let pod: Pod = if request.kind.kind == "EphemeralContainers" {
        let list = object.get("ephemeralContainers").cloned();
        serde_json::from_value(
            serde_json::json!({"spec": {"containers": [], "ephemeralContainers": list}}),
        )
    } else {
        serde_json::from_value(object)
    }
    .map_err(|e| format!("cannot read the {}: {e}", request.kind.kind))?;
    check(&pod)
}

fn check_volume(volume: &Volume) -> Result<(), String> {
    if volume.name == a::SECRETS_VOLUME {
        let in_memory = volume
            .empty_dir
            .as_ref()
            .is_some_and(|dir| dir.medium.as_deref() == Some("Memory"));
        if !in_memory {
            return Err(format!(
                "volume `{}` must be an emptyDir with medium: Memory, so unsealed secrets never \
                 reach a disk; remove it from the pod spec and Keyward adds it",
                a::SECRETS_VOLUME
            ));
        }
    } else if volume.name == a::TOKEN_VOLUME {
        if !is_keyward_token_only(volume) {
            return Err(format!(
                "volume name `{}` is reserved for the token Keyward's injector unseals with; \
                 remove it from the pod spec and Keyward adds it",
                a::TOKEN_VOLUME
            ));
        }
    } else if projects_keyward_token(volume) {
        return Err(format!(
            "volume `{}` projects a ServiceAccount token for audience `{}`; only Keyward's \
             injector holds one (Keyward adds it); remove that projection",
            volume.name,
            a::AUDIENCE
        ));
    }
    Ok(())
}

/// Keyward's two volumes, or a kind the kubelet mounts read-only (so the
/// injector could not write secrets there): the ServiceAccount token
/// volume the API server adds to every container is one.
fn injector_may_mount(volumes: &[Volume], name: &str) -> bool {
    if name == a::SECRETS_VOLUME || name == a::TOKEN_VOLUME {
        return true;
    }
    volumes.iter().find(|v| v.name == name).is_some_and(|v| {
        v.secret.is_some()
            || v.projected.is_some()
            || v.config_map.is_some()
            || v.downward_api.is_some()
    })
}

/// A projected volume holding a ServiceAccount token for Keyward's audience.
fn projects_keyward_token(volume: &Volume) -> bool {
    volume
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.service_account_token.as_ref())
        .any(|t| t.audience.as_deref() == Some(a::AUDIENCE))
}

/// Keyward's own token volume: one source, a token for Keyward's audience.
fn is_keyward_token_only(volume: &Volume) -> bool {
    let sources = volume
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_deref())
        .unwrap_or_default();
    matches!(sources, [only] if only.service_account_token.as_ref()
        .is_some_and(|t| t.audience.as_deref() == Some(a::AUDIENCE)))
}

fn is_secrets_mount(mount: &VolumeMount) -> bool {
    mount.name == a::SECRETS_VOLUME || mount.name == a::TOKEN_VOLUME
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    App,
    Init,
    Ephemeral,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::Init => "init",
            Kind::Ephemeral => "ephemeral",
        }
    }
}

/// Every container of the pod with its kind, name and mounts (the
/// ephemeral ones are another type with the same fields).
fn containers(spec: &PodSpec) -> Vec<(Kind, &str, &[VolumeMount])> {
    let app = spec.containers.iter().map(|c| (Kind::App, c));
    let init = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (Kind::Init, c));
    let regular = app
        .chain(init)
        .map(|(kind, c)| (kind, c.name.as_str(), mounts(&c.volume_mounts)));
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|e| (Kind::Ephemeral, e.name.as_str(), mounts(&e.volume_mounts)));
    regular.chain(ephemeral).collect()
}

fn mounts(list: &Option<Vec<VolumeMount>>) -> &[VolumeMount] {
    list.as_deref().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn pod(spec: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn token(name: &str, audience: &str) -> Value {
        json!({"name": name, "projected": {"sources": [
            {"serviceAccountToken": {"audience": audience, "path": "token"}}]}})
    }

    fn app(mounts: Value) -> Value {
        json!({"name": "app", "image": "x", "volumeMounts": mounts})
    }

    #[test]
    fn a_plain_pod_and_keywards_own_shape_pass() {
        assert!(check(&pod(json!({"containers": [app(json!([]))]}))).is_ok());
        let injected = pod(json!({
            "volumes": [
                {"name": a::SECRETS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "4Mi"}},
                token(a::TOKEN_VOLUME, a::AUDIENCE),
            ],
            "initContainers": [{"name": a::INIT_CONTAINER, "image": "k", "volumeMounts": [
                {"name": a::SECRETS_VOLUME, "mountPath": "/run/keyward"},
                {"name": a::TOKEN_VOLUME, "mountPath": a::TOKEN_DIR}]}],
            "containers": [app(json!([{"name": a::SECRETS_VOLUME, "mountPath": "/run/keyward"}]))],
        }));
        assert!(check(&injected).is_ok());
    }

    #[test]
    fn secrets_volume_must_be_in_memory() {
        for volume in [
            json!({"name": a::SECRETS_VOLUME, "hostPath": {"path": "/var/tmp/x"}}),
            json!({"name": a::SECRETS_VOLUME, "emptyDir": {}}),
            json!({"name": a::SECRETS_VOLUME, "persistentVolumeClaim": {"claimName": "c"}}),
        ] {
            let error = check(&pod(
                json!({"volumes": [volume], "containers": [app(json!([]))]}),
            ))
            .unwrap_err();
            assert!(error.contains("medium: Memory"), "{error}");
        }
    }

    #[test]
    fn only_the_injector_mounts_a_keyward_token() {
        let mounted = |volume: Value, name: &str| {
            check(&pod(json!({
                "volumes": [volume],
                "containers": [app(json!([{"name": name, "mountPath": "/t"}]))],
            })))
        };
        let error = mounted(token(a::TOKEN_VOLUME, a::AUDIENCE), a::TOKEN_VOLUME).unwrap_err();
        assert!(
            error.contains("app container `app` mounts volume `keyward-token`"),
            "{error}"
        );
        // Under another name: the projection itself is refused.
        let error = mounted(token("mine", a::AUDIENCE), "mine").unwrap_err();
        assert!(error.contains("projects a ServiceAccount token"), "{error}");
        // Tokens for other audiences are the app's business.
        assert!(mounted(token("vault", "vault"), "vault").is_ok());
        // The reserved name with another shape.
        let error = mounted(
            json!({"name": a::TOKEN_VOLUME, "secret": {"secretName": "s"}}),
            "x",
        )
        .unwrap_err();
        assert!(error.contains("reserved"), "{error}");
    }

    #[test]
    fn ephemeral_containers_may_not_mount_keyward_volumes() {
        let error = check(&pod(json!({
            "volumes": [{"name": a::SECRETS_VOLUME, "emptyDir": {"medium": "Memory"}}],
            "containers": [app(json!([]))],
            "ephemeralContainers": [{"name": "debug", "image": "busybox",
                "volumeMounts": [{"name": a::SECRETS_VOLUME, "mountPath": "/s"}]}],
        })))
        .unwrap_err();
        assert!(error.contains("ephemeral container `debug`"), "{error}");
    }

    #[test]
    fn the_injector_mounts_only_keywards_volumes() {
        let error = check(&pod(json!({
            "volumes": [{"name": "loot", "hostPath": {"path": "/var/tmp"}}],
            "initContainers": [{"name": a::INIT_CONTAINER, "image": "k", "volumeMounts": [
                {"name": a::SECRETS_VOLUME, "mountPath": "/run/keyward"},
                {"name": "loot", "mountPath": "/loot"}]}],
            "containers": [app(json!([]))],
        })))
        .unwrap_err();
        assert!(error.contains("mounts volume `loot`"), "{error}");
        // The ServiceAccount token Kubernetes mounts into every container.
        let with_sa_token = check(&pod(json!({
            "volumes": [{"name": "default-token-abcde", "secret": {"secretName": "default-token-abcde"}},
                        {"name": "kube-api-access-x", "projected": {"sources": []}}],
            "initContainers": [{"name": a::INIT_CONTAINER, "image": "k", "volumeMounts": [
                {"name": a::SECRETS_VOLUME, "mountPath": "/run/keyward"},
                {"name": "default-token-abcde", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
                {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/x"}]}],
            "containers": [app(json!([]))],
        })));
        assert!(with_sa_token.is_ok(), "{with_sa_token:?}");
    }

    #[test]
    fn the_injector_name_is_reserved() {
        let error = check(&pod(json!({"containers": [
            {"name": a::INIT_CONTAINER, "image": "x"}]})))
        .unwrap_err();
        assert!(error.contains("reserved"), "{error}");
    }
}
