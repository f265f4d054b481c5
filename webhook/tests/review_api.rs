//! Keyward's question kinds at admission, in-process against a stand-in
//! API server (an axum router handed to `kube::Client::new`) that answers
//! SubjectAccessReview — alice may create and update SealedSecrets in
//! `team`, bob may not — and serves the ManagedKey `team/db` as the test
//! sets it. The API server authenticated the caller: the AdmissionReview
//! carries `userInfo`, and no token reaches Keyward.
//!
//! - `/review`, SealedSecretReview Rewrap and Validate (`keyward rewrap`,
//!   `keyward validate`);
//! - `/datakey`, DataKeyRequest (`keyward seal` online).
//!
//! The real API server's answers are in `e2e/tests/webhook.rs` and
//! `e2e/tests/chart_on_node.rs`.

use axum::Json;
use axum::body::Body;
use axum::http::Request;
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use keyward_core::SecretBytes;
use keyward_core::crypto::dek_transport::{Recipient, SealedDek};
use keyward_core::envelope::{Envelope, Scope, SecretTarget, Wrapping, open_secret, seal_secret};
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec, WrapAlgorithm, WrappedDek};
use keyward_crds::{DataKeyAnswer, DataKeyRequestSpec, SealedSecretReviewStatus};
use keyward_webhook::admission_router;
use keyward_webhook::metrics::metrics;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

mod stand_in;

/// The ManagedKey `team/db` the stand-in API server serves; `Null`: none.
type KeyObject = Arc<Mutex<Value>>;

fn managed_key(key_id: &str, state: &str) -> Value {
    json!({"apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"provider": {"local": {}}},
        "status": {"providerKeyId": key_id, "state": state, "primaryVersion": 2,
            "versions": [{"version": 1, "state": "Active"}, {"version": 2, "state": state}]}})
}

fn fake_api(key: KeyObject) -> axum::Router {
    stand_in::object(
        "/apis/keyward.io/v1alpha1/namespaces/team/managedkeys/db",
        key,
    )
    .route(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        post(|Json(review): Json<Value>| async move {
            let spec = &review["spec"];
            let attributes = &spec["resourceAttributes"];
            let allowed = spec["user"] == "alice"
                && attributes["namespace"] == "team"
                && (attributes["verb"] == "update" || attributes["verb"] == "create")
                && attributes["group"] == "keyward.io"
                && attributes["resource"] == "sealedsecrets";
            Json(
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                            "metadata": {}, "spec": spec, "status": {"allowed": allowed}}),
            )
        }),
    )
}

