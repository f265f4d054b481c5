//! The Helm chart (`charts/keyward`) against the real API server: lint,
//! install, upgrade and uninstall through Helm 4 (helm-sdkpy), the objects
//! it creates, its RBAC checked with SubjectAccessReviews, and its values
//! schema refusing bad values. The chart's pods do not start here (the image
//! tag does not exist); `chart_on_node.rs` runs them from the project's
//! binaries.
//!
//! The webhook configurations are cluster-wide: the release namespace is
//! labelled `keyward.io/ignore=true` (which both webhooks skip), the
//! mutating one sees only pods labelled `keyward.io/injection=enabled`, and
//! nothing else is created while the release is installed. Test binaries run one
//! after another, so other binaries never see these configurations.

mod chart_support;

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use chart_support::*;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::api::storage::v1::CSIDriver;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use keyward_e2e::{helm::Helm, with_temp_ns};
use kube::api::{DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use serde_json::json;

#[test]
fn chart_crds_are_the_generated_ones() {
    let generated = keyward_e2e::crds::keyward_crds_dir();
    let in_chart = chart().join("crds");
    let list = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        names
    };
    let names = list(&generated);
    assert_eq!(
        names,
        list(&in_chart),
        "charts/keyward/crds/ must hold exactly the files of crds/generated/"
    );
    for name in names {
        let a = std::fs::read(generated.join(&name)).expect("generated CRD");
        let b = std::fs::read(in_chart.join(&name)).expect("chart CRD");
        assert!(
            a == b,
            "charts/keyward/crds/{name} differs from crds/generated/{name}; \
             run: cp crds/generated/*.yaml charts/keyward/crds/"
        );
    }
}

#[tokio::test]
async fn chart_lints() {
    let helm = Helm::from_env().expect("helm");
    let report = helm
        .lint(&chart())
        .await
        .expect("helm lint of charts/keyward");
    // Helm's severities: 1 info, 2 warning, 3 error. helm-sdkpy passes the
    // path of each message but not its text.
    let messages = report["Messages"].as_array().cloned().unwrap_or_default();
    let serious: Vec<_> = messages
        .iter()
        .filter(|m| m["Severity"].as_u64().unwrap_or(3) >= 2)
        .collect();
    assert!(
        serious.is_empty(),
        "helm lint warnings or errors: {serious:?}"
    );
}

#[tokio::test]
async fn values_schema_rejects_bad_values_with_a_clear_message() {
    with_temp_ns(|_client, ns| async move {
        let helm = Helm::from_env()?;
        let cases = [
            (json!({ "webhook": { "replicas": "two" } }), "replicas"),
            (json!({ "providers": { "vault": { "enabled": true } } }), "vault"),
            (json!({ "operator": { "replicas": 1.5 } }), "replicas"),
            (
                json!({ "webhook": { "admission": { "mutating": { "failurePolicy": "Sometimes" } } } }),
                "failurePolicy",
            ),
            (json!({ "webhook": { "tls": { "mode": "letsencrypt" } } }), "mode"),
            (json!({ "webhook": { "defaultDelivery": "volume" } }), "defaultDelivery"),
        ];
        for (overlay, field) in cases {
            let shown = overlay.to_string();
            let err = match helm.install(RELEASE, &chart(), &ns, &values(overlay)).await {
                Ok(_) => bail!("helm install accepted bad values {shown}"),
                Err(err) => format!("{err:#}"),
            };
            ensure!(
                err.contains("schema") && err.contains(field),
                "the error for {shown} should name the schema and `{field}`: {err}"
            );
            println!("REJECTED {shown}: {}", err.lines().last().unwrap_or(&err));
        }
        // Valid on its own, wrong together: the template says what to set.
        let overlay = json!({ "webhook": { "defaultDelivery": "csi" } });
        let err = match helm.install(RELEASE, &chart(), &ns, &values(overlay)).await {
            Ok(_) => bail!("helm install accepted defaultDelivery csi without the CSI driver"),
            Err(err) => format!("{err:#}"),
        };
        ensure!(
            err.contains("csi.enabled: true"),
            "the error should say to enable the CSI driver: {err}"
        );
        println!("REJECTED defaultDelivery csi without csi.enabled: {}", err.lines().last().unwrap_or(&err));
        ensure!(
            helm.status(RELEASE, &ns).await.is_err(),
            "a release exists after only rejected installs"
        );
        Ok(())
    })
    .await;
}

/// providers.azure in both identity modes and providers.gcp.keyRing, as
/// the API server stores them, and the refusals of incomplete values.
#[tokio::test]
async fn azure_and_gcp_provider_values() {
    with_temp_ns(|client, ns| async move {
        ignore_namespace(&client, &ns).await?;
        let names = Names::new(&ns);
        let result = provider_values::check(&client, &ns, &names).await;
        remove_cluster_scoped(&client, &names).await;
        result
    })
    .await;
}

#[tokio::test]
async fn chart_leaves_a_webhook_tls_secret_it_did_not_create() {
    with_temp_ns(|client, ns| async move {
        ignore_namespace(&client, &ns).await?;
        let names = Names::new(&ns);
        let result =
            webhook_tls::check_foreign_secret_left_alone(&client, &ns, &names, &Helm::from_env()?)
                .await;
        remove_cluster_scoped(&client, &names).await;
        result
    })
    .await;
}

