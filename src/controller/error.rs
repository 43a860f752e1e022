//! The controllers' errors: each maps to a stable short category, which is the metric
//! label, the event reason's source and what decides how long to back off.

use std::time::Duration;

use super::apply::ApplyError;

/// A reconcile failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing an object failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Updating the Tenant (finalizer, status) failed.
    #[error("updating the Tenant {name}")]
    Tenant {
        name: String,
        #[source]
        source: kube::Error,
    },
    /// The caches stopped before they were filled (the operator is stopping).
    #[error("the caches closed before their initial list")]
    CacheClosed,
    /// A tenant namespace is still being deleted; not a failure, but worth a quick look.
    #[error("waiting for namespaces to be deleted: {0}")]
    NamespacesTerminating(String),
}

impl Error {
    /// Stable short category.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Apply(e) => e.category(),
            Error::Tenant { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => "conflict",
                kube::Error::Api(status) if status.code == 403 => "forbidden",
                _ => "api_error",
            },
            Error::CacheClosed => "stopping",
            Error::NamespacesTerminating(_) => "namespaces_terminating",
        }
    }

    /// How long to wait before trying again, by category: a conflict resolves at once
    /// with fresh data, a missing permission or an invalid object needs a human.
    pub fn backoff(&self) -> Duration {
        match self.category() {
            "conflict" => Duration::from_millis(500),
            "namespaces_terminating" => Duration::from_secs(2),
            "api_error" | "stopping" => Duration::from_secs(5),
            "forbidden" | "invalid" => Duration::from_secs(60),
            _ => Duration::from_secs(15),
        }
    }
}