/// What admission answered: allowed with the `status` it patched in, or
/// the refusal's message.
async fn admit(
    app: &axum::Router,
    path: &str,
    user: &str,
    object: Value,
    dry_run: bool,
) -> Result<Value, String> {
    let (kind, resource) = match path {
        "/datakey" => ("DataKeyRequest", "datakeyrequests"),
        _ => ("SealedSecretReview", "sealedsecretreviews"),
    };
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "req-1",
            "kind": {"group": "keyward.io", "version": "v1alpha1", "kind": kind},
            "resource": {"group": "keyward.io", "version": "v1alpha1", "resource": resource},
            "namespace": "team", "operation": "CREATE", "dryRun": dry_run,
            "userInfo": {"username": user, "groups": ["system:authenticated"]},
            "object": object,
        },
    });
    let response = app
        .clone()
        .oneshot(
            Request::post(path)
                .header("content-type", "application/json")
                .body(Body::from(review.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let response = &answer["response"];
    assert_eq!(response["uid"], "req-1");
    if response["allowed"] != true {
        return Err(response["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned());
    }
    let patch = STANDARD
        .decode(response["patch"].as_str().expect("an answer is a patch"))
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(patch[0]["op"], "add");
    assert_eq!(patch[0]["path"], "/status");
    Ok(patch[0]["value"].clone())
}

/// The metrics are process-wide: one test at a time, so deltas are exact.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A keyring with key `db` rotated to version 2, a SealedSecret `team/db`
/// sealed under version 1, and the webhook's admission router over both.
struct Setup {
    dir: tempfile::TempDir,
    app: axum::Router,
    spec: Value,
    target: SecretTarget,
    decrypt_only: Arc<DecryptOnly>,
    key_id: String,
    /// What the stand-in API server answers for ManagedKey `team/db`.
    key_object: KeyObject,
}

impl Setup {
    async fn new(limiter: RateLimiter) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let provider =
            LocalProvider::open_or_initialise(KeyringStore::new(dir.path(), RootKey::generate()))
                .unwrap();
        let key = provider
            .create_key(&KeySpec {
                name: "db".into(),
                algorithm: KeyAlgorithm::Aes256,
                owner: None,
                description: None,
            })
            .await
            .unwrap();
        let target = SecretTarget {
            scope: Scope::Strict,
            namespace: "team".into(),
            secret_name: "db".into(),
            key_ref: "team/db".into(),
            access: Vec::new(),
        };
        let values: BTreeMap<String, SecretBytes> = [
            ("password".to_owned(), SecretBytes::new(b"hunter2".to_vec())),
            ("user".to_owned(), SecretBytes::new(b"admin".to_vec())),
        ]
        .into();
        let wrapping = Wrapping::Provider {
            provider: &provider,
            key_id: &key.key_id,
        };
        let sealed = seal_secret(&target, wrapping, &values).await.unwrap();
        provider.rotate_key(&key.key_id).await.unwrap();
        let spec = json!({"keyRef": {"name": "db"}, "encryptedData": sealed});
        let key_object: KeyObject = Arc::new(Mutex::new(managed_key(&key.key_id, "Active")));

        let decrypt_only = Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 8));
        let app = admission_router(stand_in::app_state(
            fake_api(Arc::clone(&key_object)),
            Arc::clone(&decrypt_only),
            &dir.path().join("audit.log"),
            limiter,
        ));
        Setup {
            dir,
            app,
            spec,
            target,
            decrypt_only,
            key_id: key.key_id,
            key_object,
        }
    }

    fn review(&self, action: &str, name: &str, spec: &Value) -> Value {
        json!({"apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecretReview",
            "metadata": {"name": "keyward-cli", "namespace": "team"},
            "spec": {"action": action, "name": name, "sealedSecret": spec}})
    }

    async fn rewrap(&self, user: &str, spec: &Value) -> Result<SealedSecretReviewStatus, String> {
        let review = self.review("Rewrap", "db", spec);
        let status = admit(&self.app, "/review", user, review, true).await?;
        Ok(serde_json::from_value(status).unwrap())
    }

    fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default()
    }
}

#[tokio::test]
async fn rewrap_moves_items_to_the_primary_for_callers_who_may_update() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new(RateLimiter::new(10, 1.0)).await;
    let (ok, denied) = (
        metrics().rewrap_requests_with("ok"),
        metrics().rewrap_requests_with("denied"),
    );

    let answer = setup.rewrap("alice", &setup.spec).await.unwrap();
    let text = serde_json::to_string(&answer).unwrap();
    assert!(
        !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
        "no plaintext"
    );
    assert_eq!(answer.primary_version, Some(2));
    let moved: Vec<_> = answer
        .moved
        .iter()
        .map(|m| (m.item.as_str(), m.from, m.to))
        .collect();
    assert_eq!(moved, [("password", 1, 2), ("user", 1, 2)]);
    let data = &answer.encrypted_data;
    for text in data.values() {
        assert_eq!(Envelope::decode(text).unwrap().key_version, 2);
    }
    let opened = open_secret(&setup.target, setup.decrypt_only.as_ref(), data)
        .await
        .unwrap();
    assert_eq!(opened["password"].expose(), b"hunter2");

    // Again: already on the primary, nothing moves.
    let again = json!({"keyRef": {"name": "db"}, "encryptedData": data});
    assert!(
        setup
            .rewrap("alice", &again)
            .await
            .unwrap()
            .moved
            .is_empty()
    );

    // bob may not update: told so (he is authenticated), and audited.
    let refused = setup.rewrap("bob", &setup.spec).await.unwrap_err();
    assert!(refused.contains("`bob` may not update"), "{refused}");

    // Asked for another name alice may update: the envelopes say `db`,
    // so nothing is re-wrapped.
    let review = setup.review("Rewrap", "other", &setup.spec);
    let refused = admit(&setup.app, "/review", "alice", review, true)
        .await
        .unwrap_err();
    assert!(refused.contains("cannot re-wrap"), "{refused}");

    // Not a dry run: it would be stored, so it is refused before anything.
    let review = setup.review("Rewrap", "db", &setup.spec);
    let refused = admit(&setup.app, "/review", "alice", review, false)
        .await
        .unwrap_err();
    assert!(refused.contains("dryRun=All"), "{refused}");

    assert_eq!(metrics().rewrap_requests_with("ok") - ok, 2);
    assert_eq!(metrics().rewrap_requests_with("denied") - denied, 1);
    let audit = setup.audit_log();
    assert!(audit.contains("password=1->2"), "{audit}");
    assert!(audit.contains("`bob` may not update"), "{audit}");
    assert!(!audit.contains("hunter2"));
}