#[tokio::test]
async fn chart_installs_upgrades_and_uninstalls() {
    with_temp_ns(|client, ns| async move {
        // On 1.20 namespaces carry no kubernetes.io/metadata.name label: the
        // chart's NOTES tell users to label the release namespace instead.
        ignore_namespace(&client, &ns).await?;
        let names = Names::new(&ns);
        let result = lifecycle(&client, &ns, &names).await;
        // Cluster-scoped objects outlive the namespace: never leave the
        // webhook configurations behind for the next test binary.
        remove_cluster_scoped(&client, &names).await;
        result
    })
    .await;
}

async fn lifecycle(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let helm = Helm::from_env()?;

    let started = Instant::now();
    helm.install(RELEASE, &chart(), ns, &base_values())
        .await
        .context("helm install with default values")?;
    println!(
        "MEASURE helm install (defaults): {} ms",
        started.elapsed().as_millis()
    );

    check_crds(client).await?;
    check_workloads(client, ns, names).await?;
    check_webhook_configurations(client, ns, names).await?;
    check_rbac(client, ns, names).await?;
    webhook_tls::check_created_empty(client, ns, names).await?;
    webhook_tls::check_webhook_creates_no_secret(ns, names).await?;
    let webhook_ca = webhook_tls::fill_as_two_replicas(ns, names).await?;

    // A key and a sealed secret that must survive the uninstall.
    let keys = keyward_api(client, ns, "ManagedKey", "managedkeys");
    keys.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": { "name": "app" },
            "spec": { "provider": { "local": {} } },
        }))?,
    )
    .await
    .context("ManagedKey with the chart's CRDs")?;

    // Every provider's settings, and changed webhook values.
    let upgraded = values(json!({
            "operator": { "replicas": 2, "maxConcurrentReconciles": 4, "keyringCacheSeconds": 0 },
            "webhook": { "replicas": 3, "podAntiAffinity": "hard", "keyringCacheSeconds": 60 },
            "providers": {
                "aws": {
                    "enabled": true, "region": "eu-west-1",
                    "operatorRoleArn": "arn:aws:iam::123456789012:role/keyward-admin",
                    "webhookRoleArn": "arn:aws:iam::123456789012:role/keyward-unseal",
                },
                "gcp": {
                    "enabled": true,
                    "keyRing": "projects/demo/locations/europe-west1/keyRings/keyward",
                    "operatorServiceAccount": "keyward-admin@demo.iam.gserviceaccount.com",
                    "webhookServiceAccount": "keyward-unseal@demo.iam.gserviceaccount.com",
                },
                "pkcs11": {
                    "enabled": true, "tokenLabel": "keyward",
                    "moduleVolume": { "hostPath": { "path": "/usr/lib/softhsm", "type": "Directory" } },
                },
            },
            "networkPolicy": { "restrictEgress": true },
            "csi": { "enabled": true },
    }));
    let started = Instant::now();
    helm.upgrade(RELEASE, &chart(), ns, &upgraded)
        .await
        .context("helm upgrade with every provider")?;
    println!(
        "MEASURE helm upgrade (providers): {} ms",
        started.elapsed().as_millis()
    );
    check_providers(client, ns, names).await?;
    check_tuning(client, ns, names).await?;
    check_csi(client, ns, names).await?;
    // Helm's three-way merge leaves alone what the webhook wrote: the
    // chart's manifest has no `data`.
    let tls_secret = webhook_tls::tls_secret(names);
    ensure!(
        webhook_tls::stored_ca(client, ns, &tls_secret).await? == webhook_ca,
        "helm upgrade changed the webhook's CA in {tls_secret}"
    );
    webhook_tls::check_missing_secret_error(client, ns, names).await?;
    helm.upgrade(RELEASE, &chart(), ns, &upgraded)
        .await
        .context("helm upgrade restoring the TLS Secret")?;
    webhook_tls::check_created_empty(client, ns, names)
        .await
        .context("after helm upgrade restored it")?;
    // Three webhook replicas now: the PodDisruptionBudget stays.
    let pdb = webhook_pdb(client, ns, names)
        .await?
        .context("webhook PodDisruptionBudget with 3 replicas")?;
    ensure!(
        pdb.data.pointer("/spec/minAvailable") == Some(&json!(1)),
        "PDB minAvailable: {:?}",
        pdb.data.pointer("/spec")
    );

    if keyward_e2e::cluster::is_local() {
        optional_objects(client, ns, names, &helm).await?;
    } else {
        println!(
            "cert-manager/Prometheus objects not checked: needs the local cluster's stand-in CRDs"
        );
    }

    let started = Instant::now();
    helm.uninstall(RELEASE, ns).await?;
    ensure!(
        Api::<CSIDriver>::all(client.clone())
            .get_opt("csi.keyward.io")
            .await?
            .is_none(),
        "the CSIDriver outlived helm uninstall"
    );
    println!(
        "MEASURE helm uninstall: {} ms",
        started.elapsed().as_millis()
    );
    ensure!(
        helm.status(RELEASE, ns).await.is_err(),
        "release still known after uninstall"
    );
    ensure!(
        Api::<Deployment>::namespaced(client.clone(), ns)
            .get_opt(&names.webhook)
            .await?
            .is_none(),
        "webhook Deployment left after uninstall"
    );
    ensure!(
        Api::<MutatingWebhookConfiguration>::all(client.clone())
            .get_opt(&names.mutating())
            .await?
            .is_none(),
        "MutatingWebhookConfiguration left after uninstall"
    );
    check_crds(client).await.context("CRDs after uninstall")?;
    ensure!(
        keys.get_opt("app").await?.is_some(),
        "ManagedKey lost on uninstall"
    );
    Ok(())
}

