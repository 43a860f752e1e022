//! JSON patch (RFC 6902) with the behaviour of `gopkg.in/evanphx/json-patch.v4`, which
//! kube-apiserver uses: same error texts, negative array indices, and `replace` of a
//! missing object member adds it (only a missing parent is an error).

use super::PatchError;
use serde_json::{Map, Value};

/// kube-apiserver's limit (`maxJSONPatchOperations` in handlers/patch.go).
const MAX_OPERATIONS: usize = 10_000;

pub(super) fn apply(target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let operations = decode(body)?;
    if operations.len() > MAX_OPERATIONS {
        return Err(PatchError::TooManyOperations(operations.len()));
    }
    let mut doc = target.clone();
    for operation in &operations {
        apply_operation(&mut doc, operation)
            .map_err(|reason| PatchError::Unprocessable { reason })?;
    }
    Ok(doc)
}

fn decode(body: &[u8]) -> Result<Vec<Map<String, Value>>, PatchError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| PatchError::BadRequest(e.to_string()))?;
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Object(op) => Ok(op),
                Value::Null => Ok(Map::new()),
                other => Err(unmarshal_error(&other, "jsonpatch.Operation")),
            })
            .collect(),
        other => Err(unmarshal_error(&other, "jsonpatch.Patch")),
    }
}

fn unmarshal_error(value: &Value, go_type: &str) -> PatchError {
    let json_type = match value {
        Value::Object(_) => "object",
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Null => "null",
    };
    PatchError::BadRequest(format!(
        "json: cannot unmarshal {json_type} into Go value of type {go_type}"
    ))
}

const MISSING: &str = "missing value";

fn apply_operation(doc: &mut Value, op: &Map<String, Value>) -> Result<(), String> {
    let kind = op.get("op").and_then(Value::as_str).unwrap_or("unknown");
    let path = op.get("path").and_then(Value::as_str);
    let from = op.get("from").and_then(Value::as_str);
    let value = op.get("value");
    match kind {
        "add" => {
            let path = path.ok_or(format!("add operation failed to decode path: {MISSING}"))?;
            let (container, key) = parent(doc, path).ok_or_else(|| {
                format!("add operation does not apply: doc is missing path: \"{path}\": {MISSING}")
            })?;
            add(container, &key, value.cloned().unwrap_or(Value::Null))
                .map_err(|e| format!("error in add for path: '{path}': {e}"))
        }
        "remove" => {
            let path = path.ok_or(format!("remove operation failed to decode path: {MISSING}"))?;
            let (container, key) = parent(doc, path).ok_or_else(|| {
                format!(
                    "remove operation does not apply: doc is missing path: \"{path}\": {MISSING}"
                )
            })?;
            remove(container, &key)
                .map(drop)
                .map_err(|e| format!("error in remove for path: '{path}': {e}"))
        }
        "replace" => {
            let path = path.ok_or(format!(
                "replace operation failed to decode path: operation missing path field: {MISSING}"
            ))?;
            let (container, key) = parent(doc, path).ok_or_else(|| {
                format!("replace operation does not apply: doc is missing path: {path}: {MISSING}")
            })?;
            if get(container, &key).is_err() {
                return Err(format!(
                    "replace operation does not apply: doc is missing key: {path}: {MISSING}"
                ));
            }
            set(container, &key, value.cloned().unwrap_or(Value::Null));
            Ok(())
        }
        "move" => {
            let from = from.ok_or(format!(
                "move operation failed to decode from: operation, missing from field: {MISSING}"
            ))?;
            let (container, key) = parent(doc, from).ok_or_else(|| {
                format!(
                    "move operation does not apply: doc is missing from path: {from}: {MISSING}"
                )
            })?;
            get(container, &key).map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let moved = remove(container, &key)
                .map_err(|e| format!("error in move for path: '{key}': {e}"))?;
            let path = path.ok_or(format!(
                "move operation failed to decode path: operation missing path field: {MISSING}"
            ))?;
            let (container, key) = parent(doc, path).ok_or_else(|| {
                format!(
                    "move operation does not apply: doc is missing destination path: {path}: {MISSING}"
                )
            })?;
            add(container, &key, moved)
                .map_err(|e| format!("error in move for path: '{path}': {e}"))
        }
        "copy" => {
            let from = from.ok_or(format!(
                "copy operation failed to decode from: operation, missing from field: {MISSING}"
            ))?;
            let (container, key) = parent(doc, from).ok_or_else(|| {
                format!(
                    "copy operation does not apply: doc is missing from path: {from}: {MISSING}"
                )
            })?;
            let copied = get(container, &key)
                .map_err(|e| format!("error in copy for from: '{from}': {e}"))?
                .unwrap_or(Value::Null);
            let path = path.ok_or(format!("copy operation failed to decode path: {MISSING}"))?;
            let (container, key) = parent(doc, path).ok_or_else(|| {
                format!(
                    "copy operation does not apply: doc is missing destination path: {path}: {MISSING}"
                )
            })?;
            add(container, &key, copied)
                .map_err(|e| format!("error while adding value during copy: {e}"))
        }
        "test" => {
            let path = path.ok_or(format!(
                "test operation failed to decode path: operation missing path field: {MISSING}"
            ))?;
            let (container, key) = parent(doc, path).ok_or_else(|| {
                format!("test operation does not apply: is missing path: {path}: {MISSING}")
            })?;
            let actual = get(container, &key)
                .map_err(|e| format!("error in test for path: '{path}': {e}"))?;
            let passed = match (actual, value) {
                (None, None | Some(Value::Null)) => true,
                (Some(actual), Some(expected)) => actual == *expected,
                _ => false,
            };
            if passed {
                Ok(())
            } else {
                Err(format!("testing value {path} failed: test failed"))
            }
        }
        other => Err(format!("Unexpected kind: {other}")),
    }
}

