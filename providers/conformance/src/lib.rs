//! The shared conformance suite: the same checks run against every
//! [`KeyProvider`] (local, AWS KMS on moto, PKCS#11 on SoftHSM2, the Cloud KMS
//! test double). A provider's test calls [`run`] with what its backend can do.
//!
//! Every check panics with a message naming the check, so a failing run says
//! which promise of the trait the provider broke.
#![forbid(unsafe_code)]

mod measure;
pub mod openssl;
mod signing;
pub use measure::{CountingProvider, Measurement, measure};
pub use openssl::openssl_accepts;

use keyward_core::envelope::{
    PublicSealingKey, Scope, SecretTarget, Wrapping, open_secret, seal_secret,
};
use keyward_core::provider::{
    Claim, DeletionTarget, KeyAlgorithm, KeyInfo, KeyProvider, KeySpec, ProviderError,
    WrapAlgorithm, WrapContext, WrappedDek,
};
use keyward_core::{Dek, SecretBytes};
use std::collections::BTreeMap;
use std::time::Duration;

/// What the backend under test supports.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// RSA keys whose `unwrap_dek` really decrypts RSA-OAEP-SHA256 made
    /// offline from `public_key` (moto's RSA decrypt is not real OAEP).
    pub real_rsa_oaep: bool,
    /// Which RSA size to create for asymmetric checks (None: skip them).
    pub rsa_algorithm: Option<KeyAlgorithm>,
    /// Versions can be disabled one by one (false where only whole keys can).
    pub per_version_state: bool,
    /// Prefix for key names, so runs against a shared backend don't collide.
    pub name_prefix: String,
    /// The provider keeps a user's tags (AWS tags, Cloud KMS labels);
    /// otherwise `set_tags` must refuse.
    pub tags: bool,
    /// The signing algorithms the provider makes; with none, creating a
    /// signing key must be refused.
    pub signing: Vec<KeyAlgorithm>,
    /// RSA and ECDSA keys sign a SHA-256 digest sent alone (moto hashes
    /// such a digest again, so its signatures are checked on messages).
    pub signs_digests: bool,
    /// The algorithm of the keys the lifecycle checks wrap with: AES256,
    /// or an RSA sealing key where the provider has no symmetric keys
    /// (Azure Key Vault); then the context-binding check, which only a
    /// symmetric key can pass, and the no-public-key check are skipped.
    pub wrapping_key: KeyAlgorithm,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            real_rsa_oaep: true,
            rsa_algorithm: Some(KeyAlgorithm::Rsa3072),
            per_version_state: true,
            name_prefix: "conformance".into(),
            tags: false,
            signing: vec![
                KeyAlgorithm::RsaPss3072,
                KeyAlgorithm::EcP256,
                KeyAlgorithm::Ed25519,
            ],
            signs_digests: true,
            wrapping_key: KeyAlgorithm::Aes256,
        }
    }
}

/// Runs every check; returns the names of the checks that ran.
pub async fn run(provider: &dyn KeyProvider, caps: &Capabilities) -> Vec<&'static str> {
    let mut ran = vec![
        create_is_idempotent_per_owner(provider, caps).await,
        owner_and_claim_are_recorded(provider, caps).await,
        describe_finds_by_id_and_name(provider, caps).await,
        unknown_keys_are_reported(provider).await,
        rotation_keeps_old_versions_and_rewrap_moves_to_primary(provider, caps).await,
        whole_key_deletion_can_be_cancelled(provider, caps).await,
        envelope_round_trip(provider, caps).await,
        tags_follow_what_is_asked(provider, caps).await,
        signing::signing_keys_sign_and_verify(provider, caps).await,
    ];
    if caps.wrapping_key == KeyAlgorithm::Aes256 {
        ran.push(wrap_is_bound_to_its_context(provider, caps).await);
    }
    if caps.per_version_state {
        ran.push(disabled_version_refuses_until_enabled(provider, caps).await);
    }
    if caps.rsa_algorithm.is_some() {
        ran.push(public_key_is_published(provider, caps).await);
        if caps.real_rsa_oaep {
            ran.push(offline_sealed_value_opens(provider, caps).await);
        }
    }
    ran
}

