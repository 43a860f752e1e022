//! The Tenant controller: a Tenant becomes its isolated namespaces (Namespace, quota,
//! limits, owners' RoleBinding, NetworkPolicies), kept as built and reported in status;
//! deleting it runs the deletion workflow behind the `landlord.dev/erasure` finalizer.
//!
//! The reconcile is the pipeline of the conventions: observe (caches) → validate (pure,
//! [`crate::isolation::validate`]) → every namespace to create recorded in
//! `status.namespaces` first → the key ([`super::tenant_key`]) → build (pure,
//! [`crate::isolation::build`]) → apply ([`super::apply`], skipping what already matches)
//! → prune → the database ([`super::tenant_database`]) → status (computed from what was
//! applied, written only when it changed, and only over the version it was computed
//! from). `Ready` is composed of the steps' parts ([`parts`]): each step sets its
//! condition, and `Ready` names the required ones that are not True.

use std::sync::{Arc, PoisonError};

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{info, warn};

use super::apply::{FIELD_MANAGER, Outcome};
use super::status::Part;
use super::{Context, Error, backup_schedule, tenant_database, tenant_key};
use crate::api::{
    Condition, ConditionStatus, Tenant, TenantPhase, TenantStatus, find_condition, set_condition,
};
use crate::isolation::labels::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL};
use crate::isolation::ownership::{self, Claim};
use crate::isolation::{
    self, DesiredObject, ObjectId, ObjectKind, ValidatedTenant, ValidationError,
};
use crate::keys::TenantRef;

/// The finalizer behind which deletion runs.
pub const FINALIZER: &str = "landlord.dev/erasure";

/// Condition types this controller owns.
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const NAMESPACES_READY: &str = "NamespacesReady";
    pub const NETWORK_ISOLATED: &str = "NetworkIsolated";
    pub const ISOLATED: &str = "Isolated";
    pub const MEMBERSHIP_VERIFIED: &str = "MembershipVerified";
}

fn tenant_error(tenant: &Tenant) -> impl Fn(kube::Error) -> Error + '_ {
    move |source| Error::Tenant {
        name: tenant.name_any(),
        source,
    }
}

/// Entry point for the controller runtime.
pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    super::reconcile_counted(&ctx, "tenant", &tenant.name_any(), async {
        if tenant.metadata.deletion_timestamp.is_some() {
            crate::erasure::workflow::run(&tenant, &ctx).await
        } else {
            provision(&tenant, &ctx).await
        }
    })
    .await
}

/// Backs off by error category, and says so in the log.
pub fn error_policy(tenant: Arc<Tenant>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.retries
        .requeue("tenant", "Tenant", &tenant.name_any(), error)
}

// ---------------------------------------------------------------------------------------
// Provisioning

/// What applying found, for the status.
#[derive(Debug, Default)]
struct Applied {
    /// Namespaces that are not this Tenant's (another owner's, or retained by an earlier
    /// Tenant of the same name), with why: never touched.
    taken: Vec<(String, ValidationError)>,
    /// The earlier Tenant's UID, when this pass took over what it retained.
    adopted_from: Option<String>,
    /// Objects written (created or changed) in this pass.
    written: usize,
}

impl Applied {
    fn is_taken(&self, namespace: &str) -> bool {
        self.taken.iter().any(|(ns, _)| ns == namespace)
    }
}

