//! Sets of field paths (structured-merge-diff's `fieldpath.Set`) and their FieldsV1
//! serialization, the format of `metadata.managedFields[].fieldsV1`.
//!
//! Format: <https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management>
//! — `f:<name>` a field, `k:<json>` an associative list item by its keys, `v:<json>` a
//! set item, `i:<index>` a list item by position, `.` the node itself.
//!
//! Path elements are stored in their FieldsV1 spelling, canonicalized (keys sorted,
//! compact JSON), so equal paths compare equal.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A set of paths: `members` are paths in the set, `children` hold longer paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    members: BTreeSet<String>,
    children: BTreeMap<String, FieldSet>,
}

/// The path element of a field.
pub(crate) fn field_element(name: &str) -> String {
    format!("f:{name}")
}

/// The path element of an associative list item, from its key fields.
pub(crate) fn key_element(keys: &[(&str, &Value)]) -> String {
    let mut keys = keys.to_vec();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    let fields: Vec<String> = keys
        .iter()
        .map(|(name, value)| format!("{}:{}", Value::from(*name), canonical_json(value)))
        .collect();
    format!("k:{{{}}}", fields.join(","))
}

/// The path element of a set item.
pub(crate) fn value_element(value: &Value) -> String {
    format!("v:{}", canonical_json(value))
}

/// Compact JSON with object keys sorted, whatever the map implementation's order.
fn canonical_json(value: &Value) -> String {
    match value {
        Value::Object(members) => {
            let mut entries: Vec<(&String, &Value)> = members.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let fields: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), canonical_json(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical_json).collect();
            format!("[{}]", items.join(","))
        }
        other => other.to_string(),
    }
}

fn canonical_element(element: &str) -> Result<String, String> {
    let invalid = || format!("invalid path element {element:?}");
    match element.split_at_checked(2) {
        Some(("f:", _)) => Ok(element.to_string()),
        Some(("i:", index)) => index
            .parse::<usize>()
            .map(|i| format!("i:{i}"))
            .map_err(|_| invalid()),
        Some(("v:", json)) => serde_json::from_str::<Value>(json)
            .map(|v| value_element(&v))
            .map_err(|_| invalid()),
        Some(("k:", json)) => match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(keys)) => {
                let keys: Vec<(&str, &Value)> = keys.iter().map(|(k, v)| (k.as_str(), v)).collect();
                Ok(key_element(&keys))
            }
            _ => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

impl FieldSet {
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.values().all(FieldSet::is_empty)
    }

    pub(crate) fn is_member(&self, element: &str) -> bool {
        self.members.contains(element)
    }

    pub(crate) fn child(&self, element: &str) -> Option<&FieldSet> {
        self.children.get(element)
    }

    pub(crate) fn children(&self) -> impl Iterator<Item = (&String, &FieldSet)> {
        self.children.iter()
    }

    pub(crate) fn members(&self) -> impl Iterator<Item = &String> {
        self.members.iter()
    }

    pub(crate) fn insert_member(&mut self, element: String) {
        self.members.insert(element);
    }

    pub(crate) fn remove_member(&mut self, element: &str) {
        self.members.remove(element);
    }

    /// Adds `child` under `element` (nothing when it is empty).
    pub(crate) fn insert_child(&mut self, element: String, child: FieldSet) {
        if child.is_empty() {
            return;
        }
        match self.children.get_mut(&element) {
            Some(existing) => *existing = existing.union(&child),
            None => {
                self.children.insert(element, child);
            }
        }
    }

    /// Adds a path.
    pub fn insert(&mut self, path: &[String]) {
        match path {
            [] => {}
            [last] => {
                self.members.insert(last.clone());
            }
            [first, rest @ ..] => self.children.entry(first.clone()).or_default().insert(rest),
        }
    }

    /// Whether a path is a member.
    pub fn contains(&self, path: &[String]) -> bool {
        match path {
            [] => false,
            [last] => self.members.contains(last),
            [first, rest @ ..] => self.children.get(first).is_some_and(|c| c.contains(rest)),
        }
    }

    fn normalized(mut self) -> FieldSet {
        self.children.retain(|_, c| !c.is_empty());
        self
    }

    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (element, child) in &other.children {
            out.insert_child(element.clone(), child.clone());
        }
        out.normalized()
    }

    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter_map(|(e, c)| {
                    other
                        .children
                        .get(e)
                        .map(|o| (e.clone(), c.intersection(o)))
                })
                .collect(),
        }
        .normalized()
    }

    /// Paths of `self` that are not paths of `other` (a member of `other` does not
    /// remove the longer paths below it).
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .map(|(e, c)| match other.children.get(e) {
                    Some(o) => (e.clone(), c.difference(o)),
                    None => (e.clone(), c.clone()),
                })
                .collect(),
        }
        .normalized()
    }

    /// Paths of `self` that are neither paths of `other` nor below one of them.
    pub fn recursive_difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: self
                .children
                .iter()
                .filter(|(e, _)| !other.members.contains(*e))
                .map(|(e, c)| match other.children.get(e) {
                    Some(o) => (e.clone(), c.recursive_difference(o)),
                    None => (e.clone(), c.clone()),
                })
                .collect(),
        }
        .normalized()
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        let elements: BTreeSet<&String> = self.members.iter().chain(self.children.keys()).collect();
        for element in elements {
            prefix.push(element.clone());
            if self.members.contains(element) {
                out.push(prefix.clone());
            }
            if let Some(child) = self.children.get(element) {
                child.collect_paths(prefix, out);
            }
            prefix.pop();
        }
    }

    /// The FieldsV1 form (`{"f:spec":{"f:replicas":{}}}`).
    pub fn to_fields_v1(&self) -> Value {
        let mut out = Map::new();
        for member in &self.members {
            if !self.children.contains_key(member) {
                out.insert(member.clone(), Value::Object(Map::new()));
            }
        }
        for (element, child) in &self.children {
            let mut encoded = match child.to_fields_v1() {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            if self.members.contains(element) {
                encoded.insert(".".into(), Value::Object(Map::new()));
            }
            out.insert(element.clone(), Value::Object(encoded));
        }
        Value::Object(out)
    }

    /// Parses the FieldsV1 form.
    pub fn from_fields_v1(fields: &Value) -> Result<FieldSet, String> {
        let Value::Object(map) = fields else {
            return Err(format!("expected an object, got {fields}"));
        };
        let mut set = FieldSet::default();
        for (key, value) in map {
            if key == "." {
                continue;
            }
            let element = canonical_element(key)?;
            let Value::Object(inner) = value else {
                return Err(format!("expected an object at {key:?}, got {value}"));
            };
            if inner.is_empty() || inner.contains_key(".") {
                set.members.insert(element.clone());
            }
            set.insert_child(element, FieldSet::from_fields_v1(value)?);
        }
        Ok(set)
    }
}

