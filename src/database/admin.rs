//! The administrative operations Landlord performs on a PostgreSQL server, behind the
//! [`DatabaseAdmin`] trait, and their implementation over `tokio-postgres`.
//!
//! # Privileges
//!
//! The administrative role needs `LOGIN CREATEDB CREATEROLE` and `INHERIT` (the default),
//! not `SUPERUSER`. When it creates a tenant role it grants that role to itself
//! (`GRANT tenant TO CURRENT_USER`): PostgreSQL requires membership to create a database
//! owned by the role, to connect to it once `CONNECT` is revoked from `PUBLIC`, to
//! revoke `CREATE` on its `public` schema, and to drop it. On PostgreSQL 15 a
//! `CREATEROLE` role can already grant itself any non-superuser role, so this adds no
//! power it did not have.
//!
//! # Ownership
//!
//! Ownership is by the Tenant's UID ([`crate::isolation::ownership`]). The role and the
//! database Landlord creates carry the comment
//! `landlord.dev/tenant=<name> landlord.dev/tenant-uid=<uid>`: the role's is set in the
//! same transaction as `CREATE ROLE` (and its password); `CREATE DATABASE` cannot run in a
//! transaction, so a database created with the tenant's role as owner and no comment yet
//! is the unfinished creation of that role's Tenant, and is completed. Every operation
//! first decides whose the role and database are ([`Owner`]):
//!
//! - recorded with this Tenant's UID: used;
//! - recorded with another UID (an earlier Tenant of the same name, retained): never
//!   touched ([`DatabaseError::Retained`]) unless the Tenant's opt-in names exactly that
//!   UID, in which case the comments are re-recorded with the new UID (adoption);
//! - no Landlord UID recorded: not Landlord's, never adopted, changed or dropped
//!   ([`DatabaseError::Conflict`]).
//!
//! # Dropping
//!
//! [`DatabaseAdmin::drop_tenant`] is the only code in Landlord that drops a database or a
//! role, and only the erasure workflow calls it. [`DatabaseAdmin::verify_dropped`]
//! returns the catalog queries it ran and what they found, as evidence for the erasure
//! receipt.
//!
//! # Timeouts
//!
//! Every administrative session runs with `statement_timeout` and `lock_timeout`
//! ([`STATEMENT_TIMEOUT`], [`LOCK_TIMEOUT`]), so a statement or an advisory lock that
//! another session holds cannot block a reconcile forever; the client also gives up on a
//! server that stops answering.
//!
//! # Passwords
//!
//! A role is always created with its password, in the same transaction. Passwords never travel to the server in clear text: Landlord sends the SCRAM-SHA-256
//! verifier (as `libpq`'s `PQencryptPasswordConn` does), so they cannot appear in the
//! server's logs or statistics. The verifier is still written as an escaped literal
//! (`ALTER ROLE ... PASSWORD` takes no bind parameters), and redacted from errors.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::error::DatabaseError;
use super::identifiers::{TenantIdentifiers, quote_ident, quote_literal};
use super::password::Password;
use super::pool::{AdminStats, Pool, PooledClient};
use super::tls;
use crate::api::TlsMode;
use crate::isolation::ownership::{self, Claim, TENANT_UID_ANNOTATION};

/// How to reach a server as its administrative role.
#[derive(Clone)]
pub struct ServerConfig {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Administrative role.
    pub user: String,
    /// Its password.
    pub password: Password,
    /// Database the administrative connections open.
    pub database: String,
    /// TLS mode.
    pub tls: TlsMode,
    /// CA certificates (PEM) for `verify-full`; the system roots when `None`.
    pub ca_pem: Option<Vec<u8>>,
    /// Most connections open to the server at once (at least 1).
    pub max_connections: usize,
    /// How long to wait for a TCP connection.
    pub connect_timeout: Duration,
    /// Log in only with SCRAM channel binding (`SCRAM-SHA-256-PLUS`, TLS only). By
    /// default binding is offered over TLS and used when the server supports it.
    pub require_channel_binding: bool,
}

impl ServerConfig {
    /// Defaults matching a `DatabaseServer`: database `postgres`, `verify-full` with the
    /// system roots, 5 connections, a 10 s connect timeout.
    pub fn new(host: &str, port: u16, user: &str, password: Password) -> Self {
        ServerConfig {
            host: host.to_owned(),
            port,
            user: user.to_owned(),
            password,
            database: "postgres".to_owned(),
            tls: TlsMode::VerifyFull,
            ca_pem: None,
            max_connections: 5,
            connect_timeout: Duration::from_secs(10),
            require_channel_binding: false,
        }
    }

    /// `host:port`, as errors name the server.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field(
                "ca_pem",
                &self
                    .ca_pem
                    .as_ref()
                    .map(|pem| format!("{} bytes", pem.len())),
            )
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .field("require_channel_binding", &self.require_channel_binding)
            .finish()
    }
}

/// Longest any administrative statement may run (`statement_timeout`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest any administrative statement waits for a lock, advisory locks included
/// (`lock_timeout`).
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Whose role and database an operation is for: the Tenant's UID, and the UID of the
/// earlier Tenant whose retained role and database it may adopt (its
/// `landlord.dev/adopt-retained-from` annotation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// The Tenant's UID, recorded in the comments.
    pub uid: String,
    /// The retained UID the Tenant opted in to adopt.
    pub adopt_from: Option<String>,
    /// Whether the comment of releases before UIDs were recorded
    /// (`landlord.dev/tenant=<name>` alone) counts as this Tenant's, and is re-recorded
    /// with its UID. Set only when something else proves continuity: the Tenant's own
    /// credentials Secret records its UID. A new Tenant reusing a name has no such
    /// Secret, so an old role stays `NameConflict` for it.
    pub legacy_marker: bool,
}