/// `csi.enabled`: the CSIDriver as the kubelet needs it (the API server
/// keeps tokenRequests and requiresRepublish only with the
/// CSIServiceAccountToken gate, on in `e2e/cluster/up`), and a DaemonSet
/// whose plugin can mount for the kubelet and sees only the webhook's CA.
async fn check_csi(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let driver = Api::<CSIDriver>::all(client.clone())
        .get("csi.keyward.io")
        .await
        .context("CSIDriver csi.keyward.io")?;
    let spec = driver.spec;
    let audiences: Vec<String> = spec
        .token_requests
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.audience)
        .collect();
    ensure!(
        spec.attach_required == Some(false)
            && spec.pod_info_on_mount == Some(true)
            && spec.volume_lifecycle_modes.as_deref() == Some(&["Ephemeral".to_owned()])
            && audiences == ["keyward"]
            && spec.requires_republish == Some(true),
        "CSIDriver spec: attach {:?}, pod info {:?}, modes {:?}, audiences {audiences:?}, republish {:?}",
        spec.attach_required,
        spec.pod_info_on_mount,
        spec.volume_lifecycle_modes,
        spec.requires_republish
    );
    let sets = Api::<DaemonSet>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/component=csi"))
        .await?;
    let [set] = sets.items.as_slice() else {
        bail!("{} CSI DaemonSets", sets.items.len());
    };
    let pod = set
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .context("DaemonSet pod spec")?;
    let container = &pod.containers[0];
    let propagation: Vec<_> = container
        .volume_mounts
        .iter()
        .flatten()
        .filter_map(|m| m.mount_propagation.clone())
        .collect();
    let ca_items: Vec<String> = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref())
        .flat_map(|s| s.items.iter().flatten().map(|i| i.key.clone()))
        .collect();
    ensure!(
        container.command.as_deref() == Some(&["/keyward-csi".to_owned()])
            && container
                .security_context
                .as_ref()
                .and_then(|s| s.privileged)
                == Some(true)
            && propagation == ["Bidirectional"]
            && ca_items == ["ca.crt"]
            && pod.automount_service_account_token == Some(true),
        "CSI DaemonSet: {pod:?}"
    );
    // Its only Kubernetes right: posting the refresh Events.
    let role = Api::<ClusterRole>::all(client.clone())
        .get(&format!("{}-csi", names.cluster))
        .await
        .context("the CSI plugin's ClusterRole")?;
    let rules: Vec<String> = role
        .rules
        .iter()
        .flatten()
        .map(|r| format!("{:?} {:?} {:?}", r.api_groups, r.resources, r.verbs))
        .collect();
    ensure!(
        rules == [r#"Some(["events.k8s.io"]) Some(["events"]) ["create", "patch"]"#],
        "CSI ClusterRole rules: {rules:?}"
    );
    // Nothing reaches the plugin's pod but a metrics scrape.
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get(&names.csi)
        .await
        .context("the CSI plugin's NetworkPolicy")?;
    let ports: Vec<_> = policy
        .spec
        .and_then(|s| s.ingress)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|r| r.ports.unwrap_or_default())
        .filter_map(|p| p.port)
        .collect();
    ensure!(
        ports == [k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(9466)],
        "CSI NetworkPolicy ingress ports {ports:?}"
    );
    Ok(())
}

async fn check_crds(client: &Client) -> Result<()> {
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for name in CRDS {
        let crd = api.get(name).await.with_context(|| format!("CRD {name}"))?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        ensure!(established, "CRD {name} is not Established");
    }
    Ok(())
}