async fn provision(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    if !tenant.finalizers().iter().any(|f| f == FINALIZER) {
        // The patch changes the Tenant, and its watch event brings the next pass with the
        // new resourceVersion, which the status write is guarded by.
        ensure_finalizer(tenant, ctx).await?;
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }

    // observe
    let server = tenant.spec.database.as_ref().and_then(|db| {
        ctx.stores
            .database_servers
            .get(&ObjectRef::new(&db.server_ref))
    });
    // validate
    let validated = match isolation::validate(tenant, server.as_deref(), &ctx.config.isolation) {
        Ok(v) => v,
        Err(errors) => {
            let message = errors.to_string();
            let mut status = tenant.status.clone().unwrap_or_default();
            let reason = reason_of(errors.category());
            let generation = tenant.metadata.generation;
            set_condition(
                &mut status.conditions,
                Condition::new(
                    conditions::NAMESPACES_READY,
                    ConditionStatus::False,
                    &reason,
                    &message,
                    generation,
                ),
            );
            // Nothing of this generation was built: Ready, the phase and
            // observedGeneration say so too, not only the one condition.
            summarize(tenant, &mut status);
            finish_status(tenant, ctx, status).await?;
            return Ok(Action::requeue(ctx.config.resync));
        }
    };
    // record before create: a namespace is pruned only when the spec or the status names
    // it (see `known_namespaces`), so one created by a pass whose status write then failed
    // (a 409 after the spec changed again, a crash) and dropped from the spec after that
    // would stay forever. The write is guarded by the version the spec was read at; the
    // pass goes on from the Tenant it answers, so its own status write is guarded by that.
    let recorded;
    let tenant = match with_namespaces_recorded(tenant, &validated) {
        Some(status) => {
            recorded = record_namespaces(tenant, ctx, &status).await?;
            &recorded
        }
        None => tenant,
    };
    // the key its backups are encrypted to, in the operator's namespace. Before apply:
    // it depends on nothing apply does, and what apply changes (a namespace taken over)
    // is then followed closely by the status that records it.
    let key = tenant_key::provision(tenant, ctx).await;
    // build + apply + prune
    let applied = apply_all(&validated, ctx).await?;
    // the database, its role and the credentials Secret in the primary namespace
    if let Some(from) = &applied.adopted_from {
        publish(
            tenant,
            ctx,
            EventType::Normal,
            "RetainedDataAdopted",
            &format!(
                "took over the namespaces retained by the earlier Tenant {} (UID {from}), as {} asks",
                tenant.name_any(),
                ownership::ADOPT_ANNOTATION
            ),
        )
        .await;
    }
    let primary = tenant.primary_namespace();
    let database = if let Some((_, why)) = applied.taken.iter().find(|(ns, _)| *ns == primary) {
        let reason = reason_of(why.category());
        tenant.spec.database.as_ref().map(|_| {
            let message = format!(
                "the credentials Secret goes into the primary namespace {primary}, which is not this tenant's"
            );
            tenant_database::Report {
                condition: condition(
                    tenant_database::DATABASE_READY,
                    false,
                    &reason,
                    &message,
                    tenant.metadata.generation,
                ),
                status: tenant.status.as_ref().and_then(|s| s.database.clone()),
                retry: None,
                adopted_from: None,
            }
        })
    } else {
        tenant_database::provision(tenant, &primary, ctx).await
    };
    // backups: the schedule creates TenantBackups, retention deletes them
    let backups = backup_schedule::reconcile(tenant, ctx).await?;
    let wake_in = backups.wake_in;
    // status
    let (status, retry) =
        provisioned_status(tenant, &validated, &applied, database, key, backups, ctx);
    finish_status(tenant, ctx, status).await?;
    match retry {
        Some(e) => Err(e),
        None => Ok(Action::requeue(
            wake_in.map_or(ctx.config.resync, |w| w.min(ctx.config.resync)),
        )),
    }
}

fn reason_of(category: &str) -> String {
    category
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

async fn ensure_finalizer(tenant: &Tenant, ctx: &Context) -> Result<(), Error> {
    super::finalizers::ensure(&Api::<Tenant>::all(ctx.client.clone()), tenant, FINALIZER)
        .await
        .map_err(tenant_error(tenant))
}

fn reference<K>(id: &ObjectId) -> ObjectRef<K>
where
    K: Resource<DynamicType = ()>,
{
    match &id.namespace {
        Some(ns) => ObjectRef::new(&id.name).within(ns),
        None => ObjectRef::new(&id.name),
    }
}

fn cached<K>(store: &Store<K>, id: &ObjectId) -> Option<Arc<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.get(&reference(id))
}

async fn apply_one<K>(
    ctx: &Context,
    desired: &K,
    store: &Store<K>,
    id: &ObjectId,
) -> Result<Outcome, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + std::fmt::Debug
        + 'static,
{
    let namespace = id.namespace.as_deref().unwrap_or_default();
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let live = cached(store, id);
    Ok(super::apply::apply(&api, desired, live.as_deref()).await?)
}

