//! Pure builders of a tenant's isolation: Tenant → Namespaces, ResourceQuota, LimitRange,
//! RoleBinding and NetworkPolicies; the prune planner; and the isolation analyzer.
//!
//! Nothing here does I/O. The Tenant controller runs the stages in order:
//!
//! 1. [`validate`] the Tenant (with the DatabaseServer it refers to, when observed) into a
//!    [`ValidatedTenant`], or precise [`ValidationErrors`] for its status;
//! 2. check each namespace that already exists with [`check_namespace_claim`] (never
//!    adopt someone else's namespace);
//! 3. [`build`] the desired objects and server-side apply them, in order, with the field
//!    manager [`labels::FIELD_MANAGER`];
//! 4. list what carries [`labels::managed_selector`] and delete what [`prune`] returns;
//! 5. run [`analysis::analyze`] over every tenant namespace's NetworkPolicies for the
//!    `Isolated` condition.
//!
//! The objects are built for idempotent server-side apply: they carry no status and no
//! field the API server would fill in or rewrite (explicit `protocol`, `policyTypes`,
//! `podSelector` and RBAC `apiGroup`; the LimitRange defaulting is done here), and every
//! list and map is in a stable order, so that building twice gives equal objects and an
//! unchanged Tenant's resync has nothing to write.

pub mod analysis;
pub mod labels;
mod namespace;
pub mod network;
pub mod ownership;
mod quota;
mod rbac;
mod validate;

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use serde::Serialize;

use crate::api::{DatabaseServer, Tenant};

pub use namespace::namespace;
pub use network::{
    ALLOW_DATABASE, ALLOW_DNS, ALLOW_EGRESS, ALLOW_INGRESS, ALLOW_SAME_TENANT, DEFAULT_DENY,
    network_policies,
};
pub use quota::{LIMIT_RANGE, RESOURCE_QUOTA, limit_range, resource_quota};
pub use rbac::{OWNER_CLUSTER_ROLE, OWNERS_ROLE_BINDING, owners_role_binding};
pub use validate::{
    RESERVED_NAMESPACES, ValidationError, ValidationErrors, check_namespace_claim, validate,
};

/// Operator-level settings the builders and the validation need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsolationConfig {
    /// The namespace Landlord runs in (and keeps tenant keys in): no tenant may claim it.
    pub operator_namespace: String,
}

/// A Tenant that passed [`validate`]: what the builders take.
#[derive(Clone, Debug)]
pub struct ValidatedTenant<'a> {
    tenant: &'a Tenant,
    name: String,
    uid: String,
    namespaces: Vec<String>,
    database_server: Option<&'a DatabaseServer>,
}

impl<'a> ValidatedTenant<'a> {
    /// The Tenant itself.
    pub fn tenant(&self) -> &'a Tenant {
        self.tenant
    }

    /// The Tenant's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Tenant's UID, for owner references.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The tenant's namespaces, primary first, each once: what `status.namespaces` shows.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The DatabaseServer of the tenant's database, when it has one and it was observed.
    pub fn database_server(&self) -> Option<&'a DatabaseServer> {
        self.database_server
    }
}

/// The kinds of object Landlord builds for a tenant, in the order they are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ObjectKind {
    /// `v1` Namespace (cluster-scoped).
    Namespace,
    /// `v1` ResourceQuota.
    ResourceQuota,
    /// `v1` LimitRange.
    LimitRange,
    /// `rbac.authorization.k8s.io/v1` RoleBinding.
    RoleBinding,
    /// `networking.k8s.io/v1` NetworkPolicy.
    NetworkPolicy,
}

impl ObjectKind {
    /// The `kind` of the object.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Namespace => "Namespace",
            ObjectKind::ResourceQuota => "ResourceQuota",
            ObjectKind::LimitRange => "LimitRange",
            ObjectKind::RoleBinding => "RoleBinding",
            ObjectKind::NetworkPolicy => "NetworkPolicy",
        }
    }
}

