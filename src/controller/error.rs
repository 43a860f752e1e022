//! The controllers' errors: each maps to a stable short category, which is the metric
//! label, the event reason's source and what decides how long to back off.

use std::time::Duration;

use super::apply::ApplyError;
use crate::database::{DatabaseError, RandomError};
use crate::keys::KeyError;
use crate::storage::StorageError;

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
    /// A step of the erasure cannot complete yet.
    #[error("{0}")]
    Erasure(String),
    #[error("waiting for namespaces to be deleted: {0}")]
    NamespacesTerminating(String),
    /// Reading or writing another object (a Secret, a DatabaseServer) failed.
    #[error("{kind} {name}")]
    Object {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A database operation for a tenant failed.
    #[error("the database of tenant {tenant}: {source}")]
    Database {
        tenant: String,
        #[source]
        source: DatabaseError,
    },
    /// The tenant's DatabaseServer is missing or cannot be used yet.
    #[error("{0}")]
    DatabaseNotReady(String),
    /// A DatabaseServer cannot be used: its Secret, its address, its credentials.
    #[error("DatabaseServer {name}: {message} ({reason})")]
    DatabaseServer {
        name: String,
        reason: &'static str,
        message: String,
    },
    /// A DatabaseServer being deleted still has tenants; not a failure.
    #[error("DatabaseServer {name}: {message}")]
    ServerInUse { name: String, message: String },
    /// The credentials Secret's name is taken by an object that is not Landlord's.
    #[error("{0}")]
    CredentialsSecretTaken(String),
    /// The credentials Secret's name is taken by a Secret an earlier Tenant of the same
    /// name retained.
    #[error("{0}")]
    CredentialsSecretRetained(String),
    /// A BackupStorage cannot be used: its Secret, its endpoint, its bucket.
    #[error("BackupStorage {name}: {source} ({})", source.reason())]
    Storage {
        name: String,
        #[source]
        source: StorageError,
    },
    /// No randomness for a password.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The tenant's key could not be created, read or destroyed.
    #[error("the key of tenant {tenant}: {source}")]
    Key {
        tenant: String,
        #[source]
        source: KeyError,
    },
}

/// The category of a failed API request.
pub(super) fn api_category(source: &kube::Error) -> &'static str {
    match source {
        kube::Error::Api(status) if status.code == 409 => "conflict",
        kube::Error::Api(status) if status.code == 403 => "forbidden",
        kube::Error::Api(status) if status.code == 422 => "invalid",
        _ => "api_error",
    }
}

