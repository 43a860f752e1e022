//! Built-in kinds: decoding through the Kubernetes types (which drops unknown fields, as the
//! Go structs of the real server do), per-kind create/update strategies and validation.

use std::collections::BTreeSet;

use base64::Engine;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use k8s_openapi::api::{
    admissionregistration::v1 as admission, authentication::v1 as authn,
    authorization::v1 as authz, batch::v1 as batch, coordination::v1 as coordination,
    core::v1 as core, events::v1 as events, networking::v1 as networking, rbac::v1 as rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;

use crate::error::{ApiError, FieldCause};
use crate::meta;
use crate::resources::ResourceType;
use crate::validation::{self, NameRule};

/// A decoded object and the paths of the fields the type does not know.
pub struct Decoded {
    pub object: Value,
    pub unknown_fields: Vec<String>,
}

fn roundtrip<T: DeserializeOwned + Serialize>(obj: &Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// Paths present (and non-null) in `input` but missing from `output`.
pub fn missing_paths(input: &Value, output: &Value, path: &str, out: &mut Vec<String>) {
    match (input, output) {
        (Value::Object(i), Value::Object(o)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match o.get(k) {
                    Some(ov) => missing_paths(v, ov, &p, out),
                    None if !v.is_null() => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(o)) => {
            for (n, (iv, ov)) in i.iter().zip(o).enumerate() {
                missing_paths(iv, ov, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

fn typed_roundtrip(rt: &ResourceType, obj: &Value) -> Option<Result<Value, String>> {
    Some(match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => roundtrip::<core::Namespace>(obj),
        ("", "Secret") => roundtrip::<core::Secret>(obj),
        ("", "ConfigMap") => roundtrip::<core::ConfigMap>(obj),
        ("", "ServiceAccount") => roundtrip::<core::ServiceAccount>(obj),
        ("", "ResourceQuota") => roundtrip::<core::ResourceQuota>(obj),
        ("", "LimitRange") => roundtrip::<core::LimitRange>(obj),
        ("", "Event") => roundtrip::<core::Event>(obj),
        ("events.k8s.io", "Event") => roundtrip::<events::Event>(obj),
        ("coordination.k8s.io", "Lease") => roundtrip::<coordination::Lease>(obj),
        ("networking.k8s.io", "NetworkPolicy") => roundtrip::<networking::NetworkPolicy>(obj),
        ("rbac.authorization.k8s.io", "Role") => roundtrip::<rbac::Role>(obj),
        ("rbac.authorization.k8s.io", "RoleBinding") => roundtrip::<rbac::RoleBinding>(obj),
        ("rbac.authorization.k8s.io", "ClusterRole") => roundtrip::<rbac::ClusterRole>(obj),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            roundtrip::<rbac::ClusterRoleBinding>(obj)
        }
        ("batch", "Job") => roundtrip::<batch::Job>(obj),
        ("batch", "CronJob") => roundtrip::<batch::CronJob>(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            roundtrip::<apiextensions::CustomResourceDefinition>(obj)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            roundtrip::<admission::ValidatingAdmissionPolicy>(obj)
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            roundtrip::<admission::ValidatingAdmissionPolicyBinding>(obj)
        }
        ("authorization.k8s.io", "SelfSubjectAccessReview") => {
            roundtrip::<authz::SelfSubjectAccessReview>(obj)
        }
        ("authorization.k8s.io", "SelfSubjectRulesReview") => {
            roundtrip::<authz::SelfSubjectRulesReview>(obj)
        }
        ("authorization.k8s.io", "SubjectAccessReview") => {
            roundtrip::<authz::SubjectAccessReview>(obj)
        }
        ("authentication.k8s.io", "SelfSubjectReview") => {
            roundtrip::<authn::SelfSubjectReview>(obj)
        }
        _ => return None,
    })
}

/// Decodes a built-in object the way the real server decodes into its Go types: wrong
/// types are a 400, unknown fields are dropped (and reported), Secret `stringData` is
/// merged into `data`.
pub fn decode(rt: &ResourceType, version: &str, obj: Value) -> Result<Decoded, ApiError> {
    let mut obj = obj;
    if rt.kind == "Secret" && rt.group.is_empty() {
        merge_string_data(&mut obj);
    }
    let Some(result) = typed_roundtrip(rt, &obj) else {
        return Ok(Decoded {
            object: obj,
            unknown_fields: Vec::new(),
        });
    };
    let out = result.map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = rt.kind
        ))
    })?;
    if let Some(e) = crate::limits::first_bad_quantity(&rt.kind, &out) {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}",
            kind = rt.kind
        )));
    }
    let mut unknown_fields = Vec::new();
    missing_paths(&obj, &out, "", &mut unknown_fields);
    let mut out = out;
    default(rt, &mut out);
    // The typed round trip normalises the object; metadata the types drop (null fields) is fine.
    Ok(Decoded {
        object: out,
        unknown_fields,
    })
}

