//! OpenAPI value validation of custom resources, worded as kube-openapi's validator and
//! apiextensions-apiserver word it, plus `metadata.name`, embedded resources and
//! `x-kubernetes-list-type` uniqueness.
//!
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation>

use serde_json::{Map, Value};

use super::cel::map_list_match;
use super::format;
use super::path;
use super::structural::{Additional, ListType, Schema};
use super::types::{FieldError, go_float, go_quote};

/// Errors of these kinds stop the CEL rules from running ("blocking" errors of the API server).
pub(crate) fn is_blocking(e: &FieldError) -> bool {
    use super::FieldErrorKind::*;
    matches!(
        e.kind,
        NotSupported | Required | TooLong | TooMany | TypeInvalid
    )
}

/// `metadata.name` of a custom resource must be a DNS-1123 subdomain
/// (<https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-subdomain-names>).
pub(crate) fn object_meta(obj: &Value, errors: &mut Vec<FieldError>) {
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let generate_name = meta
        .and_then(|m| m.get("generateName"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if !generate_name.is_empty() {
        // A prefix may end with '-': the generated suffix follows it.
        let masked = generate_name
            .strip_suffix('-')
            .map_or(generate_name.to_owned(), |p| format!("{p}a"));
        for msg in dns1123_subdomain(&masked) {
            errors.push(FieldError::invalid(
                "metadata.generateName",
                &Value::String(generate_name.to_owned()),
                &msg,
            ));
        }
    }
    if name.is_empty() {
        if generate_name.is_empty() {
            errors.push(FieldError::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
        return;
    }
    for msg in dns1123_subdomain(name) {
        errors.push(FieldError::invalid(
            "metadata.name",
            &Value::String(name.to_owned()),
            &msg,
        ));
    }
}

const DNS1123_SUBDOMAIN_FMT: &str =
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// `k8s.io/apimachinery/pkg/util/validation.IsDNS1123Subdomain`.
pub(crate) fn dns1123_subdomain(value: &str) -> Vec<String> {
    let mut msgs = Vec::new();
    if value.len() > 253 {
        msgs.push("must be no more than 253 characters".to_owned());
    }
    let labels_ok = value.split('.').all(|label| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-')
    });
    if !labels_ok {
        msgs.push(format!(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '{DNS1123_SUBDOMAIN_FMT}')"
        ));
    }
    msgs
}

/// The JSON type name kube-openapi infers from a value.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The format kube-openapi infers from a non-string value.
fn json_format(value: &Value) -> &'static str {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => "int64",
        Value::Number(_) => "double",
        _ => "",
    }
}

fn str_value(s: &str) -> Value {
    Value::String(s.to_owned())
}

fn count(n: usize) -> Value {
    Value::from(n as u64)
}

/// OpenAPI schema validation of `value` at `at`; `old` is the correlated old value on update:
/// an unchanged value is not validated again (validation ratcheting,
/// <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-ratcheting>).
pub(crate) fn openapi(
    schema: &Schema,
    value: &Value,
    old: Option<&Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) {
    if old == Some(value) {
        return;
    }
    let field = path::or_nil(at);
    check_type(schema, value, at, &field, errors);
    if value.is_null() {
        check_enum(schema, value, &field, errors);
        return;
    }
    value_branches(schema, value, old, at, errors);
    match value {
        Value::String(s) => {
            if let Some(e) = check_string(schema, s, at, &field) {
                errors.push(e);
            }
            if let Some(fmt) = &schema.format
                && format::check(fmt, s) == Some(false)
            {
                errors.push(FieldError::type_invalid(
                    &field,
                    value,
                    &format!("{at} in body must be of type {fmt}: {}", go_quote(s)),
                ));
            }
        }
        Value::Number(n) => check_number(
            schema,
            value,
            n.as_f64().unwrap_or_default(),
            at,
            &field,
            errors,
        ),
        Value::Array(items) => check_array(schema, items, old, at, &field, errors),
        _ => {}
    }
    check_enum(schema, value, &field, errors);
    if let Value::Object(obj) = value {
        check_object(schema, obj, old, at, &field, errors);
    }
}

