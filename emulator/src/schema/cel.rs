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
    /// The only fields of `self` and `oldSelf` the rule (and its `messageExpression`)
    /// reads, when it reads them only as `self.<field>`: an object is handed to the rule
    /// with those fields alone. The API server converts the object to CEL lazily, field
    /// by field as the rule reads it; converting all of a large object (a status with
    /// thousands of items) for a rule on `self.metadata.name` made each write of it cost
    /// hundreds of milliseconds here.
    reads: Option<Vec<String>>,
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
        let message_expression = rule.get("messageExpression").and_then(Value::as_str);
        let reads = match (fields_read(&text), message_expression.map(fields_read)) {
            (Some(mut fields), Some(Some(more))) => {
                fields.extend(more);
                fields.sort();
                fields.dedup();
                Some(fields)
            }
            (fields, None) => fields,
            _ => None,
        };
        compiled_rules.push(CelRule {
            compiled,
            transition,
            rule: text,
            reads,
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
        let projected = rule
            .reads
            .as_deref()
            .map(|fields| (project(value, fields), old.map(|old| project(old, fields))));
        let (value, old) = match &projected {
            Some((value, old)) => (value, old.as_ref()),
            None => (value, old),
        };
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

/// `value` with only `fields`, when it is an object; else `value`.
fn project(value: &Value, fields: &[String]) -> Value {
    match value {
        Value::Object(obj) => Value::Object(
            fields
                .iter()
                .filter_map(|f| obj.get(f).map(|v| (f.clone(), v.clone())))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The fields of `self` and `oldSelf` that the CEL expression `rule` reads, when every
/// use of either is a field selection `self.<field>` (outside string literals); `None`
/// when one is not (`self == oldSelf`, `self.all(...)`, `self[...]`, an optional
/// `self.?field`, an escaped name such as `self.__namespace__`): the rule then reads the
/// whole value. Conservative: anything it does
/// not recognise means the whole value.
pub(crate) fn fields_read(rule: &str) -> Option<Vec<String>> {
    let chars: Vec<char> = rule.chars().collect();
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_';
    let ident_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let skip_space = |mut j: usize| {
        while j < chars.len() && chars[j].is_whitespace() {
            j += 1;
        }
        j
    };
    let mut fields = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' || c == '"' {
            // A string literal (raw when an `r` or `R` comes right before it): skipped.
            let raw = i > 0 && matches!(chars[i - 1], 'r' | 'R');
            let triple = chars.get(i + 1) == Some(&c) && chars.get(i + 2) == Some(&c);
            let quote_len = if triple { 3 } else { 1 };
            let closes = |at: usize| {
                chars.get(at) == Some(&c)
                    && (!triple || (chars.get(at + 1) == Some(&c) && chars.get(at + 2) == Some(&c)))
            };
            i += quote_len;
            loop {
                let d = *chars.get(i)?;
                if d == '\\' && !raw {
                    i += 2;
                } else if closes(i) {
                    i += quote_len;
                    break;
                } else {
                    i += 1;
                }
            }
            continue;
        }
        if c == '`' {
            return None;
        }
        if c.is_ascii_digit() {
            // A number, with any suffix or exponent: not an identifier.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !ident_start(c) {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && ident_char(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let selected = chars[..start].iter().rev().find(|c| !c.is_whitespace()) == Some(&'.');
        if (word != "self" && word != "oldSelf") || selected {
            continue;
        }
        let dot = skip_space(i);
        if chars.get(dot) != Some(&'.') {
            return None;
        }
        let field_start = skip_space(dot + 1);
        if !chars.get(field_start).is_some_and(|c| ident_start(*c)) {
            return None;
        }
        let mut end = field_start;
        while end < chars.len() && ident_char(chars[end]) {
            end += 1;
        }
        // A method call on self (`self.all(...)`, `self.size()`) is not a field.
        if chars.get(skip_space(end)) == Some(&'(') {
            return None;
        }
        let field: String = chars[field_start..end].iter().collect();
        // An escaped property name (`__namespace__` for `namespace`, `__dash__` for `-`)
        // is not the property's own name: the whole value, rather than unescape here.
        if field.contains("__") {
            return None;
        }
        fields.push(field);
        i = end;
    }
    fields.sort();
    fields.dedup();
    Some(fields)
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

#[cfg(test)]
mod fields_read_tests {
    use super::fields_read;

    fn read(rule: &str) -> Option<Vec<String>> {
        fields_read(rule)
    }

    fn names(fields: &[&str]) -> Option<Vec<String>> {
        Some(fields.iter().map(|f| (*f).to_owned()).collect())
    }

    #[test]
    fn field_selections_of_self_and_old_self_are_what_a_rule_reads() {
        assert_eq!(
            read("self.metadata.name.size() <= 56 && self.metadata.name.matches('^[a-z]$')"),
            names(&["metadata"])
        );
        assert_eq!(
            read("!has(oldSelf.spec.database) || has(self.spec.database)"),
            names(&["spec"])
        );
        assert_eq!(
            read(
                "(has(oldSelf.spec.x) ? oldSelf.spec.x : 'tenant-' + oldSelf.metadata.name) == self . spec.x"
            ),
            names(&["metadata", "spec"])
        );
        assert_eq!(read("1 + 2 == 3"), names(&[]));
    }

    #[test]
    fn any_other_use_of_self_reads_the_whole_value() {
        for rule in [
            "self == oldSelf",
            "self.all(k, k.size() < 10)",
            "self.size() > 0",
            "self[0] == 1",
            "self.?spec.orValue(1) == 1",
            "has(self)",
            "self.`spec-x` == 1",
            "self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)",
            "self.a__dash__b == 1",
            "size(self) > 0",
            "'unterminated",
        ] {
            assert_eq!(fields_read(rule), None, "{rule}");
        }
    }

    #[test]
    fn self_inside_a_string_or_as_another_value_field_is_not_a_read() {
        assert_eq!(
            read(r#"self.spec.a == 'self == oldSelf' && self.spec.b == "self""#),
            names(&["spec"])
        );
        assert_eq!(read(r"r'\' + self.kind == ''"), names(&["kind"]));
        assert_eq!(
            read(r"'''self ' oldSelf''' == self.metadata.x"),
            names(&["metadata"])
        );
        assert_eq!(read(r"'\'self' == self.status.x"), names(&["status"]));
        assert_eq!(read("self.spec.self == 1"), names(&["spec"]));
    }
}
