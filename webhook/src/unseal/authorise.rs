//! Where unseal is authorised. Each check returns the reason for the audit
//! log; the caller sees a generic denial, except for a key-state refusal
//! (`DenialKind::KeyState`), which comes after every check here.

use super::entitlement;
use k8s_openapi::api::authentication::v1::TokenReviewStatus;
use k8s_openapi::api::core::v1::Pod;
use keyward_crds::SealedSecret;

pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
pub const POD_UID_EXTRA: &str = "authentication.kubernetes.io/pod-uid";

/// The identity a TokenReview proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `system:serviceaccount:<namespace>:<name>`.
    pub username: String,
    pub namespace: String,
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
}

/// Why a request was refused: for the audit log, and for the caller only
/// when [`DenialKind::told_to_caller`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: DenialKind,
    pub reason: String,
}

impl Denial {
    pub fn new(kind: DenialKind, reason: impl Into<String>) -> Self {
        Denial {
            kind,
            reason: reason.into(),
        }
    }
}

/// The bounded set of denial reasons, for the metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenialKind {
    /// TokenReview did not authenticate the token (expired, revoked, forged).
    Unauthenticated,
    WrongAudience,
    /// Not a pod-bound ServiceAccount token (or not a ServiceAccount at all).
    NotPodToken,
    /// The request names another namespace or pod than the token's.
    RequestMismatch,
    /// The token's pod is gone, replaced or terminating.
    PodGone,
    ServiceAccountMismatch,
    /// The pod has no injector admitted by Keyward (or a look-alike).
    NotInjected,
    /// The pod is past start-up: its injector has finished.
    NotStarting,
    /// The pod's injector is not running as far as the API server knows
    /// (not started, or its status not posted yet): the caller may retry.
    NotRunningYet,
    /// A secret the pod was not admitted for.
    NotEntitled,
    AccessList,
    NoSuchSecret,
    /// The envelope did not open (tampered, wrong scope, disabled version).
    CannotOpen,
    /// An item is sealed under a key version that may not serve pods
    /// (`crate::key_state::serving`).
    KeyState,
    /// The SealedSecret names another namespace's ManagedKey that is not
    /// shared with its namespace (`crate::key_state::sharing`).
    KeyNotShared,
    /// Rewrap, online seal, validate: SubjectAccessReview said no.
    Forbidden,
    BadRequest,
}

impl DenialKind {
    /// Whether the request's namespace is the caller's own by now (the
    /// token checked and matched): only then may it become a metric
    /// label, or anyone could mint series with made-up namespaces.
    pub fn namespace_verified(self) -> bool {
        !matches!(
            self,
            DenialKind::Unauthenticated
                | DenialKind::WrongAudience
                | DenialKind::NotPodToken
                | DenialKind::RequestMismatch
                | DenialKind::BadRequest
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            DenialKind::Unauthenticated => "unauthenticated",
            DenialKind::WrongAudience => "wrong_audience",
            DenialKind::NotPodToken => "not_pod_token",
            DenialKind::RequestMismatch => "request_mismatch",
            DenialKind::PodGone => "pod_gone",
            DenialKind::ServiceAccountMismatch => "service_account_mismatch",
            DenialKind::NotInjected => "not_injected",
            DenialKind::NotStarting => "not_starting",
            DenialKind::NotRunningYet => "not_running_yet",
            DenialKind::NotEntitled => "not_entitled",
            DenialKind::AccessList => "access_list",
            DenialKind::NoSuchSecret => "no_such_secret",
            DenialKind::CannotOpen => "cannot_open",
            DenialKind::KeyState => "key_state",
            DenialKind::KeyNotShared => "key_not_shared",
            DenialKind::Forbidden => "forbidden",
            DenialKind::BadRequest => "bad_request",
        }
    }
}

impl DenialKind {
    /// Whether the reason goes to the caller instead of the generic denial:
    /// only a key-state or key-sharing refusal, which is decided after the
    /// caller proved it is entitled to the secret and names only that
    /// secret's key, its state or sharing, and what to do.
    pub fn told_to_caller(self) -> bool {
        matches!(self, DenialKind::KeyState | DenialKind::KeyNotShared)
    }
}

fn deny<T>(kind: DenialKind, reason: impl Into<String>) -> Result<T, Denial> {
    Err(Denial::new(kind, reason))
}