fn spec(caps: &Capabilities, name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    let unique = unique_suffix();
    KeySpec {
        name: format!("{}-{name}-{unique}", caps.name_prefix),
        algorithm,
        owner: Some(format!("uid-{name}-{unique}")),
        description: Some(format!("conformance check {name}")),
    }
}

/// `set_tags` makes the user's tags exactly the set asked for, keeps the
/// provider's own records (the owner), and a rotation's new primary
/// version carries them; a provider without tags refuses, saying so.
async fn tags_follow_what_is_asked(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "tags_follow_what_is_asked";
    let made = wrapping_key(provider, caps, "tagged").await;
    let first: BTreeMap<String, String> = [
        ("team".to_owned(), "payments".to_owned()),
        ("cost-center".to_owned(), "4711".to_owned()),
    ]
    .into();
    if !caps.tags {
        match provider.set_tags(&made.key_id, &first).await {
            Err(ProviderError::InvalidRequest(why)) if why.contains("keeps no tags") => {}
            other => panic!("[{CHECK}] a provider without tags answered {other:?}"),
        }
        return CHECK;
    }
    let tags = async |what: &str| {
        provider
            .tags(&made.key_id)
            .await
            .unwrap_or_else(|e| panic!("[{CHECK}] tags {what}: {e}"))
    };
    provider
        .set_tags(&made.key_id, &first)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] set_tags: {e}"));
    assert_eq!(tags("after set_tags").await, first, "[{CHECK}] first set");
    provider
        .rotate_key(&made.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] rotate: {e}"));
    assert_eq!(
        tags("after a rotation").await,
        first,
        "[{CHECK}] new version"
    );
    let edited: BTreeMap<String, String> = [("team".to_owned(), "billing".to_owned())].into();
    provider
        .set_tags(&made.key_id, &edited)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] set_tags again: {e}"));
    assert_eq!(tags("after an edit").await, edited, "[{CHECK}] edit");
    let described = provider
        .describe_key(&made.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] describe: {e}"));
    assert_eq!(
        described.owner, made.owner,
        "[{CHECK}] the owner record went"
    );
    provider
        .set_tags(&made.key_id, &BTreeMap::new())
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] clearing: {e}"));
    assert!(tags("after clearing").await.is_empty(), "[{CHECK}] clear");
    CHECK
}