impl Owner {
    /// The Tenant with `uid`, adopting nothing.
    pub fn new(uid: impl Into<String>) -> Self {
        Owner {
            uid: uid.into(),
            adopt_from: None,
            legacy_marker: false,
        }
    }

    /// The Tenant with `uid`, adopting what the Tenant with `from` retained.
    pub fn adopting(uid: impl Into<String>, from: Option<&str>) -> Self {
        Owner {
            uid: uid.into(),
            adopt_from: from.map(str::to_owned),
            legacy_marker: false,
        }
    }

    fn claim(&self, tenant: &TenantIdentifiers, comment: Option<&str>) -> Claim {
        if self.legacy_marker && comment == Some(legacy_marker(tenant.tenant()).as_str()) {
            return Claim::Ours;
        }
        ownership::claim(
            &self.uid,
            self.adopt_from.as_deref(),
            comment.and_then(recorded_uid),
        )
    }
}

/// The password [`DatabaseAdmin::ensure_tenant`] gives the role.
#[derive(Clone, Copy, Debug)]
pub enum RolePassword<'a> {
    /// A new password (first provisioning, rotation, lost Secret): set on the role
    /// whether it is created or exists.
    Set(&'a Password),
    /// The password the credentials Secret holds: given to the role only if it has to
    /// be created (it was dropped behind Landlord's back), in the same transaction.
    OnCreate(&'a Password),
}

impl<'a> RolePassword<'a> {
    fn password(self) -> &'a Password {
        match self {
            RolePassword::Set(p) | RolePassword::OnCreate(p) => p,
        }
    }
}

/// What [`DatabaseAdmin::ensure_tenant`] changed; all `false` when everything was in place.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnsureOutcome {
    /// The role was created.
    pub role_created: bool,
    /// Attributes of an existing role (LOGIN, CREATEDB, CREATEROLE, CONNECTION LIMIT) or
    /// the administrator's membership in it were corrected.
    pub role_updated: bool,
    /// The password was set.
    pub password_set: bool,
    /// The database was created.
    pub database_created: bool,
    /// The database's privileges were (re)set: CONNECT and TEMPORARY revoked from PUBLIC
    /// and anyone else, CREATE on schema public revoked from PUBLIC.
    pub database_secured: bool,
    /// The role and database were retained by the earlier Tenant with this UID and are
    /// now recorded with the new Tenant's UID.
    pub adopted_from: Option<String>,
}

impl EnsureOutcome {
    /// Whether anything changed on the server.
    pub fn changed(&self) -> bool {
        self.role_created
            || self.role_updated
            || self.password_set
            || self.database_created
            || self.database_secured
            || self.adopted_from.is_some()
    }
}

/// Whether a tenant's role and database exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantPresence {
    /// The role exists.
    pub role: bool,
    /// The database exists.
    pub database: bool,
}

/// What [`DatabaseAdmin::drop_tenant`] dropped; `false` for what was already gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DropOutcome {
    /// The database was dropped, its connections terminated.
    pub database_dropped: bool,
    /// The role was dropped.
    pub role_dropped: bool,
    /// Other databases the tenant's role owned (restores into a new database, an
    /// interrupted drill's scratch database), dropped with it.
    pub also_dropped: Vec<String>,
    /// Objects with the tenant's names that are not this Tenant's (retained by another
    /// Tenant, or not Landlord's) and were left in place, e.g. `role "tenant_acme"
    /// (retained by the Tenant with UID ...)`: `(catalog, name, why)`.
    pub kept: Vec<(String, String, String)>,
}

/// Evidence, from the server's own catalog, that a tenant's database and role are gone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DropEvidence {
    /// `host:port` of the server asked.
    pub server: String,
    /// The server's version (`server_version`).
    pub server_version: String,
    /// The server's clock when the catalog was read (`now()`, ISO 8601).
    pub checked_at: String,
    /// One entry per catalog query.
    pub checks: Vec<CatalogCheck>,
}

impl DropEvidence {
    /// Whether every query found nothing.
    pub fn is_dropped(&self) -> bool {
        self.checks.iter().all(|check| check.found.is_empty())
    }
}

/// One catalog query and what it returned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogCheck {
    /// The catalog read, e.g. `pg_database`.
    pub catalog: String,
    /// The query, with `$1` for the name.
    pub query: String,
    /// The name looked for.
    pub name: String,
    /// The matching names found: empty when the object is gone.
    pub found: Vec<String>,
}

/// The operations Landlord performs on a database server. Object-safe: controllers hold an
/// `Arc<dyn DatabaseAdmin>`.
#[async_trait]
pub trait DatabaseAdmin: Send + Sync {
    /// The server's version, e.g. `15.8 (Debian 15.8-0+deb12u1)`.
    async fn server_version(&self) -> Result<String, DatabaseError>;