fn check_type(schema: &Schema, value: &Value, at: &str, field: &str, errors: &mut Vec<FieldError>) {
    let types: Vec<&str> = if schema.int_or_string {
        vec!["integer", "string"]
    } else {
        schema.type_.iter().map(String::as_str).collect()
    };
    if types.is_empty() {
        return;
    }
    let wanted = types.join(",");
    if value.is_null() {
        if !schema.nullable {
            errors.push(FieldError::type_invalid(
                field,
                &str_value("null"),
                &format!("{at} in body must be of type {wanted}: \"null\""),
            ));
        }
        return;
    }
    let data_type = json_type(value);
    let contains = |t: &str| types.contains(&t);
    let float_int = data_type == "number"
        && value.as_f64().is_some_and(|f| f.fract() == 0.0)
        && contains("integer");
    let int_float = data_type == "integer" && contains("number");
    let scalar_kind = !value.is_string() && !value.is_array();
    if let Some(fmt) = schema.format.as_deref().filter(|f| !f.is_empty()) {
        let data_format = json_format(value);
        if scalar_kind && !(contains(data_type) || data_format == fmt || float_int || int_float) {
            errors.push(FieldError::type_invalid(
                field,
                &str_value(data_format),
                &format!(
                    "{at} in body must be of type {fmt}: {}",
                    go_quote(data_format)
                ),
            ));
            return;
        }
        if !(contains("number") || contains("integer") || scalar_kind) {
            return;
        }
    }
    if !(contains(data_type) || float_int || int_float) {
        errors.push(FieldError::type_invalid(
            field,
            &str_value(data_type),
            &format!(
                "{at} in body must be of type {wanted}: {}",
                go_quote(data_type)
            ),
        ));
    }
}

/// `allOf`, `anyOf`, `oneOf` and `not`, worded as kube-openapi words them.
fn value_branches(
    schema: &Schema,
    value: &Value,
    old: Option<&Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) {
    let run = |branch: &Schema| {
        let mut errs = Vec::new();
        openapi(branch, value, old, at, &mut errs);
        errs
    };
    let composite = |msg: &str| FieldError::invalid(super::types::NIL_FIELD, &str_value(""), msg);
    for branch in &schema.all_of {
        errors.extend(run(branch));
    }
    if !schema.any_of.is_empty() {
        let results: Vec<Vec<FieldError>> = schema.any_of.iter().map(run).collect();
        if !results.iter().any(Vec::is_empty) {
            errors.push(composite(&format!(
                "{} must validate at least one schema (anyOf)",
                go_quote(at)
            )));
            errors.extend(results.into_iter().next().unwrap_or_default());
        }
    }
    if !schema.one_of.is_empty() {
        let results: Vec<Vec<FieldError>> = schema.one_of.iter().map(run).collect();
        let valid = results.iter().filter(|r| r.is_empty()).count();
        if valid != 1 {
            errors.push(composite(&format!(
                "{} must validate one and only one schema (oneOf)",
                go_quote(at)
            )));
            if valid == 0 {
                errors.extend(results.into_iter().next().unwrap_or_default());
            }
        }
    }
    if let Some(not) = &schema.not
        && run(not).is_empty()
    {
        errors.push(composite(&format!(
            "{} must not validate the schema (not)",
            go_quote(at)
        )));
    }
}