/// Sets `key` of the object `obj` to `value` when it is absent (or null).
fn or_set(obj: &mut Value, key: &str, value: Value) {
    if let Some(m) = obj.as_object_mut() {
        let slot = m.entry(key).or_insert(Value::Null);
        if slot.is_null() {
            *slot = value;
        }
    }
}

/// The objects of the list at `key` of `obj`.
fn items_mut<'a>(obj: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// `SetDefaults_Container` and what it implies (ports, env, probes).
fn default_container(c: &mut Value) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // The tag is after the last ':' not followed by a '/' (a registry port is not a tag).
    let tag = image
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map(|(_, t)| t);
    let pull = if image.contains('@') || tag.is_some_and(|t| t != "latest") {
        "IfNotPresent"
    } else {
        "Always"
    };
    or_set(c, "imagePullPolicy", json!(pull));
    or_set(c, "terminationMessagePath", json!("/dev/termination-log"));
    or_set(c, "terminationMessagePolicy", json!("File"));
    or_set(c, "resources", json!({}));
    for port in items_mut(c, "ports") {
        or_set(port, "protocol", json!("TCP"));
    }
    for env in items_mut(c, "env") {
        if let Some(field_ref) = env.pointer_mut("/valueFrom/fieldRef") {
            or_set(field_ref, "apiVersion", json!("v1"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            or_set(p, "timeoutSeconds", json!(1));
            or_set(p, "periodSeconds", json!(10));
            or_set(p, "successThreshold", json!(1));
            or_set(p, "failureThreshold", json!(3));
            if let Some(get) = p.get_mut("httpGet") {
                or_set(get, "scheme", json!("HTTP"));
            }
        }
    }
}

/// `SetDefaults_PodSpec` (of a pod template), with its containers and volumes.
fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    or_set(spec, "restartPolicy", json!("Always"));
    or_set(spec, "terminationGracePeriodSeconds", json!(30));
    or_set(spec, "dnsPolicy", json!("ClusterFirst"));
    or_set(spec, "securityContext", json!({}));
    or_set(spec, "schedulerName", json!("default-scheduler"));
    for key in ["containers", "initContainers"] {
        for c in items_mut(spec, key) {
            default_container(c);
        }
    }
    for v in items_mut(spec, "volumes") {
        for source in ["secret", "configMap", "projected", "downwardAPI"] {
            if let Some(src) = v.get_mut(source) {
                or_set(src, "defaultMode", json!(420));
            }
        }
    }
}

/// `SetDefaults_Job` (k8s.io/kubernetes/pkg/apis/batch/v1/defaults.go) on a Job's spec.
fn default_job_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    if spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null)
    {
        spec["completions"] = json!(1);
    }
    or_set(spec, "parallelism", json!(1));
    let backoff = if spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        json!(i32::MAX)
    } else {
        json!(6)
    };
    or_set(spec, "backoffLimit", backoff);
    or_set(spec, "completionMode", json!("NonIndexed"));
    or_set(spec, "suspend", json!(false));
    let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    or_set(spec, "podReplacementPolicy", json!(replacement));
}

