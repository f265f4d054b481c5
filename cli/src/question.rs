//! Asking Keyward through the API server: a `DataKeyRequest` or
//! `SealedSecretReview` created with `dryRun=All` (never stored) comes back
//! with Keyward's answer in `status`. The API server authenticates the
//! user as for any kubectl call, so Keyward receives no token.

use crate::kube_client;
use anyhow::{Context, Result, anyhow, bail};
use keyward_crds::{ReviewAction, SealedSecret, SealedSecretReview, SealedSecretReviewSpec};
use kube::api::PostParams;
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// `question` created as a dry run in its namespace; the returned object.
/// `what` names the question in errors ("a data key for sealing").
pub async fn ask<K>(api: &Api<K>, question: &K, what: &str, namespace: &str) -> Result<K>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
    K::DynamicType: Default,
{
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.create(&dry_run, question)
        .await
        .map_err(|error| refused(error, what, &K::plural(&Default::default()), namespace))
}

/// The error for an answer with no status: nobody answered.
pub fn unanswered(what: &str, namespace: &str) -> anyhow::Error {
    anyhow!(
        "the cluster took the request for {what} but nobody answered it: Keyward's webhook \
         does not serve `{namespace}` (chart value webhook.admission.onlineSeal.enabled, and \
         the namespace must not be excluded from injection)"
    )
}

/// What to do when the API server, or Keyward's webhook through it, refuses.
fn refused(error: kube::Error, what: &str, plural: &str, namespace: &str) -> anyhow::Error {
    let resource = format!("{plural}.keyward.io");
    match &error {
        kube::Error::Api(status)
            if status.code == 404 && status.message.contains("could not find the requested") =>
        {
            anyhow!(
                "this cluster's Keyward does not serve {resource} (needed for {what}); upgrade \
                 Keyward in the cluster"
            )
        }
        kube::Error::Api(status) if status.message.contains("denied the request") => {
            let reason = status
                .message
                .split_once("denied the request: ")
                .map_or(status.message.as_str(), |(_, why)| why);
            anyhow!("Keyward refused {what}: {}", reason.trim())
        }
        kube::Error::Api(status) if status.message.contains("failed calling webhook") => anyhow!(
            "Keyward's webhook is unavailable, so it cannot answer {what} now: {}; retry when \
             the keyward webhook pods are running",
            status.message.trim()
        ),
        _ => kube_client::explain(error, what, "create", &resource, namespace),
    }
}

/// The namespace a SealedSecret file is applied in, and the review asking
/// `action` about it.
pub fn review_of(
    sealed: &SealedSecret,
    namespace: Option<&str>,
    source: &str,
    action: ReviewAction,
) -> Result<(String, SealedSecretReview)> {
    let namespace = match (sealed.metadata.namespace.as_deref(), namespace) {
        (Some(own), Some(given)) if own != given => {
            bail!("{source} is for namespace `{own}`, not `{given}`; drop -n or fix the file")
        }
        (Some(own), _) => own.to_owned(),
        (None, Some(given)) => given.to_owned(),
        (None, None) => bail!("{source} has no metadata.namespace; add it or pass -n"),
    };
    let name = sealed
        .metadata
        .name
        .clone()
        .with_context(|| format!("{source} has no metadata.name; add it"))?;
    let review = SealedSecretReview::new(
        "keyward-cli",
        SealedSecretReviewSpec {
            action,
            name,
            sealed_secret: sealed.spec.clone(),
        },
    );
    Ok((namespace, review))
}
