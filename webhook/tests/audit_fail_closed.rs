//! When the audit record cannot be written, the unseal is refused (fail
//! closed, as Vault does), the failure is counted, and the next unseal
//! succeeds once the log is writable again. In its own test binary because
//! the metrics registry is process-wide.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_webhook::metrics::metrics;
use keyward_webhook::server::api_router;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

mod stand_in;

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
    let values = [("password".to_owned(), SecretBytes::new(b"hunter2".to_vec()))].into();
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

async fn webhook(dir: &Path, audit_log: &Path) -> axum::Router {
    let provider =
        LocalProvider::open_or_initialise(KeyringStore::new(dir, RootKey::generate())).unwrap();
    let sealed = sealed_db(&provider).await;
    api_router(stand_in::app_state(
        stand_in::reading_db(sealed),
        Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 8)),
        audit_log,
        RateLimiter::new(100, 100.0),
    ))
}

async fn unseal(app: &axum::Router) -> (StatusCode, String) {
    let body = json!({"token": stand_in::GOOD_TOKEN, "namespace": "team", "pod": "app", "secrets": ["db"]});
    let request = Request::builder()
        .method("POST")
        .uri("/v1/unseal")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

const HUNTER2: &str = "aHVudGVyMg==";

#[tokio::test]
async fn an_unseal_that_cannot_be_audited_is_refused() {
    let keyring = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let dir = logs.path().join("audit");
    std::fs::create_dir(&dir).unwrap();
    let app = webhook(keyring.path(), &dir.join("unseal-audit.log")).await;
    let failures = metrics().audit_write_failures();

    let (status, body) = unseal(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(HUNTER2));

    // The log's directory is replaced by a file: no record can be written.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"").unwrap();
    let (status, body) = unseal(&app).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        !body.contains(HUNTER2),
        "a value left without its record: {body}"
    );
    assert_eq!(metrics().audit_write_failures() - failures, 1);
    // /metrics is served on the admission listener, not the tenant API.
    let text = metrics().render();
    assert!(
        text.contains(&format!(
            "keyward_audit_write_failures_total {}",
            metrics().audit_write_failures()
        )),
        "{text}"
    );

    // Writable again: unseals resume, on a chain that verifies.
    std::fs::remove_file(&dir).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let (status, body) = unseal(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        keyward_core::audit::verify(&dir.join("unseal-audit.log"))
            .unwrap()
            .records,
        1
    );

    // A full disk: refused the same way.
    if Path::new("/dev/full").exists() {
        let keyring = tempfile::tempdir().unwrap();
        let full = webhook(keyring.path(), Path::new("/dev/full")).await;
        let failures = metrics().audit_write_failures();
        let (status, body) = unseal(&full).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
        assert!(!body.contains(HUNTER2));
        assert_eq!(metrics().audit_write_failures() - failures, 1);
    }
}
