//! The `authorization.k8s.io/v1` review APIs, answered from the RBAC snapshot, see
//! <https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access>.
//! `kubectl auth can-i` creates a SelfSubjectAccessReview; `kubectl auth can-i --list`
//! a SelfSubjectRulesReview.

use serde_json::{Map, Value, json};

use super::{RbacSnapshot, RequestAttributes, authorize};
use crate::auth::UserInfo;

const GROUP: &str = "authorization.k8s.io";
const API_VERSION: &str = "authorization.k8s.io/v1";

/// A review request the API server refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReviewError {
    /// 422 with field causes, as API validation answers; the review's kind is empty there
    /// (the REST handler names the internal object's cleared TypeMeta), as in
    /// `.authorization.k8s.io "" is invalid: ...` from kube-apiserver v1.33.
    #[error(".authorization.k8s.io \"\" is invalid: {}", describe(.causes))]
    Invalid { causes: Vec<InvalidField> },
    /// 400.
    #[error("{0}")]
    BadRequest(String),
}

/// One `field.Invalid` error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    pub field: &'static str,
    /// The offending value, as the API server prints it (`"null"` for an absent one).
    pub value: String,
    pub detail: &'static str,
}

impl InvalidField {
    fn message(&self) -> String {
        format!("Invalid value: {}: {}", self.value, self.detail)
    }
}

fn describe(causes: &[InvalidField]) -> String {
    let all: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message()))
        .collect();
    match all.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

impl ReviewError {
    /// The `Status` JSON object to answer with.
    pub fn status(&self) -> Value {
        match self {
            Self::Invalid { causes } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|c| json!({"reason": "FieldValueInvalid", "message": c.message(), "field": c.field}))
                    .collect();
                json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": self.to_string(),
                    "reason": "Invalid",
                    "details": { "group": GROUP, "causes": causes },
                    "code": 422
                })
            }
            Self::BadRequest(message) => json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": message,
                "reason": "BadRequest",
                "code": 400
            }),
        }
    }
}

/// Answers a `SelfSubjectAccessReview` created by `user`: the request object with its
/// `status` (`allowed`, and the authorizer's `reason` when there is one).
pub fn self_subject_access_review(
    user: &UserInfo,
    review: &Value,
    rbac: &RbacSnapshot,
) -> Result<Value, ReviewError> {
    let attrs = attributes(user.clone(), review, Vec::new())?;
    Ok(answer("SelfSubjectAccessReview", review, &attrs, rbac))
}

/// Answers a `SubjectAccessReview`: may `spec.user` (with exactly `spec.groups`, nothing
/// added) do what `spec.resourceAttributes` or `spec.nonResourceAttributes` describe?
pub fn subject_access_review(review: &Value, rbac: &RbacSnapshot) -> Result<Value, ReviewError> {
    let spec = &review["spec"];
    let name = spec["user"].as_str().unwrap_or("").to_owned();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let mut extra_errors = Vec::new();
    if name.is_empty() && groups.is_empty() {
        extra_errors.push(InvalidField {
            field: "spec.user",
            value: "\"\"".into(),
            detail: "at least one of user or group must be specified",
        });
    }
    let user = UserInfo {
        name,
        uid: spec["uid"].as_str().unwrap_or("").to_owned(),
        groups,
    };
    let attrs = attributes(user, review, extra_errors)?;
    Ok(answer("SubjectAccessReview", review, &attrs, rbac))
}