    /// Creates or repairs the tenant's role and database: a LOGIN role with no other
    /// attributes and `connection_limit`, a database it owns, CONNECT and TEMPORARY
    /// revoked from PUBLIC, CONNECT granted to the role only, CREATE on schema public
    /// revoked from PUBLIC, both recorded with `owner`'s UID. A role is created with its
    /// password in one transaction. Refuses (touching nothing) a role or database that
    /// records another UID, unless `owner` adopts exactly that UID, or none. Idempotent
    /// and safe to run concurrently for the same tenant (from several replicas too: it
    /// takes an advisory lock per tenant).
    async fn ensure_tenant(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        connection_limit: i32,
        password: RolePassword<'_>,
    ) -> Result<EnsureOutcome, DatabaseError>;

    /// Whether `owner` may provision the tenant's names: `Ok` when the role and database
    /// are absent, `owner`'s, or to be adopted by it; the error
    /// [`ensure_tenant`](Self::ensure_tenant) would return otherwise. Reads only.
    async fn check_owner(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
    ) -> Result<(), DatabaseError>;

    /// Sets the tenant role's password (rotation); the old one stops working at once for
    /// new connections. Only on a role recorded with `owner`'s UID.
    async fn set_password(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        password: &Password,
    ) -> Result<(), DatabaseError>;

    /// Whether the tenant's role and database exist.
    async fn tenant_exists(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<TenantPresence, DatabaseError>;

    /// Erasure: drops the tenant's database (`WITH (FORCE)`, terminating its
    /// connections), then what the role owns in the administrative database, then the role.
    /// Idempotent: what is already gone is skipped. Only what records `owner`'s UID is
    /// dropped; anything else with the tenant's names is left in place and listed in
    /// [`DropOutcome::kept`].
    async fn drop_tenant(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
    ) -> Result<DropOutcome, DatabaseError>;

    /// Reads `pg_database` and `pg_roles` for the tenant's names and returns the queries
    /// and their results.
    async fn verify_dropped(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<DropEvidence, DatabaseError>;

    /// Creates `database` for a restore, owned by the tenant's role and reachable by it
    /// only (CONNECT and TEMPORARY revoked from PUBLIC), recording `marker` as its
    /// comment. A database of that name that records the same marker (an earlier attempt
    /// of the same restore) is dropped and created again; any other is refused with
    /// [`DatabaseError::Conflict`], untouched.
    async fn create_restore_target(
        &self,
        tenant: &TenantIdentifiers,
        database: &str,
        marker: &str,
    ) -> Result<(), DatabaseError>;

    /// Drops `database` (`WITH (FORCE)`) if it records `marker`; returns whether it did.
    async fn drop_restore_target(
        &self,
        tenant: &TenantIdentifiers,
        database: &str,
        marker: &str,
    ) -> Result<bool, DatabaseError>;

    /// Terminates every session on the tenant's own database (before an in-place
    /// restore); returns how many.
    async fn terminate_tenant_sessions(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<u64, DatabaseError>;

    /// Counts the rows of each of `tables` (schema, name) in `database`; `None` for a
    /// table that does not exist there. For restore drills, on a scratch database.
    async fn count_rows(
        &self,
        database: &str,
        tables: &[(String, String)],
    ) -> Result<Vec<Option<i64>>, DatabaseError>;

    /// Connection and statement counters since this value was created.
    fn stats(&self) -> AdminStats;
}

/// [`DatabaseAdmin`] over `tokio-postgres`, with a bounded pool of connections.
pub struct PostgresAdmin {
    pool: Pool,
}

impl fmt::Debug for PostgresAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresAdmin")
            .field("server", &self.pool.server())
            .finish_non_exhaustive()
    }
}

/// The comment that records whose a role or database is: the UID first, so that nothing
/// in the name can pose as one.
fn marker(tenant: &str, uid: &str) -> String {
    format!("{TENANT_UID_ANNOTATION}={uid} landlord.dev/tenant={tenant}")
}

/// The comment of releases before UIDs were recorded.
fn legacy_marker(tenant: &str) -> String {
    format!("landlord.dev/tenant={tenant}")
}

/// The Tenant UID a role's or database's comment records, if any: only at its start.
fn recorded_uid(comment: &str) -> Option<&str> {
    comment
        .strip_prefix(TENANT_UID_ANNOTATION)?
        .strip_prefix('=')?
        .split_whitespace()
        .next()
}

const LOCK: &str = "SELECT pg_catalog.pg_advisory_lock(pg_catalog.hashtextextended($1, 0))";
const UNLOCK: &str = "SELECT pg_catalog.pg_advisory_unlock(pg_catalog.hashtextextended($1, 0))";

const ROLE: &str = "SELECT r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, \
     r.rolreplication, r.rolbypassrls, r.rolconnlimit, \
     pg_catalog.shobj_description(r.oid, 'pg_authid'), \
     pg_catalog.pg_has_role(current_user, r.oid, 'USAGE') \
     FROM pg_catalog.pg_roles r WHERE r.rolname = $1";

/// Owner, comment, whether the ACL is the default one (PUBLIC may connect), and the
/// grantees other than the owner (`PUBLIC` for the public pseudo-role).
const DATABASE: &str = "SELECT pg_catalog.pg_get_userbyid(d.datdba), \
     pg_catalog.shobj_description(d.oid, 'pg_database'), d.datacl IS NULL, \
     ARRAY(SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                                ELSE pg_catalog.pg_get_userbyid(a.grantee) END \
           FROM pg_catalog.aclexplode(d.datacl) a WHERE a.grantee <> d.datdba) \
     FROM pg_catalog.pg_database d WHERE d.datname = $1";

const VERIFY_DATABASE: &str = "SELECT datname::text FROM pg_catalog.pg_database WHERE datname = $1";
const VERIFY_ROLE: &str = "SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname = $1";

struct RoleRow {
    can_login: bool,
    superuser: bool,
    create_db: bool,
    create_role: bool,
    replication: bool,
    bypass_rls: bool,
    connection_limit: i32,
    comment: Option<String>,
    admin_inherits: bool,
}

struct DatabaseRow {
    owner: String,
    comment: Option<String>,
    default_acl: bool,
    other_grantees: Vec<String>,
}

impl PostgresAdmin {
    /// Prepares the pool; connections are opened on first use. Fails only when the TLS
    /// settings are unusable (a CA that is not PEM).
    pub fn new(config: &ServerConfig) -> Result<Self, DatabaseError> {
        let server = config.address();
        let tls = tls::client_config(config.tls, config.ca_pem.as_deref()).map_err(|e| {
            DatabaseError::TlsFailed {
                server: server.clone(),
                detail: e.to_string(),
            }
        })?;
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.host)
            .port(config.port)
            .user(&config.user)
            .password(config.password.expose())
            .dbname(&config.database)
            .application_name("landlord")
            .connect_timeout(config.connect_timeout)
            .keepalives(true)
            .options(format!(
                "-c statement_timeout={} -c lock_timeout={}",
                STATEMENT_TIMEOUT.as_millis(),
                LOCK_TIMEOUT.as_millis()
            ))
            .channel_binding(if config.require_channel_binding {
                tokio_postgres::config::ChannelBinding::Require
            } else {
                tokio_postgres::config::ChannelBinding::Prefer
            })
            .ssl_mode(if tls.is_some() {
                tokio_postgres::config::SslMode::Require
            } else {
                tokio_postgres::config::SslMode::Disable
            });
        Ok(PostgresAdmin {
            pool: Pool::new(
                server,
                config.user.clone(),
                config.password.expose().to_owned(),
                pg,
                tls,
                config.max_connections,
            ),
        })
    }

