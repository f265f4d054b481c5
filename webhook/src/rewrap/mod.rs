//! Re-wrapping for a `SealedSecretReview` with action `Rewrap` (`keyward
//! rewrap`): the answer is the SealedSecret's items re-sealed under its
//! provider key's current primary version — never a value. The caller,
//! as the API server authenticated them, must be allowed `update` on that
//! SealedSecret ([`authorise`]). The mechanics are
//! `keyward_core::envelope::rewrap`, shared with the operator. Each caller
//! is rate-limited by user name, and only a ManagedKey that is Active
//! takes re-wrapped items ([`crate::key_state::wrapping`]). Refusals are
//! audited and told to the caller, who is authenticated.

pub mod authorise;

use crate::key_state::sharing;
use crate::key_state::{Keys, wrapping};
use crate::metrics::metrics;
use crate::unseal::Unsealer;
use crate::unseal::authorise::Denial;
use authorise::Refusal;
use k8s_openapi::api::authentication::v1::UserInfo;
use keyward_core::audit::Event;
use keyward_core::envelope::Envelope;
use keyward_core::envelope::rewrap::rewrap;
use keyward_crds::{MovedItem, SealedSecret, SealedSecretReviewStatus};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Prefix of a caller's bucket in the shared limiter (pods are keyed by uid).
const RATE_KEY_PREFIX: &str = "rewrap-user:";