async fn check_workloads(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    for (name, replicas) in [(&names.operator, 1), (&names.webhook, 2)] {
        let d = deployments
            .get(name)
            .await
            .with_context(|| format!("Deployment {name}"))?;
        let spec = d.spec.context("spec")?;
        ensure!(
            spec.replicas == Some(replicas),
            "{name}: replicas {:?}",
            spec.replicas
        );
        let pod = spec.template.spec.context("pod spec")?;
        let psc = pod.security_context.context("pod securityContext")?;
        ensure!(psc.run_as_non_root == Some(true), "{name}: runAsNonRoot");
        ensure!(
            psc.seccomp_profile.map(|s| s.type_).as_deref() == Some("RuntimeDefault"),
            "{name}: seccomp RuntimeDefault"
        );
        for c in &pod.containers {
            let sc = c
                .security_context
                .clone()
                .context("container securityContext")?;
            ensure!(
                sc.read_only_root_filesystem == Some(true),
                "{name}: read-only root fs"
            );
            ensure!(
                sc.allow_privilege_escalation == Some(false),
                "{name}: privilege escalation"
            );
            let drop = sc.capabilities.and_then(|c| c.drop).unwrap_or_default();
            ensure!(drop == ["ALL"], "{name}: capabilities drop {drop:?}");
        }
        ensure!(
            pod.service_account_name.as_deref() == Some(name.as_str()),
            "{name}: runs as its own ServiceAccount"
        );
    }
    let webhook = deployments.get(&names.webhook).await?;
    let anti = webhook
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.affinity)
        .and_then(|a| a.pod_anti_affinity);
    ensure!(anti.is_some(), "webhook without pod anti-affinity");
    // The audit emptyDirs are bounded by the rotation settings: (4 kept + 2)
    // x 16 MiB, so a full log rotates long before the kubelet evicts.
    for name in [&names.operator, &names.webhook] {
        let pod = deployments
            .get(name)
            .await?
            .spec
            .and_then(|s| s.template.spec)
            .context("pod spec")?;
        let limit = pod
            .volumes
            .unwrap_or_default()
            .into_iter()
            .find(|v| v.name == "audit")
            .and_then(|v| v.empty_dir)
            .and_then(|e| e.size_limit)
            .map(|q| q.0);
        ensure!(
            limit.as_deref() == Some("100663296"),
            "{name}: audit emptyDir sizeLimit {limit:?}"
        );
        let env: Vec<(String, Option<String>)> = pod
            .containers
            .first()
            .and_then(|c| c.env.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        for (key, value) in [
            ("KEYWARD_AUDIT_MAX_BYTES", "16777216"),
            ("KEYWARD_AUDIT_KEEP_SEGMENTS", "4"),
            ("KEYWARD_AUDIT_STDOUT", "true"),
        ] {
            ensure!(
                env.iter()
                    .any(|(n, v)| n == key && v.as_deref() == Some(value)),
                "{name}: env lacks {key}={value}: {env:?}"
            );
        }
    }

    for sa in [&names.operator, &names.webhook] {
        Api::<ServiceAccount>::namespaced(client.clone(), ns)
            .get(sa)
            .await
            .with_context(|| format!("ServiceAccount {sa}"))?;
    }
    let service = Api::<Service>::namespaced(client.clone(), ns)
        .get(&names.webhook)
        .await
        .context("webhook Service")?;
    // HTTPS admission for the API server, HTTPS tenant API for injectors,
    // plain-HTTP /metrics for the ServiceMonitor (--metrics-listen).
    let ports: Vec<String> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.name)
        .collect();
    ensure!(
        ports == ["https", "api", "metrics"],
        "webhook Service ports {ports:?}"
    );
    for np in [&names.operator, &names.webhook] {
        Api::<NetworkPolicy>::namespaced(client.clone(), ns)
            .get(np)
            .await
            .with_context(|| format!("NetworkPolicy {np}"))?;
    }
    // Tenants' pods may reach the unseal port only: the admission port
    // admits addresses (the API server), never a pod or namespace selector.
    let policy = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .get(&names.webhook)
        .await?;
    let rules = policy.spec.and_then(|s| s.ingress).unwrap_or_default();
    let rule_for = |port: i32| {
        rules.iter().find(|rule| {
            rule.ports.iter().flatten().any(|p| {
                p.port == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port))
            })
        })
    };
    let admission = rule_for(8443).context("no ingress rule for the admission port")?;
    let peers = admission.from.clone().unwrap_or_default();
    ensure!(
        !peers.is_empty()
            && peers.iter().all(|peer| peer.ip_block.is_some()
                && peer.pod_selector.is_none()
                && peer.namespace_selector.is_none()),
        "the admission port admits {peers:?}"
    );
    ensure!(
        rule_for(8444).is_some(),
        "no ingress rule for the unseal port"
    );
    ensure!(
        webhook_pdb(client, ns, names).await?.is_some(),
        "no PodDisruptionBudget for the two default webhook replicas"
    );
    // Self-bootstrapped TLS shared by the replicas through one Secret; the
    // webhook patches caBundle into exactly its own two configurations.
    let args = deployments
        .get(&names.webhook)
        .await?
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.first().and_then(|c| c.args.clone()))
        .unwrap_or_default();
    for want in [
        format!("--mutating-webhook-config={}", names.mutating()),
        format!("--validating-webhook-config={}", names.validating()),
        format!("--tls-san={}.{ns}.svc", names.webhook),
        format!("--tls-secret={}-tls", names.webhook),
    ] {
        ensure!(args.contains(&want), "webhook args {args:?} lack {want}");
    }
    // Injectors are sent to the tenant API listener, not to admission.
    let env = deployments
        .get(&names.webhook)
        .await?
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.first().and_then(|c| c.env.clone()))
        .unwrap_or_default();
    let value = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value.clone())
            .unwrap_or_default()
    };
    ensure!(
        value("KEYWARD_UNSEAL_URL") == format!("https://{}.{ns}.svc:8444/v1/unseal", names.webhook)
            && value("KEYWARD_ADMISSION_LISTEN") == "0.0.0.0:8443"
            && value("KEYWARD_API_LISTEN") == "0.0.0.0:8444",
        "webhook env {env:?}"
    );
    Ok(())
}

