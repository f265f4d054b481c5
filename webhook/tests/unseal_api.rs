//! `/v1/unseal` and `/metrics` in-process, against a stand-in API server
//! (`stand_in`) that answers TokenReview and the pod and SealedSecret
//! reads. What is checked here is the webhook's side: outcomes and the
//! counters they move.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_webhook::api_router;
use keyward_webhook::metrics::metrics;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

mod stand_in;

use stand_in::GOOD_TOKEN;

async fn sealed_db(provider: &LocalProvider) -> Value {
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
    let encrypted = seal_secret(
        &target,
        Wrapping::Provider {
            provider,
            key_id: &key.key_id,
        },
        &values,
    )
    .await
    .unwrap();
    json!({"apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
           "metadata": {"name": "db", "namespace": "team"},
           "spec": {"keyRef": {"name": "db"}, "encryptedData": encrypted}})
}

async fn call(app: &axum::Router, method: &str, path: &str, body: Value) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn unseal(token: &str, secret: &str) -> Value {
    json!({"token": token, "namespace": "team", "pod": "app", "secrets": [secret]})
}

/// One test, because the registry is process-wide: deltas are exact only
/// when nothing else in this binary moves the same counters.
#[tokio::test]
async fn unseal_outcomes_move_the_counters() {
    let dir = tempfile::tempdir().unwrap();
    let provider =
        LocalProvider::open_or_initialise(KeyringStore::new(dir.path(), RootKey::generate()))
            .unwrap();
    let sealed = sealed_db(&provider).await;
    let state = stand_in::app_state(
        stand_in::reading_db(sealed),
        Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 8)),
        &dir.path().join("audit.log"),
        RateLimiter::new(10, 1.0),
    );
    let app = api_router(state);
    let m = metrics();
    let before = (
        m.unseal_requests_with("ok"),
        m.unseal_requests_with("denied"),
        m.denials_with("unauthenticated"),
        m.denials_with("not_entitled"),
        m.decrypts(),
        m.provider_unwraps(),
        m.dek_cache_hits(),
        m.unseal_requests_with("bad_request"),
    );

    for _ in 0..2 {
        let (status, body) = call(&app, "POST", "/v1/unseal", unseal(GOOD_TOKEN, "db")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("aHVudGVyMg=="), "hunter2, base64: {body}");
    }
    let (status, body) = call(&app, "POST", "/v1/unseal", unseal("expired", "db")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        !body.contains("expired"),
        "the reason stays in the audit log"
    );
    let (status, _) = call(&app, "POST", "/v1/unseal", unseal(GOOD_TOKEN, "missing")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, "POST", "/v1/unseal", json!({"token": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert_eq!(m.unseal_requests_with("ok") - before.0, 2);
    assert_eq!(m.unseal_requests_with("denied") - before.1, 2);
    assert_eq!(m.denials_with("unauthenticated") - before.2, 1);
    assert_eq!(m.denials_with("not_entitled") - before.3, 1);
    assert_eq!(m.decrypts() - before.4, 4, "two items, twice");
    assert_eq!(m.provider_unwraps() - before.5, 1, "one miss: one DEK");
    assert_eq!(m.dek_cache_hits() - before.6, 1, "the second unseal hit");
    assert_eq!(m.unseal_requests_with("bad_request") - before.7, 1);

    // /metrics is served on the admission and plain metrics listeners.
    let metrics_app = keyward_webhook::server::metrics_router();
    let (status, text) = call(&metrics_app, "GET", "/metrics", Value::Null).await;
    assert_eq!(status, StatusCode::OK);
    for name in [
        // No namespace before the token is checked: the caller's claim.
        "keyward_unseal_denied_total{namespace=\"\",reason=\"unauthenticated\"} ",
        "keyward_unseal_decrypts_total{namespace=",
        "keyward_provider_unwraps_total ",
        "keyward_dek_cache_hits_total ",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("token has expired") && !audit.contains("hunter2"));
}