/// The defaulting functions the Go types run on decode (`SetDefaults_*` of
/// k8s.io/kubernetes/pkg/apis/*/v1), as kube-apiserver v1.33 applies them: a binding
/// subject's `apiGroup` follows its kind (`rbac.authorization.k8s.io` for users and
/// groups, none for service accounts); a NetworkPolicy's `policyTypes` (Ingress, plus
/// Egress when it has egress rules) and its ports' `protocol` (TCP); a container
/// LimitRange's `default` (from `max`) and `defaultRequest` (from `default`, then `min`);
/// Jobs and CronJobs (and their pod templates: restart, DNS and scheduler policies, grace
/// period, containers' pull policy, termination message, ports, probes, volume modes).
fn default(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("networking.k8s.io", "NetworkPolicy") => {
            let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) else {
                return;
            };
            for direction in ["ingress", "egress"] {
                for rule in items_mut(spec, direction) {
                    for port in items_mut(rule, "ports") {
                        or_set(port, "protocol", json!("TCP"));
                    }
                }
            }
            // Go's `omitempty`: empty rule lists are not kept.
            if let Some(m) = spec.as_object_mut() {
                for direction in ["ingress", "egress", "policyTypes"] {
                    if m.get(direction)
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty)
                    {
                        m.remove(direction);
                    }
                }
            }
            let none = spec
                .get("policyTypes")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if none {
                let egress = spec
                    .get("egress")
                    .and_then(Value::as_array)
                    .is_some_and(|e| !e.is_empty());
                spec["policyTypes"] = if egress {
                    json!(["Ingress", "Egress"])
                } else {
                    json!(["Ingress"])
                };
            }
        }
        ("", "LimitRange") => {
            let Some(spec) = obj.get_mut("spec") else {
                return;
            };
            for item in items_mut(spec, "limits") {
                if item.get("type").and_then(Value::as_str) != Some("Container") {
                    continue;
                }
                let map = |item: &Value, k: &str| {
                    item.get(k)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default()
                };
                let mut default = map(item, "default");
                let mut request = map(item, "defaultRequest");
                for (k, v) in map(item, "max") {
                    default.entry(k).or_insert(v);
                }
                for (k, v) in &default {
                    request.entry(k.clone()).or_insert(v.clone());
                }
                for (k, v) in map(item, "min") {
                    request.entry(k).or_insert(v);
                }
                if !default.is_empty() {
                    item["default"] = Value::Object(default);
                }
                if !request.is_empty() {
                    item["defaultRequest"] = Value::Object(request);
                }
            }
        }
        ("batch", "Job") => {
            if let Some(spec) = obj.get_mut("spec") {
                default_job_spec(spec);
                if let Some(pod) = spec.pointer_mut("/template/spec") {
                    default_pod_spec(pod);
                }
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                or_set(spec, "concurrencyPolicy", json!("Allow"));
                or_set(spec, "suspend", json!(false));
                or_set(spec, "successfulJobsHistoryLimit", json!(3));
                or_set(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(pod) = spec.pointer_mut("/jobTemplate/spec/template/spec") {
                    default_pod_spec(pod);
                }
            }
        }
        _ => default_subjects(rt, obj),
    }
}

/// `SetDefaults_Subject`.
fn default_subjects(rt: &ResourceType, obj: &mut Value) {
    if rt.group == "rbac.authorization.k8s.io"
        && matches!(rt.kind.as_str(), "RoleBinding" | "ClusterRoleBinding")
        && let Some(subjects) = obj.get_mut("subjects").and_then(Value::as_array_mut)
    {
        for s in subjects {
            let empty = s
                .get("apiGroup")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty);
            let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
            if empty && matches!(kind, "User" | "Group") {
                s["apiGroup"] = json!("rbac.authorization.k8s.io");
            }
        }
    }
}

/// `stringData` is write-only: merged into `data` (overwriting) and never stored.
fn merge_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = meta::ensure_object(map.entry("data").or_insert(Value::Null));
    for (k, v) in string_data {
        let s = v.as_str().unwrap_or_default();
        data.insert(
            k,
            json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
        );
    }
}

pub fn name_rule(rt: &ResourceType) -> NameRule {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => NameRule::Dns1123Label,
        ("rbac.authorization.k8s.io", _) => NameRule::PathSegment,
        _ => NameRule::Dns1123Subdomain,
    }
}

