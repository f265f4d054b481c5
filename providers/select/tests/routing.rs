//! Keys go to the provider their spec names (creation) or whose id they
//! carry (everything else); a provider the process lacks is a clear
//! refusal, never a panic.

use keyward_core::provider::{KeyAlgorithm, KeySpec, WrapContext};
use keyward_core::{Dek, KeyProvider, ProviderError};
use keyward_crds::ProviderSpec;
use keyward_provider_select::{NotServed, ProviderArgs, Providers};
use std::sync::Arc;

fn spec(yaml: &str) -> ProviderSpec {
    serde_yaml_ng::from_str(yaml).unwrap()
}

fn not_served(providers: &Providers, yaml: &str) -> NotServed {
    match providers.for_spec(&spec(yaml)) {
        Ok(p) => panic!("{yaml} was served by {}", p.kind()),
        Err(e) => e,
    }
}

async fn local_and_aws() -> (tempfile::TempDir, Providers) {
    let dir = tempfile::tempdir().unwrap();
    let local = keyward_conformance::fresh_local_provider(dir.path());
    let args = ProviderArgs {
        aws_region: Some("eu-west-1".into()),
        // Nothing listens here: building the client does not call out.
        aws_endpoint_url: Some("http://127.0.0.1:9".into()),
        ..ProviderArgs::default()
    };
    let providers = Providers::connect(&args)
        .await
        .unwrap()
        .with_local(Arc::new(local));
    (dir, providers)
}

#[tokio::test]
async fn the_spec_picks_the_provider_or_says_what_to_start_with() {
    let (_dir, providers) = local_and_aws().await;
    assert_eq!(providers.names(), ["local", "aws"]);
    assert_eq!(
        providers.for_spec(&spec("local: {}")).unwrap().kind(),
        "local"
    );
    assert_eq!(
        providers
            .for_spec(&spec("aws: {region: eu-west-1}"))
            .unwrap()
            .kind(),
        "aws"
    );

    let other_region = not_served(&providers, "aws: {region: us-east-1}");
    assert_eq!(other_region.reason, "ProviderMismatch");
    assert!(other_region.message.contains("eu-west-1"), "{other_region}");

    let p11 = not_served(&providers, "pkcs11: {tokenLabel: keyward}");
    assert_eq!(p11.reason, "ProviderNotConfigured");
    assert!(p11.message.contains("--pkcs11-module"), "{p11}");
    let gcp = not_served(
        &providers,
        "gcp: {project: acme-prod, location: global, keyRing: r}",
    );
    assert!(gcp.message.contains("--gcp-key-ring"), "{gcp}");
    let azure = not_served(
        &providers,
        "azure: {vaultUrl: https://acme.vault.azure.net}",
    );
    assert_eq!(azure.reason, "ProviderNotConfigured");
    assert!(azure.message.contains("--azure-vault-url"), "{azure}");

    let multi = not_served(&providers, "aws: {region: eu-west-1, multiRegion: true}");
    assert_eq!(multi.reason, "ProviderUnsupported");
}

#[tokio::test]
async fn calls_on_existing_keys_route_by_key_id() {
    let (_dir, providers) = local_and_aws().await;
    let created = providers
        .for_spec(&spec("local: {}"))
        .unwrap()
        .create_key(&KeySpec {
            name: "db".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: Some("uid-1".into()),
            description: None,
        })
        .await
        .unwrap();
    let context = WrapContext::from([("keyward.io/namespace".to_owned(), "apps".to_owned())]);
    let dek = Dek::generate();
    let wrapped = providers
        .wrap_dek(&created.key_id, &dek, &context)
        .await
        .unwrap();
    let opened = providers.unwrap_dek(&wrapped, &context).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());
    assert_eq!(
        providers
            .describe_key(&created.key_id)
            .await
            .unwrap()
            .primary_version,
        1
    );

    // The router cannot guess where a new key goes.
    let refused = providers
        .create_key(&KeySpec {
            name: "x".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: None,
            description: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ProviderError::InvalidRequest(_)),
        "{refused}"
    );

    // A PKCS#11 key id reaching a process without PKCS#11 says how to fix it.
    let message = providers
        .describe_key("p11k-0011223344556677")
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("--pkcs11-module"), "{message}");
    assert!(matches!(
        providers.describe_key("no-such-shape").await,
        Err(ProviderError::UnknownKey(_))
    ));
}
