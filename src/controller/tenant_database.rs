//! A Tenant's database: its role and database on its DatabaseServer, and the Secret
//! `<tenant>-db` in its primary namespace that holds the credentials.
//!
//! # Whose they are
//!
//! The role and database record the Tenant's UID in their comments, the Secret in its
//! annotation `landlord.dev/tenant-uid` ([`crate::isolation::ownership`]). What records
//! another Tenant's UID (an earlier Tenant of the same name, deleted with
//! `deletionPolicy: Retain`) is never touched (`RetainedDataExists`) unless the Tenant's
//! annotation `landlord.dev/adopt-retained-from` names exactly that UID; then it is taken
//! over (`RetainedDataAdopted`, `status.adoptedFrom`). A role or database without a
//! Landlord UID is never adopted (`NameConflict`), nor a Secret (`SecretTaken`). The
//! Secret has no owner reference: the garbage collector must not delete what `Retain`
//! keeps.
//!
//! # The Secret is the record of the password
//!
//! The password exists in two places, the role on the server and the Secret. A new
//! password (first provisioning, rotation, lost Secret) is first recorded in the Secret
//! as `password-pending`, then given to the role (a new role gets it in the same
//! transaction as its creation), then promoted to `password`. A Secret that cannot be
//! written leaves the role untouched; a crash between the role and the promotion is
//! finished by the next reconcile with the same pending password, never a new one.
//!
//! - Secret missing (confirmed by a GET: Landlord keeps no cache of Secrets): a new
//!   password.
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
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::events::EventType;
use kube::runtime::reflector::ObjectRef;

use super::apply::{FIELD_MANAGER, satisfied_by};
use super::database_server::{self, Connection, Lookup};
use super::{Context, Error};
use crate::api::{
    Condition, ConditionStatus, NamespacedName, Tenant, TenantDatabase, TenantDatabaseStatus,
    TlsMode, find_condition,
};
use crate::database::{DatabaseError, Owner, Password, RolePassword, TenantIdentifiers};
use crate::isolation::labels::managed_labels;
use crate::isolation::ownership::{self, Claim, TENANT_UID_ANNOTATION};

