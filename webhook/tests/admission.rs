//! `/mutate` and `/validate` in-process through the admission router, with real
//! AdmissionReview bodies (fixtures/) as the API server sends them.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use keyward_core::envelope::{Envelope, Scope, ScopeContext};
use keyward_core::provider::{WrapAlgorithm, WrappedDek};
use keyward_core::{Dek, crypto};
use keyward_webhook::mutate::InjectorConfig;
use keyward_webhook::{AppState, admission_router, api_router};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

fn state() -> AppState {
    AppState {
        injector: Arc::new(InjectorConfig {
            image: "keyward/webhook:test".into(),
            image_pull_policy: Some("Never".into()),
            unseal_url: "https://127.0.0.1:8443/v1/unseal".into(),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
            default_delivery: Default::default(),
        }),
        unsealer: None,
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

async fn post(path: &str, body: &Value) -> Value {
    let request = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap();
    let response = admission_router(state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// The response's JSONPatch applied to the request's object.
fn apply(review: &Value, answer: &Value) -> Value {
    let mut pod = review["request"]["object"].clone();
    if let Some(patch) = answer["response"]["patch"].as_str() {
        assert_eq!(answer["response"]["patchType"], "JSONPatch");
        let patch: json_patch::Patch =
            serde_json::from_slice(&STANDARD.decode(patch).unwrap()).unwrap();
        json_patch::patch(&mut pod, &patch).unwrap();
    }
    pod
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn annotated_pod_gets_injector_volume_and_mounts() {
    let review = fixture("pod-create-annotated.json");
    let answer = post("/mutate", &review).await;
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
    assert_eq!(answer["response"]["allowed"], true);
    let pod = apply(&review, &answer);
    let spec = &pod["spec"];

    assert_eq!(
        names(&spec["initContainers"]),
        ["keyward-inject", "migrate"]
    );
    assert_eq!(
        names(&spec["volumes"]),
        ["config", "keyward-secrets", "keyward-token"]
    );
    assert_eq!(spec["volumes"][1]["emptyDir"]["medium"], "Memory");
    let token = &spec["volumes"][2]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"], "keyward");
    assert_eq!(token["expirationSeconds"], 600);
    assert_eq!(spec["serviceAccountName"], "api", "custom SA untouched");

    let init = &spec["initContainers"][0];
    assert_eq!(init["image"], "keyward/webhook:test");
    assert_eq!(init["imagePullPolicy"], "Never");
    assert_eq!(
        init["command"],
        json!(["/keyward-webhook"]),
        "not the image's ENTRYPOINT"
    );
    assert!(
        init["args"]
            .as_array()
            .unwrap()
            .contains(&json!("db,stripe"))
    );
    let security = &init["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], json!(["ALL"]));
    assert!(init["resources"]["requests"]["memory"].is_string());
    // Only the injector sees the token.
    for (list, index) in [("containers", 0), ("containers", 1), ("initContainers", 1)] {
        let container = &spec[list][index];
        let mounts = container["volumeMounts"].as_array().unwrap();
        assert!(
            mounts.iter().any(|m| m["name"] == "keyward-secrets"
                && m["mountPath"] == "/etc/secrets"
                && m["readOnly"] == true),
            "{list}[{index}] mounts the secrets read-only: {mounts:?}"
        );
        assert!(!mounts.iter().any(|m| m["name"] == "keyward-token"));
    }
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["name"], "config");
}

#[tokio::test]
async fn second_admission_adds_nothing() {
    let mut review = fixture("pod-create-annotated.json");
    let first = post("/mutate", &review).await;
    review["request"]["object"] = apply(&review, &first);
    let second = post("/mutate", &review).await;
    assert_eq!(second["response"]["allowed"], true);
    assert!(second["response"]["patch"].is_null(), "{second}");
}

#[tokio::test]
async fn unannotated_pod_is_untouched() {
    let answer = post("/mutate", &fixture("pod-create-plain.json")).await;
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"]["patch"].is_null());
}

#[tokio::test]
async fn empty_annotation_is_refused_with_a_reason() {
    let mut review = fixture("pod-create-plain.json");
    review["request"]["object"]["metadata"]["annotations"] = json!({"keyward.io/inject": " "});
    let answer = post("/mutate", &review).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("keyward.io/inject"), "{message}");
}

#[tokio::test]
async fn labelled_pod_without_the_annotation_is_told_what_to_add() {
    let mut review = fixture("pod-create-plain.json");
    review["request"]["object"]["metadata"]["labels"] = json!({"keyward.io/injection": "enabled"});
    let answer = post("/mutate", &review).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("add the annotation keyward.io/inject:"),
        "{message}"
    );
}

#[tokio::test]
async fn illegal_managed_key_transition_names_the_legal_ones() {
    let answer = post("/validate", &fixture("managedkey-update.json")).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("spec.state"), "{message}");
    assert!(
        message.contains("Suspended") && message.contains("Deactivated"),
        "{message}"
    );
}

#[tokio::test]
async fn legal_managed_key_transition_is_allowed() {
    let mut review = fixture("managedkey-update.json");
    review["request"]["object"]["spec"]["state"] = json!("Suspended");
    let answer = post("/validate", &review).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

/// A key admitted before a newer rule (here: tags on the local provider)
/// must still lose its finalizer, or it could never finish deleting; a
/// change to its spec is judged by today's rules.
#[tokio::test]
async fn a_key_stored_before_a_newer_rule_still_takes_metadata_changes() {
    let mut review = fixture("managedkey-update.json");
    let request = &mut review["request"];
    request["object"]["spec"]["state"] = request["oldObject"]["spec"]["state"].clone();
    request["oldObject"]["spec"]["tags"] = json!({"team": "payments"});
    request["object"]["spec"]["tags"] = json!({"team": "payments"});
    request["oldObject"]["metadata"]["finalizers"] = json!(["keyward.io/cleanup"]);
    request["object"]["metadata"]["finalizers"] = json!([]);
    let answer = post("/validate", &review).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    review["request"]["object"]["spec"]["tags"] = json!({"team": "billing"});
    let answer = post("/validate", &review).await;
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("tags"), "{message}");
}

fn envelope(scope: Scope, namespace: &str, secret: &str, item: &str) -> String {
    let wrapped = WrappedDek {
        key_id: "local-key-1".into(),
        version: 1,
        algorithm: WrapAlgorithm::Symmetric,
        blob: vec![7; 60],
    };
    let context = ScopeContext::new(scope, namespace, secret, item, &format!("{namespace}/db"));
    Envelope::seal_with(
        context,
        &wrapped,
        &Dek::generate(),
        crypto::random_nonce(),
        b"hunter2",
    )
    .unwrap()
    .encode()
    .unwrap()
}

fn sealed_review(namespace: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "9e1f", "operation": "CREATE", "namespace": namespace, "name": "db",
            "kind": {"group": "keyward.io", "version": "v1alpha1", "kind": "SealedSecret"},
            "resource": {"group": "keyward.io", "version": "v1alpha1", "resource": "sealedsecrets"},
            "userInfo": {"username": "admin"},
            "object": {
                "apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
                "metadata": {"name": "db", "namespace": namespace}, "spec": spec,
            },
        }
    })
}

