//! The body of a PATCH request applied to a stored object, as kube-apiserver does it
//! (`k8s.io/apiserver/pkg/endpoints/handlers/patch.go`):
//! - JSON patch, RFC 6902 (`application/json-patch+json`), with the behaviour of the
//!   `gopkg.in/evanphx/json-patch.v4` library the apiserver uses,
//! - JSON merge patch, RFC 7386 (`application/merge-patch+json`),
//! - strategic merge patch (`application/strategic-merge-patch+json`), built-in kinds only.
//!
//! Server-side apply (`application/apply-patch+yaml`) is the [`crate::apply`] module.
//! Pure functions: no I/O.
//!
//! Reference: <https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/>.

mod json_patch;
mod merge_patch;
mod strategic;

use crate::apply::schema::Schema;
use serde_json::{Value, json};

/// The patch formats of a PATCH request, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header (parameters such as `; charset=utf-8` are
    /// ignored, as the apiserver does).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        match media_type {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" => Some(PatchType::Apply),
            _ => None,
        }
    }

    /// The media type of this patch type.
    pub fn media_type(self) -> &'static str {
        match self {
            PatchType::Json => "application/json-patch+json",
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
        }
    }
}

/// The kind of the object being patched.
#[derive(Clone, Copy, Debug)]
pub enum ResourceKind<'a> {
    /// A kind served by the API server itself, by API group ("" for core) and kind.
    Builtin { group: &'a str, kind: &'a str },
    /// A custom resource, with its CRD version's `schema.openAPIV3Schema` when it has one.
    Custom {
        open_api_v3_schema: Option<&'a Value>,
    },
}

impl<'a> ResourceKind<'a> {
    /// Whether PATCH accepts `application/strategic-merge-patch+json` for this kind: built-in
    /// kinds do, custom resources do not (the apiserver answers 415).
    pub fn supports_strategic_merge(&self) -> bool {
        self.builtin_schema().is_some()
    }

    /// The patch types PATCH accepts for this kind, in the order the apiserver lists them.
    pub fn supported_patch_types(&self) -> &'static [PatchType] {
        if self.supports_strategic_merge() {
            &[
                PatchType::Json,
                PatchType::Merge,
                PatchType::Strategic,
                PatchType::Apply,
            ]
        } else {
            &[PatchType::Json, PatchType::Merge, PatchType::Apply]
        }
    }

    /// The type information merges need (list types, map keys, patch strategies).
    pub fn schema(&self) -> Schema<'a> {
        match *self {
            ResourceKind::Builtin { group, kind } => {
                Schema::builtin(group, kind).unwrap_or(Schema::BuiltinStruct)
            }
            ResourceKind::Custom {
                open_api_v3_schema: Some(schema),
            } => Schema::custom_resource(schema),
            ResourceKind::Custom {
                open_api_v3_schema: None,
            } => Schema::Deduced,
        }
    }

    fn builtin_schema(&self) -> Option<Schema<'static>> {
        match *self {
            ResourceKind::Builtin { group, kind } => Schema::builtin(group, kind),
            ResourceKind::Custom { .. } => None,
        }
    }
}

/// Why a patch was refused, mapped to the `Status` the apiserver returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PatchError {
    /// 400 BadRequest: the body cannot be decoded, or a directive is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 415 UnsupportedMediaType: unknown content type, or strategic merge patch on a
    /// custom resource.
    #[error(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted_list(accepted)
    )]
    UnsupportedMediaType { accepted: Vec<&'static str> },
    /// 413 RequestEntityTooLarge: a JSON patch with more than 10000 operations.
    #[error("The allowed maximum operations in a JSON patch is 10000, got {0}")]
    TooManyOperations(usize),
    /// 422 Invalid with the apiserver's generic message: a JSON patch operation that does
    /// not apply, or a strategic merge patch the merge cannot carry out. The apiserver
    /// does not return the reason; it is kept here for logs and tests.
    #[error("the server rejected our request due to an error in our request")]
    Unprocessable { reason: String },
    /// 422 Invalid: the patched document is not an object of the kind.
    #[error(" \"\" is invalid: patch: Invalid value: {document:?}: {reason}")]
    Invalid { document: String, reason: String },
    /// 500: errors the apiserver returns as plain errors (no reason).
    #[error("{0}")]
    Internal(String),
}

fn accepted_list(accepted: &[&str]) -> String {
    accepted.join(", ")
}

