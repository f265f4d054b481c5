//! What admission refuses, one function per resource; each returns the
//! user-facing reason. Kubernetes 1.20 has no CEL rules, so transitions and
//! envelope headers are checked here.

use crate::admission::{Request, typed};
use keyward_core::envelope::{Envelope, Scope, SecretTarget};
use keyward_crds::{ManagedKey, SealedSecret};
use kube::core::admission::Operation;

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
    key.spec.validate().map_err(|e| e.to_string())?;
    if request.operation == Operation::Update
        && let Some(old) = typed::<ManagedKey>(request, true)?
    {
        key.validate_update(&old).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn sealed_secret(request: &Request) -> Result<(), String> {
    let Some(sealed) = typed::<SealedSecret>(request, false)? else {
        return Ok(());
    };
    sealed.spec.validate().map_err(|e| e.to_string())?;
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
    let target = target_of(&sealed, &namespace, &name);
    for (item, text) in &sealed.spec.encrypted_data {
        let envelope = Envelope::decode(text)
            .map_err(|e| format!("spec.encryptedData[{item}]: not a Keyward envelope: {e}"))?;
        envelope
            .check_context(&target.item(item))
            .map_err(|e| format!("spec.encryptedData[{item}]: {e}"))?;
    }
    Ok(())
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
    }
}