/// Applies every desired object, in order, then prunes what is no longer wanted.
async fn apply_all(validated: &ValidatedTenant<'_>, ctx: &Context) -> Result<Applied, Error> {
    let mut applied = Applied::default();
    let stores = &ctx.stores;
    let objects = isolation::build(validated);
    for object in &objects {
        let id = object.id();
        let namespace = id.namespace.as_deref().unwrap_or(&id.name);
        if applied.is_taken(namespace) {
            continue;
        }
        let outcome = match object {
            DesiredObject::Namespace(ns) => match apply_namespace(validated, ns, ctx).await? {
                NamespaceOutcome::Taken(why) => {
                    warn!(tenant = %validated.name(), namespace = %id.name, why = %why, "namespace not adopted");
                    applied.taken.push((id.name.clone(), why));
                    continue;
                }
                NamespaceOutcome::Adopted { from, outcome } => {
                    info!(tenant = %validated.name(), namespace = %id.name, from = %from, "retained namespace adopted");
                    applied.adopted_from = Some(from);
                    outcome
                }
                NamespaceOutcome::Done(outcome) => outcome,
            },
            DesiredObject::ResourceQuota(o) => apply_one(ctx, o, &stores.quotas, &id).await?,
            DesiredObject::LimitRange(o) => apply_one(ctx, o, &stores.limits, &id).await?,
            DesiredObject::RoleBinding(o) => apply_one(ctx, o, &stores.bindings, &id).await?,
            DesiredObject::NetworkPolicy(o) => apply_one(ctx, o, &stores.policies, &id).await?,
        };
        if outcome == Outcome::Applied {
            applied.written += 1;
        }
    }
    prune(validated, &objects, ctx).await?;
    Ok(applied)
}

enum NamespaceOutcome {
    Done(Outcome),
    /// Retained by an earlier Tenant of the same name and taken over, as asked.
    Adopted {
        from: String,
        outcome: Outcome,
    },
    Taken(ValidationError),
}

/// A namespace is created only if it does not exist (a create, not an apply, so one that
/// appears meanwhile is refused by the server instead of taken over), and updated only if
/// it is this tenant's by UID ([`isolation::check_namespace_claim`]).
async fn apply_namespace(
    validated: &ValidatedTenant<'_>,
    desired: &Namespace,
    ctx: &Context,
) -> Result<NamespaceOutcome, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let name = desired.name_any();
    let live = ctx.stores.namespaces.get(&ObjectRef::new(&name));
    match live {
        Some(live) => update_namespace(validated, desired, &live, &api).await,
        None => {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PostParams::default()
            };
            match api.create(&params, desired).await {
                Ok(_) => Ok(NamespaceOutcome::Done(Outcome::Applied)),
                Err(kube::Error::Api(status)) if status.code == 409 => {
                    // The cache may simply lag behind this operator's own create (a
                    // requeue right after it): the API server knows whose it is.
                    match api.get_opt(&name).await {
                        Ok(Some(live)) => update_namespace(validated, desired, &live, &api).await,
                        // Deleted again meanwhile: the next pass creates it.
                        Ok(None) => Err(Error::NamespacesTerminating(format!(
                            "namespace {name} was deleted while being created; it is created again"
                        ))),
                        Err(source) => {
                            Err(
                                super::apply::ApplyError::new("get", "Namespace", &name, source)
                                    .into(),
                            )
                        }
                    }
                }
                Err(source) => {
                    Err(super::apply::ApplyError::new("create", "Namespace", &name, source).into())
                }
            }
        }
    }
}

/// Updates an existing namespace if it is this tenant's.
async fn update_namespace(
    validated: &ValidatedTenant<'_>,
    desired: &Namespace,
    live: &Namespace,
    api: &Api<Namespace>,
) -> Result<NamespaceOutcome, Error> {
    let claim = match isolation::check_namespace_claim(validated, live) {
        Ok(claim) => claim,
        Err(e) => return Ok(NamespaceOutcome::Taken(e)),
    };
    if live.metadata.deletion_timestamp.is_some() {
        return Err(Error::NamespacesTerminating(format!(
            "namespace {} is still terminating; it is re-created once it is gone",
            live.name_any()
        )));
    }
    let outcome = super::apply::apply(api, desired, Some(live)).await?;
    Ok(match claim {
        Claim::Adopt { from } => NamespaceOutcome::Adopted { from, outcome },
        _ => NamespaceOutcome::Done(outcome),
    })
}