    fn server(&self) -> String {
        self.pool.server().to_owned()
    }

    fn conflict(&self, object: String, detail: impl Into<String>) -> DatabaseError {
        DatabaseError::Conflict {
            server: self.server(),
            object,
            detail: detail.into(),
        }
    }

    /// Takes the tenant's advisory lock on a fresh pooled connection.
    async fn locked(&self, tenant: &TenantIdentifiers) -> Result<PooledClient<'_>, DatabaseError> {
        let conn = self.pool.get().await?;
        let key = lock_key(tenant);
        match conn.query(LOCK, &[&key]).await {
            Ok(_) => Ok(conn),
            Err(e) => {
                conn.discard();
                Err(e)
            }
        }
    }

    /// Releases the lock and returns the connection; on any error the connection is
    /// closed instead, which releases the lock too.
    async fn unlock<T>(
        conn: PooledClient<'_>,
        tenant: &TenantIdentifiers,
        result: Result<T, DatabaseError>,
    ) -> Result<T, DatabaseError> {
        if result.is_err() || conn.query(UNLOCK, &[&lock_key(tenant)]).await.is_err() {
            conn.discard();
        }
        result
    }

    async fn role(conn: &PooledClient<'_>, role: &str) -> Result<Option<RoleRow>, DatabaseError> {
        let Some(row) = conn.query_opt(ROLE, &[&role]).await? else {
            return Ok(None);
        };
        Ok(Some(RoleRow {
            can_login: conn.column(&row, 0)?,
            superuser: conn.column(&row, 1)?,
            create_db: conn.column(&row, 2)?,
            create_role: conn.column(&row, 3)?,
            replication: conn.column(&row, 4)?,
            bypass_rls: conn.column(&row, 5)?,
            connection_limit: conn.column(&row, 6)?,
            comment: conn.column(&row, 7)?,
            admin_inherits: conn.column(&row, 8)?,
        }))
    }

    async fn database(
        conn: &PooledClient<'_>,
        database: &str,
    ) -> Result<Option<DatabaseRow>, DatabaseError> {
        let Some(row) = conn.query_opt(DATABASE, &[&database]).await? else {
            return Ok(None);
        };
        Ok(Some(DatabaseRow {
            owner: conn.column(&row, 0)?,
            comment: conn.column(&row, 1)?,
            default_acl: conn.column(&row, 2)?,
            other_grantees: conn.column(&row, 3)?,
        }))
    }

    /// Whose the existing role is for `owner`: `Ok(Some(from))` when it is to be adopted
    /// from the retained Tenant `from`, `Ok(None)` when it is `owner`'s; an error when it
    /// must not be touched.
    fn check_role(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        row: &RoleRow,
    ) -> Result<Option<String>, DatabaseError> {
        let object = format!("role {}", quote_ident(tenant.role()));
        let adopt = self.claimed(object.clone(), owner.claim(tenant, row.comment.as_deref()))?;
        if row.superuser || row.replication || row.bypass_rls {
            return Err(self.conflict(
                object,
                "it has SUPERUSER, REPLICATION or BYPASSRLS, which only a superuser can remove",
            ));
        }
        Ok(adopt)
    }

    /// A claim as a decision: usable (`Some(from)` to adopt) or an error naming `object`.
    fn claimed(&self, object: String, claim: Claim) -> Result<Option<String>, DatabaseError> {
        match claim {
            Claim::Ours => Ok(None),
            Claim::Adopt { from } => Ok(Some(from)),
            Claim::Retained { uid } => Err(DatabaseError::Retained {
                server: self.server(),
                object,
                uid,
            }),
            Claim::Foreign => Err(self.conflict(
                object,
                "it exists but Landlord did not create it for any Tenant (its comment records no Tenant UID)",
            )),
        }
    }

    /// Checks that an existing database is owned by the tenant's role, and whose it is:
    /// as [`check_role`](Self::check_role). A database owned by the tenant's role without a
    /// comment is the unfinished creation of the role's Tenant (`CREATE DATABASE` cannot
    /// share the comment's transaction): it is the role's.
    fn check_database(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        role_adopted: Option<&str>,
        row: &DatabaseRow,
    ) -> Result<Option<String>, DatabaseError> {
        let object = format!("database {}", quote_ident(tenant.database()));
        if row.owner != tenant.role() {
            return Err(self.conflict(
                object,
                format!(
                    "it is owned by {:?}, not by the tenant's role {:?}",
                    row.owner,
                    tenant.role()
                ),
            ));
        }
        match row.comment.as_deref().and_then(recorded_uid) {
            None => Ok(role_adopted.map(str::to_owned)),
            Some(_) => self.claimed(object, owner.claim(tenant, row.comment.as_deref())),
        }
    }

    async fn ensure_role(
        &self,
        conn: &PooledClient<'_>,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        connection_limit: i32,
        password: RolePassword<'_>,
        outcome: &mut EnsureOutcome,
    ) -> Result<(), DatabaseError> {
        let role = quote_ident(tenant.role());
        let verifier = scram_verifier(password.password());
        let secrets = [password.password().expose(), verifier.as_str()];
        let comment = format!(
            "COMMENT ON ROLE {role} IS {}",
            quote_literal(&marker(tenant.tenant(), &owner.uid))
        );
        match Self::role(conn, tenant.role()).await? {
            None => {
                // One query string is one implicit transaction: the role never exists
                // without its password and UID.
                conn.execute_ddl(
                    &format!(
                        "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
                         NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT {connection_limit} \
                         PASSWORD {}; \
                         {comment}; \
                         GRANT {role} TO CURRENT_USER",
                        quote_literal(&verifier)
                    ),
                    &secrets,
                )
                .await?;
                outcome.role_created = true;
                outcome.password_set = true;
            }
            Some(row) => {
                let adopted = self.check_role(tenant, owner, &row)?;
                let mut changes = Vec::new();
                if !row.can_login {
                    changes.push("LOGIN".to_owned());
                }
                if row.create_db {
                    changes.push("NOCREATEDB".to_owned());
                }
                if row.create_role {
                    changes.push("NOCREATEROLE".to_owned());
                }
                if row.connection_limit != connection_limit {
                    changes.push(format!("CONNECTION LIMIT {connection_limit}"));
                }
                if let RolePassword::Set(_) = password {
                    changes.push(format!("PASSWORD {}", quote_literal(&verifier)));
                }
                let mut statements = Vec::new();
                if !changes.is_empty() {
                    statements.push(format!("ALTER ROLE {role} WITH {}", changes.join(" ")));
                }
                if !row.admin_inherits {
                    statements.push(format!("GRANT {role} TO CURRENT_USER"));
                }
                // Adopted, or recorded the way releases before UIDs did: record the UID.
                let recorded = row.comment.as_deref().and_then(recorded_uid);
                if adopted.is_some() || recorded != Some(owner.uid.as_str()) {
                    statements.push(comment);
                }
                if !statements.is_empty() {
                    conn.execute_ddl(
                        // One implicit transaction, as above.
                        &statements.join("; "),
                        &secrets,
                    )
                    .await?;
                }
                outcome.password_set = matches!(password, RolePassword::Set(_));
                outcome.role_updated =
                    changes.iter().any(|c| !c.starts_with("PASSWORD")) || !row.admin_inherits;
                if adopted.is_some() {
                    outcome.adopted_from = adopted;
                }
            }
        }
        Ok(())
    }

    /// Creates the database if needed and resets its privileges if they drifted. Returns
    /// whether the steps inside the database (and the comment that records the UID and
    /// marks it complete) are still to do.
    async fn ensure_database(
        &self,
        conn: &PooledClient<'_>,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        outcome: &mut EnsureOutcome,
    ) -> Result<bool, DatabaseError> {
        let database = quote_ident(tenant.database());
        let role = quote_ident(tenant.role());
        let row = match Self::database(conn, tenant.database()).await? {
            Some(row) => row,
            None => {
                conn.execute_ddl(
                    &format!("CREATE DATABASE {database} WITH OWNER {role} TEMPLATE template0"),
                    &[],
                )
                .await?;
                outcome.database_created = true;
                DatabaseRow {
                    owner: tenant.role().to_owned(),
                    comment: None,
                    default_acl: true,
                    other_grantees: Vec::new(),
                }
            }
        };
        let adopted = self.check_database(tenant, owner, outcome.adopted_from.as_deref(), &row)?;
        if adopted.is_some() && outcome.adopted_from.is_none() {
            outcome.adopted_from = adopted;
        }
        let complete = row.comment.as_deref().and_then(recorded_uid) == Some(owner.uid.as_str());
        if !complete || row.default_acl || !row.other_grantees.is_empty() {
            conn.execute_ddl(
                &format!("REVOKE CONNECT, TEMPORARY ON DATABASE {database} FROM PUBLIC"),
                &[],
            )
            .await?;
            for grantee in row.other_grantees.iter().filter(|g| *g != "PUBLIC") {
                conn.execute_ddl(
                    &format!(
                        "REVOKE ALL ON DATABASE {database} FROM {}",
                        quote_ident(grantee)
                    ),
                    &[],
                )
                .await?;
            }
            conn.execute_ddl(
                &format!("GRANT CONNECT ON DATABASE {database} TO {role}"),
                &[],
            )
            .await?;
            outcome.database_secured = true;
        }
        Ok(!complete)
    }
}

