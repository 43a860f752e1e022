//! The `422 Invalid` `Status` the API server returns for a refused object
//! (`k8s.io/apimachinery/pkg/api/errors.NewInvalid`).

use serde_json::{Map, Value, json};

use super::types::FieldError;

/// The `Status` object of a refusal: `"<Kind>.<group> \"<name>\" is invalid: <errors>"`, with
/// one cause per error. Identical messages are listed once in `message`, as the API server's
/// error aggregate does; several errors are enclosed in brackets.
pub fn invalid_status(kind: &str, group: &str, name: &str, errors: &[FieldError]) -> Value {
    let qualified_kind = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let mut distinct: Vec<String> = Vec::with_capacity(errors.len());
    for e in errors {
        let text = e.to_string();
        if !distinct.contains(&text) {
            distinct.push(text);
        }
    }
    let message = match distinct.as_slice() {
        [] => format!(
            "{qualified_kind} {} is invalid",
            super::types::go_quote(name)
        ),
        [one] => format!(
            "{qualified_kind} {} is invalid: {one}",
            super::types::go_quote(name)
        ),
        many => format!(
            "{qualified_kind} {} is invalid: [{}]",
            super::types::go_quote(name),
            many.join(", ")
        ),
    };
    let causes: Vec<Value> = errors
        .iter()
        .map(|e| json!({"reason": e.reason(), "message": e.message, "field": e.field}))
        .collect();
    let mut details = Map::new();
    if !name.is_empty() {
        details.insert("name".to_owned(), Value::String(name.to_owned()));
    }
    if !group.is_empty() {
        details.insert("group".to_owned(), Value::String(group.to_owned()));
    }
    details.insert("kind".to_owned(), Value::String(kind.to_owned()));
    details.insert("causes".to_owned(), Value::Array(causes));
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Invalid",
        "details": details,
        "code": 422,
    })
}
