//! Authorization by RBAC, as kube-apiserver's `--authorization-mode=RBAC` does it.
//!
//! References (each rule below is tested against the documented behaviour):
//! - <https://kubernetes.io/docs/reference/access-authn-authz/rbac/>
//! - <https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb>
//! - kube-apiserver sources: `plugin/pkg/auth/authorizer/rbac` (rule matching, the
//!   "allowed by" reasons), `pkg/registry/rbac/validation` (rule resolution and the
//!   escalation check), `pkg/controller/clusterroleaggregation` (aggregated ClusterRoles),
//!   `k8s.io/apiserver/pkg/endpoints/request/requestinfo.go` (verbs from HTTP requests) and
//!   `k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go` (403 wording).
//!
//! The server keeps an [`RbacSnapshot`] of the stored Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings, turns each request into [`RequestAttributes`] with
//! [`parse_request`], asks [`authorize`], answers a denial with [`forbidden_status`], and
//! runs [`check_rbac_write`] before storing an RBAC object.
//!
//! Aggregated ClusterRoles: the real server fills their `rules` with a controller, a little
//! after the fact; here the snapshot computes the aggregated rules immediately and
//! [`RbacSnapshot::aggregation_updates`] tells the server what to write back into the
//! stored objects.
//!
//! Members of `system:masters` are allowed everything, as kube-apiserver's privileged-group
//! authorizer does before RBAC is consulted.

mod bootstrap;
mod escalation;
mod request;
mod review;

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::auth::UserInfo;

pub use bootstrap::bootstrap_policy;
pub use escalation::{RbacWriteError, check_rbac_write};
pub use request::{RequestInfo, RequestInfoError, parse_request};
pub use review::{
    ReviewError, self_subject_access_review, self_subject_rules_review, subject_access_review,
};

/// The API group of the RBAC resources.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The group whose members may do anything (`user.SystemPrivilegedGroup`).
pub const PRIVILEGED_GROUP: &str = "system:masters";

/// What the authorizer decides about: who, which verb, on what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestAttributes {
    pub user: UserInfo,
    /// `get list watch create update patch delete deletecollection` for resources, or
    /// another verb checked explicitly (`impersonate`, `bind`, `escalate`, `use`...); the
    /// lower-case HTTP method (`get`, `post`...) for non-resource paths.
    pub verb: String,
    pub api_group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// Set for a non-resource request (`/version`, `/healthz`, `/apis`...): its path.
    pub non_resource_path: Option<String>,
}

impl RequestAttributes {
    /// The attributes of an HTTP request made by `user`.
    pub fn from_request(user: UserInfo, info: &RequestInfo) -> Self {
        if !info.is_resource_request {
            return Self::non_resource(user, &info.verb, &info.path);
        }
        Self {
            user,
            verb: info.verb.clone(),
            api_group: info.api_group.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            non_resource_path: None,
        }
    }

    /// A request on a resource (`subresource`, `namespace` and `name` start unset).
    pub fn resource(user: UserInfo, verb: &str, api_group: &str, resource: &str) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            api_group: api_group.to_owned(),
            resource: resource.to_owned(),
            subresource: None,
            namespace: None,
            name: None,
            non_resource_path: None,
        }
    }

    /// A request on a non-resource path.
    pub fn non_resource(user: UserInfo, verb: &str, path: &str) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            api_group: String::new(),
            resource: String::new(),
            subresource: None,
            namespace: None,
            name: None,
            non_resource_path: Some(path.to_owned()),
        }
    }

    /// Sets the namespace.
    pub fn in_namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// Sets the object name.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Sets the subresource.
    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_owned());
        self
    }

    pub fn is_resource_request(&self) -> bool {
        self.non_resource_path.is_none()
    }

    fn namespace_str(&self) -> &str {
        self.namespace.as_deref().unwrap_or("")
    }
}

/// The authorizer's answer. `reason` is what kube-apiserver reports: on allow, the binding
/// that allowed (`RBAC: allowed by ClusterRoleBinding "x" of ClusterRole "y" to User "z"`),
/// on denial, empty or the errors met while resolving roles (`RBAC: role.rbac... not found`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        reason: String,
    },
    /// RBAC has no opinion; with no other authorizer configured the request is forbidden.
    Deny {
        reason: String,
    },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Allow { reason } | Decision::Deny { reason } => reason,
        }
    }
}