/// cert-manager TLS, ServiceMonitor, PrometheusRule and the Grafana
/// dashboard, against stand-in CRDs (`fixtures/chart-stub-crds`) that accept
/// any content: this shows the templates render and the objects are
/// accepted, not that cert-manager or Prometheus would like them.
async fn optional_objects(client: &Client, ns: &str, names: &Names, helm: &Helm) -> Result<()> {
    let stubs = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/chart-stub-crds");
    keyward_e2e::crds::apply_crds_from_dir(client, &stubs).await?;
    helm.upgrade(
        RELEASE,
        &chart(),
        ns,
        &values(json!({
            "webhook": { "replicas": 1, "tls": { "mode": "certManager" } },
            "metrics": {
                "serviceMonitor": { "enabled": true },
                "prometheusRule": { "enabled": true },
                "grafanaDashboard": { "enabled": true },
            },
        })),
    )
    .await
    .context("helm upgrade with cert-manager TLS and monitoring")?;
    ensure!(
        webhook_pdb(client, ns, names).await?.is_none(),
        "a PodDisruptionBudget for a single webhook replica would block drains"
    );

    let dynamic = |group: &str, kind: &str, plural: &str| -> Api<DynamicObject> {
        let gvk = GroupVersionKind::gvk(group, "v1", kind);
        Api::namespaced_with(
            client.clone(),
            ns,
            &ApiResource::from_gvk_with_plural(&gvk, plural),
        )
    };
    let cert = dynamic("cert-manager.io", "Certificate", "certificates")
        .get(&names.webhook)
        .await
        .context("webhook Certificate")?;
    let dns = cert
        .data
        .pointer("/spec/dnsNames")
        .cloned()
        .unwrap_or_default();
    ensure!(
        dns.to_string()
            .contains(&format!("{}.{ns}.svc", names.webhook)),
        "Certificate dnsNames {dns}"
    );
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(&names.mutating())
        .await?;
    let inject = mutating
        .metadata
        .annotations
        .unwrap_or_default()
        .get("cert-manager.io/inject-ca-from")
        .cloned();
    ensure!(
        inject == Some(format!("{ns}/{}", names.webhook)),
        "cainjector annotation {inject:?}"
    );
    let rule = dynamic("monitoring.coreos.com", "PrometheusRule", "prometheusrules")
        .get(&format!("{RELEASE}-keyward"))
        .await
        .context("PrometheusRule")?;
    chart_support::alerts::evaluate(&rule, ns).await?;
    dynamic("monitoring.coreos.com", "ServiceMonitor", "servicemonitors")
        .get(&format!("{RELEASE}-keyward"))
        .await
        .context("ServiceMonitor")?;
    let dashboard = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(&format!("{RELEASE}-keyward-dashboard"))
        .await
        .context("Grafana dashboard ConfigMap")?;
    let json_text = dashboard
        .data
        .and_then(|d| d.get("keyward.json").cloned())
        .unwrap_or_default();
    let parsed: serde_json::Value =
        serde_json::from_str(&json_text).context("dashboard JSON does not parse")?;
    ensure!(parsed["uid"] == "keyward", "dashboard uid");
    Ok(())
}

