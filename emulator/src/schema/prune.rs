//! Pruning of unknown fields, as the API server does it for structural schemas:
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#field-pruning>.
//!
//! `apiVersion`, `kind` and `metadata` are kept at the root and in embedded resources
//! (`x-kubernetes-embedded-resource`), and `metadata` there is reduced to the fields of
//! `ObjectMeta`. `x-kubernetes-preserve-unknown-fields` keeps unknown fields (the specified
//! ones are still pruned inside). Nulls of non-nullable fields without a default are dropped
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting-and-nullable>).

use serde_json::{Map, Value};

use super::path;
use super::structural::{Additional, Schema};

/// The fields of `ObjectMeta` (`meta/v1`, Kubernetes 1.33).
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

const TYPE_META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// Prunes `obj` (a whole custom resource) and returns the paths of the fields removed
/// (`spec.foo`, `spec.list[0].bar`, `metadata.foo`).
pub(crate) fn prune_root(schema: &Schema, obj: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune(schema, obj, "", true, &mut unknown);
    drop_non_nullable_nulls(schema, obj);
    unknown
}

/// `root` marks the resource root, which is treated as an embedded resource.
fn prune(schema: &Schema, value: &mut Value, at: &str, root: bool, unknown: &mut Vec<String>) {
    let embedded = root || schema.embedded_resource;
    if schema.preserve_unknown_fields {
        skip_prune(schema, value, at, embedded, unknown);
        return;
    }
    match value {
        Value::Object(obj) => {
            let keys: Vec<String> = obj.keys().cloned().collect();
            for key in keys {
                let child_at = path::child(at, &key);
                if embedded && keep_type_meta(obj, &key, &child_at, unknown) {
                    continue;
                }
                let Some(child) = obj.get_mut(&key) else {
                    continue;
                };
                match (schema.properties.get(&key), &schema.additional) {
                    (Some(prop), _) => prune(prop, child, &child_at, false, unknown),
                    (None, Additional::Schema(additional)) => {
                        prune(additional, child, &child_at, false, unknown);
                    }
                    (None, Additional::Any) => prune_all(child, &child_at, unknown),
                    (None, Additional::None) => {
                        if !(root && TYPE_META_FIELDS.contains(&key.as_str())) {
                            unknown.push(child_at);
                        }
                        obj.remove(&key);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item_schema, item, &path::index(at, i), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// In an embedded resource, `apiVersion`/`kind` strings and a `metadata` object are kept
/// (`metadata` reduced to `ObjectMeta`). Returns true when `key` was handled.
fn keep_type_meta(
    obj: &mut Map<String, Value>,
    key: &str,
    at: &str,
    unknown: &mut Vec<String>,
) -> bool {
    match (key, obj.get_mut(key)) {
        ("apiVersion" | "kind", Some(Value::String(_))) => true,
        ("metadata", Some(Value::Object(meta))) => {
            reduce_object_meta(meta, at, unknown);
            true
        }
        _ => false,
    }
}

/// Removes from `metadata` what is not a field of `ObjectMeta`.
fn reduce_object_meta(meta: &mut Map<String, Value>, at: &str, unknown: &mut Vec<String>) {
    meta.retain(|k, _| {
        let known = OBJECT_META_FIELDS.contains(&k.as_str());
        if !known {
            unknown.push(path::child(at, k));
        }
        known
    });
}

/// Values under `additionalProperties: true` have no schema: objects inside are emptied.
fn prune_all(value: &mut Value, at: &str, unknown: &mut Vec<String>) {
    match value {
        Value::Object(obj) => {
            unknown.extend(obj.keys().map(|k| path::child(at, k)));
            obj.clear();
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                prune_all(item, &path::index(at, i), unknown);
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields`, unknown fields stay; specified ones are pruned.
fn skip_prune(
    schema: &Schema,
    value: &mut Value,
    at: &str,
    embedded: bool,
    unknown: &mut Vec<String>,
) {
    match value {
        Value::Object(obj) => {
            for (key, child) in obj.iter_mut() {
                let child_at = path::child(at, key);
                if embedded && TYPE_META_FIELDS.contains(&key.as_str()) {
                    if let Value::Object(meta) = child
                        && key == "metadata"
                    {
                        reduce_object_meta(meta, &child_at, unknown);
                    }
                    continue;
                }
                if let Some(child_schema) = schema.child(key) {
                    prune(child_schema, child, &child_at, false, unknown);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter_mut().enumerate() {
                    skip_prune(item_schema, item, &path::index(at, i), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// Drops `null` values of fields that are not nullable and have no default.
fn drop_non_nullable_nulls(schema: &Schema, value: &mut Value) {
    match value {
        Value::Object(obj) => {
            obj.retain(|key, child| {
                !(child.is_null()
                    && schema
                        .child(key)
                        .is_some_and(|s| !s.nullable && s.default.is_none()))
            });
            for (key, child) in obj.iter_mut() {
                if let Some(child_schema) = schema.child(key) {
                    drop_non_nullable_nulls(child_schema, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items {
                    drop_non_nullable_nulls(item_schema, item);
                }
            }
        }
        _ => {}
    }
}
