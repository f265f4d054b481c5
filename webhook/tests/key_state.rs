//! Key lifecycle state enforced, in-process against a stand-in API server
//! (`stand_in`) that serves a pod `app`
//! annotated for SealedSecrets `v1`, `v2` and `v3` — each sealed under that
//! version of the local key behind ManagedKey `team/app` — and the
//! ManagedKey as each test sets it:
//!
//! - `/v1/unseal`: Compromised, Destroyed and Suspended versions refused
//!   with a reason the injector prints, audited and counted; Active and
//!   Deactivated ones served; the override honoured and audited.
//! - `/validate`: a new item under a Compromised version refused, an
//!   unrelated edit of an object holding one admitted, a missing key
//!   admitted with a warning.

use axum::Json;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use http_body_util::BodyExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use keyward_core::SecretBytes;
use keyward_core::envelope::{Scope, SecretTarget, Wrapping, seal_secret};
use keyward_core::local::{KeyringStore, LocalProvider, RootKey};
use keyward_core::provider::{KeyAlgorithm, KeyProvider, KeySpec};
use keyward_webhook::metrics::metrics;
use keyward_webhook::server::{self, PreAuthLimits, ServerLimits};
use keyward_webhook::unseal::{DecryptOnly, RateLimiter, UnsealRequest};
use keyward_webhook::{AppState, admission_router, inject, tls};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceExt;

mod stand_in;

use stand_in::GOOD_TOKEN as TOKEN;

const OVERRIDE: &str = "keyward.io/serve-compromised-until";

/// The metrics are process-wide: one test at a time, so deltas are exact.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What the stand-in API server answers for ManagedKey `team/app`; `Null`: none.
type KeyObject = Arc<Mutex<Value>>;

fn fake_api(key: KeyObject, sealed: BTreeMap<String, Value>) -> axum::Router {
    stand_in::api("v1,v2,v3", Arc::default())
        .route(
            "/apis/keyward.io/v1alpha1/namespaces/team/sealedsecrets/{name}",
            get(move |Path(name): Path<String>| {
                let found = sealed.get(&name).cloned();
                async move { found.map(Json).ok_or_else(stand_in::not_found) }
            }),
        )
        .merge(stand_in::object(
            "/apis/keyward.io/v1alpha1/namespaces/team/managedkeys/app",
            key,
        ))
}

fn sealed_secret(name: &str, items: Value) -> Value {
    json!({"apiVersion": "keyward.io/v1alpha1", "kind": "SealedSecret",
           "metadata": {"name": name, "namespace": "team"},
           "spec": {"keyRef": {"name": "app"}, "encryptedData": items}})
}

/// Local key `app` at versions 1 to 3; SealedSecret `vN` holds `password`
/// = `pw-N` sealed under version N. `db` items for admission: `password`
/// under each version, and `user` under version 3.
struct Setup {
    /// One test at a time: the metrics are process-wide, deltas exact.
    _serial: tokio::sync::MutexGuard<'static, ()>,
    dir: tempfile::TempDir,
    key_id: String,
    key_object: KeyObject,
    state: AppState,
    db_password: BTreeMap<u32, String>,
    db_user: String,
}

async fn seal(provider: &LocalProvider, key_id: &str, secret: &str, item: &str) -> String {
    let target = SecretTarget {
        scope: Scope::Strict,
        namespace: "team".into(),
        secret_name: secret.into(),
        key_ref: "team/app".into(),
        access: Vec::new(),
    };
    let value = SecretBytes::new(format!("{secret}-{item}").into_bytes());
    let wrapping = Wrapping::Provider { provider, key_id };
    let mut sealed = seal_secret(&target, wrapping, &[(item.to_owned(), value)].into())
        .await
        .unwrap();
    sealed.remove(item).unwrap()
}

