//! SelfSubjectAccessReview, SelfSubjectRulesReview, SubjectAccessReview and
//! SelfSubjectReview: create-only, never stored.

use serde_json::{Value, json};

use crate::auth::UserInfo;
use crate::meta;
use crate::resources::ResourceType;

/// `SelfSubjectReview` (authentication.k8s.io/v1): the caller's user info, stamped with the
/// time of the request, as kube-apiserver answers `kubectl auth whoami`
/// (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#self-subject-review>).
pub fn self_subject_review(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.groups.is_empty() {
        info["groups"] = json!(user.groups);
    }
    json!({
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": meta::now_rfc3339()},
        "status": {"userInfo": info},
    })
}

/// The answer to a review in the server's current authorization mode (everything is
/// allowed when no RBAC is configured, as with `--authorization-mode=AlwaysAllow`).
pub fn review(rt: &ResourceType, mut obj: Value) -> Value {
    if let Some(m) = obj.as_object_mut() {
        m.insert("metadata".into(), json!({"creationTimestamp": null}));
    }
    match rt.kind.as_str() {
        "SelfSubjectAccessReview" | "SubjectAccessReview" => {
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
