//! ValidatingAdmissionPolicy enforcement
//! (<https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/>),
//! following k8s.io/apiserver/pkg/admission/plugin/policy/validating: a binding applies its
//! policy to the requests that both the policy's `matchConstraints` and the binding's
//! `matchResources` match (resource rules with operations, `excludeResourceRules`,
//! namespace and object selectors), when every `matchConditions` expression is true; each
//! `validations` expression that is false becomes a denial (`Deny`) or a warning (`Warn`),
//! worded as the real plugin words them. CEL expressions see `object`, `oldObject`,
//! `request` (with `userInfo`), `namespaceObject` and `variables`; an expression that fails
//! follows `failurePolicy`. Policies with `paramKind` are not enforced (params are not
//! emulated), nor is the `authorizer` variable bound.

use std::collections::HashMap;
use std::sync::Arc;

use kube::core::cel::KubeCelExt;
use kube::core::cel::cel::objects::{Key, Map};
use kube::core::cel::cel::{Context, Program, Value as Cel};
use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::meta;
use crate::resources::ResourceType;

/// One admission request, as the policies see it.
pub struct Attributes<'a> {
    pub operation: &'a str,
    pub rt: &'a ResourceType,
    pub version: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    pub user: &'a UserInfo,
    pub dry_run: bool,
    /// The request's namespace object, for namespace selectors and `namespaceObject`.
    pub namespace_object: Option<&'a Value>,
}

/// What the policies decided: warnings to send, or the denial.
pub type Outcome = Result<Vec<String>, ApiError>;

fn strings(v: Option<&Value>) -> Vec<String> {
    meta::string_list(v)
}

fn rule_matches(rule: &Value, a: &Attributes<'_>) -> bool {
    let any = |key: &str, value: &str| {
        let list = strings(rule.get(key));
        list.iter().any(|x| x == "*" || x == value)
    };
    let resource = match a.subresource {
        Some(s) => format!("{}/{s}", a.rt.plural),
        None => a.rt.plural.clone(),
    };
    let resources = strings(rule.get("resources"));
    let resource_ok = resources.iter().any(|r| {
        r == &resource
            || r == "*/*"
            || (r == "*" && a.subresource.is_none())
            || a.subresource.is_some_and(|s| r == &format!("*/{s}"))
            || r.strip_suffix("/*")
                .is_some_and(|base| base == a.rt.plural && a.subresource.is_some())
    });
    let names = strings(rule.get("resourceNames"));
    let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
        "Cluster" => !a.rt.namespaced,
        "Namespaced" => a.rt.namespaced,
        _ => true,
    };
    any("operations", a.operation)
        && any("apiGroups", &a.rt.group)
        && any("apiVersions", a.version)
        && resource_ok
        && (names.is_empty() || names.iter().any(|n| n == a.name))
        && scope_ok
}

fn labels_of(obj: Option<&Value>) -> Value {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .cloned()
        .unwrap_or_else(|| json!({}))
}

/// A `metav1.LabelSelector` (matchLabels, matchExpressions) on `labels`; none or `{}`
/// matches everything.
fn selector_matches(selector: Option<&Value>, labels: &Value) -> bool {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return true;
    };
    let label = |k: &str| labels.get(k).and_then(Value::as_str);
    let match_labels = selector.get("matchLabels").and_then(Value::as_object);
    if match_labels
        .into_iter()
        .flatten()
        .any(|(k, v)| label(k) != v.as_str())
    {
        return false;
    }
    let expressions = selector.get("matchExpressions").and_then(Value::as_array);
    expressions.into_iter().flatten().all(|e| {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values = strings(e.get("values"));
        let has = |v: &str| values.iter().any(|x| x == v);
        match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => label(key).is_some_and(has),
            "NotIn" => !label(key).is_some_and(has),
            "Exists" => label(key).is_some(),
            "DoesNotExist" => label(key).is_none(),
            _ => false,
        }
    })
}

