//! What an opted-in pod gets: a memory volume, the `keyward-inject` init
//! container with a projected token, and the volume mounted read-only in
//! every app container. Each addition is checked for separately, so a
//! second admission of an already mutated pod adds nothing.

mod ops;

use crate::annotations::{self as a, requested_secrets};
use k8s_openapi::api::core::v1::{
    CSIVolumeSource, Capabilities, Container, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    ObjectFieldSelector, Pod, PodSpec, ProjectedVolumeSource, ResourceRequirements,
    SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use ops::push_all;
pub use ops::{Added, Op};
use serde_json::Value;

/// How the init container is built.
#[derive(Debug, Clone)]
pub struct InjectorConfig {
    /// The injector image (the webhook's own image).
    pub image: String,
    pub image_pull_policy: Option<String>,
    /// The unseal API as the injector reaches it.
    pub unseal_url: String,
    /// PEM of the CA that signed the webhook's serving certificate.
    pub ca_pem: Option<String>,
    /// How a pod that does not say (`keyward.io/delivery`) gets its values.
    pub default_delivery: Delivery,
}

/// The init container, or the CSI driver's inline volume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Delivery {
    #[default]
    Init,
    Csi,
}

impl std::str::FromStr for Delivery {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "init" => Ok(Delivery::Init),
            "csi" => Ok(Delivery::Csi),
            other => Err(format!("a delivery is \"init\" or \"csi\", not `{other}`")),
        }
    }
}

/// Where the injector image keeps this binary (the project's Dockerfile
/// puts it there). Set as the init container's `command`, so the mutation
/// does not depend on the image's ENTRYPOINT.
pub const INJECTOR_COMMAND: &str = "/keyward-webhook";

/// The CA bundle injected pods trust once renewal has replaced the CA the
/// webhook started with (`serve` sets it; one webhook per process).
static RENEWED_CA: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// From now on, injected pods trust `bundle` instead of `InjectorConfig::ca_pem`.
pub fn set_renewed_ca(bundle: &str) {
    *RENEWED_CA.write().unwrap_or_else(|e| e.into_inner()) = Some(bundle.to_owned());
}

fn injected_ca(config: &InjectorConfig) -> Option<String> {
    let renewed = RENEWED_CA.read().unwrap_or_else(|e| e.into_inner()).clone();
    renewed.or_else(|| config.ca_pem.clone())
}

/// The uid the injector runs as when the pod does not name one.
pub const INJECTOR_UID: i64 = 65532;

/// JSONPatch operations for `pod`; empty when the pod does not opt in or
/// already has everything. The annotation decides what is injected (a
/// custom objectSelector may send pods without the label); a pod labelled
/// for injection without naming any SealedSecret, or with a bad
/// annotation, is an error.
pub fn patch_for(pod: &Pod, config: &InjectorConfig) -> Result<Vec<Value>, String> {
    patch(pod, config)?
        .iter()
        .map(|op| serde_json::to_value(op).map_err(|e| format!("building the patch: {e}")))
        .collect()
}