impl Setup {
    async fn new() -> Setup {
        let serial = SERIAL.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let provider =
            LocalProvider::open_or_initialise(KeyringStore::new(dir.path(), RootKey::generate()))
                .unwrap();
        let spec = KeySpec {
            name: "app".into(),
            algorithm: KeyAlgorithm::Aes256,
            owner: None,
            description: None,
        };
        let key_id = provider.create_key(&spec).await.unwrap().key_id;
        let (mut sealed, mut db_password) = (BTreeMap::new(), BTreeMap::new());
        for version in 1..=3u32 {
            if version > 1 {
                let info = provider.rotate_key(&key_id).await.unwrap();
                assert_eq!(info.primary_version, version);
            }
            let name = format!("v{version}");
            let password = seal(&provider, &key_id, &name, "password").await;
            sealed.insert(
                name.clone(),
                sealed_secret(&name, json!({"password": password})),
            );
            db_password.insert(version, seal(&provider, &key_id, "db", "password").await);
        }
        let db_user = seal(&provider, &key_id, "db", "user").await;
        let key_object: KeyObject = Arc::new(Mutex::new(Value::Null));
        let state = stand_in::app_state(
            fake_api(Arc::clone(&key_object), sealed),
            Arc::new(DecryptOnly::cached(provider, Duration::from_secs(30), 8)),
            &dir.path().join("audit.log"),
            RateLimiter::new(1000, 1000.0),
        );
        Setup {
            _serial: serial,
            dir,
            key_id,
            key_object,
            state,
            db_password,
            db_user,
        }
    }

    /// After a compromise of version 2 and a rotation: 1 Deactivated,
    /// 2 Compromised, 3 Active (primary).
    async fn after_compromise() -> Setup {
        let setup = Setup::new().await;
        setup.key(
            "Active",
            ["Deactivated", "Compromised", "Active"],
            json!({}),
        );
        setup
    }

    /// Serve ManagedKey `team/app` with these version states (primary 3)
    /// and annotations.
    fn key(&self, state: &str, versions: [&str; 3], annotations: Value) {
        let versions: Vec<Value> = versions
            .iter()
            .zip(1..)
            .map(|(state, version)| json!({"version": version, "state": state}))
            .collect();
        *self.key_object.lock().unwrap() = json!({
            "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "app", "namespace": "team", "annotations": annotations},
            "spec": {"provider": {"local": {}}},
            "status": {"providerKeyId": self.key_id, "state": state, "primaryVersion": 3,
                       "versions": versions}});
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default()
    }

    async fn unseal(&self, secrets: &[&str]) -> (StatusCode, String) {
        let body = json!({"token": TOKEN, "namespace": "team", "pod": "app", "secrets": secrets});
        let limits = PreAuthLimits {
            burst: 1000,
            per_second: 1000.0,
            source_burst: 1000,
            source_per_second: 1000.0,
            ..PreAuthLimits::default()
        };
        let app = server::api_router_with(self.state.clone(), &limits);
        let request = Request::post("/v1/unseal")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `/validate` of a SealedSecret `db` with `items`, against `old` on UPDATE.
    async fn admit(&self, items: Value, old: Option<Value>) -> Value {
        let mut object = sealed_secret("db", items);
        let operation = if old.is_some() { "UPDATE" } else { "CREATE" };
        let mut request = json!({
            "uid": "9e1f", "operation": operation, "namespace": "team", "name": "db",
            "kind": {"group": "keyward.io", "version": "v1alpha1", "kind": "SealedSecret"},
            "resource": {"group": "keyward.io", "version": "v1alpha1", "resource": "sealedsecrets"},
            "userInfo": {"username": "argocd"},
        });
        if let Some(old) = old {
            request["oldObject"] = sealed_secret("db", old);
            object["metadata"]["labels"] = json!({"edited": "yes"});
        }
        request["object"] = object;
        self.review(request).await
    }

    async fn review(&self, request: Value) -> Value {
        let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                            "request": request});
        let request = Request::post("/validate")
            .header("content-type", "application/json")
            .body(Body::from(review.to_string()))
            .unwrap();
        let response = admission_router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<Value>(&bytes).unwrap()["response"].clone()
    }
}

const COMPROMISED_2: &str = "SealedSecret v2 item password is sealed under version 2 of \
    ManagedKey team/app, which is Compromised: re-seal it (keyward seal) or re-wrap it \
    (keyward rewrap) onto the current primary version";

