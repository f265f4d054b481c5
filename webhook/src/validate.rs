//! What admission refuses, one function per resource; each returns the
//! user-facing reason. Kubernetes 1.20 has no CEL rules, so transitions and
//! envelope headers are checked here, and [`key_states`] reads the
//! ManagedKey to refuse new items sealed under versions that are not Active.

use crate::admission::{Request, typed};
use crate::key_state::sealing::{self, Admit};
use crate::key_state::serving::{OVERRIDE, override_until};
use crate::key_state::sharing::{self, Sharing};
use crate::key_state::{Item, Keys};
use k8s_openapi::jiff::Timestamp;
use keyward_core::envelope::{Envelope, Scope, SecretTarget};
use keyward_crds::exposure::{EXPOSED_VERSIONS, Exposed};
use keyward_crds::{ManagedKey, SealedSecret};
use kube::Client;
use kube::core::admission::Operation;
use std::collections::BTreeSet;

/// Checks one admission request; `Err` is the reason shown to the user.
pub fn check(request: &Request) -> Result<(), String> {
    match (request.kind.group.as_str(), request.kind.kind.as_str()) {
        ("keyward.io", "ManagedKey") => managed_key(request),
        ("keyward.io", "SealedSecret") => sealed_secret(request),
        // Not ours to judge: allow, so a mis-scoped configuration breaks nothing.
        _ => Ok(()),
    }
}

fn managed_key(request: &Request) -> Result<(), String> {
    let Some(key) = typed::<ManagedKey>(request, false)? else {
        return Ok(()); // DELETE
    };
    let old = match request.operation {
        Operation::Update => typed::<ManagedKey>(request, true)?,
        _ => None,
    };
    // A key stored before a newer rule must still take metadata changes
    // (the operator's finalizer removal, an annotation): only a new or
    // changed spec is judged against today's rules.
    if old.as_ref().is_none_or(|old| old.spec != key.spec) {
        key.spec.validate().map_err(|e| e.to_string())?;
    }
    if let Some(old) = &old {
        key.validate_update(old).map_err(|e| e.to_string())?;
    }
    serve_override(&key, old.as_ref(), Timestamp::now())?;
    exposed_versions(&key)
}

/// `keyward.io/exposed-versions` must say which versions a compromise
/// exposed in a form the operator reads.
fn exposed_versions(key: &ManagedKey) -> Result<(), String> {
    let value = key
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EXPOSED_VERSIONS));
    Exposed::parse(value.map(String::as_str)).map(|_| ())
}

/// A new or changed `keyward.io/serve-compromised-until` must be one the
/// webhook would honour (unseal ignores it otherwise); an unchanged one is
/// left alone, as it only ages.
fn serve_override(
    key: &ManagedKey,
    old: Option<&ManagedKey>,
    now: Timestamp,
) -> Result<(), String> {
    let value = |key: &ManagedKey| key.metadata.annotations.as_ref()?.get(OVERRIDE).cloned();
    let new = value(key);
    if new.is_none() || new == old.and_then(value) {
        return Ok(());
    }
    override_until(key, now).map(|_| ())
}

fn sealed_secret(request: &Request) -> Result<(), String> {
    let Some(sealed) = typed::<SealedSecret>(request, false)? else {
        return Ok(());
    };
    sealed.spec.validate().map_err(|e| e.to_string())?;
    let (namespace, name) = placed(request, &sealed)?;
    let target = target_of(&sealed, &namespace, &name);
    let old = match request.operation {
        Operation::Update => typed::<SealedSecret>(request, true)?,
        _ => None,
    };
    let old_items = old.as_ref().map(|old| &old.spec.encrypted_data);
    let changed: BTreeSet<&String> =
        sealing::new_or_changed(&sealed.spec.encrypted_data, old_items)
            .map(|(item, _)| item)
            .collect();
    for (item, text) in &sealed.spec.encrypted_data {
        let envelope = Envelope::decode(text)
            .map_err(|e| format!("spec.encryptedData[{item}]: not a Keyward envelope: {e}"))?;
        envelope
            .check_context(&target.item(item))
            .map_err(|e| format!("spec.encryptedData[{item}]: {e}"))?;
        if changed.contains(item) {
            unbound_in_namespace_scope(&target, &envelope)
                .map_err(|e| format!("spec.encryptedData[{item}]: {e}"))?;
        }
    }
    Ok(())
}

