//! The HTTP surface: routes, shared state, and serving over TLS. Admission
//! and the tenant API are two routers meant for two listeners, each with
//! its own limits (`listener`), so tenants cannot starve admission.

mod idle;
mod listener;
mod mutate_answer;
mod pre_auth;
mod slots;

pub use listener::{ConnectRate, ServerLimits, serve_tls};
pub use pre_auth::PreAuthLimits;

use crate::admission::{self, Review};
use crate::destruction;
use crate::key_audit;
use crate::metrics::metrics;
use crate::mutate::{self, InjectorConfig};
use crate::unseal::{self, Unsealer};
use crate::validate;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::jiff::Timestamp;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionResponse, AdmissionReview};
use std::sync::Arc;

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub injector: Arc<InjectorConfig>,
    /// `None` serves admission only (e.g. in unit tests without a cluster).
    pub unsealer: Option<Arc<Unsealer>>,
}

/// The admission listener's routes: the API server's `/mutate` and
/// `/validate`, probes and `/metrics`.
pub fn admission_router(state: AppState) -> Router {
    Router::new()
        .route("/mutate", post(mutate_pod))
        .route("/validate", post(validate_object))
        .route("/stamp", post(stamp_object))
        .route("/datakey", post(answer_data_key))
        .route("/sign", post(answer_signature))
        .route("/review", post(review_sealed_secret))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(render_metrics))
        .with_state(state)
}

/// The tenant API listener's routes with the default pre-authentication
/// limits.
pub fn api_router(state: AppState) -> Router {
    api_router_with(state, &PreAuthLimits::default())
}

/// `/v1/unseal` behind `pre_auth`, and `/healthz`.
pub fn api_router_with(state: AppState, pre_auth: &PreAuthLimits) -> Router {
    Router::new()
        .route("/v1/unseal", post(unseal::handle))
        .route_layer(axum::middleware::from_fn_with_state(
            pre_auth::PreAuth::new(pre_auth),
            pre_auth::limit,
        ))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// `/metrics`, `/healthz` and `/readyz` alone, for a plain-HTTP port that
/// Prometheus can scrape without the webhook's CA (`--metrics-listen`).
pub fn metrics_router() -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
}

async fn render_metrics() -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            keyward_kubeutil::metrics::CONTENT_TYPE,
        )],
        metrics().render(),
    )
}

type ReviewResult = Json<AdmissionReview<DynamicObject>>;

/// kube serialises `patch` as a JSON array of bytes; the API's canonical
/// form for `[]byte` is a base64 string, which every API server accepts.
trait Base64Patch {
    fn map_patch_base64(self) -> Json<serde_json::Value>;
}

impl Base64Patch for ReviewResult {
    fn map_patch_base64(self) -> Json<serde_json::Value> {
        let mut value = serde_json::to_value(&self.0).unwrap_or_default();
        if let Some(response) = value.get_mut("response")
            && let Some(patch) = response.get_mut("patch")
            && let Some(bytes) = patch.as_array()
        {
            let bytes: Vec<u8> = bytes
                .iter()
                .filter_map(|b| b.as_u64())
                .filter_map(|b| u8::try_from(b).ok())
                .collect();
            *patch = serde_json::Value::String(STANDARD.encode(bytes));
        }
        Json(value)
    }
}

/// `/mutate`: the lean path for Pod reviews (`mutate_answer`), the general
/// one for the rest.
async fn mutate_pod(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let started = std::time::Instant::now();
    let answer = match mutate_answer::lean(&state.injector, &body) {
        Some(bytes) => ([(CONTENT_TYPE, "application/json")], bytes).into_response(),
        // As the `Json` extractor would: 400/422 with the reason.
        None => match Json::<Review>::from_bytes(&body) {
            Ok(Json(review)) => mutate_review(&state, review)
                .map_patch_base64()
                .into_response(),
            Err(rejection) => rejection.into_response(),
        },
    };
    metrics().admission("mutate", started.elapsed());
    answer
}

