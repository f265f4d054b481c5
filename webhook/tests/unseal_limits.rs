//! `/v1/unseal` input limits in-process, against a stand-in API server that
//! counts its TokenReviews: malformed requests are refused with 400 before
//! any API call and leave no audit record; each named secret costs one
//! token of the pod's rate limit. (A file of its own: the metrics are
//! process-wide and `unseal_api.rs` checks exact deltas.)

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_webhook::api_router;
use keyward_webhook::metrics::metrics;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::ServiceExt;

mod stand_in;

fn app(dir: &Path, reviews: Arc<AtomicUsize>, burst: u32) -> axum::Router {
    let provider =
        LocalProvider::open_or_initialise(KeyringStore::new(dir, RootKey::generate())).unwrap();
    // Pod `app` annotated for a..d; no SealedSecret exists.
    api_router(stand_in::app_state(
        stand_in::api("a,b,c,d", reviews),
        Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 8)),
        &dir.join("audit.log"),
        RateLimiter::new(burst, 0.001),
    ))
}

async fn post_unseal(app: &axum::Router, body: Vec<u8>) -> (StatusCode, String) {
    let request = Request::post("/v1/unseal")
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn unseal(secrets: &[&str]) -> Vec<u8> {
    json!({"token": stand_in::GOOD_TOKEN, "namespace": "team", "pod": "app", "secrets": secrets})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn malformed_requests_cost_no_api_call_and_no_audit_record() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = Arc::new(AtomicUsize::new(0));
    let app = app(dir.path(), Arc::clone(&reviews), 32);
    let mib = "x".repeat(1024 * 1024);
    let many: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let junk: Vec<(Vec<u8>, StatusCode, &str)> = vec![
        (b"not json".to_vec(), StatusCode::BAD_REQUEST, "body"),
        (
            json!({"token": mib, "namespace": "team", "pod": "app", "secrets": ["a"]})
                .to_string()
                .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"token": "t", "namespace": "team", "pod": "app", "secrets": []})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "no_secrets",
        ),
        (
            json!({"token": "t", "namespace": "team", "pod": "app", "secrets": many})
                .to_string()
                .into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
        ),
        (
            json!({"token": "t", "namespace": "Team!", "pod": "app", "secrets": ["a"]})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "namespace",
        ),
        (
            json!({"token": "t", "namespace": "team", "pod": "app", "secrets": ["../etc"]})
                .to_string()
                .into_bytes(),
            StatusCode::BAD_REQUEST,
            "secret_name",
        ),
        (
            json!({"token": "t", "namespace": "team", "pod": "app",
                   "secrets": (0..33).map(|i| format!("s{i}")).collect::<Vec<_>>()})
            .to_string()
            .into_bytes(),
            StatusCode::BAD_REQUEST,
            "too_many_secrets",
        ),
    ];
    for (body, status, reason) in junk {
        let before = metrics().invalid_with(reason);
        let (got, message) = post_unseal(&app, body).await;
        assert_eq!(got, status, "{reason}: {message}");
        assert!(message.len() < 300, "{reason}: {message}");
        assert_eq!(metrics().invalid_with(reason) - before, 1, "{reason}");
    }
    assert_eq!(reviews.load(Ordering::SeqCst), 0, "no TokenReview for junk");
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap_or_default();
    assert!(audit.is_empty(), "junk was audited: {audit}");
    // /metrics is served on the admission listener, not the tenant API.
    let text = metrics().render();
    assert!(
        text.contains("keyward_unseal_invalid_total{reason=\"no_secrets\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn each_secret_is_charged_to_the_pods_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = Arc::new(AtomicUsize::new(0));
    let app = app(dir.path(), Arc::clone(&reviews), 3);
    // Authenticated and charged two tokens, then denied (no such secret).
    let (status, _) = post_unseal(&app, unseal(&["a", "b", "a"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "duplicates are charged once");
    // One token left: two secrets are refused, one passes.
    let (status, body) = post_unseal(&app, unseal(&["c", "d"])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, _) = post_unseal(&app, unseal(&["c"])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // More secrets than the burst can never pass: refused before TokenReview.
    let reviewed = reviews.load(Ordering::SeqCst);
    let (status, body) = post_unseal(&app, unseal(&["a", "b", "c", "d"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("--rate-burst"), "{body}");
    assert_eq!(reviews.load(Ordering::SeqCst), reviewed);
    // Legitimate callers' denials stay audited, the rate limit included.
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("rate limited (2 secrets)"), "{audit}");
    assert_eq!(audit.lines().count(), 3, "{audit}");
}