pub(crate) fn unique_suffix() -> String {
    let mut bytes = [0u8; 4];
    keyward_core::crypto::fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A key of [`Capabilities::wrapping_key`].
async fn wrapping_key(provider: &dyn KeyProvider, caps: &Capabilities, name: &str) -> KeyInfo {
    provider
        .create_key(&spec(caps, name, caps.wrapping_key))
        .await
        .unwrap_or_else(|e| panic!("[{name}] create_key: {e}"))
}

fn context(namespace: &str) -> WrapContext {
    [
        ("keyward.io/namespace".to_owned(), namespace.to_owned()),
        ("keyward.io/scope".to_owned(), "namespace".to_owned()),
    ]
    .into()
}

/// What a rebuilt cluster relies on: the stable owner set by `set_owner`
/// finds the key again through `create_key`, and the claim (where kept)
/// reads back and survives a rotation.
async fn owner_and_claim_are_recorded(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "owner_and_claim_are_recorded";
    let mut spec = spec(caps, "claimed", caps.wrapping_key);
    let made = provider
        .create_key(&spec)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let stable = format!("team-{}/claimed", unique_suffix());
    // Whole seconds: every provider stores the time to the second.
    let renewed_at = std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let claim = Claim {
        cluster: "0b5e2c1a-cluster-a".into(),
        renewed_at,
    };
    provider
        .set_owner(&made.key_id, &stable, &claim)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] set_owner: {e}"));
    let read = provider
        .describe_key(&made.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let recorded = provider.recorded_owner(&made.key_id, &stable);
    assert_eq!(read.owner.as_deref(), Some(recorded.as_str()), "[{CHECK}]");
    let kept = provider.keeps_claims(&made.key_id);
    assert_eq!(read.claim, kept.then(|| claim.clone()), "[{CHECK}]");

    spec.owner = Some(stable.clone());
    let again = provider
        .create_key(&spec)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] create by the stable owner: {e}"));
    assert_eq!(
        again.key_id, made.key_id,
        "[{CHECK}] the stable owner did not find the key again"
    );
    let rotated = provider
        .rotate_key(&made.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(
        rotated.owner.as_deref(),
        Some(recorded.as_str()),
        "[{CHECK}]"
    );
    let read = provider
        .describe_key(&made.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(
        read.claim,
        kept.then_some(claim),
        "[{CHECK}] the claim was lost in a rotation"
    );
    CHECK
}

async fn create_is_idempotent_per_owner(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "create_is_idempotent_per_owner";
    let spec = spec(caps, "idempotent", caps.wrapping_key);
    let first = provider
        .create_key(&spec)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let second = provider
        .create_key(&spec)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(
        first.key_id, second.key_id,
        "[{CHECK}] a retried create made a second key"
    );
    assert_eq!(first.algorithm, caps.wrapping_key, "[{CHECK}]");
    assert_eq!(
        first.primary_version, 1,
        "[{CHECK}] a new key starts at version 1"
    );
    CHECK
}

async fn describe_finds_by_id_and_name(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "describe_finds_by_id_and_name";
    let key = wrapping_key(provider, caps, "describe").await;
    let by_id = provider
        .describe_key(&key.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let by_name = provider
        .describe_key(&key.name)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(by_id.key_id, key.key_id, "[{CHECK}]");
    assert_eq!(by_name.key_id, key.key_id, "[{CHECK}]");
    assert_eq!(
        by_id.owner, key.owner,
        "[{CHECK}] the owner tag must be kept"
    );
    CHECK
}

async fn unknown_keys_are_reported(provider: &dyn KeyProvider) -> &'static str {
    const CHECK: &str = "unknown_keys_are_reported";
    let missing = format!("no-such-key-{}", unique_suffix());
    let error = provider.describe_key(&missing).await.expect_err(CHECK);
    assert!(
        matches!(error, ProviderError::UnknownKey(_)),
        "[{CHECK}] got {error:?}"
    );
    CHECK
}

async fn wrap_is_bound_to_its_context(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "wrap_is_bound_to_its_context";
    let key = wrapping_key(provider, caps, "context").await;
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(wrapped.algorithm, WrapAlgorithm::Symmetric, "[{CHECK}]");
    assert_eq!(wrapped.version, 1, "[{CHECK}]");
    let unwrapped = provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(
        unwrapped.expose(),
        dek.expose(),
        "[{CHECK}] round trip changed the DEK"
    );
    let wrong = provider
        .unwrap_dek(&wrapped, &context("b"))
        .await
        .expect_err("[wrap_is_bound_to_its_context] wrong context opened");
    assert_eq!(wrong, ProviderError::UnwrapFailed, "[{CHECK}]");
    let mut tampered = wrapped.clone();
    let last = tampered.blob.len() - 1;
    tampered.blob[last] ^= 1;
    let error = provider
        .unwrap_dek(&tampered, &context("a"))
        .await
        .expect_err("[wrap_is_bound_to_its_context] tampered blob opened");
    assert_eq!(error, ProviderError::UnwrapFailed, "[{CHECK}]");
    CHECK
}

async fn rotation_keeps_old_versions_and_rewrap_moves_to_primary(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "rotation_keeps_old_versions_and_rewrap_moves_to_primary";
    let key = wrapping_key(provider, caps, "rotate").await;
    let dek = Dek::generate();
    let old = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let rotated = provider
        .rotate_key(&key.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(
        rotated.primary_version, 2,
        "[{CHECK}] rotation must make version 2 primary"
    );
    assert!(
        rotated.versions.iter().any(|v| v.version == 1),
        "[{CHECK}] version 1 disappeared"
    );
    let still = provider
        .unwrap_dek(&old, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] old version: {e}"));
    assert_eq!(still.expose(), dek.expose(), "[{CHECK}]");
    let fresh = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(
        fresh.version, 2,
        "[{CHECK}] new wraps must use the primary version"
    );
    let rewrapped = provider
        .rewrap(&old, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] rewrap: {e}"));
    assert_eq!(
        rewrapped.version, 2,
        "[{CHECK}] rewrap must move to the primary version"
    );
    let opened = provider
        .unwrap_dek(&rewrapped, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(opened.expose(), dek.expose(), "[{CHECK}]");
    CHECK
}

async fn disabled_version_refuses_until_enabled(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "disabled_version_refuses_until_enabled";
    let key = wrapping_key(provider, caps, "disable").await;
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    provider
        .set_version_enabled(&key.key_id, 1, false)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let error = provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .expect_err("[disabled_version_refuses_until_enabled] disabled version unwrapped");
    assert!(
        matches!(error, ProviderError::VersionDisabled { .. }),
        "[{CHECK}] got {error:?}"
    );
    provider
        .set_version_enabled(&key.key_id, 1, true)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] after enabling: {e}"));
    CHECK
}

async fn whole_key_deletion_can_be_cancelled(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "whole_key_deletion_can_be_cancelled";
    let key = wrapping_key(provider, caps, "delete").await;
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&key.key_id, &dek, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let window = Duration::from_secs(7 * 24 * 3600);
    let at = provider
        .schedule_deletion(&key.key_id, DeletionTarget::WholeKey, window)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let earliest = std::time::SystemTime::now() + window - Duration::from_secs(24 * 3600);
    assert!(
        at >= earliest,
        "[{CHECK}] deletion must wait for the window"
    );
    let described = provider
        .describe_key(&key.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert!(
        described.deletion_at.is_some(),
        "[{CHECK}] describe must show the scheduled deletion"
    );
    let refused = provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .expect_err("[whole_key_deletion_can_be_cancelled] key pending deletion unwrapped");
    assert!(
        matches!(
            refused,
            ProviderError::PendingDeletion { .. } | ProviderError::VersionDisabled { .. }
        ),
        "[{CHECK}] got {refused:?}"
    );
    provider
        .cancel_deletion(&key.key_id, DeletionTarget::WholeKey)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let described = provider
        .describe_key(&key.key_id)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert!(
        described.deletion_at.is_none(),
        "[{CHECK}] cancel must clear the deletion"
    );
    // Some providers (AWS) leave a cancelled key disabled; enabling is explicit.
    for version in &described.versions {
        let _ = provider
            .set_version_enabled(&key.key_id, version.version, true)
            .await;
    }
    provider
        .unwrap_dek(&wrapped, &context("a"))
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] after cancel: {e}"));
    CHECK
}

async fn envelope_round_trip(provider: &dyn KeyProvider, caps: &Capabilities) -> &'static str {
    const CHECK: &str = "envelope_round_trip";
    let key = wrapping_key(provider, caps, "envelope").await;
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: "shop".into(),
        secret_name: "db".into(),
        key_ref: format!("shop/{}", key.name),
        access: Vec::new(),
    };
    let items: BTreeMap<String, SecretBytes> = [
        ("password".to_owned(), SecretBytes::from(&b"hunter2"[..])),
        ("empty".to_owned(), SecretBytes::default()),
    ]
    .into();
    let wrapping = Wrapping::Provider {
        provider,
        key_id: &key.key_id,
    };
    let sealed = seal_secret(&target, wrapping, &items)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let opened = open_secret(&target, provider, &sealed)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(opened, items, "[{CHECK}] values changed");
    let elsewhere = SecretTarget {
        namespace: "dev".into(),
        ..target
    };
    assert!(
        open_secret(&elsewhere, provider, &sealed).await.is_err(),
        "[{CHECK}] opened in another namespace"
    );
    CHECK
}

async fn rsa_key(provider: &dyn KeyProvider, caps: &Capabilities, name: &str) -> KeyInfo {
    let algorithm = caps
        .rsa_algorithm
        .expect("asymmetric checks need an RSA algorithm");
    provider
        .create_key(&spec(caps, name, algorithm))
        .await
        .unwrap_or_else(|e| panic!("[{name}] create RSA key: {e}"))
}

async fn public_key_is_published(provider: &dyn KeyProvider, caps: &Capabilities) -> &'static str {
    const CHECK: &str = "public_key_is_published";
    let key = rsa_key(provider, caps, "public").await;
    let public = provider
        .public_key(&key.key_id, None)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let bits = match caps.rsa_algorithm {
        Some(KeyAlgorithm::Rsa4096) => 4096,
        _ => 3072,
    };
    assert_eq!(public.public_key.bits(), bits, "[{CHECK}]");
    assert_eq!(public.version, key.primary_version, "[{CHECK}]");
    if caps.wrapping_key == KeyAlgorithm::Aes256 {
        let symmetric = wrapping_key(provider, caps, "no-public").await;
        let error = provider
            .public_key(&symmetric.key_id, None)
            .await
            .expect_err("[public_key_is_published] symmetric key has no public key");
        assert!(
            matches!(error, ProviderError::WrongKeyType { .. }),
            "[{CHECK}] got {error:?}"
        );
    }
    CHECK
}

