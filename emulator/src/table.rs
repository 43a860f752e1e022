//! The `Table` rendering kubectl asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`),
//! with printer columns evaluated as the real server does (a JSONPath subset).
//!
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables>,
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns>.

use serde_json::{Value, json};

use crate::meta;
use crate::resources::{ColumnSource, PrinterColumn, ResourceType};

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    Index(i64),
    /// `[start:end]` with optional bounds.
    Slice(Option<i64>, Option<i64>),
    Wildcard,
    /// `[?(@.path == "value")]` (or `!=`).
    Filter(Vec<String>, bool, Value),
}

fn parse_path(expr: &str) -> Option<Vec<Step>> {
    let e = expr.trim();
    let e = e
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(e);
    let e = e.strip_prefix('$').unwrap_or(e);
    let chars: Vec<char> = e.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                let name: String = chars[start..i].iter().collect();
                if name == "*" {
                    steps.push(Step::Wildcard);
                } else if !name.is_empty() {
                    steps.push(Step::Field(name));
                }
            }
            '[' => {
                let close = chars[i..].iter().position(|c| *c == ']')? + i;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(f) = inner.strip_prefix("?(").and_then(|x| x.strip_suffix(')')) {
                    let (lhs, neg, rhs) = if let Some((l, r)) = f.split_once("!=") {
                        (l, true, r)
                    } else {
                        let (l, r) = f.split_once("==")?;
                        (l, false, r)
                    };
                    let path: Vec<String> = lhs
                        .trim()
                        .strip_prefix('@')?
                        .split('.')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect();
                    let r = r_value(rhs.trim());
                    steps.push(Step::Filter(path, neg, r));
                } else if inner == "*" {
                    steps.push(Step::Wildcard);
                } else if let Some((a, b)) = inner.split_once(':') {
                    steps.push(Step::Slice(a.trim().parse().ok(), b.trim().parse().ok()));
                } else if let Ok(n) = inner.parse() {
                    steps.push(Step::Index(n));
                } else {
                    steps.push(Step::Field(
                        inner.trim_matches(|c| c == '\'' || c == '"').to_string(),
                    ));
                }
                i = close + 1;
            }
            _ => {
                // A path without a leading dot (`spec.x`).
                let start = i;
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    i += 1;
                }
                steps.push(Step::Field(chars[start..i].iter().collect()));
            }
        }
    }
    Some(steps)
}

fn r_value(s: &str) -> Value {
    if let Some(q) = s
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
    {
        return json!(q);
    }
    serde_json::from_str(s).unwrap_or_else(|_| json!(s))
}

fn index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// All results of a JSONPath expression (missing keys give none).
pub fn eval<'a>(expr: &str, root: &'a Value) -> Vec<&'a Value> {
    let Some(steps) = parse_path(expr) else {
        return Vec::new();
    };
    let mut current = vec![root];
    for step in &steps {
        let mut next = Vec::new();
        for v in current {
            match step {
                Step::Field(f) => next.extend(v.get(f)),
                Step::Index(i) => {
                    if let Some(a) = v.as_array() {
                        next.extend(index(a.len(), *i).and_then(|i| a.get(i)));
                    }
                }
                Step::Slice(a, b) => {
                    if let Some(arr) = v.as_array() {
                        let len = arr.len() as i64;
                        let norm = |x: i64| if x < 0 { (len + x).max(0) } else { x.min(len) };
                        let s = a.map_or(0, norm);
                        let e = b.map_or(len, norm);
                        if s < e {
                            next.extend(&arr[s as usize..e as usize]);
                        }
                    }
                }
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Filter(path, neg, want) => {
                    if let Some(a) = v.as_array() {
                        for item in a {
                            let mut x = Some(item);
                            for p in path {
                                x = x.and_then(|x| x.get(p));
                            }
                            if (x == Some(want)) != *neg {
                                next.push(item);
                            }
                        }
                    }
                }
            }
        }
        current = next;
    }
    current
}

fn age_cell(ts: &str) -> Value {
    match meta::parse_timestamp(ts) {
        Some(t) => {
            let secs = jiff::Timestamp::now().as_second() - t.as_second();
            json!(meta::human_duration(secs))
        }
        None => json!("<invalid>"),
    }
}

/// A cell as the real table convertor renders it for the column's type.
fn cell(column: &PrinterColumn, obj: &Value) -> Value {
    match &column.source {
        ColumnSource::Count(path) => {
            let n = eval(path, obj).first().map_or(0, |v| match v {
                Value::Object(m) => m.len(),
                Value::Array(a) => a.len(),
                _ => 0,
            });
            json!(n)
        }
        ColumnSource::Timestamp(path) => eval(path, obj)
            .first()
            .map_or(Value::Null, |v| (*v).clone()),
        ColumnSource::JsonPath(path) => {
            let Some(v) = eval(path, obj).first().copied() else {
                return Value::Null;
            };
            match column.type_.as_str() {
                "integer" => v.as_f64().map_or(Value::Null, |f| json!(f as i64)),
                "number" => v.as_f64().map_or(Value::Null, |f| json!(f)),
                "boolean" => v.as_bool().map_or(Value::Null, |b| json!(b)),
                "date" => v.as_str().map_or(Value::Null, age_cell),
                _ => match v {
                    Value::String(s) => json!(s),
                    Value::Null => Value::Null,
                    other => json!(other.to_string()),
                },
            }
        }
    }
}

fn column_definitions(columns: &[PrinterColumn]) -> Vec<Value> {
    let mut defs = vec![json!({
        "name": "Name", "type": "string", "format": "name", "priority": 0,
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
    })];
    defs.extend(columns.iter().map(|c| {
        json!({
            "name": c.name, "type": c.type_, "format": c.format,
            "description": c.description, "priority": c.priority,
        })
    }));
    defs
}

/// Which part of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

fn row(columns: &[PrinterColumn], obj: &Value, include: IncludeObject) -> Value {
    let mut cells = vec![json!(meta::name(obj))];
    cells.extend(columns.iter().map(|c| cell(c, obj)));
    let mut r = json!({ "cells": cells });
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            });
        }
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A `Table` of `objects` (already in the requested version's form).
pub fn table(
    rt: &ResourceType,
    version: &str,
    objects: &[Value],
    resource_version: &str,
    continue_token: Option<&str>,
    include: IncludeObject,
) -> Value {
    let columns = rt
        .version(version)
        .map(|v| v.columns.clone())
        .unwrap_or_else(|| vec![PrinterColumn::age()]);
    let mut metadata = json!({ "resourceVersion": resource_version });
    if let Some(c) = continue_token {
        metadata["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": column_definitions(&columns),
        "rows": objects.iter().map(|o| row(&columns, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True"}, {"type": "Synced", "status": "False"}]},
            "spec": {"n": 3}});
        assert_eq!(eval(".spec.n", &o), vec![&json!(3)]);
        assert_eq!(
            eval(".status.conditions[?(@.type==\"Ready\")].status", &o),
            vec![&json!("True")]
        );
        assert_eq!(
            eval(".status.conditions[-1:].type", &o),
            vec![&json!("Synced")]
        );
        assert_eq!(eval(".status.conditions[*].type", &o).len(), 2);
        assert!(eval(".missing.x", &o).is_empty());
    }
}
