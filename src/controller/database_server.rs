//! The DatabaseServer controller: reads each server's administrative credentials, keeps
//! one bounded connection pool per server in the [`Registry`] the Tenant controller
//! provisions databases through, and reports in status whether the server is reachable
//! (`Reachable`, with the reason when it is not), its version and how many tenants use it.
//!
//! A DatabaseServer that tenants still use cannot go away: the finalizer
//! `landlord.dev/in-use` holds its deletion until no Tenant names it (the erasure of those
//! tenants needs the server to drop their databases), as `kubernetes.io/pvc-protection`
//! holds a PersistentVolumeClaim that a pod uses.
//!
//! When the operator's pod labels are known (`--pod-labels`, set by the chart), each
//! server with a `spec.network` also gets an egress NetworkPolicy for the operator's
//! pods in the operator's namespace, so the chart's own policy needs no database entry.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use super::{Context, Error};
use crate::api::{
    Condition, ConditionStatus, DatabaseServer, DatabaseServerStatus, SecretKeyRef, Tenant,
    TlsMode, set_condition,
};
use crate::database::{DatabaseAdmin, DatabaseError, Password, PostgresAdmin, ServerConfig};
use crate::isolation::network::{operator_database_policy, operator_database_policy_name};

/// The finalizer that keeps a DatabaseServer while tenants use it.
pub const IN_USE_FINALIZER: &str = "landlord.dev/in-use";

/// Condition types of a DatabaseServer.
pub mod conditions {
    /// Landlord can connect and authenticate.
    pub const REACHABLE: &str = "Reachable";
    /// Set while the server is being deleted and tenants still use it.
    pub const IN_USE: &str = "InUse";
}

/// The administrative connection to one server, as the Tenant controller uses it.
#[derive(Clone)]
pub struct Connection {
    /// The pool of administrative connections.
    pub admin: Arc<dyn DatabaseAdmin>,
    /// `host`, `port` and TLS mode tenants connect with.
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// The CA (PEM) that verifies the server, given to tenants with their credentials.
    pub ca_pem: Option<Vec<u8>>,
}

enum Entry {
    /// The last look at the server connected and authenticated.
    Usable {
        fingerprint: [u8; 32],
        connection: Connection,
    },
    /// The last look failed; the server's `Reachable` condition says why.
    Unusable,
}

/// What the registry knows of a server.
pub enum Lookup {
    /// Connected at the last look.
    Usable(Connection),
    /// The last look failed (see the server's `Reachable` condition).
    Unusable,
    /// Not looked at since this replica started leading: the server's status is from an
    /// earlier look and may be out of date.
    NotYetChecked,
}

