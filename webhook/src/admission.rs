//! AdmissionReview plumbing shared by `/mutate` and `/validate`: parse the
//! review, answer with the request's uid, turn internal errors into a short
//! message.

use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};

pub type Review = AdmissionReview<DynamicObject>;
pub type Request = AdmissionRequest<DynamicObject>;

/// Extracts the request; `Err` is the review to answer a malformed one with.
pub fn request(review: Review) -> Result<Request, Box<AdmissionReview<DynamicObject>>> {
    review.try_into().map_err(
        |error: kube::core::admission::ConvertAdmissionReviewError| {
            tracing::warn!(%error, "malformed AdmissionReview");
            Box::new(AdmissionResponse::invalid(error.to_string()).into_review())
        },
    )
}

/// The typed object of a request (`object` for CREATE/UPDATE, `oldObject` when `old`).
pub fn typed<T: serde::de::DeserializeOwned>(
    request: &Request,
    old: bool,
) -> Result<Option<T>, String> {
    let object = if old {
        request.old_object.as_ref()
    } else {
        request.object.as_ref()
    };
    object
        .map(|o| serde_json::to_value(o).and_then(serde_json::from_value))
        .transpose()
        .map_err(|e| {
            format!(
                "cannot read the {} as {}: {e}",
                if old { "old object" } else { "object" },
                request.kind.kind
            )
        })
}

/// Who made a request, for audit records.
pub fn actor(request: &Request) -> String {
    request
        .user_info
        .username
        .clone()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "(unknown user)".into())
}

/// `namespace/name` of the object a request is about, for audit records.
pub fn subject(request: &Request, name: Option<&str>) -> String {
    let namespace = request.namespace.as_deref().unwrap_or_default();
    format!("{namespace}/{}", name.unwrap_or(&request.name))
}