/// Answers a `SelfSubjectRulesReview` created by `user`: every rule granted to the user in
/// `spec.namespace` (cluster-wide ones included).
pub fn self_subject_rules_review(
    user: &UserInfo,
    review: &Value,
    rbac: &RbacSnapshot,
) -> Result<Value, ReviewError> {
    let namespace = review["spec"]["namespace"].as_str().unwrap_or("");
    if namespace.is_empty() {
        return Err(ReviewError::BadRequest("no namespace on request".into()));
    }
    let (rules, errors) = rbac.rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in rules {
        if !rule.resources.is_empty() {
            let mut r = Map::new();
            r.insert("verbs".into(), json!(rule.verbs));
            for (key, values) in [
                ("apiGroups", &rule.api_groups),
                ("resources", &rule.resources),
                ("resourceNames", &rule.resource_names),
            ] {
                if !values.is_empty() {
                    r.insert(key.into(), json!(values));
                }
            }
            resource_rules.push(Value::Object(r));
        }
        if !rule.non_resource_urls.is_empty() {
            non_resource_rules.push(json!({
                "verbs": rule.verbs,
                "nonResourceURLs": rule.non_resource_urls
            }));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(super::aggregate_errors(&errors));
    }
    Ok(json!({
        "kind": "SelfSubjectRulesReview",
        "apiVersion": API_VERSION,
        "metadata": { "creationTimestamp": null },
        "spec": {},
        "status": status
    }))
}

/// Validates the spec of an access review and turns it into request attributes.
fn attributes(
    user: UserInfo,
    review: &Value,
    mut errors: Vec<InvalidField>,
) -> Result<RequestAttributes, ReviewError> {
    let spec = &review["spec"];
    let resource = spec.get("resourceAttributes").filter(|v| !v.is_null());
    let non_resource = spec.get("nonResourceAttributes").filter(|v| !v.is_null());
    match (resource, non_resource) {
        (Some(_), Some(both)) => errors.insert(
            0,
            InvalidField {
                field: "spec.nonResourceAttributes",
                value: both.to_string(),
                detail: "cannot be specified in combination with resourceAttributes",
            },
        ),
        (None, None) => errors.insert(
            0,
            InvalidField {
                field: "spec.resourceAttributes",
                value: "\"null\"".into(),
                detail: "exactly one of nonResourceAttributes or resourceAttributes must be specified",
            },
        ),
        _ => {}
    }
    if !errors.is_empty() {
        return Err(ReviewError::Invalid { causes: errors });
    }
    let text = |value: &Value, key: &str| value[key].as_str().unwrap_or("").to_owned();
    let optional = |value: &Value, key: &str| {
        value[key]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    Ok(match (resource, non_resource) {
        (Some(r), _) => RequestAttributes {
            user,
            verb: text(r, "verb"),
            api_group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: optional(r, "subresource"),
            namespace: optional(r, "namespace"),
            name: optional(r, "name"),
            non_resource_path: None,
        },
        (None, n) => {
            let n = n.unwrap_or(&Value::Null);
            RequestAttributes::non_resource(user, &text(n, "verb"), &text(n, "path"))
        }
    })
}

fn answer(kind: &str, review: &Value, attrs: &RequestAttributes, rbac: &RbacSnapshot) -> Value {
    let decision = authorize(attrs, rbac);
    let mut status = json!({ "allowed": decision.is_allowed() });
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    json!({
        "kind": kind,
        "apiVersion": API_VERSION,
        "metadata": { "creationTimestamp": null },
        "spec": review.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": status
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> RbacSnapshot {
        let mut objects = crate::rbac::bootstrap_policy();
        objects.extend([
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "owners", "namespace": "tenant-acme"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
                "subjects": [{"kind": "User", "name": "alice"}]
            }),
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                "metadata": {"name": "dangling", "namespace": "tenant-acme"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gone"},
                "subjects": [{"kind": "Group", "name": "devs"}]
            }),
        ]);
        RbacSnapshot::from_objects(&objects).expect("valid objects")
    }

    fn alice() -> UserInfo {
        UserInfo {
            name: "alice".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
        }
    }

    fn ssar(attributes: Value) -> Value {
        json!({
            "kind": "SelfSubjectAccessReview",
            "apiVersion": "authorization.k8s.io/v1",
            "metadata": {"creationTimestamp": null},
            "spec": attributes,
            "status": {"allowed": false}
        })
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access
    // "SelfSubjectAccessReview ... Access review for the current user"; the response's
    // status.allowed says whether the action is allowed.
    #[test]
    fn self_subject_access_review_answers_for_the_requesting_user() {
        let rbac = snapshot();
        let allowed = self_subject_access_review(
            &alice(),
            &ssar(json!({"resourceAttributes": {"namespace": "tenant-acme", "verb": "list", "resource": "configmaps"}})),
            &rbac,
        )
        .expect("valid review");
        assert_eq!(allowed["kind"], "SelfSubjectAccessReview");
        assert_eq!(allowed["status"]["allowed"], true);
        assert_eq!(
            allowed["status"]["reason"],
            "RBAC: allowed by RoleBinding \"owners/tenant-acme\" of ClusterRole \"view\" to User \"alice\""
        );
        assert_eq!(allowed["spec"]["resourceAttributes"]["verb"], "list");

        let denied = self_subject_access_review(
            &alice(),
            &ssar(json!({"resourceAttributes": {"namespace": "tenant-acme", "verb": "get", "resource": "secrets"}})),
            &rbac,
        )
        .expect("valid review");
        assert_eq!(denied["status"], json!({"allowed": false}));

        let path = self_subject_access_review(
            &alice(),
            &ssar(json!({"nonResourceAttributes": {"path": "/version", "verb": "get"}})),
            &rbac,
        )
        .expect("valid review");
        assert_eq!(path["status"]["allowed"], true);
    }

    // kube-apiserver's ValidateSelfSubjectAccessReviewSpec: "exactly one of
    // nonResourceAttributes or resourceAttributes must be specified".
    #[test]
    fn access_review_needs_exactly_one_kind_of_attributes() {
        let rbac = snapshot();
        let err =
            self_subject_access_review(&alice(), &ssar(json!({})), &rbac).expect_err("invalid");
        let status = err.status();
        assert_eq!(status["code"], 422);
        assert_eq!(status["reason"], "Invalid");
        assert_eq!(
            status["message"],
            ".authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
        );
        assert_eq!(
            status["details"]["causes"][0]["field"],
            "spec.resourceAttributes"
        );
        let both = ssar(
            json!({"resourceAttributes": {"verb": "get"}, "nonResourceAttributes": {"path": "/", "verb": "get"}}),
        );
        assert!(self_subject_access_review(&alice(), &both, &rbac).is_err());
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access
    // SubjectAccessReview checks "whether any user can perform an action"; the user and
    // groups are taken as given (no system:authenticated added).
    #[test]
    fn subject_access_review_uses_the_given_user_and_groups() {
        let rbac = snapshot();
        let review = |spec: Value| json!({"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "spec": spec});
        let answer = subject_access_review(
            &review(json!({"user": "alice", "resourceAttributes": {"namespace": "tenant-acme", "verb": "watch", "resource": "pods"}})),
            &rbac,
        )
        .expect("valid");
        assert_eq!(answer["status"]["allowed"], true);
        // without system:authenticated, discovery is not granted
        let answer = subject_access_review(
            &review(
                json!({"user": "alice", "nonResourceAttributes": {"path": "/apis", "verb": "get"}}),
            ),
            &rbac,
        )
        .expect("valid");
        assert_eq!(answer["status"]["allowed"], false);
        // a missing role shows as the reason, as RBAC reports it
        let answer = subject_access_review(
            &review(json!({"user": "bob", "groups": ["devs"], "resourceAttributes": {"namespace": "tenant-acme", "verb": "get", "resource": "pods"}})),
            &rbac,
        )
        .expect("valid");
        assert_eq!(answer["status"]["allowed"], false);
        assert_eq!(
            answer["status"]["reason"],
            "RBAC: role.rbac.authorization.k8s.io \"gone\" not found"
        );
        let err = subject_access_review(
            &review(json!({"resourceAttributes": {"verb": "get"}})),
            &rbac,
        )
        .expect_err("no user");
        assert_eq!(
            err.to_string(),
            ".authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified"
        );
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access
    // "SelfSubjectRulesReview - A review which returns the set of actions a user can
    // perform within a namespace" (kubectl auth can-i --list).
    #[test]
    fn self_subject_rules_review_lists_rules_in_the_namespace() {
        let rbac = snapshot();
        let review = json!({"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1", "spec": {"namespace": "tenant-acme"}});
        let answer = self_subject_rules_review(&alice(), &review, &rbac).expect("valid");
        let status = &answer["status"];
        assert_eq!(status["incomplete"], false);
        let resource_rules = status["resourceRules"].as_array().expect("rules");
        assert!(resource_rules.contains(&json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})));
        assert!(resource_rules.iter().any(|r| {
            r["resources"]
                .as_array()
                .is_some_and(|a| a.contains(&json!("configmaps")))
        }));
        assert!(
            status["nonResourceRules"]
                .as_array()
                .expect("rules")
                .iter()
                .any(|r| r["nonResourceURLs"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("/version"))))
        );
        // in another namespace, only the cluster-wide rules remain
        let elsewhere = json!({"spec": {"namespace": "other"}});
        let answer = self_subject_rules_review(&alice(), &elsewhere, &rbac).expect("valid");
        assert!(
            !answer["status"]["resourceRules"]
                .as_array()
                .expect("rules")
                .iter()
                .any(|r| r["resources"]
                    .as_array()
                    .is_some_and(|a| a.contains(&json!("configmaps"))))
        );
        // resolution errors are reported
        let bob = UserInfo {
            name: "bob".into(),
            uid: String::new(),
            groups: vec!["devs".into()],
        };
        let answer = self_subject_rules_review(&bob, &review, &rbac).expect("valid");
        assert_eq!(
            answer["status"]["evaluationError"],
            "role.rbac.authorization.k8s.io \"gone\" not found"
        );
    }

    // kube-apiserver's SelfSubjectRulesReview REST handler: "no namespace on request" (400).
    #[test]
    fn self_subject_rules_review_requires_a_namespace() {
        let err = self_subject_rules_review(&alice(), &json!({"spec": {}}), &snapshot())
            .expect_err("400");
        assert_eq!(err.status()["code"], 400);
        assert_eq!(err.status()["message"], "no namespace on request");
    }
}