/// An error and its causes, `: `-separated, for a condition message.
pub fn describe(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

impl Error {
    /// Whether this is progress to wait for (a deletion in its course), not a failure.
    pub fn is_progress(&self) -> bool {
        matches!(
            self,
            Error::NamespacesTerminating(_)
                | Error::ServerInUse { .. }
                | Error::Key {
                    source: KeyError::BeingDeleted { .. },
                    ..
                }
        )
    }

    /// The action after the `attempt`-th consecutive failed reconcile (1 for the first) of
    /// the `kind` object `name`: a requeue after `delay` (see [`Error::backoff`]), logged
    /// at info for progress and at warn, with the whole chain of causes, for failures.
    pub fn report(
        &self,
        kind: &str,
        name: &str,
        attempt: u32,
        delay: Duration,
    ) -> kube::runtime::controller::Action {
        if self.is_progress() {
            tracing::info!(kind, name, error = %describe(self), "waiting");
        } else {
            tracing::warn!(
                kind,
                name,
                category = self.category(),
                attempt,
                retry_in = ?delay,
                error = %describe(self),
                "reconcile failed"
            );
        }
        kube::runtime::controller::Action::requeue(delay)
    }

    /// Stable short category.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Apply(e) => e.category(),
            Error::Tenant { source, .. } | Error::Object { source, .. } => api_category(source),
            Error::CacheClosed => "stopping",
            Error::NamespacesTerminating(_) => "namespaces_terminating",
            Error::Erasure(_) => "erasure_waiting",
            Error::Database { source, .. } => source.category(),
            Error::DatabaseNotReady(_) => "database_not_ready",
            Error::DatabaseServer { .. } => "database_server_unusable",
            Error::ServerInUse { .. } => "server_in_use",
            Error::CredentialsSecretTaken(_) => "secret_taken",
            Error::CredentialsSecretRetained(_) => "secret_retained",
            Error::Random(_) => "random_failed",
            Error::Storage { source, .. } => source.category(),
            Error::Key { source, .. } => source.category(),
        }
    }

    /// The first wait after a failure of this category: a conflict resolves at once with
    /// fresh data, a missing permission or an invalid object needs a human.
    fn base_backoff(&self) -> Duration {
        match self.category() {
            "conflict" => Duration::from_millis(500),
            "namespaces_terminating"
            | "server_in_use"
            | "key_being_deleted"
            | "erasure_waiting" => Duration::from_secs(2),
            // A server that is down, refuses the credentials or is not set up yet: look
            // again soon, but not in a tight loop.
            "database_unreachable"
            | "database_auth_failed"
            | "database_tls_failed"
            | "database_server_error"
            | "database_not_ready"
            | "database_not_provisioned"
            | "database_server_unusable" => Duration::from_secs(10),
            // Storage that needs a change of its spec or bucket by a human.
            "storage_secret_forbidden"
            | "storage_invalid"
            | "storage_ca_invalid"
            | "storage_object_lock_not_enabled" => Duration::from_secs(60),
            // Storage that may come back, or a Secret that may be created any moment.
            category if category.starts_with("storage_") => Duration::from_secs(10),
            "api_error" | "stopping" => Duration::from_secs(1),
            // Someone else's object in the way, retained data waiting for the opt-in, or a
            // server that asks for the password in clear: a human must act. The opt-in (a
            // Tenant annotation) triggers a look at once; other fixes are seen within a
            // minute.
            "forbidden"
            | "invalid"
            | "database_conflict"
            | "database_retained"
            | "database_insecure_auth"
            | "secret_taken"
            | "secret_retained"
            | "key_tenant_invalid"
            | "key_forbidden"
            | "key_invalid"
            | "key_conflict" => Duration::from_secs(60),
            // The API answering badly (5xx, timeouts) while creating or reading a key.
            "key_api_error" | "key_missing" => Duration::from_secs(5),
            _ => Duration::from_secs(15),
        }
    }

    /// How long to wait before the `attempt`-th retry (1 for the first): the category's
    /// base, doubled with each consecutive failure up to [`MAX_BACKOFF`], with ±20 %
    /// jitter so that many tenants failing together (a database server restarting) do
    /// not retry in lockstep. Progress (a deletion in its course) is looked at again at
    /// the base interval, without growth.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let base = self.base_backoff();
        let grown = if self.is_progress() {
            base
        } else {
            let doublings = attempt.saturating_sub(1).min(16);
            base.saturating_mul(1 << doublings)
                .min(MAX_BACKOFF.max(base))
        };
        jitter(grown)
    }
}

/// The longest wait between two retries of one object.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// `delay` scaled by a random factor in [0.8, 1.2).
fn jitter(delay: Duration) -> Duration {
    let mut byte = [0u8; 2];
    // Without randomness the delay is used as is: still bounded, only not spread.
    if getrandom::fill(&mut byte).is_err() {
        return delay;
    }
    let unit = f64::from(u16::from_le_bytes(byte)) / f64::from(u16::MAX);
    delay.mul_f64(0.8 + 0.4 * unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conflict() -> Error {
        Error::Tenant {
            name: "acme".into(),
            source: kube::Error::Api(
                kube::core::Status::failure("conflict", "Conflict")
                    .with_code(409)
                    .boxed(),
            ),
        }
    }

    fn within(d: Duration, nominal: Duration) -> bool {
        d >= nominal.mul_f64(0.8) && d <= nominal.mul_f64(1.2)
    }

    #[test]
    fn backoff_doubles_per_attempt_up_to_the_cap() {
        let e = conflict();
        assert_eq!(e.category(), "conflict");
        for (attempt, nominal_ms) in [(1, 500), (2, 1000), (3, 2000), (4, 4000)] {
            let d = e.backoff(attempt);
            assert!(
                within(d, Duration::from_millis(nominal_ms)),
                "attempt {attempt}: {d:?}"
            );
        }
        let late = e.backoff(40);
        assert!(within(late, MAX_BACKOFF), "{late:?}");
    }

    #[test]
    fn progress_does_not_grow() {
        let e = Error::NamespacesTerminating("tenant-acme".into());
        assert!(within(e.backoff(10), Duration::from_secs(2)));
    }

    #[test]
    fn jitter_spreads_retries() {
        let e = conflict();
        let delays: std::collections::BTreeSet<Duration> = (0..20).map(|_| e.backoff(3)).collect();
        assert!(delays.len() > 1, "20 draws gave one delay: {delays:?}");
    }

    #[test]
    fn the_log_carries_every_cause() {
        let e = conflict();
        let text = describe(&e);
        assert!(text.starts_with("updating the Tenant acme: "), "{text}");
        assert!(text.contains("conflict"), "{text}");
    }
}
