//! `POST /v1/unseal`: the injector sends its pod-bound token and the
//! SealedSecrets it wants; after the structural checks in [`validate`],
//! TokenReview and the checks in [`authorise`], each secret is opened with
//! the provider and returned as item -> base64 — unless an item is sealed
//! under a key version that may not serve pods ([`crate::key_state::serving`])
//! or its key is another namespace's that is not shared with the pod's
//! ([`crate::key_state::sharing`]), both checked before anything is
//! decrypted. Every request that passes [`validate`] is audited; denials
//! get a generic 403, except a key-state or sharing refusal, whose 403
//! says what to do. Malformed requests get a 400 that
//! says what is wrong, and only a metric and a log line.

pub mod authorise;
pub mod csi_entitlement;
pub mod decrypt_only;
pub mod entitlement;
pub mod rate_limit;
pub mod validate;

use crate::key_state::serving::{self, Verdict};
use crate::key_state::sharing;
use crate::key_state::{Item, Keys};
use crate::metrics::metrics;
use authorise::{Caller, Denial, DenialKind};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use keyward_core::ProviderError;
use keyward_core::audit::{AuditLog, Event};
use keyward_core::envelope::{Envelope, open_secret};
use keyward_crds::SealedSecret;
use kube::api::PostParams;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

pub use decrypt_only::DecryptOnly;
pub use rate_limit::RateLimiter;

/// What the injector sends.
#[derive(Clone, Deserialize, Serialize)]
pub struct UnsealRequest {
    pub token: String,
    pub namespace: String,
    pub pod: String,
    pub secrets: Vec<String>,
}

impl fmt::Debug for UnsealRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnsealRequest")
            .field("token", &"<redacted>")
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// SealedSecret -> item -> base64 value. Zeroized when dropped.
#[derive(Serialize, Deserialize, Default)]
pub struct UnsealResponse {
    pub secrets: BTreeMap<String, BTreeMap<String, Zeroizing<String>>>,
    /// Items decrypted per ManagedKey (`namespace/name`), for the metrics;
    /// not sent.
    #[serde(skip)]
    pub decrypted_by_key: BTreeMap<String, usize>,
}

impl fmt::Debug for UnsealResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UnsealResponse(<redacted>)")
    }
}

/// The generic body every denial gets; the reason is in the audit log.
pub const DENIED: &str = "unseal denied; the reason is in the keyward audit log";

/// Everything the unseal API needs.
pub struct Unsealer {
    pub client: Client,
    pub provider: Arc<DecryptOnly>,
    pub audit: Arc<AuditLog>,
    pub limiter: RateLimiter,
    pub audience: String,
    /// The image admission gives the injector; only a pod running it may
    /// unseal.
    pub injector_image: String,
}

