//! Flags, each with an environment-variable fallback.

use crate::error::Error;
use crate::managed_key::claim::ClaimSettings;
use clap::Parser;
use std::path::PathBuf;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "keyward-operator",
    version,
    about = "Reconciles Keyward ManagedKeys and SealedSecrets"
)]
pub struct Config {
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, env = "KEYWARD_LOG_FORMAT", default_value = "text")]
    pub log_format: keyward_kubeutil::logging::LogFormat,

    /// Namespace the operator runs in; holds the local keyring Secrets.
    #[arg(long, env = "KEYWARD_NAMESPACE", default_value = "keyward-system")]
    pub namespace: String,

    /// Only watch this namespace (default: every namespace).
    #[arg(long, env = "KEYWARD_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Secret holding the local provider's encrypted keyring.
    #[arg(
        long,
        env = "KEYWARD_KEYRING_SECRET",
        default_value = "keyward-local-keyring"
    )]
    pub keyring_secret: String,

    /// Secret holding the local keyring's root key; created if absent, never overwritten.
    #[arg(
        long,
        env = "KEYWARD_ROOT_KEY_SECRET",
        default_value = "keyward-local-root-key"
    )]
    pub root_key_secret: String,

    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "KEYWARD_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,

    /// Hash-chained audit log of every key operation.
    #[arg(
        long,
        env = "KEYWARD_AUDIT_LOG",
        default_value = "/var/lib/keyward/audit.log"
    )]
    pub audit_log: PathBuf,

    /// The active audit segment is rotated before it passes this size.
    #[arg(long, env = "KEYWARD_AUDIT_MAX_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub audit_max_bytes: u64,

    /// Rotated audit segments kept, oldest deleted first (0 keeps all).
    /// Disk use is at most (this + 1) x --audit-max-bytes.
    #[arg(long, env = "KEYWARD_AUDIT_KEEP_SEGMENTS", default_value_t = 4)]
    pub audit_keep_segments: usize,

    /// Also print every audit record as one JSON line on stdout.
    #[arg(long, env = "KEYWARD_AUDIT_STDOUT", default_value_t = true, action = clap::ArgAction::Set)]
    pub audit_stdout: bool,

    /// Lease that elects the one replica running the controllers.
    #[arg(long, env = "KEYWARD_LEASE_NAME", default_value = "keyward-operator")]
    pub lease_name: String,

    /// This replica's name in the Lease (default: the pod name, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How long a Lease holds without renewal before a standby takes over (seconds).
    #[arg(long, env = "KEYWARD_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration_secs: u64,

    /// How often the leader renews, and a standby retries (milliseconds).
    #[arg(long, env = "KEYWARD_LEASE_RENEW_MS", default_value_t = 2_000)]
    pub renew_interval_ms: u64,

    /// Write a Kubernetes Secret for each SealedSecret with `spec.template`
    /// (needs RBAC on Secrets). Off: Secrets are neither watched nor written.
    #[arg(long, env = "KEYWARD_MATERIALIZE_SECRETS", default_value_t = false)]
    pub materialize_secrets: bool,

    /// Reconciles each controller runs at once (0: unbounded). Bounds the
    /// operator's memory and its load on the API server at cold start.
    #[arg(long, env = "KEYWARD_MAX_CONCURRENT_RECONCILES", default_value_t = 16)]
    pub max_concurrent_reconciles: u16,

    /// How long the decoded local keyring is reused before it is read again
    /// (seconds; 0: on every provider call). A key or version it lacks
    /// reloads at once; its own writes keep it current.
    #[arg(long, env = "KEYWARD_KEYRING_CACHE_SECONDS", default_value_t = 5)]
    pub keyring_cache_seconds: u64,

    /// This cluster's id in its claims on KMS and HSM keys (default: the
    /// uid of the `kube-system` namespace, which a rebuilt cluster does not
    /// share). Lowercase letters, digits and `-`, at most 63.
    #[arg(long, env = "KEYWARD_CLUSTER_ID")]
    pub cluster_id: Option<String>,

    /// How long another cluster's claim on a key holds without renewal
    /// before this cluster may take the key over (seconds). The claim is
    /// renewed every quarter of it.
    #[arg(long, env = "KEYWARD_KEY_CLAIM_LEASE_SECONDS", default_value_t = 3600)]
    pub key_claim_lease_seconds: u64,

    /// AWS KMS, Cloud KMS and PKCS#11 (the local keyring is always on).
    #[command(flatten)]
    pub providers: keyward_provider_select::ProviderArgs,
}

impl Config {
    /// Defaults for running in-process (tests): everything in `namespace`,
    /// audit log at `audit_log`.
    pub fn for_namespace(namespace: &str, audit_log: PathBuf) -> Self {
        Config {
            log_format: Default::default(),
            namespace: namespace.to_owned(),
            watch_namespace: Some(namespace.to_owned()),
            keyring_secret: "keyward-local-keyring".into(),
            root_key_secret: "keyward-local-root-key".into(),
            metrics_addr: "127.0.0.1:0".into(),
            audit_log,
            audit_max_bytes: 16 * 1024 * 1024,
            audit_keep_segments: 4,
            audit_stdout: false,
            lease_name: "keyward-operator".into(),
            identity: Some("in-process".into()),
            lease_duration_secs: 4,
            renew_interval_ms: 500,
            materialize_secrets: false,
            max_concurrent_reconciles: 16,
            keyring_cache_seconds: 5,
            cluster_id: None,
            key_claim_lease_seconds: 3600,
            providers: Default::default(),
        }
    }