/// policy/v1beta1 on 1.20, policy/v1 from 1.21: look it up either way.
async fn webhook_pdb(client: &Client, ns: &str, names: &Names) -> Result<Option<DynamicObject>> {
    for version in ["v1", "v1beta1"] {
        let gvk = GroupVersionKind::gvk("policy", version, "PodDisruptionBudget");
        let api: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            ns,
            &ApiResource::from_gvk_with_plural(&gvk, "poddisruptionbudgets"),
        );
        if let Ok(Some(found)) = api.get_opt(&names.webhook).await {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

fn excludes(selector: &Option<LabelSelector>, ns: &str) -> bool {
    let exprs = selector
        .as_ref()
        .and_then(|s| s.match_expressions.clone())
        .unwrap_or_default();
    let by_name = exprs.iter().any(|e| {
        e.key == "kubernetes.io/metadata.name"
            && e.operator == "NotIn"
            && e.values
                .as_ref()
                .is_some_and(|v| v.iter().any(|n| n == ns) && v.iter().any(|n| n == "kube-system"))
    });
    let by_label = exprs.iter().any(|e| {
        e.key == "keyward.io/ignore"
            && e.operator == "NotIn"
            && e.values.as_deref() == Some(&["true".to_owned()])
    });
    by_name && by_label
}

async fn check_webhook_configurations(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let mutating = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .get(&names.mutating())
        .await
        .context("MutatingWebhookConfiguration")?;
    let hooks = mutating.webhooks.unwrap_or_default();
    ensure!(hooks.len() == 5, "{} mutating webhooks", hooks.len());
    // Two-person destruction's stamp: every ManagedKey write, no object
    // selector, so a request cannot be written unstamped.
    let stamp = &hooks[4];
    let stamp_rules = stamp.rules.clone().unwrap_or_default();
    ensure!(
        stamp.name == "destruction-stamp.keyward.io"
            && stamp_rules.len() == 1
            && stamp_rules[0].resources.as_deref() == Some(&["managedkeys".to_owned()])
            && stamp.failure_policy.as_deref() == Some("Fail")
            && excludes(&stamp.namespace_selector, ns)
            && stamp
                .client_config
                .service
                .as_ref()
                .and_then(|s| s.path.as_deref())
                == Some("/stamp"),
        "stamp webhook: {stamp:?}"
    );
    // Keyward's question kinds: every namespace that gets injection, any
    // object (the CLI labels nothing), Fail so an unanswered one is not
    // taken for an answer.
    for (hook, name, resource, path) in [
        (
            &hooks[1],
            "data-keys.keyward.io",
            "datakeyrequests",
            "/datakey",
        ),
        (
            &hooks[2],
            "signatures.keyward.io",
            "signaturerequests",
            "/sign",
        ),
        (
            &hooks[3],
            "reviews.keyward.io",
            "sealedsecretreviews",
            "/review",
        ),
    ] {
        let rules = hook.rules.clone().unwrap_or_default();
        let called = hook
            .client_config
            .service
            .as_ref()
            .and_then(|s| s.path.clone());
        ensure!(
            hook.name == name
                && rules.len() == 1
                && rules[0].resources.as_deref() == Some(&[resource.to_owned()])
                && rules[0].operations.as_deref() == Some(&["CREATE".to_owned()])
                && hook.failure_policy.as_deref() == Some("Fail")
                // The API server defaults it to the empty selector.
                && hook.object_selector.as_ref().is_none_or(|s| {
                    s.match_labels.is_none() && s.match_expressions.is_none()
                })
                && excludes(&hook.namespace_selector, ns)
                && called.as_deref() == Some(path),
            "question webhook {name}: {hook:?}"
        );
    }
    let m = &hooks[0];
    ensure!(
        excludes(&m.namespace_selector, ns),
        "mutating namespaceSelector does not exclude {ns} and kube-system: {:?}",
        m.namespace_selector
    );
    // Only opted-in pods, under a name that says what is unavailable.
    ensure!(
        m.name == "secret-injection.keyward.io",
        "mutating webhook name {}",
        m.name
    );
    let opt_in = m
        .object_selector
        .as_ref()
        .and_then(|s| s.match_labels.clone());
    ensure!(
        opt_in == Some([("keyward.io/injection".to_owned(), "enabled".to_owned())].into())
            && m.object_selector
                .as_ref()
                .is_some_and(|s| s.match_expressions.is_none()),
        "mutating objectSelector is not the opt-in label: {:?}",
        m.object_selector
    );
    ensure!(m.failure_policy.as_deref() == Some("Fail"), "failurePolicy");
    ensure!(m.timeout_seconds == Some(10), "timeoutSeconds");
    ensure!(
        m.reinvocation_policy.as_deref() == Some("IfNeeded"),
        "reinvocationPolicy"
    );
    ensure!(m.side_effects == "None", "sideEffects");
    let service = m
        .client_config
        .service
        .as_ref()
        .context("service clientConfig")?;
    ensure!(
        service.namespace == ns && service.name == names.webhook,
        "mutating webhook calls {service:?}"
    );
    ensure!(service.path.as_deref() == Some("/mutate"), "mutate path");

    let validating = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .get(&names.validating())
        .await
        .context("ValidatingWebhookConfiguration")?;
    let hooks = validating.webhooks.unwrap_or_default();
    ensure!(hooks.len() == 1, "{} validating webhooks", hooks.len());
    let v = &hooks[0];
    ensure!(
        excludes(&v.namespace_selector, ns),
        "validating namespaceSelector does not exclude {ns}: {:?}",
        v.namespace_selector
    );
    ensure!(v.side_effects == "None", "sideEffects");
    ensure!(v.failure_policy.as_deref() == Some("Fail"), "failurePolicy");
    let rules = v.rules.clone().unwrap_or_default();
    ensure!(
        rules.iter().any(|r| r
            .resources
            .as_ref()
            .is_some_and(|res| res.iter().any(|x| x == "managedkeys"))),
        "validating rules: {rules:?}"
    );
    ensure!(
        rules
            .iter()
            .any(|r| r.operations.as_deref() == Some(&["DELETE".to_owned()])
                && r.resources.as_deref() == Some(&["managedkeys".to_owned()])),
        "deleting a ManagedKey is not validated (two-person destruction): {rules:?}"
    );
    Ok(())
}

struct Check<'a> {
    verb: &'a str,
    group: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

fn check<'a>(verb: &'a str, group: &'a str, resource: &'a str) -> Check<'a> {
    Check {
        verb,
        group,
        resource,
        subresource: None,
        namespace: None,
        name: None,
    }
}

impl<'a> Check<'a> {
    fn ns(mut self, ns: &'a str) -> Self {
        self.namespace = Some(ns);
        self
    }
    fn named(mut self, name: &'a str) -> Self {
        self.name = Some(name);
        self
    }
    fn sub(mut self, sub: &'a str) -> Self {
        self.subresource = Some(sub);
        self
    }
}

