//! `/mutate` from request bytes to response bytes without a JSON tree in
//! between: the Pod is read straight from the body, and the answer is
//! written with its patch (typed operations, `mutate::Op`) already in
//! base64. The general path (kube's `DynamicObject` review, the Pod converted from it, the patch turned into
//! a `json_patch::Patch` and the review into a `Value` to rewrite a byte
//! array as base64) cost as much CPU as TLS and HTTP together
//! (docs/performance.md). It still answers what the lean one does not
//! take: `kubectl debug`'s ephemeral containers (a different object before
//! 1.22), and bodies that do not read as a Pod review (so the reason for a
//! refusal is the same as before).

use crate::mutate::{self, InjectorConfig};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use serde::Serialize;

/// The answer to a Pod review, or `None` when the general path must take it.
pub fn lean(injector: &InjectorConfig, body: &[u8]) -> Option<Vec<u8>> {
    let review: AdmissionReview<Pod> = serde_json::from_slice(body).ok()?;
    let request: AdmissionRequest<Pod> = review.try_into().ok()?;
    if request.sub_resource.is_some() {
        return None;
    }
    let response = AdmissionResponse::from(&request);
    let answer = match request
        .object
        .as_ref()
        .map(|pod| mutate::patch(pod, injector))
    {
        None => write(&response, None),
        Some(Err(reason)) => write(&response.deny(reason), None),
        Some(Ok(ops)) if ops.is_empty() => write(&response, None),
        Some(Ok(ops)) => write(&response, Some(&serde_json::to_vec(&ops).ok()?)),
    };
    answer.ok()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a> {
    api_version: &'a str,
    kind: &'a str,
    response: Response<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Response<'a> {
    #[serde(flatten)]
    answer: &'a AdmissionResponse,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    patch_type: Option<&'static str>,
}

/// `response` as an AdmissionReview, with `patch` (a JSONPatch) in base64.
fn write(response: &AdmissionResponse, patch: Option<&[u8]>) -> serde_json::Result<Vec<u8>> {
    debug_assert!(response.patch.is_none(), "the patch goes in as base64");
    serde_json::to_vec(&Review {
        api_version: &response.types.api_version,
        kind: &response.types.kind,
        response: Response {
            answer: response,
            patch: patch.map(|bytes| STANDARD.encode(bytes)),
            patch_type: patch.map(|_| "JSONPatch"),
        },
    })
}
