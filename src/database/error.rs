//! What can go wrong talking to a database server, in categories a controller can act on.

use std::error::Error as StdError;

use thiserror::Error;
use tokio_postgres::error::SqlState;

use super::auth::InsecureAuthRequest;
use super::tls::TlsSetupError;

/// A failure of a database operation. Messages name the server and what to fix; they never
/// contain a password.
#[derive(Debug, Error)]
pub enum DatabaseError {
    /// The server could not be reached: refused, timed out, name not resolved, connection
    /// lost.
    #[error("cannot reach the database server {server}: {detail}")]
    Unreachable {
        /// `host:port`.
        server: String,
        /// What failed, from the client library and the operating system.
        detail: String,
    },
    /// The server refused the credentials (wrong password, no `pg_hba.conf` entry, no
    /// such role).
    #[error("the database server {server} refused the credentials of role {user:?}: {detail}")]
    AuthFailed {
        /// `host:port`.
        server: String,
        /// The role that tried to log in.
        user: String,
        /// The server's message.
        detail: String,
    },
    /// TLS could not be set up: the server does not offer TLS, its certificate is not
    /// signed by the CA or does not name the host, or the CA is not valid PEM.
    #[error("TLS with the database server {server} failed: {detail}")]
    TlsFailed {
        /// `host:port`.
        server: String,
        /// What failed.
        detail: String,
    },
    /// The server answered with an error (permissions, limits, a statement that failed).
    #[error("the database server {server} reported an error{}: {detail}", code.as_ref().map(|c| format!(" (SQLSTATE {c})")).unwrap_or_default())]
    ServerError {
        /// `host:port`.
        server: String,
        /// The SQLSTATE, when the server sent one.
        code: Option<String>,
        /// The server's message.
        detail: String,
    },
    /// A database or role with the tenant's name exists but is not one Landlord created
    /// for that tenant (or has been given privileges only a superuser can take away).
    /// Landlord neither adopts nor drops it.
    #[error("refusing to use {object} on the database server {server}: {detail}")]
    Conflict {
        /// `host:port`.
        server: String,
        /// E.g. `role "tenant_acme"`.
        object: String,
        /// Why it is not Landlord's.
        detail: String,
    },
    /// A role or database with the tenant's name records another Tenant's UID: an earlier
    /// Tenant of the same name left it (`deletionPolicy: Retain`). Landlord does not touch
    /// it unless the Tenant opts in to adopt exactly that UID.
    #[error(
        "{object} on the database server {server} was retained by an earlier Tenant with UID {uid}; Landlord does not touch it: to take it over, annotate this Tenant landlord.dev/adopt-retained-from={uid}, or drop it"
    )]
    Retained {
        /// `host:port`.
        server: String,
        /// E.g. `role "tenant_acme"`.
        object: String,
        /// The UID its comment records.
        uid: String,
    },
    /// The server asked for the password in clear text or as MD5 where Landlord only sends
    /// it with SCRAM (TLS mode `disable` or `require`): the password was not sent.
    #[error(
        "the database server {server} asked for the password of role {user:?} with {method}; Landlord sends it only with SCRAM-SHA-256 unless TLS verifies the server (tls.mode verify-full): configure scram-sha-256 in the server's pg_hba.conf"
    )]
    InsecureAuth {
        /// `host:port`.
        server: String,
        /// The role that tried to log in.
        user: String,
        /// `cleartext password` or `MD5`.
        method: String,
    },
    /// The tenant's role does not exist (yet).
    #[error("{object} does not exist on the database server {server}")]
    NotProvisioned {
        /// `host:port`.
        server: String,
        /// E.g. `role "tenant_acme"`.
        object: String,
    },
}

