//! The `keyward` CLI against a real API server: `keyward cluster
//! public-key` reads a ManagedKey that the operator (in-process, scoped to
//! the test's namespace) made Ready, with the kubeconfig's token or a
//! client certificate; `keyward seal --cert` (and `seal --from-cluster`)
//! seals offline with it, and the cluster's keyring opens the result. Refusals (symmetric key, missing
//! key, no RBAC, Suspended key) say what to do.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use keyward_core::envelope::{Scope, SecretTarget, open_secret};
use keyward_crds::{KeyState, ManagedKey, SealedSecret};
use keyward_e2e::keys::{ready, wait_key};
use keyward_e2e::{crds, with_temp_ns};
use keyward_kubeutil::keyring_secret;
use keyward_operator::{Config, http::Readiness, metrics::Metrics};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const KEYRING: &str = "keyward-local-keyring";
const ROOT_KEY: &str = "keyward-local-root-key";
const PASSWORD: &str = "sealed-offline-from-the-cluster";

#[tokio::test]
async fn cluster_public_key_seals_offline_and_refusals_say_what_to_do() {
    with_temp_ns(|client, ns| async move {
        crds::install_keyward_crds(&client).await?;
        let dir = tempfile::tempdir()?;
        let config = Config::for_namespace(&ns, dir.path().join("audit.log"));
        let operator_client = client.clone();
        let operator = tokio::spawn(async move {
            let metrics = Arc::new(Metrics::default());
            if let Err(error) =
                keyward_operator::run(operator_client, &config, metrics, Readiness::default()).await
            {
                panic!("operator stopped: {error}");
            }
        });
        let result = flow(&client, &ns, dir.path()).await;
        // Keys go first, while the operator still removes their finalizers.
        let cleaned = delete_keys(&client, &ns).await;
        operator.abort();
        let _ = operator.await;
        result.and(cleaned)
    })
    .await;
}