async fn offline_sealed_value_opens(
    provider: &dyn KeyProvider,
    caps: &Capabilities,
) -> &'static str {
    const CHECK: &str = "offline_sealed_value_opens";
    let key = rsa_key(provider, caps, "offline").await;
    let public = provider
        .public_key(&key.key_id, None)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let sealing = PublicSealingKey {
        key: public.public_key,
        key_version: public.version,
        provider_key_id: public.key_id.clone(),
    };
    let target = SecretTarget {
        scope: Scope::Namespace,
        namespace: "shop".into(),
        secret_name: "api".into(),
        key_ref: format!("shop/{}", key.name),
        access: Vec::new(),
    };
    let items: BTreeMap<String, SecretBytes> =
        [("token".to_owned(), SecretBytes::from(&b"offline"[..]))].into();
    let sealed = seal_secret(&target, Wrapping::PublicKey(&sealing), &items)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    let opened = open_secret(&target, provider, &sealed)
        .await
        .unwrap_or_else(|e| panic!("[{CHECK}] {e}"));
    assert_eq!(opened, items, "[{CHECK}]");
    let garbage = WrappedDek {
        blob: vec![0x42; 384],
        ..wrapped_of(&sealed)
    };
    let error = provider
        .unwrap_dek(&garbage, &WrapContext::new())
        .await
        .expect_err("[offline_sealed_value_opens] garbage unwrapped");
    assert_eq!(error, ProviderError::UnwrapFailed, "[{CHECK}]");
    CHECK
}

fn wrapped_of(sealed: &BTreeMap<String, String>) -> WrappedDek {
    let text = sealed.values().next().expect("one item");
    keyward_core::envelope::Envelope::decode(text)
        .expect("fresh envelope parses")
        .wrapped()
}

/// A throw-away local keyring in `dir` (root key file + empty keyring), the
/// reference peer the other providers' tests compare against.
pub fn fresh_local_provider(dir: &std::path::Path) -> keyward_core::local::LocalProvider {
    use keyward_core::local::{KeyringStore, LocalProvider, ROOT_KEY_FILE, RootKey};
    let root = RootKey::generate();
    root.save_new(&dir.join(ROOT_KEY_FILE))
        .expect("write a test root key");
    let store = KeyringStore::new(dir, root);
    store.initialise().expect("initialise a test keyring");
    LocalProvider::new(store)
}