/// How long an unseal waits for the kubelet to report the caller's
/// injector running, and how often it looks.
const STATUS_GRACE: std::time::Duration = std::time::Duration::from_millis(2500);
const STATUS_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// One SealedSecret opened, with what its audit record says.
struct Opened {
    values: BTreeMap<String, Zeroizing<String>>,
    /// `item=version` pairs.
    versions: String,
    /// Key-state notes: a state not checked, the override used.
    notes: Vec<(&'static str, String)>,
    /// Items served from a Compromised version under the override.
    overridden: usize,
    /// The ManagedKey (`namespace/name`) the items were sealed to.
    key: String,
}

enum Failure {
    Denied(Denial),
    Limited,
    /// A provider did not answer in time: worth retrying; the message is
    /// for the caller (it names the secret and provider, nothing secret).
    Unavailable(String),
    Internal(String),
}

impl From<Denial> for Failure {
    fn from(d: Denial) -> Self {
        Failure::Denied(d)
    }
}

pub async fn handle(State(state): State<crate::AppState>, body: Body) -> Response {
    let Some(unsealer) = state.unsealer.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the unseal API is not enabled",
        )
            .into_response();
    };
    let checked = match axum::body::to_bytes(body, validate::MAX_BODY_BYTES).await {
        Ok(bytes) => validate::parse(&bytes, unsealer.limiter.burst()),
        Err(_) => Err(validate::Rejection {
            reason: validate::Invalid::TooLarge,
            message: format!(
                "the body is over {} KiB (or was cut off); an unseal request is far smaller",
                validate::MAX_BODY_BYTES / 1024
            ),
        }),
    };
    let request = match checked {
        Ok(request) => request,
        Err(rejection) => return invalid(&rejection),
    };
    let started = std::time::Instant::now();
    let subject = format!("{}/{}", request.namespace, request.secrets.join(","));
    match unsealer.unseal(&request).await {
        Ok(response) => {
            metrics().unseal_request("ok");
            for (key, items) in &response.decrypted_by_key {
                metrics().decrypted(&request.namespace, key, *items);
            }
            tracing::info!(namespace = %request.namespace, pod = %request.pod, secrets = ?request.secrets, elapsed_ms = started.elapsed().as_millis() as u64, "unsealed");
            Json(response).into_response()
        }
        Err(Failure::Denied(Denial { kind, reason })) => {
            metrics().unseal_request("denied");
            let namespace = if kind.namespace_verified() {
                request.namespace.as_str()
            } else {
                ""
            };
            metrics().unseal_denied(namespace, kind.label());
            tracing::warn!(%subject, pod = %request.pod, %reason, "unseal denied");
            if kind == DenialKind::NotRunningYet {
                // The injector retries this: its running status is on the way.
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(axum::http::header::RETRY_AFTER, "1")],
                    "the API server does not show this pod's injector running yet; retry shortly",
                )
                    .into_response();
            }
            let body = if kind.told_to_caller() {
                reason
            } else {
                DENIED.to_owned()
            };
            (StatusCode::FORBIDDEN, body).into_response()
        }
        Err(Failure::Limited) => {
            metrics().unseal_request("rate_limited");
            (
                StatusCode::TOO_MANY_REQUESTS,
                "too many unseal requests from this pod; retry shortly",
            )
                .into_response()
        }
        Err(Failure::Unavailable(message)) => {
            metrics().unseal_request("unavailable");
            tracing::warn!(%subject, pod = %request.pod, %message, "unseal timed out");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(axum::http::header::RETRY_AFTER, "1")],
                message,
            )
                .into_response()
        }
        Err(Failure::Internal(error)) => {
            metrics().unseal_request("error");
            tracing::error!(%subject, pod = %request.pod, %error, "unseal failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "unseal failed; see the webhook log",
            )
                .into_response()
        }
    }
}

