//! A Tenant's database: its role and database on its DatabaseServer, and the Secret
//! `<tenant>-db` in its primary namespace that holds the credentials.
//!
//! # The Secret is the record of the password
//!
//! The password exists in two places, the role on the server and the Secret, and is
//! always written in that order: the role first, then the Secret. A crash between the
//! two leaves a Secret that is missing or still names the previous rotation, and the next
//! reconcile sets a fresh password on the role and writes the Secret again; the Secret
//! never holds a password the role does not have for longer than one reconcile.
//!
//! - Secret missing (confirmed by a GET, not only the cache): a new password.
//! - Secret present, role missing (dropped behind Landlord's back): the role is created
//!   again with the Secret's password, so applications keep working.
//! - Rotation: when the Tenant's annotation `landlord.dev/rotate-password` holds a value
//!   the Secret's `landlord.dev/password-rotation` annotation does not, a new password
//!   is set, and the Secret records the value. Any new value rotates again, e.g.
//!   `kubectl annotate tenant acme landlord.dev/rotate-password="$(date +%s)" --overwrite`.
//!
//! Passwords appear only in the Secret's data: never in status, events, logs or errors.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};

use super::apply::{FIELD_MANAGER, satisfied_by};
use super::database_server::{self, Connection, Lookup};
use super::{Context, Error};
use crate::api::{
    Condition, ConditionStatus, NamespacedName, Tenant, TenantDatabase, TenantDatabaseStatus,
    TlsMode, find_condition,
};
use crate::database::{DatabaseError, Password, TenantIdentifiers};
use crate::isolation::labels::{TENANT_LABEL, managed_labels};

/// Condition type on the Tenant.
pub const DATABASE_READY: &str = "DatabaseReady";
/// Annotation on the Tenant that asks for a new password: any value the credentials
/// Secret has not recorded yet.
pub const ROTATE_ANNOTATION: &str = "landlord.dev/rotate-password";
/// Annotation on the credentials Secret: the rotation request it was written for.
pub const ROTATION_ANNOTATION: &str = "landlord.dev/password-rotation";
/// Annotation on the credentials Secret: when its password was set (RFC 3339).
pub const PASSWORD_SET_AT_ANNOTATION: &str = "landlord.dev/password-set-at";

/// Name of the credentials Secret of `tenant`.
pub fn secret_name(tenant: &str) -> String {
    format!("{tenant}-db")
}

/// What the database step found, for the Tenant's status.
pub struct Report {
    /// `DatabaseReady`.
    pub condition: Condition,
    /// `status.database`, when the names are known.
    pub status: Option<TenantDatabaseStatus>,
    /// The failure to retry with back-off, after the status is written.
    pub retry: Option<Error>,
}

impl Report {
    fn failed(tenant: &Tenant, reason: &str, message: String, retry: Error) -> Report {
        Report {
            condition: Condition::new(
                DATABASE_READY,
                ConditionStatus::False,
                reason,
                message,
                tenant.metadata.generation,
            ),
            status: tenant.status.as_ref().and_then(|s| s.database.clone()),
            retry: Some(retry),
        }
    }
}

