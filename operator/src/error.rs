//! The operator's one error type. Messages name the object and say what to
//! do; none carries key material.

use keyward_core::ProviderError;
use keyward_core::audit::AuditError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[from] kube::Error),

    #[error("key provider: {0}")]
    Provider(#[from] ProviderError),

    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),

    #[error("cannot write the audit log: {0}")]
    Audit(#[from] AuditError),

    #[error("{0}")]
    Blocked(String),

    #[error("sealed value {0}")]
    Item(#[from] keyward_core::envelope::ItemError),

    #[error("leadership: {0}")]
    Leadership(String),

    #[error("the object has no {0}")]
    MissingObjectKey(&'static str),

    #[error("the local keyring Secret: {0}")]
    Keyring(String),

    #[error("background task failed: {0}")]
    Task(String),

    #[error("cannot serve {address}: {error}")]
    Serve {
        address: String,
        error: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A low-cardinality label for the errors metric.
    /// Every value [`Error::metric_label`] returns.
    pub const METRIC_LABELS: [&'static str; 12] = [
        "kube",
        "provider_unavailable",
        "provider",
        "finalizer",
        "audit",
        "blocked",
        "envelope",
        "leadership",
        "invalid_object",
        "keyring",
        "task",
        "serve",
    ];

    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Provider(e) if e.is_retryable() => "provider_unavailable",
            Error::Provider(_) => "provider",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
            Error::Audit(_) => "audit",
            Error::Blocked(_) => "blocked",
            Error::Item(_) => "envelope",
            Error::Leadership(_) => "leadership",
            Error::MissingObjectKey(_) => "invalid_object",
            Error::Keyring(_) => "keyring",
            Error::Task(_) => "task",
            Error::Serve { .. } => "serve",
        }
    }
}