/// Strategy on create: server-set fields of built-in kinds.
pub fn prepare_create(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            let name = meta::name(obj).to_string();
            let spec = meta::ensure_object(
                meta::ensure_object(obj)
                    .entry("spec")
                    .or_insert(Value::Null),
            );
            let mut finalizers = meta::string_list(spec.get("finalizers"));
            if !finalizers.iter().any(|f| f == "kubernetes") {
                finalizers.push("kubernetes".to_string());
            }
            spec.insert("finalizers".into(), json!(finalizers));
            obj["status"] = json!({"phase": "Active"});
            set_namespace_name_label(obj, &name);
        }
        ("batch", "Job") => generate_job_selector(obj),
        ("", "Secret")
            if obj
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            obj["type"] = json!("Opaque");
        }
        _ => {}
    }
}

/// The Job strategy's `generateSelector` (k8s.io/kubernetes/pkg/registry/batch/job/
/// strategy.go): unless `manualSelector`, the pod template gets the job-name and
/// controller-uid labels (legacy and `batch.kubernetes.io/` ones) and the selector matches
/// the uid; a Job without labels takes its template's.
fn generate_job_selector(obj: &mut Value) {
    let name = meta::name(obj).to_string();
    let uid = meta::uid(obj).to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.insert("manualSelector".into(), json!(false));
    let template = meta::ensure_object(spec.entry("template").or_insert(Value::Null));
    let metadata = meta::ensure_object(template.entry("metadata").or_insert(Value::Null));
    let labels = meta::ensure_object(metadata.entry("labels").or_insert(Value::Null));
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ] {
        labels.entry(k).or_insert(json!(v));
    }
    let template_labels = Value::Object(labels.clone());
    let selector = meta::ensure_object(spec.entry("selector").or_insert(Value::Null));
    let match_labels = meta::ensure_object(selector.entry("matchLabels").or_insert(Value::Null));
    match_labels
        .entry("batch.kubernetes.io/controller-uid")
        .or_insert(json!(uid));
    let m = meta::metadata_mut(obj);
    if m.get("labels")
        .and_then(Value::as_object)
        .is_none_or(serde_json::Map::is_empty)
    {
        m.insert("labels".into(), template_labels);
    }
}

fn set_namespace_name_label(obj: &mut Value, name: &str) {
    let m = meta::metadata_mut(obj);
    let labels = meta::ensure_object(m.entry("labels").or_insert(Value::Null));
    labels.insert("kubernetes.io/metadata.name".into(), json!(name));
}

/// Strategy on update through the main endpoint.
pub fn prepare_update(rt: &ResourceType, old: &Value, new: &mut Value) {
    if let ("", "Namespace") = (rt.group.as_str(), rt.kind.as_str()) {
        // spec.finalizers change only through /finalize.
        let finalizers = old
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or(json!([]));
        meta::ensure_object(
            meta::ensure_object(new)
                .entry("spec")
                .or_insert(Value::Null),
        )
        .insert("finalizers".into(), finalizers);
        let name = meta::name(old).to_string();
        set_namespace_name_label(new, &name);
    }
}

fn immutable(field: &str, old: &Value, new: &Value, causes: &mut Vec<FieldCause>) {
    let o = old.pointer(&format!("/{}", field.replace('.', "/")));
    let n = new.pointer(&format!("/{}", field.replace('.', "/")));
    if o != n {
        causes.push(FieldCause::invalid(
            field,
            n.cloned().unwrap_or(Value::Null),
            "field is immutable",
        ));
    }
}

fn config_keys(
    field: &str,
    map: Option<&Value>,
    seen: &mut BTreeSet<String>,
    causes: &mut Vec<FieldCause>,
) {
    static KEY: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new("^[-._a-zA-Z0-9]+$").unwrap_or_else(|e| panic!("{e}"))
    });
    for k in map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !KEY.is_match(k) || k.len() > 253 {
            causes.push(FieldCause::invalid(
                &format!("{field}[{k}]"),
                json!(k),
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
            ));
        }
        if !seen.insert(k.clone()) {
            causes.push(FieldCause::invalid(
                &format!("{field}[{k}]"),
                json!(k),
                "duplicate of key present in data",
            ));
        }
    }
}