/// Decides a request, as kube-apiserver with `--authorization-mode=RBAC` does.
pub fn authorize(attrs: &RequestAttributes, rbac: &RbacSnapshot) -> Decision {
    if attrs.user.groups.iter().any(|g| g == PRIVILEGED_GROUP) {
        return Decision::Allow {
            reason: String::new(),
        };
    }
    let mut allowed_by = None;
    let mut errors = Vec::new();
    rbac.visit_rules_for(&attrs.user, attrs.namespace_str(), |visit| match visit {
        Visit::Rules(source, rules) => {
            if rules.iter().any(|rule| rule.allows(attrs)) {
                allowed_by = Some(source.to_string());
                false
            } else {
                true
            }
        }
        Visit::Error(error) => {
            errors.push(error);
            true
        }
    });
    match allowed_by {
        Some(source) => Decision::Allow {
            reason: format!("RBAC: allowed by {source}"),
        },
        None if errors.is_empty() => Decision::Deny {
            reason: String::new(),
        },
        None => Decision::Deny {
            reason: format!("RBAC: {}", aggregate_errors(&errors)),
        },
    }
}

/// The body of a 403 answer to a request the authorizer denied, worded as kube-apiserver
/// words it (`responsewriters.Forbidden` then `apierrors.NewForbidden`), e.g.
/// `tenants.landlord.dev "acme" is forbidden: User "u" cannot delete resource "tenants" in
/// API group "landlord.dev" at the cluster scope`. `reason` is [`Decision::reason`].
pub fn forbidden_status(attrs: &RequestAttributes, reason: &str) -> Value {
    let username = &attrs.user.name;
    let verb = &attrs.verb;
    let message = match &attrs.non_resource_path {
        Some(path) => format!(
            "User {} cannot {verb} path {}",
            go_quote(username),
            go_quote(path)
        ),
        None => {
            let resource = match &attrs.subresource {
                Some(sub) => format!("{}/{sub}", attrs.resource),
                None => attrs.resource.clone(),
            };
            let scope = match &attrs.namespace {
                Some(ns) => format!("in the namespace {}", go_quote(ns)),
                None => "at the cluster scope".to_owned(),
            };
            format!(
                "User {} cannot {verb} resource {} in API group {} {scope}",
                go_quote(username),
                go_quote(&resource),
                go_quote(&attrs.api_group)
            )
        }
    };
    // The API server escapes what could read as HTML in this part of the message.
    let message = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let message = if reason.is_empty() {
        message
    } else {
        format!("{message}: {reason}")
    };
    let name = attrs.name.as_deref().unwrap_or("");
    let (group, resource) = if attrs.is_resource_request() {
        (attrs.api_group.as_str(), attrs.resource.as_str())
    } else {
        ("", "")
    };
    forbidden(group, resource, name, &message)
}

/// `apierrors.NewForbidden(groupResource, name, err)` as a `Status` JSON object.
fn forbidden(group: &str, resource: &str, name: &str, message: &str) -> Value {
    let qualified = qualified_resource(group, resource);
    let message = if qualified.is_empty() {
        format!("forbidden: {message}")
    } else if name.is_empty() {
        format!("{qualified} is forbidden: {message}")
    } else {
        format!("{qualified} {} is forbidden: {message}", go_quote(name))
    };
    let mut details = Map::new();
    if !name.is_empty() {
        details.insert("name".into(), json!(name));
    }
    if !group.is_empty() {
        details.insert("group".into(), json!(group));
    }
    if !resource.is_empty() {
        details.insert("kind".into(), json!(resource));
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "details": details,
        "code": 403
    })
}

