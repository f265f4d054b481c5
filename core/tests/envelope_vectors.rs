//! Replays the committed envelope test vectors (`tests/vectors/envelope-v1.json`
//! and `envelope-v2.json`) through `Envelope::seal_with`, `decode`,
//! `check_context` and `open_with`.
//!
//! Each file was produced once by an ignored generator below and is fixed
//! data from then on: if an implementation change alters any byte,
//! `replay_*` fails. Version 1 envelopes (no `access` field) must keep
//! opening for as long as Git may hold them. To regenerate (only for a new
//! format version):
//! `cargo test -p keyward-core --test envelope_vectors -- --ignored --nocapture generate_vectors`
//! (or `generate_v2_vectors`) and paste the JSON it prints. When version 2
//! came, v1's `future-version` case moved from version byte 2 to 3.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyward_core::crypto::{self, RsaPrivateKey};
use keyward_core::envelope::{Envelope, SecretTarget};
use keyward_core::provider::{WrapAlgorithm, WrapContext, WrappedDek};
use keyward_core::{Dek, EnvelopeError, Scope, ScopeContext};
use serde::Deserialize;
use std::collections::BTreeMap;

const VECTORS: &str = include_str!("vectors/envelope-v1.json");
const VECTORS_V2: &str = include_str!("vectors/envelope-v2.json");

#[derive(Deserialize)]
struct File {
    positive: Vec<Positive>,
    negative: Vec<Negative>,
    #[serde(default)]
    local_symmetric_wrap: Vec<LocalWrap>,
}

#[derive(Deserialize, Clone)]
struct Context {
    scope: String,
    namespace: String,
    secret_name: String,
    item: String,
    key_ref: String,
    /// Version 2: the ServiceAccounts (absent in version 1 files).
    #[serde(default)]
    access: Option<Vec<String>>,
}

impl Context {
    fn scope_context(&self) -> ScopeContext {
        let context = ScopeContext::new(
            self.scope.parse().unwrap(),
            &self.namespace,
            &self.secret_name,
            &self.item,
            &self.key_ref,
        );
        match &self.access {
            Some(access) => context.with_access(access),
            None => context,
        }
    }
}

#[derive(Deserialize)]
struct Positive {
    name: String,
    context: Context,
    /// What the header records (namespace scope empties secret and item).
    recorded_context: Context,
    key_version: u32,
    provider_key_id: String,
    wrap_algorithm: u8,
    wrapped_dek_hex: String,
    dek_hex: String,
    nonce_hex: String,
    plaintext_hex: String,
    header_aad_hex: String,
    envelope_base64: String,
    /// For wrap algorithm 2: the (test-only) private key that unwraps `wrapped_dek_hex`.
    #[serde(default)]
    rsa_private_key_pkcs8_hex: Option<String>,
}

#[derive(Deserialize)]
struct Negative {
    name: String,
    envelope_base64: String,
    /// The context the value is opened as (for the check_context stage).
    #[serde(default)]
    open_as: Option<Context>,
    #[serde(default)]
    dek_hex: Option<String>,
    /// `decode`, `check_context` or `open_with`: where the error must arise.
    stage: String,
    error: ExpectedError,
}

