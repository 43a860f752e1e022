//! The RoleBinding that makes the tenant's owners admins of its namespaces.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

use super::ValidatedTenant;
use super::labels::object_meta;
use crate::api::OwnerKind;

/// Name of the owners' RoleBinding in each tenant namespace.
pub const OWNERS_ROLE_BINDING: &str = "landlord-owners";
/// The ClusterRole the owners are bound to, in the tenant's namespaces only.
pub const OWNER_CLUSTER_ROLE: &str = "admin";

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// The RoleBinding `landlord-owners` binding every owner to the ClusterRole `admin`, in
/// the order of `spec.owners` (repeated subjects once); `None` without owners. Subjects
/// carry the `apiGroup` the API server would default (`rbac.authorization.k8s.io` for
/// users and groups, none for service accounts).
pub fn owners_role_binding(tenant: &ValidatedTenant<'_>, namespace: &str) -> Option<RoleBinding> {
    let mut subjects: Vec<Subject> = Vec::new();
    for owner in &tenant.tenant().spec.owners {
        let subject = match owner.kind {
            OwnerKind::User | OwnerKind::Group => Subject {
                api_group: Some(RBAC_GROUP.to_owned()),
                kind: if owner.kind == OwnerKind::User {
                    "User"
                } else {
                    "Group"
                }
                .to_owned(),
                name: owner.name.clone(),
                namespace: None,
            },
            OwnerKind::ServiceAccount => Subject {
                api_group: None,
                kind: "ServiceAccount".to_owned(),
                name: owner.name.clone(),
                namespace: owner.namespace.clone(),
            },
        };
        if !subjects.contains(&subject) {
            subjects.push(subject);
        }
    }
    if subjects.is_empty() {
        return None;
    }
    Some(RoleBinding {
        metadata: object_meta(tenant, Some(namespace), OWNERS_ROLE_BINDING),
        role_ref: RoleRef {
            api_group: RBAC_GROUP.to_owned(),
            kind: "ClusterRole".to_owned(),
            name: OWNER_CLUSTER_ROLE.to_owned(),
        },
        subjects: Some(subjects),
    })
}
