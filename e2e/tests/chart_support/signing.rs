//! Signing keys on the chart's operator and webhook: ManagedKeys with
//! usage Sign (ECP256, ED25519, RSA3072 on the local provider) sign
//! through `keyward sign`, OpenSSL verifies each signature with the public
//! key the cluster published, `keyward verify` finds the version that
//! signed; a user allowed to ask but not granted the verb `sign` is
//! refused until a Role in the key's namespace grants it; a rotation
//! keeps old signatures verifiable, and a compromise makes them refused.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::json;

use super::keyward_api;
use super::on_node::{Flow, wait_key_ready};
use super::online_seal::{grant, service_account_token};

/// The OpenSSL command a user runs for each scheme (docs/signing.md).
fn openssl_verify(algorithm: &str, public: &Path, file: &Path, signature: &Path) -> Result<()> {
    let mut command = std::process::Command::new("openssl");
    match algorithm {
        "ED25519" => {
            command.args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"]);
            command
                .arg(public)
                .arg("-in")
                .arg(file)
                .arg("-sigfile")
                .arg(signature);
        }
        "ECP256" => {
            command.args(["dgst", "-sha256", "-verify"]).arg(public);
            command.arg("-signature").arg(signature).arg(file);
        }
        _ => {
            command.args(["dgst", "-sha256", "-sigopt", "rsa_padding_mode:pss"]);
            command
                .args(["-sigopt", "rsa_pss_saltlen:32", "-verify"])
                .arg(public);
            command.arg("-signature").arg(signature).arg(file);
        }
    }
    let out = command
        .output()
        .context("openssl (Debian package `openssl`)")?;
    ensure!(
        out.status.success(),
        "openssl refused the {algorithm} signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

struct Cli<'a> {
    cli: &'a Path,
    flow: &'a Flow,
}

impl Cli<'_> {
    /// `keyward ARGS` as the test's admin, or as `token`; (success, stderr).
    async fn run(&self, args: &[&str], token: Option<&Path>) -> Result<(bool, String)> {
        let mut command = tokio::process::Command::new(self.cli);
        command.args(args).env_remove("KEYWARD_KEYRING");
        if let Some(token) = token {
            command.arg("--token-file").arg(token);
        }
        let out = command.output().await?;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// `keyward sign`, retried while the webhook is not reachable yet.
    async fn sign(&self, key: &str, file: &Path, token: Option<&Path>) -> Result<(bool, String)> {
        let key = format!("{}/{key}", self.flow.release_ns);
        let public = format!("{}.pem", file.display());
        let file = file.display().to_string();
        let args = [
            "sign",
            "-n",
            &self.flow.app_ns,
            &key,
            &file,
            "--public-key-out",
            &public,
            "--reason",
            "e2e release",
        ];
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (ok, stderr) = self.run(&args, token).await?;
            if ok || !stderr.contains("webhook is unavailable") || Instant::now() > deadline {
                return Ok((ok, stderr));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn verify(&self, key: &str, file: &Path, signature: &Path) -> Result<(bool, String)> {
        let key = format!("{}/{key}", self.flow.release_ns);
        let (file, signature) = (file.display().to_string(), signature.display().to_string());
        self.run(&["verify", "--key", &key, &file, &signature], None)
            .await
    }
}

fn sig(file: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", file.display()))
}

pub async fn sign_verify_and_refuse(client: &Client, flow: &Flow, cli: &Path) -> Result<()> {
    let keys = keyward_api(client, &flow.release_ns, "ManagedKey", "managedkeys");
    let kinds = [
        ("release-ec", "ECP256"),
        ("release-ed", "ED25519"),
        ("release-rsa", "RSA3072"),
    ];
    for (name, algorithm) in kinds {
        let key = json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": { "name": name },
            "spec": { "provider": { "local": {} }, "algorithm": algorithm, "usage": "Sign" },
        });
        keys.create(&PostParams::default(), &serde_json::from_value(key)?)
            .await?;
    }
    for (name, _) in kinds {
        wait_key_ready(&keys, name).await?;
    }
    let cli = Cli { cli, flow };
    let dir = &flow.out_dir;
    // A release tarball is sent as its SHA-256; Ed25519 signs a short
    // manifest whole (at most 4 KiB).
    let tarball = dir.join("keyward-1.0.0.tar.gz");
    std::fs::write(&tarball, vec![42u8; 300_000])?;
    let manifest = dir.join("release-manifest.txt");
    std::fs::write(&manifest, "keyward-1.0.0.tar.gz sha256 ...\n")?;

    for (name, algorithm) in kinds {
        // One copy per key, so each keeps its own .sig and .pem.
        let file = &dir.join(format!("{name}-artefact"));
        let source = if algorithm == "ED25519" {
            &manifest
        } else {
            &tarball
        };
        std::fs::copy(source, file)?;
        let (ok, stderr) = cli.sign(name, file, None).await?;
        ensure!(ok, "keyward sign with {name}: {stderr}");
        let public = PathBuf::from(format!("{}.pem", file.display()));
        openssl_verify(algorithm, &public, file, &sig(file))?;
        let (ok, stderr) = cli.verify(name, file, &sig(file)).await?;
        ensure!(
            ok && stderr.contains("version 1"),
            "keyward verify {name}: {stderr}"
        );
        println!("{algorithm}: signed through the cluster, verified by openssl and keyward verify");
    }
    let tampered = dir.join("tampered.tar.gz");
    std::fs::write(&tampered, vec![43u8; 300_000])?;
    let signed = dir.join("release-ec-artefact");
    let (ok, stderr) = cli.verify("release-ec", &tampered, &sig(&signed)).await?;
    ensure!(
        !ok && stderr.contains("does not verify"),
        "tampered artefact: {stderr}"
    );

    refused_without_the_right(client, flow, &cli, &tarball).await?;
    rotation_then_compromise(flow, &cli, &signed).await
}

/// A ServiceAccount that may create SignatureRequests but was granted no
/// `sign` is refused with what to ask for; a Role in the key's namespace
/// naming the key lets it sign.
async fn refused_without_the_right(
    client: &Client,
    flow: &Flow,
    cli: &Cli<'_>,
    file: &Path,
) -> Result<()> {
    let token = service_account_token(client, &flow.app_ns, "releaser").await?;
    let token_file = flow.out_dir.join("releaser.token");
    std::fs::write(&token_file, token)?;
    grant(client, &flow.app_ns, "releaser", "signaturerequests").await?;
    let own = flow.out_dir.join("releaser-artefact");
    std::fs::copy(file, &own)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let stderr = loop {
        let (ok, stderr) = cli.sign("release-ec", &own, Some(&token_file)).await?;
        ensure!(!ok, "a user without `sign` signed");
        if !stderr.contains("no permission") || Instant::now() > deadline {
            break stderr;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    ensure!(
        stderr.contains("may not sign managedkeys.keyward.io/release-ec")
            && stderr.contains(&format!("an admin of `{}` grants it", flow.release_ns)),
        "{stderr}"
    );

    let role = json!({
        "metadata": { "name": "release-signer" },
        "rules": [{ "apiGroups": ["keyward.io"], "resources": ["managedkeys"],
                    "resourceNames": ["release-ec"], "verbs": ["sign"] }],
    });
    Api::<Role>::namespaced(client.clone(), &flow.release_ns)
        .create(&PostParams::default(), &serde_json::from_value(role)?)
        .await?;
    let binding = json!({
        "metadata": { "name": "release-signer" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "release-signer" },
        "subjects": [{ "kind": "ServiceAccount", "name": "releaser", "namespace": flow.app_ns }],
    });
    Api::<RoleBinding>::namespaced(client.clone(), &flow.release_ns)
        .create(&PostParams::default(), &serde_json::from_value(binding)?)
        .await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (ok, stderr) = cli.sign("release-ec", &own, Some(&token_file)).await?;
        if ok {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "granted `sign`, still refused: {stderr}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("a user without `sign` refused with what to ask for; signed once a Role granted it");
    Ok(())
}

/// After a rotation the old signature of `signed` still verifies (by
/// version 1) and new ones come from version 2; after a compromise of
/// every version the old signature is refused.
async fn rotation_then_compromise(flow: &Flow, cli: &Cli<'_>, signed: &Path) -> Result<()> {
    let key = format!("{}/release-ec", flow.release_ns);
    let (ok, stderr) = cli.run(&["rotate", &key, "--wait"], None).await?;
    ensure!(ok, "keyward rotate: {stderr}");
    let (ok, stderr) = cli.verify("release-ec", signed, &sig(signed)).await?;
    ensure!(
        ok && stderr.contains("version 1"),
        "after rotation: {stderr}"
    );
    let second = flow.out_dir.join("keyward-1.0.1.tar.gz");
    std::fs::write(&second, vec![7u8; 300_000])?;
    let (ok, stderr) = cli.sign("release-ec", &second, None).await?;
    ensure!(
        ok && stderr.contains("version 2"),
        "sign after rotation: {stderr}"
    );

    let (ok, stderr) = cli
        .run(
            &["compromise", &key, "--reason", "e2e: key leaked", "--wait"],
            None,
        )
        .await?;
    ensure!(ok, "keyward compromise: {stderr}");
    let (ok, stderr) = cli.verify("release-ec", signed, &sig(signed)).await?;
    ensure!(
        !ok && stderr.contains("Compromised: do not trust it"),
        "a compromised version's signature: {stderr}"
    );
    println!("rotation keeps version 1's signature verifiable; a compromise makes it refused");
    Ok(())
}