fn mutate_review(state: &AppState, review: Review) -> ReviewResult {
    let request = match admission::request(review) {
        Ok(request) => request,
        Err(answer) => return Json(*answer),
    };
    let response = AdmissionResponse::from(&request);
    // `kubectl debug`: the pod exists and is not patched here, but an
    // ephemeral container must not mount Keyward's volumes.
    if request.sub_resource.as_deref() == Some("ephemeralcontainers") {
        return Json(match crate::pod_guard::check_ephemeral(&request) {
            Ok(()) => response.into_review(),
            Err(reason) => response.deny(reason).into_review(),
        });
    }
    let pod = match admission::typed::<k8s_openapi::api::core::v1::Pod>(&request, false) {
        Ok(Some(pod)) => pod,
        Ok(None) => return Json(response.into_review()),
        Err(reason) => return Json(response.deny(reason).into_review()),
    };
    let ops = match mutate::patch_for(&pod, &state.injector) {
        Ok(ops) => ops,
        Err(reason) => return Json(response.deny(reason).into_review()),
    };
    if ops.is_empty() {
        return Json(response.into_review());
    }
    let patch: json_patch::Patch = match serde_json::from_value(serde_json::Value::Array(ops)) {
        Ok(patch) => patch,
        Err(error) => {
            tracing::error!(%error, "built an invalid JSONPatch");
            return Json(
                response
                    .deny("internal error building the patch")
                    .into_review(),
            );
        }
    };
    match response.clone().with_patch(patch) {
        Ok(patched) => Json(patched.into_review()),
        Err(error) => {
            tracing::error!(%error, "cannot serialise the JSONPatch");
            Json(
                response
                    .deny("internal error building the patch")
                    .into_review(),
            )
        }
    }
}

/// `DataKeyRequest` admission (online `keyward seal`).
async fn answer_data_key(
    State(state): State<AppState>,
    Json(review): Json<Review>,
) -> Json<serde_json::Value> {
    answer_question(&state, review, Question::DataKey).await
}

/// `SignatureRequest` admission (`keyward sign`).
async fn answer_signature(
    State(state): State<AppState>,
    Json(review): Json<Review>,
) -> Json<serde_json::Value> {
    answer_question(&state, review, Question::Sign).await
}

/// `SealedSecretReview` admission (`keyward rewrap`, `keyward validate`).
async fn review_sealed_secret(
    State(state): State<AppState>,
    Json(review): Json<Review>,
) -> Json<serde_json::Value> {
    answer_question(&state, review, Question::Review).await
}

/// Keyward's question kinds, each answered into `status` by patch.
#[derive(Clone, Copy)]
enum Question {
    DataKey,
    Review,
    Sign,
}

async fn answer_question(
    state: &AppState,
    review: Review,
    question: Question,
) -> Json<serde_json::Value> {
    let started = std::time::Instant::now();
    let route = match question {
        Question::DataKey => "datakey",
        Question::Review => "review",
        Question::Sign => "sign",
    };
    let reviewed = match admission::request(review) {
        Err(answer) => Json(*answer),
        Ok(request) => {
            let response = AdmissionResponse::from(&request);
            match (&state.unsealer, question) {
                (None, _) => Json(
                    response
                        .deny("the webhook serves no unseal API, so it answers no questions")
                        .into_review(),
                ),
                (Some(unsealer), Question::DataKey) => {
                    answered(response, crate::data_key::answer(unsealer, &request).await)
                }
                (Some(unsealer), Question::Review) => {
                    answered(response, crate::review::answer(unsealer, &request).await)
                }
                (Some(unsealer), Question::Sign) => {
                    answered(response, crate::sign::answer(unsealer, &request).await)
                }
            }
        }
    };
    metrics().admission(route, started.elapsed());
    reviewed.map_patch_base64()
}

/// A question's answer patched into `status`, or the refusal.
fn answered<T: serde::Serialize>(
    response: AdmissionResponse,
    answer: Result<T, String>,
) -> ReviewResult {
    let answer = match answer {
        Ok(answer) => answer,
        Err(reason) => return Json(response.deny(reason).into_review()),
    };
    let patched = crate::question::status_patch(&answer).and_then(|patch| {
        response
            .clone()
            .with_patch(patch)
            .map_err(|e| e.to_string())
    });
    match patched {
        Ok(patched) => Json(patched.into_review()),
        Err(error) => {
            tracing::error!(%error, "cannot build the answer's patch");
            Json(
                response
                    .deny("internal error building the answer")
                    .into_review(),
            )
        }
    }
}