/// `patch_for`'s operations, typed (the `/mutate` answer is written from
/// these without a JSON tree).
pub fn patch(pod: &Pod, config: &InjectorConfig) -> Result<Vec<Op>, String> {
    let none = Default::default();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&none);
    let Some(value) = annotations.get(a::INJECT) else {
        if opted_in_by_label(pod) {
            return Err(format!(
                "the pod is labelled {}={} but has no annotation {}; add the annotation {}: \"<sealedsecret>[,...]\" naming the SealedSecrets to inject, or remove the label",
                a::INJECTION_LABEL,
                a::INJECTION_ENABLED,
                a::INJECT,
                a::INJECT
            ));
        }
        return Ok(Vec::new());
    };
    let secrets = requested_secrets(value);
    if secrets.is_empty() {
        return Err(format!(
            "annotation {} is empty; list the SealedSecrets to inject, e.g. {}: \"db,api\"",
            a::INJECT,
            a::INJECT
        ));
    }
    if let Some(bad) = secrets.iter().find(|name| !is_dns_subdomain(name)) {
        return Err(format!(
            "annotation {}: `{bad}` is not a SealedSecret name (lowercase letters, digits, `-` and `.`)",
            a::INJECT
        ));
    }
    let mount_path = annotations
        .get(a::MOUNT_PATH)
        .map(String::as_str)
        .unwrap_or(a::DEFAULT_MOUNT_PATH);
    if !mount_path.starts_with('/') || mount_path.split('/').any(|p| p == "..") {
        return Err(format!(
            "annotation {} must be an absolute path without `..`, not `{mount_path}`",
            a::MOUNT_PATH
        ));
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Err("the pod has no spec".into());
    };
    let env_exec = match annotations.get(a::ENV_EXEC).map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(format!(
                "annotation {} must be \"true\" or \"false\", not `{other}`",
                a::ENV_EXEC
            ));
        }
    };

    let delivery = match annotations.get(a::DELIVERY).map(String::as_str) {
        Some("csi") if env_exec => {
            return Err(format!(
                "annotation {}: \"csi\" does not combine with {} (the wrapper binary comes \
                 from the init container); use one or the other",
                a::DELIVERY,
                a::ENV_EXEC
            ));
        }
        Some(value) => value
            .parse::<Delivery>()
            .map_err(|e| format!("annotation {}: {e}", a::DELIVERY))?,
        // env-exec needs the wrapper binary the init container brings.
        None if env_exec => Delivery::Init,
        None => config.default_delivery,
    };
    if delivery == Delivery::Csi {
        return csi_patch(spec, &secrets, mount_path);
    }

    let mut ops = Vec::new();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    let new_volumes: Vec<Volume> = [
        (a::SECRETS_VOLUME, secrets_volume(env_exec)),
        (a::TOKEN_VOLUME, token_volume()),
    ]
    .into_iter()
    .filter(|(name, _)| !volumes.iter().any(|v| v.name == *name))
    .map(|(_, v)| v)
    .collect();
    push_all(
        &mut ops,
        "/spec/volumes",
        spec.volumes.is_some(),
        new_volumes,
    );

    crate::pod_guard::check(pod)?;

    let init = spec.init_containers.as_deref().unwrap_or_default();
    let container = init_container(pod, config, &secrets, mount_path, env_exec);
    if let Some(existing) = init.iter().find(|c| c.name == a::INIT_CONTAINER) {
        is_this_injector(existing, &container)?;
    } else {
        // First, so other init containers may use the secrets too.
        if spec.init_containers.is_some() {
            ops.push(Op::Add {
                path: "/spec/initContainers/0".into(),
                value: Added::Container(Box::new(container)),
            });
        } else {
            ops.push(Op::Add {
                path: "/spec/initContainers".into(),
                value: Added::Containers(vec![container]),
            });
        }
    }
    for (index, container) in spec.containers.iter().enumerate() {
        mount_in(&mut ops, "containers", index, container, mount_path);
        if env_exec {
            wrap_command(&mut ops, index, container, mount_path)?;
        }
    }
    for (index, container) in init.iter().enumerate() {
        if container.name != a::INIT_CONTAINER {
            // Indices shift by one when the injector is inserted first.
            let shifted = index + usize::from(!init.iter().any(|c| c.name == a::INIT_CONTAINER));
            mount_in(&mut ops, "initContainers", shifted, container, mount_path);
        }
    }
    Ok(ops)
}