/// Reads the caller from a TokenReview status: authenticated, for our
/// audience, a ServiceAccount, and bound to a pod.
pub fn caller(status: &TokenReviewStatus, audience: &str) -> Result<Caller, Denial> {
    if status.authenticated != Some(true) {
        let why = status.error.as_deref().unwrap_or("not authenticated");
        return deny(
            DenialKind::Unauthenticated,
            format!("TokenReview rejected the token: {why}"),
        );
    }
    // The API server lists the audiences the token was accepted for.
    if let Some(audiences) = &status.audiences
        && !audiences.iter().any(|a| a == audience)
    {
        return deny(
            DenialKind::WrongAudience,
            format!("token is not for audience `{audience}`"),
        );
    }
    let Some(user) = &status.user else {
        return deny(DenialKind::NotPodToken, "TokenReview returned no user");
    };
    let username = user.username.clone().unwrap_or_default();
    let Some(rest) = username.strip_prefix("system:serviceaccount:") else {
        return deny(
            DenialKind::NotPodToken,
            format!("`{username}` is not a ServiceAccount"),
        );
    };
    let Some((namespace, service_account)) = rest.split_once(':') else {
        return deny(
            DenialKind::NotPodToken,
            format!("malformed ServiceAccount user `{username}`"),
        );
    };
    let extra = |key: &str| {
        user.extra
            .as_ref()
            .and_then(|e| e.get(key))
            .and_then(|v| v.first())
            .cloned()
    };
    let (Some(pod_name), Some(pod_uid)) = (extra(POD_NAME_EXTRA), extra(POD_UID_EXTRA)) else {
        return deny(DenialKind::NotPodToken, "token is not bound to a pod");
    };
    Ok(Caller {
        username: username.clone(),
        namespace: namespace.to_owned(),
        service_account: service_account.to_owned(),
        pod_name,
        pod_uid,
    })
}

/// The caller's claims in the request body must match its token.
pub fn matches_request(caller: &Caller, namespace: &str, pod: &str) -> Result<(), Denial> {
    if caller.namespace != namespace {
        return deny(
            DenialKind::RequestMismatch,
            format!(
                "token is for namespace `{}`, request names `{namespace}`",
                caller.namespace
            ),
        );
    }
    if caller.pod_name != pod {
        return deny(
            DenialKind::RequestMismatch,
            format!(
                "token is bound to pod `{}`, request names `{pod}`",
                caller.pod_name
            ),
        );
    }
    Ok(())
}

/// The live pod must be the one the token is bound to, run as the token's
/// ServiceAccount, be starting with the injector admission gave it
/// (`entitlement`), and have been admitted for every requested secret.
pub fn pod_may_read(
    caller: &Caller,
    pod: &Pod,
    secrets: &[String],
    injector_image: &str,
) -> Result<(), Denial> {
    if pod.metadata.uid.as_deref() != Some(caller.pod_uid.as_str()) {
        return deny(
            DenialKind::PodGone,
            "pod was replaced: its uid differs from the token's",
        );
    }
    if pod.metadata.deletion_timestamp.is_some() {
        return deny(DenialKind::PodGone, "pod is being deleted");
    }
    let service_account = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.as_deref())
        .unwrap_or("default");
    if service_account != caller.service_account {
        return deny(
            DenialKind::ServiceAccountMismatch,
            format!(
                "pod runs as ServiceAccount `{service_account}`, token is for `{}`",
                caller.service_account
            ),
        );
    }
    // A pod injected by the webhook is served its injector; one with only
    // Keyward's CSI volume, the kubelet's CSI call.
    let injected = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|init| {
            init.iter()
                .any(|c| c.name == crate::annotations::INIT_CONTAINER)
        });
    let (entitled, declared_by, note) = match super::csi_entitlement::declared(pod) {
        Some(_) if !injected => (
            super::csi_entitlement::entitled(pod)?,
            "its Keyward CSI volumes name",
            "",
        ),
        _ => (
            entitlement::fixed_at_admission(pod, injector_image)?,
            "the pod was admitted for",
            "; editing the annotation after admission changes nothing",
        ),
    };
    if let Some(missing) = secrets.iter().find(|s| !entitled.contains(s)) {
        return deny(
            DenialKind::NotEntitled,
            format!(
                "SealedSecret `{missing}` is not among those {declared_by} ({}){note}",
                entitled.join(",")
            ),
        );
    }
    Ok(())
}