#[tokio::test]
async fn rewrap_refuses_keys_that_may_not_wrap_and_says_why() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new(RateLimiter::new(100, 100.0)).await;
    let unusable = metrics().rewrap_requests_with("key_unusable");
    let active = managed_key(&setup.key_id, "Active");
    let mut deleting = active.clone();
    deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let mut other_key = active.clone();
    other_key["status"]["providerKeyId"] = json!("someone-elses-key");
    let cases = [
        (
            managed_key(&setup.key_id, "Suspended"),
            "team/db is Suspended",
        ),
        (
            managed_key(&setup.key_id, "Deactivated"),
            "team/db is Deactivated",
        ),
        (
            managed_key(&setup.key_id, "Compromised"),
            "team/db is Compromised",
        ),
        (
            managed_key(&setup.key_id, "Destroyed"),
            "team/db is Destroyed",
        ),
        (deleting, "pending deletion"),
        (other_key, "someone-elses-key"),
        (Value::Null, "team/db (spec.keyRef) does not exist"),
    ];
    let count = cases.len() as u64;
    for (key, reason) in cases {
        *setup.key_object.lock().unwrap() = key;
        let refused = setup.rewrap("alice", &setup.spec).await.unwrap_err();
        assert!(
            refused.contains(reason),
            "the caller is told why: {refused}"
        );
        assert!(
            setup.audit_log().contains(reason),
            "and the audit log: {reason}"
        );
    }
    assert_eq!(
        metrics().rewrap_requests_with("key_unusable") - unusable,
        count
    );
    assert!(
        setup.audit_log().contains("\"outcome\":\"refused\""),
        "{}",
        setup.audit_log()
    );

    // bob, who may not update the SealedSecret, learns nothing of the key.
    let refused = setup.rewrap("bob", &setup.spec).await.unwrap_err();
    assert!(!refused.contains("does not exist"), "{refused}");

    // Active again: the same request goes through.
    *setup.key_object.lock().unwrap() = active;
    setup.rewrap("alice", &setup.spec).await.unwrap();
}

#[tokio::test]
async fn rewrap_is_rate_limited_per_user() {
    let _serial = SERIAL.lock().await;
    // Two at once, then one every ~17 minutes: the third is refused.
    let setup = Setup::new(RateLimiter::new(2, 0.001)).await;
    let limited = metrics().rewrap_requests_with("rate_limited");
    for _ in 0..2 {
        setup.rewrap("alice", &setup.spec).await.unwrap();
    }
    let refused = setup.rewrap("alice", &setup.spec).await.unwrap_err();
    assert!(refused.contains("too many rewrap requests"), "{refused}");
    // Buckets are per user: bob still reaches the SubjectAccessReview.
    let refused = setup.rewrap("bob", &setup.spec).await.unwrap_err();
    assert!(refused.contains("may not update"), "{refused}");
    assert_eq!(metrics().rewrap_requests_with("rate_limited") - limited, 1);
    assert!(setup.audit_log().contains("rate limited"));
}