/// Condition type on the Tenant.
pub const DATABASE_READY: &str = "DatabaseReady";
/// Annotation on the Tenant that asks for a new password: any value the credentials
/// Secret has not recorded yet.
pub const ROTATE_ANNOTATION: &str = "landlord.dev/rotate-password";
/// Annotation on the credentials Secret: the rotation request it was written for.
pub const ROTATION_ANNOTATION: &str = "landlord.dev/password-rotation";
/// Annotation on the credentials Secret: when its password was set (RFC 3339).
pub const PASSWORD_SET_AT_ANNOTATION: &str = "landlord.dev/password-set-at";
/// Key of the password in the credentials Secret.
pub const PASSWORD_KEY: &str = "password";
/// Key of a new password in the credentials Secret while it is being given to the role.
pub const PENDING_PASSWORD_KEY: &str = "password-pending";

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
    /// The UID of the earlier Tenant whose retained role, database or Secret this
    /// reconcile took over, for `status.adoptedFrom`.
    pub adopted_from: Option<String>,
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
            adopted_from: None,
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
                adopted_from: None,
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
                    Error::CredentialsSecretRetained(_) => "RetainedDataExists",
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
    let uid = tenant.uid().unwrap_or_default();
    let adopt_from = ownership::adopt_from(tenant);
    let mut owner = Owner::adopting(uid.clone(), adopt_from);
    // Landlord keeps no cache of Secrets (it may not list or watch them): one GET.
    let live = secrets.get_opt(&secret_name).await.map_err(secret_error)?;
    let secret_claim = live
        .as_ref()
        .map(|secret| ownership::claim(&uid, adopt_from, secret_owner_uid(secret, &uid)));
    match &secret_claim {
        Some(Claim::Foreign) => {
            return Err(Error::CredentialsSecretTaken(format!(
                "the Secret {primary}/{secret_name} exists and was not created by Landlord for this Tenant (no {TENANT_UID_ANNOTATION} annotation); Landlord never reads or overwrites it: delete or rename it"
            )));
        }
        Some(Claim::Retained { uid: old }) => {
            return Err(Error::CredentialsSecretRetained(format!(
                "the Secret {primary}/{secret_name} was retained by an earlier Tenant with UID {old}; Landlord does not touch it: to take it over with the database, annotate this Tenant {}={old}, or delete it",
                ownership::ADOPT_ANNOTATION
            )));
        }
        _ => {}
    }
    // The Tenant's own Secret proves that a role with the comment of releases before UIDs
    // were recorded was made for this Tenant.
    owner.legacy_marker = matches!(secret_claim, Some(Claim::Ours));
    let value = |key: &str| {
        live.as_ref()
            .and_then(|s| s.data.as_ref()?.get(key).cloned())
            .and_then(|b| String::from_utf8(b.0).ok())
            .filter(|p| !p.is_empty())
            .map(Password::new)
    };
    let current = value(PASSWORD_KEY);
    let pending = value(PENDING_PASSWORD_KEY);
    let requested = tenant.annotations().get(ROTATE_ANNOTATION).cloned();
    let recorded = live
        .as_ref()
        .and_then(|s| s.annotations().get(ROTATION_ANNOTATION).cloned());
    // A rotation changes the password of an existing Secret; a Secret written anew gets a
    // new password anyway, which answers any request made so far.
    let rotate = current.is_some() && requested.is_some() && requested != recorded;
    // A pending password is always finished: the role may already have it.
    let new_password = current.is_none() || rotate || pending.is_some();
    let last_set_at = live
        .as_ref()
        .and_then(|s| s.annotations().get(PASSWORD_SET_AT_ANNOTATION))
        .and_then(|t| t.parse().ok())
        .map(Time);
    let write = |desired: &Secret| {
        let secrets = secrets.clone();
        let tenant_uid = uid.as_str();
        let secret_name = secret_name.as_str();
        let desired = desired.clone();
        async move {
            let want = serde_json::to_value(&desired)
                .map_err(|e| secret_error(kube::Error::SerdeError(e)))?;
            let written = secrets
                .patch(
                    secret_name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&want),
                )
                .await
                .map_err(secret_error)?;
            // A Secret that was created (not applied) keeps fields the apply does not own:
            // a promoted pending password must not stay behind.
            let leftover = written
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key(PENDING_PASSWORD_KEY))
                && !desired
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(PENDING_PASSWORD_KEY));
            if leftover {
                let patch = serde_json::json!({"data": {PENDING_PASSWORD_KEY: null}});
                secrets
                    .patch(secret_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(secret_error)?;
            }
            // An owner reference to the Tenant (written by releases before UIDs, possibly
            // under another field manager) would let the garbage collector delete what
            // Retain keeps: it goes, whoever wrote it.
            if written
                .owner_references()
                .iter()
                .any(|r| r.uid == tenant_uid)
            {
                let kept: Vec<_> = written
                    .owner_references()
                    .iter()
                    .filter(|r| r.uid != tenant_uid)
                    .collect();
                let patch = serde_json::json!({"metadata": {
                    "resourceVersion": written.resource_version(),
                    "ownerReferences": kept,
                }});
                secrets
                    .patch(secret_name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(secret_error)?;
            }
            Ok::<(), Error>(())
        }
    };
    let fields = SecretFields {
        tenant,
        namespace: primary,
        connection,
        ids,
    };

    let (password, outcome, password_set_at) = match (&current, new_password) {
        (Some(existing), false) => {
            // Steady state; a role dropped behind Landlord's back is created again with
            // the password the applications already have, in the same transaction.
            let outcome = connection
                .admin
                .ensure_tenant(
                    ids,
                    &owner,
                    spec.connection_limit,
                    RolePassword::OnCreate(existing),
                )
                .await
                .map_err(database_error(tenant))?;
            let at = match (outcome.role_created, &last_set_at) {
                (false, Some(at)) => at.clone(),
                _ => now(),
            };
            (existing.clone(), outcome, at)
        }
        _ => {
            // The new password is recorded in the Secret before the role gets it, so that
            // a Secret that cannot be written leaves the role alone, and a retry after a
            // failure between the two sets the same password, not yet another one.
            let password = match pending {
                Some(pending) => pending,
                None => {
                    // Nothing is written for names that are not this Tenant's to use.
                    connection
                        .admin
                        .check_owner(ids, &owner)
                        .await
                        .map_err(database_error(tenant))?;
                    let password = Password::generate().map_err(Error::Random)?;
                    let staged = fields.secret(SecretState {
                        password: current.as_ref(),
                        pending: Some(&password),
                        rotation: recorded.as_deref(),
                        password_set_at: last_set_at.as_ref(),
                    });
                    if live.is_none() {
                        // A create, not an apply: if someone else's Secret of this name
                        // appeared meanwhile, it fails instead of taking it over.
                        secrets
                            .create(
                                &PostParams {
                                    field_manager: Some(FIELD_MANAGER.to_owned()),
                                    ..PostParams::default()
                                },
                                &staged,
                            )
                            .await
                            .map_err(secret_error)?;
                    } else {
                        write(&staged).await?;
                    }
                    password
                }
            };
            let outcome = connection
                .admin
                .ensure_tenant(
                    ids,
                    &owner,
                    spec.connection_limit,
                    RolePassword::Set(&password),
                )
                .await
                .map_err(database_error(tenant))?;
            (password, outcome, now())
        }
    };
    let rotation = if new_password {
        requested.clone().or(recorded.clone())
    } else {
        recorded.clone()
    };
    let desired = fields.secret(SecretState {
        password: Some(&password),
        pending: None,
        rotation: rotation.as_deref(),
        password_set_at: Some(&password_set_at),
    });
    let want =
        serde_json::to_value(&desired).map_err(|e| secret_error(kube::Error::SerdeError(e)))?;
    let have = live.as_ref().and_then(|s| serde_json::to_value(s).ok());
    let stale = live.as_ref().is_some_and(|s| {
        s.owner_references().iter().any(|r| r.uid == uid)
            || s.data
                .as_ref()
                .is_some_and(|d| d.contains_key(PENDING_PASSWORD_KEY))
    });
    if new_password || stale || !have.is_some_and(|have| satisfied_by(&want, &have)) {
        write(&desired).await?;
    }

    // Events, once both the role and the Secret hold the password.
    let secret_adopted = matches!(secret_claim, Some(Claim::Adopt { .. }));
    let adopted_from = outcome.adopted_from.clone().or(match &secret_claim {
        Some(Claim::Adopt { from }) => Some(from.clone()),
        _ => None,
    });
    if let Some(from) = &adopted_from {
        super::tenant::publish(
            tenant,
            ctx,
            EventType::Normal,
            "RetainedDataAdopted",
            &format!(
                "took over {} retained by the earlier Tenant with UID {from}, as the annotation {} asked; they now record this Tenant's UID",
                match (outcome.adopted_from.is_some(), secret_adopted) {
                    (true, true) => format!(
                        "role {}, database {} and Secret {primary}/{secret_name}",
                        ids.role(),
                        ids.database()
                    ),
                    (true, false) => format!("role {} and database {}", ids.role(), ids.database()),
                    _ => format!("Secret {primary}/{secret_name}"),
                },
                ownership::ADOPT_ANNOTATION
            ),
        )
        .await;
    }
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
    } else if new_password && current.is_none() && live.is_some() && !outcome.role_created {
        super::tenant::publish(
            tenant,
            ctx,
            EventType::Warning,
            "CredentialsRecreated",
            &format!(
                "Secret {primary}/{secret_name} held no password: set a new password for role {} and wrote the Secret again",
                ids.role()
            ),
        )
        .await;
    } else if new_password && live.is_none() && !outcome.role_created {
        super::tenant::publish(
            tenant,
            ctx,
            EventType::Warning,
            "CredentialsRecreated",
            &format!(
                "Secret {primary}/{secret_name} was missing: set a new password for role {} and wrote the Secret again",
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
                name: secret_name.clone(),
                namespace: primary.to_owned(),
            }),
            password_set_at: Some(password_set_at),
        }),
        retry: None,
        adopted_from,
    })
}