/// `spec.access.serviceAccounts`, when set, must name the caller's.
pub fn service_account_may_read(caller: &Caller, sealed: &SealedSecret) -> Result<(), Denial> {
    match &sealed.spec.access {
        Some(access)
            if !access.service_accounts.is_empty()
                && !access.service_accounts.contains(&caller.service_account) =>
        {
            deny(
                DenialKind::AccessList,
                format!(
                    "ServiceAccount `{}` is not in spec.access.serviceAccounts",
                    caller.service_account
                ),
            )
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unseal::entitlement::tests::{IMAGE, admitted_pod};
    use k8s_openapi::api::authentication::v1::UserInfo;
    use serde_json::json;

    fn status(audiences: &[&str], extra: bool) -> TokenReviewStatus {
        let mut map = std::collections::BTreeMap::new();
        if extra {
            map.insert(POD_NAME_EXTRA.to_owned(), vec!["app".to_owned()]);
            map.insert(POD_UID_EXTRA.to_owned(), vec!["uid-1".to_owned()]);
        }
        TokenReviewStatus {
            authenticated: Some(true),
            audiences: Some(audiences.iter().map(|s| s.to_string()).collect()),
            user: Some(UserInfo {
                username: Some("system:serviceaccount:team:api".into()),
                extra: Some(map),
                ..UserInfo::default()
            }),
            error: None,
        }
    }

    fn pod(secrets: &str, sa: &str, uid: &str) -> Pod {
        let mut pod = admitted_pod(secrets, "running");
        pod["metadata"]["uid"] = json!(uid);
        pod["spec"]["serviceAccountName"] = json!(sa);
        serde_json::from_value(pod).unwrap()
    }

    #[test]
    fn caller_needs_audience_and_pod_binding() {
        let ok = caller(&status(&["keyward"], true), "keyward").unwrap();
        assert_eq!(ok.service_account, "api");
        assert_eq!(ok.namespace, "team");
        assert!(caller(&status(&["other"], true), "keyward").is_err());
        let unbound = caller(&status(&["keyward"], false), "keyward").unwrap_err();
        assert!(unbound.reason.contains("not bound to a pod"));
        let mut rejected = status(&["keyward"], true);
        rejected.authenticated = Some(false);
        assert!(caller(&rejected, "keyward").is_err());
    }

    #[test]
    fn pod_checks() {
        let who = caller(&status(&["keyward"], true), "keyward").unwrap();
        let db = vec!["db".to_owned()];
        assert!(pod_may_read(&who, &pod("db, api", "api", "uid-1"), &db, IMAGE).is_ok());
        let not_entitled = pod_may_read(&who, &pod("api", "api", "uid-1"), &db, IMAGE).unwrap_err();
        assert_eq!(not_entitled.kind, DenialKind::NotEntitled);
        assert!(
            not_entitled.reason.contains("not among"),
            "{not_entitled:?}"
        );
        let other_sa = pod_may_read(&who, &pod("db", "other", "uid-1"), &db, IMAGE).unwrap_err();
        assert_eq!(other_sa.kind, DenialKind::ServiceAccountMismatch);
        let replaced = pod_may_read(&who, &pod("db", "api", "uid-2"), &db, IMAGE).unwrap_err();
        assert_eq!(replaced.kind, DenialKind::PodGone);
        let other_image =
            pod_may_read(&who, &pod("db", "api", "uid-1"), &db, "other/injector:test");
        assert_eq!(other_image.unwrap_err().kind, DenialKind::NotInjected);
        assert!(matches_request(&who, "team", "app").is_ok());
        assert!(matches_request(&who, "team", "other").is_err());
        assert!(matches_request(&who, "prod", "app").is_err());
    }

    #[test]
    fn access_list_is_enforced_when_set() {
        let who = caller(&status(&["keyward"], true), "keyward").unwrap();
        let sealed = |sas: serde_json::Value| -> SealedSecret {
            serde_json::from_value(json!({
                "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
                "metadata": {"name": "db", "namespace": "team"},
                "spec": {"keyRef": {"name": "k"}, "encryptedData": {}, "access": sas},
            }))
            .unwrap()
        };
        assert!(
            service_account_may_read(&who, &sealed(json!({"serviceAccounts": ["api"]}))).is_ok()
        );
        assert!(service_account_may_read(&who, &sealed(json!({"serviceAccounts": []}))).is_ok());
        assert!(
            service_account_may_read(&who, &sealed(json!({"serviceAccounts": ["web"]}))).is_err()
        );
    }
}
