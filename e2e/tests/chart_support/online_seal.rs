//! Online sealing off the happy path, on the chart's webhook: what the API
//! server saw of the seal the flow made (its audit log of Keyward's kinds:
//! a data key sealed to the CLI, never the value), who is refused (a user
//! without `create datakeyrequests`, one with it but without `create
//! sealedsecrets`), and a DataKeyRequest that would be stored.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use super::keyward_api;
use super::on_node::{Flow, SECRET_VALUE};

pub async fn refusals_and_what_the_api_server_saw(
    client: &Client,
    flow: &Flow,
    cli: &Path,
) -> Result<()> {
    api_server_saw_no_value(flow)?;
    let ns = &flow.app_ns;
    let key = format!("{}/app", flow.release_ns);

    // No RBAC at all: the API server refuses, the CLI says what to ask for.
    let token = service_account_token(client, ns, "nobody").await?;
    let err = refused_seal(cli, flow, &key, &token, "nobody").await?;
    ensure!(
        err.contains("no permission to create a data key")
            && err.contains("datakeyrequests.keyward.io"),
        "{err}"
    );

    // Allowed to ask, not to create SealedSecrets: Keyward refuses.
    let token = service_account_token(client, ns, "asker").await?;
    grant(client, ns, "asker", "datakeyrequests").await?;
    // The RBAC authorizer sees a new binding from its informer, soon after.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let err = loop {
        let err = refused_seal(cli, flow, &key, &token, "asker").await?;
        if !err.contains("no permission") || std::time::Instant::now() > deadline {
            break err;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    ensure!(
        err.contains("Keyward refused a data key")
            && err.contains(&format!("system:serviceaccount:{ns}:asker"))
            && err.contains("may not create sealedsecrets.keyward.io"),
        "{err}"
    );

    // A request that would be stored is denied, and nothing is stored.
    let requests = keyward_api(client, ns, "DataKeyRequest", "datakeyrequests");
    let request = serde_json::from_value(json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "DataKeyRequest",
        "metadata": { "name": "stored" },
        "spec": { "secretName": "db", "keyRef": { "name": "app", "namespace": flow.release_ns },
                  "recipientPublicKey": STANDARD.encode([7u8; 32]) },
    }))?;
    let stored = requests.create(&PostParams::default(), &request).await;
    let message = match stored {
        Err(kube::Error::Api(status)) => status.message,
        other => anyhow::bail!("a stored DataKeyRequest was not refused: {other:?}"),
    };
    ensure!(message.contains("dryRun=All"), "{message}");
    ensure!(requests.get_opt("stored").await?.is_none());
    println!("online seal refusals: no RBAC, no create sealedsecrets, not a dry run");
    Ok(())
}

/// The API server's audit log (RequestResponse for Keyward's kinds) holds
/// the flow's DataKeyRequest and SealedSecret, and neither the value nor
/// its base64 anywhere.
fn api_server_saw_no_value(flow: &Flow) -> Result<()> {
    let Some(path) = keyward_e2e::cluster::apiserver_audit_log() else {
        println!("skipped the audit-log check: not the local e2e cluster");
        return Ok(());
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("the API server's audit log {}", path.display()))?;
    let mut answered = 0;
    let mut sealed_secrets = 0;
    for line in text.lines() {
        let event: Value = serde_json::from_str(line)?;
        let object = &event["objectRef"];
        if object["namespace"] != flow.app_ns.as_str() {
            continue;
        }
        match object["resource"].as_str() {
            Some("datakeyrequests") => {
                let status = &event["responseObject"]["status"];
                if status["sealedDataKey"]
                    .as_str()
                    .is_some_and(|s| !s.is_empty())
                {
                    answered += 1;
                }
            }
            Some("sealedsecrets") if event["verb"] == "create" => sealed_secrets += 1,
            _ => {}
        }
    }
    ensure!(
        answered >= 1 && sealed_secrets >= 1,
        "the audit log has {answered} answered DataKeyRequests and {sealed_secrets} SealedSecret \
         creates in {}; expected the flow's",
        flow.app_ns
    );
    for shown in [SECRET_VALUE.to_owned(), STANDARD.encode(SECRET_VALUE)] {
        ensure!(
            !text.contains(&shown),
            "the API server saw the sealed value ({shown})"
        );
    }
    println!(
        "API server audit log: {answered} answered DataKeyRequest(s), {sealed_secrets} \
         SealedSecret create(s), no plaintext in {} bytes",
        text.len()
    );
    Ok(())
}

/// `keyward seal` as `token`; the error text it printed.
async fn refused_seal(
    cli: &Path,
    flow: &Flow,
    key: &str,
    token: &str,
    who: &str,
) -> Result<String> {
    let token_file = flow.out_dir.join(format!("{who}.token"));
    std::fs::write(&token_file, token)?;
    let out = tokio::process::Command::new(cli)
        .args(["seal", "-n", &flow.app_ns, "--name", "db", "--key", key])
        .args(["--from-literal", "password=not-sealed"])
        .arg("--token-file")
        .arg(&token_file)
        .env_remove("KEYWARD_KEYRING")
        .output()
        .await?;
    ensure!(!out.status.success(), "{who} sealed online");
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

pub async fn service_account_token(client: &Client, ns: &str, name: &str) -> Result<String> {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), ns);
    let account = serde_json::from_value(json!({ "metadata": { "name": name } }))?;
    accounts.create(&PostParams::default(), &account).await?;
    Ok(accounts
        .create_token_request(name, &PostParams::default(), &TokenRequest::default())
        .await?
        .status
        .context("TokenRequest returned no token")?
        .token)
}

/// `create` on `resource` (keyward.io) for ServiceAccount `account`.
pub async fn grant(client: &Client, ns: &str, account: &str, resource: &str) -> Result<()> {
    let role = serde_json::from_value(json!({
        "metadata": { "name": account },
        "rules": [{ "apiGroups": ["keyward.io"], "resources": [resource], "verbs": ["create"] }],
    }))?;
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding = serde_json::from_value(json!({
        "metadata": { "name": account },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account },
        "subjects": [{ "kind": "ServiceAccount", "name": account, "namespace": ns }],
    }))?;
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await?;
    Ok(())
}