/// The Tenant's status with every namespace `validated` asks for recorded in
/// `status.namespaces`, or `None` when they all are.
fn with_namespaces_recorded(
    tenant: &Tenant,
    validated: &ValidatedTenant<'_>,
) -> Option<TenantStatus> {
    let mut status = tenant.status.clone().unwrap_or_default();
    let missing: Vec<String> = validated
        .namespaces()
        .iter()
        .filter(|n| !status.namespaces.contains(n))
        .cloned()
        .collect();
    if missing.is_empty() {
        return None;
    }
    status.namespaces.extend(missing);
    Some(status)
}

/// Writes `status` (the Tenant's, with more namespaces recorded) over the version the
/// Tenant was read at, and returns the Tenant as written.
async fn record_namespaces(
    tenant: &Tenant,
    ctx: &Context,
    status: &TenantStatus,
) -> Result<Tenant, Error> {
    super::status::write_over(&Api::<Tenant>::all(ctx.client.clone()), tenant, status)
        .await
        .map_err(tenant_error(tenant))
}

/// The namespaces that can be the Tenant's: those its spec asks for and those its status
/// (written only by Landlord) recorded. Nothing outside them is ever pruned or deleted,
/// whatever it records: someone allowed to annotate a namespace but not to delete it
/// must not get Landlord to delete it for them.
fn known_namespaces(tenant: &Tenant) -> std::collections::BTreeSet<String> {
    let mut names: std::collections::BTreeSet<String> =
        tenant.namespace_names().into_iter().collect();
    if let Some(status) = &tenant.status {
        names.extend(status.namespaces.iter().cloned());
    }
    names
}

/// The objects in `store` that Landlord created for this Tenant: within its
/// [`known_namespaces`], labelled for it (the cheap filter) and recording its UID (what
/// decides), or the UID of the earlier Tenant it adopts from.
fn owned_by<K>(store: &Store<K>, tenant: &Tenant, kind: ObjectKind) -> Vec<ObjectId>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let name = tenant.name_any();
    let uid = tenant.uid().unwrap_or_default();
    let adopt = ownership::adopt_from(tenant);
    let known = known_namespaces(tenant);
    store
        .state()
        .iter()
        .filter(|o| {
            let namespace = o.meta().namespace.clone().unwrap_or_else(|| o.name_any());
            let labels = o.labels();
            known.contains(&namespace)
                && labels.get(TENANT_LABEL) == Some(&name)
                && labels
                    .get(MANAGED_BY_LABEL)
                    .is_some_and(|m| m == MANAGED_BY)
                && ownership::claim(
                    &uid,
                    adopt,
                    ownership::recorded_uid(o.meta().annotations.as_ref()),
                )
                .is_usable()
        })
        .map(|o| ObjectId {
            kind,
            namespace: o.meta().namespace.clone(),
            name: o.name_any(),
        })
        .collect()
}

/// Every object in the caches that Landlord created for this Tenant.
fn existing_objects(ctx: &Context, tenant: &Tenant) -> Vec<ObjectId> {
    let stores = &ctx.stores;
    let mut ids = owned_by(&stores.namespaces, tenant, ObjectKind::Namespace);
    ids.extend(owned_by(&stores.quotas, tenant, ObjectKind::ResourceQuota));
    ids.extend(owned_by(&stores.limits, tenant, ObjectKind::LimitRange));
    ids.extend(owned_by(&stores.bindings, tenant, ObjectKind::RoleBinding));
    ids.extend(owned_by(
        &stores.policies,
        tenant,
        ObjectKind::NetworkPolicy,
    ));
    ids
}

async fn delete_object(ctx: &Context, id: &ObjectId) -> Result<(), Error> {
    let client = ctx.client.clone();
    let ns = id.namespace.as_deref().unwrap_or_default();
    match id.kind {
        ObjectKind::Namespace => {
            super::apply::delete(&Api::<Namespace>::all(client), &id.name).await?
        }
        ObjectKind::ResourceQuota => {
            super::apply::delete(&Api::<ResourceQuota>::namespaced(client, ns), &id.name).await?
        }
        ObjectKind::LimitRange => {
            super::apply::delete(&Api::<LimitRange>::namespaced(client, ns), &id.name).await?
        }
        ObjectKind::RoleBinding => {
            super::apply::delete(&Api::<RoleBinding>::namespaced(client, ns), &id.name).await?
        }
        ObjectKind::NetworkPolicy => {
            super::apply::delete(&Api::<NetworkPolicy>::namespaced(client, ns), &id.name).await?
        }
    }
    Ok(())
}

