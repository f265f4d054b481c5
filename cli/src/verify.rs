//! `keyward verify`: checks a signature offline against a PEM public key,
//! or against every version a ManagedKey publishes in its status. A
//! signature by a Compromised version is refused: whoever stole the key
//! could have made it.

use crate::args::VerifyArgs;
use crate::kube_client;
use anyhow::{Context, Result, anyhow, bail};
use keyward_core::crypto::pem::spki_from_pem;
use keyward_core::crypto::signing::{self, SigningError, ToSign};
use keyward_crds::{KeyState, KeyUsage, ManagedKey};

pub async fn run(args: VerifyArgs) -> Result<()> {
    let input = crate::sign::read_input(&args.file)?;
    let signature = std::fs::read(&args.signature)
        .with_context(|| format!("cannot read {}", args.signature.display()))?;
    if let Some(path) = &args.public_key {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let public = spki_from_pem(&pem)
            .map_err(|_| anyhow!("{} holds no PEM PUBLIC KEY block", path.display()))?;
        verify_with(&public, &input, &signature)
            .map_err(|e| anyhow!("the signature does not verify: {e}"))?;
        eprintln!("verified with {}", path.display());
        return Ok(());
    }
    let key = args
        .key
        .as_deref()
        .expect("clap requires --key or --public-key");
    let cluster = kube_client::connect(&args.kube).await?;
    let (namespace, name) = kube_client::key_reference(&cluster, args.namespace.as_deref(), key)?;
    let managed = kube_client::managed_key(&cluster, &namespace, &name).await?;
    let reference = format!("{namespace}/{name}");
    let (version, state) = signed_by(&managed, &reference, &input, &signature)?;
    eprintln!("verified: signed by ManagedKey {reference} version {version} (now {state})");
    Ok(())
}

fn verify_with(public: &[u8], input: &ToSign, signature: &[u8]) -> Result<(), SigningError> {
    let scheme = signing::scheme_of(public).ok_or(SigningError::InvalidPublicKey(
        "an RSA 3072/4096, P-256 or Ed25519",
    ))?;
    signing::verify(scheme, public, input, signature)
}

/// The version of `key` whose public key verifies `signature`, and its
/// state; refused when none does, or when it is Compromised.
fn signed_by(
    key: &ManagedKey,
    reference: &str,
    input: &ToSign,
    signature: &[u8],
) -> Result<(u32, KeyState)> {
    if key.spec.usage != KeyUsage::Sign {
        bail!(
            "ManagedKey {reference} has usage {}, not Sign: it makes no signatures",
            key.spec.usage
        );
    }
    let versions = key
        .status
        .as_ref()
        .map(|s| s.versions.as_slice())
        .unwrap_or_default();
    let mut published = 0;
    for version in versions {
        let Some(pem) = &version.public_key else {
            continue;
        };
        published += 1;
        let Ok(public) = spki_from_pem(pem) else {
            continue;
        };
        if verify_with(&public, input, signature).is_ok() {
            if version.state == KeyState::Compromised {
                bail!(
                    "the signature was made by version {} of ManagedKey {reference}, which is \
                     Compromised: do not trust it; re-sign with the key's current version",
                    version.version
                );
            }
            return Ok((version.version, version.state));
        }
    }
    if published == 0 {
        bail!(
            "ManagedKey {reference} publishes no public keys yet (is the keyward operator \
             running?)"
        );
    }
    bail!(
        "the signature does not verify with any of the {published} public keys ManagedKey \
         {reference} publishes: the file changed, or another key signed it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::crypto::pem::spki_to_pem;
    use keyward_core::crypto::signing::SigningAlgorithm;
    use serde_json::json;

    #[test]
    fn a_compromised_version_is_refused_and_an_older_good_one_accepted() {
        let algorithm = SigningAlgorithm::EcdsaP256Sha256;
        let (old, new) = (signing::generate(algorithm), signing::generate(algorithm));
        let pem = |private: &[u8]| spki_to_pem(&signing::public_key(algorithm, private).unwrap());
        let input = ToSign::Message(b"artefact".to_vec());
        let by_old = signing::sign(algorithm, &old, &input).unwrap();
        let by_new = signing::sign(algorithm, &new, &input).unwrap();
        let key = |new_state: &str| -> ManagedKey {
            serde_json::from_value(json!({
                "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
                "metadata": {"name": "release", "namespace": "ci"},
                "spec": {"provider": {"local": {}}, "algorithm": "ECP256", "usage": "Sign"},
                "status": {"versions": [
                    {"version": 1, "state": "Deactivated", "publicKey": pem(&old)},
                    {"version": 2, "state": new_state, "publicKey": pem(&new)},
                ]},
            }))
            .unwrap()
        };
        let active = key("Active");
        assert_eq!(
            signed_by(&active, "ci/release", &input, &by_old).unwrap(),
            (1, KeyState::Deactivated)
        );
        assert_eq!(
            signed_by(&active, "ci/release", &input, &by_new).unwrap(),
            (2, KeyState::Active)
        );
        let error = signed_by(&key("Compromised"), "ci/release", &input, &by_new)
            .unwrap_err()
            .to_string();
        assert!(error.contains("Compromised: do not trust it"), "{error}");
        let changed = ToSign::Message(b"artefact!".to_vec());
        let error = signed_by(&active, "ci/release", &changed, &by_new)
            .unwrap_err()
            .to_string();
        assert!(error.contains("any of the 2 public keys"), "{error}");
    }
}
