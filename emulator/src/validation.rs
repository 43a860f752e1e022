//! Object metadata validation shared by every kind: names, labels, finalizers, owner references.
//!
//! Rules and messages from `k8s.io/apimachinery/pkg/util/validation` and
//! `k8s.io/apimachinery/pkg/api/validation` (object meta).

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value, json};

use crate::error::FieldCause;
use crate::meta;

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";

static DNS1123_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^{DNS1123_LABEL_FMT}$")).unwrap_or_else(|e| panic!("{e}"))
});
static DNS1123_SUBDOMAIN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!("^{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*$"))
        .unwrap_or_else(|e| panic!("{e}"))
});
static QUALIFIED_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$").unwrap_or_else(|e| panic!("{e}"))
});
static LABEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new("^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$").unwrap_or_else(|e| panic!("{e}"))
});

/// How a kind's names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    Dns1123Label,
    Dns1123Subdomain,
    /// Anything usable as a path segment (RBAC objects).
    PathSegment,
}

pub fn dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !DNS1123_LABEL.is_match(value) {
        errs.push(format!("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '{DNS1123_LABEL_FMT}')"));
    }
    errs
}

pub fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if !DNS1123_SUBDOMAIN.is_match(value) {
        errs.push(format!("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_LABEL_FMT}(\\.{DNS1123_LABEL_FMT})*')"));
    }
    errs
}

fn path_segment(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|c| value.contains(*c))
        .map(|c| format!("may not contain '{c}'"))
        .collect()
}

/// `IsQualifiedName`: an optional DNS subdomain prefix and a name part.
pub fn qualified_name(value: &str) -> Vec<String> {
    let (prefix, name) = match value.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, value),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    } else if !QUALIFIED_NAME.is_match(name) {
        errs.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string());
    }
    errs
}

fn label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !LABEL_VALUE.is_match(value) {
        errs.push("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string());
    }
    errs
}

pub fn check_name(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Dns1123Label => dns1123_label(name),
        NameRule::Dns1123Subdomain => dns1123_subdomain(name),
        NameRule::PathSegment => path_segment(name),
    }
}

/// Validates `metadata` of an object about to be stored.
pub fn object_meta(obj: &Value, rule: NameRule, namespaced: bool) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    let name = meta::name(obj);
    if name.is_empty() {
        causes.push(FieldCause::required(
            "metadata.name",
            "name or generateName is required",
        ));
    } else {
        for e in check_name(rule, name) {
            causes.push(FieldCause::invalid("metadata.name", json!(name), &e));
        }
    }
    let ns = meta::namespace(obj);
    if namespaced && ns.is_empty() {
        causes.push(FieldCause::required("metadata.namespace", ""));
    }
    if !namespaced && !ns.is_empty() {
        causes.push(FieldCause::forbidden(
            "metadata.namespace",
            "not allowed on this type",
        ));
    }
    if let Some(labels) = meta::labels(obj) {
        for (k, v) in labels {
            for e in qualified_name(k) {
                causes.push(FieldCause::invalid("metadata.labels", json!(k), &e));
            }
            match v.as_str() {
                Some(s) => {
                    for e in label_value(s) {
                        causes.push(FieldCause::invalid("metadata.labels", json!(s), &e));
                    }
                }
                None => causes.push(FieldCause::invalid(
                    "metadata.labels",
                    v.clone(),
                    "must be a string",
                )),
            }
        }
    }
    if let Some(annotations) = meta::metadata(obj)
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_object)
    {
        let total: usize = annotations
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        for k in annotations.keys() {
            for e in qualified_name(&k.to_lowercase()) {
                causes.push(FieldCause::invalid("metadata.annotations", json!(k), &e));
            }
        }
        if total > 256 * 1024 {
            causes.push(FieldCause {
                kind: crate::error::CauseKind::Invalid,
                field: "metadata.annotations".into(),
                value: None,
                detail: "Too long: must have at most 262144 bytes".into(),
            });
        }
    }
    for (i, f) in meta::finalizers(obj).iter().enumerate() {
        for e in qualified_name(f) {
            causes.push(FieldCause::invalid(
                &format!("metadata.finalizers[{i}]"),
                json!(f),
                &e,
            ));
        }
    }
    let refs = meta::owner_references(obj);
    for (i, r) in refs.iter().enumerate() {
        let field = format!("metadata.ownerReferences[{i}]");
        if r.api_version.is_empty() {
            causes.push(FieldCause::invalid(
                &format!("{field}.apiVersion"),
                json!(r.api_version),
                "version must not be empty",
            ));
        }
        if r.kind.is_empty() {
            causes.push(FieldCause::invalid(
                &format!("{field}.kind"),
                json!(r.kind),
                "kind must not be empty",
            ));
        }
        if r.name.is_empty() {
            causes.push(FieldCause::invalid(
                &format!("{field}.name"),
                json!(r.name),
                "name must not be empty",
            ));
        }
        if r.uid.is_empty() {
            causes.push(FieldCause::invalid(
                &format!("{field}.uid"),
                json!(r.uid),
                "uid must not be empty",
            ));
        }
    }
    let controllers = meta::metadata(obj)
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map_or(0, |a| {
            a.iter()
                .filter(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
                .count()
        });
    if controllers > 1 {
        causes.push(FieldCause::invalid(
            "metadata.ownerReferences",
            json!(refs.iter().map(|r| r.name.clone()).collect::<Vec<_>>()),
            "Only one reference can have Controller set to true",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("tenant-acme").is_empty());
        assert!(!dns1123_label("Tenant").is_empty());
        assert!(!dns1123_label("a.b").is_empty());
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert!(qualified_name("landlord.dev/erasure").is_empty());
        assert!(!qualified_name("bad/na/me").is_empty());
    }
}