/// Whether an existing role and database are exactly as [`DatabaseAdmin::ensure_tenant`]
/// leaves them for `owner`.
fn in_place(
    tenant: &TenantIdentifiers,
    owner: &Owner,
    connection_limit: i32,
    role: &RoleRow,
    database: &DatabaseRow,
) -> bool {
    let ours = |comment: &Option<String>| {
        comment.as_deref().and_then(recorded_uid) == Some(owner.uid.as_str())
    };
    ours(&role.comment)
        && role.can_login
        && !(role.superuser
            || role.create_db
            || role.create_role
            || role.replication
            || role.bypass_rls)
        && role.connection_limit == connection_limit
        && role.admin_inherits
        && database.owner == tenant.role()
        && ours(&database.comment)
        && !database.default_acl
        && database.other_grantees.is_empty()
}
/// The advisory lock key text for a tenant (hashed by the server).
fn lock_key(tenant: &TenantIdentifiers) -> String {
    format!("landlord.dev/tenant-role:{}", tenant.role())
}

/// The SCRAM-SHA-256 verifier PostgreSQL stores for `password`, with a fresh salt.
fn scram_verifier(password: &Password) -> String {
    postgres_protocol::password::scram_sha_256(password.expose().as_bytes())
}

#[async_trait]
impl DatabaseAdmin for PostgresAdmin {
    async fn server_version(&self) -> Result<String, DatabaseError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one("SELECT pg_catalog.current_setting('server_version')", &[])
            .await?;
        conn.column(&row, 0)
    }

    async fn ensure_tenant(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        connection_limit: i32,
        password: RolePassword<'_>,
    ) -> Result<EnsureOutcome, DatabaseError> {
        let mut outcome = EnsureOutcome::default();
        if let RolePassword::OnCreate(_) = password {
            // Steady state: two catalog reads, no lock, no writes.
            let conn = self.pool.get().await?;
            let role = Self::role(&conn, tenant.role()).await?;
            let database = Self::database(&conn, tenant.database()).await?;
            if let (Some(role), Some(database)) = (role, database)
                && in_place(tenant, owner, connection_limit, &role, &database)
            {
                return Ok(outcome);
            }
        }
        // Role, database and database privileges, under the tenant's lock.
        let conn = self.locked(tenant).await?;
        let result = async {
            self.ensure_role(
                &conn,
                tenant,
                owner,
                connection_limit,
                password,
                &mut outcome,
            )
            .await?;
            self.ensure_database(&conn, tenant, owner, &mut outcome)
                .await
        }
        .await;
        let inside_to_do = Self::unlock(conn, tenant, result).await?;
        if inside_to_do {
            // Inside the new database, then the comment that records the UID and marks it
            // complete. Idempotent, so no lock is needed; each step holds one connection at
            // a time, so a pool of one cannot deadlock.
            let inside = self.pool.connect_to(tenant.database()).await?;
            inside
                .execute_ddl("REVOKE CREATE ON SCHEMA public FROM PUBLIC", &[])
                .await?;
            drop(inside);
            let conn = self.pool.get().await?;
            conn.execute_ddl(
                &format!(
                    "COMMENT ON DATABASE {} IS {}",
                    quote_ident(tenant.database()),
                    quote_literal(&marker(tenant.tenant(), &owner.uid))
                ),
                &[],
            )
            .await?;
            outcome.database_secured = true;
        }
        Ok(outcome)
    }

    async fn check_owner(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
    ) -> Result<(), DatabaseError> {
        let conn = self.pool.get().await?;
        let role = Self::role(&conn, tenant.role()).await?;
        let adopted = match &role {
            Some(row) => self.check_role(tenant, owner, row)?,
            None => None,
        };
        if let Some(row) = Self::database(&conn, tenant.database()).await? {
            self.check_database(tenant, owner, adopted.as_deref(), &row)?;
        }
        Ok(())
    }

    async fn set_password(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
        password: &Password,
    ) -> Result<(), DatabaseError> {
        let conn = self.pool.get().await?;
        let row = Self::role(&conn, tenant.role()).await?.ok_or_else(|| {
            DatabaseError::NotProvisioned {
                server: self.server(),
                object: format!("role {}", quote_ident(tenant.role())),
            }
        })?;
        if self.check_role(tenant, owner, &row)?.is_some() {
            // Not adopted yet: ensure_tenant adopts (and records the UID) first.
            return Err(DatabaseError::NotProvisioned {
                server: self.server(),
                object: format!("role {} for this Tenant", quote_ident(tenant.role())),
            });
        }
        let verifier = scram_verifier(password);
        conn.execute_ddl(
            &format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                quote_ident(tenant.role()),
                quote_literal(&verifier)
            ),
            &[password.expose(), &verifier],
        )
        .await
    }

    async fn tenant_exists(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<TenantPresence, DatabaseError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1), \
                        EXISTS (SELECT 1 FROM pg_catalog.pg_database WHERE datname = $2)",
                &[&tenant.role(), &tenant.database()],
            )
            .await?;
        Ok(TenantPresence {
            role: conn.column(&row, 0)?,
            database: conn.column(&row, 1)?,
        })
    }

    async fn drop_tenant(
        &self,
        tenant: &TenantIdentifiers,
        owner: &Owner,
    ) -> Result<DropOutcome, DatabaseError> {
        let conn = self.locked(tenant).await?;
        let result = async {
            let role_row = Self::role(&conn, tenant.role()).await?;
            let database_row = Self::database(&conn, tenant.database()).await?;
            let mut kept = Vec::new();
            // Only what records this Tenant's UID (or what it opted in to adopt) goes.
            let role_ours = match &role_row {
                None => false,
                Some(row) => match self.check_role(tenant, owner, row) {
                    Ok(_) => true,
                    Err(e) => {
                        kept.push((
                            "pg_roles".to_owned(),
                            tenant.role().to_owned(),
                            e.to_string(),
                        ));
                        false
                    }
                },
            };
            let database_ours = match &database_row {
                None => false,
                Some(_)
                    if role_row.is_some()
                        && !role_ours
                        && database_row
                            .as_ref()
                            .is_some_and(|d| d.owner == tenant.role()) =>
                {
                    kept.push((
                        "pg_database".to_owned(),
                        tenant.database().to_owned(),
                        "it is owned by a role that is not this Tenant's".to_owned(),
                    ));
                    false
                }
                Some(row) => match self.check_database(tenant, owner, None, row) {
                    Ok(_) => true,
                    Err(e) => {
                        kept.push((
                            "pg_database".to_owned(),
                            tenant.database().to_owned(),
                            e.to_string(),
                        ));
                        false
                    }
                },
            };
            // A role cannot be dropped while it owns a database that stays.
            let owns_a_kept_database = database_row
                .as_ref()
                .is_some_and(|d| d.owner == tenant.role())
                && !database_ours;
            let role_droppable = role_ours && !owns_a_kept_database;
            let role = quote_ident(tenant.role());
            if role_droppable && role_row.as_ref().is_some_and(|row| !row.admin_inherits) {
                conn.execute_ddl(&format!("GRANT {role} TO CURRENT_USER"), &[])
                    .await?;
            }
            if database_ours {
                conn.execute_ddl(
                    &format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(tenant.database())
                    ),
                    &[],
                )
                .await?;
            }
            let mut also_dropped = Vec::new();
            if role_droppable {
                // DROP OWNED does not drop databases, and a role that owns one cannot be
                // dropped: every other database the tenant's own role owns is the
                // tenant's data (a restore target, a drill's scratch database) and goes.
                let owned = conn
                    .query(
                        "SELECT d.datname FROM pg_catalog.pg_database d \
                         JOIN pg_catalog.pg_roles r ON r.oid = d.datdba \
                         WHERE r.rolname = $1 ORDER BY 1",
                        &[&tenant.role()],
                    )
                    .await?;
                for row in &owned {
                    let name: String = conn.column(row, 0)?;
                    conn.execute_ddl(
                        &format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            quote_ident(&name)
                        ),
                        &[],
                    )
                    .await?;
                    also_dropped.push(name);
                }
                conn.execute_ddl(&format!("DROP OWNED BY {role}"), &[])
                    .await?;
                conn.execute_ddl(&format!("DROP ROLE IF EXISTS {role}"), &[])
                    .await?;
            } else if role_ours {
                kept.push((
                    "pg_roles".to_owned(),
                    tenant.role().to_owned(),
                    "it owns a database that is not this Tenant's".to_owned(),
                ));
            }
            Ok(DropOutcome {
                database_dropped: database_ours,
                role_dropped: role_droppable,
                also_dropped,
                kept,
            })
        }
        .await;
        Self::unlock(conn, tenant, result).await
    }

    async fn verify_dropped(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<DropEvidence, DatabaseError> {
        let conn = self.pool.get().await?;
        let header = conn
            .query_one(
                "SELECT pg_catalog.current_setting('server_version'), \
                        to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                &[],
            )
            .await?;
        let server_version = conn.column(&header, 0)?;
        let checked_at = conn.column(&header, 1)?;
        let mut checks = Vec::with_capacity(2);
        for (catalog, query, name) in [
            ("pg_database", VERIFY_DATABASE, tenant.database()),
            ("pg_roles", VERIFY_ROLE, tenant.role()),
        ] {
            let found = conn
                .query(query, &[&name])
                .await?
                .iter()
                .map(|row| conn.column(row, 0))
                .collect::<Result<_, _>>()?;
            checks.push(CatalogCheck {
                catalog: catalog.to_owned(),
                query: query.to_owned(),
                name: name.to_owned(),
                found,
            });
        }
        Ok(DropEvidence {
            server: self.server(),
            server_version,
            checked_at,
            checks,
        })
    }

    async fn create_restore_target(
        &self,
        tenant: &TenantIdentifiers,
        database: &str,
        marker: &str,
    ) -> Result<(), DatabaseError> {
        let conn = self.locked(tenant).await?;
        let result = async {
            let role_row = Self::role(&conn, tenant.role())
                .await?
                .ok_or_else(|| self.conflict(format!("role {:?}", tenant.role()), "does not exist"))?;
            let quoted = quote_ident(database);
            if let Some(existing) = Self::database(&conn, database).await? {
                if existing.comment.as_deref() != Some(marker) {
                    return Err(self.conflict(
                        format!("database {database:?}"),
                        "exists and was not created by this restore; Landlord never restores over it",
                    ));
                }
                conn.execute_ddl(&format!("DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"), &[])
                    .await?;
            }
            let role = quote_ident(tenant.role());
            // CREATE DATABASE ... OWNER needs membership in the owner.
            if !role_row.admin_inherits {
                conn.execute_ddl(&format!("GRANT {role} TO CURRENT_USER"), &[])
                    .await?;
            }
            conn.execute_ddl(&format!("CREATE DATABASE {quoted} OWNER {role}"), &[])
                .await?;
            conn.execute_ddl(
                &format!("COMMENT ON DATABASE {quoted} IS {}", quote_literal(marker)),
                &[],
            )
            .await?;
            conn.execute_ddl(
                &format!("REVOKE CONNECT, TEMPORARY ON DATABASE {quoted} FROM PUBLIC"),
                &[],
            )
            .await?;
            conn.execute_ddl(&format!("GRANT CONNECT ON DATABASE {quoted} TO {role}"), &[])
                .await?;
            Ok(())
        }
        .await;
        Self::unlock(conn, tenant, result).await
    }

    async fn drop_restore_target(
        &self,
        tenant: &TenantIdentifiers,
        database: &str,
        marker: &str,
    ) -> Result<bool, DatabaseError> {
        let conn = self.locked(tenant).await?;
        let result = async {
            match Self::database(&conn, database).await? {
                Some(existing) if existing.comment.as_deref() == Some(marker) => {
                    conn.execute_ddl(
                        &format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            quote_ident(database)
                        ),
                        &[],
                    )
                    .await?;
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
        .await;
        Self::unlock(conn, tenant, result).await
    }

    async fn count_rows(
        &self,
        database: &str,
        tables: &[(String, String)],
    ) -> Result<Vec<Option<i64>>, DatabaseError> {
        let conn = self.pool.connect_to(database).await?;
        let mut counts = Vec::with_capacity(tables.len());
        for (schema, table) in tables {
            let exists = conn
                .query_one(
                    "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                    &[schema, table],
                )
                .await?;
            if !conn.column::<bool>(&exists, 0)? {
                counts.push(None);
                continue;
            }
            let row = conn
                .query_one(
                    &format!(
                        "SELECT count(*) FROM {}.{}",
                        quote_ident(schema),
                        quote_ident(table)
                    ),
                    &[],
                )
                .await?;
            counts.push(Some(conn.column::<i64>(&row, 0)?));
        }
        Ok(counts)
    }

    async fn terminate_tenant_sessions(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<u64, DatabaseError> {
        let conn = self.locked(tenant).await?;
        let result = async {
            if let Some(row) = Self::role(&conn, tenant.role()).await?
                && !row.admin_inherits
            {
                // pg_terminate_backend needs membership in the sessions' role.
                conn.execute_ddl(
                    &format!("GRANT {} TO CURRENT_USER", quote_ident(tenant.role())),
                    &[],
                )
                .await?;
            }
            let row = conn
                .query_one(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&tenant.database()],
                )
                .await?;
            let terminated: i64 = conn.column(&row, 0)?;
            Ok(u64::try_from(terminated).unwrap_or(0))
        }
        .await;
        Self::unlock(conn, tenant, result).await
    }

    fn stats(&self) -> AdminStats {
        self.pool.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_records_the_uid_and_only_that_counts() {
        let comment = marker("acme", "u1");
        assert_eq!(
            comment,
            "landlord.dev/tenant-uid=u1 landlord.dev/tenant=acme"
        );
        assert_eq!(recorded_uid(&comment), Some("u1"));
        // The name-only marker of earlier versions, or any other text, records no UID.
        assert_eq!(recorded_uid("landlord.dev/tenant=acme"), None);
        assert_eq!(recorded_uid("landlord.dev/tenant-uid="), None);
        assert_eq!(recorded_uid("made by hand"), None);
        // A UID later in the text (in a tenant name, say) does not count.
        assert_eq!(
            recorded_uid("landlord.dev/tenant=x landlord.dev/tenant-uid=u1"),
            None
        );
        let owner = Owner::new("u2");
        let acme = TenantIdentifiers::for_tenant("acme");
        assert_eq!(
            owner.claim(&acme, Some(&comment)),
            Claim::Retained { uid: "u1".into() }
        );
        assert_eq!(
            Owner::adopting("u2", Some("u1")).claim(&acme, Some(&comment)),
            Claim::Adopt { from: "u1".into() }
        );
        assert_eq!(
            owner.claim(&acme, Some("landlord.dev/tenant=acme")),
            Claim::Foreign
        );
        // With continuity proven, the comment of earlier releases is this Tenant's; never
        // another name's, and never over a recorded UID.
        let continuing = Owner {
            legacy_marker: true,
            ..Owner::new("u2")
        };
        assert_eq!(
            continuing.claim(&acme, Some("landlord.dev/tenant=acme")),
            Claim::Ours
        );
        assert_eq!(
            continuing.claim(&acme, Some("landlord.dev/tenant=other")),
            Claim::Foreign
        );
        assert_eq!(
            continuing.claim(&acme, Some(&comment)),
            Claim::Retained { uid: "u1".into() }
        );
    }
}
