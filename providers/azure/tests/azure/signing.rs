//! Signatures made through Key Vault verify with the `openssl` binary
//! and the public key the provider hands out (ES256 converted from raw
//! r||s to DER).

use crate::common::{provider, spec};
use keyward_azure_double::Double;
use keyward_conformance::openssl_accepts;
use keyward_core::crypto::signing::ToSign;
use keyward_core::provider::{KeyAlgorithm, KeyProvider};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_from_key_vault_verify_with_openssl() {
    let double = Double::start().await;
    let provider = provider(&double);
    for algorithm in [KeyAlgorithm::EcP256, KeyAlgorithm::RsaPss3072] {
        let scheme = algorithm.signing().unwrap();
        let key = provider
            .create_key(&spec(
                &format!("signer-{algorithm}").replace('_', "-"),
                algorithm,
            ))
            .await
            .unwrap()
            .key_id;
        let data = b"keyward release 1.2.3";
        for input in [
            ToSign::Message(data.to_vec()),
            ToSign::Sha256(ToSign::Message(data.to_vec()).sha256()),
        ] {
            let signed = provider.sign(&key, None, &input).await.unwrap();
            assert_eq!(signed.algorithm, scheme);
            let public = provider
                .verifying_key(&key, Some(signed.version))
                .await
                .unwrap();
            assert!(
                openssl_accepts(scheme, &public.spki_der, data, &signed.bytes),
                "{algorithm}: openssl refused a Key Vault signature"
            );
            assert!(
                !openssl_accepts(scheme, &public.spki_der, b"another file", &signed.bytes),
                "{algorithm}: openssl accepted a signature over other data"
            );
        }
    }
}