/// One connection pool per DatabaseServer, replaced when the server's settings or
/// credentials change and dropped when the server cannot be used.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Registry {
    /// What is known of the server called `name`.
    pub fn lookup(&self, name: &str) -> Lookup {
        match self.lock().get(name) {
            Some(Entry::Usable { connection, .. }) => Lookup::Usable(connection.clone()),
            Some(Entry::Unusable) => Lookup::Unusable,
            None => Lookup::NotYetChecked,
        }
    }

    /// The connection to the server called `name`, if it is usable.
    pub fn get(&self, name: &str) -> Option<Connection> {
        match self.lookup(name) {
            Lookup::Usable(connection) => Some(connection),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pool for `config`, reusing the current one when nothing changed. It counts as
    /// usable only once [`Registry::usable`] says so.
    fn ensure(&self, name: &str, config: &ServerConfig) -> Result<Connection, DatabaseError> {
        let fingerprint = fingerprint(config);
        let mut entries = self.lock();
        if let Some(Entry::Usable {
            fingerprint: current,
            connection,
        }) = entries.get(name)
            && *current == fingerprint
        {
            return Ok(connection.clone());
        }
        let connection = Connection {
            admin: Arc::new(PostgresAdmin::new(config)?),
            host: config.host.clone(),
            port: config.port,
            tls: config.tls,
            ca_pem: config.ca_pem.clone(),
        };
        entries.insert(
            name.to_owned(),
            Entry::Usable {
                fingerprint,
                connection: connection.clone(),
            },
        );
        Ok(connection)
    }

    /// Records that the last look at the server failed; its pool is closed.
    fn unusable(&self, name: &str) {
        self.lock().insert(name.to_owned(), Entry::Unusable);
    }

    fn remove(&self, name: &str) {
        self.lock().remove(name);
    }
}

/// A digest of everything that decides how to connect, so that a changed password or CA
/// replaces the pool without keeping the secrets themselves around for comparison.
fn fingerprint(config: &ServerConfig) -> [u8; 32] {
    let mut hash = Sha256::new();
    for part in [
        config.host.as_bytes(),
        &config.port.to_be_bytes(),
        config.user.as_bytes(),
        config.password.expose().as_bytes(),
        config.database.as_bytes(),
        format!("{:?}", config.tls).as_bytes(),
        config.ca_pem.as_deref().unwrap_or_default(),
        &config.max_connections.to_be_bytes(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().into()
}

/// Why a server cannot be used, before any connection is tried.
#[derive(Debug)]
struct Problem {
    reason: &'static str,
    message: String,
}

/// Refuses a Secret outside the operator's own namespace, before any request is made.
fn check_namespace(
    reference: &SecretKeyRef,
    what: &str,
    operator_namespace: &str,
) -> Result<(), Problem> {
    if reference.namespace == operator_namespace {
        return Ok(());
    }
    Err(Problem {
        reason: "SecretForbidden",
        message: format!(
            "the {what} is named in the Secret {}/{}, outside Landlord's own namespace {operator_namespace}: Landlord reads the Secrets that configure it only from its own namespace, and did not read this one; move the Secret to {operator_namespace}",
            reference.namespace, reference.name
        ),
    })
}

async fn secret_value(
    ctx: &Context,
    reference: &SecretKeyRef,
    what: &str,
) -> Result<Vec<u8>, Problem> {
    check_namespace(reference, what, &ctx.config.isolation.operator_namespace)?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &reference.namespace);
    let secret = match api.get_opt(&reference.name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(Problem {
                reason: "SecretMissing",
                message: format!(
                    "the Secret {}/{} holding the {what} does not exist",
                    reference.namespace, reference.name
                ),
            });
        }
        Err(kube::Error::Api(status)) if status.code == 403 => {
            return Err(Problem {
                reason: "SecretForbidden",
                message: format!(
                    "Landlord may not read the Secret {}/{} holding the {what}: {}",
                    reference.namespace, reference.name, status.message
                ),
            });
        }
        Err(e) => {
            return Err(Problem {
                reason: "SecretUnreadable",
                message: format!(
                    "reading the Secret {}/{} holding the {what} failed: {e}",
                    reference.namespace, reference.name
                ),
            });
        }
    };
    secret
        .data
        .and_then(|mut data| data.remove(&reference.key))
        .map(|bytes| bytes.0)
        .ok_or_else(|| Problem {
            reason: "SecretMissing",
            message: format!(
                "the Secret {}/{} has no key {:?} (the {what})",
                reference.namespace, reference.name, reference.key
            ),
        })
}

fn text(bytes: Vec<u8>, reference: &SecretKeyRef, what: &str) -> Result<String, Problem> {
    let value = String::from_utf8(bytes).map_err(|_| Problem {
        reason: "SecretInvalid",
        message: format!(
            "the {what} in the Secret {}/{} (key {:?}) is not UTF-8 text",
            reference.namespace, reference.name, reference.key
        ),
    })?;
    // A trailing newline is what `kubectl create secret --from-file` of an edited file
    // leaves; it is never part of a user name or password.
    let value = value.trim_end_matches(['\r', '\n']).to_owned();
    if value.is_empty() {
        return Err(Problem {
            reason: "SecretInvalid",
            message: format!(
                "the {what} in the Secret {}/{} (key {:?}) is empty",
                reference.namespace, reference.name, reference.key
            ),
        });
    }
    Ok(value)
}

/// How to connect to `server`, from its spec and its Secrets.
async fn server_config(server: &DatabaseServer, ctx: &Context) -> Result<ServerConfig, Problem> {
    let spec = &server.spec;
    let credentials = &spec.admin_credentials;
    let key = |key: &str| SecretKeyRef {
        name: credentials.secret.name.clone(),
        namespace: credentials.secret.namespace.clone(),
        key: key.to_owned(),
    };
    let user_ref = key(&credentials.username_key);
    let password_ref = key(&credentials.password_key);
    // Every reference is checked before any Secret is read.
    let operator_namespace = &ctx.config.isolation.operator_namespace;
    check_namespace(&user_ref, "administrative credentials", operator_namespace)?;
    if let Some(reference) = &spec.tls.ca_secret {
        check_namespace(reference, "CA certificate", operator_namespace)?;
    }
    let user = text(
        secret_value(ctx, &user_ref, "administrative user name").await?,
        &user_ref,
        "administrative user name",
    )?;
    let password = text(
        secret_value(ctx, &password_ref, "administrative password").await?,
        &password_ref,
        "administrative password",
    )?;
    let ca_pem = match &spec.tls.ca_secret {
        Some(reference) => {
            let pem = secret_value(ctx, reference, "CA certificate").await?;
            Some(
                crate::database::certificates_only(&pem).map_err(|e| Problem {
                    reason: "CAInvalid",
                    message: format!(
                        "the CA certificate in the Secret {}/{} (key {:?}) {e}",
                        reference.namespace, reference.name, reference.key
                    ),
                })?,
            )
        }
        None => None,
    };
    let port = u16::try_from(spec.port).map_err(|_| Problem {
        reason: "InvalidSpec",
        message: format!("spec.port {} is not a TCP port", spec.port),
    })?;
    let mut config = ServerConfig::new(&spec.host, port, &user, Password::new(password));
    config.database = spec.admin_database.clone();
    config.tls = spec.tls.mode;
    config.ca_pem = ca_pem;
    config.max_connections = usize::try_from(spec.max_connections).unwrap_or(1).max(1);
    Ok(config)
}

/// The Tenants that use the server called `name`: every Tenant naming it, except those
/// whose deletion has already passed the erasure (no finalizer left).
pub fn users(ctx: &Context, name: &str) -> Vec<String> {
    let mut names: Vec<String> = ctx
        .stores
        .tenants
        .state()
        .iter()
        .filter(|t| uses(t, name))
        .map(|t| t.name_any())
        .collect();
    names.sort();
    names
}

/// Whether `tenant` names the server and still needs it (its erasure is not done).
pub(super) fn uses(tenant: &Tenant, server: &str) -> bool {
    let names_it = tenant
        .spec
        .database
        .as_ref()
        .is_some_and(|d| d.server_ref == server);
    let gone = tenant.metadata.deletion_timestamp.is_some() && tenant.finalizers().is_empty();
    names_it && !gone
}

/// Entry point for the controller runtime.
pub async fn reconcile(server: Arc<DatabaseServer>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_counted(&ctx, "databaseserver", &server.name_any(), async {
        if server.metadata.deletion_timestamp.is_some() {
            finalize(&server, &ctx).await
        } else {
            observe(&server, &ctx).await
        }
    })
    .await
}

/// Backs off by error category, and says so in the log.
pub fn error_policy(server: Arc<DatabaseServer>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retries.requeue(
        "databaseserver",
        "DatabaseServer",
        &server.name_any(),
        error,
    )
}

fn server_error(server: &DatabaseServer) -> impl Fn(kube::Error) -> Error + '_ {
    move |source| Error::Object {
        kind: "DatabaseServer",
        name: server.name_any(),
        source,
    }
}