#[derive(Deserialize)]
struct ExpectedError {
    kind: String,
    #[serde(default)]
    detail: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LocalWrap {
    name: String,
    kek_hex: String,
    key_id: String,
    key_version: u32,
    wrap_context: WrapContext,
    dek_hex: String,
    nonce_hex: String,
    aad_hex: String,
    blob_hex: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn dek(text: &str) -> Dek {
    Dek::from_slice(&unhex(text)).expect("32-byte DEK")
}

fn nonce(text: &str) -> [u8; 12] {
    unhex(text).try_into().expect("12-byte nonce")
}

/// (kind, detail) of an error, in the vocabulary of the JSON file.
fn describe(error: &EnvelopeError) -> (&'static str, Option<serde_json::Value>) {
    use serde_json::json;
    match error {
        EnvelopeError::NotAnEnvelope => ("NotAnEnvelope", None),
        EnvelopeError::UnsupportedVersion(v) => ("UnsupportedVersion", Some(json!(v))),
        EnvelopeError::Truncated(field) => ("Truncated", Some(json!(field))),
        EnvelopeError::Malformed(reason) => ("Malformed", Some(json!(reason))),
        EnvelopeError::UnknownKey { .. } => ("UnknownKey", None),
        EnvelopeError::ContextMismatch {
            field,
            sealed_for,
            opened_as,
        } => (
            "ContextMismatch",
            Some(json!({"field": field, "sealed_for": sealed_for, "opened_as": opened_as})),
        ),
        EnvelopeError::AccessWidened {
            sealed_for,
            opened_for,
        } => (
            "AccessWidened",
            Some(json!({"sealed_for": sealed_for, "opened_for": opened_for})),
        ),
        EnvelopeError::AuthenticationFailed => ("AuthenticationFailed", None),
        EnvelopeError::Provider(_) => ("Provider", None),
        EnvelopeError::InvalidInput(_) => ("InvalidInput", None),
    }
}

#[test]
fn replay_positive_vectors() {
    let algorithms = replay_positive(VECTORS);
    assert_eq!(
        algorithms.values().sum::<usize>(),
        5,
        "positive vectors exercised"
    );
    assert_eq!(algorithms.get(&1), Some(&4));
    assert_eq!(algorithms.get(&2), Some(&1));
}

#[test]
fn replay_positive_v2_vectors() {
    let algorithms = replay_positive(VECTORS_V2);
    assert_eq!(
        algorithms.values().sum::<usize>(),
        3,
        "positive vectors exercised"
    );
}

/// Replays a file's positive cases; returns how many used each wrap code.
fn replay_positive(vectors: &str) -> BTreeMap<u8, usize> {
    let file: File = serde_json::from_str(vectors).unwrap();
    let mut algorithms = BTreeMap::new();
    for case in &file.positive {
        let name = &case.name;
        let context = case.context.scope_context();
        let algorithm = WrapAlgorithm::from_code(case.wrap_algorithm).expect("known wrap code");
        *algorithms.entry(case.wrap_algorithm).or_insert(0) += 1;
        let wrapped = WrappedDek {
            key_id: case.provider_key_id.clone(),
            version: case.key_version,
            algorithm,
            blob: unhex(&case.wrapped_dek_hex),
        };
        let dek = dek(&case.dek_hex);
        let plaintext = unhex(&case.plaintext_hex);

        // Sealing with the recorded DEK and nonce reproduces the bytes exactly.
        let sealed = Envelope::seal_with(
            context.clone(),
            &wrapped,
            &dek,
            nonce(&case.nonce_hex),
            &plaintext,
        )
        .unwrap();
        assert_eq!(
            sealed.encode().unwrap(),
            case.envelope_base64,
            "{name}: seal"
        );

        // The AAD is the header: the encoded bytes up to the nonce.
        let bytes = STANDARD.decode(&case.envelope_base64).unwrap();
        let aad = unhex(&case.header_aad_hex);
        assert!(bytes.starts_with(&aad), "{name}: AAD is not the header");
        assert_eq!(
            bytes.len(),
            aad.len() + 12 + 4 + plaintext.len() + 16,
            "{name}: length"
        );
        assert_eq!(
            &bytes[aad.len()..aad.len() + 12],
            &unhex(&case.nonce_hex)[..]
        );
        let ciphertext = &bytes[aad.len() + 16..];
        assert_eq!(
            &crypto::open(dek.expose(), &nonce(&case.nonce_hex), &aad, ciphertext).unwrap()[..],
            &plaintext[..],
            "{name}: raw AES-256-GCM with the header as AAD"
        );

        // Decoding gives back every field; the right context opens it.
        let decoded = Envelope::decode(&case.envelope_base64).unwrap();
        assert_eq!(decoded, sealed, "{name}: decode");
        assert_eq!(decoded.wrapped(), wrapped, "{name}: wrapped DEK");
        let recorded = &case.recorded_context;
        assert_eq!(
            (
                decoded.context.scope.as_str(),
                decoded.context.namespace.as_str(),
                decoded.context.secret_name.as_str(),
                decoded.context.item.as_str(),
                decoded.context.key_ref.as_str(),
                decoded.context.access.as_ref(),
            ),
            (
                recorded.scope.as_str(),
                recorded.namespace.as_str(),
                recorded.secret_name.as_str(),
                recorded.item.as_str(),
                recorded.key_ref.as_str(),
                recorded.access.as_ref(),
            ),
            "{name}: recorded context"
        );
        decoded.check_context(&context).unwrap();
        assert_eq!(decoded.open_with(&dek).unwrap().expose(), &plaintext[..]);
        assert_eq!(decoded.plaintext_len(), plaintext.len());

        if let Some(pkcs8) = &case.rsa_private_key_pkcs8_hex {
            assert_eq!(algorithm, WrapAlgorithm::RsaOaepSha256);
            let key = RsaPrivateKey::from_pkcs8_der(&unhex(pkcs8)).unwrap();
            let unwrapped = key.decrypt(&decoded.wrapped_dek).unwrap();
            assert_eq!(&unwrapped[..], dek.expose(), "{name}: RSA-OAEP unwrap");
        }
    }
    algorithms
}

#[test]
fn replay_negative_vectors() {
    let kinds = replay_negative(VECTORS);
    let covered: Vec<_> = kinds.keys().copied().collect();
    assert_eq!(
        covered,
        [
            "AuthenticationFailed",
            "ContextMismatch",
            "Malformed",
            "NotAnEnvelope",
            "Truncated",
            "UnsupportedVersion"
        ]
    );
    assert_eq!(
        kinds.values().sum::<usize>(),
        15,
        "negative vectors exercised"
    );
}

#[test]
fn replay_negative_v2_vectors() {
    let kinds = replay_negative(VECTORS_V2);
    let covered: Vec<_> = kinds.keys().copied().collect();
    assert_eq!(
        covered,
        ["AccessWidened", "AuthenticationFailed", "Malformed"]
    );
    assert_eq!(
        kinds.values().sum::<usize>(),
        5,
        "negative vectors exercised"
    );
}

/// Replays a file's negative cases; returns how many gave each error kind.
fn replay_negative(vectors: &str) -> BTreeMap<&'static str, usize> {
    let file: File = serde_json::from_str(vectors).unwrap();
    let mut kinds = BTreeMap::new();
    for case in &file.negative {
        let name = &case.name;
        let result = Envelope::decode(&case.envelope_base64);
        let error = match case.stage.as_str() {
            "decode" => result.expect_err(name),
            "check_context" => {
                let expected = case.open_as.as_ref().expect("open_as").scope_context();
                result.unwrap().check_context(&expected).expect_err(name)
            }
            "open_with" => {
                let envelope = result.unwrap();
                if let Some(expected) = &case.open_as {
                    envelope
                        .check_context(&expected.scope_context())
                        .unwrap_or_else(|e| panic!("{name}: context refused: {e}"));
                }
                let dek = dek(case.dek_hex.as_ref().expect("dek_hex"));
                envelope.open_with(&dek).expect_err(name)
            }
            other => panic!("{name}: unknown stage {other}"),
        };
        let (kind, detail) = describe(&error);
        assert_eq!(kind, case.error.kind, "{name}: {error}");
        assert_eq!(detail, case.error.detail, "{name}: {error}");
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// The local provider's symmetric blob, rebuilt from the documented layout
/// with the public AES-GCM function. The same vector is replayed through the
/// provider's own `context_aad` and `unwrap` by a unit test in `src/local/wrap.rs`.
#[test]
fn replay_local_symmetric_wrap_vectors() {
    let file: File = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(file.local_symmetric_wrap.len(), 1);
    for case in &file.local_symmetric_wrap {
        let aad = local_wrap_aad(&case.key_id, case.key_version, &case.wrap_context);
        assert_eq!(hex(&aad), case.aad_hex, "{}: AAD", case.name);
        let kek: [u8; 32] = unhex(&case.kek_hex).try_into().unwrap();
        let mut blob = vec![1u8];
        blob.extend_from_slice(&unhex(&case.nonce_hex));
        blob.extend_from_slice(&crypto::seal(
            &kek,
            &nonce(&case.nonce_hex),
            &aad,
            &unhex(&case.dek_hex),
        ));
        assert_eq!(hex(&blob), case.blob_hex, "{}: blob", case.name);
        assert_eq!(blob.len(), 1 + 12 + 32 + 16);
        // The strict-scope envelope vector carries exactly this blob.
        let strict = &file.positive[0];
        assert_eq!(strict.wrapped_dek_hex, case.blob_hex);
        assert_eq!(strict.dek_hex, case.dek_hex);
    }
}

/// `keyward/local-wrap/v1` then each of key id, big-endian version, and every
/// context name and value (sorted by name) as a u64 big-endian length + bytes.
fn local_wrap_aad(key_id: &str, version: u32, context: &WrapContext) -> Vec<u8> {
    let mut aad = b"keyward/local-wrap/v1".to_vec();
    let mut put = |bytes: &[u8]| {
        aad.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        aad.extend_from_slice(bytes);
    };
    put(key_id.as_bytes());
    put(&version.to_be_bytes());
    for (name, value) in context {
        put(name.as_bytes());
        put(value.as_bytes());
    }
    aad
}

// ---------------------------------------------------------------------------
// One-off generator. Inputs are fixed; outputs come from the implementation.
// ---------------------------------------------------------------------------

fn derived(label: &str, len: usize) -> Vec<u8> {
    crypto::sha256(format!("keyward test vector: {label}").as_bytes())[..len].to_vec()
}

struct Input {
    name: &'static str,
    comment: &'static str,
    target: SecretTarget,
    item: &'static str,
    key_version: u32,
    provider_key_id: &'static str,
    algorithm: WrapAlgorithm,
    plaintext: Vec<u8>,
}

fn context_json(c: &ScopeContext, secret_name: &str, item: &str) -> serde_json::Value {
    serde_json::json!({
        "scope": c.scope.as_str(),
        "namespace": c.namespace,
        "secret_name": secret_name,
        "item": item,
        "key_ref": c.key_ref,
    })
}

#[test]
#[ignore = "prints the vector file; run by hand only"]
fn generate_vectors() {
    use serde_json::json;
    let target = |scope, namespace: &str, secret_name: &str, key_ref: &str| SecretTarget {
        scope,
        namespace: namespace.into(),
        secret_name: secret_name.into(),
        key_ref: key_ref.into(),
        access: Vec::new(),
    };
    let inputs = vec![
        Input {
            name: "strict-scope-local-wrap",
            comment: "strict scope; wrapped_dek is the local provider blob of local_symmetric_wrap[0]",
            target: target(Scope::Strict, "prod", "db-credentials", "default"),
            item: "password",
            key_version: 3,
            provider_key_id: "local-0011223344556677",
            algorithm: WrapAlgorithm::Symmetric,
            plaintext: b"correct horse battery staple".to_vec(),
        },
        Input {
            name: "namespace-scope",
            comment: "namespace scope: secret name and item are given when sealing but not recorded or bound",
            target: target(Scope::Namespace, "team-a", "app-config", "team-a/shared"),
            item: "api-token",
            key_version: 1,
            provider_key_id: "local-8899aabbccddeeff",
            algorithm: WrapAlgorithm::Symmetric,
            plaintext: b"tok_live_0123456789".to_vec(),
        },
        Input {
            name: "empty-value",
            comment: "zero-length value: ciphertext is the 16-byte tag alone",
            target: target(Scope::Strict, "prod", "flags", "default"),
            item: "empty",
            key_version: 7,
            provider_key_id: "local-0011223344556677",
            algorithm: WrapAlgorithm::Symmetric,
            plaintext: Vec::new(),
        },
        Input {
            name: "binary-value",
            comment: "non-UTF-8 value: every byte value 0x00..=0xff, reversed",
            target: target(Scope::Strict, "kube-system", "tls", "infra/ca"),
            item: "tls.key",
            key_version: 65536,
            provider_key_id: "arn:aws:kms:eu-west-1:111122223333:key/example",
            algorithm: WrapAlgorithm::Symmetric,
            plaintext: (0..=255u8).rev().collect(),
        },
        Input {
            name: "rsa-oaep-wrap",
            comment: "wrap algorithm 2 (RSA-OAEP-SHA256, no label), as sealed offline from a public key; rsa_private_key_pkcs8_hex is a throw-away test key",
            target: target(Scope::Strict, "prod", "db-credentials", "offline"),
            item: "password",
            key_version: 2,
            provider_key_id: "local-rsa-0123456789ab",
            algorithm: WrapAlgorithm::RsaOaepSha256,
            plaintext: b"sealed offline".to_vec(),
        },
    ];

    // Local provider blob for the first case.
    let kek: [u8; 32] = derived("local kek", 32).try_into().unwrap();
    let local_dek = derived("dek strict-scope-local-wrap", 32);
    let wrap_nonce: [u8; 12] = derived("local wrap nonce", 12).try_into().unwrap();
    let wrap_context = inputs[0].target.wrap_context();
    let wrap_aad = local_wrap_aad(
        inputs[0].provider_key_id,
        inputs[0].key_version,
        &wrap_context,
    );
    let mut local_blob = vec![1u8];
    local_blob.extend_from_slice(&wrap_nonce);
    local_blob.extend_from_slice(&crypto::seal(&kek, &wrap_nonce, &wrap_aad, &local_dek));

    let rsa = RsaPrivateKey::generate(crypto::RsaKeySize::Bits3072);

    let mut positive = Vec::new();
    let mut sealed = Vec::new();
    for input in &inputs {
        let dek_bytes = derived(&format!("dek {}", input.name), 32);
        let dek = Dek::from_slice(&dek_bytes).unwrap();
        let nonce: [u8; 12] = derived(&format!("nonce {}", input.name), 12)
            .try_into()
            .unwrap();
        let (blob, rsa_key) = match input.algorithm {
            WrapAlgorithm::Symmetric if input.name == "strict-scope-local-wrap" => {
                (local_blob.clone(), None)
            }
            // Opaque provider blob (e.g. a KMS ciphertext): the envelope only carries it.
            WrapAlgorithm::Symmetric => (
                derived(&format!("blob {}", input.name), 32).repeat(2)[..48].to_vec(),
                None,
            ),
            WrapAlgorithm::RsaOaepSha256 => (
                rsa.public_key().encrypt(&dek_bytes),
                Some(hex(rsa.pkcs8_der())),
            ),
        };
        let wrapped = WrappedDek {
            key_id: input.provider_key_id.into(),
            version: input.key_version,
            algorithm: input.algorithm,
            blob: blob.clone(),
        };
        // Version 1 binds no ServiceAccounts.
        let context = ScopeContext {
            access: None,
            ..input.target.item(input.item)
        };
        let envelope =
            Envelope::seal_with(context.clone(), &wrapped, &dek, nonce, &input.plaintext).unwrap();
        let bytes = envelope.to_bytes().unwrap();
        let header_len = bytes.len() - 12 - 4 - envelope.ciphertext.len();
        let mut case = json!({
            "name": input.name,
            "comment": input.comment,
            "context": context_json(&context, &input.target.secret_name, input.item),
            "recorded_context": context_json(&context, &context.secret_name, &context.item),
            "key_version": input.key_version,
            "provider_key_id": input.provider_key_id,
            "wrap_algorithm": input.algorithm.code(),
            "wrapped_dek_hex": hex(&blob),
            "dek_hex": hex(&dek_bytes),
            "nonce_hex": hex(&nonce),
            "plaintext_hex": hex(&input.plaintext),
            "header_aad_hex": hex(&bytes[..header_len]),
            "ciphertext_and_tag_hex": hex(&envelope.ciphertext),
            "envelope_base64": envelope.encode().unwrap(),
        });
        if let Some(key) = rsa_key {
            case["rsa_private_key_pkcs8_hex"] = json!(key);
        }
        positive.push(case);
        sealed.push((envelope, bytes, dek_bytes, context));
    }

    // Negative vectors, derived from the strict (0) and namespace (1) cases.
    let (strict, strict_bytes, strict_dek, strict_ctx) = &sealed[0];
    let (_, ns_bytes, _, ns_ctx) = &sealed[1];
    let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
    let strict_open_as = context_json(strict_ctx, &strict_ctx.secret_name, &strict_ctx.item);
    let mut negative = Vec::new();
    let mut push = |name: &str,
                    comment: &str,
                    envelope: String,
                    stage: &str,
                    open_as: Option<serde_json::Value>,
                    dek: Option<String>| {
        let mut case =
            json!({"name": name, "comment": comment, "envelope_base64": envelope, "stage": stage});
        if let Some(open_as) = open_as {
            case["open_as"] = open_as;
        }
        if let Some(dek) = dek {
            case["dek_hex"] = json!(dek);
        }
        let parsed = Envelope::decode(case["envelope_base64"].as_str().unwrap());
        let error = match stage {
            "decode" => parsed.unwrap_err(),
            "check_context" => {
                let c: Context = serde_json::from_value(case["open_as"].clone()).unwrap();
                parsed
                    .unwrap()
                    .check_context(&c.scope_context())
                    .unwrap_err()
            }
            _ => parsed
                .unwrap()
                .open_with(&Dek::from_slice(&unhex(case["dek_hex"].as_str().unwrap())).unwrap())
                .unwrap_err(),
        };
        let (kind, detail) = describe(&error);
        case["error"] = json!({"kind": kind, "detail": detail, "message": error.to_string()});
        negative.push(case);
    };
    push(
        "not-base64",
        "text that is not base64",
        "not base64!".into(),
        "decode",
        None,
        None,
    );
    push(
        "foreign-base64",
        "valid base64 without the KWRD magic",
        b64(b"hello world"),
        "decode",
        None,
        None,
    );
    push(
        "empty-string",
        "empty input",
        String::new(),
        "decode",
        None,
        None,
    );
    let mut future = strict_bytes.clone();
    future[4] = 3;
    push(
        "future-version",
        "format version byte set to 3 (after versions 1 and 2)",
        b64(&future),
        "decode",
        None,
        None,
    );
    push(
        "truncated-in-ciphertext",
        "last 10 bytes cut off",
        b64(&strict_bytes[..strict_bytes.len() - 10]),
        "decode",
        None,
        None,
    );
    push(
        "truncated-in-header",
        "cut inside the namespace string",
        b64(&strict_bytes[..40]),
        "decode",
        None,
        None,
    );
    push(
        "magic-only",
        "just the magic",
        b64(b"KWRD"),
        "decode",
        None,
        None,
    );
    let mut bad_scope = strict_bytes.clone();
    bad_scope[6] = 9;
    push(
        "unknown-scope",
        "scope code 9",
        b64(&bad_scope),
        "decode",
        None,
        None,
    );
    let mut bad_wrap = strict_bytes.clone();
    bad_wrap[5] = 3;
    push(
        "unknown-wrap-algorithm",
        "wrap algorithm code 3",
        b64(&bad_wrap),
        "decode",
        None,
        None,
    );
    let mut trailing = strict_bytes.clone();
    trailing.push(0);
    push(
        "trailing-bytes",
        "one byte after the ciphertext",
        b64(&trailing),
        "decode",
        None,
        None,
    );
    let other_ns = ScopeContext::new(
        Scope::Strict,
        "staging",
        &strict_ctx.secret_name,
        &strict_ctx.item,
        &strict_ctx.key_ref,
    );
    push(
        "strict-other-namespace",
        "strict value opened in another namespace",
        strict.encode().unwrap(),
        "check_context",
        Some(context_json(
            &other_ns,
            &other_ns.secret_name,
            &other_ns.item,
        )),
        None,
    );
    let other_item = ScopeContext::new(
        Scope::Strict,
        &strict_ctx.namespace,
        &strict_ctx.secret_name,
        "username",
        &strict_ctx.key_ref,
    );
    push(
        "strict-other-item",
        "strict value moved to another item of the same secret",
        strict.encode().unwrap(),
        "check_context",
        Some(context_json(
            &other_item,
            &other_item.secret_name,
            &other_item.item,
        )),
        None,
    );
    let ns_other = ScopeContext::new(Scope::Namespace, "team-b", "", "", &ns_ctx.key_ref);
    push(
        "namespace-scope-other-namespace",
        "namespace-scoped value opened in another namespace",
        b64(ns_bytes),
        "check_context",
        Some(context_json(&ns_other, "", "")),
        None,
    );
    let mut flipped = strict_bytes.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    push(
        "flipped-tag-bit",
        "lowest bit of the last tag byte flipped",
        b64(&flipped),
        "open_with",
        Some(strict_open_as.clone()),
        Some(hex(strict_dek)),
    );
    // key_version is in the header (AAD) but not in the scope context, so
    // only the AEAD catches the change.
    let mut version_changed = strict_bytes.clone();
    let version_at = 4 + 1 + 1 + 1 + 2 + strict_ctx.key_ref.len();
    version_changed[version_at + 3] ^= 0x01;
    push(
        "header-key-version-changed",
        "key version 3 -> 2 in the header: context still matches, AEAD rejects",
        b64(&version_changed),
        "open_with",
        Some(strict_open_as.clone()),
        Some(hex(strict_dek)),
    );

    let out = json!({
        "format": "Keyward envelope v1",
        "description": "Test vectors for docs/envelope-format.md; replayed by core/tests/envelope_vectors.rs. All keys here are test-only.",
        "positive": positive,
        "negative": negative,
        "local_symmetric_wrap": [{
            "name": "local-aes256-wrap",
            "comment": "local provider symmetric blob 0x01 | nonce | AES-256-GCM(kek, dek) || tag; AAD = keyward/local-wrap/v1 + u64-length-prefixed key id, version (u32 BE), then each wrap-context name and value in name order",
            "kek_hex": hex(&kek),
            "key_id": inputs[0].provider_key_id,
            "key_version": inputs[0].key_version,
            "wrap_context": wrap_context,
            "dek_hex": hex(&local_dek),
            "nonce_hex": hex(&wrap_nonce),
            "aad_hex": hex(&wrap_aad),
            "blob_hex": hex(&local_blob),
        }],
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}

// ---------------------------------------------------------------------------
// Version 2 generator: the `access` field. Opaque wrapped DEKs (the provider
// blob format is covered by the version 1 file).
// ---------------------------------------------------------------------------

fn context_v2_json(c: &ScopeContext, secret_name: &str, item: &str) -> serde_json::Value {
    let mut json = context_json(c, secret_name, item);
    json["access"] = serde_json::json!(c.access);
    json
}

#[test]
#[ignore = "prints the version 2 vector file; run by hand only"]
fn generate_v2_vectors() {
    use serde_json::json;
    let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let target = |scope, namespace: &str, secret_name: &str, access: &[&str]| SecretTarget {
        scope,
        namespace: namespace.into(),
        secret_name: secret_name.into(),
        key_ref: "default".into(),
        access: names(access),
    };
    let inputs = [
        (
            "strict-scope-bound-access",
            "strict scope, sealed for ServiceAccounts api and worker (given unsorted, recorded sorted)",
            target(Scope::Strict, "prod", "db-credentials", &["worker", "api"]),
            "password",
        ),
        (
            "namespace-scope-bound-access",
            "namespace scope, sealed for ServiceAccount reporting: moves between secrets of the namespace, never to another ServiceAccount",
            target(Scope::Namespace, "team-a", "app-config", &["reporting"]),
            "api-token",
        ),
        (
            "strict-scope-any-service-account",
            "strict scope, sealed for any ServiceAccount: an empty access field",
            target(Scope::Strict, "prod", "flags", &[]),
            "enabled",
        ),
    ];
    let mut positive = Vec::new();
    let mut sealed = Vec::new();
    for (i, (name, comment, target, item)) in inputs.iter().enumerate() {
        let dek_bytes = derived(&format!("v2 dek {name}"), 32);
        let dek = Dek::from_slice(&dek_bytes).unwrap();
        let nonce: [u8; 12] = derived(&format!("v2 nonce {name}"), 12).try_into().unwrap();
        let blob = derived(&format!("v2 blob {name}"), 32).repeat(2)[..48].to_vec();
        let wrapped = WrappedDek {
            key_id: "local-0011223344556677".into(),
            version: 4 + i as u32,
            algorithm: WrapAlgorithm::Symmetric,
            blob: blob.clone(),
        };
        let plaintext = format!("value of {name}").into_bytes();
        let context = target.item(item);
        let envelope =
            Envelope::seal_with(context.clone(), &wrapped, &dek, nonce, &plaintext).unwrap();
        let bytes = envelope.to_bytes().unwrap();
        let header_len = bytes.len() - 12 - 4 - envelope.ciphertext.len();
        positive.push(json!({
            "name": name,
            "comment": comment,
            "context": context_v2_json(&context, &target.secret_name, item),
            "recorded_context": context_v2_json(&context, &context.secret_name, &context.item),
            "key_version": wrapped.version,
            "provider_key_id": wrapped.key_id,
            "wrap_algorithm": 1,
            "wrapped_dek_hex": hex(&blob),
            "dek_hex": hex(&dek_bytes),
            "nonce_hex": hex(&nonce),
            "plaintext_hex": hex(&plaintext),
            "header_aad_hex": hex(&bytes[..header_len]),
            "ciphertext_and_tag_hex": hex(&envelope.ciphertext),
            "envelope_base64": envelope.encode().unwrap(),
        }));
        sealed.push((envelope, bytes, dek_bytes, context));
    }

    let (strict, strict_bytes, strict_dek, strict_ctx) = &sealed[0];
    let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
    let opened_for = |access: &[&str]| {
        let c = strict_ctx.clone().with_access(&names(access));
        context_v2_json(&c, &c.secret_name, &c.item)
    };
    // The access field "api,worker" inside the header.
    let at = strict_bytes
        .windows(10)
        .position(|w| w == b"api,worker")
        .expect("access field");
    let with_access_bytes = |replacement: &[u8; 10]| {
        let mut bytes = strict_bytes.clone();
        bytes[at..at + 10].copy_from_slice(replacement);
        b64(&bytes)
    };
    let mut negative = Vec::new();
    let mut push = |name: &str,
                    comment: &str,
                    envelope: String,
                    stage: &str,
                    open_as: Option<serde_json::Value>,
                    dek: Option<String>| {
        let mut case =
            json!({"name": name, "comment": comment, "envelope_base64": envelope, "stage": stage});
        if let Some(open_as) = &open_as {
            case["open_as"] = open_as.clone();
        }
        if let Some(dek) = &dek {
            case["dek_hex"] = json!(dek);
        }
        let parsed = Envelope::decode(case["envelope_base64"].as_str().unwrap());
        let context = || {
            serde_json::from_value::<Context>(open_as.clone().unwrap())
                .unwrap()
                .scope_context()
        };
        let error = match stage {
            "decode" => parsed.unwrap_err(),
            "check_context" => parsed.unwrap().check_context(&context()).unwrap_err(),
            _ => {
                let parsed = parsed.unwrap();
                parsed.check_context(&context()).unwrap();
                parsed
                    .open_with(&Dek::from_slice(&unhex(dek.as_ref().unwrap())).unwrap())
                    .unwrap_err()
            }
        };
        let (kind, detail) = describe(&error);
        case["error"] = json!({"kind": kind, "detail": detail, "message": error.to_string()});
        negative.push(case);
    };
    push(
        "access-widened-to-any",
        "value sealed for api and worker, in a SealedSecret whose spec.access was removed",
        strict.encode().unwrap(),
        "check_context",
        Some(opened_for(&[])),
        None,
    );
    push(
        "access-widened-to-another-service-account",
        "value sealed for api and worker, in a SealedSecret whose spec.access also names intruder",
        strict.encode().unwrap(),
        "check_context",
        Some(opened_for(&["api", "intruder"])),
        None,
    );
    push(
        "header-access-changed",
        "access field api,worker -> apj,worker in the header: a canonical list the context allows, AEAD rejects",
        with_access_bytes(b"apj,worker"),
        "open_with",
        Some(opened_for(&["apj"])),
        Some(hex(strict_dek)),
    );
    push(
        "access-not-sorted",
        "access field `api,worker` -> `wo,apirker`: names not in sorted order",
        with_access_bytes(b"wo,apirker"),
        "decode",
        None,
        None,
    );
    push(
        "access-empty-name",
        "access field `,apiworker`: an empty ServiceAccount name",
        with_access_bytes(b",apiworker"),
        "decode",
        None,
        None,
    );
    let out = json!({
        "format": "Keyward envelope v2",
        "description": "Test vectors for the access field of docs/envelope-format.md (version 2); replayed by core/tests/envelope_vectors.rs. All keys here are test-only.",
        "positive": positive,
        "negative": negative,
    });
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
