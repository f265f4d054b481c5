//! Two-person destruction on a real API server, with the operator running:
//! users alice and bob (impersonated by the tests' admin, so `userInfo`
//! names them) under the key's policy and under the namespace's label. One
//! user alone is refused with what is missing, cannot approve their own
//! request nor write an approval in the other's name; the second user's
//! approval completes the destruction, the operator carries it out, and
//! the webhook's audit log names both.

use super::Webhook;
use super::in_process::start_operator;
use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use keyward_crds::destruction::{APPROVAL, POLICY_LABEL, REQUEST, parse_request};
use keyward_crds::{KeyState, ManagedKey};
use keyward_e2e::keys::{delete_all, delete_and_wait_gone, ready, wait_key};
use keyward_e2e::{crds, with_temp_ns};
use keyward_operator::Config;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const ROLE: &str = "keyward-e2e-key-editor";

#[tokio::test]
async fn destruction_under_the_two_person_policy_needs_a_second_users_approval() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let operator = start_operator(
            &client,
            Config::for_namespace(&ns, dir.path().join("operator-audit.log")),
        );
        let result = async {
            let [alice, bob] = editors(&client, &ns).await?;
            // A key Ready first: the webhook opens the keyring the operator makes.
            let key: ManagedKey = serde_json::from_value(json!({
                "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
                "metadata": {"name": "guarded"},
                "spec": {"provider": {"local": {}}, "twoPersonDestruction": true},
            }))?;
            let as_alice: Api<ManagedKey> = Api::namespaced(alice.clone(), &ns);
            as_alice.create(&PostParams::default(), &key).await?;
            let admin: Api<ManagedKey> = Api::namespaced(client.clone(), &ns);
            wait_key(&admin, "guarded", "Ready", ready).await?;
            let webhook =
                Webhook::start(&client, &ns, dir.path(), ("unused:e2e".into(), "Never")).await?;
            let result = async {
                key_policy_flow(&client, &ns, &alice, &bob, &webhook).await?;
                let audit = dir.path().join("operator-audit.log");
                operator_names_both(&audit, &format!("{ns}/guarded")).await?;
                namespace_policy_flow(&client, &ns, &alice).await?;
                operator_names_both(&audit, &format!("{ns}/team")).await
            }
            .await;
            if result.is_err() {
                println!("webhook audit log:\n{}", webhook.audit_log());
            }
            webhook.stop(&client).await;
            // With admission gone, so the namespace can go.
            delete_all(&Api::<ManagedKey>::namespaced(client.clone(), &ns)).await?;
            result
        }
        .await;
        operator.abort();
        result
    })
    .await;
}