/// The Tenant UID a credentials Secret records: its [`TENANT_UID_ANNOTATION`], or, for a
/// Secret written before Landlord recorded UIDs, the UID of its controlling owner
/// reference when that is this Tenant (only Landlord set it).
fn secret_owner_uid<'a>(secret: &'a Secret, uid: &str) -> Option<&'a str> {
    ownership::recorded_uid(secret.metadata.annotations.as_ref()).or_else(|| {
        secret
            .owner_references()
            .iter()
            .find(|r| r.kind == "Tenant" && r.controller == Some(true) && r.uid == uid)
            .map(|r| r.uid.as_str())
    })
}

/// Now, to the second: what `metav1.Time` keeps, so that the annotation and the status
/// read back equal to what was written.
fn now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// What the credentials Secret is built from, besides its password state.
struct SecretFields<'a> {
    tenant: &'a Tenant,
    namespace: &'a str,
    connection: &'a Connection,
    ids: &'a TenantIdentifiers,
}

/// The password state a credentials Secret records.
struct SecretState<'a> {
    /// The password the role has (none before the first provisioning completes).
    password: Option<&'a Password>,
    /// The password about to be given to the role.
    pending: Option<&'a Password>,
    /// The rotation request the password answers.
    rotation: Option<&'a str>,
    /// When the password was set.
    password_set_at: Option<&'a Time>,
}

