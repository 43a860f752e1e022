//! `x-kubernetes-validations` CEL rules, evaluated with kube-cel (`kube::core::cel`).
//!
//! The walk over the object is done here rather than by kube-cel's own walker, so that the
//! field paths, the correlation of old values (by key in `listType=map` lists only) and
//! ratcheting follow the API server:
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation-rules>.

use kube::core::cel::{CompiledSchema, ErrorKind, ValidationError, compile_schema};
use serde_json::Value;

use super::path;
use super::structural::{Additional, ListType, Schema};
use super::types::FieldError;

/// One compiled rule of one schema node.
#[derive(Debug)]
pub(crate) struct CelRule {
    /// The node's schema with this rule only (rules of descendants stripped), compiled.
    compiled: CompiledSchema,
    /// Whether the rule reads `oldSelf`.
    transition: bool,
    /// The rule text, for messages.
    rule: String,
}

/// Compiles the rules of the schema node `json`; a rule that does not compile makes the CRD
/// invalid, as it does for the API server.
pub(crate) fn compile_rules(json: &Value, path: &str) -> Result<Vec<CelRule>, String> {
    let Some(rules) = json.get("x-kubernetes-validations") else {
        return Ok(Vec::new());
    };
    let rules = rules
        .as_array()
        .ok_or_else(|| format!("{path}.x-kubernetes-validations: Invalid value: must be a list"))?;
    let mut stripped = json.clone();
    strip_rules(&mut stripped);
    let mut compiled_rules = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let rule_path = format!("{path}.x-kubernetes-validations[{i}]");
        let text = rule
            .get("rule")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{rule_path}.rule: Required value"))?
            .to_owned();
        let mut node = stripped.clone();
        if let Some(obj) = node.as_object_mut() {
            obj.insert(
                "x-kubernetes-validations".to_owned(),
                Value::Array(vec![rule.clone()]),
            );
        }
        let compiled = compile_schema(&node);
        let transition = match compiled.validations.first() {
            Some(Ok(result)) => result.is_transition_rule,
            Some(Err(e)) => {
                return Err(format!(
                    "{rule_path}.rule: Invalid value: {}: compilation failed: {e}",
                    super::types::go_quote(&text)
                ));
            }
            None => false,
        };
        compiled_rules.push(CelRule {
            compiled,
            transition,
            rule: text,
        });
    }
    Ok(compiled_rules)
}

/// Removes every `x-kubernetes-validations` from a schema tree.
fn strip_rules(schema: &mut Value) {
    match schema {
        Value::Object(obj) => {
            obj.remove("x-kubernetes-validations");
            obj.values_mut().for_each(strip_rules);
        }
        Value::Array(list) => list.iter_mut().for_each(strip_rules),
        _ => {}
    }
}

/// Evaluates the rules of `schema` and of its descendants against `value`, `old` being the
/// correlated old value (on update).
pub(crate) fn validate(
    schema: &Schema,
    value: &Value,
    old: Option<&Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) {
    if value.is_null() {
        return;
    }
    // Ratcheting: errors of rules that do not read oldSelf are ignored on unchanged values.
    let unchanged = old == Some(value);
    for rule in &schema.cel_rules {
        if unchanged && !rule.transition {
            continue;
        }
        if let Err(failures) = kube::core::cel::validate_compiled(&rule.compiled, value, old) {
            errors.extend(failures.iter().map(|f| to_field_error(schema, rule, f, at)));
        }
    }
    match value {
        Value::Object(obj) => {
            for (key, child_value) in obj {
                let child_old = old.and_then(|o| o.get(key));
                if let Some(prop) = schema.properties.get(key) {
                    validate(prop, child_value, child_old, &path::child(at, key), errors);
                } else if let Additional::Schema(additional) = &schema.additional {
                    validate(
                        additional,
                        child_value,
                        child_old,
                        &path::key(at, key),
                        errors,
                    );
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    let item_old = if schema.list_type == ListType::Map {
                        old.and_then(|o| map_list_match(&schema.list_map_keys, item, o))
                    } else {
                        None
                    };
                    validate(item_schema, item, item_old, &path::index(at, i), errors);
                }
            }
        }
        _ => {}
    }
}

/// The item of the old `listType=map` list with the same keys as `item`.
pub(crate) fn map_list_match<'a>(
    keys: &[String],
    item: &Value,
    old: &'a Value,
) -> Option<&'a Value> {
    old.as_array()?
        .iter()
        .find(|candidate| keys.iter().all(|k| candidate.get(k) == item.get(k)))
}

fn to_field_error(
    schema: &Schema,
    rule: &CelRule,
    failure: &ValidationError,
    at: &str,
) -> FieldError {
    let value_type = Value::String(schema.type_name().to_owned());
    match failure.kind {
        ErrorKind::ValidationFailure => {
            let field = match rule_field_path(&rule.compiled) {
                Some(fp) => path::child(at, fp.trim_start_matches('.')),
                None => at.to_owned(),
            };
            let field = path::or_nil(&field);
            let detail = failure.message.trim();
            match failure.reason.as_deref() {
                Some("FieldValueForbidden") => FieldError::forbidden(&field, detail),
                Some("FieldValueRequired") => FieldError::required(&field, detail),
                Some("FieldValueDuplicate") => FieldError::duplicate(&field, &value_type),
                _ => FieldError::invalid(&field, &value_type, detail),
            }
        }
        _ => {
            // A runtime error: the API server reports "<error> evaluating rule: <rule>".
            let cause = failure
                .message
                .strip_prefix("rule evaluation error: ")
                .unwrap_or(&failure.message);
            FieldError::invalid(
                &path::or_nil(at),
                &value_type,
                &format!("{cause} evaluating rule: {}", rule.rule.trim()),
            )
        }
    }
}

fn rule_field_path(compiled: &CompiledSchema) -> Option<&str> {
    compiled
        .validations
        .first()?
        .as_ref()
        .ok()?
        .rule
        .field_path
        .as_deref()
}