async fn observe(server: &DatabaseServer, ctx: &Context) -> Result<Action, Error> {
    let name = server.name_any();
    add_finalizer(server, ctx).await?;
    let generation = server.metadata.generation;
    let mut status = server.status.clone().unwrap_or_default();
    let probe = probe(server, ctx).await;
    let reachable = match &probe {
        Ok(version) => {
            status.server_version = Some(version.clone());
            Condition::new(
                conditions::REACHABLE,
                ConditionStatus::True,
                "Connected",
                format!(
                    "connected to {}:{} as the administrative role (PostgreSQL {version})",
                    server.spec.host, server.spec.port
                ),
                generation,
            )
        }
        Err(problem) => Condition::new(
            conditions::REACHABLE,
            ConditionStatus::False,
            problem.reason,
            &problem.message,
            generation,
        ),
    };
    set_condition(&mut status.conditions, reachable.clone());
    status.conditions.retain(|c| c.type_ != conditions::IN_USE);
    status.tenants = Some(i32::try_from(users(ctx, &name).len()).unwrap_or(i32::MAX));
    status.observed_generation = generation;
    finish_status(server, ctx, status).await?;
    apply_egress_policy(server, ctx).await?;
    match probe {
        Ok(_) => Ok(Action::requeue(ctx.config.resync)),
        Err(problem) => Err(Error::DatabaseServer {
            name,
            reason: problem.reason,
            message: problem.message,
        }),
    }
}

