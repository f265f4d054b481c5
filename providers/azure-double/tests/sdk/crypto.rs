//! wrapKey/unwrapKey with RSA-OAEP-256 and sign/verify with PS256 and
//! ES256, checked against `keyward_core::crypto`.

use crate::client::{self, status};
use azure_security_keyvault_keys::KeyClient;
use azure_security_keyvault_keys::models::{
    EncryptionAlgorithm, KeyAttributes, KeyClientSignOptions, KeyClientUpdateKeyPropertiesOptions,
    KeyClientWrapKeyOptions, KeyOperationParameters, SignParameters, SignatureAlgorithm,
    UpdateKeyPropertiesParameters, VerifyParameters,
};
use keyward_azure_double::{Double, ecdsa_raw_to_der};
use keyward_core::crypto::signing::{self, SigningAlgorithm, ToSign};

fn oaep(value: &[u8]) -> KeyOperationParameters {
    KeyOperationParameters {
        algorithm: Some(EncryptionAlgorithm::RsaOaep256),
        value: Some(value.to_vec()),
        ..Default::default()
    }
}

async fn wrap(client: &KeyClient, version: &str, dek: &[u8]) -> azure_core::Result<Vec<u8>> {
    let options = KeyClientWrapKeyOptions {
        key_version: Some(version.to_owned()),
        ..Default::default()
    };
    let result = client
        .wrap_key("kek", oaep(dek).try_into()?, Some(options))
        .await?
        .into_model()?;
    Ok(result.result.unwrap())
}

async fn unwrap(client: &KeyClient, version: &str, wrapped: &[u8]) -> azure_core::Result<Vec<u8>> {
    let result = client
        .unwrap_key("kek", version, oaep(wrapped).try_into()?, None)
        .await?
        .into_model()?;
    Ok(result.result.unwrap())
}

async fn set_attributes(client: &KeyClient, version: &str, attributes: KeyAttributes) {
    let update = UpdateKeyPropertiesParameters {
        key_attributes: Some(attributes),
        ..Default::default()
    };
    let options = KeyClientUpdateKeyPropertiesOptions {
        key_version: Some(version.to_owned()),
        ..Default::default()
    };
    client
        .update_key_properties("kek", update.try_into().unwrap(), Some(options))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dek_wraps_and_unwraps_with_rsa_oaep_256() {
    let double = Double::start().await;
    let client = client::client(&double);
    let key = crate::create_rsa(&client, "kek", &[]).await;
    let version = crate::version_of(&key);
    let dek = [7u8; 32];
    let wrapped = wrap(&client, &version, &dek).await.unwrap();
    assert_eq!(wrapped.len(), 384);
    assert_eq!(unwrap(&client, &version, &wrapped).await.unwrap(), dek);

    // A wrapped value from another key (or corrupted) is a 400.
    let mut corrupted = wrapped.clone();
    corrupted[10] ^= 1;
    let error = unwrap(&client, &version, &corrupted).await.unwrap_err();
    assert_eq!(status(&error), (400, "BadParameter".to_owned()));

    // An unknown version is a 404.
    let error = unwrap(&client, &"0".repeat(32), &wrapped)
        .await
        .unwrap_err();
    assert_eq!(status(&error), (404, "KeyNotFound".to_owned()));
}

#[tokio::test]
async fn a_disabled_version_refuses_wrap_and_unwrap() {
    let double = Double::start().await;
    let client = client::client(&double);
    let version = crate::version_of(&crate::create_rsa(&client, "kek", &[]).await);
    let wrapped = wrap(&client, &version, &[1u8; 32]).await.unwrap();
    let disabled = KeyAttributes {
        enabled: Some(false),
        ..Default::default()
    };
    set_attributes(&client, &version, disabled).await;
    for error in [
        wrap(&client, &version, &[1u8; 32]).await.unwrap_err(),
        unwrap(&client, &version, &wrapped).await.unwrap_err(),
    ] {
        assert_eq!(status(&error), (403, "Forbidden".to_owned()));
        assert_eq!(
            client::body(&error)["error"]["innererror"]["code"],
            "KeyDisabled"
        );
    }
    let enabled = KeyAttributes {
        enabled: Some(true),
        ..Default::default()
    };
    set_attributes(&client, &version, enabled).await;
    assert_eq!(
        unwrap(&client, &version, &wrapped).await.unwrap(),
        [1u8; 32]
    );
}

#[tokio::test]
async fn outside_nbf_and_exp_wrap_is_refused_but_unwrap_works() {
    let double = Double::start().await;
    let client = client::client(&double);
    let version = crate::version_of(&crate::create_rsa(&client, "kek", &[]).await);
    let wrapped = wrap(&client, &version, &[2u8; 32]).await.unwrap();
    let now = azure_core::time::OffsetDateTime::now_utc();
    for attributes in [
        KeyAttributes {
            expires: Some(now - azure_core::time::Duration::minutes(1)),
            ..Default::default()
        },
        KeyAttributes {
            expires: Some(now + azure_core::time::Duration::days(1)),
            not_before: Some(now + azure_core::time::Duration::hours(1)),
            ..Default::default()
        },
    ] {
        set_attributes(&client, &version, attributes).await;
        let error = wrap(&client, &version, &[2u8; 32]).await.unwrap_err();
        assert_eq!(status(&error), (403, "Forbidden".to_owned()));
        let inner = client::body(&error)["error"]["innererror"]["code"].clone();
        assert!(
            inner == "KeyExpired" || inner == "KeyNotYetValid",
            "{inner}"
        );
        // Microsoft documents that expired and not-yet-valid keys still
        // unwrap, decrypt and verify.
        assert_eq!(
            unwrap(&client, &version, &wrapped).await.unwrap(),
            [2u8; 32]
        );
    }
}

/// The SubjectPublicKeyInfo of a P-256 point, for keyward_core.
fn p256_spki(x: &[u8], y: &[u8]) -> Vec<u8> {
    const PREFIX: [u8; 27] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
    ];
    [&PREFIX[..], x, y].concat()
}

