//! `SealedSecretReview` with action `Validate` (`keyward validate`): would
//! each item open in this cluster, as applied under this namespace and
//! name? The same checks as unseal short of a pod (binding, key sharing,
//! the version's lifecycle state) and then a real open, whose plaintext is
//! dropped here at once. Only verdicts leave: opens, or the reason.

use crate::key_state::serving::{self, Verdict};
use crate::key_state::{Item, Keys, sharing};
use keyward_core::envelope::{Envelope, open_secret};
use keyward_core::provider::KeyProvider;
use keyward_crds::{ItemVerdict, SealedSecret, SealedSecretReviewStatus};
use std::collections::BTreeMap;

/// One verdict per item of `sealed`, as if applied in `namespace`.
pub async fn verdicts(
    keys: &mut Keys,
    provider: &dyn KeyProvider,
    sealed: &SealedSecret,
    namespace: &str,
) -> Result<SealedSecretReviewStatus, String> {
    let name = sealed.metadata.name.as_deref().unwrap_or_default();
    let key = keys.of(sealed, namespace).await.map_err(|error| {
        tracing::error!(%error, "reading the ManagedKey for a validation");
        "cannot read the SealedSecret's ManagedKey; retry".to_owned()
    })?;
    let key_wide = match sharing::sharing(&key).refusal() {
        Some(why) => Some(why),
        None if key.key.is_none() => Some(format!(
            "ManagedKey {} does not exist in this cluster; apply it first",
            key.reference
        )),
        None => None,
    };
    let target = crate::validate::target_of(sealed, namespace, name);
    let now = k8s_openapi::jiff::Timestamp::now();
    let mut items = Vec::new();
    for (item, text) in &sealed.spec.encrypted_data {
        let envelope = Envelope::decode(text).ok();
        let refusal = match (&key_wide, &envelope) {
            (Some(why), _) => Some(why.clone()),
            (None, Some(envelope)) => {
                let at = Item::new(name, item, &key.reference, envelope);
                match serving::may_serve(key.key.as_deref(), &at, now) {
                    Verdict::Refuse(why) => Some(why),
                    _ => None,
                }
            }
            // Left to the open below to say what is wrong with it.
            (None, None) => None,
        };
        let reason = match refusal {
            Some(why) => Some(why),
            None => opens(provider, &target, item, text).await.err(),
        };
        items.push(ItemVerdict {
            item: item.clone(),
            key_version: envelope.map(|e| e.key_version),
            opens: reason.is_none(),
            reason,
        });
    }
    Ok(SealedSecretReviewStatus {
        items,
        ..SealedSecretReviewStatus::default()
    })
}

/// Opens one item and drops the value; the reason when it does not open.
async fn opens(
    provider: &dyn KeyProvider,
    target: &keyward_core::envelope::SecretTarget,
    item: &str,
    text: &str,
) -> Result<(), String> {
    let one = BTreeMap::from([(item.to_owned(), text.to_owned())]);
    match open_secret(target, provider, &one).await {
        Ok(opened) => {
            drop(opened);
            Ok(())
        }
        Err(error) => Err(error.error.to_string()),
    }
}