impl SecretFields<'_> {
    /// The credentials Secret: what a libpq client needs, field by field and as one URI,
    /// and the CA that verifies the server when there is one.
    fn secret(&self, state: SecretState<'_>) -> Secret {
        credentials_secret(
            self.tenant,
            self.namespace,
            self.connection,
            self.ids,
            state,
        )
    }
}

/// The credentials Secret: what a libpq client needs, field by field and as one URI, and
/// the CA that verifies the server when there is one. Recorded with the Tenant's UID; no
/// owner reference, so that the garbage collector never deletes what `Retain` keeps.
fn credentials_secret(
    tenant: &Tenant,
    namespace: &str,
    connection: &Connection,
    ids: &TenantIdentifiers,
    state: SecretState<'_>,
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
    let mut data: BTreeMap<String, ByteString> = [
        ("host", connection.host.clone()),
        ("port", connection.port.to_string()),
        ("dbname", ids.database().to_owned()),
        ("user", ids.role().to_owned()),
        ("sslmode", sslmode.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.into_bytes())))
    .collect();
    if let Some(password) = state.password {
        let uri = format!(
            "postgresql://{}:{}@{host}:{}/{}?sslmode={sslmode}",
            percent_encode(ids.role()),
            percent_encode(password.expose()),
            connection.port,
            percent_encode(ids.database()),
        );
        data.insert(
            PASSWORD_KEY.to_owned(),
            ByteString(password.expose().as_bytes().to_vec()),
        );
        data.insert("uri".to_owned(), ByteString(uri.into_bytes()));
    }
    if let Some(pending) = state.pending {
        data.insert(
            PENDING_PASSWORD_KEY.to_owned(),
            ByteString(pending.expose().as_bytes().to_vec()),
        );
    }
    if let Some(ca) = &connection.ca_pem {
        data.insert("ca.crt".to_owned(), ByteString(ca.clone()));
    }
    let mut annotations = BTreeMap::from([(
        TENANT_UID_ANNOTATION.to_owned(),
        tenant.uid().unwrap_or_default(),
    )]);
    if let Some(at) = state.password_set_at {
        annotations.insert(PASSWORD_SET_AT_ANNOTATION.to_owned(), at.0.to_string());
    }
    if let Some(rotation) = state.rotation {
        annotations.insert(ROTATION_ANNOTATION.to_owned(), rotation.to_owned());
    }
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name(&tenant.name_any())),
            namespace: Some(namespace.to_owned()),
            labels: Some(managed_labels(&tenant.name_any())),
            annotations: Some(annotations),
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
    let owner = Owner::adopting(
        tenant.uid().unwrap_or_default(),
        ownership::adopt_from(tenant),
    );
    let dropped = connection
        .admin
        .drop_tenant(&ids, &owner)
        .await
        .map_err(database_error(tenant))?;
    let evidence = connection
        .admin
        .verify_dropped(&ids)
        .await
        .map_err(database_error(tenant))?;
    // What is not this Tenant's stays, and may be listed; anything else is a failure.
    let is_kept = |catalog: &str, name: &str| {
        dropped
            .kept
            .iter()
            .any(|(c, n, _)| c == catalog && n == name)
    };
    let found: Vec<String> = evidence
        .checks
        .iter()
        .filter(|c| c.found.iter().any(|name| !is_kept(&c.catalog, name)))
        .map(|c| format!("{} still lists {}", c.catalog, c.found.join(", ")))
        .collect();
    if !found.is_empty() {
        return Err(Error::DatabaseNotReady(format!(
            "after dropping, the catalog of {} {}",
            evidence.server,
            found.join("; ")
        )));
    }
    let kept: String = dropped
        .kept
        .iter()
        .map(|(catalog, name, why)| format!("; kept {name} ({catalog}), not this Tenant's: {why}"))
        .collect();
    let kept = if dropped.also_dropped.is_empty() {
        kept
    } else {
        format!(
            "; also dropped the role's other databases {}{kept}",
            dropped.also_dropped.join(", ")
        )
    };
    let neither = if kept.is_empty() {
        "lists neither"
    } else {
        "lists neither of this Tenant's"
    };
    Ok(format!(
        "{} database {} and {} role {} on {} (PostgreSQL {}); at {} the catalog ({}) {neither}{kept}",
        if dropped.database_dropped {
            "dropped"
        } else if is_kept("pg_database", ids.database()) {
            "left"
        } else {
            "already gone:"
        },
        ids.database(),
        if dropped.role_dropped {
            "dropped"
        } else if is_kept("pg_roles", ids.role()) {
            "left"
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

/// `deletionPolicy: Retain`: the credentials Secret stays with the database. Secrets
/// written before Landlord recorded UIDs had an owner reference to the Tenant, which the
/// garbage collector would follow: it is removed. Returns whether it was.
pub async fn release_secret(tenant: &Tenant, primary: &str, ctx: &Context) -> Result<bool, Error> {
    let name = secret_name(&tenant.name_any());
    let uid = tenant.uid().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), primary);
    let object_error = |source| Error::Object {
        kind: "Secret",
        name: format!("{primary}/{name}"),
        source,
    };
    let Some(live) = secrets.get_opt(&name).await.map_err(object_error)? else {
        return Ok(false);
    };
    if !live.owner_references().iter().any(|r| r.uid == uid) {
        return Ok(false);
    }
    let kept: Vec<_> = live
        .owner_references()
        .iter()
        .filter(|r| r.uid != uid)
        .collect();
    let patch = serde_json::json!({"metadata": {
        "resourceVersion": live.resource_version(),
        "ownerReferences": kept,
        "annotations": {TENANT_UID_ANNOTATION: uid},
    }});
    match secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(object_error(source)),
    }
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
            SecretState {
                password: Some(&Password::new("p4ss")),
                pending: None,
                rotation: Some("1"),
                password_set_at: Some(&at),
            },
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
        assert_eq!(annotations[TENANT_UID_ANNOTATION], "uid-1");
        assert!(
            !secret
                .data
                .as_ref()
                .expect("data")
                .contains_key(PENDING_PASSWORD_KEY)
        );
        // No owner reference: the garbage collector must never delete what Retain keeps.
        assert!(secret.metadata.owner_references.is_none());
        assert_eq!(
            secret.metadata.labels.as_ref().expect("labels")
                [crate::isolation::labels::TENANT_LABEL],
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
            SecretState {
                password: Some(&Password::new("p")),
                pending: None,
                rotation: None,
                password_set_at: Some(&Time(k8s_openapi::jiff::Timestamp::now())),
            },
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
    fn a_staged_secret_holds_the_pending_password_beside_the_current_one() {
        let ids = TenantIdentifiers::for_tenant("acme");
        let secret = credentials_secret(
            &tenant(),
            "tenant-acme",
            &connection("db.example", TlsMode::Disable, None),
            &ids,
            SecretState {
                password: Some(&Password::new("old")),
                pending: Some(&Password::new("new")),
                rotation: None,
                password_set_at: None,
            },
        );
        assert_eq!(value(&secret, "password"), "old");
        assert_eq!(value(&secret, PENDING_PASSWORD_KEY), "new");
        assert!(value(&secret, "uri").contains(":old@"));
        // Before the first provisioning completes there is no password yet.
        let first = credentials_secret(
            &tenant(),
            "tenant-acme",
            &connection("db.example", TlsMode::Disable, None),
            &ids,
            SecretState {
                password: None,
                pending: Some(&Password::new("new")),
                rotation: None,
                password_set_at: None,
            },
        );
        let data = first.data.as_ref().expect("data");
        assert!(!data.contains_key("password") && !data.contains_key("uri"));
    }

    #[test]
    fn percent_encoding_keeps_unreserved_characters_only() {
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
        assert_eq!(percent_encode("a b@c:d/e"), "a%20b%40c%3Ad%2Fe");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }
}
