//! `POST /v1/rewrap`, for `keyward rewrap`: the body is a SealedSecret
//! manifest, the answer the same object with every item re-sealed under
//! its provider key's current primary version — never a value. The
//! caller's bearer token must be allowed `update` on that SealedSecret
//! ([`authorise`]). The mechanics are `keyward_core::envelope::rewrap`,
//! shared with the operator. Denials are generic; the reason is audited.
//! Each caller is rate-limited by their authenticated user name, and only
//! a ManagedKey that is Active takes re-wrapped items
//! ([`crate::key_state::wrapping`]).
//! Malformed input (a token over 8 KiB, names that are not DNS-1123) is
//! refused before any API call and not audited, as for unseal.

pub mod authorise;

use crate::key_state::sharing;
use crate::key_state::{Keys, wrapping};
use crate::metrics::metrics;
use crate::unseal::Unsealer;
use crate::unseal::authorise::Denial;
use crate::unseal::validate::{self, Invalid};
use authorise::Refusal;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keyward_core::audit::Event;
use keyward_core::envelope::Envelope;
use keyward_core::envelope::rewrap::rewrap;
use keyward_crds::SealedSecret;
use keyward_crds::validation::{is_dns_label, is_dns_subdomain};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The answer: the re-wrapped object and what moved.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewrapResponse {
    pub sealed_secret: SealedSecret,
    /// Items re-sealed, each with the version it left and the one it is on.
    pub moved: Vec<Moved>,
    pub primary_version: u32,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Moved {
    pub item: String,
    pub from: u32,
    pub to: u32,
}

/// The generic body of every denial.
pub const DENIED: &str = "rewrap denied; the reason is in the keyward audit log";

/// The largest body read: above what etcd stores for one object (1.5 MiB).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Prefix of a caller's bucket in the shared limiter (pods are keyed by uid).
const RATE_KEY_PREFIX: &str = "rewrap-user:";

pub async fn handle(
    State(state): State<crate::AppState>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(unsealer) = state.unsealer.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the rewrap API is not enabled",
        )
            .into_response();
    };
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return invalid(
            Invalid::TooLarge,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is over {} MiB (or was cut off); a SealedSecret that fits in the \
                 cluster is smaller",
                MAX_BODY_BYTES / (1024 * 1024)
            ),
        );
    };
    let Some(token) = bearer(&headers) else {
        return invalid(
            Invalid::Token,
            StatusCode::UNAUTHORIZED,
            "send your Kubernetes token as `Authorization: Bearer <token>`".into(),
        );
    };
    if let Err(rejection) = validate::check_token(&token) {
        return invalid(rejection.reason, StatusCode::BAD_REQUEST, rejection.message);
    }
    let sealed: SealedSecret = match serde_json::from_slice(&body) {
        Ok(sealed) => sealed,
        // serde's message quotes at most a few input characters of a
        // manifest (no token is in the body).
        Err(error) => {
            return invalid(
                Invalid::Body,
                StatusCode::BAD_REQUEST,
                format!("the body must be a keyward.io/v1alpha1 SealedSecret as JSON: {error}"),
            );
        }
    };
    let (Some(namespace), Some(name)) = (
        sealed.metadata.namespace.clone(),
        sealed.metadata.name.clone(),
    ) else {
        return invalid(
            Invalid::Body,
            StatusCode::BAD_REQUEST,
            "the SealedSecret needs metadata.namespace and metadata.name".into(),
        );
    };
    if !is_dns_label(&namespace) {
        let message = format!(
            "metadata.namespace `{}` is not a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)",
            validate::shown(&namespace)
        );
        return invalid(Invalid::Namespace, StatusCode::BAD_REQUEST, message);
    }
    if !is_dns_subdomain(&name) {
        let message = format!(
            "metadata.name `{}` is not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)",
            validate::shown(&name)
        );
        return invalid(Invalid::SecretName, StatusCode::BAD_REQUEST, message);
    }
    let rewrapper = Rewrapper {
        unsealer: &unsealer,
        namespace: &namespace,
        name: &name,
    };
    let (outcome, response) = rewrapper.run(&token, sealed).await;
    metrics().rewrap_request(outcome);
    response
}