/// Connects to the server (keeping its pool in the registry) and asks its version. Tenants
/// waiting for the server's first look go on at once; a server that cannot be used keeps
/// no pool, and its tenants wait.
async fn probe(server: &DatabaseServer, ctx: &Context) -> Result<String, Problem> {
    let name = server.name_any();
    let was_usable = matches!(ctx.databases.lookup(&name), Lookup::Usable(_));
    let probe = match server_config(server, ctx).await {
        Err(problem) => Err(problem),
        Ok(config) => match ctx.databases.ensure(&name, &config) {
            Err(e) => Err(Problem {
                reason: e.reason(),
                message: e.to_string(),
            }),
            Ok(connection) => connection
                .admin
                .server_version()
                .await
                .map_err(|e| Problem {
                    reason: e.reason(),
                    message: e.to_string(),
                }),
        },
    };
    match &probe {
        Ok(_) if !was_usable => {
            for tenant in users(ctx, &name) {
                let _ = ctx.tenant_triggers.unbounded_send(ObjectRef::new(&tenant));
            }
        }
        Ok(_) => {}
        Err(_) => ctx.databases.unusable(&name),
    }
    probe
}

/// Deletion: waits for the last Tenant using the server, then lets it go. Meanwhile the
/// server stays usable for them: their erasure drops their databases through it, also
/// when this replica started (or took the lead) after the deletion began.
async fn finalize(server: &DatabaseServer, ctx: &Context) -> Result<Action, Error> {
    if !server.finalizers().iter().any(|f| f == IN_USE_FINALIZER) {
        return Ok(Action::await_change());
    }
    let name = server.name_any();
    let users = users(ctx, &name);
    if users.is_empty() {
        ctx.databases.remove(&name);
        remove_finalizer(server, ctx).await?;
        info!(server = %name, "no tenant uses the server any more: deletion released");
        return Ok(Action::await_change());
    }
    if !matches!(ctx.databases.lookup(&name), Lookup::Usable(_))
        && let Err(problem) = probe(server, ctx).await
    {
        warn!(server = %name, reason = problem.reason, message = %problem.message, "a DatabaseServer being deleted cannot be used by the tenants that still need it");
    }
    let shown: Vec<&str> = users.iter().take(10).map(String::as_str).collect();
    let more = users.len().saturating_sub(shown.len());
    let message = format!(
        "deletion waits until no Tenant uses this server; still used by {}{}: delete those Tenants (their erasure drops their databases here) first",
        shown.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    let mut status = server.status.clone().unwrap_or_default();
    set_condition(
        &mut status.conditions,
        Condition::new(
            conditions::IN_USE,
            ConditionStatus::True,
            "TenantsRemain",
            &message,
            server.metadata.generation,
        ),
    );
    status.tenants = Some(i32::try_from(users.len()).unwrap_or(i32::MAX));
    finish_status(server, ctx, status).await?;
    Err(Error::ServerInUse { name, message })
}

async fn add_finalizer(server: &DatabaseServer, ctx: &Context) -> Result<(), Error> {
    let api: Api<DatabaseServer> = Api::all(ctx.client.clone());
    super::finalizers::ensure(&api, server, IN_USE_FINALIZER)
        .await
        .map_err(server_error(server))
}

async fn remove_finalizer(server: &DatabaseServer, ctx: &Context) -> Result<(), Error> {
    let api: Api<DatabaseServer> = Api::all(ctx.client.clone());
    super::finalizers::remove(&api, &server.name_any(), IN_USE_FINALIZER)
        .await
        .map_err(server_error(server))
}

/// Writes `status` if it changed, with an Event for every condition that changed status
/// ([`super::status::finish`]).
async fn finish_status(
    server: &DatabaseServer,
    ctx: &Context,
    status: DatabaseServerStatus,
) -> Result<(), Error> {
    let old = server.status.clone().unwrap_or_default();
    let api: Api<DatabaseServer> = Api::all(ctx.client.clone());
    super::status::finish(ctx, &api, server, &old, &status, conditions::REACHABLE)
        .await
        .map_err(server_error(server))
}

/// Keeps the operator's egress NetworkPolicy to this server, when the operator's pod
/// labels are known: applied when the server has a `spec.network`, deleted when not.
async fn apply_egress_policy(server: &DatabaseServer, ctx: &Context) -> Result<(), Error> {
    let Some(pod_labels) = &ctx.config.operator_pod_labels else {
        return Ok(());
    };
    let namespace = &ctx.config.isolation.operator_namespace;
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), namespace);
    let name = operator_database_policy_name(&server.name_any());
    let live = ctx
        .stores
        .policies
        .get(&ObjectRef::new(&name).within(namespace));
    match operator_database_policy(server, namespace, pod_labels) {
        Some(desired) => {
            super::apply::apply(&api, &desired, live.as_deref()).await?;
        }
        None if live.is_some() => super::apply::delete(&api, &name).await?,
        None => {}
    }
    Ok(())
}

