//! The ResourceQuota and LimitRange of each tenant namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;

use super::ValidatedTenant;
use super::labels::object_meta;
use crate::api::Quantity;

/// Name of the ResourceQuota in each tenant namespace.
pub const RESOURCE_QUOTA: &str = "landlord-quota";
/// Name of the LimitRange in each tenant namespace.
pub const LIMIT_RANGE: &str = "landlord-limits";

fn quantities(map: &BTreeMap<String, Quantity>) -> BTreeMap<String, K8sQuantity> {
    map.iter()
        .map(|(k, v)| (k.clone(), K8sQuantity(v.0.clone())))
        .collect()
}

/// The ResourceQuota `landlord-quota` with `spec.isolation.quota` as its hard limits;
/// `None` when the quota is empty.
pub fn resource_quota(tenant: &ValidatedTenant<'_>, namespace: &str) -> Option<ResourceQuota> {
    let quota = &tenant.tenant().spec.isolation.quota;
    if quota.is_empty() {
        return None;
    }
    Some(ResourceQuota {
        metadata: object_meta(tenant, Some(namespace), RESOURCE_QUOTA),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quantities(quota)),
            ..ResourceQuotaSpec::default()
        }),
        status: None,
    })
}

/// The LimitRange `landlord-limits`: one item of type `Container` with the spec's
/// `default`, `defaultRequest` and `max`. `None` when `spec.isolation.limits` is unset or
/// all three are empty.
///
/// The API server's defaulting of a Container item is done here, so that what is applied
/// is what the server stores: a resource with a `max` but no `default` gets the max as
/// its default, and one with a `default` but no `defaultRequest` gets the default as its
/// request.
pub fn limit_range(tenant: &ValidatedTenant<'_>, namespace: &str) -> Option<LimitRange> {
    let limits = tenant.tenant().spec.isolation.limits.as_ref()?;
    if limits.default.is_empty() && limits.default_request.is_empty() && limits.max.is_empty() {
        return None;
    }
    let max = quantities(&limits.max);
    let mut default = quantities(&limits.default);
    for (k, v) in &max {
        default.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut default_request = quantities(&limits.default_request);
    for (k, v) in &default {
        default_request
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
    let non_empty = |m: BTreeMap<String, K8sQuantity>| (!m.is_empty()).then_some(m);
    Some(LimitRange {
        metadata: object_meta(tenant, Some(namespace), LIMIT_RANGE),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default: non_empty(default),
                default_request: non_empty(default_request),
                max: non_empty(max),
                ..LimitRangeItem::default()
            }],
        }),
    })
}
