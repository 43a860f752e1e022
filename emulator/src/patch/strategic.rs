//! Strategic merge patch, ported from `k8s.io/apimachinery/pkg/util/strategicpatch`
//! (`StrategicMergeMapPatch`, i.e. the server side: parallel lists are merged, unmatched
//! nulls ignored). Lists merge by their patch merge key where the type declares
//! `patchStrategy: merge`, other lists are replaced; maps merge.
//!
//! Reference: <https://github.com/kubernetes/community/blob/master/contributors/devel/sig-api-machinery/strategic-merge-patch.md>.

use super::PatchError;
use crate::apply::schema::Schema;
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

// The error texts of k8s.io/apimachinery/pkg/util/mergepatch/errors.go; the apiserver
// answers these with 400 (interpretStrategicMergePatchError), others with 422 or 500.
const BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";
const BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const BAD_SET_ELEMENT_ORDER: &str = "invalid patch format of setElementOrder list";
const NO_LIST_OF_LISTS: &str = "lists of lists are not supported";

type Result<T> = std::result::Result<T, PatchError>;

pub(super) fn apply(original: &Value, body: &[u8], schema: Schema<'_>) -> Result<Value> {
    let patch = match serde_json::from_slice(body) {
        Ok(Value::Object(patch)) => patch,
        Ok(Value::Null) => Map::new(),
        Ok(other) => {
            return Err(PatchError::BadRequest(format!(
                "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
                go_json_type(&other)
            )));
        }
        Err(e) => return Err(PatchError::BadRequest(e.to_string())),
    };
    let Value::Object(original) = original.clone() else {
        return Err(PatchError::BadRequest("invalid JSON document".into()));
    };
    let merged = merge_map(original, patch, schema)?;
    Ok(without_directives(Value::Object(merged)))
}

fn go_json_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Object(_) | Value::Null => "object",
    }
}

/// The Go type of a decoded JSON value, which decides between merging and replacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Map,
    List,
    String,
    Int,
    Float,
    Bool,
    Null,
}

fn kind(value: &Value) -> Kind {
    match value {
        Value::Object(_) => Kind::Map,
        Value::Array(_) => Kind::List,
        Value::String(_) => Kind::String,
        Value::Number(n) if n.is_f64() => Kind::Float,
        Value::Number(_) => Kind::Int,
        Value::Bool(_) => Kind::Bool,
        Value::Null => Kind::Null,
    }
}

fn internal(message: impl Into<String>) -> PatchError {
    PatchError::Internal(message.into())
}

fn no_merge_key(item: &Value, merge_key: &str) -> PatchError {
    internal(format!(
        "map: {item} does not contain declared merge key: {merge_key}"
    ))
}

fn not_a_map(item: &Value) -> PatchError {
    internal(format!(
        "expected a map[string]interface {{}}, but received a {}",
        go_json_type(item)
    ))
}

fn bad_patch_type(directive: &Value, map: &Value) -> PatchError {
    internal(format!("unknown patch type: {directive} in map: {map}"))
}

/// The directive keys the merge consumes; they never reach the stored object (the
/// apiserver drops them when decoding the result into the typed object).
fn is_directive(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
        || key.starts_with(SET_ELEMENT_ORDER)
}

fn without_directives(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(k, _)| !is_directive(k))
                .map(|(k, v)| (k, without_directives(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_directives).collect()),
        other => other,
    }
}

fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema<'_>,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &Value::Object(patch.clone()))),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;

    for (key, patch_value) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (
                extract_key(&key, DELETE_FROM_PRIMITIVE_LIST, BAD_PRIMITIVE_LIST)?,
                true,
            )
        } else {
            (key, false)
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.remove(&key) else {
            original.insert(key, patch_value);
            continue;
        };
        if kind(&current) != kind(&patch_value) {
            original.insert(key, patch_value);
            continue;
        }
        let field = schema.field(&key).schema;
        let merged =
            match (current, patch_value) {
                (Value::Object(current), Value::Object(patch_value)) => {
                    Value::Object(merge_map(current, patch_value, field)?)
                }
                (Value::Array(current), Value::Array(patch_value)) => Value::Array(
                    merge_list_field(current, patch_value, field, is_delete_list)?,
                ),
                (_, patch_value) => patch_value,
            };
        original.insert(key, merged);
    }
    Ok(original)
}

