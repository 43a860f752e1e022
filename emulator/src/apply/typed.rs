//! Operations on objects guided by their schema, ported from structured-merge-diff's
//! `typed` package: the field set of a value, merging an applied configuration into an
//! object, comparing two objects, removing items.

use super::fieldset::{FieldSet, field_element, key_element, path_string, value_element};
use super::schema::{ListType, Schema};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};

/// The path element of a list item, or why it has none.
fn item_element(
    item: &Value,
    list: Schema<'_>,
    list_type: &ListType<'_>,
) -> Result<String, String> {
    let keys = match list_type {
        ListType::Map(keys) if !keys.is_empty() => keys,
        _ => return Ok(value_element(item)),
    };
    let Value::Object(fields) = item else {
        return Err(format!(
            "expected an object in an associative list, got {item}"
        ));
    };
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        let value = fields
            .get(*key)
            .or_else(|| list.item_key_default(key))
            .ok_or_else(|| {
                format!(
                    "associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
                )
            })?;
        values.push((*key, value));
    }
    Ok(key_element(&values))
}

/// Path elements of a list's items; items without one get their index (live objects may
/// hold items a configuration could not).
fn item_elements(items: &[Value], list: Schema<'_>, list_type: &ListType<'_>) -> Vec<String> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| item_element(item, list, list_type).unwrap_or_else(|_| format!("i:{i}")))
        .collect()
}

fn is_granular_list(value: &Value, schema: Schema<'_>) -> bool {
    value.is_array() && schema.list_type() != ListType::Atomic
}

fn is_granular_object(value: &Value, schema: Schema<'_>) -> bool {
    value.is_object() && !schema.is_atomic_object()
}

/// The set of fields a value sets (`TypedValue.ToFieldSet`). With `strict`, items of
/// associative lists must have their keys and be unique, as an applied configuration must.
pub(crate) fn to_field_set(
    value: &Value,
    schema: Schema<'_>,
    strict: bool,
) -> Result<FieldSet, String> {
    set_of(value, schema, strict, &mut Vec::new())
}

/// The field set of a stored object (never fails: items without keys are positional).
pub(crate) fn field_set_of(value: &Value, schema: Schema<'_>) -> FieldSet {
    to_field_set(value, schema, false).unwrap_or_default()
}

fn set_of(
    value: &Value,
    schema: Schema<'_>,
    strict: bool,
    path: &mut Vec<String>,
) -> Result<FieldSet, String> {
    let mut set = FieldSet::default();
    match value {
        Value::Object(fields) if is_granular_object(value, schema) => {
            for (name, child) in fields {
                let field = schema.field(name);
                let element = field_element(name);
                path.push(element.clone());
                let child_set = set_of(child, field.schema, strict, path)?;
                path.pop();
                let is_leaf = !is_granular_object(child, field.schema)
                    && !is_granular_list(child, field.schema);
                let empty_object = child.as_object().is_some_and(Map::is_empty);
                if is_leaf || empty_object || !field.declared {
                    set.insert_member(element.clone());
                }
                set.insert_child(element, child_set);
            }
        }
        Value::Array(items) if is_granular_list(value, schema) => {
            let list_type = schema.list_type();
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let element = match item_element(item, schema, &list_type) {
                    Ok(element) => element,
                    Err(e) if strict => {
                        return Err(format!("{}: element {i}: {e}", path_string(path)));
                    }
                    Err(_) => format!("i:{i}"),
                };
                if strict && !seen.insert(element.clone()) {
                    return Err(format!(
                        "{}: duplicate entries for key {}",
                        path_string(path),
                        path_string(std::slice::from_ref(&element))
                    ));
                }
                path.push(element.clone());
                let child_set = set_of(item, schema.items(), strict, path)?;
                path.pop();
                set.insert_member(element.clone());
                set.insert_child(element, child_set);
            }
        }
        _ => {}
    }
    Ok(set)
}