impl DatabaseError {
    /// CamelCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            DatabaseError::Unreachable { .. } => "Unreachable",
            DatabaseError::AuthFailed { .. } => "AuthFailed",
            DatabaseError::TlsFailed { .. } => "TLSFailed",
            DatabaseError::ServerError { .. } => "ServerError",
            DatabaseError::Conflict { .. } => "NameConflict",
            DatabaseError::Retained { .. } => "RetainedDataExists",
            DatabaseError::InsecureAuth { .. } => "InsecureAuthentication",
            DatabaseError::NotProvisioned { .. } => "NotProvisioned",
        }
    }

    /// snake_case category for metric labels and back-off decisions.
    pub fn category(&self) -> &'static str {
        match self {
            DatabaseError::Unreachable { .. } => "database_unreachable",
            DatabaseError::AuthFailed { .. } => "database_auth_failed",
            DatabaseError::TlsFailed { .. } => "database_tls_failed",
            DatabaseError::ServerError { .. } => "database_server_error",
            DatabaseError::Conflict { .. } => "database_conflict",
            DatabaseError::Retained { .. } => "database_retained",
            DatabaseError::InsecureAuth { .. } => "database_insecure_auth",
            DatabaseError::NotProvisioned { .. } => "database_not_provisioned",
        }
    }

    /// Classifies an error from `tokio-postgres`. `user` is the role that was logging in;
    /// every string in `secrets` is replaced by `[redacted]` in the message.
    pub(crate) fn from_postgres(
        err: &tokio_postgres::Error,
        server: &str,
        user: &str,
        secrets: &[&str],
    ) -> Self {
        let server = server.to_owned();
        if let Some(refused) = insecure_request(err) {
            return DatabaseError::InsecureAuth {
                server,
                user: user.to_owned(),
                method: refused.method.to_owned(),
            };
        }
        let detail = redact(&describe(err), secrets);
        if let Some(db) = err.as_db_error() {
            let code = db.code();
            return if is_unavailable(code.code()) {
                DatabaseError::Unreachable { server, detail }
            } else if code == &SqlState::INVALID_PASSWORD
                || code == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                DatabaseError::AuthFailed {
                    server,
                    user: user.to_owned(),
                    detail,
                }
            } else {
                DatabaseError::ServerError {
                    server,
                    code: Some(code.code().to_owned()),
                    detail,
                }
            };
        }
        // tokio-postgres exposes its error kinds only through their fixed messages.
        let kind = err.to_string();
        if is_tls_failure(err) || kind == "error performing TLS handshake" {
            DatabaseError::TlsFailed { server, detail }
        } else if kind == "authentication error" {
            DatabaseError::AuthFailed {
                server,
                user: user.to_owned(),
                detail,
            }
        } else if matches!(
            kind.as_str(),
            "error connecting to server"
                | "timeout waiting for server"
                | "error communicating with the server"
                | "connection closed"
        ) {
            DatabaseError::Unreachable { server, detail }
        } else {
            DatabaseError::ServerError {
                server,
                code: None,
                detail,
            }
        }
    }
}

/// Whether a SQLSTATE says the server is not there to serve: shutting down, crashed or
/// starting up (class 57P: `admin_shutdown`, `crash_shutdown`, `cannot_connect_now`), or
/// the connection failed (class 08). Not a failed statement: unreachable, for now.
fn is_unavailable(code: &str) -> bool {
    code.starts_with("57P") || code.starts_with("08")
}

/// The error and its chain of causes, `: `-separated.
fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = match cause.downcast_ref::<std::io::Error>() {
            // io::Error::source skips the wrapped error; look at it directly.
            Some(io) => io.get_ref().and_then(|inner| inner.source()),
            None => cause.source(),
        };
    }
    out
}

/// The guard's refusal of a cleartext or MD5 password request, if it is among the causes.
fn insecure_request(err: &(dyn StdError + 'static)) -> Option<InsecureAuthRequest> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(cause) = next {
        if let Some(refused) = cause.downcast_ref::<InsecureAuthRequest>() {
            return Some(*refused);
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(refused) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<InsecureAuthRequest>())
        {
            return Some(*refused);
        }
        next = cause.source();
    }
    None
}

/// Whether a rustls error (or our TLS set-up error) is among the causes.
fn is_tls_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut next: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(cause) = next {
        if cause.is::<rustls::Error>() || cause.is::<TlsSetupError>() {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && (inner.is::<rustls::Error>() || inner.is::<TlsSetupError>())
        {
            return true;
        }
        next = cause.source();
    }
    false
}

/// Replaces every non-empty secret in `text` with `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| !s.is_empty())
        .fold(text.to_owned(), |acc, secret| {
            acc.replace(secret, "[redacted]")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_shutting_down_or_starting_is_unreachable_not_a_failed_statement() {
        for code in ["57P01", "57P02", "57P03", "08006", "08001"] {
            assert!(is_unavailable(code), "{code}");
        }
        for code in ["57014", "42501", "23505", "53300"] {
            assert!(!is_unavailable(code), "{code}");
        }
    }

    #[test]
    fn reasons_and_categories_are_stable() {
        let server = "db:5432".to_owned();
        let cases = [
            (
                DatabaseError::Unreachable {
                    server: server.clone(),
                    detail: String::new(),
                },
                "Unreachable",
                "database_unreachable",
            ),
            (
                DatabaseError::AuthFailed {
                    server: server.clone(),
                    user: "landlord".into(),
                    detail: String::new(),
                },
                "AuthFailed",
                "database_auth_failed",
            ),
            (
                DatabaseError::TlsFailed {
                    server: server.clone(),
                    detail: String::new(),
                },
                "TLSFailed",
                "database_tls_failed",
            ),
            (
                DatabaseError::ServerError {
                    server,
                    code: Some("42501".into()),
                    detail: "permission denied".into(),
                },
                "ServerError",
                "database_server_error",
            ),
        ];
        for (err, reason, category) in cases {
            assert_eq!(err.reason(), reason);
            assert_eq!(err.category(), category);
        }
    }

    #[test]
    fn server_errors_show_their_sqlstate() {
        let err = DatabaseError::ServerError {
            server: "db:5432".into(),
            code: Some("42501".into()),
            detail: "permission denied".into(),
        };
        assert_eq!(
            err.to_string(),
            "the database server db:5432 reported an error (SQLSTATE 42501): permission denied"
        );
    }

    #[test]
    fn redaction_removes_every_secret() {
        assert_eq!(
            redact("a s3cr3t b s3cr3t", &["s3cr3t", ""]),
            "a [redacted] b [redacted]"
        );
    }
}
