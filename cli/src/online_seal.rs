//! `keyward seal` through the cluster, to any ManagedKey (AES, KMS, HSM):
//! a `DataKeyRequest` created with `dryRun=All` (never stored) asks
//! Keyward's webhook, through the API server, for a fresh data key wrapped
//! by the key and sealed to a one-use X25519 key made here. The values are
//! then encrypted here; they never leave this process. The API server
//! authenticates the user as for any kubectl call, so Keyward receives no
//! token, and the webhook checks `create sealedsecrets` in the namespace.

use crate::args::KubeArgs;
use crate::{kube_client, question};
use anyhow::{Context, Result, bail};
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

/// A data key for `target` from the cluster: the DEK and its wrapped form.
pub async fn data_key(kube: &KubeArgs, target: &SecretTarget) -> Result<(Dek, WrappedDek)> {
    let cluster = kube_client::connect(kube).await.context(
        "sealing goes through the cluster unless you pass --keyring DIR (or set \
         KEYWARD_KEYRING) for a local keyring, or --cert FILE for an RSA public key",
    )?;
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
    const WHAT: &str = "a data key for sealing";
    let answered = question::ask(&api, &request, WHAT, &target.namespace).await?;
    let answer = answered
        .status
        .ok_or_else(|| question::unanswered(WHAT, &target.namespace))?;
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