async fn validate_object(
    State(state): State<AppState>,
    Json(review): Json<Review>,
) -> ReviewResult {
    let started = std::time::Instant::now();
    let answer = validate_review(&state, review).await;
    metrics().admission("validate", started.elapsed());
    answer
}

/// `/stamp`: names the user in a newly written destruction request or
/// approval ([`destruction::stamp`]).
async fn stamp_object(Json(review): Json<Review>) -> Json<serde_json::Value> {
    let started = std::time::Instant::now();
    let answer = match admission::request(review) {
        Err(answer) => Json(*answer),
        Ok(request) => {
            let response = AdmissionResponse::from(&request);
            match destruction::stamp(&request, Timestamp::now()) {
                Err(reason) => Json(response.deny(reason).into_review()),
                Ok(ops) if ops.is_empty() => Json(response.into_review()),
                Ok(ops) => match serde_json::from_value(serde_json::Value::Array(ops))
                    .map_err(|e| e.to_string())
                    .and_then(|patch| {
                        response
                            .clone()
                            .with_patch(patch)
                            .map_err(|e| e.to_string())
                    }) {
                    Ok(patched) => Json(patched.into_review()),
                    Err(error) => {
                        tracing::error!(%error, "cannot build the stamp patch");
                        Json(
                            response
                                .deny("internal error building the answer")
                                .into_review(),
                        )
                    }
                },
            }
        }
    };
    metrics().admission("stamp", started.elapsed());
    answer.map_patch_base64()
}

/// Appends an admission record to the audit log; `false` (logged and
/// counted) when it could not be written.
async fn recorded(unsealer: &Unsealer, event: keyward_core::audit::Event) -> bool {
    let action = event.action.clone();
    let audit = Arc::clone(&unsealer.audit);
    let written = tokio::task::spawn_blocking(move || audit.append(event)).await;
    let ok = matches!(written, Ok(Ok(())));
    if !ok {
        metrics().audit_write_failure();
        tracing::error!(
            action,
            "cannot write an admission record to the audit log; refused"
        );
    }
    ok
}

async fn validate_review(state: &AppState, review: Review) -> ReviewResult {
    let request = match admission::request(review) {
        Ok(request) => request,
        Err(answer) => return Json(*answer),
    };
    let mut response = AdmissionResponse::from(&request);
    if let Err(reason) = validate::check(&request) {
        return Json(response.deny(reason).into_review());
    }
    // ManagedKeys are read with the unseal API's client; admission served
    // without one (tests without a cluster) does not check key states.
    let Some(unsealer) = &state.unsealer else {
        return Json(response.into_review());
    };
    let mut warnings = match validate::key_states(&request, &unsealer.client).await {
        Ok(warnings) => warnings,
        Err(reason) => return Json(response.deny(reason).into_review()),
    };
    let judgement = destruction::judge(&request, &unsealer.client, Timestamp::now()).await;
    if let Some(record) = judgement.record {
        // A guarded change goes ahead only once both names are on record.
        let written = recorded(unsealer, record).await;
        if judgement.verdict.is_ok() && !written {
            return Json(
                response
                    .deny("cannot write the audit log, so this destruction is refused; retry, and see the webhook log if it persists")
                    .into_review(),
            );
        }
    }
    if let Err(reason) = judgement.verdict {
        return Json(response.deny(reason).into_review());
    }
    if let Some(change) = key_audit::change(&request) {
        // Fail closed: a change that cannot be attributed is not made.
        if !recorded(unsealer, change.event).await {
            return Json(
                response
                    .deny("cannot write the audit log, so this ManagedKey change is refused; retry, and see the webhook log if it persists")
                    .into_review(),
            );
        }
        warnings.extend(change.warning);
    }
    response.warnings = (!warnings.is_empty()).then_some(warnings);
    Json(response.into_review())
}
