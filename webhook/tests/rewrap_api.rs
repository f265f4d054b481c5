//! `/v1/rewrap` in-process against a stand-in API server (an axum router
//! handed to `kube::Client::new`) that answers TokenReview and
//! SubjectAccessReview: alice may update SealedSecrets in `team`, bob may
//! not. The real API server's answers are in `e2e/tests/webhook.rs`.

use axum::Json;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use http_body_util::BodyExt;
use keyward_core::SecretBytes;
use keyward_core::envelope::{Envelope, Scope, SecretTarget, Wrapping, open_secret, seal_secret};
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_webhook::metrics::metrics;
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::rewrap::{Moved, RewrapResponse};
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, Unsealer};
use keyward_webhook::{AppState, router};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

fn fake_api() -> kube::Client {
    let api = axum::Router::new()
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
        );
    kube::Client::new(api, "default")
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

#[tokio::test]
async fn rewrap_moves_items_to_the_primary_for_callers_who_may_update() {
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

    let decrypt_only = Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 8));
    let app = router(AppState {
        injector: Arc::new(InjectorConfig {
            image: "i".into(),
            image_pull_policy: None,
            unseal_url: "https://127.0.0.1:1/v1/unseal".into(),
            ca_pem: None,
        }),
        unsealer: Some(Arc::new(Unsealer {
            client: fake_api(),
            provider: Arc::clone(&decrypt_only),
            audit: Arc::new(keyward_core::audit::AuditLog::new(
                &dir.path().join("audit.log"),
            )),
            limiter: RateLimiter::new(10, 1.0),
            audience: "keyward".into(),
        })),
    });
    let (ok, denied) = (
        metrics().rewrap_requests_with("ok"),
        metrics().rewrap_requests_with("denied"),
    );

    let (status, body) = post_rewrap(&app, Some("alice-token"), &manifest).await;
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
    let opened = open_secret(&target, decrypt_only.as_ref(), data)
        .await
        .unwrap();
    assert_eq!(opened["password"].expose(), b"hunter2");

    // Again: already on the primary, nothing moves.
    let again = json!({"apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
        "metadata": {"name": "db", "namespace": "team"},
        "spec": {"keyRef": {"name": "db"}, "encryptedData": data}});
    let (status, body) = post_rewrap(&app, Some("alice-token"), &again).await;
    assert_eq!(status, StatusCode::OK);
    let answer: RewrapResponse = serde_json::from_slice(&body).unwrap();
    assert!(answer.moved.is_empty());

    // bob may not update; a bad token and no token: refused, generically.
    for token in [Some("bob-token"), Some("forged")] {
        let (status, body) = post_rewrap(&app, token, &manifest).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let text = String::from_utf8_lossy(&body);
        assert!(!text.contains("bob") && !text.contains("invalid"), "{text}");
    }
    let (status, _) = post_rewrap(&app, None, &manifest).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Copied into another namespace alice may update: the envelopes say
    // `team`, so nothing is re-wrapped.
    let mut moved = manifest.clone();
    moved["metadata"]["namespace"] = json!("team");
    moved["metadata"]["name"] = json!("other");
    let (status, body) = post_rewrap(&app, Some("alice-token"), &moved).await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        String::from_utf8_lossy(&body)
    );

    assert_eq!(metrics().rewrap_requests_with("ok") - ok, 2);
    assert_eq!(metrics().rewrap_requests_with("denied") - denied, 2);
    let audit = std::fs::read_to_string(dir.path().join("audit.log")).unwrap();
    assert!(audit.contains("password=1->2"), "{audit}");
    assert!(audit.contains("`bob` may not update"), "{audit}");
    assert!(!audit.contains("hunter2"));
}