pub struct Rewrapper<'a> {
    pub unsealer: &'a Arc<Unsealer>,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Rewrapper<'_> {
    /// The re-wrapped items for `user`, or the sentence to refuse with.
    pub async fn run(
        &self,
        user: &UserInfo,
        sealed: SealedSecret,
    ) -> Result<SealedSecretReviewStatus, String> {
        let (outcome, answer) = self.answer(user, sealed).await;
        metrics().rewrap_request(outcome);
        answer
    }

    async fn answer(
        &self,
        user: &UserInfo,
        sealed: SealedSecret,
    ) -> (&'static str, Result<SealedSecretReviewStatus, String>) {
        let actor = user.username.clone().unwrap_or_default();
        let checked = async {
            // Before the SubjectAccessReview, so a flood costs the API server little.
            if !self
                .unsealer
                .limiter
                .allow(&format!("{RATE_KEY_PREFIX}{actor}"))
            {
                return Err(Refusal::Limited);
            }
            authorise::may_update(&self.unsealer.client, user, self.namespace, self.name).await
        }
        .await;
        match checked {
            Ok(()) => {}
            Err(Refusal::Limited) => {
                tracing::warn!(namespace = self.namespace, name = self.name, user = %actor, "rewrap rate-limited");
                self.audit(&actor, "denied", [("reason", "rate limited".to_owned())])
                    .await;
                let why = "too many rewrap requests from your user; retry in a few seconds";
                return ("rate_limited", Err(why.into()));
            }
            Err(Refusal::Denied(Denial { reason, .. })) => {
                tracing::warn!(namespace = self.namespace, name = self.name, %reason, "rewrap denied");
                self.audit(&actor, "denied", [("reason", reason.clone())])
                    .await;
                return ("denied", Err(reason));
            }
            Err(Refusal::Internal(error)) => {
                tracing::error!(%error, "rewrap authorisation failed");
                self.audit(&actor, "failed", [("reason", error)]).await;
                return ("error", Err(UNAVAILABLE.into()));
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
                    return ("error", Err(UNAVAILABLE.into()));
                }
                ("ok", Ok(answer))
            }
            Err(Failed { outcome, message }) => {
                let audited = if outcome == "key_unusable" {
                    "refused"
                } else {
                    "failed"
                };
                self.audit(&actor, audited, [("reason", message.clone())])
                    .await;
                (outcome, Err(message))
            }
        }
    }

    /// Authorised: re-seal every item not on its key's primary version.
    async fn rewrapped(&self, sealed: SealedSecret) -> Result<SealedSecretReviewStatus, Failed> {
        let encrypted = &sealed.spec.encrypted_data;
        let mut before: BTreeMap<&str, Envelope> = BTreeMap::new();
        for (item, text) in encrypted {
            let envelope = Envelope::decode(text).map_err(|e| {
                Failed::input(format!("item `{item}` is not a Keyward envelope: {e}"))
            })?;
            before.insert(item, envelope);
        }
        let key_ids: BTreeSet<&str> = before
            .values()
            .map(|e| e.provider_key_id.as_str())
            .collect();
        let key_id = match key_ids.into_iter().collect::<Vec<_>>().as_slice() {
            [one] => one.to_string(),
            [] => return Err(Failed::input("the SealedSecret has no items".into())),
            _ => {
                return Err(Failed::input(
                    "the items are sealed under different provider keys; re-seal them with one key"
                        .into(),
                ));
            }
        };
        let provider = self.unsealer.provider.wrapping_provider();
        let info = provider.describe_key(&key_id).await.map_err(|e| {
            if e.is_retryable() {
                Failed::provider(&e)
            } else {
                Failed::input(format!("cannot read provider key `{key_id}`: {e}"))
            }
        })?;
        let primary = (self.usable_primary(&sealed, &key_id, info.primary_version)).await?;
        // Each distinct wrapped DEK off the primary is one DEK request
        // (hit or miss), as for unseal, so the cache-hit figure stays right.
        let stale: BTreeSet<Vec<u8>> = before
            .values()
            .filter(|e| e.key_version != primary)
            .map(|e| e.wrapped().blob)
            .collect();
        for _ in &stale {
            metrics().dek_requested();
        }
        let target = crate::validate::target_of(&sealed, self.namespace, self.name);
        let done = rewrap(&target, encrypted, &key_id, primary, provider)
            .await
            .map_err(|e| match &e.error {
                keyward_core::EnvelopeError::Provider(p) if p.is_retryable() => {
                    Failed::provider(&e)
                }
                _ => Failed::input(format!("cannot re-wrap: {e}")),
            })?;
        let moved = done
            .items
            .iter()
            .map(|item| MovedItem {
                item: item.clone(),
                from: before.get(item.as_str()).map_or(0, |e| e.key_version),
                to: done.to,
            })
            .collect();
        Ok(SealedSecretReviewStatus {
            encrypted_data: done.data,
            moved,
            primary_version: Some(info.primary_version),
            items: Vec::new(),
        })
    }

    /// The version to re-wrap under: the one the cluster reports primary
    /// (the provider's own view may lag a rotation), else `provider_primary`.
    /// Refused unless the ManagedKey named by `spec.keyRef` is shared with
    /// this namespace, Active, is `key_id` and may wrap with that version.
    async fn usable_primary(
        &self,
        sealed: &SealedSecret,
        key_id: &str,
        provider_primary: u32,
    ) -> Result<u32, Failed> {
        let key = Keys::new(self.unsealer.client.clone())
            .of(sealed, self.namespace)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "reading the ManagedKey for a rewrap");
                Failed {
                    outcome: "error",
                    message: "cannot read the SealedSecret's ManagedKey; retry".to_owned(),
                }
            })?;
        if let Some(why) = sharing::sharing(&key).refusal() {
            return Err(Failed::unusable(why));
        }
        let primary = key.primary_version().unwrap_or(provider_primary);
        wrapping::usable_for_wrapping(key.key.as_deref(), &key.reference, key_id, primary)
            .map_err(Failed::unusable)?;
        Ok(primary)
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
        crate::question::audited(&self.unsealer.audit, event).await
    }
}

/// The sentence for a failure on Keyward's side.
const UNAVAILABLE: &str = "rewrap failed; retry, and see the webhook log if it persists";

/// A rewrap that could not be done: the metric outcome and the sentence.
struct Failed {
    outcome: &'static str,
    message: String,
}

impl Failed {
    fn input(message: String) -> Self {
        Failed {
            outcome: "bad_request",
            message,
        }
    }

    fn unusable(message: String) -> Self {
        Failed {
            outcome: "key_unusable",
            message,
        }
    }

    fn provider(error: &dyn std::fmt::Display) -> Self {
        Failed {
            outcome: "error",
            message: format!("the key provider is unavailable ({error}); retry"),
        }
    }
}
