//! Defaulting from `default` values in the schema:
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting>.
//!
//! A default applies when the field is absent, or `null` and not `nullable`
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#defaulting-and-nullable>);
//! defaulting then continues inside the value, so defaults nested in a default object (or in
//! new array items) apply as well.

use serde_json::Value;

use super::structural::{Additional, Schema};

/// Applies the schema's defaults to `value` in place.
pub(crate) fn apply(schema: &Schema, value: &mut Value) {
    match value {
        Value::Object(obj) => {
            for (key, prop) in &schema.properties {
                let Some(default) = &prop.default else {
                    continue;
                };
                match obj.get(key) {
                    None => {
                        obj.insert(key.clone(), default.clone());
                    }
                    Some(Value::Null) if !prop.nullable => {
                        obj.insert(key.clone(), default.clone());
                    }
                    Some(_) => {}
                }
            }
            for (key, child) in obj.iter_mut() {
                if let Some(prop) = schema.properties.get(key) {
                    apply(prop, child);
                } else if let Additional::Schema(additional) = &schema.additional {
                    replace_null(additional, child);
                    apply(additional, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for item in items {
                    replace_null(item_schema, item);
                    apply(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

fn replace_null(schema: &Schema, value: &mut Value) {
    if let (Value::Null, false, Some(default)) = (&value, schema.nullable, &schema.default) {
        *value = default.clone();
    }
}
