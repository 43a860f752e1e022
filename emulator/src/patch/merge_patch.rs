//! JSON merge patch (RFC 7386), with the edge cases of `evanphx/json-patch.v4`'s
//! `MergePatch`, which kube-apiserver uses.

use super::PatchError;
use serde_json::{Map, Value};

const BAD_PATCH: &str = "Invalid JSON Patch";

pub(super) fn apply(target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let patch: Value =
        serde_json::from_slice(body).map_err(|_| PatchError::BadRequest(BAD_PATCH.into()))?;
    match patch {
        Value::Object(patch) => {
            let mut doc = target.clone();
            match &mut doc {
                Value::Object(members) => merge_members(members, patch),
                _ => return Err(PatchError::BadRequest("Invalid JSON Document".into())),
            }
            Ok(doc)
        }
        // RFC 7386: a non-object patch replaces the target; the result is then not an
        // object, which the apiserver refuses when decoding it.
        Value::Array(_) => Err(PatchError::Invalid {
            document: patch.to_string(),
            reason: "json: cannot unmarshal array into Go value of type map[string]interface {}"
                .into(),
        }),
        _ => Err(PatchError::BadRequest(BAD_PATCH.into())),
    }
}

fn merge_members(target: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            target.remove(&key);
            continue;
        }
        match target.get_mut(&key) {
            Some(Value::Object(current)) => match value {
                Value::Object(nested) => merge_members(current, nested),
                other => {
                    target.insert(key, other);
                }
            },
            _ => {
                target.insert(key, without_nulls(value));
            }
        }
    }
}

/// A new value loses the null members of its objects (RFC 7386 §2: nulls in the patch
/// remove; they never end up in the result).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merge(target: Value, patch: Value) -> Result<Value, PatchError> {
        apply(&target, patch.to_string().as_bytes())
    }

    // RFC 7386 §2 and the examples of its appendix A: members merge recursively, null
    // removes, arrays and scalars replace.
    #[test]
    fn rfc7386_rules() {
        let out = merge(
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"ports": [1, 2], "x": {"y": 1}}}),
            json!({"metadata": {"labels": {"b": null, "c": "3"}}, "spec": {"ports": [3], "x": "flat"}}),
        )
        .unwrap();
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "spec": {"ports": [3], "x": "flat"}})
        );
        // Appendix A: {"a":"b"} + {"a":{"bb":{"ccc":null}}} = {"a":{"bb":{}}}
        assert_eq!(
            merge(json!({"a": "b"}), json!({"a": {"bb": {"ccc": null}}})).unwrap(),
            json!({"a": {"bb": {}}})
        );
        // Appendix A: removing a member that does not exist changes nothing.
        assert_eq!(
            merge(json!({"e": null}), json!({"a": 1})).unwrap(),
            json!({"e": null, "a": 1})
        );
    }

    // handlers/patch.go: jsonpatch.ErrBadJSONPatch ("Invalid JSON Patch") is a 400; a
    // patch that turns the object into an array is refused as invalid (422).
    #[test]
    fn invalid_merge_patches() {
        for body in [&b"{"[..], b"null", b"42"] {
            let err = apply(&json!({}), body).unwrap_err();
            assert_eq!(err.code(), 400, "{}", String::from_utf8_lossy(body));
            assert_eq!(err.to_string(), "Invalid JSON Patch");
        }
        let err = merge(json!({}), json!([1])).unwrap_err();
        assert_eq!(err.code(), 422);
        assert_eq!(err.to_status()["details"]["causes"][0]["field"], "patch");
    }
}