async fn sign(
    client: &KeyClient,
    name: &str,
    alg: SignatureAlgorithm,
    digest: [u8; 32],
) -> Vec<u8> {
    let parameters = SignParameters {
        algorithm: Some(alg),
        value: Some(digest.to_vec()),
    };
    let options = KeyClientSignOptions::default();
    client
        .sign(name, parameters.try_into().unwrap(), Some(options))
        .await
        .unwrap()
        .into_model()
        .unwrap()
        .result
        .unwrap()
}

async fn verify(
    client: &KeyClient,
    name: &str,
    version: &str,
    alg: SignatureAlgorithm,
    digest: [u8; 32],
    signature: &[u8],
) -> bool {
    let parameters = VerifyParameters {
        algorithm: Some(alg),
        digest: Some(digest.to_vec()),
        signature: Some(signature.to_vec()),
    };
    client
        .verify(name, version, parameters.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
        .value
        .unwrap()
}

#[tokio::test]
async fn es256_signatures_are_raw_r_s_and_verify_locally_and_remotely() {
    let double = Double::start().await;
    let client = client::client(&double);
    let key = crate::create_ec(&client, "signer").await;
    let version = crate::version_of(&key);
    let jwk = key.key.unwrap();
    let spki = p256_spki(jwk.x.as_deref().unwrap(), jwk.y.as_deref().unwrap());
    let digest = keyward_core::crypto::sha256(b"artefact");
    let signature = sign(&client, "signer", SignatureAlgorithm::Es256, digest).await;
    assert_eq!(signature.len(), 64, "JWS r || s, not DER");
    let der = ecdsa_raw_to_der(&signature).unwrap();
    signing::verify(
        SigningAlgorithm::EcdsaP256Sha256,
        &spki,
        &ToSign::Sha256(digest),
        &der,
    )
    .unwrap();
    assert!(
        verify(
            &client,
            "signer",
            &version,
            SignatureAlgorithm::Es256,
            digest,
            &signature
        )
        .await
    );
    let other = keyward_core::crypto::sha256(b"other");
    assert!(
        !verify(
            &client,
            "signer",
            &version,
            SignatureAlgorithm::Es256,
            other,
            &signature
        )
        .await
    );
}

#[tokio::test]
async fn ps256_signs_with_an_rsa_key() {
    let double = Double::start().await;
    let client = client::client(&double);
    let version = crate::version_of(&crate::create_rsa(&client, "kek", &[]).await);
    let digest = keyward_core::crypto::sha256(b"artefact");
    let signature = sign(&client, "kek", SignatureAlgorithm::Ps256, digest).await;
    assert_eq!(signature.len(), 384);
    assert!(
        verify(
            &client,
            "kek",
            &version,
            SignatureAlgorithm::Ps256,
            digest,
            &signature
        )
        .await
    );
    // ES256 on an RSA key is refused.
    let parameters = SignParameters {
        algorithm: Some(SignatureAlgorithm::Es256),
        value: Some(digest.to_vec()),
    };
    let error = client
        .sign("kek", parameters.try_into().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(status(&error), (400, "BadParameter".to_owned()));
}