fn check_string(schema: &Schema, s: &str, at: &str, field: &str) -> Option<FieldError> {
    let chars = s.chars().count() as u64;
    let value = str_value(s);
    if let Some(max) = schema.max_length
        && chars > max
    {
        return Some(FieldError::too_long(field, max));
    }
    if let Some(min) = schema.min_length
        && chars < min
    {
        return Some(FieldError::invalid(
            field,
            &value,
            &format!("{at} in body should be at least {min} chars long"),
        ));
    }
    if let Some((pattern, regex)) = &schema.pattern
        && !regex.is_match(s)
    {
        return Some(FieldError::invalid(
            field,
            &value,
            &format!("{at} in body should match '{pattern}'"),
        ));
    }
    None
}

fn check_number(
    schema: &Schema,
    value: &Value,
    n: f64,
    at: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    if let Some(factor) = schema.multiple_of
        && factor != 0.0
        && (n / factor).fract() != 0.0
    {
        errors.push(FieldError::invalid(
            field,
            value,
            &format!("{at} in body should be a multiple of {}", go_float(factor)),
        ));
    }
    if let Some(max) = schema.maximum {
        let (bad, text) = if schema.exclusive_maximum {
            (n >= max, "less than")
        } else {
            (n > max, "less than or equal to")
        };
        if bad {
            errors.push(FieldError::invalid(
                field,
                value,
                &format!("{at} in body should be {text} {}", go_float(max)),
            ));
        }
    }
    if let Some(min) = schema.minimum {
        let (bad, text) = if schema.exclusive_minimum {
            (n <= min, "greater than")
        } else {
            (n < min, "greater than or equal to")
        };
        if bad {
            errors.push(FieldError::invalid(
                field,
                value,
                &format!("{at} in body should be {text} {}", go_float(min)),
            ));
        }
    }
}

fn check_array(
    schema: &Schema,
    items: &[Value],
    old: Option<&Value>,
    at: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    let len = items.len() as u64;
    if let Some(min) = schema.min_items
        && len < min
    {
        errors.push(FieldError::invalid(
            field,
            &count(items.len()),
            &format!("{at} in body should have at least {min} items"),
        ));
    }
    if let Some(max) = schema.max_items
        && len > max
    {
        errors.push(FieldError::too_many(field, len, max));
    }
    if let Some(item_schema) = &schema.items {
        for (i, item) in items.iter().enumerate() {
            let item_old = correlated_item(schema, item, old);
            openapi(item_schema, item, item_old, &path::index(at, i), errors);
        }
    }
}

/// Items of `listType=map` lists correlate with the old item of the same keys; other list
/// items do not correlate.
fn correlated_item<'a>(schema: &Schema, item: &Value, old: Option<&'a Value>) -> Option<&'a Value> {
    if schema.list_type == ListType::Map {
        old.and_then(|o| map_list_match(&schema.list_map_keys, item, o))
    } else {
        None
    }
}

fn check_enum(schema: &Schema, value: &Value, field: &str, errors: &mut Vec<FieldError>) {
    let Some(allowed) = &schema.enum_ else {
        return;
    };
    let matches = |candidate: &Value| match (candidate, value) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (a, b) => a == b,
    };
    if !allowed.iter().any(matches) {
        let supported: Vec<String> = allowed
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        errors.push(FieldError::not_supported(field, value, &supported));
    }
}

fn check_object(
    schema: &Schema,
    obj: &Map<String, Value>,
    old: Option<&Value>,
    at: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) {
    let len = obj.len() as u64;
    if let Some(min) = schema.min_properties
        && len < min
    {
        errors.push(FieldError::invalid(
            field,
            &count(obj.len()),
            &format!("{at} in body should have at least {min} properties"),
        ));
        return;
    }
    if let Some(max) = schema.max_properties
        && len > max
    {
        errors.push(FieldError::too_many(field, len, max));
        return;
    }
    if let Additional::Schema(additional) = &schema.additional {
        for (key, child) in obj {
            if !schema.properties.contains_key(key) {
                let child_old = old.and_then(|o| o.get(key));
                openapi(additional, child, child_old, &path::child(at, key), errors);
            }
        }
    }
    for (name, prop) in &schema.properties {
        if let Some(child) = obj.get(name) {
            let child_old = old.and_then(|o| o.get(name));
            openapi(prop, child, child_old, &path::child(at, name), errors);
        }
    }
    for name in &schema.required {
        if !obj.contains_key(name) {
            errors.push(FieldError::required(&path::child(at, name), ""));
        }
    }
}