/// `schema.GroupResource.String()`: `resource.group`, or `resource` for the core group.
fn qualified_resource(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// Go's `%q` for a string: double-quoted with Go escapes.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%q` for a `[]string`: `["a" "b"]`.
fn go_quote_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `utilerrors.NewAggregate(errs).Error()`: one message alone, several de-duplicated in
/// brackets.
fn aggregate_errors(errors: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for error in errors {
        if !seen.contains(&error.as_str()) {
            seen.push(error);
        }
    }
    match seen.as_slice() {
        [one] => (*one).to_owned(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// One RBAC policy rule (`rbac/v1 PolicyRule`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl From<PolicyRule> for Rule {
    fn from(rule: PolicyRule) -> Self {
        Self {
            verbs: rule.verbs,
            api_groups: rule.api_groups.unwrap_or_default(),
            resources: rule.resources.unwrap_or_default(),
            resource_names: rule.resource_names.unwrap_or_default(),
            non_resource_urls: rule.non_resource_urls.unwrap_or_default(),
        }
    }
}

impl Rule {
    /// The rule as JSON, empty lists omitted as the API server omits them.
    fn to_json(&self) -> Value {
        let mut rule = Map::new();
        for (key, values) in [
            ("apiGroups", &self.api_groups),
            ("resources", &self.resources),
            ("resourceNames", &self.resource_names),
            ("nonResourceURLs", &self.non_resource_urls),
        ] {
            if !values.is_empty() {
                rule.insert(key.into(), json!(values));
            }
        }
        rule.insert("verbs".into(), json!(self.verbs));
        Value::Object(rule)
    }

    /// `RuleAllows` of the RBAC authorizer.
    fn allows(&self, attrs: &RequestAttributes) -> bool {
        if !has_or_star(&self.verbs, &attrs.verb) {
            return false;
        }
        match &attrs.non_resource_path {
            Some(path) => self
                .non_resource_urls
                .iter()
                .any(|url| non_resource_url_covers(url, path)),
            None => {
                let combined = match &attrs.subresource {
                    Some(sub) => format!("{}/{sub}", attrs.resource),
                    None => attrs.resource.clone(),
                };
                has_or_star(&self.api_groups, &attrs.api_group)
                    && self.resource_matches(&combined, attrs.subresource.as_deref())
                    && (self.resource_names.is_empty()
                        || attrs
                            .name
                            .as_ref()
                            .is_some_and(|name| self.resource_names.contains(name)))
            }
        }
    }

    fn resource_matches(&self, combined: &str, subresource: Option<&str>) -> bool {
        self.resources.iter().any(|resource| {
            resource == "*"
                || resource == combined
                || subresource.is_some_and(|sub| {
                    resource
                        .strip_prefix("*/")
                        .is_some_and(|rule_sub| rule_sub == sub)
                })
        })
    }
}

fn has_or_star(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == "*" || v == wanted)
}

/// `NonResourceURLMatches`: exact, `*`, or a prefix ending in `*`.
fn non_resource_url_covers(rule_url: &str, path: &str) -> bool {
    rule_url == "*"
        || rule_url == path
        || rule_url
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

/// The four RBAC kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RbacKind {
    Role,
    ClusterRole,
    RoleBinding,
    ClusterRoleBinding,
}

impl RbacKind {
    /// From an object's `kind`.
    pub fn from_kind(kind: &str) -> Option<Self> {
        match kind {
            "Role" => Some(Self::Role),
            "ClusterRole" => Some(Self::ClusterRole),
            "RoleBinding" => Some(Self::RoleBinding),
            "ClusterRoleBinding" => Some(Self::ClusterRoleBinding),
            _ => None,
        }
    }

    /// From a resource name of the `rbac.authorization.k8s.io` group.
    pub fn from_resource(resource: &str) -> Option<Self> {
        match resource {
            "roles" => Some(Self::Role),
            "clusterroles" => Some(Self::ClusterRole),
            "rolebindings" => Some(Self::RoleBinding),
            "clusterrolebindings" => Some(Self::ClusterRoleBinding),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Role => "Role",
            Self::ClusterRole => "ClusterRole",
            Self::RoleBinding => "RoleBinding",
            Self::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }

    fn is_namespaced(self) -> bool {
        matches!(self, Self::Role | Self::RoleBinding)
    }
}

/// An object the snapshot cannot hold.
#[derive(Debug, thiserror::Error)]
pub enum RbacObjectError {
    #[error("kind {0:?} is not Role, ClusterRole, RoleBinding or ClusterRoleBinding")]
    UnknownKind(String),
    #[error("{kind} {name:?} is malformed: {source}")]
    Malformed {
        kind: &'static str,
        name: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{kind} {name:?} has no metadata.namespace")]
    MissingNamespace { kind: &'static str, name: String },
}

#[derive(Debug, Clone)]
struct StoredClusterRole {
    labels: BTreeMap<String, String>,
    rules: Vec<Rule>,
    /// `Some` when the role has an `aggregationRule` (possibly with no selector).
    selectors: Option<Vec<LabelSelector>>,
}

#[derive(Debug, Clone)]
struct Binding {
    name: String,
    namespace: Option<String>,
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// The RBAC objects the authorizer reads: all Roles, ClusterRoles, RoleBindings and
/// ClusterRoleBindings, kept in name order (the order "allowed by" reasons follow).
#[derive(Debug, Clone, Default)]
pub struct RbacSnapshot {
    roles: BTreeMap<String, BTreeMap<String, Vec<Rule>>>,
    cluster_roles: BTreeMap<String, StoredClusterRole>,
    role_bindings: BTreeMap<String, BTreeMap<String, Binding>>,
    cluster_role_bindings: BTreeMap<String, Binding>,
    /// The rules each ClusterRole grants, aggregation applied.
    cluster_role_rules: BTreeMap<String, Vec<Rule>>,
}

/// What [`RbacSnapshot::visit_rules_for`] hands out.
enum Visit<'a> {
    Rules(Source<'a>, &'a [Rule]),
    Error(String),
}

/// Which binding (and which of its subjects) granted some rules.
struct Source<'a> {
    binding: &'a Binding,
    subject: &'a Subject,
}

impl fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let binding_namespace = self.binding.namespace.as_deref().unwrap_or("");
        let subject = match self.subject.kind.as_str() {
            "ServiceAccount" => {
                let ns = match self.subject.namespace.as_deref() {
                    Some(ns) if !ns.is_empty() => ns,
                    _ => binding_namespace,
                };
                format!(
                    "{} {}",
                    self.subject.kind,
                    go_quote(&format!("{}/{ns}", self.subject.name))
                )
            }
            _ => format!("{} {}", self.subject.kind, go_quote(&self.subject.name)),
        };
        let (kind, name) = match &self.binding.namespace {
            Some(ns) => ("RoleBinding", format!("{}/{ns}", self.binding.name)),
            None => ("ClusterRoleBinding", self.binding.name.clone()),
        };
        write!(
            f,
            "{kind} {} of {} {} to {subject}",
            go_quote(&name),
            self.binding.role_ref.kind,
            go_quote(&self.binding.role_ref.name)
        )
    }
}

impl RbacSnapshot {
    /// An empty snapshot: no permission for anyone outside `system:masters`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A snapshot of the given objects (any mix of the four kinds).
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> Result<Self, RbacObjectError> {
        let mut snapshot = Self::new();
        for object in objects {
            snapshot.insert(object)?;
        }
        snapshot.recompute_aggregation();
        Ok(snapshot)
    }

    /// Adds or replaces one object, identified by its `kind`, namespace and name.
    pub fn upsert(&mut self, object: &Value) -> Result<(), RbacObjectError> {
        let kind = self.insert(object)?;
        if kind == RbacKind::ClusterRole {
            self.recompute_aggregation();
        }
        Ok(())
    }

    /// Removes one object; says whether it was there.
    pub fn remove(&mut self, kind: RbacKind, namespace: Option<&str>, name: &str) -> bool {
        let ns = namespace.unwrap_or("");
        let removed = match kind {
            RbacKind::Role => remove_nested(&mut self.roles, ns, name),
            RbacKind::RoleBinding => remove_nested(&mut self.role_bindings, ns, name),
            RbacKind::ClusterRole => self.cluster_roles.remove(name).is_some(),
            RbacKind::ClusterRoleBinding => self.cluster_role_bindings.remove(name).is_some(),
        };
        if removed && kind == RbacKind::ClusterRole {
            self.recompute_aggregation();
        }
        removed
    }

    /// The ClusterRoles whose stored `rules` differ from what their `aggregationRule`
    /// selects, with the `rules` to store: what kube-controller-manager's
    /// clusterrole-aggregation controller would write.
    pub fn aggregation_updates(&self) -> Vec<(String, Value)> {
        self.cluster_roles
            .iter()
            .filter(|(_, role)| role.selectors.is_some())
            .filter_map(|(name, role)| {
                let aggregated = self.cluster_role_rules.get(name)?;
                (aggregated != &role.rules).then(|| {
                    let rules: Vec<Value> = aggregated.iter().map(Rule::to_json).collect();
                    (name.clone(), Value::Array(rules))
                })
            })
            .collect()
    }

    fn insert(&mut self, object: &Value) -> Result<RbacKind, RbacObjectError> {
        let kind_name = object.get("kind").and_then(Value::as_str).unwrap_or("");
        let kind = RbacKind::from_kind(kind_name)
            .ok_or_else(|| RbacObjectError::UnknownKind(kind_name.to_owned()))?;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned);
        if kind.is_namespaced() && namespace.is_none() {
            return Err(RbacObjectError::MissingNamespace {
                kind: kind.kind(),
                name,
            });
        }
        let ns = namespace.clone().unwrap_or_default();
        match kind {
            RbacKind::Role => {
                let role: Role = parse(kind, &name, object)?;
                let rules = role.rules.unwrap_or_default().into_iter().map(Rule::from);
                self.roles
                    .entry(ns)
                    .or_default()
                    .insert(name, rules.collect());
            }
            RbacKind::ClusterRole => {
                let role: ClusterRole = parse(kind, &name, object)?;
                let stored = StoredClusterRole {
                    labels: role.metadata.labels.unwrap_or_default(),
                    rules: role
                        .rules
                        .unwrap_or_default()
                        .into_iter()
                        .map(Rule::from)
                        .collect(),
                    selectors: role
                        .aggregation_rule
                        .map(|a| a.cluster_role_selectors.unwrap_or_default()),
                };
                self.cluster_roles.insert(name, stored);
            }
            RbacKind::RoleBinding => {
                let binding: RoleBinding = parse(kind, &name, object)?;
                let stored = Binding {
                    name: name.clone(),
                    namespace,
                    role_ref: binding.role_ref,
                    subjects: binding.subjects.unwrap_or_default(),
                };
                self.role_bindings
                    .entry(ns)
                    .or_default()
                    .insert(name, stored);
            }
            RbacKind::ClusterRoleBinding => {
                let binding: ClusterRoleBinding = parse(kind, &name, object)?;
                let stored = Binding {
                    name: name.clone(),
                    namespace: None,
                    role_ref: binding.role_ref,
                    subjects: binding.subjects.unwrap_or_default(),
                };
                self.cluster_role_bindings.insert(name, stored);
            }
        }
        Ok(kind)
    }

    /// Computes the rules of aggregated ClusterRoles as the clusterrole-aggregation
    /// controller converges to: for each selector in turn, the rules of the selected
    /// ClusterRoles in name order (the role itself excluded), duplicates dropped.
    fn recompute_aggregation(&mut self) {
        let mut current: BTreeMap<String, Vec<Rule>> = self
            .cluster_roles
            .iter()
            .map(|(name, role)| {
                let rules = match role.selectors {
                    Some(_) => Vec::new(),
                    None => role.rules.clone(),
                };
                (name.clone(), rules)
            })
            .collect();
        // Aggregated roles may select aggregated roles (admin selects edit, edit selects
        // view): iterate to the fixed point, at most once per role.
        for _ in 0..=self.cluster_roles.len() {
            let mut next = current.clone();
            for (name, role) in &self.cluster_roles {
                let Some(selectors) = &role.selectors else {
                    continue;
                };
                let mut rules: Vec<Rule> = Vec::new();
                for selector in selectors {
                    for (other_name, other) in &self.cluster_roles {
                        if other_name == name || !selector_matches(selector, &other.labels) {
                            continue;
                        }
                        for rule in current.get(other_name).into_iter().flatten() {
                            if !rules.contains(rule) {
                                rules.push(rule.clone());
                            }
                        }
                    }
                }
                next.insert(name.clone(), rules);
            }
            let stable = next == current;
            current = next;
            if stable {
                break;
            }
        }
        self.cluster_role_rules = current;
    }

    /// `GetRoleReferenceRules` with the authorizer's listers: the rules a role reference
    /// grants in `binding_namespace`, or the lister's error message.
    fn role_ref_rules(
        &self,
        role_ref: &RoleRef,
        binding_namespace: &str,
    ) -> Result<&[Rule], String> {
        match role_ref.kind.as_str() {
            "Role" => self
                .roles
                .get(binding_namespace)
                .and_then(|roles| roles.get(&role_ref.name))
                .map(Vec::as_slice)
                .ok_or_else(|| format!("role.{RBAC_GROUP} {} not found", go_quote(&role_ref.name))),
            "ClusterRole" => self
                .cluster_role_rules
                .get(&role_ref.name)
                .map(Vec::as_slice)
                .ok_or_else(|| {
                    format!(
                        "clusterrole.{RBAC_GROUP} {} not found",
                        go_quote(&role_ref.name)
                    )
                }),
            other => Err(format!(
                "unsupported role reference kind: {}",
                go_quote(other)
            )),
        }
    }

    /// `VisitRulesFor`: the rules of every ClusterRoleBinding, then every RoleBinding of
    /// `namespace`, that names the user; `visitor` returns false to stop.
    fn visit_rules_for<'a>(
        &'a self,
        user: &UserInfo,
        namespace: &str,
        mut visitor: impl FnMut(Visit<'a>) -> bool,
    ) {
        let cluster = self.cluster_role_bindings.values().map(|b| (b, ""));
        let local = (!namespace.is_empty())
            .then(|| self.role_bindings.get(namespace))
            .flatten()
            .into_iter()
            .flat_map(BTreeMap::values)
            .map(|b| (b, namespace));
        for (binding, binding_namespace) in cluster.chain(local) {
            let Some(subject) = binding
                .subjects
                .iter()
                .find(|s| subject_matches(user, s, binding_namespace))
            else {
                continue;
            };
            let keep_going = match self.role_ref_rules(&binding.role_ref, binding_namespace) {
                Ok(rules) => visitor(Visit::Rules(Source { binding, subject }, rules)),
                Err(error) => visitor(Visit::Error(error)),
            };
            if !keep_going {
                return;
            }
        }
    }

    /// `RulesFor`: every rule granted to the user in `namespace` (cluster-wide ones
    /// included), with the errors met resolving roles.
    fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<&Rule>, Vec<String>) {
        let mut rules = Vec::new();
        let mut errors = Vec::new();
        self.visit_rules_for(user, namespace, |visit| {
            match visit {
                Visit::Rules(_, granted) => rules.extend(granted),
                Visit::Error(error) => errors.push(error),
            }
            true
        });
        (rules, errors)
    }
}

