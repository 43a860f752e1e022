//! SelfSubjectAccessReview and SelfSubjectRulesReview: create-only, never stored.

use serde_json::{Value, json};

use crate::resources::ResourceType;

/// The answer to a review in the server's current authorization mode (everything is
/// allowed when no RBAC is configured, as with `--authorization-mode=AlwaysAllow`).
pub fn review(rt: &ResourceType, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("metadata".into(), json!({"creationTimestamp": null}));
    }
    match rt.kind.as_str() {
        "SelfSubjectAccessReview" => {
            obj["status"] = json!({"allowed": true});
        }
        _ => {
            obj["status"] = json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            });
        }
    }
    obj
}
