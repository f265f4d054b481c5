//! The shared conformance suite, with RSA sealing keys as the wrapping
//! keys (Key Vault has no symmetric keys): `Capabilities::wrapping_key`.

use keyward_azure_double::Double;
use keyward_conformance::Capabilities;
use keyward_core::provider::KeyAlgorithm;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes() {
    let double = Double::start().await;
    let provider = crate::common::provider(&double);
    let caps = Capabilities {
        wrapping_key: KeyAlgorithm::Rsa3072,
        rsa_algorithm: Some(KeyAlgorithm::Rsa3072),
        real_rsa_oaep: true,
        per_version_state: true,
        tags: true,
        name_prefix: "azure".into(),
        signing: vec![KeyAlgorithm::RsaPss3072, KeyAlgorithm::EcP256],
        signs_digests: true,
    };
    let ran = keyward_conformance::run(&provider, &caps).await;
    assert_eq!(
        ran,
        [
            "create_is_idempotent_per_owner",
            "owner_and_claim_are_recorded",
            "describe_finds_by_id_and_name",
            "unknown_keys_are_reported",
            "rotation_keeps_old_versions_and_rewrap_moves_to_primary",
            "whole_key_deletion_can_be_cancelled",
            "envelope_round_trip",
            "tags_follow_what_is_asked",
            "signing_keys_sign_and_verify",
            "disabled_version_refuses_until_enabled",
            "public_key_is_published",
            "offline_sealed_value_opens",
        ]
    );
}
