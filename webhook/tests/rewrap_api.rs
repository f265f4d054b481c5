//! `/v1/rewrap` in-process against a stand-in API server (an axum router
//! handed to `kube::Client::new`) that answers TokenReview and
//! SubjectAccessReview — alice may update SealedSecrets in `team`, bob may
//! not — and serves the ManagedKey `team/db` as the test sets it. The real
//! API server's answers are in `e2e/tests/webhook.rs`.

use axum::Json;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use http_body_util::BodyExt;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Envelope, Scope, SecretTarget, Wrapping, open_secret, seal_secret};
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_webhook::api_router;
use keyward_webhook::metrics::metrics;
use keyward_webhook::rewrap::{MAX_BODY_BYTES, Moved, RewrapResponse};
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
        "/apis/authentication.k8s.io/v1/tokenreviews",
        post(|Json(review): Json<Value>| async move {
            let user = match review["spec"]["token"].as_str() {
                Some("alice-token") => Some("alice"),
                Some("bob-token") => Some("bob"),
                _ => None,
            };
            let status = match user {
                Some(user) => json!({"authenticated": true,
                        "user": {"username": user, "groups": ["system:authenticated"]}}),
                None => json!({"authenticated": false, "error": "invalid bearer token"}),
            };
            Json(
                json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                            "metadata": {}, "spec": review["spec"], "status": status}),
            )
        }),
    )
    .route(
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        post(|Json(review): Json<Value>| async move {
            let spec = &review["spec"];
            let attributes = &spec["resourceAttributes"];
            let allowed = spec["user"] == "alice"
                && attributes["namespace"] == "team"
                && attributes["verb"] == "update"
                && attributes["group"] == "keyward.io"
                && attributes["resource"] == "sealedsecrets";
            Json(
                json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                            "metadata": {}, "spec": spec, "status": {"allowed": allowed}}),
            )
        }),
    )
}

async fn post_rewrap(
    app: &axum::Router,
    token: Option<&str>,
    body: &Value,
) -> (StatusCode, Vec<u8>) {
    let mut request = Request::post("/v1/rewrap").header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
}

/// The metrics are process-wide: one test at a time, so deltas are exact.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A keyring with key `db` rotated to version 2, a SealedSecret `team/db`
/// sealed under version 1, and the webhook's router over both.
struct Setup {
    dir: tempfile::TempDir,
    app: axum::Router,
    manifest: Value,
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
        let manifest = json!({"apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
            "metadata": {"name": "db", "namespace": "team", "labels": {"app": "api"}},
            "spec": {"keyRef": {"name": "db"}, "encryptedData": sealed}});
        let key_object: KeyObject = Arc::new(Mutex::new(managed_key(&key.key_id, "Active")));

        let decrypt_only = Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 8));
        let app = api_router(stand_in::app_state(
            fake_api(Arc::clone(&key_object)),
            Arc::clone(&decrypt_only),
            &dir.path().join("audit.log"),
            limiter,
        ));
        Setup {
            dir,
            app,
            manifest,
            target,
            decrypt_only,
            key_id: key.key_id,
            key_object,
        }
    }

    fn audit_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default()
    }
}

