//! Privilege-escalation prevention on RBAC writes, see
//! <https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping>
//! and kube-apiserver's `pkg/registry/rbac/*/policybased` storage,
//! `pkg/registry/rbac/escalation_check.go` and `pkg/registry/rbac/validation/rule.go`.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::rbac::v1::{PolicyRule, RoleRef};
use serde_json::{Value, json};

use super::{
    PRIVILEGED_GROUP, RBAC_GROUP, RbacKind, RbacSnapshot, RequestAttributes, Rule, authorize,
    forbidden, go_quote, go_quote_list, non_resource_url_covers, qualified_resource,
};

/// Why an RBAC write is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RbacWriteError {
    /// 403: the user would grant permissions they do not hold.
    #[error("{resource}.rbac.authorization.k8s.io {name:?} is forbidden: {message}")]
    Forbidden {
        resource: String,
        name: String,
        message: String,
    },
    /// 404: a binding refers to a role that does not exist (and the user may not `bind` it).
    #[error("{resource}.rbac.authorization.k8s.io {name:?} not found")]
    RoleNotFound { resource: String, name: String },
    /// 400: the object's rules or roleRef cannot be read.
    #[error("{0}")]
    Malformed(String),
}

impl RbacWriteError {
    /// The `Status` JSON object to answer with.
    pub fn status(&self) -> Value {
        match self {
            Self::Forbidden {
                resource,
                name,
                message,
            } => forbidden(RBAC_GROUP, resource, name, message),
            Self::RoleNotFound { resource, name } => json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": format!("{} {} not found", qualified_resource(RBAC_GROUP, resource), go_quote(name)),
                "reason": "NotFound",
                "details": { "name": name, "group": RBAC_GROUP, "kind": resource },
                "code": 404
            }),
            Self::Malformed(message) => json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "BadRequest",
                "code": 400
            }),
        }
    }
}

/// Checks a create or update (`old_object` set) of a Role, ClusterRole, RoleBinding or
/// ClusterRoleBinding that the authorizer already allowed, against the snapshot *before*
/// the write. Other requests pass.
///
/// - `system:masters` may write anything;
/// - an update that changes only `metadata.ownerReferences`/`finalizers` (what the garbage
///   collector touches) passes;
/// - a Role or ClusterRole passes if the user may `escalate` it, or already holds every
///   permission in it (in the object's namespace, cluster-wide ones included); setting an
///   `aggregationRule` takes every permission (`*` on `*.*` and on non-resource URLs);
/// - a binding passes if the user may `bind` the role it refers to (checked in the
///   binding's namespace, `resourceNames` matching the role name), or already holds every
///   permission of that role.
///
/// `attrs` are the request's: their namespace and name are the object's.
pub fn check_rbac_write(
    attrs: &RequestAttributes,
    object: &Value,
    old_object: Option<&Value>,
    rbac: &RbacSnapshot,
) -> Result<(), RbacWriteError> {
    if !attrs.is_resource_request() || attrs.api_group != RBAC_GROUP || attrs.subresource.is_some()
    {
        return Ok(());
    }
    let Some(kind) = RbacKind::from_resource(&attrs.resource) else {
        return Ok(());
    };
    let user = &attrs.user;
    if user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Ok(());
    }
    if old_object.is_some_and(|old| only_gc_fields_differ(object, old)) {
        return Ok(());
    }
    let namespace = attrs.namespace.as_deref().unwrap_or("");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let forbidden = |message: String| RbacWriteError::Forbidden {
        resource: attrs.resource.clone(),
        name: name.clone(),
        message,
    };
    match kind {
        RbacKind::Role | RbacKind::ClusterRole => {
            let escalate = RequestAttributes {
                verb: "escalate".to_owned(),
                ..attrs.clone()
            };
            if authorize(&escalate, rbac).is_allowed() {
                return Ok(());
            }
            let rules = rules_of(object)?;
            confirm_no_escalation(attrs, namespace, &rules, rbac).map_err(forbidden)?;
            if kind == RbacKind::ClusterRole
                && (has_aggregation_rule(object) || old_object.is_some_and(has_aggregation_rule))
            {
                let full_authority = [
                    Rule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Rule::default()
                    },
                    Rule {
                        verbs: vec!["*".into()],
                        non_resource_urls: vec!["*".into()],
                        ..Rule::default()
                    },
                ];
                confirm_no_escalation(attrs, namespace, &full_authority, rbac).map_err(|_| {
                    forbidden(
                        "must have cluster-admin privileges to use the aggregationRule".into(),
                    )
                })?;
            }
            Ok(())
        }
        RbacKind::RoleBinding | RbacKind::ClusterRoleBinding => {
            let role_ref: RoleRef = object
                .get("roleRef")
                .cloned()
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| RbacWriteError::Malformed(format!("roleRef: {e}")))?
                .ok_or_else(|| RbacWriteError::Malformed("roleRef: Required value".into()))?;
            let role_resource = match role_ref.kind.as_str() {
                "ClusterRole" => Some("clusterroles"),
                "Role" => Some("roles"),
                _ => None,
            };
            if let Some(resource) = role_resource {
                let bind = RequestAttributes {
                    user: user.clone(),
                    verb: "bind".into(),
                    api_group: role_ref.api_group.clone(),
                    resource: resource.into(),
                    subresource: None,
                    namespace: attrs.namespace.clone(),
                    name: Some(role_ref.name.clone()),
                    non_resource_path: None,
                };
                if authorize(&bind, rbac).is_allowed() {
                    return Ok(());
                }
            }
            let rules = rbac
                .role_ref_rules(&role_ref, namespace)
                .map_err(|message| match role_resource {
                    Some(resource) => RbacWriteError::RoleNotFound {
                        resource: resource.into(),
                        name: role_ref.name.clone(),
                    },
                    None => RbacWriteError::Malformed(message),
                })?;
            confirm_no_escalation(attrs, namespace, rules, rbac).map_err(forbidden)
        }
    }
}