fn extract_key(key: &str, prefix: &str, error: &str) -> Result<String> {
    match key.split_once('/') {
        Some((found, rest)) if found == prefix => Ok(rest.to_string()),
        _ => Err(PatchError::BadRequest(error.into())),
    }
}

/// `$retainKeys`: keys of the original that the list does not name are cleared; the
/// patch may only set listed keys.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::BadRequest(BAD_RETAIN_KEYS.into()));
    };
    let retained = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    for (key, value) in patch.iter() {
        if value.is_null()
            || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || key.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !retained(key) {
            return Err(PatchError::BadRequest(BAD_RETAIN_KEYS.into()));
        }
    }
    original.retain(|key, _| retained(key));
    Ok(())
}

fn list_of(value: Option<&Value>) -> Result<Option<Vec<Value>>> {
    match value {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => Err(internal(format!(
            "expected a []interface {{}}, but received a {}",
            go_json_type(other)
        ))),
    }
}

/// `$setElementOrder/<list>`: merges the list now and orders the result: the directive's
/// order first, then the patch's, then the live object's.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema<'_>,
) -> Result<()> {
    let directives: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive in directives {
        let Some(order) = list_of(patch.remove(&directive).as_ref())? else {
            continue;
        };
        let key = extract_key(&directive, SET_ELEMENT_ORDER, BAD_SET_ELEMENT_ORDER)?;
        let original_list = list_of(original.get(&key))?;
        let patch_list = list_of(patch.get(&key))?;
        let field = schema.field(&key).schema;
        let merge_key = field.patch_merge().flatten();
        validate_against_order(patch_list.as_deref(), &order, merge_key)?;
        let merged = match (&original_list, &patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => p.clone(),
            (Some(o), Some(p)) => merge_list_field(o.clone(), p.clone(), field, false)?,
            (None, None) => continue,
        };
        let original_list = original_list.unwrap_or_default();
        let element = element_kind(&[&original_list, patch_list.as_deref().unwrap_or_default()]);
        let ordered = match element {
            Ok(element) => {
                let (in_order, server_only) = partition(merged, &order, merge_key, element)?;
                normalize_element_order(
                    in_order,
                    server_only,
                    &order,
                    &original_list,
                    merge_key,
                    element,
                )?
            }
            // Both lists are empty: nothing to order.
            Err(_) => merged,
        };
        original.insert(key.clone(), Value::Array(ordered));
        patch.remove(&key);
    }
    Ok(())
}

