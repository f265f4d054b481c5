//! The pod label and annotations users write, and the names of what the
//! webhook adds.

/// The pod label that opts a pod in: the chart's objectSelector sends only
/// pods labelled `keyward.io/injection: enabled` to the webhook, so a
/// Keyward outage cannot block any other pod. Labels, unlike annotations,
/// are visible to an objectSelector.
pub const INJECTION_LABEL: &str = "keyward.io/injection";
pub const INJECTION_ENABLED: &str = "enabled";
/// Comma-separated SealedSecret names to inject.
pub const INJECT: &str = "keyward.io/inject";
/// Where the secrets appear in the app containers.
pub const MOUNT_PATH: &str = "keyward.io/mount-path";
pub const DEFAULT_MOUNT_PATH: &str = "/run/keyward";
/// How the values reach the pod: `init` (default: the `keyward-inject` init
/// container writes a memory volume) or `csi` (Keyward's CSI driver mounts
/// them and refreshes them in the running pod; `docs/csi.md`).
pub const DELIVERY: &str = "keyward.io/delivery";
/// `"true"`: the values reach the app's main process as environment
/// variables, through an exec wrapper, instead of being read as files.
pub const ENV_EXEC: &str = "keyward.io/env-exec";

/// Name of the init container, the memory volume and the token volume.
pub const INIT_CONTAINER: &str = "keyward-inject";
pub const SECRETS_VOLUME: &str = "keyward-secrets";
pub const TOKEN_VOLUME: &str = "keyward-token";
/// Where the init container finds its projected token.
pub const TOKEN_DIR: &str = "/var/run/secrets/keyward.io/token";
pub const TOKEN_FILE: &str = "token";
/// The audience the injector's token is bound to; TokenReview checks it.
pub const AUDIENCE: &str = "keyward";
/// The API server's minimum for projected tokens.
pub const TOKEN_EXPIRY_SECONDS: i64 = 600;

/// The SealedSecret names a pod asks for, in order, without duplicates or blanks.
pub fn requested_secrets(value: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_secrets_trims_and_deduplicates() {
        assert_eq!(requested_secrets(" db, api ,,db"), vec!["db", "api"]);
        assert!(requested_secrets(" , ").is_empty());
    }
}
