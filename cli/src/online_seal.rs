//! `keyward seal` through the cluster, to any ManagedKey (AES, KMS, HSM):
//! a `DataKeyRequest` created with `dryRun=All` (never stored) asks
//! Keyward's webhook, through the API server, for a fresh data key wrapped
//! by the key and sealed to a one-use X25519 key made here. The values are
//! then encrypted here; they never leave this process. The API server
//! authenticates the user as for any kubectl call, so Keyward receives no
//! token, and the webhook checks `create sealedsecrets` in the namespace.

use crate::args::KubeArgs;
use crate::kube_client;
use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::Dek;
use keyward_core::crypto::dek_transport::{Recipient, SealedDek};
use keyward_core::envelope::{Scope, SecretTarget};
use keyward_core::provider::{WrapAlgorithm, WrappedDek};
use keyward_crds::{
    Access, DataKeyAnswer, DataKeyRequest, DataKeyRequestSpec, DataKeyWrapping, KeyReference,
};
use kube::Api;
use kube::api::PostParams;

/// A data key for `target` from the cluster: the DEK and its wrapped form.
pub async fn data_key(kube: &KubeArgs, target: &SecretTarget) -> Result<(Dek, WrappedDek)> {
    let cluster = kube_client::connect(kube).await?;
    let (key_namespace, key_name) = target
        .key_ref
        .split_once('/')
        .expect("a canonical key reference");
    let recipient = Recipient::generate();
    let spec = DataKeyRequestSpec {
        secret_name: target.secret_name.clone(),
        key_ref: KeyReference {
            name: key_name.to_owned(),
            namespace: (key_namespace != target.namespace).then(|| key_namespace.to_owned()),
        },
        scope: match target.scope {
            Scope::Strict => keyward_crds::Scope::Strict,
            Scope::Namespace => keyward_crds::Scope::Namespace,
        },
        access: (!target.access.is_empty()).then(|| Access {
            service_accounts: target.access.clone(),
        }),
        recipient_public_key: STANDARD.encode(recipient.public_key()),
    };
    let request = DataKeyRequest::new("keyward-seal", spec.clone());
    let api: Api<DataKeyRequest> = Api::namespaced(cluster.client, &target.namespace);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = api
        .create(&dry_run, &request)
        .await
        .map_err(|error| refused(error, &target.namespace))?;
    let answer = answered.status.ok_or_else(|| {
        anyhow!(
            "the cluster accepted the DataKeyRequest but nobody answered it: Keyward's webhook \
             does not serve online sealing in `{}` (chart value \
             webhook.admission.onlineSeal.enabled, and the namespace must not be excluded from \
             injection); or seal offline to an RSA key with --cert",
            target.namespace
        )
    })?;
    opened(recipient, &spec, &target.namespace, &answer)
}

/// The DEK from `answer`, checked to be for this request.
fn opened(
    recipient: Recipient,
    spec: &DataKeyRequestSpec,
    namespace: &str,
    answer: &DataKeyAnswer,
) -> Result<(Dek, WrappedDek)> {
    let decode = |field: &str, text: &str| {
        STANDARD
            .decode(text)
            .with_context(|| format!("the answer's {field} is not base64"))
    };
    let sealed = SealedDek {
        sender_public: decode("senderPublicKey", &answer.sender_public_key)?,
        ciphertext: decode("sealedDataKey", &answer.sealed_data_key)?,
    };
    let dek = recipient
        .open(&sealed, &spec.binding(namespace, answer))
        .context("the cluster's answer cannot be used")?;
    if answer.provider_key_id.is_empty() || answer.key_version == 0 {
        bail!("the cluster's answer names no provider key or version");
    }
    let wrapped = WrappedDek {
        key_id: answer.provider_key_id.clone(),
        version: answer.key_version,
        algorithm: match answer.wrap_algorithm {
            DataKeyWrapping::Symmetric => WrapAlgorithm::Symmetric,
            DataKeyWrapping::RsaOaepSha256 => WrapAlgorithm::RsaOaepSha256,
        },
        blob: decode("wrappedDataKey", &answer.wrapped_data_key)?,
    };
    Ok((dek, wrapped))
}

/// What to do when the API server (or Keyward's webhook through it) refuses.
fn refused(error: kube::Error, namespace: &str) -> anyhow::Error {
    match &error {
        kube::Error::Api(status)
            if status.code == 404 && status.message.contains("could not find the requested") =>
        {
            anyhow!(
                "this cluster's Keyward does not serve online sealing (no DataKeyRequest \
                 resource); upgrade Keyward, or seal offline to an RSA key with --cert"
            )
        }
        kube::Error::Api(status) if status.message.contains("denied the request") => {
            let reason = status
                .message
                .split_once("denied the request: ")
                .map_or(status.message.as_str(), |(_, why)| why);
            anyhow!("Keyward refused a data key: {}", reason.trim())
        }
        kube::Error::Api(status) if status.message.contains("failed calling webhook") => anyhow!(
            "Keyward's webhook is unavailable, so nothing can be sealed online now: {}; retry \
             when `kubectl get pods -n <keyward namespace>` shows it running",
            status.message.trim()
        ),
        _ => kube_client::explain(
            error,
            "a data key for sealing",
            "create",
            "datakeyrequests.keyward.io",
            namespace,
        ),
    }
}