/// RFC 6901 reference token unescaping: `~1` is `/`, then `~0` is `~`.
fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// The object or array holding the last reference token of `path`, and that token.
/// `None` when an intermediate member is missing or is not a container.
fn parent<'d>(doc: &'d mut Value, path: &str) -> Option<(&'d mut Value, String)> {
    let tokens: Vec<&str> = path.split('/').collect();
    let (last, intermediate) = tokens.split_last()?;
    if intermediate.is_empty() {
        return None;
    }
    let mut current = doc;
    for token in &intermediate[1..] {
        let token = unescape(token);
        current = match current {
            Value::Object(members) => members.get_mut(&token)?,
            Value::Array(items) => {
                let index = existing_index(&token, items.len()).ok()?;
                items.get_mut(index)?
            }
            _ => return None,
        };
    }
    match current {
        Value::Object(_) | Value::Array(_) => Some((current, unescape(last))),
        _ => None,
    }
}

fn atoi(token: &str) -> Result<i64, String> {
    token
        .parse::<i64>()
        .map_err(|_| format!("strconv.Atoi: parsing {token:?}: invalid syntax"))
}

fn invalid_index(index: i64) -> String {
    format!("Unable to access invalid index: {index}: invalid index referenced")
}

/// An index of an existing element; negative indices count from the end.
fn existing_index(token: &str, len: usize) -> Result<usize, String> {
    let index = atoi(token)?;
    let len = i64::try_from(len).map_err(|_| invalid_index(index))?;
    let resolved = if index < 0 { index + len } else { index };
    if resolved < 0 || resolved >= len {
        return Err(invalid_index(index));
    }
    usize::try_from(resolved).map_err(|_| invalid_index(index))
}

fn get(container: &Value, key: &str) -> Result<Option<Value>, String> {
    match container {
        Value::Array(items) => Ok(items.get(existing_index(key, items.len())?).cloned()),
        Value::Object(members) => Ok(members.get(key).cloned()),
        _ => Ok(None),
    }
}