/// The DatabaseServer a Tenant uses, for the watch that re-counts a server's tenants.
/// Only a change in which server the tenant counts for triggers a reconcile, so that a
/// busy tenant does not make its server probe the database again and again.
pub fn server_of_tenant() -> impl Fn(Arc<Tenant>) -> Option<ObjectRef<DatabaseServer>> + Send + Sync
{
    let seen: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());
    move |tenant: Arc<Tenant>| {
        let server = tenant
            .spec
            .database
            .as_ref()
            .map(|d| d.server_ref.clone())
            .filter(|s| uses(&tenant, s));
        let mut seen = seen.lock().unwrap_or_else(PoisonError::into_inner);
        let before = seen.insert(tenant.name_any(), server.clone()).flatten();
        if before == server {
            return None;
        }
        // Counted before and not now (deleted, or its erasure is done): the old server
        // must re-count too; `spec.database.serverRef` never changes otherwise.
        server.or(before).map(|s| ObjectRef::new(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(password: &str) -> ServerConfig {
        ServerConfig::new("db.example", 5432, "admin", Password::new(password))
    }

    #[test]
    fn fingerprint_changes_with_the_password_and_ca() {
        let a = fingerprint(&config("one"));
        assert_eq!(a, fingerprint(&config("one")));
        assert_ne!(a, fingerprint(&config("two")));
        let mut with_ca = config("one");
        with_ca.ca_pem = Some(b"-----BEGIN CERTIFICATE-----".to_vec());
        assert_ne!(a, fingerprint(&with_ca));
    }

    #[test]
    fn fingerprint_separates_fields() {
        // "ab" + "c" and "a" + "bc" must not collide.
        let mut one = config("x");
        one.host = "ab".into();
        one.user = "c".into();
        let mut two = config("x");
        two.host = "a".into();
        two.user = "bc".into();
        assert_ne!(fingerprint(&one), fingerprint(&two));
    }

    #[test]
    fn the_registry_reuses_a_pool_until_the_settings_change() {
        let registry = Registry::default();
        assert!(matches!(registry.lookup("main"), Lookup::NotYetChecked));
        let first = registry.ensure("main", &config("one")).expect("pool");
        let again = registry.ensure("main", &config("one")).expect("pool");
        assert!(Arc::ptr_eq(&first.admin, &again.admin));
        let rotated = registry.ensure("main", &config("two")).expect("pool");
        assert!(!Arc::ptr_eq(&first.admin, &rotated.admin));
        registry.unusable("main");
        assert!(matches!(registry.lookup("main"), Lookup::Unusable));
        assert!(registry.get("main").is_none());
        registry.remove("main");
        assert!(matches!(registry.lookup("main"), Lookup::NotYetChecked));
    }

    #[test]
    fn secret_text_is_trimmed_and_must_not_be_empty() {
        let reference = SecretKeyRef {
            name: "s".into(),
            namespace: "n".into(),
            key: "password".into(),
        };
        assert_eq!(
            text(b"secret\n".to_vec(), &reference, "password").expect("valid"),
            "secret"
        );
        let empty = text(b"\n".to_vec(), &reference, "password").expect_err("empty");
        assert_eq!(empty.reason, "SecretInvalid");
        assert!(!empty.message.contains("secret\n"));
        let binary = text(vec![0xff, 0xfe], &reference, "password").expect_err("not UTF-8");
        assert_eq!(binary.reason, "SecretInvalid");
    }
}