/// Provisions the tenant's role, database and credentials Secret in `primary`; `None` when
/// the Tenant has no database.
pub async fn provision(tenant: &Tenant, primary: &str, ctx: &Context) -> Option<Report> {
    let spec = tenant.spec.database.as_ref()?;
    let server_name = &spec.server_ref;
    let Some(server) = ctx
        .stores
        .database_servers
        .get(&ObjectRef::new(server_name))
    else {
        let message = format!(
            "the DatabaseServer {server_name} named by spec.database.serverRef does not exist: create it (the tenant's database is provisioned as soon as it is reachable)"
        );
        return Some(Report::failed(
            tenant,
            "ServerNotFound",
            message.clone(),
            Error::DatabaseNotReady(message),
        ));
    };
    let connection = match ctx.databases.lookup(server_name) {
        Lookup::Usable(connection) => connection,
        Lookup::NotYetChecked => {
            // This replica has not looked at the server yet (it just started leading):
            // the tenant's condition stands until it has; the look triggers this tenant.
            let previous = tenant
                .status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, DATABASE_READY))
                .cloned();
            return Some(Report {
                condition: previous.unwrap_or_else(|| {
                    Condition::new(
                        DATABASE_READY,
                        ConditionStatus::Unknown,
                        "Connecting",
                        format!("Landlord is connecting to the DatabaseServer {server_name}"),
                        tenant.metadata.generation,
                    )
                }),
                status: tenant.status.as_ref().and_then(|s| s.database.clone()),
                retry: None,
            });
        }
        Lookup::Unusable => {
            let why = server
                .status
                .as_ref()
                .and_then(|s| find_condition(&s.conditions, database_server::conditions::REACHABLE))
                .filter(|c| !c.is_true())
                .map(|c| format!(": {} ({})", c.message, c.reason))
                .unwrap_or_default();
            let message = format!("the DatabaseServer {server_name} cannot be used{why}");
            return Some(Report::failed(
                tenant,
                "ServerNotReady",
                message.clone(),
                Error::DatabaseNotReady(message),
            ));
        }
    };
    let ids = TenantIdentifiers::for_tenant(&tenant.name_any());
    Some(
        match ensure(tenant, primary, ctx, &connection, &ids, spec).await {
            Ok(report) => report,
            Err(e) => {
                let reason = match &e {
                    Error::Database { source, .. } => source.reason(),
                    Error::CredentialsSecretTaken(_) => "SecretTaken",
                    _ => "CredentialsFailed",
                };
                let message = super::error::describe(&e);
                Report::failed(tenant, reason, message, e)
            }
        },
    )
}

fn database_error(tenant: &Tenant) -> impl Fn(DatabaseError) -> Error + '_ {
    move |source| Error::Database {
        tenant: tenant.name_any(),
        source,
    }
}