/// 400 (413 when too large) for a request that failed [`validate`]:
/// counted and logged, never audited.
fn invalid(rejection: &validate::Rejection) -> Response {
    let reason = rejection.reason.label();
    metrics().unseal_request("bad_request");
    metrics().unseal_invalid(reason);
    tracing::warn!(reason, message = %rejection.message, "invalid unseal request refused");
    let status = match rejection.reason {
        validate::Invalid::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    (status, rejection.message.clone()).into_response()
}

impl Unsealer {
    async fn unseal(&self, request: &UnsealRequest) -> Result<UnsealResponse, Failure> {
        let pod_key = format!("{}/{}", request.namespace, request.pod);
        let caller = match self.authenticate(request).await {
            Ok(caller) => caller,
            Err(Failure::Denied(denial)) => {
                self.record(
                    "unauthenticated",
                    &pod_key,
                    &request.secrets,
                    "denied",
                    [("reason", denial.reason.clone())],
                )
                .await?;
                return Err(Failure::Denied(denial));
            }
            Err(Failure::Internal(error)) => {
                self.record(
                    "unknown",
                    &pod_key,
                    &request.secrets,
                    "failed",
                    [("reason", error.clone())],
                )
                .await?;
                return Err(Failure::Internal(error));
            }
            Err(other) => return Err(other),
        };
        // Keyed by the proven pod uid, so no one can use up another pod's
        // budget; one token per SealedSecret (validated: distinct, at most the burst).
        if !self.limiter.allow_n(&caller.pod_uid, request.secrets.len()) {
            self.record(
                &caller.username,
                &pod_key,
                &request.secrets,
                "denied",
                [(
                    "reason",
                    format!("rate limited ({} secrets)", request.secrets.len()),
                )],
            )
            .await?;
            return Err(Failure::Limited);
        }
        let mut response = UnsealResponse::default();
        let mut keys = Keys::new(self.client.clone());
        let mut overridden = 0;
        for name in &request.secrets {
            match self.open(&caller, name, &mut keys).await {
                Ok(opened) => {
                    let mut detail = vec![("key_versions", opened.versions)];
                    detail.extend(opened.notes);
                    self.record(
                        &caller.username,
                        &pod_key,
                        std::slice::from_ref(name),
                        "ok",
                        detail,
                    )
                    .await?;
                    overridden += opened.overridden;
                    *response.decrypted_by_key.entry(opened.key).or_default() +=
                        opened.values.len();
                    response.secrets.insert(name.clone(), opened.values);
                }
                Err(Failure::Denied(denial)) => {
                    self.record(
                        &caller.username,
                        &pod_key,
                        std::slice::from_ref(name),
                        "denied",
                        [("reason", denial.reason.clone())],
                    )
                    .await?;
                    return Err(Failure::Denied(denial));
                }
                Err(Failure::Internal(error)) => {
                    self.record(
                        &caller.username,
                        &pod_key,
                        std::slice::from_ref(name),
                        "failed",
                        [("reason", error.clone())],
                    )
                    .await?;
                    return Err(Failure::Internal(error));
                }
                Err(Failure::Unavailable(message)) => {
                    self.record(
                        &caller.username,
                        &pod_key,
                        std::slice::from_ref(name),
                        "failed",
                        [("reason", message.clone())],
                    )
                    .await?;
                    return Err(Failure::Unavailable(message));
                }
                Err(Failure::Limited) => return Err(Failure::Limited),
            }
        }
        // Counted once the whole answer is served, as decrypts are.
        if overridden > 0 {
            metrics().compromised_served(overridden);
        }
        Ok(response)
    }

    /// TokenReview, then the live pod.
    async fn authenticate(&self, request: &UnsealRequest) -> Result<Caller, Failure> {
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(request.token.clone()),
                audiences: Some(vec![self.audience.clone()]),
            },
            ..TokenReview::default()
        };
        let reviewed = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| Failure::Internal(format!("TokenReview failed: {e}")))?;
        let status = reviewed.status.unwrap_or_default();
        let caller = authorise::caller(&status, &self.audience)?;
        authorise::matches_request(&caller, &request.namespace, &request.pod)?;
        let pods = Api::<Pod>::namespaced(self.client.clone(), &caller.namespace);
        let read_pod = || async {
            pods.get_opt(&caller.pod_name)
                .await
                .map_err(|e| Failure::Internal(format!("reading the pod: {e}")))?
                .ok_or_else(|| {
                    Failure::from(Denial::new(
                        DenialKind::PodGone,
                        "the token's pod no longer exists",
                    ))
                })
        };
        let mut pod = read_pod().await?;
        let mut verdict =
            authorise::pod_may_read(&caller, &pod, &request.secrets, &self.injector_image);
        // An injector calls as soon as it runs, and the kubelet posts that
        // it runs up to a second or so later: for a pod on a node whose
        // injector is being created, re-read the pod briefly rather than
        // send the injector into its back-off.
        let until = tokio::time::Instant::now() + STATUS_GRACE;
        while matches!(&verdict, Err(d) if d.kind == DenialKind::NotRunningYet)
            && entitlement::injector_being_created(&pod)
            && tokio::time::Instant::now() < until
        {
            tokio::time::sleep(STATUS_POLL).await;
            pod = read_pod().await?;
            verdict =
                authorise::pod_may_read(&caller, &pod, &request.secrets, &self.injector_image);
        }
        verdict?;
        Ok(caller)
    }

    /// One SealedSecret: access list, key state, then decrypt.
    async fn open(&self, caller: &Caller, name: &str, keys: &mut Keys) -> Result<Opened, Failure> {
        let sealed = Api::<SealedSecret>::namespaced(self.client.clone(), &caller.namespace)
            .get_opt(name)
            .await
            .map_err(|e| Failure::Internal(format!("reading SealedSecret {name}: {e}")))?
            .ok_or_else(|| {
                Denial::new(
                    DenialKind::NoSuchSecret,
                    format!("SealedSecret `{name}` does not exist"),
                )
            })?;
        authorise::service_account_may_read(caller, &sealed)?;
        let target = crate::validate::target_of(&sealed, &caller.namespace, name);
        let envelopes: BTreeMap<&str, Option<Envelope>> = sealed
            .spec
            .encrypted_data
            .iter()
            .map(|(item, text)| (item.as_str(), Envelope::decode(text).ok()))
            .collect();
        let versions = envelopes
            .iter()
            .map(|(item, envelope)| match envelope {
                Some(e) => format!("{item}={}", e.key_version),
                None => format!("{item}=?"),
            })
            .collect::<Vec<_>>()
            .join(",");
        let (notes, overridden) = self
            .key_state(&sealed, &caller.namespace, name, &envelopes, keys)
            .await?;
        let opened = open_secret(&target, self.provider.as_ref(), &sealed.spec.encrypted_data)
            .await
            .map_err(|e| {
                use keyward_core::EnvelopeError::*;
                match &e.error {
                    Provider(timeout @ ProviderError::TimedOut { .. }) => Failure::Unavailable(
                        format!("cannot open SealedSecret `{name}` now: {timeout}; retry shortly"),
                    ),
                    Provider(p) if p.is_retryable() => Failure::Internal(e.to_string()),
                    Provider(keyward_core::ProviderError::Storage(_)) => {
                        Failure::Internal(e.to_string())
                    }
                    _ => Failure::Denied(Denial::new(
                        DenialKind::CannotOpen,
                        format!("cannot open SealedSecret `{name}`: {e}"),
                    )),
                }
            })?;
        let values = opened
            .into_iter()
            .map(|(item, value)| (item, Zeroizing::new(STANDARD.encode(value.expose()))))
            .collect();
        Ok(Opened {
            values,
            versions,
            notes,
            overridden,
            key: target.key_ref.clone(),
        })
    }

    /// Refuses the secret when an item's key version may not serve pods;
    /// otherwise returns what the audit record must add (a state not
    /// checked, the override used) and how many items the override served.
    /// Items that do not parse are left to `open_secret` to refuse.
    async fn key_state(
        &self,
        sealed: &SealedSecret,
        namespace: &str,
        name: &str,
        envelopes: &BTreeMap<&str, Option<Envelope>>,
        keys: &mut Keys,
    ) -> Result<(Vec<(&'static str, String)>, usize), Failure> {
        let key = keys.of(sealed, namespace).await.map_err(|e| {
            Failure::Internal(format!(
                "reading the ManagedKey of SealedSecret {name}: {e}"
            ))
        })?;
        if let Some(why) = sharing::sharing(&key).refusal() {
            let reason = format!("SealedSecret {name}: {why}");
            return Err(Denial::new(DenialKind::KeyNotShared, reason).into());
        }
        let now = Timestamp::now();
        let (mut unchecked, mut overridden) = (BTreeSet::new(), Vec::new());
        let mut until = None;
        for (item, envelope) in envelopes {
            let Some(envelope) = envelope else { continue };
            let item = Item::new(name, item, &key.reference, envelope);
            match serving::may_serve(key.key.as_deref(), &item, now) {
                Verdict::Serve => {}
                Verdict::Unchecked(why) => {
                    unchecked.insert(why);
                }
                Verdict::Overridden(end) => {
                    overridden.push(format!("{}={}", item.item, item.version));
                    until = Some(end);
                }
                Verdict::Refuse(reason) => {
                    return Err(Denial::new(DenialKind::KeyState, reason).into());
                }
            }
        }
        let mut notes = Vec::new();
        if !unchecked.is_empty() {
            let why = Vec::from_iter(unchecked).join("; ");
            tracing::info!(secret = name, %why, "key state not checked");
            notes.push(("key_state_unchecked", why));
        }
        let served = overridden.len();
        if let Some(until) = until {
            let what = format!(
                "served items {} on Compromised versions of ManagedKey {} under {}={until}",
                overridden.join(","),
                key.reference,
                serving::OVERRIDE
            );
            tracing::warn!(secret = name, %what, "override used");
            notes.push(("key_state_override", what));
        }
        Ok((notes, served))
    }

    async fn record(
        &self,
        actor: &str,
        pod: &str,
        secrets: &[String],
        outcome: &str,
        detail: impl IntoIterator<Item = (&str, String)>,
    ) -> Result<(), Failure> {
        let namespace = pod.split('/').next().unwrap_or_default();
        let mut details: BTreeMap<String, String> =
            detail.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        details.insert("pod".into(), pod.to_owned());
        let event = Event {
            actor: actor.to_owned(),
            action: "secret.unseal".into(),
            subject: format!("{namespace}/{}", secrets.join(",")),
            outcome: outcome.to_owned(),
            detail: details,
        };
        let audit = Arc::clone(&self.audit);
        // Fail closed: a request that cannot be recorded is refused, and
        // values already opened for it are dropped unsent.
        let written = tokio::task::spawn_blocking(move || audit.append(event))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        written.map_err(|error| {
            metrics().audit_write_failure();
            Failure::Internal(format!(
                "cannot write the audit log, so the unseal is refused: {error}"
            ))
        })
    }
}
