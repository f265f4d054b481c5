//! A hung AWS KMS under the real `keyward-webhook serve` binary. One
//! SealedSecret is sealed with a local key, one with a key made at moto;
//! the webhook then reaches "AWS" at a loopback server that accepts and
//! never answers. Two pods unseal the AWS secret at once (one call in
//! flight, one waiting on it in the DEK cache) while a third unseals the
//! local one over and over: the local answers stay quick, the stuck ones
//! fail at `--provider-timeout-seconds` with a 503 naming the provider, and
//! the injector binary's final error carries that reason.

use super::binaries;
use super::peers::HungServer;
use crate::{KEYRING, REGION, ROOT_KEY, reader_pod_named, seal, token_for};
use anyhow::{Context as _, Result, ensure};
use base64::Engine;
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_e2e::crds;
use keyward_provider_aws::{AwsKmsConfig, AwsKmsProvider};
use keyward_webhook::inject;
use keyward_webhook::unseal::{UnsealRequest, UnsealResponse};
use kube::{Client, ResourceExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// `--provider-timeout-seconds` of the webhook under test.
const DEADLINE: Duration = Duration::from_secs(3);
/// Slack for TokenReview, the pod and SealedSecret reads and scheduling on
/// a 2-core machine that also runs the cluster.
const TOLERANCE: Duration = Duration::from_millis(1500);
/// The longest a local unseal may take while the AWS ones hang.
const QUICK: Duration = Duration::from_secs(1);
const REASON: &str = "key provider `aws` did not answer within 3 s";

fn spec(name: &str) -> KeySpec {
    KeySpec {
        name: name.into(),
        algorithm: KeyAlgorithm::Aes256,
        owner: None,
        description: None,
    }
}

pub async fn run(client: Client, ns: String, moto: String) -> Result<()> {
    let webhook_bin =
        keyward_e2e::binaries::build_binary("keyward-webhook", "keyward-webhook", false).await?;
    crds::install_keyward_crds(&client).await?;
    let dir = tempfile::tempdir()?;

    // The local keyring Secrets the webhook reads, and a key in them.
    let local =
        keyward_kubeutil::keyring_secret::local_provider(client.clone(), &ns, KEYRING, ROOT_KEY)
            .await?;
    let local_key = local.create_key(&spec("db")).await?;
    seal(
        &client,
        &ns,
        &local,
        "local-db",
        &local_key.key_id,
        "kept-locally",
    )
    .await?;
    // A real KMS key at moto; the webhook will never reach moto.
    let aws = AwsKmsProvider::connect(AwsKmsConfig {
        region: Some(REGION.into()),
        endpoint: Some(moto),
        ..AwsKmsConfig::default()
    })
    .await?;
    let aws_key = aws.create_key(&spec("kms-db")).await?;
    seal(&client, &ns, &aws, "kms-db", &aws_key.key_id, "kept-at-kms").await?;

    let hung = HungServer::start().await?;
    let args = [
        format!("--aws-region={REGION}"),
        format!("--aws-endpoint-url={}", hung.endpoint),
        format!("--provider-timeout-seconds={}", DEADLINE.as_secs()),
    ];
    let webhook = binaries::webhook(&webhook_bin, &ns, dir.path(), &args, &[]).await?;
    let flow = Flow {
        client,
        ns,
        url: format!("{}/v1/unseal", webhook.url),
        ca_pem: webhook.ca_pem.clone(),
        hung: &hung,
        dir: dir.path(),
        webhook_bin: &webhook_bin,
    };
    let outcome = flow.run().await;
    outcome.with_context(|| webhook.process.log_tail(40))
}

struct Flow<'a> {
    client: Client,
    ns: String,
    url: String,
    ca_pem: String,
    hung: &'a HungServer,
    dir: &'a Path,
    webhook_bin: &'a Path,
}

type Timed = (Result<UnsealResponse>, Duration);

