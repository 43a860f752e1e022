//! API errors and the `Status` objects the real API server returns for them.
//!
//! Messages follow the wording of `k8s.io/apimachinery/pkg/api/errors` so that clients
//! (kubectl, kube-rs) and tests see what a real cluster would say.

use serde_json::{Value, json};

/// A group + resource pair as it appears in error messages (`tenants.landlord.dev`, `configmaps`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        Self {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            write!(f, "{}", self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

/// The kind of a field validation error, as in `k8s.io/apimachinery/pkg/util/validation/field`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CauseKind {
    Required,
    Invalid,
    Forbidden,
    NotSupported,
    Duplicate,
    /// A message already worded by its producer (`Required value: ...`).
    Worded,
    /// `Too long: may not be more than N bytes`.
    TooLong,
    /// An `Unsupported value` message worded by its producer (Go-formatted values such as
    /// `[]string{"Bogus"}`).
    WordedNotSupported,
}

/// One field error of a 422 `Invalid` response.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCause {
    pub kind: CauseKind,
    pub field: String,
    pub value: Option<Value>,
    pub detail: String,
}

impl FieldCause {
    pub fn required(field: &str, detail: &str) -> Self {
        Self::new(CauseKind::Required, field, None, detail)
    }
    pub fn invalid(field: &str, value: Value, detail: &str) -> Self {
        Self::new(CauseKind::Invalid, field, Some(value), detail)
    }
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(CauseKind::Forbidden, field, None, detail)
    }
    pub fn not_supported(field: &str, value: Value, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            CauseKind::NotSupported,
            field,
            Some(value),
            &format!("supported values: {list}"),
        )
    }
    pub fn duplicate(field: &str, value: Value) -> Self {
        Self::new(CauseKind::Duplicate, field, Some(value), "")
    }
    /// `Too long: may not be more than <max> bytes` (`field.TooLong` without a value).
    pub fn too_long(field: &str, max: usize) -> Self {
        Self::new(
            CauseKind::TooLong,
            field,
            None,
            &format!("may not be more than {max} bytes"),
        )
    }
    /// `Unsupported value: <go_value>: supported values: ...`, the value as Go prints it.
    pub fn not_supported_go(field: &str, go_value: &str, supported: &[&str]) -> Self {
        let list = supported
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ");
        Self::new(
            CauseKind::WordedNotSupported,
            field,
            None,
            &format!("Unsupported value: {go_value}: supported values: {list}"),
        )
    }
    /// A cause from a `field: message` line worded elsewhere.
    pub fn worded(line: &str) -> Self {
        let (field, body) = line.split_once(": ").unwrap_or(("<nil>", line));
        Self::new(CauseKind::Worded, field, None, body)
    }
    fn new(kind: CauseKind, field: &str, value: Option<Value>, detail: &str) -> Self {
        Self {
            kind,
            field: field.to_string(),
            value,
            detail: detail.to_string(),
        }
    }

    fn reason(&self) -> &'static str {
        match self.kind {
            CauseKind::Required => "FieldValueRequired",
            CauseKind::Invalid => "FieldValueInvalid",
            CauseKind::Forbidden => "FieldValueForbidden",
            CauseKind::NotSupported => "FieldValueNotSupported",
            CauseKind::Duplicate => "FieldValueDuplicate",
            CauseKind::Worded => "FieldValueInvalid",
            CauseKind::WordedNotSupported => "FieldValueNotSupported",
            CauseKind::TooLong => "FieldValueTooLong",
        }
    }

    /// The error text without the field path (`Invalid value: "x": detail`).
    pub fn body(&self) -> String {
        let head = match self.kind {
            CauseKind::Required => "Required value",
            CauseKind::Invalid => "Invalid value",
            CauseKind::Forbidden => "Forbidden",
            CauseKind::NotSupported => "Unsupported value",
            CauseKind::Duplicate => "Duplicate value",
            CauseKind::TooLong => "Too long",
            CauseKind::Worded | CauseKind::WordedNotSupported => return self.detail.clone(),
        };
        let mut s = head.to_string();
        if let Some(v) = &self.value {
            s.push_str(": ");
            s.push_str(&v.to_string());
        }
        if !self.detail.is_empty() {
            s.push_str(": ");
            s.push_str(&self.detail);
        }
        s
    }
}

impl std::fmt::Display for FieldCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// An error answered to the client as a `Status` object.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

fn details(gr: &GroupResource, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": gr.resource });
    if !gr.group.is_empty() {
        d["group"] = json!(gr.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn not_found(gr: &GroupResource, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{gr} \"{name}\" not found"))
            .with_details(details(gr, name))
    }

    /// 404 for a path that names no resource at all.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn already_exists(gr: &GroupResource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{gr} \"{name}\" already exists"),
        )
        .with_details(details(gr, name))
    }

    pub fn conflict(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {gr} \"{name}\": {why}"),
        )
        .with_details(details(gr, name))
    }

    /// The optimistic-concurrency conflict (stale resourceVersion).
    pub fn modified(gr: &GroupResource, name: &str) -> Self {
        Self::conflict(
            gr,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    pub fn invalid(kind: &str, group: &str, name: &str, causes: &[FieldCause]) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let list = match causes {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut d = json!({
            "kind": kind,
            "causes": causes.iter().map(|c| json!({
                "reason": c.reason(),
                "message": c.body(),
                "field": c.field,
            })).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        // `name` is omitted when empty, as in the real Status.
        if !name.is_empty() {
            d["name"] = json!(name);
        }
        Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {list}"),
        )
        .with_details(d)
    }

    /// An error from a `Status` object built elsewhere (the schema module's 422s).
    pub fn from_status(status: &Value) -> Self {
        let code = status.get("code").and_then(Value::as_u64).unwrap_or(500) as u16;
        let reason = match status.get("reason").and_then(Value::as_str) {
            Some("Invalid") => "Invalid",
            Some("Forbidden") => "Forbidden",
            Some("BadRequest") => "BadRequest",
            Some("Unauthorized") => "Unauthorized",
            Some("NotFound") => "NotFound",
            Some("Conflict") => "Conflict",
            Some("UnsupportedMediaType") => "UnsupportedMediaType",
            Some("RequestEntityTooLarge") => "RequestEntityTooLarge",
            _ => "InternalError",
        };
        let message = status
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        Self {
            code,
            reason,
            message,
            details: status.get("details").cloned(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn forbidden(gr: &GroupResource, name: &str, why: &str) -> Self {
        Self::new(
            403,
            "Forbidden",
            format!("{gr} \"{name}\" is forbidden: {why}"),
        )
        .with_details(details(gr, name))
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        .with_details(json!({}))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn not_acceptable() -> Self {
        Self::new(
            406,
            "NotAcceptable",
            "only the following media types are accepted: application/json, application/yaml",
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        // Errors without a reason (`StatusReasonUnknown`) have none in their Status.
        if self.reason.is_empty()
            && let Some(m) = s.as_object_mut()
        {
            m.remove("reason");
        }
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        s
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
