//! The signing-key check: what every provider that makes signing keys
//! must do, and what one that makes none must refuse.

use crate::{Capabilities, spec};
use keyward_core::Dek;
use keyward_core::ProviderError;
use keyward_core::crypto::signing::{self, SigningError, ToSign};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, VerifyingKey, WrapContext};

const CHECK: &str = "signing_keys_sign_and_verify";

/// Per algorithm the provider makes: the primary signs, its public half
/// verifies the signature and nothing else, a rotation's new primary
/// signs while the old version's public half still verifies what it
/// signed, a disabled primary signs nothing, and a signing key wraps no
/// data keys. A provider that makes no signing keys refuses to create one.
pub async fn signing_keys_sign_and_verify(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    if caps.signing.is_empty() {
        let refused = provider
            .create_key(&spec(caps, "signing", KeyAlgorithm::EcP256))
            .await;
        match refused {
            Err(ProviderError::InvalidRequest(why)) if why.contains("signing keys") => {}
            other => panic!("[{CHECK}] a provider without signing keys answered {other:?}"),
        }
        return CHECK;
    }
    for &algorithm in &caps.signing {
        one_algorithm(provider, caps, algorithm).await;
    }
    CHECK
}

async fn one_algorithm(provider: &dyn KeyProvider, caps: &Capabilities, algorithm: KeyAlgorithm) {
    let scheme = algorithm.signing().expect("a signing algorithm");
    let made = provider
        .create_key(&spec(caps, "signing", algorithm))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] create {algorithm}: {e}"));
    // A message every scheme takes; the digest form is checked below.
    let input = ToSign::Message(b"release 1.2.3".to_vec());
    let first = provider
        .sign(&made.key_id, None, &input)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] sign {algorithm}: {e}"));
    assert_eq!(
        (first.version, first.algorithm),
        (1, scheme),
        "[{CHECK}] {algorithm}"
    );
    let v1 = verifying(provider, &made.key_id, None).await;
    assert_eq!(
        (v1.version, v1.algorithm),
        (1, scheme),
        "[{CHECK}] {algorithm}"
    );
    signing::verify(scheme, &v1.spki_der, &input, &first.bytes)
        .unwrap_or_else(|e| panic!("[{CHECK}] {algorithm} signature: {e}"));
    let other = ToSign::Message(b"release 1.2.4".to_vec());
    assert_eq!(
        signing::verify(scheme, &v1.spki_der, &other, &first.bytes),
        Err(SigningError::BadSignature),
        "[{CHECK}] {algorithm}: a signature verifies only what was signed"
    );

    provider
        .rotate_key(&made.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] rotate {algorithm}: {e}"));
    let second = provider
        .sign(&made.key_id, None, &input)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] sign after rotation {algorithm}: {e}"));
    assert_eq!(
        second.version, 2,
        "[{CHECK}] {algorithm}: the new primary signs"
    );
    // Named versions sign as named: what the webhook asks for.
    let pinned = provider
        .sign(&made.key_id, Some(1), &input)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] sign with version 1 {algorithm}: {e}"));
    assert_eq!(pinned.version, 1, "[{CHECK}] {algorithm}: version 1 named");
    signing::verify(scheme, &v1.spki_der, &input, &pinned.bytes)
        .unwrap_or_else(|e| panic!("[{CHECK}] {algorithm} version 1 named: {e}"));
    if caps.signs_digests && scheme.signs_digest() {
        let digest = ToSign::Sha256(input.sha256());
        let by_digest = provider
            .sign(&made.key_id, Some(2), &digest)
            .await
            .unwrap_or_else(|e| panic!("[{CHECK}] sign a digest {algorithm}: {e}"));
        let v2 = verifying(provider, &made.key_id, Some(2)).await;
        signing::verify(scheme, &v2.spki_der, &input, &by_digest.bytes).unwrap_or_else(|e| {
            panic!("[{CHECK}] {algorithm}: a digest signs as its message: {e}")
        });
    }
    let v2 = verifying(provider, &made.key_id, Some(2)).await;
    signing::verify(scheme, &v2.spki_der, &input, &second.bytes)
        .unwrap_or_else(|e| panic!("[{CHECK}] {algorithm} version 2: {e}"));
    let old = verifying(provider, &made.key_id, Some(1)).await;
    assert_eq!(
        old.spki_der, v1.spki_der,
        "[{CHECK}] {algorithm}: a public half never changes"
    );
    assert!(
        signing::verify(scheme, &v2.spki_der, &input, &first.bytes).is_err(),
        "[{CHECK}] {algorithm}: each version has its own key"
    );

    if caps.per_version_state {
        provider
            .set_version_enabled(&made.key_id, 2, false)
            .await
            .unwrap_or_else(|e| panic!("[{CHECK}] disable {algorithm}: {e}"));
        assert!(
            provider.sign(&made.key_id, None, &input).await.is_err(),
            "[{CHECK}] {algorithm}: a disabled primary signs nothing"
        );
        provider
            .set_version_enabled(&made.key_id, 2, true)
            .await
            .unwrap_or_else(|e| panic!("[{CHECK}] enable {algorithm}: {e}"));
    }
    let wrapped = provider
        .wrap_dek(&made.key_id, &Dek::generate(), &WrapContext::new())
        .await;
    assert!(
        matches!(wrapped, Err(ProviderError::WrongKeyType { .. })),
        "[{CHECK}] {algorithm}: a signing key wraps no data key: {wrapped:?}"
    );
}

async fn verifying(provider: &dyn KeyProvider, key_id: &str, version: Option<u32>) -> VerifyingKey {
    provider
        .verifying_key(key_id, version)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] verifying key {version:?}: {e}"))
}