#[tokio::test]
async fn validate_says_which_items_open_and_why_the_others_do_not() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new(RateLimiter::new(100, 100.0)).await;
    let verdicts = |status: Value| -> Vec<(String, bool, String)> {
        let status: SealedSecretReviewStatus = serde_json::from_value(status).unwrap();
        status
            .items
            .into_iter()
            .map(|v| (v.item, v.opens, v.reason.unwrap_or_default()))
            .collect()
    };
    let review = setup.review("Validate", "db", &setup.spec);
    let status = admit(&setup.app, "/review", "alice", review, true)
        .await
        .unwrap();
    assert!(!status.to_string().contains("hunter2"), "{status}");
    let good = verdicts(status);
    assert_eq!(good.len(), 2);
    assert!(good.iter().all(|(_, opens, _)| *opens), "{good:?}");

    // The same items under another name: bound to `db`, they do not open.
    let review = setup.review("Validate", "other", &setup.spec);
    let moved = verdicts(
        admit(&setup.app, "/review", "alice", review, true)
            .await
            .unwrap(),
    );
    assert!(
        moved
            .iter()
            .all(|(_, opens, why)| !opens && why.contains("secret name `db`")),
        "{moved:?}"
    );

    // One byte of one ciphertext changed: that item only.
    let mut tampered = setup.spec.clone();
    let text = tampered["encryptedData"]["password"].as_str().unwrap();
    let mut bytes = STANDARD.decode(text).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    tampered["encryptedData"]["password"] = json!(STANDARD.encode(bytes));
    let review = setup.review("Validate", "db", &tampered);
    let one = verdicts(
        admit(&setup.app, "/review", "alice", review, true)
            .await
            .unwrap(),
    );
    assert!(
        !one[0].1 && one[0].2.contains("authentication failed"),
        "{one:?}"
    );
    assert!(one[1].1, "{one:?}");

    // A Suspended key serves no version: told, with what to do.
    *setup.key_object.lock().unwrap() = managed_key(&setup.key_id, "Suspended");
    let review = setup.review("Validate", "db", &setup.spec);
    let closed = verdicts(
        admit(&setup.app, "/review", "alice", review, true)
            .await
            .unwrap(),
    );
    assert!(
        closed
            .iter()
            .all(|(_, opens, why)| !opens && why.contains("Suspended")),
        "{closed:?}"
    );

    // bob may not create SealedSecrets in `team`: no verdict at all.
    let review = setup.review("Validate", "db", &setup.spec);
    let refused = admit(&setup.app, "/review", "bob", review, true)
        .await
        .unwrap_err();
    assert!(refused.contains("`bob` may not create"), "{refused}");
    assert!(setup.audit_log().contains("secret.validate"));
}

#[tokio::test]
async fn a_data_key_goes_only_to_its_recipient_and_only_for_allowed_callers() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new(RateLimiter::new(100, 100.0)).await;
    let recipient = Recipient::generate();
    let request = json!({"apiVersion": "keyward.io/v1alpha1", "kind": "DataKeyRequest",
        "metadata": {"name": "keyward-seal", "namespace": "team"},
        "spec": {"secretName": "db", "keyRef": {"name": "db"},
                 "recipientPublicKey": STANDARD.encode(recipient.public_key())}});
    let status = admit(&setup.app, "/datakey", "alice", request.clone(), true)
        .await
        .unwrap();
    let answer: DataKeyAnswer = serde_json::from_value(status).unwrap();
    assert_eq!(answer.key_version, 2, "the primary version wraps");
    let spec: DataKeyRequestSpec = serde_json::from_value(request["spec"].clone()).unwrap();
    let sealed = SealedDek {
        sender_public: STANDARD.decode(&answer.sender_public_key).unwrap(),
        ciphertext: STANDARD.decode(&answer.sealed_data_key).unwrap(),
    };
    let dek = recipient
        .open(&sealed, &spec.binding("team", &answer))
        .unwrap();
    // The wrapped form unwraps to the same data key, for this target only.
    let wrapped = WrappedDek {
        key_id: answer.provider_key_id.clone(),
        version: answer.key_version,
        algorithm: WrapAlgorithm::Symmetric,
        blob: STANDARD.decode(&answer.wrapped_data_key).unwrap(),
    };
    let unwrapped = setup
        .decrypt_only
        .unwrap_dek(&wrapped, &setup.target.wrap_context())
        .await
        .unwrap();
    assert_eq!(unwrapped.expose(), dek.expose());

    // bob may not create SealedSecrets in `team`.
    let refused = admit(&setup.app, "/datakey", "bob", request.clone(), true)
        .await
        .unwrap_err();
    assert!(refused.contains("`bob` may not create"), "{refused}");
    // Not a dry run, or a malformed public key: refused before anything.
    let refused = admit(&setup.app, "/datakey", "alice", request.clone(), false)
        .await
        .unwrap_err();
    assert!(refused.contains("dryRun=All"), "{refused}");
    let mut short = request.clone();
    short["spec"]["recipientPublicKey"] = json!(STANDARD.encode([1u8; 16]));
    let refused = admit(&setup.app, "/datakey", "alice", short, true)
        .await
        .unwrap_err();
    assert!(refused.contains("recipientPublicKey"), "{refused}");
    // A Suspended key wraps nothing.
    *setup.key_object.lock().unwrap() = managed_key(&setup.key_id, "Suspended");
    let refused = admit(&setup.app, "/datakey", "alice", request, true)
        .await
        .unwrap_err();
    assert!(refused.contains("Suspended"), "{refused}");
    let audit = setup.audit_log();
    assert!(audit.contains("secret.datakey") && audit.contains("`bob` may not create"));
}
