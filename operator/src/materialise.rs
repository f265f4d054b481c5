//! The optional Kubernetes Secret of a SealedSecret with `spec.template`:
//! same name and namespace, owned by the SealedSecret (so the garbage
//! collector deletes it with it), written by server-side apply. Never
//! created without a template or without `--materialize-secrets`, never over
//! a Secret someone else owns, and deleted when the template is removed.

use crate::context::{Context, FIELD_MANAGER};
use crate::error::Result;
use crate::rewrap::target_of;
use crate::sealed_view::{self, SealedView};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use keyward_core::envelope::open_secret;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, Preconditions};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use std::collections::BTreeMap;

/// Label on every materialised Secret; the controller watches only these.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "keyward-operator");
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=keyward-operator";

/// The owner reference that ties the Secret to `sealed`.
pub fn owner_reference(sealed: &SealedView) -> Option<OwnerReference> {
    sealed.controller_owner_ref(&())
}

/// The Secret to apply (without data), or why it cannot be.
pub fn desired(sealed: &SealedView) -> Option<Secret> {
    let template = sealed.spec.template.as_ref()?;
    let mut labels = template.labels.clone();
    labels.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
    Some(Secret {
        metadata: ObjectMeta {
            name: sealed.metadata.name.clone(),
            namespace: sealed.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!template.annotations.is_empty()).then(|| template.annotations.clone()),
            owner_references: Some(vec![owner_reference(sealed)?]),
            ..ObjectMeta::default()
        },
        type_: Some(template.type_.clone().unwrap_or_else(|| "Opaque".into())),
        ..Secret::default()
    })
}

/// Creates or updates the Secret; `Some((reason, message))` when it cannot.
pub async fn secret(sealed: &SealedView, ctx: &Context) -> Result<Option<(&'static str, String)>> {
    let (Some(mut secret), Some(target)) = (desired(sealed), target_of(sealed)) else {
        return Ok(None);
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &target.namespace);
    if let Some(existing) = api.get_opt(&target.secret_name).await? {
        let ours = existing
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == sealed.uid().as_ref());
        if !ours {
            return Ok(Some((
                "SecretExists",
                format!(
                    "Secret {}/{} exists and is not owned by this SealedSecret; delete or rename it, or remove spec.template",
                    target.namespace, target.secret_name
                ),
            )));
        }
    }
    // The ciphertext is not in the watch's store (`sealed_view`): read it.
    // A spec changed since `sealed` was stored is left to the reconcile the
    // change brings.
    let Some(full) = sealed_view::full(sealed, &ctx.client).await? else {
        return Ok(None);
    };
    let opened = match open_secret(&target, ctx.provider.as_ref(), &full.spec.encrypted_data).await
    {
        Ok(opened) => opened,
        Err(error) => {
            return Ok(Some((
                "UnsealFailed",
                format!("cannot create the Secret: {error}"),
            )));
        }
    };
    // Unwraps are not counted against maxOperations: decrypting draws no
    // AES-GCM nonce (managed_key/max_operations.rs).
    let data: BTreeMap<String, ByteString> = opened
        .iter()
        .map(|(item, value)| (item.clone(), ByteString(value.expose().to_vec())))
        .collect();
    secret.data = Some(data);
    let mut patch = serde_json::to_value(&secret).map_err(|e| crate::Error::Task(e.to_string()))?;
    patch["apiVersion"] = "v1".into();
    patch["kind"] = "Secret".into();
    let applied = api
        .patch(
            &target.secret_name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    // The request body held the values: drop it now rather than later.
    drop(patch);
    drop(secret);
    applied?;
    Ok(None)
}

/// Degraded reason of a SealedSecret with a template the operator may not act on.
pub const NOT_MATERIALISED: &str = "SecretsNotMaterialized";
/// Degraded reason of a SealedSecret with both `spec.access` and a template.
pub const RESTRICTED: &str = "RestrictedNotMaterialized";