/// Clients acting as alice and bob, who may edit and delete ManagedKeys in `ns`.
async fn editors(client: &Client, ns: &str) -> Result<[Client; 2]> {
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": ROLE},
        "rules": [{"apiGroups": ["keyward.io"], "resources": ["managedkeys"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}],
    }))?;
    let roles: Api<ClusterRole> = Api::all(client.clone());
    if roles.get_opt(ROLE).await?.is_none() {
        roles.create(&PostParams::default(), &role).await?;
    }
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "key-editors"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE},
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"},
        ],
    }))?;
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;
    let as_user = |user: &str| {
        let user = user.to_owned();
        async move {
            let mut config = kube::Config::infer().await?;
            config.auth_info.impersonate = Some(user);
            Ok::<_, anyhow::Error>(Client::try_from(config)?)
        }
    };
    let users = [as_user("alice").await?, as_user("bob").await?];
    // The API server's RBAC cache learns the binding a moment later.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for user in &users {
        let keys: Api<ManagedKey> = Api::namespaced(user.clone(), ns);
        while let Err(error) = keys.list(&Default::default()).await {
            ensure!(
                std::time::Instant::now() < deadline,
                "the key-editors binding never took effect: {error}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
    Ok(users)
}

async fn key_policy_flow(
    client: &Client,
    ns: &str,
    alice: &Client,
    bob: &Client,
    webhook: &Webhook,
) -> Result<()> {
    let admin: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    let as_alice: Api<ManagedKey> = Api::namespaced(alice.clone(), ns);
    let as_bob: Api<ManagedKey> = Api::namespaced(bob.clone(), ns);
    // Retiring is one person's call; destroying is not.
    merge(
        &as_alice,
        "guarded",
        json!({"spec": {"state": "Deactivated"}}),
    )
    .await?;
    wait_key(&admin, "guarded", "Deactivated", |k| {
        reported(k) == Some(KeyState::Deactivated)
    })
    .await?;
    let destroy = json!({"spec": {"state": "Destroyed"}});
    refused(
        &as_alice,
        "guarded",
        destroy.clone(),
        "Missing: the request",
    )
    .await?;
    // `kubectl --dry-run=server` gets the same answer.
    let dry = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    match as_alice
        .patch("guarded", &dry, &Patch::Merge(&destroy))
        .await
    {
        Err(kube::Error::Api(status)) if status.message.contains("Missing: the request") => {}
        other => bail!("a dry run of the destruction was not refused: {other:?}"),
    }

    annotate(&as_alice, "guarded", REQUEST, "Destroy").await?;
    let stamped = annotation(&admin.get("guarded").await?, REQUEST).context("no request")?;
    let request = parse_request(&stamped).map_err(anyhow::Error::msg)?;
    ensure!(request.by == "alice", "request stamped for {}", request.by);
    println!("alice's request, as stamped at admission: {stamped}");

    let own = json!({"metadata": {"annotations": {APPROVAL: "approve"}}});
    refused(&as_alice, "guarded", own, "a different user must approve").await?;
    let forged = json!({"metadata": {"annotations": {APPROVAL: json!({
        "by": "bob", "at": request.at, "requestBy": "alice", "requestAt": request.at, "requestActions": ["Destroy"],
    }).to_string()}}});
    refused(&as_alice, "guarded", forged, "names bob, but you are alice").await?;
    refused(
        &as_alice,
        "guarded",
        destroy.clone(),
        "Missing: an approval by a user other than alice",
    )
    .await?;

    // Bob approves and destroys in one change.
    merge(
        &as_bob,
        "guarded",
        json!({"metadata": {"annotations": {APPROVAL: "approve"}}, "spec": {"state": "Destroyed"}}),
    )
    .await?;
    let destroyed = wait_key(&admin, "guarded", "scheduled for destruction", |k| {
        k.status.as_ref().is_some_and(|s| {
            !s.versions.is_empty() && s.versions.iter().all(|v| v.destroy_scheduled_at.is_some())
        })
    })
    .await?;
    println!(
        "bob approved: every version of guarded is scheduled for destruction ({} version(s))",
        destroyed.status.map(|s| s.versions.len()).unwrap_or(0)
    );

    let records: Vec<Value> = webhook
        .audit_log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["action"] == "key.destruction" && r["subject"] == format!("{ns}/guarded"))
        .collect();
    let admitted = records
        .iter()
        .find(|r| r["outcome"] == "admitted")
        .context("no admitted key.destruction record")?;
    ensure!(
        admitted["actor"] == "bob"
            && admitted["detail"]["requestedBy"] == "alice"
            && admitted["detail"]["approvedBy"] == "bob"
            && admitted["detail"]["actions"] == "Destroy",
        "the destruction record does not name both: {admitted}"
    );
    ensure!(
        records
            .iter()
            .any(|r| r["outcome"] == "refused" && r["actor"] == "alice"),
        "alice's refused attempts are not on record: {records:?}"
    );
    println!("audit: {admitted}");
    Ok(())
}