/// `keyward.io/delivery: csi`: the secrets volume is Keyward's CSI volume
/// naming the SealedSecrets, mounted read-only where the init container's
/// would be; no init container and no token (the kubelet asks for the pod's).
/// A pre-declared `keyward-secrets` must be that volume.
fn csi_patch(spec: &PodSpec, secrets: &[String], mount_path: &str) -> Result<Vec<Op>, String> {
    use crate::unseal::csi_entitlement::{CSI_DRIVER, SECRETS_ATTRIBUTE};
    let wanted = secrets.join(",");
    let mut ops = Vec::new();
    let volumes = spec.volumes.as_deref().unwrap_or_default();
    match volumes.iter().find(|v| v.name == a::SECRETS_VOLUME) {
        None => push_all(
            &mut ops,
            "/spec/volumes",
            spec.volumes.is_some(),
            vec![Volume {
                name: a::SECRETS_VOLUME.into(),
                csi: Some(CSIVolumeSource {
                    driver: CSI_DRIVER.into(),
                    read_only: Some(true),
                    volume_attributes: Some([(SECRETS_ATTRIBUTE.to_owned(), wanted)].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
        ),
        Some(existing) => {
            let same = existing.csi.as_ref().is_some_and(|csi| {
                csi.driver == CSI_DRIVER
                    && csi
                        .volume_attributes
                        .as_ref()
                        .and_then(|attributes| attributes.get(SECRETS_ATTRIBUTE))
                        == Some(&wanted)
            });
            if !same {
                return Err(format!(
                    "volume `{}` is reserved for Keyward and this one is not its CSI volume for                      `{wanted}`; rename it, or remove it and Keyward adds it",
                    a::SECRETS_VOLUME
                ));
            }
        }
    }
    let init = spec.init_containers.as_deref().unwrap_or_default();
    for (index, container) in spec.containers.iter().enumerate() {
        mount_in(&mut ops, "containers", index, container, mount_path);
    }
    for (index, container) in init.iter().enumerate() {
        mount_in(&mut ops, "initContainers", index, container, mount_path);
    }
    Ok(ops)
}

/// A pre-declared `keyward-inject` (this webhook's own, on re-invocation)
/// must be the injector this pod would get: it alone holds the unseal
/// token, so a look-alike with another image, command or secret list could
/// read what it likes.
fn is_this_injector(existing: &Container, expected: &Container) -> Result<(), String> {
    let same = existing.image == expected.image
        && existing.command == expected.command
        && existing.args == expected.args;
    if same {
        Ok(())
    } else {
        Err(format!(
            "init container `{}` is reserved for Keyward's injector and this one is not it \
             (image, command or arguments differ); rename it, or remove it and Keyward adds \
             the injector",
            a::INIT_CONTAINER
        ))
    }
}

fn mount_in(ops: &mut Vec<Op>, list: &str, index: usize, container: &Container, path: &str) {
    let mounts = container.volume_mounts.as_deref().unwrap_or_default();
    if mounts
        .iter()
        .any(|m| m.name == a::SECRETS_VOLUME || m.mount_path == path)
    {
        return;
    }
    let mount = VolumeMount {
        name: a::SECRETS_VOLUME.into(),
        mount_path: path.into(),
        read_only: Some(true),
        ..Default::default()
    };
    push_all(
        ops,
        &format!("/spec/{list}/{index}/volumeMounts"),
        container.volume_mounts.is_some(),
        vec![mount],
    );
}

/// env-exec: the app container runs the wrapper, which exports the files
/// and execs the original command. Kubernetes appends `args` to `command`,
/// so they reach the app unchanged. The image's ENTRYPOINT is not in the
/// pod spec, so a container without `command` cannot be wrapped.
fn wrap_command(
    ops: &mut Vec<Op>,
    index: usize,
    container: &Container,
    mount: &str,
) -> Result<(), String> {
    let wrapper = wrapper_path(mount);
    match container.command.as_deref() {
        Some([first, ..]) if *first == wrapper => Ok(()), // already wrapped
        Some(command) if !command.is_empty() => {
            let mut wrapped = vec![
                wrapper,
                "exec-env".to_owned(),
                "--dir".to_owned(),
                mount.to_owned(),
                "--".to_owned(),
            ];
            wrapped.extend(command.iter().cloned());
            ops.push(Op::Replace {
                path: format!("/spec/containers/{index}/command"),
                value: wrapped,
            });
            Ok(())
        }
        _ => Err(format!(
            "{}: container `{}` has no `command`, and the webhook cannot see its image's \
             ENTRYPOINT; set `command` (and `args`) explicitly, e.g. command: [\"/app\"]",
            a::ENV_EXEC,
            container.name
        )),
    }
}

fn wrapper_path(mount: &str) -> String {
    format!(
        "{}/{}",
        mount.trim_end_matches('/'),
        crate::exec_env::WRAPPER_FILE
    )
}

/// env-exec also holds the wrapper binary (tens of MB) in the volume.
fn secrets_volume(env_exec: bool) -> Volume {
    let size = if env_exec { "96Mi" } else { "4Mi" };
    Volume {
        name: a::SECRETS_VOLUME.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity(size.into())),
        }),
        ..Default::default()
    }
}

fn token_volume() -> Volume {
    let token = ServiceAccountTokenProjection {
        audience: Some(a::AUDIENCE.into()),
        expiration_seconds: Some(a::TOKEN_EXPIRY_SECONDS),
        path: a::TOKEN_FILE.into(),
    };
    Volume {
        name: a::TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(token),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The app's own non-root uid if it names one (first container, then the
/// pod), so the app can read the 0400 files the injector writes; otherwise
/// a fixed non-root uid (root apps read them anyway).
fn injector_uid(pod: &Pod) -> i64 {
    let spec = pod.spec.as_ref();
    let container = spec
        .and_then(|s| s.containers.first())
        .and_then(|c| c.security_context.as_ref())
        .and_then(|c| c.run_as_user);
    let pod_level = spec
        .and_then(|s| s.security_context.as_ref())
        .and_then(|c| c.run_as_user);
    container
        .or(pod_level)
        .filter(|uid| *uid != 0)
        .unwrap_or(INJECTOR_UID)
}

fn opted_in_by_label(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(a::INJECTION_LABEL))
        .is_some_and(|value| value == a::INJECTION_ENABLED)
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

fn init_container(
    pod: &Pod,
    config: &InjectorConfig,
    secrets: &[String],
    mount: &str,
    env_exec: bool,
) -> Container {
    let value = |name: &str, value: String| EnvVar {
        name: name.into(),
        value: Some(value),
        value_from: None,
    };
    let field = |name: &str, path: &str| EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.into(),
            }),
            ..Default::default()
        }),
    };
    let mut env = vec![
        value("KEYWARD_UNSEAL_URL", config.unseal_url.clone()),
        field("KEYWARD_POD_NAME", "metadata.name"),
        field("KEYWARD_POD_NAMESPACE", "metadata.namespace"),
    ];
    if let Some(ca) = injected_ca(config) {
        env.push(value("KEYWARD_CA_PEM", ca));
    }
    let mut args = vec![
        "inject".to_owned(),
        "--secrets".to_owned(),
        secrets.join(","),
        "--mount-path".to_owned(),
        mount.to_owned(),
        "--token-file".to_owned(),
        format!("{}/{}", a::TOKEN_DIR, a::TOKEN_FILE),
    ];
    if env_exec {
        args.extend(["--install-exec".to_owned(), wrapper_path(mount)]);
    }
    let quantity = |q: &str| Quantity(q.into());
    // The wrapper copy is charged to this container's memory.
    let memory_limit = if env_exec { "160Mi" } else { "64Mi" };
    Container {
        name: a::INIT_CONTAINER.into(),
        image: Some(config.image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(vec![INJECTOR_COMMAND.into()]),
        args: Some(args),
        env: Some(env),
        volume_mounts: Some(vec![
            VolumeMount {
                name: a::SECRETS_VOLUME.into(),
                mount_path: mount.into(),
                ..Default::default()
            },
            VolumeMount {
                name: a::TOKEN_VOLUME.into(),
                mount_path: a::TOKEN_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        resources: Some(ResourceRequirements {
            requests: Some(
                [
                    ("cpu".to_owned(), quantity("10m")),
                    ("memory".to_owned(), quantity("16Mi")),
                ]
                .into(),
            ),
            limits: Some([("memory".to_owned(), quantity(memory_limit))].into()),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(injector_uid(pod)),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            capabilities: Some(Capabilities {
                add: None,
                drop: Some(vec!["ALL".into()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> InjectorConfig {
        InjectorConfig {
            image: "img".into(),
            image_pull_policy: None,
            unseal_url: "https://127.0.0.1:1/v1/unseal".into(),
            ca_pem: None,
            default_delivery: Delivery::Init,
        }
    }

    fn pod(annotation: &str, security: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {a::INJECT: annotation}},
            "spec": {"containers": [{"name": "app", "image": "x", "securityContext": security}]},
        }))
        .unwrap()
    }

    fn init_uid(ops: &[Value]) -> i64 {
        let init = ops
            .iter()
            .find(|op| op["path"] == "/spec/initContainers")
            .unwrap();
        init["value"][0]["securityContext"]["runAsUser"]
            .as_i64()
            .unwrap()
    }

    #[test]
    fn injector_runs_as_the_apps_uid_when_it_has_one() {
        let ops = patch_for(&pod("db", json!({"runAsUser": 1000})), &config()).unwrap();
        assert_eq!(init_uid(&ops), 1000);
        let ops = patch_for(&pod("db", json!({"runAsUser": 0})), &config()).unwrap();
        assert_eq!(init_uid(&ops), INJECTOR_UID);
        let ops = patch_for(&pod("db", json!({})), &config()).unwrap();
        assert_eq!(init_uid(&ops), INJECTOR_UID);
    }

    #[test]
    fn the_injector_command_is_explicit() {
        let ops = patch_for(&pod("db", json!({})), &config()).unwrap();
        let init = ops
            .iter()
            .find(|op| op["path"] == "/spec/initContainers")
            .unwrap();
        assert_eq!(init["value"][0]["command"], json!([INJECTOR_COMMAND]));
        assert_eq!(init["value"][0]["args"][0], "inject");
    }

    fn env_exec_pod(command: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "annotations": {a::INJECT: "db", a::ENV_EXEC: "true"}},
            "spec": {"containers": [
                {"name": "app", "image": "x", "command": command, "args": ["--port", "80"]},
            ]},
        }))
        .unwrap()
    }

    #[test]
    fn env_exec_wraps_the_command_and_installs_the_wrapper() {
        let pod = env_exec_pod(json!(["/app", "serve"]));
        let ops = patch_for(&pod, &config()).unwrap();
        let wrap = ops
            .iter()
            .find(|op| op["path"] == "/spec/containers/0/command")
            .unwrap();
        assert_eq!(wrap["op"], "replace");
        assert_eq!(
            wrap["value"],
            json!([
                "/run/keyward/.keyward-exec",
                "exec-env",
                "--dir",
                "/run/keyward",
                "--",
                "/app",
                "serve"
            ])
        );
        let init = ops
            .iter()
            .find(|op| op["path"] == "/spec/initContainers")
            .unwrap();
        let args = init["value"][0]["args"].as_array().unwrap();
        assert!(args.ends_with(&[json!("--install-exec"), json!("/run/keyward/.keyward-exec")]));
        // Nothing of the values, nor the args, moves into the spec.
        assert!(
            !ops.iter()
                .any(|op| op["path"].as_str().unwrap().contains("/env"))
        );

        // Applied, then admitted again: nothing more.
        let mut doc = serde_json::to_value(&pod).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        let again = patch_for(&serde_json::from_value(doc).unwrap(), &config()).unwrap();
        assert!(again.is_empty(), "{again:?}");
    }

    #[test]
    fn env_exec_needs_an_explicit_command() {
        for command in [Value::Null, json!([])] {
            let error = patch_for(&env_exec_pod(command), &config()).unwrap_err();
            assert!(
                error.contains("ENTRYPOINT") && error.contains("`app`"),
                "{error}"
            );
        }
        let mut pod = env_exec_pod(json!(["/app"]));
        pod.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(a::ENV_EXEC.into(), "yes".into());
        assert!(patch_for(&pod, &config()).unwrap_err().contains("\"true\""));
    }

    #[test]
    fn after_a_ca_renewal_new_pods_trust_the_renewed_bundle() {
        // Process-wide, as in `serve`; no other test here reads the CA.
        set_renewed_ca("NEW CA\nOLD CA\n");
        let ops = patch_for(&pod("db", json!({})), &config()).unwrap();
        let init = ops
            .iter()
            .find(|op| op["path"] == "/spec/initContainers")
            .unwrap();
        let env = init["value"][0]["env"].as_array().unwrap();
        assert!(
            env.iter()
                .any(|e| e["name"] == "KEYWARD_CA_PEM" && e["value"] == "NEW CA\nOLD CA\n"),
            "{env:?}"
        );
    }

    fn labelled(injection: &str, annotations: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "labels": {a::INJECTION_LABEL: injection},
                         "annotations": annotations},
            "spec": {"containers": [{"name": "app", "image": "x"}]},
        }))
        .unwrap()
    }

    #[test]
    fn a_labelled_pod_must_name_its_secrets() {
        for annotations in [json!({}), json!({"other": "x"})] {
            let error = patch_for(&labelled("enabled", annotations), &config()).unwrap_err();
            assert!(
                error.contains("keyward.io/injection=enabled")
                    && error.contains("add the annotation keyward.io/inject:"),
                "{error}"
            );
        }
        let error =
            patch_for(&labelled("enabled", json!({a::INJECT: " , "})), &config()).unwrap_err();
        assert!(error.contains("keyward.io/inject: \"db,api\""), "{error}");
    }

    #[test]
    fn the_annotation_decides_what_is_injected_not_the_label() {
        // Labelled and annotated: the usual opted-in pod.
        let ops = patch_for(&labelled("enabled", json!({a::INJECT: "db"})), &config()).unwrap();
        assert!(!ops.is_empty());
        // Annotated only (sent by a custom objectSelector): still injected.
        let ops = patch_for(&pod("db", json!({})), &config()).unwrap();
        assert!(ops.iter().any(|op| op["path"] == "/spec/initContainers"));
        // Any other label value, without the annotation, is not an opt-in.
        let ops = patch_for(&labelled("disabled", json!({})), &config()).unwrap();
        assert!(ops.is_empty(), "{ops:?}");
    }

    #[test]
    fn names_that_are_not_sealed_secrets_are_refused() {
        for bad in ["../etc", "DB", "a/b", "-x"] {
            let error = patch_for(&pod(bad, json!({})), &config()).unwrap_err();
            assert!(error.contains("not a SealedSecret name"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_look_alike_injector_is_refused_and_the_real_one_kept() {
        let plain = pod("db", json!({}));
        let ops = patch_for(&plain, &config()).unwrap();
        let mut doc = serde_json::to_value(&plain).unwrap();
        let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
        json_patch::patch(&mut doc, &patch).unwrap();
        // Re-invoked on its own mutation: nothing to add, nothing refused.
        let mutated: Pod = serde_json::from_value(doc.clone()).unwrap();
        assert!(patch_for(&mutated, &config()).unwrap().is_empty());
        // The same name with another image, or asking for more secrets.
        for (field, value) in [
            ("image", json!("busybox")),
            ("args", json!(["inject", "--secrets", "db,other"])),
            (
                "command",
                json!(["sh", "-c", "cat /var/run/secrets/keyward.io/token/token"]),
            ),
        ] {
            let mut forged = doc.clone();
            forged["spec"]["initContainers"][0][field] = value;
            let error = patch_for(&serde_json::from_value(forged).unwrap(), &config()).unwrap_err();
            assert!(
                error.contains("reserved for Keyward's injector"),
                "{field}: {error}"
            );
        }
    }

    #[test]
    fn pre_declared_volumes_are_checked_before_anything_is_added() {
        let mut p = pod("db", json!({}));
        p.spec.as_mut().unwrap().volumes = Some(vec![
            serde_json::from_value(
                json!({"name": a::SECRETS_VOLUME, "hostPath": {"path": "/var/tmp/k"}}),
            )
            .unwrap(),
        ]);
        let error = patch_for(&p, &config()).unwrap_err();
        assert!(error.contains("medium: Memory"), "{error}");
    }

    #[test]
    fn csi_delivery_adds_the_csi_volume_and_no_injector() {
        let mut pod = labelled("enabled", json!({a::INJECT: "db,api", a::DELIVERY: "csi"}));
        let ops = patch_for(&pod, &config()).unwrap();
        let text = serde_json::to_string(&ops).unwrap();
        assert!(
            text.contains("csi.keyward.io") && text.contains("db,api"),
            "{text}"
        );
        assert!(
            !text.contains(a::INIT_CONTAINER) && !text.contains(a::TOKEN_VOLUME),
            "{text}"
        );
        assert!(text.contains("/spec/containers/0/volumeMounts"), "{text}");
        // Re-invocation on the patched pod adds nothing.
        let mut patched = serde_json::to_value(&pod).unwrap();
        let ops: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
        json_patch::patch(&mut patched, &ops).unwrap();
        pod = serde_json::from_value(patched).unwrap();
        assert!(patch_for(&pod, &config()).unwrap().is_empty());
        // Another list of secrets under the reserved name is refused.
        pod.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(a::INJECT.into(), "db".into());
        let error = patch_for(&pod, &config()).unwrap_err();
        assert!(error.contains("reserved for Keyward"), "{error}");
    }

    #[test]
    fn the_default_delivery_applies_unless_the_pod_says_otherwise() {
        let csi_default = InjectorConfig {
            default_delivery: Delivery::Csi,
            ..config()
        };
        let is_csi = |ops: &[Value]| {
            ops.iter()
                .any(|op| op.to_string().contains("csi.keyward.io"))
        };
        let plain = labelled("enabled", json!({a::INJECT: "db"}));
        assert!(is_csi(&patch_for(&plain, &csi_default).unwrap()));
        assert!(!is_csi(&patch_for(&plain, &config()).unwrap()));
        let init = labelled("enabled", json!({a::INJECT: "db", a::DELIVERY: "init"}));
        assert!(!is_csi(&patch_for(&init, &csi_default).unwrap()));
        // env-exec needs the init container's wrapper: it wins over the default.
        let mut env_exec = labelled("enabled", json!({a::INJECT: "db", a::ENV_EXEC: "true"}));
        env_exec.spec.as_mut().unwrap().containers[0].command = Some(vec!["/app".into()]);
        assert!(!is_csi(&patch_for(&env_exec, &csi_default).unwrap()));
        assert_eq!("csi".parse::<Delivery>(), Ok(Delivery::Csi));
        assert!(
            "CSI"
                .parse::<Delivery>()
                .unwrap_err()
                .contains("\"init\" or \"csi\"")
        );
    }

    #[test]
    fn an_unknown_delivery_or_csi_with_env_exec_is_refused() {
        let pod = labelled("enabled", json!({a::INJECT: "db", a::DELIVERY: "volume"}));
        let error = patch_for(&pod, &config()).unwrap_err();
        assert!(error.contains("\"init\" or \"csi\""), "{error}");
        let pod = labelled(
            "enabled",
            json!({a::INJECT: "db", a::DELIVERY: "csi", a::ENV_EXEC: "true"}),
        );
        let error = patch_for(&pod, &config()).unwrap_err();
        assert!(error.contains("does not combine"), "{error}");
    }

    #[test]
    fn relative_mount_paths_are_refused() {
        let mut p = pod("db", json!({}));
        p.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(a::MOUNT_PATH.into(), "run/x".into());
        assert!(patch_for(&p, &config()).is_err());
    }
}