/// Ask the API server whether ServiceAccount `ns/sa` may do `c`.
async fn allowed(client: &Client, ns: &str, sa: &str, c: &Check<'_>) -> Result<bool> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{sa}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(c.verb.into()),
                group: Some(c.group.into()),
                resource: Some(c.resource.into()),
                subresource: c.subresource.map(Into::into),
                namespace: c.namespace.map(Into::into),
                name: c.name.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

async fn check_rbac(client: &Client, ns: &str, names: &Names) -> Result<()> {
    for name in [
        format!("{}-operator", names.cluster),
        format!("{}-webhook", names.cluster),
    ] {
        Api::<ClusterRole>::all(client.clone())
            .get(&name)
            .await
            .with_context(|| format!("ClusterRole {name}"))?;
        Api::<ClusterRoleBinding>::all(client.clone())
            .get(&name)
            .await
            .with_context(|| format!("ClusterRoleBinding {name}"))?;
    }
    for name in [
        format!("{}-keyring", names.operator),
        format!("{}-secrets", names.webhook),
    ] {
        Api::<Role>::namespaced(client.clone(), ns)
            .get(&name)
            .await
            .with_context(|| format!("Role {name}"))?;
        Api::<RoleBinding>::namespaced(client.clone(), ns)
            .get(&name)
            .await
            .with_context(|| format!("RoleBinding {name}"))?;
    }

    let kw = "keyward.io";
    let keyring = "keyward-local-keyring";
    let root_key = "keyward-local-root-key";
    let other_ns = "default";
    // (who, what, expected)
    let webhook = names.webhook.as_str();
    let operator = names.operator.as_str();
    let (mutating, validating) = (names.mutating(), names.validating());
    let tls_secret = format!("{}-tls", names.webhook);
    let cases: Vec<(&str, Check, bool)> = vec![
        // The webhook: unseal only.
        (
            webhook,
            check("create", "authentication.k8s.io", "tokenreviews"),
            true,
        ),
        (
            webhook,
            check("create", "authorization.k8s.io", "subjectaccessreviews"),
            true,
        ),
        (
            webhook,
            check("get", "", "pods").ns(other_ns).named("app"),
            true,
        ),
        (
            webhook,
            check("list", kw, "sealedsecrets").ns(other_ns),
            true,
        ),
        // Two-person destruction reads a namespace's label, and only that.
        (
            webhook,
            check("get", "", "namespaces").named(other_ns),
            true,
        ),
        (
            webhook,
            check("update", "", "namespaces").named(other_ns),
            false,
        ),
        (
            webhook,
            check("watch", kw, "managedkeys").ns(other_ns),
            true,
        ),
        (
            webhook,
            check("get", "", "secrets").ns(ns).named(keyring),
            true,
        ),
        (
            webhook,
            check("get", "", "secrets").ns(ns).named(root_key),
            true,
        ),
        (
            webhook,
            check("create", kw, "managedkeys").ns(other_ns),
            false,
        ),
        (
            webhook,
            check("delete", kw, "managedkeys").ns(other_ns).named("app"),
            false,
        ),
        (
            webhook,
            check("patch", kw, "managedkeys").ns(other_ns).named("app"),
            false,
        ),
        (
            webhook,
            check("patch", kw, "managedkeys")
                .ns(ns)
                .named("app")
                .sub("status"),
            false,
        ),
        (
            webhook,
            check("update", "", "secrets").ns(ns).named(keyring),
            false,
        ),
        (
            webhook,
            check("delete", "", "secrets").ns(ns).named(root_key),
            false,
        ),
        (
            webhook,
            check("patch", "", "secrets").ns(ns).named(keyring),
            false,
        ),
        // No Secret can be created: above all not the keyring's two before
        // the operator's first start. The chart creates its TLS Secret.
        (webhook, check("create", "", "secrets").ns(ns), false),
        (
            webhook,
            check("create", "", "secrets").ns(ns).named(keyring),
            false,
        ),
        (
            webhook,
            check("create", "", "secrets").ns(ns).named(root_key),
            false,
        ),
        (
            webhook,
            check("create", "", "secrets").ns(ns).named(&tls_secret),
            false,
        ),
        (webhook, check("create", "", "secrets").ns(other_ns), false),
        (webhook, check("watch", "", "secrets").ns(ns), false),
        (
            webhook,
            check("get", "", "secrets").ns(ns).named(&tls_secret),
            true,
        ),
        (
            webhook,
            check("update", "", "secrets").ns(ns).named(&tls_secret),
            true,
        ),
        (
            webhook,
            check("delete", "", "secrets").ns(ns).named(&tls_secret),
            false,
        ),
        (
            webhook,
            check("get", "", "secrets").ns(ns).named("someone-elses"),
            false,
        ),
        (
            webhook,
            check("get", "", "secrets").ns(other_ns).named(keyring),
            false,
        ),
        (webhook, check("list", "", "secrets").ns(ns), false),
        (webhook, check("list", "", "pods").ns(other_ns), false),
        (
            webhook,
            check(
                "patch",
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            )
            .named(&mutating),
            true,
        ),
        (
            webhook,
            check(
                "patch",
                "admissionregistration.k8s.io",
                "validatingwebhookconfigurations",
            )
            .named(&validating),
            true,
        ),
        (
            webhook,
            check(
                "patch",
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
            )
            .named("another"),
            false,
        ),
        // The operator: key admin, its own Secrets only.
        (
            operator,
            check("watch", kw, "managedkeys").ns(other_ns),
            true,
        ),
        (
            operator,
            check("patch", kw, "managedkeys").ns(other_ns).named("app"),
            true,
        ),
        (
            operator,
            check("patch", kw, "managedkeys")
                .ns(other_ns)
                .named("app")
                .sub("status"),
            true,
        ),
        (
            operator,
            check("patch", kw, "sealedsecrets")
                .ns(other_ns)
                .named("s")
                .sub("status"),
            true,
        ),
        (
            operator,
            check("list", kw, "keyrotationpolicies").ns(other_ns),
            true,
        ),
        (
            operator,
            check("create", "events.k8s.io", "events").ns(other_ns),
            true,
        ),
        (
            operator,
            check("get", "", "secrets").ns(ns).named(keyring),
            true,
        ),
        (
            operator,
            check("update", "", "secrets").ns(ns).named(keyring),
            true,
        ),
        (
            operator,
            check("get", "", "secrets").ns(ns).named(root_key),
            true,
        ),
        (operator, check("create", "", "secrets").ns(ns), true),
        (
            operator,
            check("create", "coordination.k8s.io", "leases").ns(ns),
            true,
        ),
        (
            operator,
            check("update", "coordination.k8s.io", "leases")
                .ns(ns)
                .named("keyward-operator"),
            true,
        ),
        (
            operator,
            check("update", "coordination.k8s.io", "leases")
                .ns(ns)
                .named("kube-scheduler"),
            false,
        ),
        (
            operator,
            check("get", "", "secrets").ns(ns).named("someone-elses"),
            false,
        ),
        (operator, check("create", "", "secrets").ns(other_ns), false),
        (
            operator,
            check("get", "", "secrets").ns(other_ns).named("db"),
            false,
        ),
        (operator, check("list", "", "secrets").ns(ns), false),
        (
            operator,
            check("delete", "", "secrets").ns(ns).named(root_key),
            false,
        ),
        (
            operator,
            check("create", "authentication.k8s.io", "tokenreviews"),
            false,
        ),
        (
            operator,
            check("get", "", "pods").ns(other_ns).named("app"),
            false,
        ),
        (
            operator,
            check("delete", kw, "managedkeys").ns(other_ns).named("app"),
            false,
        ),
    ];
    let mut wrong = Vec::new();
    for (sa, c, expected) in &cases {
        let got = allowed(client, ns, sa, c).await?;
        if got != *expected {
            wrong.push(format!(
                "{sa} {} {}/{}{} {}/{}: allowed={got}, expected {expected}",
                c.verb,
                c.group,
                c.resource,
                c.subresource.map(|s| format!("/{s}")).unwrap_or_default(),
                c.namespace.unwrap_or("*"),
                c.name.unwrap_or("*"),
            ));
        }
    }
    ensure!(wrong.is_empty(), "RBAC:\n{}", wrong.join("\n"));
    println!("RBAC: {} SubjectAccessReviews as expected", cases.len());
    Ok(())
}

/// operator.maxConcurrentReconciles, operator.keyringCacheSeconds and
/// webhook.keyringCacheSeconds reach the binaries' flags.
async fn check_tuning(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let container = |d: Deployment| {
        d.spec
            .and_then(|s| s.template.spec)
            .and_then(|p| p.containers.into_iter().next())
            .context("no container")
    };
    let operator = container(deployments.get(&names.operator).await?)?;
    let env: Vec<(String, Option<String>)> = operator
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    for (name, value) in [
        ("KEYWARD_MAX_CONCURRENT_RECONCILES", "4"),
        ("KEYWARD_KEYRING_CACHE_SECONDS", "0"),
    ] {
        ensure!(
            env.iter()
                .any(|(n, v)| n == name && v.as_deref() == Some(value)),
            "operator env lacks {name}={value}: {env:?}"
        );
    }
    let args = container(deployments.get(&names.webhook).await?)?
        .args
        .unwrap_or_default();
    ensure!(
        args.iter().any(|a| a == "--keyring-cache-seconds=60"),
        "webhook args {args:?}"
    );
    Ok(())
}

async fn check_providers(client: &Client, ns: &str, names: &Names) -> Result<()> {
    let sas = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    for (sa, role, gsa) in [
        (&names.operator, "keyward-admin", "keyward-admin@"),
        (&names.webhook, "keyward-unseal", "keyward-unseal@"),
    ] {
        let ann = sas.get(sa).await?.metadata.annotations.unwrap_or_default();
        ensure!(
            ann.get("eks.amazonaws.com/role-arn")
                .is_some_and(|a| a.ends_with(&format!("role/{role}"))),
            "{sa}: IRSA annotation {ann:?}"
        );
        ensure!(
            ann.get("iam.gke.io/gcp-service-account")
                .is_some_and(|a| a.starts_with(gsa)),
            "{sa}: Workload Identity annotation {ann:?}"
        );
    }
    let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(&format!("{RELEASE}-keyward-pkcs11"))
        .await
        .context("PKCS#11 ConfigMap")?;
    let config = cm
        .data
        .and_then(|d| d.get("pkcs11.yaml").cloned())
        .unwrap_or_default();
    ensure!(
        config.contains("pinFile: /etc/keyward/pkcs11-pin/pin") && config.contains("keyward"),
        "pkcs11.yaml: {config}"
    );
    let operator = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(&names.operator)
        .await?;
    ensure!(
        operator.spec.as_ref().and_then(|s| s.replicas) == Some(2),
        "operator replicas after upgrade"
    );
    let webhook = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(&names.webhook)
        .await?;
    let spec = webhook.spec.context("spec")?;
    ensure!(
        spec.replicas == Some(3),
        "upgrade did not change replicas: {:?}",
        spec.replicas
    );
    let pod = spec.template.spec.context("pod spec")?;
    let volumes: Vec<String> = pod
        .volumes
        .unwrap_or_default()
        .into_iter()
        .map(|v| v.name)
        .collect();
    for want in ["pkcs11-module", "pkcs11-config", "pkcs11-pin"] {
        ensure!(
            volumes.iter().any(|v| v == want),
            "webhook volumes {volumes:?}"
        );
    }
    let hard = pod
        .affinity
        .and_then(|a| a.pod_anti_affinity)
        .and_then(|a| a.required_during_scheduling_ignored_during_execution);
    ensure!(hard.is_some(), "podAntiAffinity: hard not applied");
    Ok(())
}