/// `matchConstraints` or `matchResources`.
fn resources_match(m: Option<&Value>, a: &Attributes<'_>, required: bool) -> bool {
    let Some(m) = m else {
        return !required;
    };
    let rules = m.get("resourceRules").and_then(Value::as_array);
    if let Some(rules) = rules
        && !rules.iter().any(|r| rule_matches(r, a))
    {
        return false;
    }
    if rules.is_none() && required {
        return false;
    }
    let excluded = m.get("excludeResourceRules").and_then(Value::as_array);
    if excluded.into_iter().flatten().any(|r| rule_matches(r, a)) {
        return false;
    }
    // A namespaced object's namespace labels; a Namespace's own; others always match.
    let ns_labels = if a.rt.namespaced {
        Some(labels_of(a.namespace_object))
    } else if a.rt.group.is_empty() && a.rt.plural == "namespaces" {
        Some(labels_of(a.object.or(a.old_object)))
    } else {
        None
    };
    if let Some(labels) = ns_labels
        && !selector_matches(m.get("namespaceSelector"), &labels)
    {
        return false;
    }
    let object_selector = m.get("objectSelector");
    selector_matches(object_selector, &labels_of(a.object))
        || (a.old_object.is_some() && selector_matches(object_selector, &labels_of(a.old_object)))
}

fn cel_map(entries: Vec<(&str, Cel)>) -> Cel {
    let map: HashMap<Key, Cel> = entries
        .into_iter()
        .map(|(k, v)| (Key::String(Arc::new(k.to_string())), v))
        .collect();
    Cel::Map(Map { map: Arc::new(map) })
}

fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => Cel::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cel::String(Arc::new(s.clone())),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(m) => {
            let map: HashMap<Key, Cel> = m
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Cel::Map(Map { map: Arc::new(map) })
        }
    }
}

fn request(a: &Attributes<'_>) -> Cel {
    let s = |v: &str| Cel::String(Arc::new(v.to_string()));
    let groups = Cel::List(Arc::new(a.user.groups.iter().map(|g| s(g)).collect()));
    cel_map(vec![
        ("operation", s(a.operation)),
        ("name", s(a.name)),
        ("namespace", s(a.namespace)),
        ("dryRun", Cel::Bool(a.dry_run)),
        ("subResource", s(a.subresource.unwrap_or(""))),
        (
            "kind",
            cel_map(vec![
                ("group", s(&a.rt.group)),
                ("version", s(a.version)),
                ("kind", s(&a.rt.kind)),
            ]),
        ),
        (
            "resource",
            cel_map(vec![
                ("group", s(&a.rt.group)),
                ("version", s(a.version)),
                ("resource", s(&a.rt.plural)),
            ]),
        ),
        (
            "userInfo",
            cel_map(vec![
                ("username", s(&a.user.name)),
                ("uid", s(&a.user.uid)),
                ("groups", groups),
            ]),
        ),
    ])
}

/// The evaluation context of one policy: the request's variables and the policy's
/// `variables`, evaluated in order (a failing one is null, and fails what uses it).
struct Scope {
    base: Vec<(&'static str, Cel)>,
    variables: Vec<(String, Cel)>,
}

impl Scope {
    fn context(&self) -> Context<'static> {
        let mut ctx = Context::default();
        ctx.register_all();
        for (k, v) in &self.base {
            ctx.add_variable_from_value(*k, v.clone());
        }
        let vars: HashMap<Key, Cel> = self
            .variables
            .iter()
            .map(|(k, v)| (Key::String(Arc::new(k.clone())), v.clone()))
            .collect();
        ctx.add_variable_from_value(
            "variables",
            Cel::Map(Map {
                map: Arc::new(vars),
            }),
        );
        ctx
    }

    fn eval(&self, expression: &str) -> Result<Cel, String> {
        let program =
            Program::compile(expression).map_err(|e| format!("compilation failed: {e}"))?;
        program.execute(&self.context()).map_err(|e| e.to_string())
    }
}

fn cel_to_string(v: &Cel) -> Option<String> {
    match v {
        Cel::String(s) => Some((**s).clone()),
        _ => None,
    }
}

/// A failed validation's message (`message`, `messageExpression`, or the expression).
fn message_of(validation: &Value, scope: &Scope) -> String {
    if let Some(expr) = validation.get("messageExpression").and_then(Value::as_str)
        && let Ok(v) = scope.eval(expr)
        && let Some(m) = cel_to_string(&v).filter(|m| !m.trim().is_empty() && !m.contains('\n'))
    {
        return m;
    }
    match validation.get("message").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => format!(
            "failed expression: {}",
            validation
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or("")
        ),
    }
}

