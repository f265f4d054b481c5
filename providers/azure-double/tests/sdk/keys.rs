//! Creating keys, reading them back, versions and their paging, and
//! per-version updates.

use crate::client::{self, status};
use azure_security_keyvault_keys::models::{
    CreateKeyParameters, CurveName, KeyAttributes, KeyClientGetKeyOptions,
    KeyClientListKeyPropertiesVersionsOptions, KeyClientUpdateKeyPropertiesOptions, KeyType,
    UpdateKeyPropertiesParameters,
};
use futures::TryStreamExt;
use keyward_azure_double::Double;
use std::collections::HashMap;

#[tokio::test]
async fn an_rsa_key_comes_back_as_a_jwk_with_attributes_and_tags() {
    let double = Double::start().await;
    let client = client::client(&double);
    let key = crate::create_rsa(&client, "kek", &[("keyward-version", "1")]).await;
    let jwk = key.key.as_ref().unwrap();
    assert_eq!(jwk.kty, Some(KeyType::Rsa));
    assert_eq!(jwk.n.as_ref().unwrap().len(), 384, "3072-bit modulus");
    assert_eq!(jwk.e.as_deref(), Some(&[1u8, 0, 1][..]));
    let kid = jwk.kid.as_deref().unwrap();
    assert!(
        kid.starts_with(&format!("{}/keys/kek/", double.vault_url())),
        "{kid}"
    );
    assert_eq!(crate::version_of(&key).len(), 32);
    let attributes = key.attributes.as_ref().unwrap();
    assert_eq!(attributes.enabled, Some(true));
    assert!(attributes.created.is_some() && attributes.updated.is_some());
    assert_eq!(attributes.recoverable_days, Some(90));
    assert_eq!(key.tags.as_ref().unwrap()["keyward-version"], "1");
    let ops = jwk.key_ops.as_ref().unwrap();
    assert!(ops.contains(&"wrapKey".to_owned()) && ops.contains(&"unwrapKey".to_owned()));

    let latest = client
        .get_key("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(crate::version_of(&latest), crate::version_of(&key));
}

#[tokio::test]
async fn create_on_an_existing_name_adds_a_version_and_versions_page() {
    let double = Double::start().await;
    let client = client::client(&double);
    let mut versions = Vec::new();
    for n in 1..=3 {
        let key = crate::create_rsa(&client, "kek", &[("keyward-version", &n.to_string())]).await;
        versions.push(crate::version_of(&key));
    }
    // The key's current version is the newest.
    let latest = client
        .get_key("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(crate::version_of(&latest), versions[2]);
    // An older one by id.
    let options = KeyClientGetKeyOptions {
        key_version: Some(versions[0].clone()),
        ..Default::default()
    };
    let first = client
        .get_key("kek", Some(options))
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(first.tags.unwrap()["keyward-version"], "1");

    // Three versions at two a page: the SDK follows nextLink once.
    double.reset_calls();
    let listed: Vec<_> = client
        .list_key_properties_versions("kek", None)
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(double.calls("ListKeyVersions"), 2);
    let tags: Vec<String> = listed
        .iter()
        .map(|p| p.tags.as_ref().unwrap()["keyward-version"].clone())
        .collect();
    assert_eq!(tags, ["1", "2", "3"]);

    // maxresults from the client wins over the default page size.
    double.reset_calls();
    let options = KeyClientListKeyPropertiesVersionsOptions {
        maxresults: Some(1),
        ..Default::default()
    };
    let listed: Vec<_> = client
        .list_key_properties_versions("kek", Some(options))
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(double.calls("ListKeyVersions"), 3);
}

#[tokio::test]
async fn a_version_is_disabled_and_retagged_by_patch() {
    let double = Double::start().await;
    let client = client::client(&double);
    let key = crate::create_rsa(&client, "kek", &[("keyward-version", "1")]).await;
    let version = crate::version_of(&key);
    let update = UpdateKeyPropertiesParameters {
        key_attributes: Some(KeyAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        tags: Some(HashMap::from([
            ("keyward-version".to_owned(), "1".to_owned()),
            ("keyward-destroy-after".to_owned(), "1900000000".to_owned()),
        ])),
        ..Default::default()
    };
    let options = KeyClientUpdateKeyPropertiesOptions {
        key_version: Some(version.clone()),
        ..Default::default()
    };
    let updated = client
        .update_key_properties("kek", update.try_into().unwrap(), Some(options))
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(updated.attributes.unwrap().enabled, Some(false));
    let snapshot = double.key("kek").unwrap();
    assert_eq!(snapshot.versions.len(), 1);
    assert_eq!(snapshot.versions[0].id, version);
    assert!(!snapshot.versions[0].enabled);
    assert_eq!(snapshot.versions[0].tags.len(), 2);
}

#[tokio::test]
async fn an_ec_key_has_a_p256_jwk() {
    let double = Double::start().await;
    let client = client::client(&double);
    let key = crate::create_ec(&client, "signer").await;
    let jwk = key.key.unwrap();
    assert_eq!(jwk.kty, Some(KeyType::Ec));
    assert_eq!(jwk.crv, Some(CurveName::P256));
    assert_eq!(jwk.x.unwrap().len(), 32);
    assert_eq!(jwk.y.unwrap().len(), 32);
    assert_eq!(jwk.key_ops.unwrap(), ["sign", "verify"]);
}

#[tokio::test]
async fn keys_the_double_does_not_make_are_refused() {
    let double = Double::start().await;
    let client = client::client(&double);
    for parameters in [
        CreateKeyParameters {
            kty: Some(KeyType::Rsa),
            key_size: Some(2048),
            ..Default::default()
        },
        CreateKeyParameters {
            kty: Some(KeyType::OctHsm),
            key_size: Some(256),
            ..Default::default()
        },
        CreateKeyParameters {
            kty: Some(KeyType::Ec),
            curve: Some(CurveName::P384),
            ..Default::default()
        },
    ] {
        let error = client
            .create_key("k", parameters.try_into().unwrap(), None)
            .await
            .unwrap_err();
        assert_eq!(status(&error), (400, "BadParameter".to_owned()));
    }
    let error = client.get_key("k", None).await.unwrap_err();
    assert_eq!(status(&error), (404, "KeyNotFound".to_owned()));
}
