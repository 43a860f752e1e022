//! The tenant's Namespaces: ownership labels, the spec's extra labels and annotations, and
//! the Pod Security Admission labels.

use k8s_openapi::api::core::v1::Namespace;

use super::ValidatedTenant;
use super::labels::{POD_SECURITY_PREFIX, is_reserved_annotation, is_reserved_label, object_meta};
use crate::api::PodSecurityLevel;

/// The Pod Security Admission level name.
fn level(level: PodSecurityLevel) -> &'static str {
    match level {
        PodSecurityLevel::Privileged => "privileged",
        PodSecurityLevel::Baseline => "baseline",
        PodSecurityLevel::Restricted => "restricted",
    }
}

/// The Namespace `name` of the tenant. Labels: the spec's extra labels without reserved
/// keys, then Landlord's (`app.kubernetes.io/managed-by`, `landlord.dev/tenant`) and
/// `pod-security.kubernetes.io/{enforce,warn,audit}` = the level with `-version: latest`.
/// Annotations: the spec's, without `landlord.dev/` keys, and the Tenant's UID. No `spec`: the API server adds
/// the `kubernetes` finalizer itself.
pub fn namespace(tenant: &ValidatedTenant<'_>, name: &str) -> Namespace {
    let mut meta = object_meta(tenant, None, name);
    let spec = tenant.tenant().spec.namespaces.clone().unwrap_or_default();
    let mut labels: std::collections::BTreeMap<String, String> = spec
        .labels
        .into_iter()
        .filter(|(k, _)| !is_reserved_label(k))
        .collect();
    labels.extend(meta.labels.take().unwrap_or_default());
    let psa = level(tenant.tenant().spec.isolation.pod_security);
    for mode in ["enforce", "warn", "audit"] {
        labels.insert(format!("{POD_SECURITY_PREFIX}{mode}"), psa.to_owned());
        labels.insert(
            format!("{POD_SECURITY_PREFIX}{mode}-version"),
            "latest".to_owned(),
        );
    }
    meta.labels = Some(labels);
    let mut annotations: std::collections::BTreeMap<String, String> = spec
        .annotations
        .into_iter()
        .filter(|(k, _)| !is_reserved_annotation(k))
        .collect();
    annotations.extend(meta.annotations.take().unwrap_or_default());
    meta.annotations = Some(annotations);
    Namespace {
        metadata: meta,
        ..Namespace::default()
    }
}