fn set(container: &mut Value, key: &str, value: Value) {
    match container {
        Value::Array(items) => {
            if let Some(slot) = existing_index(key, items.len())
                .ok()
                .and_then(|i| items.get_mut(i))
            {
                *slot = value;
            }
        }
        Value::Object(members) => {
            members.insert(key.to_string(), value);
        }
        _ => {}
    }
}

fn add(container: &mut Value, key: &str, value: Value) -> Result<(), String> {
    match container {
        Value::Array(items) => {
            if key == "-" {
                items.push(value);
                return Ok(());
            }
            let index = atoi(key)
                .map_err(|e| format!("value was not a proper array index: '{key}': {e}"))?;
            let size = i64::try_from(items.len() + 1).map_err(|_| invalid_index(index))?;
            if index >= size || index < -size {
                return Err(invalid_index(index));
            }
            let resolved = if index < 0 { index + size } else { index };
            let resolved = usize::try_from(resolved).map_err(|_| invalid_index(index))?;
            items.insert(resolved, value);
            Ok(())
        }
        Value::Object(members) => {
            members.insert(key.to_string(), value);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn remove(container: &mut Value, key: &str) -> Result<Value, String> {
    match container {
        Value::Array(items) => {
            let index = existing_index(key, items.len())?;
            Ok(items.remove(index))
        }
        Value::Object(members) => members
            .remove(key)
            .ok_or_else(|| format!("Unable to remove nonexistent key: {key}: {MISSING}")),
        _ => Ok(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(doc: Value, ops: Value) -> Result<Value, PatchError> {
        apply(&doc, ops.to_string().as_bytes())
    }

    fn reason(err: PatchError) -> String {
        match err {
            PatchError::Unprocessable { reason } => reason,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    // RFC 6902 §4.1 (add): adds a member, inserts into arrays at an index or at "-".
    #[test]
    fn add_inserts_members_and_array_elements() {
        let out = patch(
            json!({"metadata": {"labels": {"a": "1"}}, "list": [1, 3]}),
            json!([
                {"op": "add", "path": "/metadata/labels/b", "value": "2"},
                {"op": "add", "path": "/list/1", "value": 2},
                {"op": "add", "path": "/list/-", "value": 4}
            ]),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "list": [1, 2, 3, 4]})
        );
    }

    // RFC 6901 §3/§4: "~1" encodes "/" and "~0" encodes "~" in reference tokens.
    #[test]
    fn pointer_tokens_are_unescaped() {
        let out = patch(
            json!({"metadata": {"annotations": {}}}),
            json!([{"op": "add", "path": "/metadata/annotations/landlord.dev~1tenant", "value": "acme"},
                   {"op": "add", "path": "/metadata/annotations/a~0b", "value": "x"}]),
        )
        .unwrap();
        assert_eq!(
            out["metadata"]["annotations"],
            json!({"landlord.dev/tenant": "acme", "a~b": "x"})
        );
    }

    // RFC 6902 §4.2 (remove) and §4.3 (replace); RFC 6902 §5: a failing operation aborts
    // the whole patch, answered by the apiserver as a 422 with a generic message
    // (handlers/patch.go applyJSPatch → NewGenericServerResponse(422)).
    #[test]
    fn remove_and_replace() {
        let out = patch(
            json!({"spec": {"replicas": 1, "paused": true}, "list": ["a", "b", "c"]}),
            json!([
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "remove", "path": "/spec/paused"},
                {"op": "remove", "path": "/list/-1"}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"replicas": 3}, "list": ["a", "b"]}));

        let err = patch(
            json!({"metadata": {"labels": {}}}),
            json!([{"op": "remove", "path": "/metadata/labels/missing"}]),
        )
        .unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(
            err.to_status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "the server rejected our request due to an error in our request",
                   "reason": "Invalid", "details": {}, "code": 422})
        );
        assert_eq!(
            reason(err),
            "error in remove for path: '/metadata/labels/missing': Unable to remove nonexistent key: missing: missing value"
        );
    }

    // RFC 6902 §4.1: "the target location MUST reference ... a member to add to an
    // existing object"; a missing parent is an error. evanphx/json-patch v4 (the
    // apiserver's library) lets `replace` of a missing member of an existing object add it.
    #[test]
    fn missing_paths() {
        let err = patch(
            json!({"spec": {}}),
            json!([{"op": "add", "path": "/status/phase", "value": "Ready"}]),
        )
        .unwrap_err();
        assert_eq!(
            reason(err),
            "add operation does not apply: doc is missing path: \"/status/phase\": missing value"
        );
        let err = patch(
            json!({"spec": {}}),
            json!([{"op": "replace", "path": "/status/phase", "value": "Ready"}]),
        )
        .unwrap_err();
        assert_eq!(
            reason(err),
            "replace operation does not apply: doc is missing path: /status/phase: missing value"
        );
        let out = patch(
            json!({"spec": {}}),
            json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]),
        )
        .unwrap();
        assert_eq!(out, json!({"spec": {"replicas": 2}}));
        let err = patch(
            json!({"list": [1]}),
            json!([{"op": "add", "path": "/list/5", "value": 2}]),
        )
        .unwrap_err();
        assert_eq!(
            reason(err),
            "error in add for path: '/list/5': Unable to access invalid index: 5: invalid index referenced"
        );
    }

    // RFC 6902 §4.6 (test): compares the value at the path; a mismatch fails the patch.
    #[test]
    fn test_operation() {
        let doc = json!({"metadata": {"resourceVersion": "7"}});
        assert!(
            patch(
                doc.clone(),
                json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "7"}])
            )
            .is_ok()
        );
        let err = patch(
            doc,
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "6"},
                   {"op": "add", "path": "/metadata/x", "value": 1}]),
        )
        .unwrap_err();
        assert_eq!(
            reason(err),
            "testing value /metadata/resourceVersion failed: test failed"
        );
    }

    // RFC 6902 §4.4 (move) and §4.5 (copy).
    #[test]
    fn move_and_copy() {
        let out = patch(
            json!({"a": {"x": 1}, "b": {}}),
            json!([
                {"op": "copy", "from": "/a/x", "path": "/b/y"},
                {"op": "move", "from": "/a/x", "path": "/b/z"}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {}, "b": {"y": 1, "z": 1}}));
        let err = patch(
            json!({"a": {}}),
            json!([{"op": "move", "from": "/nope/x", "path": "/a/x"}]),
        )
        .unwrap_err();
        assert_eq!(
            reason(err),
            "move operation does not apply: doc is missing from path: /nope/x: missing value"
        );
    }

    // handlers/patch.go: jsonpatch.DecodePatch errors are 400 BadRequest; unknown
    // operations fail when applied (422); more than 10000 operations is 413.
    #[test]
    fn malformed_patches() {
        let err = apply(&json!({}), br#"{"op":"add"}"#).unwrap_err();
        assert_eq!(err.code(), 400);
        assert_eq!(
            err.to_string(),
            "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
        );
        assert_eq!(apply(&json!({}), b"[").unwrap_err().code(), 400);
        let err = patch(json!({}), json!([{"op": "frobnicate", "path": "/a"}])).unwrap_err();
        assert_eq!(reason(err), "Unexpected kind: frobnicate");
        let many: Vec<Value> = (0..10_001)
            .map(|_| json!({"op": "test", "path": "/a"}))
            .collect();
        let err = patch(json!({}), Value::Array(many)).unwrap_err();
        assert_eq!(err.code(), 413);
        assert_eq!(
            err.to_string(),
            "The allowed maximum operations in a JSON patch is 10000, got 10001"
        );
    }
}