/// A path as the apiserver prints it in conflicts: `.spec.containers[name="app"].image`.
pub fn path_string(path: &[String]) -> String {
    path.iter().map(|e| element_string(e)).collect()
}

fn element_string(element: &str) -> String {
    match element.split_at_checked(2) {
        Some(("f:", name)) => format!(".{name}"),
        Some(("i:", index)) => format!("[{index}]"),
        Some(("v:", value)) => format!("[={value}]"),
        Some(("k:", keys)) => match serde_json::from_str::<Map<String, Value>>(keys) {
            Ok(keys) => {
                let mut keys: Vec<(&String, &Value)> = keys.iter().collect();
                keys.sort_by(|a, b| a.0.cmp(b.0));
                let keys: Vec<String> = keys
                    .iter()
                    .map(|(k, v)| format!("{k}={}", canonical_json(v)))
                    .collect();
                format!("[{}]", keys.join(","))
            }
            Err(_) => format!("[{keys}]"),
        },
        _ => element.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(elements: &[&str]) -> Vec<String> {
        elements.iter().map(|e| e.to_string()).collect()
    }

    // https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management
    // (the FieldsV1 example: f:, k:{...}, "." for the item itself, {} leaves).
    #[test]
    fn fields_v1_round_trip() {
        let fields = json!({
            "f:metadata": {"f:labels": {"f:test-label": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}}},
            "f:finalizers": {"v:\"a/b\"": {}}
        });
        let set = FieldSet::from_fields_v1(&fields).unwrap();
        assert!(set.contains(&path(&["f:metadata", "f:labels", "f:test-label"])));
        assert!(set.contains(&path(&["f:spec", "f:containers", "k:{\"name\":\"app\"}"])));
        assert!(!set.contains(&path(&["f:spec"])));
        assert_eq!(set.to_fields_v1(), fields);
        assert!(FieldSet::from_fields_v1(&json!({"x:nope": {}})).is_err());
    }

    // Keys of k: elements are sorted so equal items have one spelling
    // (structured-merge-diff serializes key fields in name order).
    #[test]
    fn key_elements_are_canonical() {
        let a = canonical_element("k:{\"protocol\":\"TCP\",\"containerPort\":80}").unwrap();
        let b = key_element(&[("containerPort", &json!(80)), ("protocol", &json!("TCP"))]);
        assert_eq!(a, b);
        assert_eq!(a, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}");
    }

    // Conflict paths are printed as in the apiserver's "Apply failed with N conflicts"
    // messages (https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts).
    #[test]
    fn paths_print_like_the_apiserver() {
        assert_eq!(
            path_string(&path(&["f:spec", "f:replicas"])),
            ".spec.replicas"
        );
        assert_eq!(
            path_string(&path(&[
                "f:spec",
                "f:ports",
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}",
                "f:name"
            ])),
            ".spec.ports[containerPort=80,protocol=\"TCP\"].name"
        );
        assert_eq!(
            path_string(&path(&["f:metadata", "f:finalizers", "v:\"x\""])),
            ".metadata.finalizers[=\"x\"]"
        );
    }

    // Set algebra of structured-merge-diff's fieldpath.Set, used by apply and ownership.
    #[test]
    fn set_operations() {
        let mut a = FieldSet::default();
        a.insert(&path(&["f:spec", "f:a"]));
        a.insert(&path(&["f:spec", "f:b"]));
        let mut b = FieldSet::default();
        b.insert(&path(&["f:spec", "f:b"]));
        b.insert(&path(&["f:spec", "f:c"]));
        assert_eq!(a.intersection(&b).paths(), vec![path(&["f:spec", "f:b"])]);
        assert_eq!(a.difference(&b).paths(), vec![path(&["f:spec", "f:a"])]);
        assert_eq!(a.union(&b).paths().len(), 3);
        let mut spec = FieldSet::default();
        spec.insert(&path(&["f:spec"]));
        assert_eq!(a.difference(&spec), a);
        assert!(a.recursive_difference(&spec).is_empty());
    }
}
