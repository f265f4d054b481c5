//! Waiting for pods and reading their logs.
//!
//! On the local cluster the API server cannot reach the kubelet (it would
//! dial the machine's interface address, not loopback), so `kubectl logs`
//! does not work; logs are read from the node's pod log directory instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{LogParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Client, ResourceExt};

/// Wait until the pod has finished (`Succeeded` or `Failed`) and return it.
pub async fn wait_for_completion(api: &Api<Pod>, name: &str, timeout: Duration) -> Result<Pod> {
    let finished = |pod: Option<&Pod>| {
        pod.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|phase| phase == "Succeeded" || phase == "Failed")
    };
    let pod = tokio::time::timeout(timeout, await_condition(api.clone(), name, finished))
        .await
        .with_context(|| format!("pod {name} did not finish within {timeout:?}"))??;
    pod.with_context(|| format!("pod {name} was deleted while waiting for it"))
}

/// A TokenRequest-minted token of the `default` ServiceAccount, bound to
/// `pod`, for `audience`, valid 600 s (the API server's minimum): what a
/// projected token volume gives the pod.
pub async fn pod_bound_token(
    client: &Client,
    ns: &str,
    pod: &Pod,
    audience: &str,
) -> Result<String> {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![audience.to_owned()],
            expiration_seconds: Some(600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod.name_any()),
                uid: pod.uid(),
            }),
        },
        ..TokenRequest::default()
    };
    let made = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request("default", &PostParams::default(), &request)
        .await?;
    made.status
        .map(|s| s.token)
        .context("TokenRequest returned no token")
}

/// A pod shaped as admission leaves one for SealedSecrets `secrets`
/// (comma-separated) and still starting: its `keyward-inject` init
/// container runs `image` (which must hold /bin/busybox, and be the
/// injector image the webhook under test is configured with) and sleeps
/// for an hour instead of unsealing, so a test can unseal with the pod's
/// token for as long as it needs. Not labelled for injection: no webhook
/// touches it. Returns once the injector runs.
pub async fn starting_pod(
    client: &Client,
    ns: &str,
    name: &str,
    secrets: &str,
    (image, pull): (&str, &str),
) -> Result<Pod> {
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": starting_pod_spec(secrets, (image, pull)),
    }))?;
    let api = Api::<Pod>::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &pod).await?;
    let limit = Duration::from_secs(120);
    let pod = tokio::time::timeout(
        limit,
        await_condition(api, name, |p: Option<&Pod>| p.is_some_and(injector_running)),
    )
    .await
    .with_context(|| format!("pod {name}'s injector was not running within {limit:?}"))??;
    pod.with_context(|| format!("pod {name} was deleted while starting"))
}

/// Whether the pod's `keyward-inject` init container runs.
pub fn injector_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .and_then(|all| all.iter().find(|c| c.name == "keyward-inject"))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|state| state.running.is_some())
}

/// The spec of [`starting_pod`], for a pod template too.
pub fn starting_pod_spec(secrets: &str, (image, pull): (&str, &str)) -> serde_json::Value {
    serde_json::json!({
            "terminationGracePeriodSeconds": 0,
            "initContainers": [{
                "name": "keyward-inject", "image": image, "imagePullPolicy": pull,
                // `sh -c SCRIPT inject --secrets ...`: the arguments are
                // there to be read, not used.
                "command": ["/bin/busybox", "sh", "-c", "exec /bin/busybox sleep 3600"],
                "args": ["inject", "--secrets", secrets],
                "volumeMounts": [{"name": "keyward-secrets", "mountPath": "/run/keyward"}],
            }],
            "containers": [{"name": "app", "image": image, "imagePullPolicy": pull,
                "command": ["/bin/busybox", "true"]}],
            "volumes": [{"name": "keyward-secrets", "emptyDir": {"medium": "Memory"}}],
    })
}

/// The pod's phase, or `"?"` when it has no status yet.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("?")
}

/// The log of one container of the pod: from the node's log directory when
/// `KEYWARD_E2E_POD_LOG_DIR` is set (local cluster), else from the API.
pub async fn container_log(client: &Client, pod: &Pod, container: &str) -> Result<String> {
    let ns = pod.namespace().context("pod has no namespace")?;
    match std::env::var_os("KEYWARD_E2E_POD_LOG_DIR") {
        Some(root) => {
            let uid = pod.uid().context("pod has no uid")?;
            let dir = Path::new(&root)
                .join(format!("{ns}_{}_{uid}", pod.name_any()))
                .join(container);
            read_cri_log(&dir).await
        }
        None => {
            let params = LogParams {
                container: Some(container.to_owned()),
                ..LogParams::default()
            };
            Ok(Api::<Pod>::namespaced(client.clone(), &ns)
                .logs(&pod.name_any(), &params)
                .await?)
        }
    }
}

/// Read the newest `<restart>.log` in a container's log dir, in the CRI
/// format (`<time> <stream> <P|F> <text>`), and return the plain text.
async fn read_cri_log(dir: &Path) -> Result<String> {
    let newest = newest_log_file(dir).await?;
    let raw = tokio::fs::read_to_string(&newest)
        .await
        .with_context(|| format!("reading {}", newest.display()))?;
    Ok(parse_cri_log(&raw))
}

async fn newest_log_file(dir: &Path) -> Result<PathBuf> {
    let mut entries = tokio::fs::read_dir(dir)
        .await
        .with_context(|| format!("no container log directory {}", dir.display()))?;
    let mut best: Option<(u32, PathBuf)> = None;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let restart = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".log"))
            .and_then(|n| n.parse::<u32>().ok());
        if let Some(restart) = restart
            && best.as_ref().is_none_or(|(b, _)| restart > *b)
        {
            best = Some((restart, path));
        }
    }
    match best {
        Some((_, path)) => Ok(path),
        None => bail!("no log file in {}", dir.display()),
    }
}

/// CRI log lines are `<time> <stream> <tag> <text>`; tag `P` marks a
/// partial line that continues in the next record.
pub fn parse_cri_log(raw: &str) -> String {
    let mut out = String::new();
    for line in raw.lines() {
        let mut parts = line.splitn(4, ' ');
        let (_time, _stream, tag) = (parts.next(), parts.next(), parts.next());
        out.push_str(parts.next().unwrap_or(""));
        if tag != Some("P") {
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse_cri_log;

    #[test]
    fn joins_partial_lines_and_keeps_full_ones() {
        let raw = "2026-01-01T00:00:00Z stdout P hel\n\
                   2026-01-01T00:00:00Z stdout F lo world\n\
                   2026-01-01T00:00:01Z stderr F \n";
        assert_eq!(parse_cri_log(raw), "hello world\n\n");
    }
}