/// A namespace-scope value that binds no ServiceAccounts (envelope
/// version 1) may be copied into any SealedSecret of the namespace, one
/// without `spec.access` too, so `spec.access` would protect nothing: new
/// such values are refused where `spec.access` is set.
fn unbound_in_namespace_scope(target: &SecretTarget, envelope: &Envelope) -> Result<(), String> {
    if target.scope == Scope::Namespace
        && !target.access.is_empty()
        && envelope.context.access.is_none()
    {
        return Err(
            "was sealed before Keyward bound spec.access into values (envelope version 1), and a namespace-scope value can be copied into a SealedSecret without spec.access; re-seal it with `keyward seal --scope namespace --service-account NAME`"
                .into(),
        );
    }
    Ok(())
}

/// Where a SealedSecret is created: its namespace and name.
fn placed(request: &Request, sealed: &SealedSecret) -> Result<(String, String), String> {
    let namespace = sealed
        .metadata
        .namespace
        .clone()
        .or_else(|| request.namespace.clone())
        .ok_or("the SealedSecret has no namespace")?;
    let name = sealed
        .metadata
        .name
        .clone()
        .or_else(|| (!request.name.is_empty()).then(|| request.name.clone()))
        .ok_or("the SealedSecret has no name; generateName is not supported for sealed values")?;
    Ok((namespace, name))
}

/// After [`check`]: a SealedSecret created with, or changed to, another
/// namespace's ManagedKey must be granted by it ([`crate::key_state::sharing`]),
/// and every new or changed item must be sealed under an Active version of
/// its ManagedKey (see [`crate::key_state::sealing`]). `Ok` holds the warnings for the client:
/// a key or state not known yet, or a ManagedKey that could not be read
/// (admitted then: unseal still checks the state before serving).
pub async fn key_states(request: &Request, client: &Client) -> Result<Vec<String>, String> {
    if (request.kind.group.as_str(), request.kind.kind.as_str()) != ("keyward.io", "SealedSecret") {
        return Ok(Vec::new());
    }
    let Some(sealed) = typed::<SealedSecret>(request, false)? else {
        return Ok(Vec::new());
    };
    let old = match request.operation {
        Operation::Update => typed::<SealedSecret>(request, true)?,
        _ => None,
    };
    let old_items = old.as_ref().map(|old| &old.spec.encrypted_data);
    let changed: Vec<(&String, Envelope)> =
        sealing::new_or_changed(&sealed.spec.encrypted_data, old_items)
            .filter_map(|(item, text)| Some((item, Envelope::decode(text).ok()?)))
            .collect();
    // A new object, or one that now names another key, is judged for
    // sharing even with no item to check.
    let names_new_key = old.as_ref().is_none_or(|old| {
        old.key_namespace() != sealed.key_namespace()
            || old.spec.key_ref.name != sealed.spec.key_ref.name
    });
    if changed.is_empty() && !names_new_key {
        return Ok(Vec::new());
    }
    let (namespace, name) = placed(request, &sealed)?;
    let key = match Keys::new(client.clone()).of(&sealed, &namespace).await {
        Ok(key) => key,
        Err(error) => {
            tracing::warn!(%error, "cannot read the ManagedKey of a SealedSecret at admission");
            return Ok(vec![format!(
                "the ManagedKey of SealedSecret {name} could not be read, so key states were not checked"
            )]);
        }
    };
    let mut warnings = BTreeSet::new();
    match sharing::sharing(&key) {
        Sharing::Granted => {}
        Sharing::Refused(why) => return Err(format!("SealedSecret {name}: {why}")),
        Sharing::Unknown(why) => {
            warnings.insert(format!(
                "{why}; pods cannot unseal SealedSecret {name} until it does"
            ));
        }
    }
    for (item, envelope) in &changed {
        let item = Item::new(&name, item, &key.reference, envelope);
        match sealing::may_seal(key.key.as_deref(), &item) {
            Admit::Yes => {}
            Admit::Warn(warning) => {
                warnings.insert(warning);
            }
            Admit::Refuse(reason) => return Err(reason),
        }
    }
    Ok(warnings.into_iter().collect())
}

/// The context a SealedSecret's values must have been sealed for: where it lives.
pub fn target_of(sealed: &SealedSecret, namespace: &str, name: &str) -> SecretTarget {
    let key_namespace = sealed
        .spec
        .key_ref
        .namespace
        .as_deref()
        .unwrap_or(namespace);
    SecretTarget {
        scope: match sealed.spec.scope {
            keyward_crds::Scope::Strict => Scope::Strict,
            keyward_crds::Scope::Namespace => Scope::Namespace,
        },
        namespace: namespace.to_owned(),
        secret_name: name.to_owned(),
        key_ref: format!("{key_namespace}/{}", sealed.spec.key_ref.name),
        access: sealed.service_accounts(),
    }
}