#[tokio::test]
async fn rewrap_moves_items_to_the_primary_for_callers_who_may_update() {
    let _serial = SERIAL.lock().await;
    let setup = Setup::new(RateLimiter::new(10, 1.0)).await;
    let (app, manifest, target, decrypt_only) = (
        &setup.app,
        &setup.manifest,
        &setup.target,
        &setup.decrypt_only,
    );
    let (ok, denied) = (
        metrics().rewrap_requests_with("ok"),
        metrics().rewrap_requests_with("denied"),
    );

    let (status, body) = post_rewrap(app, Some("alice-token"), manifest).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
        "no plaintext"
    );
    let answer: RewrapResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer.primary_version, 2);
    assert_eq!(
        answer.moved,
        [
            Moved {
                item: "password".into(),
                from: 1,
                to: 2
            },
            Moved {
                item: "user".into(),
                from: 1,
                to: 2
            },
        ]
    );
    let data = &answer.sealed_secret.spec.encrypted_data;
    for text in data.values() {
        assert_eq!(Envelope::decode(text).unwrap().key_version, 2);
    }
    let labels = answer
        .sealed_secret
        .metadata
        .labels
        .clone()
        .unwrap_or_default();
    assert_eq!(
        labels.get("app").map(String::as_str),
        Some("api"),
        "the rest is kept"
    );
    let opened = open_secret(target, decrypt_only.as_ref(), data)
        .await
        .unwrap();
    assert_eq!(opened["password"].expose(), b"hunter2");

    // Again: already on the primary, nothing moves.
    let again = json!({"apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"keyRef": {"name": "db"}, "encryptedData": data}});
    let (status, body) = post_rewrap(app, Some("alice-token"), &again).await;
    assert_eq!(status, StatusCode::OK);
    let answer: RewrapResponse = serde_json::from_slice(&body).unwrap();
    assert!(answer.moved.is_empty());

    // bob may not update; a bad token and no token: refused, generically.
    for token in [Some("bob-token"), Some("forged")] {
        let (status, body) = post_rewrap(app, token, manifest).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("bob") && !text.contains("invalid"), "{text}");
    }
    let (status, _) = post_rewrap(app, None, manifest).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Copied into another namespace alice may update: the envelopes say
    // `team`, so nothing is re-wrapped.
    let mut moved = manifest.clone();
    moved["metadata"]["namespace"] = json!("team");
    moved["metadata"]["name"] = json!("other");
    let (status, body) = post_rewrap(app, Some("alice-token"), &moved).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&body)
    );

    assert_eq!(metrics().rewrap_requests_with("ok") - ok, 2);
    assert_eq!(metrics().rewrap_requests_with("denied") - denied, 2);
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
        let (status, body) = post_rewrap(&setup.app, Some("alice-token"), &setup.manifest).await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::CONFLICT, "{reason}: {text}");
        assert!(text.contains(reason), "the caller is told why: {text}");
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
    let (status, body) = post_rewrap(&setup.app, Some("bob-token"), &setup.manifest).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!String::from_utf8_lossy(&body).contains("does not exist"));

    // Active again: the same request goes through.
    *setup.key_object.lock().unwrap() = active;
    let (status, body) = post_rewrap(&setup.app, Some("alice-token"), &setup.manifest).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
}

#[tokio::test]
async fn rewrap_is_rate_limited_per_user_and_bodies_are_bounded() {
    let _serial = SERIAL.lock().await;
    // Two at once, then one every ~17 minutes: the third is refused.
    let setup = Setup::new(RateLimiter::new(2, 0.001)).await;
    let (limited, bad_request) = (
        metrics().rewrap_requests_with("rate_limited"),
        metrics().rewrap_requests_with("bad_request"),
    );
    for _ in 0..2 {
        let (status, body) = post_rewrap(&setup.app, Some("alice-token"), &setup.manifest).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    }
    let response = setup
        .app
        .clone()
        .oneshot(
            Request::post("/v1/rewrap")
                .header("authorization", "Bearer alice-token")
                .body(Body::from(setup.manifest.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    // Buckets are per user: bob still reaches the SubjectAccessReview (403).
    let (status, _) = post_rewrap(&setup.app, Some("bob-token"), &setup.manifest).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(metrics().rewrap_requests_with("rate_limited") - limited, 1);
    assert!(setup.audit_log().contains("rate limited"));

    // Over the body limit: 413 before any token is looked at.
    let mut huge = setup.manifest.clone();
    huge["metadata"]["annotations"] = json!({"padding": "x".repeat(MAX_BODY_BYTES)});
    let (status, body) = post_rewrap(&setup.app, Some("bob-token"), &huge).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(
        metrics().rewrap_requests_with("bad_request") - bad_request,
        1
    );
}
