//! One fresh namespace per test, in the style of linkerd's `with_temp_ns`:
//! created before, dumped when the test fails, deleted after.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::{cluster, pods};

/// Label put on every namespace the tests create.
pub const E2E_LABEL: &str = "keyward.io/e2e";

/// Run `test` with a client and a new, empty namespace.
///
/// On failure (an `Err` or a panic) the namespace's pods, their logs and
/// its events are printed. The namespace is deleted afterwards unless
/// `KEYWARD_E2E_KEEP_NS=1`. The test's failure is then re-raised.
pub async fn with_temp_ns<F, Fut>(test: F)
where
    F: FnOnce(Client, String) -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let client = match cluster::client().await {
        Ok(client) => client,
        Err(err) => panic!("{err:#}"),
    };
    let ns = match create_temp_ns(&client).await {
        Ok(ns) => ns,
        Err(err) => panic!("creating a test namespace: {err:#}"),
    };

    let outcome = tokio::spawn(test(client.clone(), ns.clone())).await;

    let failed = !matches!(outcome, Ok(Ok(())));
    if failed {
        dump_namespace(&client, &ns).await;
    }
    if std::env::var("KEYWARD_E2E_KEEP_NS").is_ok_and(|v| v == "1") {
        eprintln!("keeping namespace {ns} (KEYWARD_E2E_KEEP_NS=1)");
    } else if let Err(err) = Api::<Namespace>::all(client)
        .delete(&ns, &DeleteParams::background())
        .await
    {
        eprintln!("warning: could not delete namespace {ns}: {err}");
    }

    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(err)) => panic!("test failed in namespace {ns}: {err:#}"),
        Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
        Err(join) => panic!("test in namespace {ns} did not finish: {join}"),
    }
}

/// Create `kw-e2e-<random>` and wait for its `default` ServiceAccount,
/// which every pod needs.
pub async fn create_temp_ns(client: &Client) -> Result<String> {
    let name = format!("kw-e2e-{:08x}", random_u64() as u32);
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name, "labels": { E2E_LABEL: "true" } }
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;

    // Before 1.24 the ServiceAccount admission plugin refuses pods until the
    // account's token Secret exists, so wait for that too on old servers.
    let needs_secret = server_minor(client).await? < 24;
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), &name);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sa = sas.get_opt("default").await?;
        let ready = sa.is_some_and(|sa| !needs_secret || sa.secrets.is_some_and(|s| !s.is_empty()));
        if ready {
            return Ok(name);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "ServiceAccount {name}/default (with its token Secret) was not ready within 60s; \
             is kube-controller-manager running?"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The API server's minor version (`"20+"` reads as 20).
async fn server_minor(client: &Client) -> Result<u32> {
    let info = client.apiserver_version().await?;
    let digits: String = info
        .minor
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .with_context(|| format!("unexpected server minor version {:?}", info.minor))
}

/// Print what a failed test left in its namespace, to stderr. Best effort.
pub async fn dump_namespace(client: &Client, ns: &str) {
    eprintln!("===== state of namespace {ns} =====");
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    match pods.list(&ListParams::default()).await {
        Ok(list) => {
            for pod in list {
                let status = pod.status.clone().unwrap_or_default();
                eprintln!(
                    "pod {} phase={} node={} reason={} message={}",
                    pod.name_any(),
                    status.phase.as_deref().unwrap_or("?"),
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .unwrap_or("-"),
                    status.reason.as_deref().unwrap_or("-"),
                    status.message.as_deref().unwrap_or("-"),
                );
                let statuses = status.init_container_statuses.iter().flatten();
                for cs in statuses.chain(status.container_statuses.iter().flatten()) {
                    eprintln!(
                        "  container {} ready={} state={:?}",
                        cs.name, cs.ready, cs.state
                    );
                    match pods::container_log(client, &pod, &cs.name).await {
                        Ok(log) => eprintln!("  --- log of {}:\n{log}", cs.name),
                        Err(err) => eprintln!("  (no log for {}: {err:#})", cs.name),
                    }
                }
            }
        }
        Err(err) => eprintln!("listing pods failed: {err}"),
    }
    match Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await
    {
        Ok(list) => {
            for ev in list {
                eprintln!(
                    "event {} {} {}/{}: {}",
                    ev.type_.as_deref().unwrap_or("?"),
                    ev.reason.as_deref().unwrap_or("?"),
                    ev.involved_object.kind.as_deref().unwrap_or("?"),
                    ev.involved_object.name.as_deref().unwrap_or("?"),
                    ev.message.as_deref().unwrap_or(""),
                );
            }
        }
        Err(err) => eprintln!("listing events failed: {err}"),
    }
    eprintln!("===== end of namespace {ns} =====");
}

/// Random enough for unique names, without a `rand` dependency.
fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}