fn remove_nested<T>(map: &mut BTreeMap<String, BTreeMap<String, T>>, ns: &str, name: &str) -> bool {
    let Some(inner) = map.get_mut(ns) else {
        return false;
    };
    let removed = inner.remove(name).is_some();
    if inner.is_empty() {
        map.remove(ns);
    }
    removed
}

fn parse<T: DeserializeOwned>(
    kind: RbacKind,
    name: &str,
    object: &Value,
) -> Result<T, RbacObjectError> {
    serde_json::from_value(object.clone()).map_err(|source| RbacObjectError::Malformed {
        kind: kind.kind(),
        name: name.to_owned(),
        source,
    })
}

/// `appliesToUser`: User by name, Group by membership, ServiceAccount by its user name
/// (the namespace defaults to the binding's; a ClusterRoleBinding has none).
fn subject_matches(user: &UserInfo, subject: &Subject, binding_namespace: &str) -> bool {
    match subject.kind.as_str() {
        "User" => user.name == subject.name,
        "Group" => user.groups.contains(&subject.name),
        "ServiceAccount" => {
            let namespace = match subject.namespace.as_deref() {
                Some(ns) if !ns.is_empty() => ns,
                _ => binding_namespace,
            };
            !namespace.is_empty()
                && user.service_account_parts() == Some((namespace, subject.name.as_str()))
        }
        _ => false,
    }
}

/// `metav1.LabelSelectorAsSelector(selector).Matches(labels)`; an invalid selector selects
/// nothing (the aggregation controller fails on it).
fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_match = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(key, value)| labels.get(key) == Some(value));
    let expressions_match = selector.match_expressions.iter().flatten().all(|req| {
        let values = req.values.as_deref().unwrap_or_default();
        let label = labels.get(&req.key);
        match req.operator.as_str() {
            "In" => !values.is_empty() && label.is_some_and(|v| values.contains(v)),
            "NotIn" => !values.is_empty() && label.is_none_or(|v| !values.contains(v)),
            "Exists" => values.is_empty() && label.is_some(),
            "DoesNotExist" => values.is_empty() && label.is_none(),
            _ => false,
        }
    });
    labels_match && expressions_match
}

#[cfg(test)]
mod tests;