#[tokio::test]
async fn compromised_versions_are_refused_with_the_reason_and_audited() {
    let setup = Setup::after_compromise().await;
    let m = metrics();
    let (denied, key_state, unwraps) = (
        m.unseal_requests_with("denied"),
        m.denials_with("key_state"),
        m.provider_unwraps(),
    );

    let (status, body) = setup.unseal(&["v2"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body, COMPROMISED_2, "the pod is told why and what to do");
    // All or nothing: the Active secret asked for alongside is not sent.
    let (status, body) = setup.unseal(&["v3", "v2"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("v3-password"), "{body}");

    assert_eq!(m.unseal_requests_with("denied") - denied, 2);
    assert_eq!(m.denials_with("key_state") - key_state, 2);
    assert_eq!(
        m.provider_unwraps() - unwraps,
        1,
        "only v3's DEK: v2 is refused before anything is decrypted"
    );
    let audit = setup.audit();
    assert!(
        audit.contains(COMPROMISED_2) && audit.contains("\"denied\""),
        "{audit}"
    );
    let text = keyward_webhook::server::metrics_router();
    let request = Request::get("/metrics").body(Body::empty()).unwrap();
    let bytes = text.oneshot(request).await.unwrap().into_body();
    let text = String::from_utf8(bytes.collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("keyward_unseal_denied_total{")
                && l.contains("reason=\"key_state\"")),
        "{text}"
    );
}

#[tokio::test]
async fn active_and_deactivated_versions_serve_and_unknown_states_are_noted() {
    let setup = Setup::after_compromise().await;
    let (status, body) = setup.unseal(&["v1", "v3"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.contains("djEtcGFzc3dvcmQ=") && body.contains("djMtcGFzc3dvcmQ="),
        "v1-password, v3-password: {body}"
    );

    // No ManagedKey (a cluster being rebuilt, no operator yet): served, and the record says so.
    *setup.key_object.lock().unwrap() = Value::Null;
    let (status, body) = setup.unseal(&["v2"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        setup.audit().contains("ManagedKey team/app does not exist"),
        "{}",
        setup.audit()
    );
}

#[tokio::test]
async fn destroyed_and_suspended_never_serve() {
    let setup = Setup::new().await;
    let soon = (Timestamp::now() + SignedDuration::from_hours(1)).to_string();
    // The keyring still holds version 1: the key state refuses, not the provider.
    setup.key(
        "Active",
        ["Destroyed", "Compromised", "Active"],
        json!({OVERRIDE: soon}),
    );
    let (status, body) = setup.unseal(&["v1"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body.contains("version 1 of ManagedKey team/app, which is Destroyed"),
        "{body}"
    );
    setup.key(
        "Suspended",
        ["Deactivated", "Compromised", "Suspended"],
        json!({}),
    );
    for (secret, says) in [
        ("v3", "version 3 of ManagedKey team/app, which is Suspended"),
        // A Suspended key stops its older versions too.
        (
            "v1",
            "version 1 of ManagedKey team/app, and that key is Suspended",
        ),
    ] {
        let (status, body) = setup.unseal(&[secret]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(
            body.contains(says) && body.contains("spec.state: Active"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn the_override_serves_compromised_versions_and_each_use_is_audited() {
    let setup = Setup::new().await;
    let at = |hours: i64| (Timestamp::now() + SignedDuration::from_hours(hours)).to_string();
    let served = metrics().compromised_served_items();

    let until = at(2);
    setup.key(
        "Active",
        ["Deactivated", "Compromised", "Active"],
        json!({OVERRIDE: until}),
    );
    let (status, body) = setup.unseal(&["v2"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(metrics().compromised_served_items() - served, 1);
    let audit = setup.audit();
    assert!(
        audit.contains("key_state_override")
            && audit
                .contains("served items password=2 on Compromised versions of ManagedKey team/app")
            && audit.contains(&format!("{OVERRIDE}={until}")),
        "{audit}"
    );

    // More than 24 h ahead: ignored, so refused as without it.
    setup.key(
        "Active",
        ["Deactivated", "Compromised", "Active"],
        json!({OVERRIDE: at(25)}),
    );
    let (status, body) = setup.unseal(&["v2"]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, COMPROMISED_2)
    );
    assert_eq!(metrics().compromised_served_items() - served, 1);
}

#[tokio::test]
async fn the_injector_prints_a_key_state_refusal_and_gives_up() {
    let setup = Setup::after_compromise().await;
    let made = tls::bootstrap(&["127.0.0.1".to_owned()]).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/v1/unseal", listener.local_addr().unwrap());
    let serving = tokio::spawn(server::serve_tls(
        listener,
        tls::server_config(&made.cert_pem, &made.key_pem).unwrap(),
        keyward_webhook::api_router(setup.state.clone()),
        ServerLimits::api(),
    ));
    let request = UnsealRequest {
        token: TOKEN.into(),
        namespace: "team".into(),
        pod: "app".into(),
        secrets: vec!["v2".into()],
    };
    let error = inject::unseal_once(&url, &made.ca_pem, &request)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(error, format!("denied: {COMPROMISED_2}"));
    serving.abort();
}

#[tokio::test]
async fn admission_refuses_new_items_under_versions_that_are_not_active() {
    let setup = Setup::after_compromise().await;
    let password = |v: u32| setup.db_password[&v].clone();

    let answer = setup.admit(json!({"password": password(2)}), None).await;
    assert_eq!(answer["allowed"], false);
    let message = answer["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("SealedSecret db item password is sealed under version 2 of ManagedKey team/app, which is Compromised")
            && message.contains("keyward rewrap"),
        "{message}"
    );
    // A retired version still serves (and is what Git holds after a
    // rotation): admitted, with a warning that names it.
    let answer = setup.admit(json!({"password": password(1)}), None).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(
        answer["warnings"][0]
            .as_str()
            .unwrap()
            .contains("which is Deactivated")
    );
    let answer = setup.admit(json!({"password": password(3)}), None).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(answer["warnings"].is_null(), "{answer}");

    // UPDATE: the stored compromised item blocks neither an unrelated edit
    // nor a new item under the primary; changing an item to a compromised
    // value is refused.
    let old = json!({"password": password(2)});
    let answer = setup.admit(old.clone(), Some(old.clone())).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    let added = json!({"password": password(2), "user": setup.db_user});
    let answer = setup.admit(added, Some(old.clone())).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    let stored = json!({"password": password(3)});
    let answer = setup
        .admit(json!({"password": password(2)}), Some(stored))
        .await;
    assert_eq!(answer["allowed"], false, "{answer}");
}

#[tokio::test]
async fn admission_warns_when_the_key_state_is_not_known_yet() {
    let setup = Setup::new().await;
    let compromised = json!({"password": setup.db_password[&2]});
    // A GitOps applier may create the SealedSecret before its key.
    let answer = setup.admit(compromised.clone(), None).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(
        answer["warnings"],
        json!(["ManagedKey team/app does not exist yet, so key states were not checked"])
    );
    *setup.key_object.lock().unwrap() = json!({
        "apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
        "metadata": {"name": "app", "namespace": "team"}, "spec": {"provider": {"local": {}}}});
    let answer = setup.admit(compromised, None).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(
        answer["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no key states yet")
    );
}

#[tokio::test]
async fn admission_checks_the_override_it_would_honour() {
    let setup = Setup::new().await;
    let at = |hours: i64| (Timestamp::now() + SignedDuration::from_hours(hours)).to_string();
    let key = |value: Option<String>| {
        let mut key = json!({"apiVersion": "keyward.io/v1alpha1", "kind": "ManagedKey",
            "metadata": {"name": "app", "namespace": "team"},
            "spec": {"provider": {"local": {}}}});
        if let Some(value) = value {
            key["metadata"]["annotations"] = json!({OVERRIDE: value});
        }
        key
    };
    let update = |old: Value, new: Value| {
        json!({"uid": "1", "operation": "UPDATE", "namespace": "team", "name": "app",
            "kind": {"group": "keyward.io", "version": "v1alpha1", "kind": "ManagedKey"},
            "resource": {"group": "keyward.io", "version": "v1alpha1", "resource": "managedkeys"},
            "userInfo": {"username": "admin"}, "object": new, "oldObject": old})
    };
    let answer = setup.review(update(key(None), key(Some(at(2))))).await;
    assert_eq!(answer["allowed"], true, "{answer}");
    for bad in [at(48), "tonight".to_owned()] {
        let answer = setup
            .review(update(key(None), key(Some(bad.clone()))))
            .await;
        assert_eq!(answer["allowed"], false, "{bad}: {answer}");
        assert!(
            answer["status"]["message"]
                .as_str()
                .unwrap()
                .contains(OVERRIDE)
        );
    }
    // Unchanged, it is not judged again.
    let same = key(Some("tonight".into()));
    let answer = setup.review(update(same.clone(), same)).await;
    assert_eq!(answer["allowed"], true, "{answer}");
}
