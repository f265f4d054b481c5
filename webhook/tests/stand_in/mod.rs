//! What the tenant-API tests share: a stand-in API server (an axum router
//! handed to `kube::Client::new`) that answers TokenReview for pod `app`
//! (uid `uid-1`, ServiceAccount `api`) in namespace `team` and serves that
//! pod, starting with the injector admission gave it (image
//! [`INJECTOR_IMAGE`]), and the webhook state over it. Tests add their own routes
//! (SealedSecrets, ManagedKeys); anything else gets the API server's
//! NotFound Status. The real API server's answers are covered by
//! `e2e/tests/webhook.rs`.

// Each test binary uses part of this.
#![allow(dead_code)]

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use keyward_webhook::AppState;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, Unsealer};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The one token TokenReview accepts; any other "has expired".
pub const GOOD_TOKEN: &str = "good-token";

/// The injector image of the webhook under test and of its pod.
pub const INJECTOR_IMAGE: &str = "keyward/webhook:stand-in";

/// Pod `app` as admission left it for SealedSecrets `inject`
/// (comma-separated), its injector running.
pub fn starting_pod(inject: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "app", "namespace": "team", "uid": "uid-1",
                     "annotations": {"keyward.io/inject": inject}},
        "spec": {
            "serviceAccountName": "api",
            "initContainers": [{"name": "keyward-inject", "image": INJECTOR_IMAGE,
                "command": ["/keyward-webhook"],
                "args": ["inject", "--secrets", inject, "--mount-path", "/run/keyward"],
                "volumeMounts": [{"name": "keyward-secrets", "mountPath": "/run/keyward"}]}],
            "containers": [{"name": "app", "image": "app"}],
            "volumes": [{"name": "keyward-secrets", "emptyDir": {"medium": "Memory"}}]},
        "status": {"phase": "Pending", "initContainerStatuses": [{
            "name": "keyward-inject", "image": INJECTOR_IMAGE, "imageID": "", "ready": false,
            "restartCount": 0, "state": {"running": {}}}]}})
}

/// TokenReview (each counted in `reviews`) and pod `app`, admitted for
/// `inject` ([`starting_pod`]).
pub fn api(inject: &'static str, reviews: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(move |Json(review): Json<Value>| {
                reviews.fetch_add(1, Ordering::SeqCst);
                async move {
                    let status = if review["spec"]["token"] == GOOD_TOKEN {
                        json!({"authenticated": true, "audiences": ["keyward"], "user": {
                        "username": "system:serviceaccount:team:api",
                        "extra": {
                            "authentication.kubernetes.io/pod-name": ["app"],
                            "authentication.kubernetes.io/pod-uid": ["uid-1"],
                        }}})
                    } else {
                        json!({"authenticated": false, "error": "token has expired"})
                    };
                    Json(
                        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                "metadata": {}, "spec": review["spec"], "status": status}),
                    )
                }
            }),
        )
        .route(
            "/api/v1/namespaces/team/pods/app",
            get(move || async move { Json(starting_pod(inject)) }),
        )
        .fallback(|| async { not_found() })
}

/// Pod `app` annotated for SealedSecret `db`, which is `sealed`; no
/// ManagedKey (unseal then notes the key state as unchecked).
pub fn reading_db(sealed: Value) -> Router {
    let path = "/apis/keyward.io/v1alpha1/namespaces/team/sealedsecrets/db";
    api("db", Arc::default()).merge(object(path, Arc::new(Mutex::new(sealed))))
}

/// A route at `path` serving the object the test currently holds there
/// (it may change it between requests); `Null`: NotFound.
pub fn object(path: &str, object: Arc<Mutex<Value>>) -> Router {
    Router::new().route(
        path,
        get(move || {
            let object = object.lock().unwrap().clone();
            async move {
                if object.is_null() {
                    not_found()
                } else {
                    (StatusCode::OK, Json(object))
                }
            }
        }),
    )
}

/// The API server's answer for an object that does not exist.
pub fn not_found() -> (StatusCode, Json<Value>) {
    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "reason": "NotFound", "code": 404, "metadata": {}, "message": "not found"});
    (StatusCode::NOT_FOUND, Json(status))
}

/// The webhook's state over `api`: unseal and rewrap enabled, the audit
/// log at `audit`.
pub fn app_state(
    api: Router,
    provider: Arc<DecryptOnly>,
    audit: &Path,
    limiter: RateLimiter,
) -> AppState {
    AppState {
        injector: Arc::new(InjectorConfig {
            image: INJECTOR_IMAGE.into(),
            image_pull_policy: None,
            unseal_url: "https://127.0.0.1:1/v1/unseal".into(),
            ca_pem: None,
            default_delivery: Default::default(),
        }),
        unsealer: Some(Arc::new(Unsealer {
            client: kube::Client::new(api, "default"),
            provider,
            audit: Arc::new(keyward_core::audit::AuditLog::new(audit)),
            limiter,
            audience: "keyward".into(),
            injector_image: INJECTOR_IMAGE.into(),
        })),
    }
}