#[tokio::test]
async fn sealed_secret_headers_must_match_the_object() {
    let good = envelope(Scope::Strict, "payments", "db", "password");
    let spec = json!({"keyRef": {"name": "db"}, "encryptedData": {"password": good}});
    let answer = post("/validate", &sealed_review("payments", spec.clone())).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let elsewhere = post("/validate", &sealed_review("staging", spec)).await;
    assert_eq!(elsewhere["response"]["allowed"], false);
    let message = elsewhere["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("namespace") && message.contains("payments"),
        "{message}"
    );

    let namespace_scoped = envelope(Scope::Namespace, "payments", "db", "password");
    let mismatch = json!({"keyRef": {"name": "db"}, "scope": "strict",
                          "encryptedData": {"password": namespace_scoped}});
    let answer = post("/validate", &sealed_review("payments", mismatch)).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(message.contains("scope"), "{message}");

    let garbage = json!({"keyRef": {"name": "db"}, "encryptedData": {"password": "AAAA"}});
    let answer = post("/validate", &sealed_review("payments", garbage)).await;
    assert_eq!(answer["response"]["allowed"], false);
}

#[tokio::test]
async fn unseal_without_a_cluster_is_unavailable() {
    let request = Request::post("/v1/unseal")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let response = api_router(state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn admission_latency_is_recorded_per_route() {
    use keyward_webhook::metrics::metrics;
    // Other tests in this binary post too: the counts only grow.
    let (mutate, validate) = (
        metrics().admissions("mutate"),
        metrics().admissions("validate"),
    );
    post("/mutate", &fixture("pod-create-plain.json")).await;
    post("/validate", &fixture("managedkey-update.json")).await;
    assert!(metrics().admissions("mutate") > mutate);
    assert!(metrics().admissions("validate") > validate);
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let response = admission_router(state()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.contains("keyward_admission_duration_seconds_count{route=\"mutate\"}"));
    assert!(
        text.contains("keyward_admission_duration_seconds_bucket{le=\"+Inf\",route=\"validate\"}")
    );
}

#[tokio::test]
async fn the_plain_metrics_router_serves_metrics_and_health_only() {
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let app = keyward_webhook::server::metrics_router();
    let response = app.clone().oneshot(get("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let response = app.clone().oneshot(get("/healthz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.oneshot(get("/mutate")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

/// `kubectl debug` on an injected pod: the API server sends an UPDATE of
/// `pods/ephemeralcontainers`. Never patched; refused only when the debug
/// container mounts Keyward's volumes.
#[tokio::test]
async fn ephemeral_containers_may_not_mount_keyward_volumes() {
    let create = fixture("pod-create-annotated.json");
    let injected = apply(&create, &post("/mutate", &create).await);
    let debug = |mounts: Value| {
        let mut pod = injected.clone();
        pod["spec"]["ephemeralContainers"] =
            json!([{"name": "debug", "image": "busybox", "volumeMounts": mounts}]);
        let mut review = create.clone();
        review["request"]["operation"] = json!("UPDATE");
        review["request"]["subResource"] = json!("ephemeralcontainers");
        review["request"]["oldObject"] = injected.clone();
        review["request"]["object"] = pod;
        review
    };
    let refused = post(
        "/mutate",
        &debug(json!([{"name": "keyward-secrets", "mountPath": "/s"}])),
    )
    .await;
    assert_eq!(refused["response"]["allowed"], false);
    let message = refused["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("ephemeral container `debug` mounts volume `keyward-secrets`"),
        "{message}"
    );
    let allowed = post("/mutate", &debug(json!([]))).await;
    assert_eq!(allowed["response"]["allowed"], true);
    assert!(allowed["response"]["patch"].is_null(), "{allowed}");
}

/// Before Kubernetes 1.22 the subresource's object is `EphemeralContainers`
/// (the list only, no volumes): still refused.
#[tokio::test]
async fn ephemeral_containers_are_checked_in_the_pre_1_22_shape_too() {
    let mut review = fixture("pod-create-annotated.json");
    let request = &mut review["request"];
    request["operation"] = json!("UPDATE");
    request["subResource"] = json!("ephemeralcontainers");
    request["kind"] = json!({"group": "", "version": "v1", "kind": "EphemeralContainers"});
    let object = |mounts: Value| {
        json!({"apiVersion": "v1", "kind": "EphemeralContainers",
            "metadata": {"name": "p", "namespace": "team"},
            "ephemeralContainers": [{"name": "debug", "image": "busybox", "volumeMounts": mounts}]})
    };
    request["object"] = object(json!([{"name": "keyward-token", "mountPath": "/t"}]));
    let refused = post("/mutate", &review).await;
    assert_eq!(refused["response"]["allowed"], false, "{refused}");
    review["request"]["object"] = object(json!([]));
    let allowed = post("/mutate", &review).await;
    assert_eq!(allowed["response"]["allowed"], true, "{allowed}");
    assert!(allowed["response"]["patch"].is_null());
}

/// A body that is no AdmissionReview gets the `Json` extractor's 4xx, and a
/// review whose object is not a readable Pod is refused with the reason (the
/// general path, behind the lean one).
#[tokio::test]
async fn a_body_that_is_not_a_pod_review_is_refused_with_the_reason() {
    for junk in [&b"not json"[..], br#"{"kind":"AdmissionReview"}"#] {
        let request = Request::post("/mutate")
            .header("content-type", "application/json")
            .body(Body::from(junk))
            .unwrap();
        let response = admission_router(state()).oneshot(request).await.unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    let mut review = fixture("pod-create-annotated.json");
    review["request"]["object"]["spec"]["containers"] = json!("not a list");
    let answer = post("/mutate", &review).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot read the object as Pod"),
        "{message}"
    );
    assert_eq!(answer["response"]["uid"], review["request"]["uid"]);
}