/// `reasonToCode` of the plugin.
fn code_of(reason: &str) -> (u16, &'static str) {
    match reason {
        "Unauthorized" => (401, "Unauthorized"),
        "Forbidden" => (403, "Forbidden"),
        "RequestEntityTooLarge" => (413, "RequestEntityTooLarge"),
        _ => (422, "Invalid"),
    }
}

/// Evaluates every binding's policy on a request.
pub fn admit(policies: &[Value], bindings: &[Value], a: &Attributes<'_>) -> Outcome {
    let mut warnings = Vec::new();
    for binding in bindings {
        let policy_name = binding
            .pointer("/spec/policyName")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(policy) = policies.iter().find(|p| meta::name(p) == policy_name) else {
            continue;
        };
        let spec = &policy["spec"];
        if spec.get("paramKind").is_some_and(|p| !p.is_null()) {
            continue;
        }
        if !resources_match(spec.get("matchConstraints"), a, true)
            || !resources_match(binding.pointer("/spec/matchResources"), a, false)
        {
            continue;
        }
        let binding_name = meta::name(binding);
        let fail_closed = spec.get("failurePolicy").and_then(Value::as_str) != Some("Ignore");
        let actions = strings(binding.pointer("/spec/validationActions"));
        let mut scope = Scope {
            base: vec![
                ("object", a.object.map_or(Cel::Null, to_cel)),
                ("oldObject", a.old_object.map_or(Cel::Null, to_cel)),
                ("request", request(a)),
                (
                    "namespaceObject",
                    a.namespace_object.map_or(Cel::Null, to_cel),
                ),
            ],
            variables: Vec::new(),
        };
        let vars = spec.get("variables").and_then(Value::as_array);
        for v in vars.into_iter().flatten() {
            let name = v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let expr = v.get("expression").and_then(Value::as_str).unwrap_or("");
            let value = scope.eval(expr).unwrap_or(Cel::Null);
            scope.variables.push((name, value));
        }
        // Every match condition must be true; an error follows the failure policy.
        let mut applies = true;
        let mut failures: Vec<(String, String)> = Vec::new();
        let conditions = spec.get("matchConditions").and_then(Value::as_array);
        for c in conditions.into_iter().flatten() {
            let expr = c.get("expression").and_then(Value::as_str).unwrap_or("");
            match scope.eval(expr) {
                Ok(Cel::Bool(true)) => {}
                Ok(Cel::Bool(false)) => applies = false,
                Ok(_) | Err(_) if fail_closed => {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or("");
                    failures.push((
                        format!("failed to evaluate match condition {name:?}"),
                        "Invalid".into(),
                    ));
                }
                _ => applies = false,
            }
        }
        if !applies {
            continue;
        }
        if failures.is_empty() {
            let validations = spec.get("validations").and_then(Value::as_array);
            for v in validations.into_iter().flatten() {
                let expr = v.get("expression").and_then(Value::as_str).unwrap_or("");
                let reason = v.get("reason").and_then(Value::as_str).unwrap_or("Invalid");
                match scope.eval(expr) {
                    Ok(Cel::Bool(true)) => {}
                    Ok(Cel::Bool(false)) => failures.push((message_of(v, &scope), reason.into())),
                    Ok(other) if fail_closed => failures.push((
                        format!("expression '{expr}' resulted in error: must evaluate to bool, got {other:?}"),
                        reason.into(),
                    )),
                    Err(e) if fail_closed => failures.push((
                        format!("expression '{expr}' resulted in error: {e}"),
                        reason.into(),
                    )),
                    _ => {}
                }
            }
        }
        for (message, reason) in &failures {
            if actions.iter().any(|x| x == "Warn") {
                warnings.push(format!(
                    "Validation failed for ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}': {message}"
                ));
            }
            if actions.iter().any(|x| x == "Deny") {
                let text = format!(
                    "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {message}"
                );
                let gr = a.rt.group_resource();
                let (code, reason) = code_of(reason);
                let mut details =
                    json!({"name": a.name, "kind": gr.resource, "causes": [{"message": text}]});
                if !gr.group.is_empty() {
                    details["group"] = json!(gr.group);
                }
                let full = if a.name.is_empty() {
                    format!("{gr} is forbidden: {text}")
                } else {
                    format!("{gr} \"{}\" is forbidden: {text}", a.name)
                };
                return Err(ApiError::new(code, reason, full).with_details(details));
            }
        }
    }
    Ok(warnings)
}