async fn ensure(
    tenant: &Tenant,
    primary: &str,
    ctx: &Context,
    connection: &Connection,
    ids: &TenantIdentifiers,
    spec: &TenantDatabase,
) -> Result<Report, Error> {
    let name = tenant.name_any();
    let secret_name = secret_name(&name);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), primary);
    let secret_error = |source| Error::Object {
        kind: "Secret",
        name: format!("{primary}/{secret_name}"),
        source,
    };
    let mut live = ctx
        .stores
        .secrets
        .get(&ObjectRef::new(&secret_name).within(primary))
        .map(|s| (*s).clone());
    let requested = tenant.annotations().get(ROTATE_ANNOTATION).cloned();
    let recorded = |secret: &Option<Secret>| {
        secret
            .as_ref()
            .and_then(|s| s.annotations().get(ROTATION_ANNOTATION).cloned())
    };
    // The cache lags behind this controller's own writes: before deciding that a password
    // must be new, read the Secret itself.
    if live.is_none() || (requested.is_some() && requested != recorded(&live)) {
        live = secrets.get_opt(&secret_name).await.map_err(secret_error)?;
    }
    if let Some(secret) = &live
        && secret.labels().get(TENANT_LABEL) != Some(&name)
    {
        return Err(Error::CredentialsSecretTaken(format!(
            "the Secret {primary}/{secret_name} exists and is not Landlord's for this tenant; Landlord never overwrites it: delete or rename it"
        )));
    }
    let current = live
        .as_ref()
        .and_then(|s| s.data.as_ref()?.get("password").cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|p| !p.is_empty())
        .map(Password::new);
    // A rotation changes the password of an existing Secret; a Secret written anew gets a
    // new password anyway, which answers any request made so far.
    let rotate = live.is_some() && requested.is_some() && requested != recorded(&live);

    let (password, new_password) = match (&current, rotate) {
        (Some(existing), false) => (existing.clone(), false),
        _ => (Password::generate().map_err(Error::Random)?, true),
    };
    let outcome = connection
        .admin
        .ensure_tenant(
            ids,
            spec.connection_limit,
            new_password.then_some(&password),
        )
        .await
        .map_err(database_error(tenant))?;
    if outcome.role_created && !new_password {
        // The role was gone (dropped by hand, or a server restored from an old backup):
        // it gets the password the applications already have.
        connection
            .admin
            .set_password(ids, &password)
            .await
            .map_err(database_error(tenant))?;
    }
    let password_set_at = if new_password || outcome.role_created {
        now()
    } else {
        live.as_ref()
            .and_then(|s| s.annotations().get(PASSWORD_SET_AT_ANNOTATION))
            .and_then(|t| t.parse().ok())
            .map(Time)
            .unwrap_or_else(now)
    };
    let rotation = if new_password {
        requested.clone()
    } else {
        recorded(&live)
    };
    let desired = credentials_secret(
        tenant,
        primary,
        connection,
        ids,
        &password,
        rotation.as_deref(),
        &password_set_at,
    );
    let want =
        serde_json::to_value(&desired).map_err(|e| secret_error(kube::Error::SerdeError(e)))?;
    let have = live.as_ref().and_then(|s| serde_json::to_value(s).ok());
    if !have.is_some_and(|have| satisfied_by(&want, &have)) {
        secrets
            .patch(
                &secret_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&want),
            )
            .await
            .map_err(secret_error)?;
    }

    // Events, once both the role and the Secret hold the password.
    if outcome.role_created || outcome.database_created {
        super::tenant::publish(
            tenant,
            ctx,
            EventType::Normal,
            "DatabaseCreated",
            &format!(
                "created role {} and database {} on {}:{}; credentials in Secret {primary}/{secret_name}",
                ids.role(),
                ids.database(),
                connection.host,
                connection.port
            ),
        )
        .await;
    }
    if rotate {
        super::tenant::publish(
            tenant,
            ctx,
            EventType::Normal,
            "PasswordRotated",
            &format!(
                "set a new password for role {} and wrote it to Secret {primary}/{secret_name}; the old password no longer works",
                ids.role()
            ),
        )
        .await;
    } else if new_password && !outcome.role_created {
        super::tenant::publish(
            tenant,
            ctx,
            EventType::Warning,
            "CredentialsRecreated",
            &format!(
                "Secret {primary}/{secret_name} was missing or held no password: set a new password for role {} and wrote the Secret again",
                ids.role()
            ),
        )
        .await;
    }

    Ok(Report {
        condition: Condition::new(
            DATABASE_READY,
            ConditionStatus::True,
            "Provisioned",
            format!(
                "database {} owned by role {} on DatabaseServer {}; credentials in Secret {primary}/{secret_name}",
                ids.database(),
                ids.role(),
                spec.server_ref
            ),
            tenant.metadata.generation,
        ),
        status: Some(TenantDatabaseStatus {
            server: spec.server_ref.clone(),
            name: ids.database().to_owned(),
            role: ids.role().to_owned(),
            credentials_secret: Some(NamespacedName {
                name: secret_name,
                namespace: primary.to_owned(),
            }),
            password_set_at: Some(password_set_at),
        }),
        retry: None,
    })
}

