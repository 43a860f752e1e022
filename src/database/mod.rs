//! PostgreSQL provisioning: a database and a role per tenant on shared servers.
//!
//! - [`identifiers`]: tenant names to database and role names, and SQL quoting (pure).
//! - [`password`]: random passwords that stay out of logs.
//! - `auth`: the guard that refuses to send the administrative password in clear text or
//!   as MD5 to a server TLS has not verified.
//! - [`admin`]: the [`DatabaseAdmin`] trait the controllers call, and [`PostgresAdmin`],
//!   its implementation over `tokio-postgres` with a bounded pool and rustls TLS.
//!
//! Nothing in Landlord drops a database or a role except
//! [`DatabaseAdmin::drop_tenant`], and only the erasure workflow calls it.

pub mod admin;
mod auth;
mod error;
pub mod identifiers;
pub mod password;
mod pool;
mod tls;

pub use admin::{
    CatalogCheck, DatabaseAdmin, DropEvidence, DropOutcome, EnsureOutcome, LOCK_TIMEOUT, Owner,
    PostgresAdmin, RolePassword, STATEMENT_TIMEOUT, ServerConfig, TenantPresence,
};
pub use error::DatabaseError;
pub use identifiers::{
    InvalidIdentifier, TenantIdentifiers, quote_ident, quote_literal, tenant_identifier,
};
pub use password::{Password, RandomError};
pub use pool::AdminStats;
pub use tls::{TlsSetupError, certificates_only};
