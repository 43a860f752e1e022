//! The label and annotation keys Landlord owns, and the metadata every object it creates
//! carries: the two informational labels and the Tenant's UID
//! ([`super::ownership::TENANT_UID_ANNOTATION`]).
//!
//! No owner reference to the Tenant: the garbage collector would delete what it owns
//! under `kubectl delete --cascade=foreground` before Landlord could keep it for
//! `deletionPolicy: Retain`. The deletion workflow deletes (or keeps) everything itself.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::ValidatedTenant;
use super::ownership::TENANT_UID_ANNOTATION;

/// The field manager of every server-side apply Landlord makes.
pub const FIELD_MANAGER: &str = "landlord";
/// Label naming the Tenant an object was created for: informational (people, `kubectl`
/// selectors, watch triggers). Anyone who can write an object can set it, so it decides
/// nothing; the UID annotation does.
pub const TENANT_LABEL: &str = "landlord.dev/tenant";
/// The standard label naming the tool that manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY_LABEL`] on Landlord's objects.
pub const MANAGED_BY: &str = "landlord";
/// Label the API server puts on every namespace, holding its name. Landlord's
/// NetworkPolicies select namespaces by it because nobody can set it to another value.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// Prefix of Landlord's own label and annotation keys.
pub const LANDLORD_PREFIX: &str = "landlord.dev/";
/// Prefix of the Pod Security Admission labels.
pub const POD_SECURITY_PREFIX: &str = "pod-security.kubernetes.io/";
/// Label on the operator's egress NetworkPolicy to a DatabaseServer: the server's name.
pub const DATABASE_SERVER_LABEL: &str = "landlord.dev/database-server";
/// Annotation on the allow-list NetworkPolicies: a JSON array with the description of
/// each rule, in rule order (`""` where the spec gives none).
pub const RULE_DESCRIPTIONS_ANNOTATION: &str = "landlord.dev/rule-descriptions";

/// The two labels on everything Landlord creates for `tenant`.
pub fn managed_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (TENANT_LABEL.to_owned(), tenant.to_owned()),
    ])
}

/// The label selector (`key=value,...`) that lists every object Landlord created for
/// `tenant`: what the apply stage lists before calling [`super::prune`].
pub fn managed_selector(tenant: &str) -> String {
    managed_labels(tenant)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a tenant's spec may not set this namespace label: Landlord's own keys
/// (`landlord.dev/...`, `app.kubernetes.io/managed-by`), the Pod Security Admission labels,
/// and `kubernetes.io/metadata.name`, which the API server always sets to the name.
pub fn is_reserved_label(key: &str) -> bool {
    key.starts_with(LANDLORD_PREFIX)
        || key.starts_with(POD_SECURITY_PREFIX)
        || key == MANAGED_BY_LABEL
        || key == NAMESPACE_NAME_LABEL
}

/// Whether a tenant's spec may not set this namespace annotation (`landlord.dev/...`).
pub fn is_reserved_annotation(key: &str) -> bool {
    key.starts_with(LANDLORD_PREFIX)
}

/// Metadata of an object Landlord creates for the tenant: name, namespace, the managed
/// labels and the Tenant's UID annotation; nothing the API server fills in.
pub(super) fn object_meta(
    tenant: &ValidatedTenant<'_>,
    namespace: Option<&str>,
    name: &str,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(managed_labels(tenant.name())),
        annotations: Some(BTreeMap::from([(
            TENANT_UID_ANNOTATION.to_owned(),
            tenant.uid().to_owned(),
        )])),
        ..ObjectMeta::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_selector_lists_both_labels_sorted() {
        assert_eq!(
            managed_selector("acme"),
            "app.kubernetes.io/managed-by=landlord,landlord.dev/tenant=acme"
        );
    }

    #[test]
    fn reserved_label_keys() {
        for key in [
            "landlord.dev/tenant",
            "landlord.dev/anything",
            "pod-security.kubernetes.io/enforce",
            "app.kubernetes.io/managed-by",
            "kubernetes.io/metadata.name",
        ] {
            assert!(is_reserved_label(key), "{key} should be reserved");
        }
        for key in [
            "team",
            "billing.example.com/cost-center",
            "app.kubernetes.io/name",
        ] {
            assert!(!is_reserved_label(key), "{key} should be allowed");
        }
    }
}