/// A request refused before authentication: counted, logged at bounded
/// size, not audited (as for unseal).
fn invalid(reason: Invalid, status: StatusCode, mut message: String) -> Response {
    metrics().rewrap_request("bad_request");
    metrics().rewrap_invalid(reason.label());
    if message.len() > 300 {
        let mut cut = 300;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    tracing::warn!(reason = reason.label(), %message, "invalid rewrap request refused");
    (status, message).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?.trim();
    (!token.is_empty()).then(|| token.to_owned())
}

struct Rewrapper<'a> {
    unsealer: &'a Arc<Unsealer>,
    namespace: &'a str,
    name: &'a str,
}

impl Rewrapper<'_> {
    async fn run(&self, token: &str, sealed: SealedSecret) -> (&'static str, Response) {
        let client = &self.unsealer.client;
        let mut actor = "unauthenticated".to_owned();
        let checked = async {
            let user = authorise::identify(client, token).await?;
            actor = user.username.clone().unwrap_or_default();
            // Before the SubjectAccessReview, so a flood costs the API server little.
            if !self
                .unsealer
                .limiter
                .allow(&format!("{RATE_KEY_PREFIX}{actor}"))
            {
                return Err(Refusal::Limited);
            }
            authorise::may_update(client, &user, self.namespace, self.name).await
        }
        .await;
        match checked {
            Ok(()) => {}
            Err(Refusal::Limited) => {
                tracing::warn!(namespace = self.namespace, name = self.name, user = %actor, "rewrap rate-limited");
                self.audit(&actor, "denied", [("reason", "rate limited".to_owned())])
                    .await;
                let response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    "too many rewrap requests from your user; retry in a few seconds",
                );
                return ("rate_limited", response.into_response());
            }
            Err(Refusal::Denied(Denial { reason, .. })) => {
                tracing::warn!(namespace = self.namespace, name = self.name, %reason, "rewrap denied");
                self.audit(&actor, "denied", [("reason", reason)]).await;
                return ("denied", (StatusCode::FORBIDDEN, DENIED).into_response());
            }
            Err(Refusal::Internal(error)) => {
                tracing::error!(%error, "rewrap authorisation failed");
                self.audit(&actor, "failed", [("reason", error)]).await;
                return ("error", unavailable());
            }
        }
        match self.rewrapped(sealed).await {
            Ok(answer) => {
                metrics().rewrapped(answer.moved.len());
                let moved = answer
                    .moved
                    .iter()
                    .map(|m| format!("{}={}->{}", m.item, m.from, m.to))
                    .collect::<Vec<_>>()
                    .join(",");
                if !self.audit(&actor, "ok", [("moved", moved)]).await {
                    return ("error", unavailable());
                }
                ("ok", Json(answer).into_response())
            }
            Err((status, message)) => {
                let (outcome, audited) = match status {
                    StatusCode::CONFLICT => ("key_unusable", "refused"),
                    s if s.is_server_error() => ("error", "failed"),
                    _ => ("bad_request", "failed"),
                };
                self.audit(&actor, audited, [("reason", message.clone())])
                    .await;
                (outcome, (status, message).into_response())
            }
        }
    }

    /// Authorised: re-seal every item not on its key's primary version.
    async fn rewrapped(
        &self,
        mut sealed: SealedSecret,
    ) -> Result<RewrapResponse, (StatusCode, String)> {
        let unprocessable = |m: String| (StatusCode::UNPROCESSABLE_ENTITY, m);
        let encrypted = sealed.spec.encrypted_data.clone();
        let mut before: BTreeMap<&str, Envelope> = BTreeMap::new();
        for (item, text) in &encrypted {
            let envelope = Envelope::decode(text).map_err(|e| {
                unprocessable(format!("item `{item}` is not a Keyward envelope: {e}"))
            })?;
            before.insert(item, envelope);
        }
        let key_ids: BTreeSet<&str> = before
            .values()
            .map(|e| e.provider_key_id.as_str())
            .collect();
        let key_id = match key_ids.into_iter().collect::<Vec<_>>().as_slice() {
            [one] => one.to_string(),
            [] => return Err(unprocessable("the SealedSecret has no items".into())),
            _ => {
                return Err(unprocessable(
                    "the items are sealed under different provider keys; re-seal them with one key"
                        .into(),
                ));
            }
        };
        let provider = self.unsealer.provider.wrapping_provider();
        let info = provider.describe_key(&key_id).await.map_err(|e| {
            if e.is_retryable() {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the key provider is unavailable: {e}"),
                )
            } else {
                unprocessable(format!("cannot read provider key `{key_id}`: {e}"))
            }
        })?;
        self.key_usable(&sealed, &key_id, info.primary_version)
            .await?;
        // Each distinct wrapped DEK off the primary is one DEK request
        // (hit or miss), as for unseal, so the cache-hit figure stays right.
        let stale: BTreeSet<Vec<u8>> = before
            .values()
            .filter(|e| e.key_version != info.primary_version)
            .map(|e| e.wrapped().blob)
            .collect();
        for _ in &stale {
            metrics().dek_requested();
        }
        let target = crate::validate::target_of(&sealed, self.namespace, self.name);
        let done = rewrap(&target, &encrypted, &key_id, info.primary_version, provider)
            .await
            .map_err(|e| match &e.error {
                keyward_core::EnvelopeError::Provider(p) if p.is_retryable() => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the key provider is unavailable: {e}"),
                ),
                _ => unprocessable(format!("cannot re-wrap: {e}")),
            })?;
        let moved = done
            .items
            .iter()
            .map(|item| Moved {
                item: item.clone(),
                from: before.get(item.as_str()).map_or(0, |e| e.key_version),
                to: done.to,
            })
            .collect();
        sealed.spec.encrypted_data = done.data;
        Ok(RewrapResponse {
            sealed_secret: sealed,
            moved,
            primary_version: info.primary_version,
        })
    }

    /// The ManagedKey named by `spec.keyRef` is shared with this
    /// namespace, Active, and is `key_id` (409 with the reason otherwise).
    async fn key_usable(
        &self,
        sealed: &SealedSecret,
        key_id: &str,
        target_version: u32,
    ) -> Result<(), (StatusCode, String)> {
        let key = Keys::new(self.unsealer.client.clone())
            .of(sealed, self.namespace)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading the ManagedKey for a rewrap");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "cannot read the SealedSecret's ManagedKey; retry".to_owned(),
                )
            })?;
        if let Some(why) = sharing::sharing(&key).refusal() {
            return Err((StatusCode::CONFLICT, why));
        }
        wrapping::usable_for_wrapping(key.key.as_deref(), &key.reference, key_id, target_version)
            .map_err(|reason| (StatusCode::CONFLICT, reason))
    }

    /// Appends to the audit log; false (and logged) when it cannot.
    async fn audit<const N: usize>(
        &self,
        actor: &str,
        outcome: &str,
        detail: [(&str, String); N],
    ) -> bool {
        let event = Event {
            actor: actor.to_owned(),
            action: "secret.rewrap".into(),
            subject: format!("{}/{}", self.namespace, self.name),
            outcome: outcome.to_owned(),
            detail: detail.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        };
        let audit = Arc::clone(&self.unsealer.audit);
        let error = match tokio::task::spawn_blocking(move || audit.append(event)).await {
            Ok(Ok(())) => return true,
            Ok(Err(error)) => error.to_string(),
            Err(error) => format!("audit task: {error}"),
        };
        metrics().audit_write_failure();
        tracing::error!(%error, "cannot write the audit log, so the rewrap is refused");
        false
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "rewrap failed; retry, and see the webhook log if it persists",
    )
        .into_response()
}
