//! NodePublishVolume and NodeUnpublishVolume for an inline volume of
//! Keyward's driver: who the pod is and its token come from the kubelet
//! (`podInfoOnMount`, `tokenRequests`); the values come from the webhook's
//! unseal API on the pod's behalf, through the same authorisation as the
//! init-container injector (TokenReview, the pod's declared volumes,
//! access lists, key state). The plugin holds no decryption right of its
//! own: without the pod's token it can open nothing.

use crate::files::{self, Written};
use crate::metrics::Outcome;
use crate::mount;
use crate::proto::{AccessType, NodePublishVolumeRequest};
use keyward_webhook::unseal::UnsealRequest;
use keyward_webhook::unseal::csi_entitlement::{SECRETS_ATTRIBUTE, split};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tonic::Status;
use zeroize::Zeroizing;

const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const EPHEMERAL: &str = "csi.storage.k8s.io/ephemeral";
const TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";

/// Where the webhook's unseal API is, and whose token it takes.
pub struct Unseal {
    pub url: String,
    /// The webhook's CA (PEM), read at each publish: the file is a Secret
    /// volume the kubelet updates when the webhook renews its CA.
    pub ca_file: PathBuf,
    pub audience: String,
}

/// What one publish asks for, read from the kubelet's request.
pub struct Asked {
    pub namespace: String,
    pub pod: String,
    pub pod_uid: Option<String>,
    pub secrets: Vec<String>,
    token: Zeroizing<String>,
}

impl std::fmt::Debug for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asked")
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .field("secrets", &self.secrets)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// One entry of the kubelet's `serviceAccount.tokens` (a TokenRequest status).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IssuedToken {
    token: Zeroizing<String>,
}

/// Reads and checks what the kubelet sent; `Status` says what is wrong.
pub fn asked(request: &NodePublishVolumeRequest, audience: &str) -> Result<Asked, Status> {
    if request.target_path.is_empty() || !request.target_path.starts_with('/') {
        return Err(Status::invalid_argument(
            "target_path must be an absolute path",
        ));
    }
    let mount = request
        .volume_capability
        .as_ref()
        .and_then(|c| c.access_type.as_ref());
    if !matches!(mount, Some(AccessType::Mount(_))) {
        return Err(Status::invalid_argument(
            "Keyward's volumes are mounted file systems, not block devices",
        ));
    }
    let context = &request.volume_context;
    if context.get(EPHEMERAL).map(String::as_str) != Some("true") {
        return Err(Status::invalid_argument(
            "Keyward's CSI driver serves inline ephemeral volumes only (a `csi:` volume in the \
             pod spec), not PersistentVolumes",
        ));
    }
    let secrets = context
        .get(SECRETS_ATTRIBUTE)
        .map(|list| split(list))
        .unwrap_or_default();
    if secrets.is_empty() {
        return Err(Status::invalid_argument(
            "the volume names no SealedSecret: set volumeAttributes.secrets to `name[,name...]`",
        ));
    }
    let field = |key: &str| {
        context.get(key).cloned().ok_or_else(|| {
            Status::failed_precondition(format!(
                "the kubelet sent no `{key}`: the CSIDriver object needs podInfoOnMount: true"
            ))
        })
    };
    let (namespace, pod) = (field(POD_NAMESPACE)?, field(POD_NAME)?);
    let token = token_for(context.get(TOKENS).map(String::as_str), audience)?;
    Ok(Asked {
        namespace,
        pod,
        pod_uid: context.get(POD_UID).cloned(),
        secrets,
        token,
    })
}

/// The pod's token of `audience` from the kubelet's tokens JSON.
fn token_for(tokens: Option<&str>, audience: &str) -> Result<Zeroizing<String>, Status> {
    let missing = || {
        Status::failed_precondition(format!(
            "the kubelet sent no ServiceAccount token of audience `{audience}`: the CSIDriver \
             needs tokenRequests with that audience (on Kubernetes 1.20 also the \
             CSIServiceAccountToken feature gate on the API server and kubelet)"
        ))
    };
    let tokens = Zeroizing::new(tokens.ok_or_else(missing)?.to_owned());
    let mut issued: BTreeMap<String, IssuedToken> = serde_json::from_str(&tokens)
        .map_err(|_| Status::invalid_argument("the kubelet's serviceAccount.tokens is not JSON"))?;
    issued.remove(audience).map(|t| t.token).ok_or_else(missing)
}