async fn flow(client: &Client, ns: &str, dir: &Path) -> Result<()> {
    let cli = keyward_cli().await?;
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    for (name, spec) in [
        (
            "sealing",
            json!({"provider": {"local": {}}, "algorithm": "RSA3072", "usage": "Seal"}),
        ),
        ("wrapping", json!({"provider": {"local": {}}})),
    ] {
        let key: ManagedKey = serde_json::from_value(json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": name}, "spec": spec,
        }))?;
        keys.create(&PostParams::default(), &key).await?;
    }
    let sealing = wait_key(&keys, "sealing", "Ready", ready).await?;
    wait_key(&keys, "wrapping", "Ready", ready).await?;
    let status = sealing.status.context("a Ready key has a status")?;
    let key_id = status.provider_key_id.context("no providerKeyId")?;

    // With the kubeconfig's token ($KUBECONFIG from e2e/run.sh).
    let started = Instant::now();
    let out = keyward(&cli, &["cluster", "public-key", "-n", ns, "sealing"]).await?;
    let elapsed = started.elapsed();
    let public = succeeded(&out, "keyward cluster public-key")?;
    let header = format!(
        "keyward-key: {ns}/sealing\nkeyward-key-version: 1\nkeyward-provider-key-id: {key_id}\n"
    );
    ensure!(public.starts_with(&header), "{public}");
    ensure!(
        public.contains("-----BEGIN PUBLIC KEY-----"),
        "no PEM in {public}"
    );
    println!("keyward cluster public-key ({elapsed:?}):\n{header}");
    let same = keyward(&cli, &["cluster", "public-key", &format!("{ns}/sealing")]).await?;
    ensure!(succeeded(&same, "NAMESPACE/NAME")? == public);

    // Sealed offline with it; the cluster's keyring opens the result.
    let cert = dir.join("sealing.pub");
    std::fs::write(&cert, &public)?;
    let literal = format!("password={PASSWORD}");
    let cert_arg = cert.to_string_lossy();
    let args = [
        "seal",
        "-n",
        ns,
        "--name",
        "db",
        "--cert",
        &cert_arg,
        "--from-literal",
        &literal,
    ];
    let sealed: SealedSecret =
        serde_yaml_ng::from_str(&succeeded(&keyward(&cli, &args).await?, "keyward seal")?)?;
    ensure!(sealed.spec.key_ref.name == "sealing" && sealed.spec.key_ref.namespace.is_none());
    let provider = keyring_secret::local_provider(client.clone(), ns, KEYRING, ROOT_KEY).await?;
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: ns.to_owned(),
        secret_name: "db".into(),
        key_ref: format!("{ns}/sealing"),
        access: Vec::new(),
    };
    let opened = open_secret(&target, &provider, &sealed.spec.encrypted_data).await?;
    ensure!(
        opened["password"].expose() == PASSWORD.as_bytes(),
        "the keyring opened a different value"
    );

    // In one step: `seal --from-cluster` fetches the same public key.
    let args = [
        "seal",
        "-n",
        ns,
        "--name",
        "db",
        "--key",
        "sealing",
        "--from-cluster",
        "--from-literal",
        &literal,
    ];
    let sealed: SealedSecret = serde_yaml_ng::from_str(&succeeded(
        &keyward(&cli, &args).await?,
        "keyward seal --from-cluster",
    )?)?;
    let opened = open_secret(&target, &provider, &sealed.spec.encrypted_data).await?;
    ensure!(opened["password"].expose() == PASSWORD.as_bytes());

    // The same with a client certificate signed by the cluster's CA.
    match client_cert_kubeconfig(dir).await? {
        Some(kubeconfig) => {
            let kubeconfig = kubeconfig.to_string_lossy();
            let args = ["cluster", "public-key", "-n", ns, "sealing"];
            let out = keyward(&cli, &[&args[..], &["--kubeconfig", &kubeconfig]].concat()).await?;
            ensure!(succeeded(&out, "with a client certificate")? == public);
            println!("a client-certificate kubeconfig reads the same key");
        }
        None => println!("no cluster CA key at hand: client certificates not tried"),
    }

    // A user that logs in through an exec plugin, as on EKS, GKE and AKS.
    let exec = keyward_e2e::kubeconfig::exec_plugin(dir)?;
    let args = ["cluster", "public-key", "-n", ns, "sealing", "--kubeconfig"];
    let out = keyward(
        &cli,
        &[&args[..], &[exec.to_string_lossy().as_ref()]].concat(),
    )
    .await?;
    ensure!(succeeded(&out, "with an exec-plugin kubeconfig")? == public);
    ensure!(
        std::fs::read_to_string(dir.join("exec-ran"))?.contains("ran"),
        "the exec plugin was not run"
    );
    println!("an exec-plugin kubeconfig reads the same key");
    day_two_verbs(&cli, ns, &exec).await?;

    // Refusals.
    let refused = |args: Vec<String>, wanted: Vec<String>| {
        let cli = cli.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = keyward(&cli, &args).await?;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            ensure!(
                !out.status.success() && out.stdout.is_empty(),
                "{args:?} succeeded"
            );
            for text in &wanted {
                ensure!(
                    stderr.contains(text.as_str()),
                    "{args:?}: no `{text}` in {stderr}"
                );
            }
            println!("{}", stderr.trim());
            Ok::<_, anyhow::Error>(())
        }
    };
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    refused(
        strings(&["cluster", "public-key", "-n", ns, "wrapping"]),
        strings(&["AES256", "offline sealing needs an RSA key"]),
    )
    .await?;
    refused(
        strings(&["cluster", "public-key", "-n", ns, "missing"]),
        vec![
            format!("ManagedKey {ns}/missing does not exist"),
            "kubectl get managedkeys -A".into(),
        ],
    )
    .await?;
    let token = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create_token_request("default", &PostParams::default(), &TokenRequest::default())
        .await?
        .status
        .context("TokenRequest returned no token")?
        .token;
    let token_file = dir.join("sa-token");
    std::fs::write(&token_file, token)?;
    refused(
        vec![
            "cluster".into(),
            "public-key".into(),
            "-n".into(),
            ns.into(),
            "sealing".into(),
            "--token-file".into(),
            token_file.to_string_lossy().into_owned(),
        ],
        vec![
            "no permission to read ManagedKey".into(),
            format!("system:serviceaccount:{ns}:default"),
            "ask for `get`".into(),
        ],
    )
    .await?;

    let suspend = json!({"spec": {"state": "Suspended"}});
    keys.patch("sealing", &PatchParams::default(), &Patch::Merge(&suspend))
        .await?;
    wait_key(&keys, "sealing", "Suspended", |key| {
        key.status.as_ref().and_then(|s| s.state) == Some(KeyState::Suspended)
    })
    .await?;
    refused(
        strings(&["cluster", "public-key", "-n", ns, "sealing"]),
        strings(&["is not Ready (Suspended", "describe managedkey sealing"]),
    )
    .await?;
    Ok(())
}

async fn delete_keys(client: &Client, ns: &str) -> Result<()> {
    let keys: Api<ManagedKey> = Api::namespaced(client.clone(), ns);
    keyward_e2e::keys::delete_all(&keys).await
}

async fn keyward(cli: &Path, args: &[&str]) -> Result<Output> {
    Ok(tokio::process::Command::new(cli)
        .args(args)
        .output()
        .await?)
}

fn succeeded(out: &Output, what: &str) -> Result<String> {
    ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout.clone())?)
}