/// Makes struct fields that only prefix longer paths members too
/// (`Set.EnsureNamedFieldsAreMembers`).
pub(crate) fn ensure_named_fields_are_members(set: &FieldSet, schema: Schema<'_>) -> FieldSet {
    let mut out = FieldSet::default();
    for member in set.members() {
        out.insert_member(member.clone());
    }
    for (element, child) in set.children() {
        let child_schema = match element.strip_prefix("f:") {
            Some(name) => {
                let field = schema.field(name);
                if field.declared {
                    out.insert_member(element.clone());
                }
                field.schema
            }
            None => schema.items(),
        };
        out.insert_child(
            element.clone(),
            ensure_named_fields_are_members(child, child_schema),
        );
    }
    out
}

/// The value without the fields and items that are members of `set`.
pub(crate) fn remove_items(value: &Value, set: &FieldSet, schema: Schema<'_>) -> Value {
    match value {
        Value::Object(fields) if is_granular_object(value, schema) => Value::Object(
            fields
                .iter()
                .filter_map(|(name, child)| {
                    let element = field_element(name);
                    if set.is_member(&element) {
                        return None;
                    }
                    let child = match set.child(&element) {
                        Some(sub) => remove_items(child, sub, schema.field(name).schema),
                        None => child.clone(),
                    };
                    Some((name.clone(), child))
                })
                .collect(),
        ),
        Value::Array(items) if is_granular_list(value, schema) => {
            let elements = item_elements(items, schema, &schema.list_type());
            Value::Array(
                items
                    .iter()
                    .zip(elements)
                    .filter(|(_, element)| !set.is_member(element))
                    .map(|(item, element)| match set.child(&element) {
                        Some(sub) => remove_items(item, sub, schema.items()),
                        None => item.clone(),
                    })
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// A value with the null members of its objects dropped: a null in an applied
/// configuration owns the field but leaves it unset.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Merges an applied configuration into an object (`TypedValue.Merge`): granular maps
/// merge per key, associative lists and sets per item, everything else is replaced.
pub(crate) fn merge(live: Option<&Value>, config: &Value, schema: Schema<'_>) -> Value {
    match (live, config) {
        (Some(Value::Object(live_fields)), Value::Object(config_fields))
            if !schema.is_atomic_object() =>
        {
            let mut out = live_fields.clone();
            for (name, value) in config_fields {
                if value.is_null() {
                    out.remove(name);
                } else {
                    let merged = merge(live_fields.get(name), value, schema.field(name).schema);
                    out.insert(name.clone(), merged);
                }
            }
            Value::Object(out)
        }
        (Some(Value::Array(live_items)), Value::Array(config_items))
            if schema.list_type() != ListType::Atomic =>
        {
            Value::Array(merge_lists(live_items, config_items, schema))
        }
        (_, config) => without_nulls(config),
    }
}

/// Port of structured-merge-diff's `mergingWalker.visitListItems`: live-only items keep
/// their place, configured items follow the configuration's order.
fn merge_lists(lhs: &[Value], rhs: &[Value], schema: Schema<'_>) -> Vec<Value> {
    let list_type = schema.list_type();
    let lhs_elements = item_elements(lhs, schema, &list_type);
    let rhs_elements = item_elements(rhs, schema, &list_type);
    let mut observed_lhs: HashMap<&str, &Value> = HashMap::new();
    for (element, item) in lhs_elements.iter().zip(lhs) {
        observed_lhs.entry(element.as_str()).or_insert(item);
    }
    let mut observed_rhs: HashMap<&str, &Value> = HashMap::new();
    for (element, item) in rhs_elements.iter().zip(rhs) {
        observed_rhs.entry(element.as_str()).or_insert(item);
    }
    let mut shared_order: VecDeque<&str> = rhs_elements
        .iter()
        .map(String::as_str)
        .filter(|e| observed_lhs.contains_key(e))
        .collect();
    let mut next_shared = shared_order.pop_front();
    let mut merged_rhs: HashSet<&str> = HashSet::new();
    let merge_item = |element: &str| -> Value {
        let l = observed_lhs.get(element).copied();
        match observed_rhs.get(element) {
            Some(r) if list_type == ListType::Set => (*r).clone(),
            Some(r) => merge(l, r, schema.items()),
            None => l.cloned().unwrap_or(Value::Null),
        }
    };
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0, 0);
    while li < lhs.len() || ri < rhs.len() {
        if li < lhs.len() && ri < rhs.len() {
            let element = lhs_elements[li].as_str();
            if element == rhs_elements[ri] {
                merged_rhs.insert(element);
                out.push(merge_item(element));
                li += 1;
                ri += 1;
                next_shared = shared_order.pop_front();
                continue;
            }
            if observed_rhs.contains_key(element) && next_shared.is_some_and(|s| s != element) {
                li += 1;
                continue;
            }
        }
        if li < lhs.len() {
            let element = lhs_elements[li].as_str();
            if !observed_rhs.contains_key(element) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            }
            if merged_rhs.contains(element) {
                li += 1;
                continue;
            }
        }
        if ri < rhs.len() {
            let element = rhs_elements[ri].as_str();
            merged_rhs.insert(element);
            out.push(merge_item(element));
            ri += 1;
            if next_shared == Some(element) {
                next_shared = shared_order.pop_front();
            }
        }
    }
    out
}

/// What changed between two objects (`TypedValue.Compare`).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

pub(crate) fn compare(old: &Value, new: &Value, schema: Schema<'_>) -> Comparison {
    let mut comparison = Comparison::default();
    compare_at(
        Some(old),
        Some(new),
        schema,
        &mut Vec::new(),
        &mut comparison,
    );
    comparison
}

fn compare_at(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    schema: Schema<'_>,
    path: &mut Vec<String>,
    out: &mut Comparison,
) {
    let present: Vec<&Value> = lhs.iter().chain(rhs.iter()).copied().collect();
    if present.is_empty() {
        return;
    }
    let objects = present.iter().all(|v| is_granular_object(v, schema));
    let lists = present.iter().all(|v| is_granular_list(v, schema));
    if objects {
        let empty = Map::new();
        let l = lhs.and_then(Value::as_object).unwrap_or(&empty);
        let r = rhs.and_then(Value::as_object).unwrap_or(&empty);
        let names: Vec<&String> = l
            .keys()
            .chain(r.keys().filter(|k| !l.contains_key(*k)))
            .collect();
        for name in names {
            path.push(field_element(name));
            let (lv, rv) = (l.get(name), r.get(name));
            compare_at(lv, rv, schema.field(name).schema, path, out);
            record_presence(lv, rv, path, out);
            path.pop();
        }
    } else if lists {
        let list_type = schema.list_type();
        let empty = Vec::new();
        let l = lhs.and_then(Value::as_array).unwrap_or(&empty);
        let r = rhs.and_then(Value::as_array).unwrap_or(&empty);
        let l_elements = item_elements(l, schema, &list_type);
        let r_elements = item_elements(r, schema, &list_type);
        let l_items: HashMap<&String, &Value> = l_elements.iter().zip(l).collect();
        let r_items: HashMap<&String, &Value> = r_elements.iter().zip(r).collect();
        let mut seen = HashSet::new();
        for element in l_elements.iter().chain(r_elements.iter()) {
            if !seen.insert(element) {
                continue;
            }
            path.push(element.clone());
            let (lv, rv) = (l_items.get(element).copied(), r_items.get(element).copied());
            compare_at(lv, rv, schema.items(), path, out);
            record_presence(lv, rv, path, out);
            path.pop();
        }
    } else {
        match (lhs, rhs) {
            (None, Some(_)) => out.added.insert(path),
            (Some(_), None) => out.removed.insert(path),
            (Some(l), Some(r)) if l != r => out.modified.insert(path),
            _ => {}
        }
    }
}

fn record_presence(
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &[String],
    out: &mut Comparison,
) {
    match (lhs, rhs) {
        (None, Some(_)) => out.added.insert(path),
        (Some(_), None) => out.removed.insert(path),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job() -> Schema<'static> {
        Schema::builtin("batch", "Job").unwrap()
    }

    fn fields(value: &Value) -> Value {
        to_field_set(value, job(), true).unwrap().to_fields_v1()
    }

    // https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management:
    // an applied configuration owns its leaves, list items by key ("." for the item),
    // not the structs that only contain them; map keys (labels) are fields.
    #[test]
    fn field_set_of_an_applied_configuration() {
        let config = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "labels": {"app": "x"}, "finalizers": ["a"]},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {
                "containers": [{"name": "c", "image": "i", "args": ["x"], "ports": [{"containerPort": 80}]}]
            }}}
        });
        assert_eq!(
            fields(&config),
            json!({
                "f:apiVersion": {}, "f:kind": {},
                "f:metadata": {"f:name": {}, "f:labels": {"f:app": {}}, "f:finalizers": {"v:\"a\"": {}}},
                "f:spec": {"f:selector": {}, "f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"c\"}": {".": {}, "f:name": {}, "f:image": {}, "f:args": {},
                        "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
                }}}}
            })
        );
    }

    // structured-merge-diff rejects configurations whose associative lists repeat a key
    // or omit one; the apiserver reports "failed to create typed patch object".
    #[test]
    fn invalid_associative_lists() {
        let schema = job();
        let dup =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}});
        let err = to_field_set(&dup, schema, true).unwrap_err();
        assert_eq!(
            err,
            ".spec.template.spec.containers: duplicate entries for key [name=\"a\"]"
        );
        let missing = json!({"spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}});
        let err = to_field_set(&missing, schema, true).unwrap_err();
        assert!(err.contains("omits key field \"name\""), "{err}");
    }

    // https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy:
    // associative lists merge per key (live-only items stay), sets per value, atomic
    // lists are replaced.
    #[test]
    fn merge_follows_list_types() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]},
            "spec": {"template": {"spec": {"containers": [{"name": "x", "image": "1"}, {"name": "y", "image": "2"}],
                                            "tolerations": [{"key": "t"}]}}}});
        let config = json!({"metadata": {"finalizers": ["c"]},
            "spec": {"template": {"spec": {"containers": [{"name": "y", "image": "3"}],
                                            "tolerations": [{"key": "u"}]}}}});
        let merged = merge(Some(&live), &config, job());
        assert_eq!(merged["metadata"]["finalizers"], json!(["a", "b", "c"]));
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([{"name": "x", "image": "1"}, {"name": "y", "image": "3"}])
        );
        assert_eq!(
            merged["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "u"}])
        );
    }

    #[test]
    fn compare_reports_added_modified_removed() {
        let old = json!({"spec": {"parallelism": 1, "completions": 2}});
        let new = json!({"spec": {"parallelism": 3, "suspend": true}});
        let c = compare(&old, &new, job());
        let p = |s: &[&str]| s.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert_eq!(c.modified.paths(), vec![p(&["f:spec", "f:parallelism"])]);
        assert_eq!(c.added.paths(), vec![p(&["f:spec", "f:suspend"])]);
        assert_eq!(c.removed.paths(), vec![p(&["f:spec", "f:completions"])]);
    }

    #[test]
    fn remove_items_drops_members_and_their_subtrees() {
        let value = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": {"y": 1}}});
        let mut set = FieldSet::default();
        set.insert(&["f:metadata".into(), "f:labels".into(), "f:a".into()]);
        set.insert(&["f:spec".into(), "f:x".into()]);
        assert_eq!(
            remove_items(&value, &set, job()),
            json!({"metadata": {"labels": {"b": "2"}}, "spec": {}})
        );
    }
}