/// Embedded resources (`x-kubernetes-embedded-resource`) need `apiVersion` and `kind`.
pub(crate) fn embedded(schema: &Schema, value: &Value, at: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(obj) => {
            if schema.embedded_resource && !at.is_empty() {
                embedded_type_meta(obj, at, errors);
            }
            for (key, child) in obj {
                if let Some(child_schema) = schema.child(key) {
                    embedded(child_schema, child, &path::child(at, key), errors);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    embedded(item_schema, item, &path::index(at, i), errors);
                }
            }
        }
        _ => {}
    }
}

fn embedded_type_meta(obj: &Map<String, Value>, at: &str, errors: &mut Vec<FieldError>) {
    for key in ["apiVersion", "kind"] {
        let field = path::child(at, key);
        match obj.get(key) {
            None => errors.push(FieldError::required(&field, "must not be empty")),
            Some(Value::String(s)) if s.is_empty() => {
                errors.push(FieldError::invalid(
                    &field,
                    &str_value(""),
                    "must not be empty",
                ));
            }
            Some(Value::String(s)) if key == "apiVersion" && s.matches('/').count() > 1 => {
                errors.push(FieldError::invalid(
                    &field,
                    &str_value(s),
                    &format!("unexpected GroupVersion string: {s}"),
                ));
            }
            Some(Value::String(_)) => {}
            Some(other) => errors.push(FieldError::invalid(&field, other, "must be a string")),
        }
    }
}

/// `x-kubernetes-list-type: set` items and `map` keys must be unique
/// (<https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy>).
pub(crate) fn list_types(schema: &Schema, value: &Value, at: &str, errors: &mut Vec<FieldError>) {
    match value {
        Value::Object(obj) => {
            for (key, child) in obj {
                if let Some(child_schema) = schema.child(key) {
                    list_types(child_schema, child, &path::child(at, key), errors);
                }
            }
        }
        Value::Array(items) => {
            match schema.list_type {
                ListType::Set => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            errors.push(FieldError::duplicate(&path::index(at, i), item));
                        }
                    }
                }
                ListType::Map => {
                    if !list_map_unique(schema, items, at, errors) {
                        return;
                    }
                }
                ListType::Atomic => {}
            }
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    list_types(item_schema, item, &path::index(at, i), errors);
                }
            }
        }
        _ => {}
    }
}

/// Reports duplicate keys; false when the list is not a list of objects.
fn list_map_unique(
    schema: &Schema,
    items: &[Value],
    at: &str,
    errors: &mut Vec<FieldError>,
) -> bool {
    if let Some((i, item)) = items
        .iter()
        .enumerate()
        .find(|(_, item)| !item.is_object() && !item.is_null())
    {
        errors.push(FieldError::invalid(
            &path::index(at, i),
            item,
            "must be an object for an array of list-type map",
        ));
        return false;
    }
    let key_of = |item: &Value| -> Map<String, Value> {
        schema
            .list_map_keys
            .iter()
            .filter_map(|k| {
                let value = item.get(k).cloned().or_else(|| {
                    schema
                        .items
                        .as_ref()
                        .and_then(|s| s.properties.get(k))
                        .and_then(|p| p.default.clone())
                })?;
                Some((k.clone(), value))
            })
            .collect()
    };
    let mut seen: Vec<Map<String, Value>> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if item.is_null() {
            continue;
        }
        let key = key_of(item);
        if seen.contains(&key) {
            errors.push(FieldError::duplicate(
                &path::index(at, i),
                &Value::Object(key),
            ));
        } else {
            seen.push(key);
        }
    }
    true
}