/// Items of the patch list must appear in the `$setElementOrder` list, in its order.
fn validate_against_order(
    patch_list: Option<&[Value]>,
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<()> {
    let Some(patch_list) = patch_list else {
        return Ok(());
    };
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let kept = match merge_key {
        Some(_) => split_deletions(patch_list.to_vec())?.0,
        None => patch_list.to_vec(),
    };
    let (mut p, mut o) = (0, 0);
    while p < kept.len() && o < order.len() {
        if kept[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_values_equal(&kept[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < kept.len() && o >= order.len() {
        return Err(internal(format!(
            "The order in patch list:\n{}\n doesn't match $setElementOrder list:\n{}\n",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

fn merge_key_values_equal(left: &Value, right: &Value, merge_key: Option<&str>) -> Result<bool> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    let l = left.as_object().ok_or_else(|| not_a_map(left))?;
    let r = right.as_object().ok_or_else(|| not_a_map(right))?;
    let lv = l.get(key).ok_or_else(|| no_merge_key(left, key))?;
    let rv = r.get(key).ok_or_else(|| no_merge_key(right, key))?;
    Ok(lv == rv)
}

fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: Schema<'_>,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    match field.patch_merge() {
        Some(merge_key) => merge_list(original, patch, field.items(), merge_key, is_delete_list),
        None => Ok(patch),
    }
}

/// The kind shared by all elements of the lists.
fn element_kind(lists: &[&[Value]]) -> Result<Kind> {
    let mut found: Option<Kind> = None;
    for item in lists.iter().flat_map(|l| l.iter()) {
        let k = kind(item);
        match found {
            None if k == Kind::List => {
                return Err(PatchError::Unprocessable {
                    reason: NO_LIST_OF_LISTS.into(),
                });
            }
            None => found = Some(k),
            Some(previous) if previous != k => {
                return Err(internal(format!(
                    "list element types are not identical: {}",
                    Value::Array(lists.iter().flat_map(|l| l.iter().cloned()).collect())
                )));
            }
            Some(_) => {}
        }
    }
    found.ok_or_else(|| internal("no elements in any of the given slices"))
}

fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    items: Schema<'_>,
    merge_key: Option<&str>,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let element = element_kind(&[&original, &patch])?;
    let (original, patch, merged, merge_key) = if element != Kind::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let merged = dedup_scalars(original.iter().chain(patch.iter()).cloned().collect());
        (original, patch, merged, None)
    } else {
        let key = merge_key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| internal("cannot merge lists without merge key for type struct"))?;
        let (original, patch) = apply_list_directives(original, patch, key)?;
        let merged = merge_items(original.clone(), &patch, key, items)?;
        (original, patch, merged, Some(key))
    };
    let (in_patch, server_only) = partition(merged, &patch, merge_key, element)?;
    normalize_element_order(in_patch, server_only, &patch, &original, merge_key, element)
}

/// Go's `deduplicateScalars`, including the order it leaves: a duplicate is replaced by
/// the last element.
fn dedup_scalars(mut items: Vec<Value>) -> Vec<Value> {
    if items.is_empty() {
        return items;
    }
    let mut last = items.len() - 1;
    let mut i = 0;
    while i < last {
        let mut j = i + 1;
        while j <= last {
            if items[i] == items[j] {
                items.swap(j, last);
                items.truncate(last);
                last -= 1;
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    items
}

/// Handles `$patch: delete` and `$patch: replace` elements of a merging list of maps.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Some(directive) = item.get(DIRECTIVE) else {
            plain.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let value = item
                    .get(merge_key)
                    .ok_or_else(|| no_merge_key(&item, merge_key))?;
                for (i, existing) in original.iter().enumerate() {
                    if !existing.is_object() {
                        return Err(internal(format!("value for key {i} is not a map.")));
                    }
                }
                original.retain(|existing| existing.get(merge_key) != Some(value));
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return Err(internal(
                    "merging lists cannot yet be specified in the patch",
                ));
            }
            _ => return Err(bad_patch_type(directive, &item)),
        }
    }
    Ok(if replace {
        (plain, Vec::new())
    } else {
        (original, plain)
    })
}

fn merge_items(
    mut original: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    items: Schema<'_>,
) -> Result<Vec<Value>> {
    for item in patch {
        let value = item
            .get(merge_key)
            .ok_or_else(|| no_merge_key(item, merge_key))?;
        let mut found = None;
        for (i, existing) in original.iter().enumerate() {
            let map = existing
                .as_object()
                .ok_or_else(|| internal(format!("value for key {i} is not a map.")))?;
            if map.get(merge_key) == Some(value) {
                found = Some(i);
                break;
            }
        }
        match (found, item) {
            (Some(i), Value::Object(item)) => {
                if let Value::Object(existing) = std::mem::take(&mut original[i]) {
                    original[i] = Value::Object(merge_map(existing, item.clone(), items)?);
                }
            }
            _ => original.push(item.clone()),
        }
    }
    Ok(original)
}

fn split_deletions(items: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut kept = Vec::new();
    let mut deleted = Vec::new();
    for item in items {
        if !item.is_object() {
            return Err(not_a_map(&item));
        }
        if item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            deleted.push(item);
        } else {
            kept.push(item);
        }
    }
    Ok((kept, deleted))
}

/// The position of `item` in `list`: by merge key for maps, by value for scalars.
fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>, element: Kind) -> Option<usize> {
    match (element, merge_key) {
        (Kind::Map, Some(key)) => {
            let wanted = item.get(key);
            list.iter().position(|v| v.get(key) == wanted)
        }
        _ => list.iter().position(|v| v == item),
    }
}

/// Splits merged items into those present in `by` and the others.
fn partition(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: Option<&str>,
    element: Kind,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::with_capacity(merged.len());
    let mut absent = Vec::new();
    for item in merged {
        let found = match (element, merge_key) {
            (Kind::Map, Some(key)) => {
                let value = item.get(key).ok_or_else(|| no_merge_key(&item, key))?;
                let mut found = false;
                for (i, candidate) in by.iter().enumerate() {
                    let map = candidate
                        .as_object()
                        .ok_or_else(|| internal(format!("value for key {i} is not a map.")))?;
                    if map.get(key) == Some(value) {
                        found = true;
                        break;
                    }
                }
                found
            }
            _ => by.contains(&item),
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Go's `normalizeElementOrder`: patch items in patch order, server-only items in live
/// order, then interleaved by the live order.
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    element: Kind,
) -> Result<Vec<Value>> {
    let patch_items = sort_by_order(patch_items, patch_order, merge_key, element)?;
    let server_only = sort_by_order(server_only, server_order, merge_key, element)?;
    Ok(merge_sorted(
        server_only,
        patch_items,
        server_order,
        merge_key,
        element,
    ))
}

fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    element: Kind,
) -> Result<Vec<Value>> {
    let (mut items, deleted) = match (element, merge_key) {
        (Kind::Map, Some(key)) => {
            for item in items.iter().chain(order.iter()) {
                if !item.is_object() {
                    return Err(not_a_map(item));
                }
                if item.get(key).is_none() {
                    return Err(no_merge_key(item, key));
                }
            }
            split_deletions(items)?
        }
        _ => (items, Vec::new()),
    };
    items.sort_by_key(|item| index_of(order, item, merge_key, element).unwrap_or(usize::MAX));
    items.extend(deleted);
    Ok(items)
}

/// Go's `mergeSortedSlice`: inserts the server-only items (`left`) among the patch items
/// (`right`); a server-only item goes first only when both are in the live list and it
/// comes earlier there. Items new to the list therefore come before the live ones.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: Option<&str>,
    element: Kind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    index_of(server_order, l, merge_key, element),
                    index_of(server_order, r, merge_key, element),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(group: &str, kind: &str, original: Value, patch: Value) -> Result<Value> {
        let schema = Schema::builtin(group, kind).expect("built-in kind");
        apply(&original, patch.to_string().as_bytes(), schema)
    }

    fn pod_template(containers: Value) -> Value {
        json!({"spec": {"template": {"spec": {"containers": containers}}}})
    }

    fn containers(job: &Value) -> &Value {
        &job["spec"]["template"]["spec"]["containers"]
    }

    // https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/#notes-on-the-strategic-merge-patch
    // containers have patchStrategy merge / patchMergeKey name: a patch with a new
    // container adds it (the doc's result lists the patched-in container first), an
    // existing name merges into that container.
    #[test]
    fn containers_merge_by_name() {
        let live = pod_template(json!([{"name": "app", "image": "nginx", "args": ["a"]}]));
        let out = smp(
            "batch",
            "Job",
            live.clone(),
            pod_template(json!([{"name": "sidecar", "image": "redis"}])),
        )
        .unwrap();
        assert_eq!(
            containers(&out),
            &json!([{"name": "sidecar", "image": "redis"}, {"name": "app", "image": "nginx", "args": ["a"]}])
        );
        let out = smp(
            "batch",
            "Job",
            live,
            pod_template(json!([{"name": "app", "image": "nginx:2"}])),
        )
        .unwrap();
        assert_eq!(
            containers(&out),
            &json!([{"name": "app", "image": "nginx:2", "args": ["a"]}])
        );
    }

    // Same doc, "Notes on the strategic merge patch": tolerations have no patch strategy,
    // so the list in the patch replaces the existing list.
    #[test]
    fn lists_without_strategy_are_replaced() {
        let live = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "a"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b"}]}}}});
        let out = smp("batch", "Job", live, patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "b"}])
        );
        // NetworkPolicy lists declare no strategy either.
        let live = json!({"spec": {"ingress": [{"from": [{"podSelector": {}}]}], "policyTypes": ["Ingress"]}});
        let patch = json!({"spec": {"ingress": [], "policyTypes": ["Ingress", "Egress"]}});
        let out = smp("networking.k8s.io", "NetworkPolicy", live, patch).unwrap();
        assert_eq!(
            out["spec"],
            json!({"ingress": [], "policyTypes": ["Ingress", "Egress"]})
        );
    }

    // strategic-merge-patch.md, "Merging a list of primitives" / ObjectMeta.finalizers
    // (patchStrategy merge): elements are added, duplicates dropped;
    // "$deleteFromPrimitiveList/<field>" removes elements.
    #[test]
    fn finalizers_are_a_merging_primitive_list() {
        let live = json!({"metadata": {"finalizers": ["a", "b"]}});
        let out = smp(
            "",
            "ConfigMap",
            live.clone(),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));
        let out = smp(
            "",
            "ConfigMap",
            live,
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"], json!({"finalizers": ["b"]}));
    }

    // ObjectMeta.ownerReferences: patchStrategy merge, patchMergeKey uid.
    #[test]
    fn owner_references_merge_by_uid() {
        let live = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}});
        let out = smp(
            "",
            "Secret",
            live,
            json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2", "name": "b"}]}}),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["ownerReferences"],
            json!([{"uid": "1", "name": "a", "controller": true}, {"uid": "2", "name": "b"}])
        );
    }

    // strategic-merge-patch.md, "$patch: delete" in a merging list removes the element
    // with that merge key; "$patch: replace" in a list replaces the list; "$patch: merge"
    // in a list is refused by the apiserver ("merging lists cannot yet be specified in the patch").
    #[test]
    fn list_directives() {
        let live = pod_template(json!([{"name": "a"}, {"name": "b"}]));
        let out = smp(
            "batch",
            "Job",
            live.clone(),
            pod_template(json!([{"name": "a", "$patch": "delete"}])),
        )
        .unwrap();
        assert_eq!(containers(&out), &json!([{"name": "b"}]));
        let out = smp(
            "batch",
            "Job",
            live.clone(),
            pod_template(json!([{"name": "c"}, {"$patch": "replace"}])),
        )
        .unwrap();
        assert_eq!(containers(&out), &json!([{"name": "c"}]));
        let err = smp(
            "batch",
            "Job",
            live,
            pod_template(json!([{"$patch": "merge"}])),
        )
        .unwrap_err();
        assert_eq!(
            err,
            PatchError::Internal("merging lists cannot yet be specified in the patch".into())
        );
    }

    // strategic-merge-patch.md, "$patch: replace" / "$patch: delete" on a map, and
    // null deleting a key: the map is replaced, emptied, or the key removed.
    #[test]
    fn map_directives_and_nulls() {
        let live = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}});
        let out = smp(
            "",
            "ConfigMap",
            live.clone(),
            json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}, "data": {"x": null}}),
        )
        .unwrap();
        assert_eq!(out, json!({"metadata": {"labels": {"c": "3"}}, "data": {}}));
        let out = smp("", "ConfigMap", live, json!({"data": {"$patch": "delete"}})).unwrap();
        assert_eq!(out["data"], json!({}));
    }

    // strategic-merge-patch.md, "$retainKeys": keys of the live map not listed are
    // cleared; a patch key not listed is a 400 ("invalid patch format of retainKeys").
    #[test]
    fn retain_keys() {
        let live =
            json!({"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "v", "$retainKeys": ["name", "secret"], "secret": {"secretName": "s"}}
        ]}}}});
        let out = smp("batch", "Job", live.clone(), patch).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["volumes"],
            json!([{"name": "v", "secret": {"secretName": "s"}}])
        );
        let bad = json!({"spec": {"template": {"spec": {"volumes": [
            {"name": "v", "$retainKeys": ["name"], "secret": {"secretName": "s"}}
        ]}}}});
        let err = smp("batch", "Job", live, bad).unwrap_err();
        assert_eq!(err.code(), 400);
        assert_eq!(err.to_string(), "invalid patch format of retainKeys");
    }

    // https://github.com/kubernetes/community/blob/master/contributors/design-proposals/cli/preserve-order-in-strategic-merge-patch.md
    // "$setElementOrder/<field>" (sent by kubectl apply/edit) fixes the order of the
    // merged list: the directive's order, with live-only items kept at their live place.
    #[test]
    fn set_element_order() {
        let live = pod_template(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "d"}],
            "containers": [{"name": "d", "image": "x"}]
        }}}});
        let out = smp("batch", "Job", live, patch).unwrap();
        let names: Vec<&str> = containers(&out)
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["b", "c", "a", "d"]);
        assert!(
            out["spec"]["template"]["spec"]
                .get("$setElementOrder/containers")
                .is_none()
        );
        let finalizers = json!({"metadata": {"finalizers": ["x", "y"]}});
        let out = smp(
            "",
            "Namespace",
            finalizers,
            json!({"metadata": {"$setElementOrder/finalizers": ["y", "x", "z"], "finalizers": ["z"]}}),
        )
        .unwrap();
        assert_eq!(out["metadata"]["finalizers"], json!(["y", "x", "z"]));
    }

    // Container ports merge by containerPort (patchMergeKey), env by name, volumeMounts by
    // mountPath (k8s.io/api core/v1 Container struct tags).
    #[test]
    fn container_sub_lists_merge_by_their_keys() {
        let live = pod_template(json!([{"name": "a",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "X", "value": "1"}],
            "volumeMounts": [{"mountPath": "/data", "name": "d"}]}]));
        let patch = pod_template(json!([{"name": "a",
            "ports": [{"containerPort": 80, "name": "http"}],
            "env": [{"name": "Y", "value": "2"}],
            "volumeMounts": [{"mountPath": "/data", "readOnly": true}]}]));
        let out = smp("batch", "Job", live, patch).unwrap();
        assert_eq!(
            containers(&out)[0],
            json!({"name": "a",
                "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}],
                "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}],
                "volumeMounts": [{"mountPath": "/data", "name": "d", "readOnly": true}]})
        );
    }

    // handlers/patch.go interpretStrategicMergePatchError: malformed bodies are 400;
    // a merging list item without its merge key is a plain error (500).
    #[test]
    fn malformed_strategic_patches() {
        let err = smp("", "ConfigMap", json!({}), json!([1])).unwrap_err();
        assert_eq!(err.code(), 400);
        let err = smp(
            "",
            "Namespace",
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "invalid patch format of primitive list");
        let err = smp(
            "batch",
            "Job",
            pod_template(json!([{"name": "a"}])),
            pod_template(json!([{"image": "x"}])),
        )
        .unwrap_err();
        assert_eq!(err.code(), 500);
        assert!(
            err.to_string()
                .contains("does not contain declared merge key: name")
        );
        let err = smp(
            "",
            "Namespace",
            json!({"metadata": {"finalizers": []}}),
            json!({"metadata": {"finalizers": [["b"]]}}),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
    }

    // Go's deduplicateScalars keeps the first occurrence and moves the last element into
    // the hole, which decides the order the apiserver produces.
    #[test]
    fn dedup_matches_go() {
        let out = dedup_scalars(vec![json!(1), json!(2), json!(1), json!(3)]);
        assert_eq!(out, vec![json!(1), json!(2), json!(3)]);
        let out = dedup_scalars(vec![json!("a"), json!("a"), json!("b"), json!("c")]);
        assert_eq!(out, vec![json!("a"), json!("c"), json!("b")]);
    }
}
