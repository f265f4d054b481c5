//! The PKCS#11 provider against a real SoftHSM2 token: the shared conformance
//! suite, then what only an HSM can show (attributes read back from the
//! token, the session pool under load, login and module errors).

mod common;

use common::{MODULE, OTHER_TOKEN, TOKEN, softhsm};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::Session;
use keyward_conformance::{Capabilities, openssl_accepts};
use keyward_core::crypto::signing::{MAX_MESSAGE, SigningError, ToSign};
use keyward_core::crypto::{public_key_from_pem, public_key_to_pem, sha256};
use keyward_core::envelope::{
    PublicSealingKey, Scope, SecretTarget, Wrapping, open_secret, seal_secret,
};
use keyward_core::provider::{
    DeletionTarget, KeyAlgorithm, KeyProvider, KeySpec, ProviderError, WrapContext,
};
use keyward_core::{Dek, SecretBytes};
use keyward_provider_pkcs11::{Pkcs11Config, Pkcs11Provider, version_id};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn provider() -> Pkcs11Provider {
    let hsm = softhsm();
    Pkcs11Provider::connect(hsm.config(TOKEN))
        .await
        .unwrap_or_else(|e| panic!("cannot open the SoftHSM2 test token: {e}"))
}

/// A session of our own on the same token, to look at what the provider left
/// there. Login state is per process, so it sees private objects once the
/// provider has logged in.
fn inspector() -> Session {
    session(false)
}

fn session(read_write: bool) -> Session {
    // One handle for the whole process, never dropped: a dropped handle
    // may finalise the module under the other tests' sessions.
    static PKCS11: std::sync::OnceLock<Pkcs11> = std::sync::OnceLock::new();
    softhsm();
    let pkcs11 = PKCS11.get_or_init(|| {
        let pkcs11 = Pkcs11::new(MODULE).expect("load SoftHSM2");
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => panic!("initialise SoftHSM2: {e}"),
        }
        pkcs11
    });
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label().trim_end() == TOKEN)
        .expect("test token");
    if read_write {
        pkcs11.open_rw_session(slot).unwrap()
    } else {
        pkcs11.open_ro_session(slot).unwrap()
    }
}

fn spec(name: &str, algorithm: KeyAlgorithm) -> KeySpec {
    let mut suffix = [0u8; 4];
    keyward_core::crypto::fill_random(&mut suffix);
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    KeySpec {
        name: format!("{name}-{suffix}"),
        algorithm,
        owner: None,
        description: None,
    }
}

fn context(namespace: &str) -> WrapContext {
    [("keyward.io/namespace".to_owned(), namespace.to_owned())].into()
}