/// The namespace's label puts a key without the field under the policy:
/// deleting it (deletion policy Delete) needs the same two people.
async fn namespace_policy_flow(client: &Client, ns: &str, alice: &Client) -> Result<()> {
    let admin: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    let as_alice: Api<ManagedKey> = Api::namespaced(alice.clone(), ns);
    let key: ManagedKey = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "team"}, "spec": {"provider": {"local": {}}},
    }))?;
    as_alice.create(&PostParams::default(), &key).await?;
    wait_key(&admin, "team", "Ready", ready).await?;
    let label = json!({"metadata": {"labels": {POLICY_LABEL: "true"}}});
    Api::<Namespace>::all(client.clone())
        .patch(ns, &PatchParams::default(), &Patch::Merge(&label))
        .await?;
    match as_alice.delete("team", &DeleteParams::default()).await {
        Err(kube::Error::Api(status)) if status.message.contains("Missing: the request") => {
            println!("alice alone may not delete team: {}", status.message);
        }
        other => bail!("alice alone deleted a key under the namespace's policy: {other:?}"),
    }
    // The same two steps with the CLI, as each user.
    let reference = format!("{ns}/team");
    let said = cli_as(
        "alice",
        &[
            "request",
            &reference,
            "--action",
            "Delete",
            "--reason",
            "e2e: retire",
        ],
    )
    .await?;
    ensure!(
        said.contains("requested Delete") && said.contains("as alice"),
        "{said}"
    );
    let refused = cli_as("alice", &["approve", &reference]).await;
    ensure!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("a different user must approve")),
        "alice approved her own request: {refused:?}"
    );
    let mismatch = cli_as("bob", &["approve", &reference, "--action", "Destroy"]).await;
    ensure!(
        mismatch.as_ref().is_err_and(|e| e
            .to_string()
            .contains("is for Delete (by alice), not Destroy")),
        "bob approved a request he did not read: {mismatch:?}"
    );
    let said = cli_as("bob", &["approve", &reference, "--action", "Delete"]).await?;
    ensure!(
        said.contains("approved alice's request for Delete") && said.contains("as bob"),
        "{said}"
    );
    let shown = cli_as("alice", &["show", &reference]).await?;
    ensure!(
        shown.contains("request:  Delete by alice") && shown.contains("approval: by bob"),
        "{shown}"
    );
    delete_and_wait_gone(&as_alice, "team").await?;
    println!(
        "with bob's approval (keyward destruction approve) alice deleted team; the operator scheduled its destruction"
    );
    Ok(())
}

/// `keyward destruction ARGS` as `user`: its stdout and stderr, or its
/// error output when it fails.
async fn cli_as(user: &str, args: &[&str]) -> Result<String> {
    let cli = keyward_e2e::binaries::build_binary("keyward", "keyward", false).await?;
    let dir = std::env::temp_dir().join(format!("keyward-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = keyward_e2e::kubeconfig::impersonating(&dir, user)?;
    let out = tokio::process::Command::new(cli)
        .arg("destruction")
        .args(args)
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "{text}");
    Ok(text)
}

/// The operator's `key.schedule-deletion` record for `subject` names the
/// requester and the approver as well (it is written just after the status).
async fn operator_names_both(audit: &std::path::Path, subject: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(audit).unwrap_or_default();
        let record = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["action"] == "key.schedule-deletion" && r["subject"] == subject);
        if let Some(record) = record {
            ensure!(
                record["detail"]["requestedBy"] == "alice"
                    && record["detail"]["approvedBy"] == "bob",
                "the operator's record does not name both: {record}"
            );
            println!("operator audit: {record}");
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no key.schedule-deletion record for {subject} in the operator's audit log:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn reported(key: &ManagedKey) -> Option<KeyState> {
    key.status.as_ref()?.state
}

fn annotation(key: &ManagedKey, name: &str) -> Option<String> {
    key.metadata.annotations.as_ref()?.get(name).cloned()
}

async fn merge(keys: &Api<ManagedKey>, name: &str, patch: Value) -> Result<ManagedKey> {
    Ok(keys
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

async fn annotate(keys: &Api<ManagedKey>, name: &str, annotation: &str, value: &str) -> Result<()> {
    merge(
        keys,
        name,
        json!({"metadata": {"annotations": {annotation: value}}}),
    )
    .await
    .with_context(|| format!("annotating {name} {annotation}={value}"))?;
    Ok(())
}

async fn refused(keys: &Api<ManagedKey>, name: &str, patch: Value, says: &str) -> Result<()> {
    match merge(keys, name, patch.clone()).await {
        Err(e) => match e.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) if status.message.contains(says) => {
                println!("refused {patch}: {}", status.message);
                Ok(())
            }
            _ => bail!("{patch} was refused, but not saying {says:?}: {e:#}"),
        },
        Ok(_) => bail!("{patch} was admitted"),
    }
}
