//! Smoke test of the e2e cluster itself: every API the Keyward e2e tests
//! rely on works, and a pod really runs. Each test gets its own namespace.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, ensure};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenReview};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use keyward_e2e::{FIELD_MANAGER, cluster, crds, helm::Helm, pods, with_temp_ns};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn widgets(client: Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("e2e.keyward.io", "v1alpha1", "Widget");
    Api::namespaced_with(
        client,
        ns,
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    )
}

fn is_invalid<T>(result: &kube::Result<T>) -> bool {
    matches!(result, Err(kube::Error::Api(status)) if status.code == 422)
}

#[tokio::test]
async fn custom_resource_is_applied_validated_status_patched_and_watched() {
    with_temp_ns(|client, ns| async move {
        let names = crds::apply_crds_from_dir(&client, &fixture("crds")).await?;
        ensure!(
            names == ["widgets.e2e.keyward.io"],
            "applied CRDs {names:?}"
        );

        let api = widgets(client, &ns);
        let apply = PatchParams::apply(FIELD_MANAGER);
        let widget = |size: serde_json::Value| {
            json!({
                "apiVersion": "e2e.keyward.io/v1alpha1", "kind": "Widget",
                "metadata": { "name": "w1" }, "spec": { "size": size },
            })
        };
        let created = api
            .patch("w1", &apply, &Patch::Apply(widget(json!(3))))
            .await?;
        ensure!(
            created.data["spec"]["size"] == 3,
            "spec after apply: {:?}",
            created.data
        );
        let managers: Vec<_> = created
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.as_deref())
            .collect();
        ensure!(
            managers.contains(&FIELD_MANAGER),
            "server-side apply managers: {managers:?}"
        );

        // The structural schema is enforced by the API server. (A wrong type
        // through apply is a 500 on 1.20, so that case goes through create.)
        let mut wrong_type = widget(json!("three"));
        wrong_type["metadata"]["name"] = json!("w-wrong-type");
        let err = api
            .create(&PostParams::default(), &serde_json::from_value(wrong_type)?)
            .await;
        ensure!(
            is_invalid(&err),
            "a string size must be rejected with 422, got {err:?}"
        );
        let err = api
            .patch("w1", &apply, &Patch::Apply(widget(json!(0))))
            .await;
        ensure!(
            is_invalid(&err),
            "size 0 is below the minimum and must be rejected, got {err:?}"
        );

        // Watch from the version we created, then write the status subresource.
        let rv = created.resource_version().context("no resourceVersion")?;
        let mut watch = api
            .watch(&WatchParams::default().timeout(30), &rv)
            .await?
            .boxed();
        let status = json!({
            "apiVersion": "e2e.keyward.io/v1alpha1", "kind": "Widget",
            "status": { "ready": true, "observedGeneration": 1 },
        });
        let patched = api
            .patch_status("w1", &apply.clone().force(), &Patch::Apply(status))
            .await?;
        ensure!(
            patched.data["status"]["ready"] == true,
            "status after patch: {:?}",
            patched.data
        );
        ensure!(
            patched.metadata.generation == created.metadata.generation,
            "status write bumped generation"
        );

        let seen = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(event) = watch.try_next().await? {
                if let WatchEvent::Modified(obj) = event
                    && obj.data["status"]["ready"] == true
                {
                    return Ok::<_, kube::Error>(Some(obj));
                }
            }
            Ok(None)
        })
        .await
        .context("no watch event within 30s")??;
        ensure!(seen.is_some(), "the watch ended without the status change");

        // Status is a subresource: writing it through the main resource is ignored.
        let mut with_status = widget(json!(4));
        with_status["status"] = json!({ "ready": false });
        let updated = api.patch("w1", &apply, &Patch::Apply(with_status)).await?;
        ensure!(
            updated.data["spec"]["size"] == 4,
            "spec not updated: {:?}",
            updated.data
        );
        ensure!(
            updated.data["status"]["ready"] == true,
            "main resource wrote status: {:?}",
            updated.data
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn pod_bound_token_is_reviewed_with_pod_name_and_uid() {
    with_temp_ns(|client, ns| async move {
        // A pod that is never scheduled (its node does not exist) is enough to bind to.
        let pods_api = Api::<Pod>::namespaced(client.clone(), &ns);
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "token-holder" },
            "spec": {
                "nodeName": "keyward-e2e-no-such-node",
                "containers": [{ "name": "app", "image": cluster::busybox_image().0 }],
            },
        }))?;
        let pod = pods_api.create(&PostParams::default(), &pod).await?;
        let uid = pod.uid().context("pod without uid")?;

        let request: TokenRequest = serde_json::from_value(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {
                "audiences": ["keyward"],
                "expirationSeconds": 600,
                "boundObjectRef": { "apiVersion": "v1", "kind": "Pod", "name": "token-holder", "uid": uid },
            },
        }))?;
        let sas = Api::<ServiceAccount>::namespaced(client.clone(), &ns);
        let issued: TokenRequest = sas
            .create_subresource("token", "default", &PostParams::default(), &request)
            .await?;
        let token = issued.status.context("TokenRequest without status")?.token;

        let review = |audience: &str| {
            serde_json::from_value::<TokenReview>(json!({
                "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                "spec": { "token": token, "audiences": [audience] },
            }))
        };
        let reviews = Api::<TokenReview>::all(client.clone());
        let ok = reviews.create(&PostParams::default(), &review("keyward")?).await?;
        let status = ok.status.context("TokenReview without status")?;
        ensure!(status.authenticated == Some(true), "token not authenticated: {status:?}");
        let user = status.user.context("no user in review")?;
        ensure!(
            user.username.as_deref() == Some(&format!("system:serviceaccount:{ns}:default")),
            "username {:?}",
            user.username
        );
        let extra = user.extra.unwrap_or_default();
        ensure!(
            extra.get("authentication.kubernetes.io/pod-name") == Some(&vec!["token-holder".to_owned()]),
            "pod-name in extra: {extra:?}"
        );
        ensure!(
            extra.get("authentication.kubernetes.io/pod-uid") == Some(&vec![uid.clone()]),
            "pod-uid in extra: {extra:?}"
        );

        let other = reviews.create(&PostParams::default(), &review("someone-else")?).await?;
        let other = other.status.context("TokenReview without status")?;
        ensure!(other.authenticated != Some(true), "a token for `keyward` passed another audience");

        // Bound to the pod: once the pod is gone, so is the token.
        pods_api.delete("token-holder", &DeleteParams { grace_period_seconds: Some(0), ..DeleteParams::default() }).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while pods_api.get_opt("token-holder").await?.is_some() {
            ensure!(tokio::time::Instant::now() < deadline, "pod token-holder not deleted in 30s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The API server caches successful authentications for 10s.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let after = reviews.create(&PostParams::default(), &review("keyward")?).await?;
            if after.status.and_then(|s| s.authenticated) != Some(true) {
                return Ok(());
            }
            ensure!(tokio::time::Instant::now() < deadline, "token still valid 30s after its pod was deleted");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn helm_installs_upgrades_and_uninstalls_a_chart() {
    with_temp_ns(|client, ns| async move {
        let helm = Helm::from_env()?;
        let chart = fixture("charts/smoke");
        helm.lint(&chart).await?;

        let cms = Api::<ConfigMap>::namespaced(client, &ns);
        let greeting = |cm: ConfigMap| cm.data.and_then(|d| d.get("greeting").cloned());

        helm.install("smoke", &chart, &ns, &json!({ "greeting": "hello" }))
            .await?;
        let cm = cms
            .get("smoke-greeting")
            .await
            .context("chart's ConfigMap after install")?;
        ensure!(
            greeting(cm).as_deref() == Some("hello"),
            "greeting after install"
        );

        helm.upgrade("smoke", &chart, &ns, &json!({ "greeting": "bonjour" }))
            .await?;
        let cm = cms.get("smoke-greeting").await?;
        ensure!(
            greeting(cm).as_deref() == Some("bonjour"),
            "greeting after upgrade"
        );

        helm.uninstall("smoke", &ns).await?;
        ensure!(
            cms.get_opt("smoke-greeting").await?.is_none(),
            "ConfigMap left after uninstall"
        );
        ensure!(
            helm.status("smoke", &ns).await.is_err(),
            "release still known after uninstall"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn pod_init_container_writes_memory_volume_that_app_reads() {
    with_temp_ns(|client, ns| async move {
        let (image, pull) = cluster::busybox_image();
        let restricted = json!({
            "runAsUser": 1000, "runAsGroup": 1000, "runAsNonRoot": true,
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": { "drop": ["ALL"] },
        });
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "memory-volume" },
            "spec": {
                "hostNetwork": true,
                "restartPolicy": "Never",
                "volumes": [
                    { "name": "secrets", "emptyDir": { "medium": "Memory" } },
                    { "name": "identity", "projected": { "sources": [{ "serviceAccountToken": {
                        "audience": "keyward", "expirationSeconds": 600, "path": "token" } }] } },
                ],
                "initContainers": [{
                    "name": "writer", "image": image, "imagePullPolicy": pull,
                    "command": ["/bin/sh", "-c",
                        "id -u > /keyward/secrets/writer-uid && wc -c < /var/run/keyward/token > /keyward/secrets/token-bytes && echo s3cr3t-value > /keyward/secrets/greeting && chmod 0400 /keyward/secrets/greeting"],
                    "securityContext": restricted,
                    "volumeMounts": [
                        { "name": "secrets", "mountPath": "/keyward/secrets" },
                        { "name": "identity", "mountPath": "/var/run/keyward", "readOnly": true },
                    ],
                }],
                "containers": [{
                    "name": "app", "image": image, "imagePullPolicy": pull,
                    "command": ["/bin/sh", "-c",
                        "echo \"greeting=$(cat /keyward/secrets/greeting)\"; echo \"writer-uid=$(cat /keyward/secrets/writer-uid)\"; echo \"token-bytes=$(cat /keyward/secrets/token-bytes)\"; echo \"mode=$(stat -c %a /keyward/secrets/greeting)\"; grep ' /keyward/secrets ' /proc/mounts"],
                    "securityContext": restricted,
                    "volumeMounts": [{ "name": "secrets", "mountPath": "/keyward/secrets", "readOnly": true }],
                }],
            },
        }))?;
        let pods_api = Api::<Pod>::namespaced(client.clone(), &ns);
        pods_api.create(&PostParams::default(), &pod).await?;

        let pod = pods::wait_for_completion(&pods_api, "memory-volume", Duration::from_secs(120)).await?;
        ensure!(pods::phase(&pod) == "Succeeded", "pod ended {}", pods::phase(&pod));

        let log = pods::container_log(&client, &pod, "app").await?;
        let lines: Vec<&str> = log.lines().collect();
        ensure!(lines.contains(&"greeting=s3cr3t-value"), "app did not read the file: {log}");
        ensure!(lines.contains(&"writer-uid=1000"), "init container was not uid 1000: {log}");
        ensure!(lines.contains(&"mode=400"), "file mode not 0400: {log}");
        // The init container could read its projected `keyward` token (a JWT, hundreds of bytes).
        let token_bytes = lines
            .iter()
            .find_map(|l| l.strip_prefix("token-bytes="))
            .and_then(|n| n.trim().parse::<usize>().ok());
        ensure!(token_bytes.is_some_and(|n| n > 100), "no projected token read: {log}");
        ensure!(
            lines.iter().any(|l| l.starts_with("tmpfs /keyward/secrets tmpfs ro,")),
            "volume is not a read-only tmpfs in the app: {log}"
        );
        Ok(())
    })
    .await;
}
