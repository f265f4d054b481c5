//! Rotation (on demand and by policy) and soft delete: delete, the name
//! held while deleted, recover, purge and purge protection.

use crate::client::{self, status};
use azure_security_keyvault_keys::models::{
    KeyRotationPolicy, KeyRotationPolicyAction, KeyRotationPolicyAttributes, LifetimeAction,
    LifetimeActionTrigger, LifetimeActionType,
};
use keyward_azure_double::{Double, Options};

#[tokio::test]
async fn rotate_adds_a_version_and_a_policy_sets_its_expiry() {
    let double = Double::start().await;
    let client = client::client(&double);
    let first = crate::create_rsa(&client, "kek", &[("owner", "uid-1")]).await;
    let rotated = client
        .rotate_key("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_ne!(crate::version_of(&rotated), crate::version_of(&first));
    assert_eq!(double.key("kek").unwrap().versions.len(), 2);

    // No policy yet: Key Vault's default (notify before expiry).
    let default = client
        .get_key_rotation_policy("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(default.lifetime_actions.unwrap().len(), 1);

    let policy = KeyRotationPolicy {
        lifetime_actions: Some(vec![LifetimeAction {
            action: Some(LifetimeActionType {
                type_prop: Some(KeyRotationPolicyAction::Rotate),
            }),
            trigger: Some(LifetimeActionTrigger {
                time_after_create: Some("P90D".to_owned()),
                ..Default::default()
            }),
        }]),
        attributes: Some(KeyRotationPolicyAttributes {
            expiry_time: Some("P180D".to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let stored = client
        .update_key_rotation_policy("kek", policy.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(stored.id.unwrap().ends_with("/keys/kek/rotationpolicy"));
    let read = client
        .get_key_rotation_policy("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let action = &read.lifetime_actions.unwrap()[0];
    assert_eq!(
        action
            .trigger
            .as_ref()
            .unwrap()
            .time_after_create
            .as_deref(),
        Some("P90D")
    );

    let id = double.fire_policy_rotation("kek").await.unwrap();
    let snapshot = double.key("kek").unwrap();
    let newest = snapshot.versions.last().unwrap();
    assert_eq!(newest.id, id);
    let exp = newest.exp.expect("expiryTime gives the new version an exp");
    let now = keyward_now();
    assert!((exp - now - 180 * 86_400).abs() < 60);

    // Too short a rotation period is refused.
    let too_soon = KeyRotationPolicy {
        lifetime_actions: Some(vec![LifetimeAction {
            action: Some(LifetimeActionType {
                type_prop: Some(KeyRotationPolicyAction::Rotate),
            }),
            trigger: Some(LifetimeActionTrigger {
                time_after_create: Some("P1D".to_owned()),
                ..Default::default()
            }),
        }]),
        ..Default::default()
    };
    let error = client
        .update_key_rotation_policy("kek", too_soon.try_into().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(status(&error).0, 400);
}

fn keyward_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn a_deleted_key_holds_its_name_until_recovered() {
    let double = Double::start().await;
    let client = client::client(&double);
    let key = crate::create_rsa(&client, "kek", &[]).await;
    let deleted = client
        .delete_key("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert!(deleted.recovery_id.unwrap().ends_with("/deletedkeys/kek"));
    let (at, purge) = (
        deleted.deleted_date.unwrap(),
        deleted.scheduled_purge_date.unwrap(),
    );
    assert_eq!((purge - at).whole_days(), 90);

    let error = client.get_key("kek", None).await.unwrap_err();
    assert_eq!(status(&error), (404, "KeyNotFound".to_owned()));
    let parameters = azure_security_keyvault_keys::models::CreateKeyParameters {
        kty: Some(azure_security_keyvault_keys::models::KeyType::Rsa),
        key_size: Some(3072),
        ..Default::default()
    };
    let error = client
        .create_key("kek", parameters.try_into().unwrap(), None)
        .await
        .unwrap_err();
    assert_eq!(status(&error), (409, "Conflict".to_owned()));
    assert_eq!(
        client::body(&error)["error"]["innererror"]["code"],
        "ObjectIsDeletedButRecoverable"
    );
    client.get_deleted_key("kek", None).await.unwrap();

    let recovered = client
        .recover_deleted_key("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(crate::version_of(&recovered), crate::version_of(&key));
    assert!(double.key("kek").unwrap().deleted.is_none());
    client.get_key("kek", None).await.unwrap();
    let error = client.get_deleted_key("kek", None).await.unwrap_err();
    assert_eq!(status(&error), (404, "KeyNotFound".to_owned()));
}

#[tokio::test]
async fn purge_frees_the_name_without_purge_protection() {
    let double = Double::start().await;
    let client = client::client(&double);
    crate::create_rsa(&client, "kek", &[]).await;
    client.delete_key("kek", None).await.unwrap();
    client.purge_deleted_key("kek", None).await.unwrap();
    assert!(double.key("kek").is_none());
    crate::create_rsa(&client, "kek", &[]).await;
}

#[tokio::test]
async fn purge_protection_refuses_purge_until_the_scheduled_date() {
    let double = Double::start_with(Options {
        purge_protection: true,
        retention_days: 7,
        ..Options::default()
    })
    .await;
    let client = client::client(&double);
    let key = crate::create_rsa(&client, "kek", &[]).await;
    let level = key.attributes.unwrap().recovery_level.unwrap();
    assert_eq!(level.to_string(), "CustomizedRecoverable");
    let deleted = client
        .delete_key("kek", None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let (at, purge) = (
        deleted.deleted_date.unwrap(),
        deleted.scheduled_purge_date.unwrap(),
    );
    assert_eq!((purge - at).whole_days(), 7);
    let error = client.purge_deleted_key("kek", None).await.unwrap_err();
    assert_eq!(status(&error), (403, "Forbidden".to_owned()));
    assert!(double.key("kek").unwrap().deleted.is_some());

    assert!(double.fire_scheduled_purge("kek"));
    assert!(double.key("kek").is_none());
    crate::create_rsa(&client, "kek", &[]).await;
}