    /// This cluster's claim settings; the id is read from the API server
    /// unless `--cluster-id` gives it.
    pub async fn claim_settings(
        &self,
        client: &kube::Client,
    ) -> crate::error::Result<ClaimSettings> {
        if self.key_claim_lease_seconds == 0 {
            return Err(Error::Blocked(
                "--key-claim-lease-seconds must be more than 0".into(),
            ));
        }
        if self.key_claim_lease_seconds < 60 {
            tracing::warn!(
                seconds = self.key_claim_lease_seconds,
                "--key-claim-lease-seconds under a minute: another cluster can take keys over after a short outage"
            );
        }
        let cluster = match &self.cluster_id {
            Some(id) => {
                check_cluster_id(id)?;
                id.clone()
            }
            None => kube_system_uid(client).await?,
        };
        Ok(ClaimSettings {
            cluster,
            lease: std::time::Duration::from_secs(self.key_claim_lease_seconds),
        })
    }

    /// How the audit log is written.
    pub fn audit_options(&self) -> keyward_core::audit::Options {
        keyward_core::audit::Options {
            max_bytes: self.audit_max_bytes,
            keep_segments: (self.audit_keep_segments > 0).then_some(self.audit_keep_segments),
            mirror_stdout: self.audit_stdout,
            ..keyward_core::audit::Options::default()
        }
    }

    pub fn election(&self) -> crate::leader::Election {
        let identity = self.identity.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| format!("keyward-operator-{}", std::process::id()))
        });
        crate::leader::Election {
            namespace: self.namespace.clone(),
            lease_name: self.lease_name.clone(),
            identity,
            lease_duration: std::time::Duration::from_secs(self.lease_duration_secs.max(1)),
            renew_interval: std::time::Duration::from_millis(self.renew_interval_ms.max(50)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_have_defaults_and_override() {
        let config = Config::try_parse_from(["keyward-operator"]).unwrap();
        assert_eq!(config.keyring_secret, "keyward-local-keyring");
        assert_eq!(config.root_key_secret, "keyward-local-root-key");
        assert!(config.metrics_addr.starts_with("127.0.0.1:"));
        assert_eq!(config.max_concurrent_reconciles, 16);
        assert_eq!(config.keyring_cache_seconds, 5);
        let audit = config.audit_options();
        assert_eq!(audit.max_bytes, 16 * 1024 * 1024);
        assert_eq!(audit.keep_segments, Some(4));
        assert!(audit.mirror_stdout);
        let config = Config::try_parse_from([
            "keyward-operator",
            "--namespace=ops",
            "--watch-namespace=apps",
            "--audit-log=/tmp/a.log",
            "--audit-keep-segments=0",
            "--audit-stdout=false",
        ])
        .unwrap();
        assert_eq!(config.namespace, "ops");
        assert_eq!(config.watch_namespace.as_deref(), Some("apps"));
        assert_eq!(config.audit_log, PathBuf::from("/tmp/a.log"));
        assert_eq!(config.audit_options().keep_segments, None, "0 keeps all");
        assert!(!config.audit_options().mirror_stdout);
    }

    #[test]
    fn provider_flags_are_taken() {
        let config =
            Config::try_parse_from(["keyward-operator", "--aws-region=eu-west-1"]).unwrap();
        assert_eq!(config.providers.aws_region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn secrets_are_materialised_only_when_asked() {
        let config = Config::try_parse_from(["keyward-operator"]).unwrap();
        assert!(!config.materialize_secrets);
        let config = Config::try_parse_from(["keyward-operator", "--materialize-secrets"]).unwrap();
        assert!(config.materialize_secrets);
    }
}

/// Cluster ids end up in KMS tags and Cloud KMS labels.
fn check_cluster_id(id: &str) -> crate::error::Result<()> {
    let fits = !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
        && !id.ends_with('-');
    if fits {
        Ok(())
    } else {
        Err(Error::Blocked(format!(
            "--cluster-id `{id}` must be 1 to 63 lowercase letters, digits or `-`, not starting or ending with `-`"
        )))
    }
}

/// The uid of `kube-system`: made once per cluster, so a cluster rebuilt
/// from Git gets a new one.
async fn kube_system_uid(client: &kube::Client) -> crate::error::Result<String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    let namespace = api.get("kube-system").await.map_err(|e| {
        Error::Blocked(format!(
            "reading namespace kube-system for this cluster's id: {e}; grant `get` on it, or set --cluster-id"
        ))
    })?;
    namespace
        .metadata
        .uid
        .ok_or_else(|| Error::Blocked("namespace kube-system has no uid; set --cluster-id".into()))
}

#[cfg(test)]
mod cluster_id_tests {
    use super::check_cluster_id;

    #[test]
    fn cluster_ids_must_fit_tags_and_labels() {
        assert!(check_cluster_id("0b5e2c1a-6f1e-4b7e-9d0a-3c2f1e0d9c8b").is_ok());
        assert!(check_cluster_id("prod-eu-1").is_ok());
        for bad in ["", "Prod", "prod_eu", "-prod", "prod-", &"a".repeat(64)] {
            assert!(check_cluster_id(bad).is_err(), "{bad}");
        }
    }
}