fn bool_attributes(session: &Session, id: &[u8]) -> Vec<(String, bool)> {
    let handles = session.find_objects(&[Attribute::Id(id.to_vec())]).unwrap();
    assert!(!handles.is_empty(), "no objects with CKA_ID {id:?}");
    let mut seen = Vec::new();
    for handle in handles {
        let attributes = session
            .get_attributes(
                handle,
                &[
                    AttributeType::Class,
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::NeverExtractable,
                    AttributeType::AlwaysSensitive,
                    AttributeType::Sign,
                    AttributeType::Verify,
                    AttributeType::Decrypt,
                    AttributeType::Derive,
                ],
            )
            .unwrap();
        let class = attributes
            .iter()
            .find_map(|a| match a {
                Attribute::Class(c) => Some(c.to_string()),
                _ => None,
            })
            .unwrap();
        for attribute in attributes {
            let pair = match attribute {
                Attribute::Token(v) => ("token", v),
                Attribute::Private(v) => ("private", v),
                Attribute::Sensitive(v) => ("sensitive", v),
                Attribute::Extractable(v) => ("extractable", v),
                Attribute::NeverExtractable(v) => ("never_extractable", v),
                Attribute::AlwaysSensitive(v) => ("always_sensitive", v),
                Attribute::Sign(v) => ("sign", v),
                Attribute::Verify(v) => ("verify", v),
                Attribute::Decrypt(v) => ("decrypt", v),
                Attribute::Derive(v) => ("derive", v),
                _ => continue,
            };
            seen.push((format!("{class}.{}", pair.0), pair.1));
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_suite_passes_on_softhsm2() {
    let provider = provider().await;
    let started = Instant::now();
    let ran = keyward_conformance::run(
        &provider,
        &Capabilities {
            real_rsa_oaep: true,
            rsa_algorithm: Some(KeyAlgorithm::Rsa3072),
            per_version_state: true,
            name_prefix: "pkcs11".into(),
            signing: vec![
                KeyAlgorithm::RsaPss3072,
                KeyAlgorithm::EcP256,
                KeyAlgorithm::Ed25519,
            ],
            signs_digests: true,
            wrapping_key: KeyAlgorithm::Aes256,
            tags: false,
        },
    )
    .await;
    eprintln!(
        "conformance: {} checks passed on SoftHSM2 in {:.2?}: {ran:?}",
        ran.len(),
        started.elapsed()
    );
    assert_eq!(ran.len(), 13, "every check must run: {ran:?}");
}

#[tokio::test]
async fn keys_are_generated_in_the_token_non_extractable_and_sensitive() {
    let provider = provider().await;
    let aes = provider
        .create_key(&spec("attrs-aes", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let rsa = provider
        .create_key(&spec("attrs-rsa", KeyAlgorithm::Rsa3072))
        .await
        .unwrap();
    let session = inspector();

    let secret = bool_attributes(&session, &version_id(&aes.key_id, 1));
    for (name, expected) in [
        ("CKO_SECRET_KEY.token", true),
        ("CKO_SECRET_KEY.private", true),
        ("CKO_SECRET_KEY.sensitive", true),
        ("CKO_SECRET_KEY.extractable", false),
        ("CKO_SECRET_KEY.never_extractable", true),
        ("CKO_SECRET_KEY.always_sensitive", true),
    ] {
        assert!(
            secret.contains(&(name.to_owned(), expected)),
            "{name} should be {expected}: {secret:?}"
        );
    }
    let pair = bool_attributes(&session, &version_id(&rsa.key_id, 1));
    for (name, expected) in [
        ("CKO_PRIVATE_KEY.token", true),
        ("CKO_PRIVATE_KEY.private", true),
        ("CKO_PRIVATE_KEY.sensitive", true),
        ("CKO_PRIVATE_KEY.extractable", false),
        ("CKO_PRIVATE_KEY.never_extractable", true),
        ("CKO_PUBLIC_KEY.token", true),
        ("CKO_PUBLIC_KEY.private", false),
    ] {
        assert!(
            pair.contains(&(name.to_owned(), expected)),
            "{name} should be {expected}: {pair:?}"
        );
    }

    // Asking for the key value itself is refused by the token.
    let secret_key = session
        .find_objects(&[Attribute::Id(version_id(&aes.key_id, 1))])
        .unwrap()[0];
    let value = session
        .get_attributes(secret_key, &[AttributeType::Value])
        .unwrap();
    assert!(
        !value.iter().any(|a| matches!(a, Attribute::Value(_))),
        "the token revealed CKA_VALUE of a sensitive key"
    );
    // Labels follow keyward/<name>/v<n>.
    let label = session
        .get_attributes(secret_key, &[AttributeType::Label])
        .unwrap();
    assert!(
        label.contains(&Attribute::Label(
            format!("keyward/{}/v1", aes.name).into_bytes()
        )),
        "{label:?}"
    );
}

#[tokio::test]
async fn the_dek_leaves_the_token_only_wrapped() {
    let provider = provider().await;
    let key = provider
        .create_key(&spec("dek", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let session = inspector();
    // Other tests create keys on this token concurrently, so count only what
    // a leaking wrap would add: session objects (an imported DEK) and token
    // objects under this key's label.
    let label = format!("keyward/{}/v1", key.name).into_bytes();
    let count = |template: &[Attribute]| session.find_objects(template).unwrap().len();
    let session_objects_before = count(&[Attribute::Token(false)]);
    assert_eq!(
        count(&[Attribute::Label(label.clone())]),
        1,
        "the key's own object"
    );
    for _ in 0..20 {
        let dek = Dek::generate();
        let wrapped = provider
            .wrap_dek(&key.key_id, &dek, &context("a"))
            .await
            .unwrap();
        assert_eq!(wrapped.blob.len(), 1 + 12 + 32 + 16);
        assert!(
            !wrapped
                .blob
                .windows(8)
                .any(|w| dek.expose().windows(8).any(|d| d == w)),
            "the wrapped blob contains DEK bytes"
        );
        let opened = provider.unwrap_dek(&wrapped, &context("a")).await.unwrap();
        assert_eq!(opened.expose(), dek.expose());
    }
    assert_eq!(
        count(&[Attribute::Token(false)]),
        session_objects_before,
        "wrapping must not leave session objects behind"
    );
    assert_eq!(
        count(&[Attribute::Label(label)]),
        1,
        "wrapping must not add objects under the key's label"
    );
}

/// Wraps and unwraps `per_task` DEKs from each of `tasks` tasks; returns wraps/s.
async fn hammer(
    provider: Arc<dyn KeyProvider>,
    key_id: &str,
    tasks: usize,
    per_task: usize,
) -> f64 {
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let provider = Arc::clone(&provider);
        let key_id = key_id.to_owned();
        handles.push(tokio::spawn(async move {
            let ctx = context(&format!("ns-{task}"));
            for _ in 0..per_task {
                let dek = Dek::generate();
                let wrapped = provider.wrap_dek(&key_id, &dek, &ctx).await.unwrap();
                let opened = provider.unwrap_dek(&wrapped, &ctx).await.unwrap();
                assert_eq!(opened.expose(), dek.expose());
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    (tasks * per_task) as f64 / started.elapsed().as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wraps_share_a_bounded_pool_of_sessions() {
    let hsm = softhsm();
    let config = Pkcs11Config {
        max_sessions: 4,
        ..hsm.config(TOKEN)
    };
    let provider = Arc::new(Pkcs11Provider::connect(config).await.unwrap());
    let key = provider
        .create_key(&spec("pool", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let (tasks, per_task) = (32, 10);
    let hsm_rate = hammer(provider.clone(), &key.key_id, tasks, per_task).await;
    assert!(
        provider.sessions_opened() <= 4,
        "the pool opened {} sessions for a bound of 4",
        provider.sessions_opened()
    );

    let dir = tempfile::tempdir().unwrap();
    let local: Arc<dyn KeyProvider> =
        Arc::new(keyward_conformance::fresh_local_provider(dir.path()));
    let local_key = local
        .create_key(&spec("pool", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let local_rate = hammer(local, &local_key.key_id, tasks, per_task).await;
    eprintln!(
        "wrap+unwrap with {tasks} tasks: SoftHSM2 (4 sessions, {} opened) {hsm_rate:.0}/s, local {local_rate:.0}/s, ratio softhsm/local {:.2}",
        provider.sessions_opened(),
        hsm_rate / local_rate
    );
}

#[tokio::test]
async fn a_wrong_pin_says_to_check_the_pin_file() {
    let hsm = softhsm();
    let config = Pkcs11Config {
        pin_file: hsm.pin_file_with("wrong.pin", "not-the-pin"),
        ..hsm.config(OTHER_TOKEN)
    };
    let error = Pkcs11Provider::connect(config)
        .await
        .err()
        .expect("a wrong PIN must not log in");
    let message = error.to_string();
    assert!(
        matches!(error, ProviderError::InvalidRequest(_)) && message.contains("check the PIN file"),
        "{message}"
    );
    assert!(message.contains("wrong.pin"), "names the file: {message}");
    assert!(
        !message.contains("not-the-pin"),
        "never prints the PIN: {message}"
    );
}

#[tokio::test]
async fn a_missing_module_or_token_is_reported_as_unavailable() {
    let hsm = softhsm();
    let config = Pkcs11Config {
        module: "/nonexistent/libvendor-pkcs11.so".into(),
        ..hsm.config(TOKEN)
    };
    let error = Pkcs11Provider::connect(config).await.err().unwrap();
    assert!(
        matches!(&error, ProviderError::Unavailable(m) if m.contains("/nonexistent/libvendor-pkcs11.so") && m.contains("does not exist")),
        "{error}"
    );
    assert!(error.is_retryable());

    let not_a_module = hsm.dir.join("not-a-module.so");
    std::fs::write(&not_a_module, b"not an ELF file").unwrap();
    let error = Pkcs11Provider::connect(Pkcs11Config {
        module: not_a_module,
        ..hsm.config(TOKEN)
    })
    .await
    .err()
    .unwrap();
    assert!(
        matches!(&error, ProviderError::Unavailable(m) if m.contains("cannot load PKCS#11 module")),
        "{error}"
    );

    let error = Pkcs11Provider::connect(hsm.config("no-such-token"))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&error, ProviderError::Unavailable(m) if m.contains("no token labelled `no-such-token`") && m.contains(TOKEN)),
        "{error}"
    );
}

#[tokio::test]
async fn offline_seal_with_the_exported_public_key_opens_through_the_token() {
    let provider = provider().await;
    let key = provider
        .create_key(&spec("offline", KeyAlgorithm::Rsa3072))
        .await
        .unwrap();
    // What `keyward seal --cert` gets: the PEM published in the key status.
    let public = provider.public_key(&key.key_id, None).await.unwrap();
    let pem = public_key_to_pem(&public.public_key);
    let sealing = PublicSealingKey {
        key: public_key_from_pem(&pem).unwrap(),
        key_version: public.version,
        provider_key_id: public.key_id.clone(),
    };
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: "shop".into(),
        secret_name: "db".into(),
        key_ref: format!("shop/{}", key.name),
        access: Vec::new(),
    };
    let items: BTreeMap<String, SecretBytes> = [(
        "password".to_owned(),
        SecretBytes::from(&b"sealed offline"[..]),
    )]
    .into();
    let sealed = seal_secret(&target, Wrapping::PublicKey(&sealing), &items)
        .await
        .unwrap();
    let opened = open_secret(&target, &provider, &sealed).await.unwrap();
    assert_eq!(opened, items);
    // A second provider instance (another replica) reads the same token state.
    let replica = Pkcs11Provider::connect(softhsm().config(TOKEN))
        .await
        .unwrap();
    assert_eq!(
        replica.describe_key(&key.name).await.unwrap().key_id,
        key.key_id
    );
    assert_eq!(
        open_secret(&target, &replica, &sealed).await.unwrap(),
        items
    );
}

#[tokio::test]
async fn due_deletions_destroy_the_token_objects() {
    let provider = provider().await;
    let key = provider
        .create_key(&spec("purge", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    provider.rotate_key(&key.key_id).await.unwrap();
    let session = inspector();
    let objects = |version| {
        session
            .find_objects(&[Attribute::Id(version_id(&key.key_id, version))])
            .unwrap()
            .len()
    };
    assert_eq!((objects(1), objects(2)), (1, 1));
    provider
        .schedule_deletion(&key.key_id, DeletionTarget::Version(1), Duration::ZERO)
        .await
        .unwrap();
    // The next operation on the key destroys what is due.
    let described = provider.describe_key(&key.key_id).await.unwrap();
    assert_eq!(objects(1), 0, "version 1 must be gone from the token");
    assert!(
        described
            .versions
            .iter()
            .any(|v| v.version == 1 && v.state == keyward_core::provider::VersionState::Destroyed)
    );
    provider
        .schedule_deletion(&key.key_id, DeletionTarget::WholeKey, Duration::ZERO)
        .await
        .unwrap();
    let gone = provider.describe_key(&key.key_id).await.unwrap_err();
    assert!(matches!(gone, ProviderError::UnknownKey(_)), "{gone:?}");
    assert_eq!(objects(2), 0, "version 2 must be gone from the token");
}

#[tokio::test]
async fn rsa_4096_keys_open_offline_sealed_values() {
    let provider = provider().await;
    let key = provider
        .create_key(&spec("rsa4096", KeyAlgorithm::Rsa4096))
        .await
        .unwrap();
    let public = provider.public_key(&key.key_id, None).await.unwrap();
    assert_eq!(public.public_key.bits(), 4096);
    let dek = Dek::generate();
    let wrapped = keyward_core::provider::WrappedDek {
        key_id: key.key_id.clone(),
        version: public.version,
        algorithm: keyward_core::provider::WrapAlgorithm::RsaOaepSha256,
        blob: public.public_key.encrypt(dek.expose()),
    };
    let opened = provider
        .unwrap_dek(&wrapped, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(opened.expose(), dek.expose());
    // Online wrapping with the same key gives the same kind of blob.
    let online = provider
        .wrap_dek(&key.key_id, &dek, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(online.blob.len(), 512);
    let opened = provider
        .unwrap_dek(&online, &WrapContext::new())
        .await
        .unwrap();
    assert_eq!(opened.expose(), dek.expose());
}

/// SoftHSM2 does not generate GCM IVs, so asking it to must fail clearly
/// rather than wrap under an all-zero IV.
#[tokio::test]
async fn token_generated_iv_is_refused_when_the_token_does_not_write_one() {
    let hsm = softhsm();
    let provider = Pkcs11Provider::connect(Pkcs11Config {
        token_generates_iv: true,
        ..hsm.config(TOKEN)
    })
    .await
    .unwrap();
    let key = provider
        .create_key(&spec("token-iv", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let error = provider
        .wrap_dek(&key.key_id, &Dek::generate(), &context("a"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("tokenGeneratesIv"), "{error}");
}

/// An AES-256 key generated on the token by someone else (as
/// `pkcs11-tool --keygen` would), labelled `label`.
fn made_outside_keyward(label: &str, extractable: bool) {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::{KeyType, ObjectClass};
    use cryptoki::session::UserType;
    use cryptoki::types::AuthPin;
    let session = session(true);
    // Logged in while any session of the process is; other tests may just
    // have closed theirs.
    match session.login(UserType::User, Some(&AuthPin::new(common::PIN.into()))) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(e) => panic!("login: {e}"),
    }
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::ValueLen(32.into()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(!extractable),
        Attribute::Extractable(extractable),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    // SoftHSM2 answers CKR_GENERAL_ERROR now and then while other tests of
    // this binary generate keys on the same token at once.
    for attempt in 1.. {
        match session.generate_key(&Mechanism::AesKeyGen, &template) {
            Ok(_) => return,
            Err(CkError::Pkcs11(RvError::GeneralError, _)) if attempt < 10 => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => panic!("generating {label}: {e}"),
        }
    }
}

#[tokio::test]
async fn a_key_made_on_the_token_elsewhere_is_adopted_by_label() {
    let provider = provider().await;
    let label = format!("hr-db-{}", &spec("x", KeyAlgorithm::Aes256).name[2..]);
    made_outside_keyward(&label, false);
    let mut wanted = spec("hr-db", KeyAlgorithm::Aes256);
    wanted.owner = Some(format!("hr/{}", wanted.name));
    let adopted = provider.adopt_key(&label, &wanted).await.unwrap();
    assert_eq!(adopted.primary_version, 1);
    assert_eq!(adopted.owner, wanted.owner);
    // The very object: it now carries the version id, and wraps.
    let found = inspector()
        .find_objects(&[Attribute::Label(label.as_bytes().to_vec())])
        .unwrap();
    assert_eq!(found.len(), 1);
    let id = version_id(&adopted.key_id, 1);
    assert_eq!(
        inspector().find_objects(&[Attribute::Id(id)]).unwrap(),
        found
    );
    let dek = Dek::generate();
    let wrapped = provider
        .wrap_dek(&adopted.key_id, &dek, &context("hr"))
        .await
        .unwrap();
    let again = provider.adopt_key(&label, &wanted).await.unwrap();
    assert_eq!(
        again.key_id, adopted.key_id,
        "a rebuilt cluster finds it again"
    );
    let opened = provider.unwrap_dek(&wrapped, &context("hr")).await.unwrap();
    assert_eq!(opened.expose(), dek.expose());

    let refusal = |result: Result<keyward_core::provider::KeyInfo, ProviderError>| match result {
        Err(ProviderError::InvalidRequest(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let message = refusal(
        provider
            .adopt_key(&label, &spec("hr-db-copy", KeyAlgorithm::Aes256))
            .await,
    );
    assert!(message.contains("already Keyward key"), "{message}");
    let message = refusal(
        provider
            .adopt_key("no-such-label", &spec("none", KeyAlgorithm::Aes256))
            .await,
    );
    assert!(
        message.contains("no secret key on the token has that label"),
        "{message}"
    );
    let open_label = format!("{label}-extractable");
    made_outside_keyward(&open_label, true);
    let message = refusal(
        provider
            .adopt_key(&open_label, &spec("open", KeyAlgorithm::Aes256))
            .await,
    );
    assert!(
        message.contains("its value can leave the token"),
        "{message}"
    );
}

#[tokio::test]
async fn signing_key_pairs_sign_only_inside_the_token() {
    let provider = provider().await;
    let ec = provider
        .create_key(&spec("attrs-ec", KeyAlgorithm::EcP256))
        .await
        .unwrap();
    let ed = provider
        .create_key(&spec("attrs-ed", KeyAlgorithm::Ed25519))
        .await
        .unwrap();
    let rsa = provider
        .create_key(&spec("attrs-pss", KeyAlgorithm::RsaPss3072))
        .await
        .unwrap();
    let session = inspector();
    for key in [&ec, &ed, &rsa] {
        let pair = bool_attributes(&session, &version_id(&key.key_id, 1));
        for (name, expected) in [
            ("CKO_PRIVATE_KEY.token", true),
            ("CKO_PRIVATE_KEY.private", true),
            ("CKO_PRIVATE_KEY.sensitive", true),
            ("CKO_PRIVATE_KEY.extractable", false),
            ("CKO_PRIVATE_KEY.never_extractable", true),
            ("CKO_PRIVATE_KEY.sign", true),
            ("CKO_PRIVATE_KEY.decrypt", false),
            ("CKO_PRIVATE_KEY.derive", false),
            ("CKO_PUBLIC_KEY.token", true),
            ("CKO_PUBLIC_KEY.private", false),
            ("CKO_PUBLIC_KEY.verify", true),
        ] {
            assert!(
                pair.contains(&(name.to_owned(), expected)),
                "{}: {name} should be {expected}: {pair:?}",
                key.algorithm
            );
        }
    }

    // A signing key is not a sealing key, and a sealing key signs nothing.
    let sealing = provider.public_key(&rsa.key_id, None).await.unwrap_err();
    assert!(
        matches!(sealing, ProviderError::WrongKeyType { .. }),
        "{sealing:?}"
    );
    let aes = provider
        .create_key(&spec("attrs-not-signing", KeyAlgorithm::Aes256))
        .await
        .unwrap();
    let input = ToSign::Sha256(sha256(b"artefact"));
    for refused in [
        provider.sign(&aes.key_id, None, &input).await.map(|_| ()),
        provider.verifying_key(&aes.key_id, None).await.map(|_| ()),
    ] {
        assert!(
            matches!(refused, Err(ProviderError::WrongKeyType { .. })),
            "{refused:?}"
        );
    }
    // Ed25519 signs messages, not digests, and no scheme signs a long message.
    match provider.sign(&ed.key_id, None, &input).await {
        Err(ProviderError::InvalidRequest(why)) => {
            assert_eq!(why, SigningError::DigestForEd25519.to_string());
        }
        other => panic!("a digest for Ed25519 was answered with {other:?}"),
    }
    let long = ToSign::Message(vec![0; MAX_MESSAGE + 1]);
    match provider.sign(&ec.key_id, None, &long).await {
        Err(ProviderError::InvalidRequest(why)) => assert!(why.contains("at most"), "{why}"),
        other => panic!("an over-long message was answered with {other:?}"),
    }
}

/// What a user does with a signature: fetch the public key as PEM and
/// check the signature over the file with plain OpenSSL.
#[tokio::test]
async fn token_signatures_verify_with_openssl() {
    let provider = provider().await;
    common::openssl(); // installs the Debian package when it is missing
    // Short enough for Ed25519 to sign whole; RSA and ECDSA get its digest.
    let artefact: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let mut tampered = artefact.clone();
    tampered[1500] ^= 1;
    for algorithm in [
        KeyAlgorithm::EcP256,
        KeyAlgorithm::Ed25519,
        KeyAlgorithm::RsaPss3072,
        KeyAlgorithm::RsaPss4096,
    ] {
        let key = provider
            .create_key(&spec("openssl", algorithm))
            .await
            .unwrap();
        let scheme = algorithm.signing().unwrap();
        let input = ToSign::for_data(scheme, &artefact).unwrap();
        let signature = provider.sign(&key.key_id, None, &input).await.unwrap();
        let public = provider.verifying_key(&key.key_id, None).await.unwrap();
        assert_eq!(public.version, signature.version);
        assert!(
            openssl_accepts(scheme, &public.spki_der, &artefact, &signature.bytes),
            "openssl rejects the {algorithm} signature"
        );
        assert!(
            !openssl_accepts(scheme, &public.spki_der, &tampered, &signature.bytes),
            "openssl accepts the {algorithm} signature for another file"
        );
    }
}
