//! Admission of a `SealedSecretReview` (`keyward_crds::sealed_secret_review`):
//! `keyward rewrap` and `keyward validate` through the API server, which
//! authenticated the caller (Keyward receives no token). `Rewrap` goes to
//! [`crate::rewrap`] (`update` on that SealedSecret); `Validate` to
//! [`opens`] (`create sealedsecrets` in the namespace: the right to apply
//! it and watch it open). Both are rate-limited per user and audited.

pub mod opens;

use crate::admission::Request;
use crate::key_state::Keys;
use crate::question;
use crate::rewrap::Rewrapper;
use crate::rewrap::authorise::{self, Refusal};
use crate::unseal::Unsealer;
use crate::unseal::authorise::Denial;
use k8s_openapi::api::authentication::v1::UserInfo;
use keyward_core::audit::Event;
use keyward_crds::validation::is_dns_subdomain;
use keyward_crds::{ReviewAction, SealedSecret, SealedSecretReview, SealedSecretReviewStatus};
use std::sync::Arc;

/// Prefix of a validating caller's bucket in the shared limiter.
const VALIDATE_RATE_KEY_PREFIX: &str = "validate-user:";

/// The answer to put in `status`, or the sentence to deny with.
pub async fn answer(
    unsealer: &Arc<Unsealer>,
    request: &Request,
) -> Result<SealedSecretReviewStatus, String> {
    let (review, namespace) = question::asked::<SealedSecretReview>(request, "SealedSecretReview")?;
    let name = review.spec.name.clone();
    // Admission runs before the schema is checked: the name goes into the
    // binding and the audit log, so it is checked here.
    if !is_dns_subdomain(&name) {
        return Err(
            "spec.name is not a SealedSecret name (lowercase letters, digits, '-' and \
                    '.', at most 253 characters)"
                .into(),
        );
    }
    let mut sealed = SealedSecret::new(&name, review.spec.sealed_secret);
    sealed.metadata.namespace = Some(namespace.clone());
    let user = &request.user_info;
    match review.spec.action {
        ReviewAction::Rewrap => {
            let rewrapper = Rewrapper {
                unsealer,
                namespace: &namespace,
                name: &name,
            };
            rewrapper.run(user, sealed).await
        }
        ReviewAction::Validate => validate(unsealer, user, &namespace, &sealed).await,
    }
}

async fn validate(
    unsealer: &Arc<Unsealer>,
    user: &UserInfo,
    namespace: &str,
    sealed: &SealedSecret,
) -> Result<SealedSecretReviewStatus, String> {
    let actor = user.username.clone().unwrap_or_default();
    let subject = format!(
        "{namespace}/{}",
        sealed.metadata.name.as_deref().unwrap_or_default()
    );
    let audit = |outcome: &str, detail: String| Event {
        actor: actor.clone(),
        action: "secret.validate".into(),
        subject: subject.clone(),
        outcome: outcome.to_owned(),
        detail: [("detail".to_owned(), detail)].into(),
    };
    let allowed = if unsealer
        .limiter
        .allow(&format!("{VALIDATE_RATE_KEY_PREFIX}{actor}"))
    {
        authorise::may(&unsealer.client, user, "create", namespace, None).await
    } else {
        Err(Refusal::Limited)
    };
    let refusal = match allowed {
        Ok(()) => None,
        Err(Refusal::Limited) => {
            Some("too many validations from your user; retry in a few seconds".to_owned())
        }
        Err(Refusal::Denied(Denial { reason, .. })) => Some(reason),
        Err(Refusal::Internal(error)) => {
            tracing::error!(%error, "validation authorisation failed");
            Some("cannot check your access right now; retry".to_owned())
        }
    };
    if let Some(why) = refusal {
        question::audited(&unsealer.audit, audit("denied", why.clone())).await;
        return Err(why);
    }
    let mut keys = Keys::new(unsealer.client.clone());
    let status = opens::verdicts(&mut keys, unsealer.provider.as_ref(), sealed, namespace).await?;
    let opened = status.items.iter().filter(|i| i.opens).count();
    let summary = format!("{opened} of {} items open", status.items.len());
    if !question::audited(&unsealer.audit, audit("ok", summary)).await {
        return Err("cannot write the audit log, so no verdict is given; retry".into());
    }
    Ok(status)
}