/// Identity of one object: kind, namespace (none for a Namespace) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectId {
    /// Its kind.
    pub kind: ObjectKind,
    /// Its namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{} {ns}/{}", self.kind.as_str(), self.name),
            None => write!(f, "{} {}", self.kind.as_str(), self.name),
        }
    }
}

/// One object Landlord wants to exist for a tenant.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DesiredObject {
    /// A tenant namespace.
    Namespace(Namespace),
    /// The namespace's quota.
    ResourceQuota(ResourceQuota),
    /// The namespace's container defaults.
    LimitRange(LimitRange),
    /// The owners' admin binding.
    RoleBinding(RoleBinding),
    /// One of the isolation policies.
    NetworkPolicy(NetworkPolicy),
}

impl DesiredObject {
    /// Kind, namespace and name of the object.
    pub fn id(&self) -> ObjectId {
        let (kind, meta) = match self {
            DesiredObject::Namespace(o) => (ObjectKind::Namespace, &o.metadata),
            DesiredObject::ResourceQuota(o) => (ObjectKind::ResourceQuota, &o.metadata),
            DesiredObject::LimitRange(o) => (ObjectKind::LimitRange, &o.metadata),
            DesiredObject::RoleBinding(o) => (ObjectKind::RoleBinding, &o.metadata),
            DesiredObject::NetworkPolicy(o) => (ObjectKind::NetworkPolicy, &o.metadata),
        };
        ObjectId {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

/// Every object the tenant should have, in apply order: all Namespaces first, then for
/// each namespace (primary first) its quota, limits, owners' binding and NetworkPolicies
/// (default deny first, so a new namespace is closed before anything is opened).
pub fn build(tenant: &ValidatedTenant<'_>) -> Vec<DesiredObject> {
    let mut objects: Vec<DesiredObject> = tenant
        .namespaces()
        .iter()
        .map(|ns| DesiredObject::Namespace(namespace(tenant, ns)))
        .collect();
    for ns in tenant.namespaces() {
        objects.extend(resource_quota(tenant, ns).map(DesiredObject::ResourceQuota));
        objects.extend(limit_range(tenant, ns).map(DesiredObject::LimitRange));
        objects.extend(owners_role_binding(tenant, ns).map(DesiredObject::RoleBinding));
        objects.extend(
            network_policies(tenant, ns)
                .into_iter()
                .map(DesiredObject::NetworkPolicy),
        );
    }
    objects
}

/// The identities of [`build`]'s objects, in the same order.
pub fn desired_ids(tenant: &ValidatedTenant<'_>) -> Vec<ObjectId> {
    build(tenant).iter().map(DesiredObject::id).collect()
}

/// Which of the objects currently labelled for the tenant ([`labels::managed_selector`])
/// are no longer desired and should be deleted: a namespace removed from the spec, a
/// quota emptied, a rule list dropped. Objects inside a namespace that is itself pruned
/// are left out (deleting the namespace deletes them); namespaces come last, after the
/// objects of namespaces that stay. The result is sorted and has no duplicates.
pub fn prune(desired: &[ObjectId], existing: impl IntoIterator<Item = ObjectId>) -> Vec<ObjectId> {
    let desired: BTreeSet<&ObjectId> = desired.iter().collect();
    let unwanted: BTreeSet<ObjectId> = existing
        .into_iter()
        .filter(|id| !desired.contains(id))
        .collect();
    let pruned_namespaces: BTreeSet<&str> = unwanted
        .iter()
        .filter(|id| id.kind == ObjectKind::Namespace)
        .map(|id| id.name.as_str())
        .collect();
    let (namespaces, mut inner): (Vec<ObjectId>, Vec<ObjectId>) = unwanted
        .iter()
        .filter(|id| {
            id.namespace
                .as_deref()
                .is_none_or(|ns| !pruned_namespaces.contains(ns))
        })
        .cloned()
        .partition(|id| id.kind == ObjectKind::Namespace);
    inner.sort_by(|a, b| (&a.namespace, a.kind, &a.name).cmp(&(&b.namespace, b.kind, &b.name)));
    inner.extend(namespaces);
    inner
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod snapshot;