/// Now, to the second: what `metav1.Time` keeps, so that the annotation and the status
/// read back equal to what was written.
fn now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// The credentials Secret: what a libpq client needs, field by field and as one URI, and
/// the CA that verifies the server when there is one.
fn credentials_secret(
    tenant: &Tenant,
    namespace: &str,
    connection: &Connection,
    ids: &TenantIdentifiers,
    password: &Password,
    rotation: Option<&str>,
    password_set_at: &Time,
) -> Secret {
    let sslmode = match connection.tls {
        TlsMode::Disable => "disable",
        TlsMode::Require => "require",
        TlsMode::VerifyFull => "verify-full",
    };
    let host = if connection.host.contains(':') {
        format!("[{}]", connection.host)
    } else {
        connection.host.clone()
    };
    let uri = format!(
        "postgresql://{}:{}@{host}:{}/{}?sslmode={sslmode}",
        percent_encode(ids.role()),
        percent_encode(password.expose()),
        connection.port,
        percent_encode(ids.database()),
    );
    let mut data: BTreeMap<String, ByteString> = [
        ("host", connection.host.clone()),
        ("port", connection.port.to_string()),
        ("dbname", ids.database().to_owned()),
        ("user", ids.role().to_owned()),
        ("password", password.expose().to_owned()),
        ("sslmode", sslmode.to_owned()),
        ("uri", uri),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
    .collect();
    if let Some(ca) = &connection.ca_pem {
        data.insert("ca.crt".to_owned(), ByteString(ca.clone()));
    }
    let mut annotations = BTreeMap::from([(
        PASSWORD_SET_AT_ANNOTATION.to_owned(),
        password_set_at.0.to_string(),
    )]);
    if let Some(rotation) = rotation {
        annotations.insert(ROTATION_ANNOTATION.to_owned(), rotation.to_owned());
    }
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name(&tenant.name_any())),
            namespace: Some(namespace.to_owned()),
            labels: Some(managed_labels(&tenant.name_any())),
            annotations: Some(annotations),
            owner_references: tenant.controller_owner_ref(&()).map(|mut r| {
                r.block_owner_deletion = Some(true);
                vec![r]
            }),
            ..Default::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(data),
        ..Default::default()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The erasure step `DropDatabase`: drops the tenant's database (terminating its
/// connections) and role, then checks the server's catalog, and fails unless both are
/// gone. Returns what the catalog showed, for the step's message.
pub async fn drop_database(tenant: &Tenant, ctx: &Context) -> Result<String, Error> {
    let Some(spec) = tenant.spec.database.as_ref() else {
        return Ok("the tenant has no database".to_owned());
    };
    let server = &spec.server_ref;
    let Some(connection) = ctx.databases.get(server) else {
        let exists = ctx
            .stores
            .database_servers
            .get(&ObjectRef::new(server))
            .is_some();
        return Err(Error::DatabaseNotReady(if exists {
            format!(
                "the DatabaseServer {server} cannot be used yet (see its Reachable condition); the erasure drops the database once it can"
            )
        } else {
            format!(
                "the DatabaseServer {server} does not exist; the erasure cannot drop the tenant's database until it is back"
            )
        }));
    };
    let ids = TenantIdentifiers::for_tenant(&tenant.name_any());
    let dropped = connection
        .admin
        .drop_tenant(&ids)
        .await
        .map_err(database_error(tenant))?;
    let evidence = connection
        .admin
        .verify_dropped(&ids)
        .await
        .map_err(database_error(tenant))?;
    if !evidence.is_dropped() {
        let found: Vec<String> = evidence
            .checks
            .iter()
            .filter(|c| !c.found.is_empty())
            .map(|c| format!("{} still lists {}", c.catalog, c.found.join(", ")))
            .collect();
        return Err(Error::DatabaseNotReady(format!(
            "after dropping, the catalog of {} {}",
            evidence.server,
            found.join("; ")
        )));
    }
    Ok(format!(
        "{} database {} and {} role {} on {} (PostgreSQL {}); at {} the catalog ({}) lists neither",
        if dropped.database_dropped {
            "dropped"
        } else {
            "already gone:"
        },
        ids.database(),
        if dropped.role_dropped {
            "dropped"
        } else {
            "already gone:"
        },
        ids.role(),
        evidence.server,
        evidence.server_version,
        evidence.checked_at,
        evidence
            .checks
            .iter()
            .map(|c| c.catalog.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::TenantSpec;

    fn tenant() -> Tenant {
        let spec: TenantSpec = serde_json::from_value(serde_json::json!({
            "database": {"serverRef": "main"}
        }))
        .expect("spec");
        let mut tenant = Tenant::new("acme", spec);
        tenant.metadata.uid = Some("uid-1".into());
        tenant
    }

    fn connection(host: &str, tls: TlsMode, ca: Option<&[u8]>) -> Connection {
        let config = crate::database::ServerConfig::new(host, 5432, "admin", Password::new("x"));
        Connection {
            admin: std::sync::Arc::new(
                crate::database::PostgresAdmin::new(&config).expect("admin"),
            ),
            host: host.to_owned(),
            port: 5432,
            tls,
            ca_pem: ca.map(<[u8]>::to_vec),
        }
    }

    fn value(secret: &Secret, key: &str) -> String {
        String::from_utf8(secret.data.as_ref().expect("data")[key].0.clone()).expect("UTF-8")
    }

    #[test]
    fn the_secret_holds_every_connection_field_and_a_uri() {
        let ids = TenantIdentifiers::for_tenant("acme");
        let at = Time("2026-01-02T03:04:05Z".parse().expect("time"));
        let secret = credentials_secret(
            &tenant(),
            "tenant-acme",
            &connection("db.example", TlsMode::VerifyFull, Some(b"CA")),
            &ids,
            &Password::new("p4ss"),
            Some("1"),
            &at,
        );
        assert_eq!(secret.metadata.name.as_deref(), Some("acme-db"));
        assert_eq!(secret.metadata.namespace.as_deref(), Some("tenant-acme"));
        assert_eq!(value(&secret, "host"), "db.example");
        assert_eq!(value(&secret, "port"), "5432");
        assert_eq!(value(&secret, "dbname"), "tenant_acme");
        assert_eq!(value(&secret, "user"), "tenant_acme");
        assert_eq!(value(&secret, "password"), "p4ss");
        assert_eq!(value(&secret, "sslmode"), "verify-full");
        assert_eq!(value(&secret, "ca.crt"), "CA");
        assert_eq!(
            value(&secret, "uri"),
            "postgresql://tenant_acme:p4ss@db.example:5432/tenant_acme?sslmode=verify-full"
        );
        let annotations = secret.metadata.annotations.as_ref().expect("annotations");
        assert_eq!(annotations[ROTATION_ANNOTATION], "1");
        assert_eq!(
            annotations[PASSWORD_SET_AT_ANNOTATION],
            "2026-01-02T03:04:05Z"
        );
        let owner = &secret.metadata.owner_references.as_ref().expect("owner")[0];
        assert_eq!(owner.kind, "Tenant");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            secret.metadata.labels.as_ref().expect("labels")[TENANT_LABEL],
            "acme"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_and_no_ca_means_no_ca_key() {
        let ids = TenantIdentifiers::for_tenant("acme");
        let secret = credentials_secret(
            &tenant(),
            "tenant-acme",
            &connection("fd00::7", TlsMode::Disable, None),
            &ids,
            &Password::new("p"),
            None,
            &Time(k8s_openapi::jiff::Timestamp::now()),
        );
        assert_eq!(
            value(&secret, "uri"),
            "postgresql://tenant_acme:p@[fd00::7]:5432/tenant_acme?sslmode=disable"
        );
        assert!(!secret.data.as_ref().expect("data").contains_key("ca.crt"));
        assert!(
            !secret
                .metadata
                .annotations
                .as_ref()
                .expect("annotations")
                .contains_key(ROTATION_ANNOTATION)
        );
    }

    #[test]
    fn percent_encoding_keeps_unreserved_characters_only() {
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
        assert_eq!(percent_encode("a b@c:d/e"), "a%20b%40c%3Ad%2Fe");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
