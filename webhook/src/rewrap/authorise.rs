//! Who may re-wrap: the caller's bearer token, identified by TokenReview
//! (the API server's own audiences, as for any client token), must be
//! allowed `update` on that SealedSecret by a SubjectAccessReview — the
//! same right that writing the re-wrapped object back would need.

use crate::unseal::authorise::{Denial, DenialKind};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, UserInfo};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

/// A failed check: a denial for the audit log, the caller over their
/// rate limit, or the API server failing.
pub enum Refusal {
    Denied(Denial),
    Limited,
    Internal(String),
}

/// The identity behind `token`.
pub async fn identify(client: &Client, token: &str) -> Result<UserInfo, Refusal> {
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences: None,
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| Refusal::Internal(format!("TokenReview failed: {e}")))?;
    let status = reviewed.status.unwrap_or_default();
    if status.authenticated != Some(true) {
        let why = status.error.as_deref().unwrap_or("not authenticated");
        return Err(Refusal::Denied(Denial::new(
            DenialKind::Unauthenticated,
            format!("TokenReview rejected the token: {why}"),
        )));
    }
    status.user.ok_or_else(|| {
        Refusal::Denied(Denial::new(
            DenialKind::Unauthenticated,
            "TokenReview returned no user",
        ))
    })
}

/// `update sealedsecrets.keyward.io/<name>` in `namespace` for `user`.
pub async fn may_update(
    client: &Client,
    user: &UserInfo,
    namespace: &str,
    name: &str,
) -> Result<(), Refusal> {
    may(client, user, "update", namespace, Some(name)).await
}

/// `verb` on `sealedsecrets.keyward.io` (that one when `name` is given)
/// in `namespace` for `user`, by SubjectAccessReview.
pub async fn may(
    client: &Client,
    user: &UserInfo,
    verb: &str,
    namespace: &str,
    name: Option<&str>,
) -> Result<(), Refusal> {
    may_on(client, user, verb, "sealedsecrets", namespace, name).await
}

/// `verb` on `<resource>.keyward.io` (that one when `name` is given) in
/// `namespace` for `user`, by SubjectAccessReview.
pub async fn may_on(
    client: &Client,
    user: &UserInfo,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: Option<&str>,
) -> Result<(), Refusal> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some("keyward.io".into()),
                resource: Some(resource.to_owned()),
                verb: Some(verb.to_owned()),
                namespace: Some(namespace.to_owned()),
                name: name.map(str::to_owned),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let reviewed = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| Refusal::Internal(format!("SubjectAccessReview failed: {e}")))?;
    let status = reviewed.status.unwrap_or_default();
    if status.allowed {
        return Ok(());
    }
    let who = user.username.as_deref().unwrap_or("?");
    let why = status
        .reason
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "no RBAC rule allows it".into());
    Err(Refusal::Denied(Denial::new(
        DenialKind::Forbidden,
        format!(
            "`{who}` may not {verb} {resource}.keyward.io{} in `{namespace}`: {why}",
            name.map(|n| format!("/{n}")).unwrap_or_default()
        ),
    )))
}
