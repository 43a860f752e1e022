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
//! Roles Landlord creates carry the comment `landlord.dev/tenant=<name>`, set in the same
//! transaction as `CREATE ROLE`; a database is Landlord's when its owner is such a role.
//! Existing roles or databases that are not Landlord's are never adopted, changed or
//! dropped: they are reported as [`DatabaseError::Conflict`].
//!
//! # Dropping
//!
//! [`DatabaseAdmin::drop_tenant`] is the only code in Landlord that drops a database or a
//! role, and only the erasure workflow calls it. [`DatabaseAdmin::verify_dropped`]
//! returns the catalog queries it ran and what they found, as evidence for the erasure
//! receipt.
//!
//! # Passwords
//!
//! Passwords never travel to the server in clear text: Landlord sends the SCRAM-SHA-256
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
            .finish()
    }
}

/// What [`DatabaseAdmin::ensure_tenant`] changed; all `false` when everything was in place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
}

impl EnsureOutcome {
    /// Whether anything changed on the server.
    pub fn changed(&self) -> bool {
        self.role_created
            || self.role_updated
            || self.password_set
            || self.database_created
            || self.database_secured
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropOutcome {
    /// The database was dropped, its connections terminated.
    pub database_dropped: bool,
    /// The role was dropped.
    pub role_dropped: bool,
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
    /// revoked from PUBLIC. Sets the password when one is given (a new role without one
    /// cannot log in until [`set_password`](Self::set_password)). Idempotent and safe to
    /// run concurrently for the same tenant (from several replicas too: it takes an
    /// advisory lock per tenant).
    async fn ensure_tenant(
        &self,
        tenant: &TenantIdentifiers,
        connection_limit: i32,
        password: Option<&Password>,
    ) -> Result<EnsureOutcome, DatabaseError>;

    /// Sets the tenant role's password (rotation); the old one stops working at once for
    /// new connections.
    async fn set_password(
        &self,
        tenant: &TenantIdentifiers,
        password: &Password,
    ) -> Result<(), DatabaseError>;

    /// Whether the tenant's role and database exist.
    async fn tenant_exists(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<TenantPresence, DatabaseError>;

    /// Erasure: drops the tenant's database (`WITH (FORCE)`, terminating its
    /// connections), then what the role owns in the administrative database, then the role.
    /// Idempotent: what is already gone is skipped.
    async fn drop_tenant(&self, tenant: &TenantIdentifiers) -> Result<DropOutcome, DatabaseError>;

    /// Reads `pg_database` and `pg_roles` for the tenant's names and returns the queries
    /// and their results.
    async fn verify_dropped(
        &self,
        tenant: &TenantIdentifiers,
    ) -> Result<DropEvidence, DatabaseError>;

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

/// The comment that marks a role as Landlord's.
fn marker(tenant: &str) -> String {
    format!("landlord.dev/tenant={tenant}")
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

    /// Checks that an existing role is Landlord's role for this tenant.
    fn check_role(&self, tenant: &TenantIdentifiers, row: &RoleRow) -> Result<(), DatabaseError> {
        let object = format!("role {}", quote_ident(tenant.role()));
        if row.comment.as_deref() != Some(marker(tenant.tenant()).as_str()) {
            return Err(self.conflict(
                object,
                format!(
                    "it exists but was not created by Landlord for tenant {:?} (its comment is not the Landlord marker)",
                    tenant.tenant()
                ),
            ));
        }
        if row.superuser || row.replication || row.bypass_rls {
            return Err(self.conflict(
                object,
                "it has SUPERUSER, REPLICATION or BYPASSRLS, which only a superuser can remove",
            ));
        }
        Ok(())
    }

    /// Checks that an existing database is owned by the tenant's role.
    fn check_database(
        &self,
        tenant: &TenantIdentifiers,
        row: &DatabaseRow,
    ) -> Result<(), DatabaseError> {
        if row.owner != tenant.role() {
            return Err(self.conflict(
                format!("database {}", quote_ident(tenant.database())),
                format!(
                    "it is owned by {:?}, not by the tenant's role {:?}",
                    row.owner,
                    tenant.role()
                ),
            ));
        }
        Ok(())
    }

    async fn ensure_role(
        &self,
        conn: &PooledClient<'_>,
        tenant: &TenantIdentifiers,
        connection_limit: i32,
        password: Option<&Password>,
        outcome: &mut EnsureOutcome,
    ) -> Result<(), DatabaseError> {
        let role = quote_ident(tenant.role());
        let verifier = password.map(scram_verifier);
        let secrets: Vec<&str> = password
            .map(Password::expose)
            .into_iter()
            .chain(verifier.as_deref())
            .collect();
        match Self::role(conn, tenant.role()).await? {
            None => {
                let password_clause = verifier
                    .as_deref()
                    .map(|v| format!(" PASSWORD {}", quote_literal(v)))
                    .unwrap_or_default();
                conn.execute_ddl("BEGIN", &[]).await?;
                conn.execute_ddl(
                    &format!(
                        "CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE \
                         NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT {connection_limit}{password_clause}"
                    ),
                    &secrets,
                )
                .await?;
                conn.execute_ddl(
                    &format!(
                        "COMMENT ON ROLE {role} IS {}",
                        quote_literal(&marker(tenant.tenant()))
                    ),
                    &[],
                )
                .await?;
                conn.execute_ddl(&format!("GRANT {role} TO CURRENT_USER"), &[])
                    .await?;
                conn.execute_ddl("COMMIT", &[]).await?;
                outcome.role_created = true;
                outcome.password_set = password.is_some();
            }
            Some(row) => {
                self.check_role(tenant, &row)?;
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
                if !changes.is_empty() {
                    conn.execute_ddl(
                        &format!("ALTER ROLE {role} WITH {}", changes.join(" ")),
                        &[],
                    )
                    .await?;
                    outcome.role_updated = true;
                }
                if !row.admin_inherits {
                    conn.execute_ddl(&format!("GRANT {role} TO CURRENT_USER"), &[])
                        .await?;
                    outcome.role_updated = true;
                }
                if let Some(verifier) = &verifier {
                    conn.execute_ddl(
                        &format!(
                            "ALTER ROLE {role} WITH PASSWORD {}",
                            quote_literal(verifier)
                        ),
                        &secrets,
                    )
                    .await?;
                    outcome.password_set = true;
                }
            }
        }
        Ok(())
    }

    /// Creates the database if needed and resets its privileges if they drifted. Returns
    /// whether the steps inside the database (and the completion comment) are still to do.
    async fn ensure_database(
        &self,
        conn: &PooledClient<'_>,
        tenant: &TenantIdentifiers,
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
        self.check_database(tenant, &row)?;
        let complete = row.comment.as_deref() == Some(marker(tenant.tenant()).as_str());
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
/// leaves them.
fn in_place(
    tenant: &TenantIdentifiers,
    connection_limit: i32,
    role: &RoleRow,
    database: &DatabaseRow,
) -> bool {
    let marker = marker(tenant.tenant());
    role.comment.as_deref() == Some(marker.as_str())
        && role.can_login
        && !(role.superuser
            || role.create_db
            || role.create_role
            || role.replication
            || role.bypass_rls)
        && role.connection_limit == connection_limit
        && role.admin_inherits
        && database.owner == tenant.role()
        && database.comment.as_deref() == Some(marker.as_str())
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
        connection_limit: i32,
        password: Option<&Password>,
    ) -> Result<EnsureOutcome, DatabaseError> {
        let mut outcome = EnsureOutcome::default();
        if password.is_none() {
            // Steady state: two catalog reads, no lock, no writes.
            let conn = self.pool.get().await?;
            let role = Self::role(&conn, tenant.role()).await?;
            let database = Self::database(&conn, tenant.database()).await?;
            if let (Some(role), Some(database)) = (role, database)
                && in_place(tenant, connection_limit, &role, &database)
            {
                return Ok(outcome);
            }
        }
        // Role, database and database privileges, under the tenant's lock.
        let conn = self.locked(tenant).await?;
        let result = async {
            self.ensure_role(&conn, tenant, connection_limit, password, &mut outcome)
                .await?;
            self.ensure_database(&conn, tenant, &mut outcome).await
        }
        .await;
        let inside_to_do = Self::unlock(conn, tenant, result).await?;
        if inside_to_do {
            // Inside the new database, then the comment that marks it complete. Idempotent,
            // so no lock is needed; each step holds one connection at a time, so a pool of
            // one cannot deadlock.
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
                    quote_literal(&marker(tenant.tenant()))
                ),
                &[],
            )
            .await?;
            outcome.database_secured = true;
        }
        Ok(outcome)
    }

    async fn set_password(
        &self,
        tenant: &TenantIdentifiers,
        password: &Password,
    ) -> Result<(), DatabaseError> {
        let conn = self.pool.get().await?;
        let row = Self::role(&conn, tenant.role()).await?.ok_or_else(|| {
            DatabaseError::NotProvisioned {
                server: self.server(),
                object: format!("role {}", quote_ident(tenant.role())),
            }
        })?;
        self.check_role(tenant, &row)?;
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

    async fn drop_tenant(&self, tenant: &TenantIdentifiers) -> Result<DropOutcome, DatabaseError> {
        let conn = self.locked(tenant).await?;
        let result = async {
            let role_row = Self::role(&conn, tenant.role()).await?;
            let database_row = Self::database(&conn, tenant.database()).await?;
            if let Some(row) = &role_row {
                self.check_role(tenant, row)?;
            }
            if let Some(row) = &database_row {
                self.check_database(tenant, row)?;
            }
            let role = quote_ident(tenant.role());
            if role_row.as_ref().is_some_and(|row| !row.admin_inherits) {
                conn.execute_ddl(&format!("GRANT {role} TO CURRENT_USER"), &[])
                    .await?;
            }
            let database_dropped = database_row.is_some();
            if database_dropped {
                conn.execute_ddl(
                    &format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(tenant.database())
                    ),
                    &[],
                )
                .await?;
            }
            let role_dropped = role_row.is_some();
            if role_dropped {
                conn.execute_ddl(&format!("DROP OWNED BY {role}"), &[])
                    .await?;
                conn.execute_ddl(&format!("DROP ROLE IF EXISTS {role}"), &[])
                    .await?;
            }
            Ok(DropOutcome {
                database_dropped,
                role_dropped,
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

    fn stats(&self) -> AdminStats {
        self.pool.stats()
    }
}