/// What to do about `spec.template`: write the Secret (`materialize` on),
/// say why not (off), or delete the Secret this SealedSecret owns once its
/// template is gone. `touched`: the spec changed since the last status
/// write; only then can a template have been removed, so only then is the
/// Secret looked up. `Some((reason, message))` when something is wrong.
pub async fn reconcile_template(
    sealed: &SealedView,
    materialize: bool,
    touched: bool,
    assessment: Option<(&'static str, String)>,
    ctx: &Context,
) -> Result<Option<(&'static str, String)>> {
    if sealed.spec.template.is_some() && !sealed.service_accounts().is_empty() {
        // Admission refuses this pair; one stored before it did is not
        // materialised either (a Secret would bypass spec.access).
        return Ok(assessment.or(Some((
            RESTRICTED,
            "spec.access restricts who may unseal, so spec.template is not materialised: a Secret \
             would be readable by anything allowed to read Secrets in the namespace; remove one of them"
                .to_owned(),
        ))));
    }
    match (&sealed.spec.template, materialize) {
        (Some(_), true) if assessment.is_none() => secret(sealed, ctx).await,
        (Some(_), true) => Ok(assessment),
        (Some(_), false) => {
            let message = "spec.template is set, but the operator was started without --materialize-secrets \
                 (env KEYWARD_MATERIALIZE_SECRETS, Helm value operator.materializeSecrets), so no Secret is written; \
                 enable it, or remove spec.template and read the values through the injector";
            let already = sealed.status().is_some_and(|s| {
                keyward_crds::conditions::find(&s.conditions, keyward_crds::conditions::DEGRADED)
                    .is_some_and(|c| c.status == "True" && c.reason == NOT_MATERIALISED)
            });
            if !already {
                publish(
                    sealed,
                    ctx,
                    EventType::Warning,
                    NOT_MATERIALISED,
                    message.to_owned(),
                )
                .await;
            }
            Ok(assessment.or(Some((NOT_MATERIALISED, message.to_owned()))))
        }
        (None, true) if touched => {
            remove_owned(sealed, ctx).await?;
            Ok(assessment)
        }
        (None, _) => Ok(assessment),
    }
}

/// Deletes the Secret of the same name if (and only if) this SealedSecret
/// owns it, by uid; someone else's Secret is left alone.
pub async fn remove_owned(sealed: &SealedView, ctx: &Context) -> Result<bool> {
    let (Some(target), Some(uid)) = (target_of(sealed), sealed.uid()) else {
        return Ok(false);
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &target.namespace);
    let Some(existing) = api.get_opt(&target.secret_name).await? else {
        return Ok(false);
    };
    if !existing.owner_references().iter().any(|o| o.uid == uid) {
        return Ok(false);
    }
    // The uid precondition: never a Secret recreated under the name meanwhile.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: existing.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&target.secret_name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(secret = %format!("{}/{}", target.namespace, target.secret_name), "template removed: owned Secret deleted");
    publish(
        sealed,
        ctx,
        EventType::Normal,
        "SecretDeleted",
        format!(
            "spec.template was removed: deleted Secret {}/{} that this SealedSecret owned",
            target.namespace, target.secret_name
        ),
    )
    .await;
    Ok(true)
}

async fn publish(sealed: &SealedView, ctx: &Context, type_: EventType, reason: &str, note: String) {
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: "Materialize".into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &sealed.object_ref(&())).await {
        tracing::warn!(%error, secret = %sealed.name_any(), "event not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_crds::{KeyReference, SealedSecret, SealedSecretSpec, SecretTemplate};

    fn sealed(template: Option<SecretTemplate>) -> SealedView {
        let mut s = SealedSecret::new(
            "creds",
            SealedSecretSpec {
                key_ref: KeyReference {
                    name: "db".into(),
                    namespace: None,
                },
                scope: Default::default(),
                access: None,
                encrypted_data: BTreeMap::new(),
                template,
            },
        );
        s.metadata.namespace = Some("apps".into());
        s.metadata.uid = Some("uid-1".into());
        SealedView::of(&s)
    }

    #[test]
    fn only_a_template_makes_a_secret_and_it_is_owned() {
        assert!(desired(&sealed(None)).is_none());
        let template = SecretTemplate {
            type_: Some("kubernetes.io/basic-auth".into()),
            labels: [("team".to_owned(), "pay".to_owned())].into(),
            annotations: BTreeMap::new(),
        };
        let secret = desired(&sealed(Some(template))).unwrap();
        assert_eq!(secret.metadata.name.as_deref(), Some("creds"));
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/basic-auth"));
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(labels["team"], "pay");
        assert_eq!(labels[MANAGED_BY.0], MANAGED_BY.1);
        let owner = &secret.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("SealedSecret", "uid-1")
        );
        assert_eq!(owner.controller, Some(true));
        assert!(secret.metadata.annotations.is_none());
    }
}