/// Unseals for the pod and makes the values the volume's contents: a new
/// volume is `Mounted`, a republish `Refreshed` or `Unchanged`.
pub async fn publish(unseal: &Unseal, target: &Path, asked: Asked) -> Result<Outcome, Status> {
    let request = UnsealRequest {
        token: asked.token.to_string(),
        namespace: asked.namespace.clone(),
        pod: asked.pod.clone(),
        secrets: asked.secrets.clone(),
    };
    let ca_pem = std::fs::read_to_string(&unseal.ca_file).map_err(|error| {
        Status::unavailable(format!(
            "keyward: cannot read the webhook CA {}: {error}",
            unseal.ca_file.display()
        ))
    })?;
    let answer = keyward_webhook::inject::unseal_once(&unseal.url, &ca_pem, &request)
        .await
        .map_err(|error| {
            let message = format!("{error:#}");
            if message.starts_with("denied") {
                Status::permission_denied(format!("keyward: {message}"))
            } else {
                Status::unavailable(format!("keyward: cannot unseal now: {message}"))
            }
        })?;
    let values = files::decode(&answer.secrets).map_err(|e| Status::internal(e.to_string()))?;
    if let Some(missing) = asked.secrets.iter().find(|s| !values.contains_key(*s)) {
        return Err(Status::internal(format!(
            "keyward: the webhook returned nothing for SealedSecret `{missing}`"
        )));
    }
    let created = mount::ensure_tmpfs(target).map_err(|e| Status::internal(format!("{e:#}")))?;
    match files::write(target, &values) {
        Ok(Written::Unchanged) => Ok(Outcome::Unchanged),
        Ok(Written::Replaced) if created => Ok(Outcome::Mounted),
        Ok(Written::Replaced) => Ok(Outcome::Refreshed),
        Err(error) => {
            if created {
                let _ = mount::remove(target);
            }
            Err(Status::internal(format!(
                "keyward: writing the volume: {error:#}"
            )))
        }
    }
}

/// Wipes and unmounts the volume; a volume already gone is fine.
pub fn unpublish(target: &Path) -> Result<(), Status> {
    if mount::is_mount_point(target).map_err(|e| Status::internal(format!("{e:#}")))? {
        files::wipe_all(target);
    }
    mount::remove(target).map_err(|e| Status::internal(format!("{e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{MountVolume, VolumeCapability};
    use std::collections::HashMap;

    fn request(context: &[(&str, &str)]) -> NodePublishVolumeRequest {
        NodePublishVolumeRequest {
            volume_id: "csi-1".into(),
            target_path: "/var/lib/kubelet/pods/u/volumes/kubernetes.io~csi/v/mount".into(),
            volume_capability: Some(VolumeCapability {
                access_type: Some(AccessType::Mount(MountVolume::default())),
                access_mode: None,
            }),
            volume_context: context
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
            ..NodePublishVolumeRequest::default()
        }
    }

    const TOKENS_JSON: &str =
        r#"{"keyward":{"token":"t0k","expirationTimestamp":"2026-12-07T10:00:00Z"}}"#;

    #[test]
    fn what_the_kubelet_sends_for_an_inline_volume_is_read() {
        let asked = asked(
            &request(&[
                (EPHEMERAL, "true"),
                (SECRETS_ATTRIBUTE, "db, api"),
                (POD_NAME, "app"),
                (POD_NAMESPACE, "team"),
                (TOKENS, TOKENS_JSON),
            ]),
            "keyward",
        )
        .unwrap();
        assert_eq!(
            (asked.namespace.as_str(), asked.pod.as_str()),
            ("team", "app")
        );
        assert_eq!(asked.secrets, ["db", "api"]);
        assert_eq!(asked.token.as_str(), "t0k");
        assert!(!format!("{asked:?}").contains("t0k"), "no token in Debug");
    }

    #[test]
    fn each_missing_piece_says_what_to_configure() {
        let base = [
            (EPHEMERAL, "true"),
            (SECRETS_ATTRIBUTE, "db"),
            (POD_NAME, "app"),
            (POD_NAMESPACE, "team"),
            (TOKENS, TOKENS_JSON),
        ];
        let without = |key: &str| -> Vec<(&str, &str)> {
            base.iter().copied().filter(|(k, _)| *k != key).collect()
        };
        let cases = [
            (without(EPHEMERAL), "inline ephemeral volumes only"),
            (without(SECRETS_ATTRIBUTE), "volumeAttributes.secrets"),
            (without(POD_NAME), "podInfoOnMount"),
            (without(TOKENS), "tokenRequests"),
        ];
        for (context, says) in cases {
            let error = asked(&request(&context), "keyward").unwrap_err();
            assert!(error.message().contains(says), "{}", error.message());
        }
        let error = asked(&request(&base), "other-audience").unwrap_err();
        assert!(
            error.message().contains("`other-audience`"),
            "{}",
            error.message()
        );
        let mut block = request(&base);
        block.volume_capability = Some(VolumeCapability {
            access_type: Some(AccessType::Block(crate::proto::Empty {})),
            access_mode: None,
        });
        assert!(asked(&block, "keyward").is_err());
    }
}