/// `keyward status`, `rotate` and the kubectl plugin, as an exec-plugin
/// user: the table and JSON agree with the ManagedKey, a rotation lands.
async fn day_two_verbs(cli: &Path, ns: &str, kubeconfig: &Path) -> Result<()> {
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let with_config = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(["--kubeconfig".to_owned(), kubeconfig.clone()])
            .collect()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        keyward(cli, &args).await
    };
    let table = succeeded(
        &run(with_config(&["status", "-n", ns])).await?,
        "keyward status",
    )?;
    ensure!(
        table
            .lines()
            .any(|l| l.contains("sealing") && l.contains("Active") && l.contains("local")),
        "{table}"
    );
    let json = succeeded(
        &run(with_config(&["status", "-n", ns, "sealing", "-o", "json"])).await?,
        "keyward status -o json",
    )?;
    let document: serde_json::Value = serde_json::from_str(&json)?;
    ensure!(document["keys"][0]["primaryVersion"] == 1, "{json}");
    ensure!(document["keys"][0]["ready"] == true, "{json}");
    let rotated = succeeded(
        &run(with_config(&[
            "rotate", "-n", ns, "sealing", "--wait", "--reason", "e2e",
        ]))
        .await?,
        "keyward rotate --wait",
    )?;
    ensure!(rotated.contains("version 2 is primary"), "{rotated}");
    let missing = run(with_config(&["rotate", "-n", ns, "nothing"])).await?;
    ensure!(
        !missing.status.success()
            && String::from_utf8_lossy(&missing.stderr)
                .contains(&format!("ManagedKey {ns}/nothing does not exist")),
        "{missing:?}"
    );
    // kubectl finds `kubectl-keyward` on PATH and runs it as `kubectl keyward`.
    let plugin = keyward_e2e::binaries::build_binary("keyward", "kubectl-keyward", false).await?;
    if which("kubectl").is_some() {
        let dir = plugin.parent().context("plugin dir")?;
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = tokio::process::Command::new("kubectl")
            .args([
                "keyward",
                "status",
                "-n",
                ns,
                "sealing",
                "--kubeconfig",
                &kubeconfig,
            ])
            .env("PATH", path)
            .output()
            .await?;
        let table = succeeded(&out, "kubectl keyward status")?;
        ensure!(
            table
                .lines()
                .any(|l| l.contains("sealing") && l.contains("2")),
            "{table}"
        );
        println!("kubectl keyward status:\n{table}");
    } else {
        println!(
            "no kubectl on PATH: the plugin name is built ({}) but not run through kubectl",
            plugin.display()
        );
    }
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// The `keyward` CLI binary of this checkout.
async fn keyward_cli() -> Result<PathBuf> {
    keyward_e2e::binaries::build_binary("keyward", "keyward", false).await
}

/// A kubeconfig for the same API server whose user is a client
/// certificate (group system:masters) signed with the local cluster's CA
/// key; `None` when that key is not at hand (a cluster not started here).
async fn client_cert_kubeconfig(dir: &Path) -> Result<Option<PathBuf>> {
    let Ok(state) = std::env::var("KEYWARD_E2E_STATE") else {
        return Ok(None);
    };
    let (ca_cert, ca_key) = (
        Path::new(&state).join("pki/ca.crt"),
        Path::new(&state).join("pki/ca.key"),
    );
    if !ca_key.exists() {
        return Ok(None);
    }
    let (key, csr, cert, serial, extensions) = (
        dir.join("client.key"),
        dir.join("client.csr"),
        dir.join("client.crt"),
        dir.join("ca.srl"),
        dir.join("client.ext"),
    );
    // Extensions make it X.509 v3, as kubeconfig certificates are (and
    // rustls accepts no other).
    std::fs::write(
        &extensions,
        "keyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )?;
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    openssl(&[
        os("req"),
        os("-newkey"),
        os("ec"),
        os("-pkeyopt"),
        os("ec_paramgen_curve:prime256v1"),
        os("-nodes"),
        os("-subj"),
        os("/O=system:masters/CN=keyward-e2e-cli"),
        os("-keyout"),
        key.as_os_str(),
        os("-out"),
        csr.as_os_str(),
    ])
    .await?;
    openssl(&[
        os("x509"),
        os("-req"),
        os("-in"),
        csr.as_os_str(),
        os("-CA"),
        ca_cert.as_os_str(),
        os("-CAkey"),
        ca_key.as_os_str(),
        os("-CAcreateserial"),
        os("-CAserial"),
        serial.as_os_str(),
        os("-extfile"),
        extensions.as_os_str(),
        os("-days"),
        os("1"),
        os("-out"),
        cert.as_os_str(),
    ])
    .await?;
    let kubeconfig_path = std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?;
    let current: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&kubeconfig_path)?)?;
    let server = current["clusters"][0]["cluster"]["server"]
        .as_str()
        .context("no server in $KUBECONFIG")?;
    let config = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "cert",
        "clusters": [{"name": "local", "cluster": {
            "server": server,
            "certificate-authority-data": STANDARD.encode(std::fs::read(&ca_cert)?),
        }}],
        "users": [{"name": "cert", "user": {
            "client-certificate": "client.crt",
            "client-key-data": STANDARD.encode(std::fs::read(&key)?),
        }}],
        "contexts": [{"name": "cert", "context": {"cluster": "local", "user": "cert"}}],
    });
    let path = dir.join("cert.kubeconfig");
    std::fs::write(&path, serde_yaml_ng::to_string(&config)?)?;
    Ok(Some(path))
}

async fn openssl(args: &[&std::ffi::OsStr]) -> Result<()> {
    let out = tokio::process::Command::new("openssl")
        .args(args)
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