fn immutable_data(old: &Value, new: &Value, fields: &[&str], causes: &mut Vec<FieldCause>) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if fields.iter().any(|f| old.get(f) != new.get(f)) {
        causes.push(FieldCause::forbidden(
            "data",
            "field is immutable when `immutable` is set",
        ));
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        causes.push(FieldCause::forbidden(
            "immutable",
            "field is immutable when `immutable` is set",
        ));
    }
}

fn policy_rules(obj: &Value, namespaced: bool, causes: &mut Vec<FieldCause>) {
    for (i, rule) in obj
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let f = format!("rules[{i}]");
        let list = |k: &str| meta::string_list(rule.get(k));
        if list("verbs").is_empty() {
            causes.push(FieldCause::required(
                &format!("{f}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let non_resource = list("nonResourceURLs");
        if !non_resource.is_empty() {
            if namespaced {
                causes.push(FieldCause::invalid(
                    &format!("{f}.nonResourceURLs"),
                    json!(non_resource),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            continue;
        }
        if list("apiGroups").is_empty() {
            causes.push(FieldCause::required(
                &format!("{f}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if list("resources").is_empty() {
            causes.push(FieldCause::required(
                &format!("{f}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

fn binding(obj: &Value, cluster: bool, causes: &mut Vec<FieldCause>) {
    let role_ref = obj.get("roleRef");
    let s = |k: &str| {
        role_ref
            .and_then(|r| r.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    if s("apiGroup") != "rbac.authorization.k8s.io" {
        causes.push(FieldCause::not_supported(
            "roleRef.apiGroup",
            json!(s("apiGroup")),
            &["rbac.authorization.k8s.io"],
        ));
    }
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&s("kind")) {
        causes.push(FieldCause::not_supported(
            "roleRef.kind",
            json!(s("kind")),
            kinds,
        ));
    }
    if s("name").is_empty() {
        causes.push(FieldCause::required("roleRef.name", ""));
    }
    for (i, subject) in obj
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let g = |k: &str| subject.get(k).and_then(Value::as_str).unwrap_or("");
        let f = format!("subjects[{i}]");
        if g("name").is_empty() {
            causes.push(FieldCause::required(&format!("{f}.name"), ""));
        }
        match g("kind") {
            "ServiceAccount" => {
                if cluster && g("namespace").is_empty() {
                    causes.push(FieldCause::required(&format!("{f}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if g("apiGroup") != "rbac.authorization.k8s.io" {
                    causes.push(FieldCause::not_supported(
                        &format!("{f}.apiGroup"),
                        json!(g("apiGroup")),
                        &["rbac.authorization.k8s.io"],
                    ));
                }
            }
            other => causes.push(FieldCause::not_supported(
                &format!("{f}.kind"),
                json!(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

fn required_str(obj: &Value, pointer: &str, field: &str, causes: &mut Vec<FieldCause>) {
    if obj
        .pointer(pointer)
        .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    {
        causes.push(FieldCause::required(field, ""));
    }
}

/// Kind-specific validation of a built-in object (`old` on update).
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Secret") => {
            config_keys("data", obj.get("data"), &mut BTreeSet::new(), &mut causes);
            crate::limits::secret(obj, &mut causes);
            if let Some(old) = old {
                immutable("type", old, obj, &mut causes);
                immutable_data(old, obj, &["data"], &mut causes);
            }
        }
        ("", "ConfigMap") => {
            let mut seen = BTreeSet::new();
            config_keys("data", obj.get("data"), &mut seen, &mut causes);
            config_keys("binaryData", obj.get("binaryData"), &mut seen, &mut causes);
            crate::limits::config_map(obj, &mut causes);
            if let Some(old) = old {
                immutable_data(old, obj, &["data", "binaryData"], &mut causes);
            }
        }
        ("rbac.authorization.k8s.io", "Role") => policy_rules(obj, true, &mut causes),
        ("rbac.authorization.k8s.io", "ClusterRole") => policy_rules(obj, false, &mut causes),
        ("rbac.authorization.k8s.io", kind @ ("RoleBinding" | "ClusterRoleBinding")) => {
            binding(obj, kind == "ClusterRoleBinding", &mut causes);
            if let Some(old) = old
                && old.get("roleRef") != obj.get("roleRef")
            {
                causes.push(FieldCause::invalid(
                    "roleRef",
                    obj.get("roleRef").cloned().unwrap_or(Value::Null),
                    "cannot change roleRef",
                ));
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            crate::limits::network_policy(obj, &mut causes);
            for (i, t) in meta::string_list(obj.pointer("/spec/policyTypes"))
                .iter()
                .enumerate()
            {
                if t != "Ingress" && t != "Egress" {
                    causes.push(FieldCause::not_supported(
                        &format!("spec.policyTypes[{i}]"),
                        json!(t),
                        &["Ingress", "Egress"],
                    ));
                }
            }
        }
        ("batch", "Job") => {
            if obj.pointer("/spec/template").is_none() {
                causes.push(FieldCause::required("spec.template", ""));
            } else {
                if obj
                    .pointer("/spec/template/spec/containers")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
                {
                    causes.push(FieldCause::required("spec.template.spec.containers", ""));
                }
                let rp = obj
                    .pointer("/spec/template/spec/restartPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if rp != "OnFailure" && rp != "Never" {
                    causes.push(FieldCause::not_supported(
                        "spec.template.spec.restartPolicy",
                        json!(rp),
                        &["OnFailure", "Never"],
                    ));
                }
            }
            if let Some(old) = old {
                immutable("spec.template", old, obj, &mut causes);
                immutable("spec.completions", old, obj, &mut causes);
            }
        }
        ("batch", "CronJob") => {
            required_str(obj, "/spec/schedule", "spec.schedule", &mut causes);
            crate::limits::cron_schedule(obj, &mut causes);
            if obj.pointer("/spec/jobTemplate").is_none() {
                causes.push(FieldCause::required("spec.jobTemplate", ""));
            }
        }
        ("events.k8s.io", "Event") => {
            for (p, f) in [
                ("/eventTime", "eventTime"),
                ("/reportingController", "reportingController"),
                ("/reportingInstance", "reportingInstance"),
                ("/action", "action"),
                ("/reason", "reason"),
            ] {
                required_str(obj, p, f, &mut causes);
            }
            crate::limits::event_type(obj, &mut causes);
        }
        ("coordination.k8s.io", "Lease") => {
            if let Some(d) = obj
                .pointer("/spec/leaseDurationSeconds")
                .and_then(Value::as_i64)
                && d <= 0
            {
                causes.push(FieldCause::invalid(
                    "spec.leaseDurationSeconds",
                    json!(d),
                    "must be greater than 0",
                ));
            }
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            crate::crd::validate(obj, old, &mut causes);
        }
        _ => {}
    }
    causes
}

/// Validates the metadata and the kind-specific fields of a built-in object.
pub fn validate_all(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<FieldCause> {
    let mut causes = validation::object_meta(obj, name_rule(rt), rt.namespaced);
    causes.extend(validate(rt, obj, old));
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn secret_type() -> ResourceType {
        let r = Registry::with_builtins();
        r.lookup("", "v1", "secrets")
            .map(|t| (**t).clone())
            .unwrap()
    }

    #[test]
    fn secret_string_data_is_merged_and_unknown_fields_reported() {
        let d = decode(
            &secret_type(),
            "v1",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "stringData": {"a": "hi"}, "data": {"b": "aGk="}, "bogus": 1}),
        )
        .unwrap();
        assert_eq!(d.object["data"]["a"], "aGk=");
        assert!(d.object.get("stringData").is_none());
        assert_eq!(d.unknown_fields, vec!["bogus".to_string()]);
    }

    #[test]
    fn secret_with_bad_base64_is_a_bad_request() {
        let e = decode(
            &secret_type(),
            "v1",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": "!!"}}),
        )
        .err()
        .unwrap();
        assert_eq!(e.code, 400);
    }
}