impl PatchError {
    /// The answer to a PATCH whose patch type this kind does not accept.
    pub fn unsupported_media_type(kind: &ResourceKind<'_>) -> PatchError {
        PatchError::UnsupportedMediaType {
            accepted: kind
                .supported_patch_types()
                .iter()
                .map(|t| t.media_type())
                .collect(),
        }
    }

    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            PatchError::BadRequest(_) => 400,
            PatchError::UnsupportedMediaType { .. } => 415,
            PatchError::TooManyOperations(_) => 413,
            PatchError::Unprocessable { .. } | PatchError::Invalid { .. } => 422,
            PatchError::Internal(_) => 500,
        }
    }

    /// `Status.reason` ("" when the apiserver sets none).
    pub fn reason(&self) -> &'static str {
        match self {
            PatchError::BadRequest(_) => "BadRequest",
            PatchError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            PatchError::TooManyOperations(_) => "RequestEntityTooLarge",
            PatchError::Unprocessable { .. } | PatchError::Invalid { .. } => "Invalid",
            PatchError::Internal(_) => "",
        }
    }

    /// The `Status` object the apiserver answers with.
    pub fn to_status(&self) -> Value {
        let details = match self {
            PatchError::Invalid { document, reason } => Some(json!({
                "causes": [{
                    "reason": "FieldValueInvalid",
                    "message": format!("Invalid value: {document:?}: {reason}"),
                    "field": "patch",
                }]
            })),
            PatchError::Unprocessable { .. } => Some(json!({})),
            _ => None,
        };
        failure_status(self.code(), self.reason(), &self.to_string(), details)
    }
}

/// A `Status` of `status: Failure`, as the apiserver serializes it.
pub(crate) fn failure_status(
    code: u16,
    reason: &str,
    message: &str,
    details: Option<Value>,
) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "code": code,
    });
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    if let Some(details) = details {
        status["details"] = details;
    }
    status
}

/// Applies a JSON, merge or strategic merge patch to `target` and returns the patched
/// object. Server-side apply is [`crate::apply::FieldManager::apply`]; passing
/// [`PatchType::Apply`] here is a programming error reported as a 500.
pub fn apply_patch(
    kind: &ResourceKind<'_>,
    target: &Value,
    patch_body: &[u8],
    patch_type: PatchType,
) -> Result<Value, PatchError> {
    match patch_type {
        PatchType::Json => json_patch::apply(target, patch_body),
        PatchType::Merge => merge_patch::apply(target, patch_body),
        PatchType::Strategic => match kind.builtin_schema() {
            Some(schema) => strategic::apply(target, patch_body, schema),
            None => Err(PatchError::unsupported_media_type(kind)),
        },
        PatchType::Apply => Err(PatchError::Internal(
            "apply patches are handled by server-side apply (apply::FieldManager)".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIGMAP: ResourceKind<'static> = ResourceKind::Builtin {
        group: "",
        kind: "ConfigMap",
    };
    const WIDGET: ResourceKind<'static> = ResourceKind::Custom {
        open_api_v3_schema: None,
    };

    // https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply
    // (the four patch content types); the apiserver strips "; charset=" parameters
    // (handlers/patch.go, PatchResource).
    #[test]
    fn content_types_map_to_patch_types() {
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchType::Strategic)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }

    // https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#advanced-topics
    // ("strategic merge patch is not supported" for custom resources): the apiserver
    // answers 415 listing the accepted media types.
    #[test]
    fn strategic_merge_patch_of_a_custom_resource_is_415() {
        assert!(CONFIGMAP.supports_strategic_merge());
        assert!(!WIDGET.supports_strategic_merge());
        let err = apply_patch(&WIDGET, &json!({}), b"{}", PatchType::Strategic).unwrap_err();
        assert_eq!(err.code(), 415);
        let status = err.to_status();
        assert_eq!(status["reason"], "UnsupportedMediaType");
        assert_eq!(
            status["message"],
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
        );
        let builtin = PatchError::unsupported_media_type(&CONFIGMAP).to_string();
        assert!(builtin.contains("application/strategic-merge-patch+json"));
    }

    // https://kubernetes.io/docs/reference/using-api/server-side-apply/ : apply is not a
    // patch merge; handing it to apply_patch is refused.
    #[test]
    fn apply_is_not_handled_by_apply_patch() {
        let err = apply_patch(&CONFIGMAP, &json!({}), b"{}", PatchType::Apply).unwrap_err();
        assert_eq!(err.code(), 500);
    }

    // https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply : the
    // same body gives different results per patch type (lists of containers merge by
    // name under strategic merge patch, replace under merge patch).
    #[test]
    fn dispatches_on_patch_type() {
        let job = ResourceKind::Builtin {
            group: "batch",
            kind: "Job",
        };
        let live =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}});
        let body = br#"{"spec":{"template":{"spec":{"containers":[{"name":"b","image":"y"}]}}}}"#;
        let merged = apply_patch(&job, &live, body, PatchType::Merge).unwrap();
        assert_eq!(
            merged["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "y"}])
        );
        let strategic = apply_patch(&job, &live, body, PatchType::Strategic).unwrap();
        assert_eq!(
            strategic["spec"]["template"]["spec"]["containers"],
            json!([{"name": "b", "image": "y"}, {"name": "a", "image": "x"}])
        );
    }
}