impl Flow<'_> {
    /// A pod annotated for `secret`, and the request its injector would send.
    async fn request(&self, pod: &str, secret: &str) -> Result<UnsealRequest> {
        let pod = reader_pod_named(&self.client, &self.ns, pod, secret).await?;
        Ok(UnsealRequest {
            token: token_for(&self.client, &self.ns, &pod).await?,
            namespace: self.ns.clone(),
            pod: pod.name_any(),
            secrets: vec![secret.to_owned()],
        })
    }

    /// One unseal, timed; owned, so it can run in a task of its own.
    fn unseal(&self, request: UnsealRequest) -> impl Future<Output = Timed> + Send + 'static {
        let (url, ca_pem) = (self.url.clone(), self.ca_pem.clone());
        async move {
            let started = Instant::now();
            let outcome = inject::unseal_once(&url, &ca_pem, &request).await;
            (outcome, started.elapsed())
        }
    }

    async fn run(&self) -> Result<()> {
        let stuck_a = self.request("stuck-a", "kms-db").await?;
        let stuck_b = self.request("stuck-b", "kms-db").await?;
        let quick = self.request("quick", "local-db").await?;
        let token_a = stuck_a.token.clone();

        let first = tokio::spawn(self.unseal(stuck_a));
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The same DEK: this one waits on the first one's call.
        let second = tokio::spawn(self.unseal(stuck_b));
        tokio::time::sleep(Duration::from_millis(200)).await;

        let mut quick_times = Vec::new();
        for _ in 0..5 {
            let (opened, took) = self.unseal(quick.clone()).await;
            let opened = opened.context("a local unseal failed while AWS hung")?;
            let value = opened
                .secrets
                .get("local-db")
                .and_then(|items| items.get("password"))
                .context("no local-db/password")?;
            let plain = base64::engine::general_purpose::STANDARD.decode(value.as_bytes())?;
            ensure!(plain == b"kept-locally", "local-db opened to other bytes");
            ensure!(took < QUICK, "a local unseal took {took:?} while AWS hung");
            quick_times.push(took);
        }
        ensure!(
            !first.is_finished() && !second.is_finished(),
            "the AWS unseals ended before the local ones: nothing was shown"
        );
        ensure!(
            self.hung.accepted() >= 1,
            "the webhook never reached the hung KMS"
        );

        let (first, first_took) = first.await?;
        let (second, second_took) = second.await?;
        for (who, outcome) in [("first", first), ("second", second)] {
            let error = format!(
                "{:#}",
                outcome.err().context("unsealed through a hung KMS?")?
            );
            ensure!(
                error.contains("503") && error.contains(REASON) && error.contains("kms-db"),
                "{who}: {error}"
            );
        }
        ensure!(
            first_took >= DEADLINE && first_took < DEADLINE + TOLERANCE,
            "the first stuck unseal failed after {first_took:?}, not at the {DEADLINE:?} deadline"
        );
        // It queued 300 ms after the first and shares its outcome.
        ensure!(
            second_took < DEADLINE + TOLERANCE,
            "the waiting unseal failed after {second_took:?}"
        );
        let audit = std::fs::read_to_string(self.dir.join("unseal.log"))?;
        ensure!(
            audit.contains(REASON),
            "the failures are not in the audit log"
        );
        println!(
            "hung KMS: local unseals {:?} (max {:?}) while AWS hung; stuck unseals failed after {first_took:?} and {second_took:?} (deadline {DEADLINE:?}); {} connection(s) accepted by the hung server",
            quick_times,
            quick_times.iter().max().copied().unwrap_or_default(),
            self.hung.accepted()
        );
        self.injector_reports_the_reason(&token_a).await
    }

    /// The injector binary, as the init container runs it, gives up with
    /// the webhook's reason in its final error.
    async fn injector_reports_the_reason(&self, token: &str) -> Result<()> {
        let token_file = self.dir.join("stuck-a.token");
        std::fs::write(&token_file, token)?;
        let ca_file = self.dir.join("webhook-ca.pem");
        let started = Instant::now();
        let output = tokio::process::Command::new(self.webhook_bin)
            .args(["inject", "--secrets", "kms-db", "--deadline-seconds", "6"])
            .arg("--token-file")
            .arg(&token_file)
            .arg("--ca-file")
            .arg(&ca_file)
            .arg("--mount-path")
            .arg(self.dir.join("mnt"))
            .args(["--unseal-url", &self.url, "--namespace", &self.ns])
            .args(["--pod", "stuck-a"])
            .output()
            .await?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(!output.status.success(), "the injector succeeded: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        ensure!(
            last.starts_with("keyward-inject: gave up") && last.contains(REASON),
            "the injector's final error lacks the reason:\n{stderr}"
        );
        println!("injector gave up after {:?}: {last}", started.elapsed());
        Ok(())
    }
}