fn rules_of(object: &Value) -> Result<Vec<Rule>, RbacWriteError> {
    let rules: Option<Vec<PolicyRule>> = object
        .get("rules")
        .filter(|r| !r.is_null())
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| RbacWriteError::Malformed(format!("rules: {e}")))?;
    Ok(rules
        .unwrap_or_default()
        .into_iter()
        .map(Rule::from)
        .collect())
}

/// `hasAggregationRule`: an aggregation rule with at least one selector.
fn has_aggregation_rule(object: &Value) -> bool {
    object
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array)
        .is_some_and(|selectors| !selectors.is_empty())
}

/// `IsOnlyMutatingGCFields`: the objects are equal once `ownerReferences`, `finalizers`
/// and `selfLink` are ignored (and `resourceVersion`/`managedFields`, which the emulator
/// itself maintains).
fn only_gc_fields_differ(object: &Value, old: &Value) -> bool {
    let strip = |value: &Value| {
        let mut value = value.clone();
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            for key in [
                "ownerReferences",
                "finalizers",
                "selfLink",
                "resourceVersion",
                "managedFields",
            ] {
                metadata.remove(key);
            }
        }
        value
    };
    strip(object) == strip(old)
}

/// `ConfirmNoEscalation`: every permission in `rules` must be held by the user in
/// `namespace` (cluster-wide permissions count everywhere).
fn confirm_no_escalation(
    attrs: &RequestAttributes,
    namespace: &str,
    rules: &[Rule],
    rbac: &RbacSnapshot,
) -> Result<(), String> {
    let user = &attrs.user;
    let (owner_rules, errors) = rbac.rules_for(user, namespace);
    let missing: Vec<Rule> = rules
        .iter()
        .flat_map(breakdown)
        .filter(|sub| !owner_rules.iter().any(|owner| rule_covers(owner, sub)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let descriptions: BTreeSet<String> = compact(missing).iter().map(compact_string).collect();
    let mut message = format!(
        "user {} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        go_quote_list(&user.groups),
        descriptions.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(message)
}

/// `BreakdownRule`: one rule per group × resource × verb (× name), and per URL × verb.
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut subrules = Vec::new();
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                let base = Rule {
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    verbs: vec![verb.clone()],
                    ..Rule::default()
                };
                if rule.resource_names.is_empty() {
                    subrules.push(base);
                } else {
                    for name in &rule.resource_names {
                        subrules.push(Rule {
                            resource_names: vec![name.clone()],
                            ..base.clone()
                        });
                    }
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            subrules.push(Rule {
                non_resource_urls: vec![url.clone()],
                verbs: vec![verb.clone()],
                ..Rule::default()
            });
        }
    }
    subrules
}

fn has_all(set: &[String], wanted: &[String]) -> bool {
    wanted.iter().all(|w| set.contains(w))
}

fn has_star_or_all(set: &[String], wanted: &[String]) -> bool {
    set.iter().any(|s| s == "*") || has_all(set, wanted)
}

/// `ruleCovers` of `component-helpers/auth/rbac/validation`.
fn rule_covers(owner: &Rule, sub: &Rule) -> bool {
    let resources_covered = has_star_or_all(&owner.resources, &sub.resources)
        || sub.resources.iter().all(|resource| {
            owner.resources.contains(resource)
                || resource.split_once('/').is_some_and(|(_, subresource)| {
                    owner.resources.contains(&format!("*/{subresource}"))
                })
        });
    let urls_covered = sub.non_resource_urls.iter().all(|path| {
        owner
            .non_resource_urls
            .iter()
            .any(|owner_url| non_resource_url_covers(owner_url, path))
    });
    let names_covered = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty() || has_all(&owner.resource_names, &sub.resource_names)
    };
    has_star_or_all(&owner.verbs, &sub.verbs)
        && has_star_or_all(&owner.api_groups, &sub.api_groups)
        && resources_covered
        && names_covered
        && urls_covered
}

/// `CompactRules`: rules on one group and resource (and at most one name) that differ only
/// by verb become one rule.
fn compact(rules: Vec<Rule>) -> Vec<Rule> {
    let mut compacted = Vec::new();
    let mut simple: BTreeMap<(String, String, Option<String>), Rule> = BTreeMap::new();
    for rule in rules {
        let key = match (&rule.api_groups[..], &rule.resources[..]) {
            ([group], [resource])
                if rule.resource_names.len() <= 1 && rule.non_resource_urls.is_empty() =>
            {
                (
                    group.clone(),
                    resource.clone(),
                    rule.resource_names.first().cloned(),
                )
            }
            _ => {
                compacted.push(rule);
                continue;
            }
        };
        match simple.get_mut(&key) {
            Some(existing) => existing.verbs.extend(rule.verbs),
            None => {
                simple.insert(key, rule);
            }
        }
    }
    compacted.extend(simple.into_values());
    compacted
}

/// `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}`.
fn compact_string(rule: &Rule) -> String {
    let parts: Vec<String> = [
        ("APIGroups", &rule.api_groups),
        ("Resources", &rule.resources),
        ("NonResourceURLs", &rule.non_resource_urls),
        ("ResourceNames", &rule.resource_names),
        ("Verbs", &rule.verbs),
    ]
    .into_iter()
    .filter(|(_, values)| !values.is_empty())
    .map(|(label, values)| format!("{label}:{}", go_quote_list(values)))
    .collect();
    format!("{{{}}}", parts.join(", "))
}

#[cfg(test)]
mod tests;