async fn prune(
    validated: &ValidatedTenant<'_>,
    objects: &[DesiredObject],
    ctx: &Context,
) -> Result<(), Error> {
    let desired: Vec<ObjectId> = objects.iter().map(DesiredObject::id).collect();
    let existing = existing_objects(ctx, validated.tenant());
    for id in isolation::prune(&desired, existing) {
        info!(tenant = %validated.name(), object = %id, "pruning an object the Tenant no longer asks for");
        delete_object(ctx, &id).await?;
    }
    Ok(())
}

fn condition(
    type_: &str,
    ok: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
) -> Condition {
    let status = if ok {
        ConditionStatus::True
    } else {
        ConditionStatus::False
    };
    Condition::new(type_, status, reason, message, generation)
}

fn provisioned_status(
    tenant: &Tenant,
    validated: &ValidatedTenant<'_>,
    applied: &Applied,
    database: Option<tenant_database::Report>,
    key: tenant_key::Report,
    backups: backup_schedule::Report,
    ctx: &Context,
) -> (TenantStatus, Option<Error>) {
    let generation = tenant.metadata.generation;
    let mut status = tenant.status.clone().unwrap_or_default();
    status.namespaces = validated.namespaces().to_vec();

    if let Some(from) = &applied.adopted_from {
        status.adopted_from = Some(from.clone());
    }
    let namespaces_ok = applied.taken.is_empty();
    let namespaces = match applied.taken.first() {
        None => condition(
            conditions::NAMESPACES_READY,
            true,
            "Provisioned",
            format!(
                "namespaces {} are in place",
                validated.namespaces().join(", ")
            ),
            generation,
        ),
        // The first refusal's category names the reason (`RetainedDataExists`,
        // `NamespaceTaken`); the message lists every refused namespace.
        Some((_, first)) => condition(
            conditions::NAMESPACES_READY,
            false,
            &reason_of(first.category()),
            applied
                .taken
                .iter()
                .map(|(_, why)| why.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            generation,
        ),
    };
    set_condition(&mut status.conditions, namespaces);
    set_condition(
        &mut status.conditions,
        condition(
            conditions::NETWORK_ISOLATED,
            namespaces_ok,
            &applied.taken.first().map_or_else(
                || "PoliciesApplied".to_owned(),
                |(_, why)| reason_of(why.category()),
            ),
            if namespaces_ok {
                "default-deny NetworkPolicies and the tenant's allow-lists are applied in every namespace"
            } else {
                "the tenant's NetworkPolicies could not be applied in every namespace"
            },
            generation,
        ),
    );
    let verdict = ctx
        .isolation
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(validated.name())
        .cloned()
        .unwrap_or_default();
    let isolated = match &verdict.isolation {
        Some(v) if v.is_isolated() => condition(
            conditions::ISOLATED,
            true,
            "NoCrossTenantPath",
            v.message(),
            generation,
        ),
        Some(v) => condition(
            conditions::ISOLATED,
            false,
            "CrossTenantPath",
            v.message(),
            generation,
        ),
        // Not analyzed since this replica started: the last verdict stands until the
        // analysis (which triggers this reconcile again) says otherwise.
        None => find_condition(&status.conditions, conditions::ISOLATED)
            .cloned()
            .unwrap_or_else(|| {
                Condition::new(
                    conditions::ISOLATED,
                    ConditionStatus::Unknown,
                    "Analyzing",
                    "the isolation analysis has not covered this tenant's namespaces yet",
                    generation,
                )
            }),
    };
    set_condition(&mut status.conditions, membership(tenant, &verdict.forged));
    set_condition(&mut status.conditions, isolated);
    let mut retry = None;
    if let Some(report) = database {
        set_condition(&mut status.conditions, report.condition);
        status.database = report.status;
        retry = report.retry;
        if let Some(from) = report.adopted_from {
            status.adopted_from = Some(from);
        }
    }
    set_condition(&mut status.conditions, key.condition);
    status.key_id = key.key_id;
    status.canary = key.canary;
    retry = retry.or(key.retry);
    match backups.condition {
        Some(c) => {
            set_condition(&mut status.conditions, c);
        }
        None => status
            .conditions
            .retain(|c| c.type_ != backup_schedule::BACKUP_SCHEDULED),
    }
    status.last_backup = backups.last_backup;
    status.last_verified_backup = backups.last_verified;

    summarize(tenant, &mut status);
    (status, retry)
}

/// `MembershipVerified`: whether every namespace labelled for the tenant is its own. A
/// forged label gives no access (policies select namespaces by name, membership is
/// decided by UID), so it does not make the Tenant un-Ready — else anyone who may label a
/// namespace could take any tenant out of Ready — but it is reported, with a Warning
/// event when it appears, for someone to find out who set it.
fn membership(tenant: &Tenant, forged: &[String]) -> Condition {
    let name = tenant.name_any();
    let generation = tenant.metadata.generation;
    if forged.is_empty() {
        return condition(
            conditions::MEMBERSHIP_VERIFIED,
            true,
            "OwnNamespacesOnly",
            format!(
                "every namespace labelled {TENANT_LABEL}={name} was created by Landlord for this Tenant"
            ),
            generation,
        );
    }
    let (these, verb) = if forged.len() == 1 {
        ("namespace", "carries")
    } else {
        ("namespaces", "carry")
    };
    condition(
        conditions::MEMBERSHIP_VERIFIED,
        false,
        "ForgedTenantLabel",
        format!(
            "{these} {} {verb} the label {TENANT_LABEL}={name} but {} not created by Landlord for this Tenant: Landlord ignores the label (no policy admits {}, the isolation analysis does not count {} as the tenant's); remove the label and restrict who may label namespaces",
            forged.join(", "),
            if forged.len() == 1 { "was" } else { "were" },
            if forged.len() == 1 { "it" } else { "them" },
            if forged.len() == 1 { "it" } else { "them" },
        ),
        generation,
    )
}

/// The parts of a Tenant's readiness, in the order its steps run: each step's condition
/// and whether `Ready` waits for it. Capabilities add their part here.
fn parts(tenant: &Tenant) -> Vec<Part> {
    vec![
        // apply: the namespaces and their quota, limits and owners' binding
        Part::required(conditions::NAMESPACES_READY),
        // apply: the NetworkPolicies
        Part::required(conditions::NETWORK_ISOLATED),
        // the isolation analysis of what is applied
        Part::required(conditions::ISOLATED),
        // reported, never holding readiness back (see `membership`)
        Part::reported(conditions::MEMBERSHIP_VERIFIED),
        // the database step, when the spec asks for a database
        Part {
            condition: tenant_database::DATABASE_READY,
            required: tenant.spec.database.is_some(),
        },
        // the key step
        Part::required(tenant_key::KEY_READY),
        // the backup step, when the spec asks for scheduled backups
        Part {
            condition: backup_schedule::BACKUP_SCHEDULED,
            required: tenant.spec.backup.is_some(),
        },
    ]
}

/// The `Ready` condition, the phase and `observedGeneration`, from the other conditions:
/// Ready when every part the Tenant needs ([`parts`]) is true.
fn summarize(tenant: &Tenant, status: &mut TenantStatus) {
    let generation = tenant.metadata.generation;
    let pending = super::status::waiting_for(&parts(tenant), &status.conditions);
    let ready = if pending.is_empty() {
        condition(
            conditions::READY,
            true,
            "Ready",
            "the tenant's environment is in place and isolated",
            generation,
        )
    } else {
        condition(
            conditions::READY,
            false,
            "NotReady",
            format!("waiting for {}", pending.join(", ")),
            generation,
        )
    };
    let was_ready =
        find_condition(&status.conditions, conditions::READY).is_some_and(Condition::is_true);
    set_condition(&mut status.conditions, ready);
    status.phase = Some(if pending.is_empty() {
        TenantPhase::Ready
    } else if was_ready || status.phase == Some(TenantPhase::Degraded) {
        TenantPhase::Degraded
    } else {
        TenantPhase::Provisioning
    });
    status.observed_generation = generation;
}

/// Writes `status` if it differs from the Tenant's, guarded by the resourceVersion the
/// Tenant was read at, and publishes an Event for every condition that changed its status
/// ([`super::status::finish`]).
async fn finish_status(tenant: &Tenant, ctx: &Context, status: TenantStatus) -> Result<(), Error> {
    let old = tenant.status.clone().unwrap_or_default();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    super::status::finish(ctx, &api, tenant, &old, &status, conditions::READY)
        .await
        .map_err(tenant_error(tenant))
}

pub(crate) async fn publish(
    tenant: &Tenant,
    ctx: &Context,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    super::status::event(ctx, tenant, type_, reason, note).await;
}

// ---------------------------------------------------------------------------------------
// Deletion

/// The tenant's namespaces: those in its status and those created for it.
pub(crate) fn tenant_namespaces(tenant: &Tenant, ctx: &Context) -> Vec<String> {
    let mut names: Vec<String> = tenant
        .status
        .as_ref()
        .map(|s| s.namespaces.clone())
        .unwrap_or_default();
    names.extend(
        owned_by(&ctx.stores.namespaces, tenant, ObjectKind::Namespace)
            .into_iter()
            .map(|id| id.name),
    );
    names.sort();
    names.dedup();
    names
}

/// `Retain`: takes the Tenant's owner references off everything Landlord created, so the
/// garbage collector leaves it all in place when the Tenant goes.
pub(crate) async fn release_objects(tenant: &Tenant, ctx: &Context) -> Result<String, Error> {
    let uid = tenant.uid().unwrap_or_default();
    let ids = existing_objects(ctx, tenant);
    let mut released = 0;
    for id in &ids {
        let client = ctx.client.clone();
        let ns = id.namespace.clone().unwrap_or_default();
        let done = match id.kind {
            ObjectKind::Namespace => {
                release(
                    &Api::<Namespace>::all(client),
                    &ctx.stores.namespaces,
                    &reference(id),
                    &uid,
                )
                .await
            }
            ObjectKind::ResourceQuota => {
                release(
                    &Api::<ResourceQuota>::namespaced(client, &ns),
                    &ctx.stores.quotas,
                    &reference(id),
                    &uid,
                )
                .await
            }
            ObjectKind::LimitRange => {
                release(
                    &Api::<LimitRange>::namespaced(client, &ns),
                    &ctx.stores.limits,
                    &reference(id),
                    &uid,
                )
                .await
            }
            ObjectKind::RoleBinding => {
                release(
                    &Api::<RoleBinding>::namespaced(client, &ns),
                    &ctx.stores.bindings,
                    &reference(id),
                    &uid,
                )
                .await
            }
            ObjectKind::NetworkPolicy => {
                release(
                    &Api::<NetworkPolicy>::namespaced(client, &ns),
                    &ctx.stores.policies,
                    &reference(id),
                    &uid,
                )
                .await
            }
        }?;
        released += usize::from(done);
    }
    // The database credentials stay with the database, which Retain keeps too.
    let primary = tenant.primary_namespace();
    let secret_released = tenant_database::release_secret(tenant, &primary, ctx).await?;
    released += usize::from(secret_released);
    let total = ids.len() + usize::from(secret_released);
    // The key stays too (it never had an owner reference): the retained backups stay
    // readable.
    let key = TenantRef::of(tenant)
        .map(|t| ctx.keys.location(&t))
        .unwrap_or_else(|_| "its provider".to_owned());
    Ok(format!(
        "kept {total} objects in place (namespaces, their policies, database and credentials); {released} still had an owner reference to the Tenant, now removed; the tenant's key stays in {key}"
    ))
}

async fn release<K>(
    api: &Api<K>,
    store: &Store<K>,
    object: &ObjectRef<K>,
    uid: &str,
) -> Result<bool, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + 'static,
{
    let Some(live) = store.get(object) else {
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
    let patch =
        json!({"metadata": {"resourceVersion": live.resource_version(), "ownerReferences": kept}});
    match api
        .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => {
            Err(
                super::apply::ApplyError::new("release", &K::kind(&()), &object.name, source)
                    .into(),
            )
        }
    }
}

pub(crate) async fn remove_finalizer(tenant: &Tenant, ctx: &Context) -> Result<(), Error> {
    super::finalizers::remove(
        &Api::<Tenant>::all(ctx.client.clone()),
        &tenant.name_any(),
        FINALIZER,
    )
    .await
    .map_err(tenant_error(tenant))
}
