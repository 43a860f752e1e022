//! Field paths printed as `k8s.io/apimachinery/pkg/util/validation/field.Path` prints them.

/// `parent.key` (`key` alone at the root).
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `parent[key]`, for map entries.
pub(crate) fn key(parent: &str, key: &str) -> String {
    format!("{parent}[{key}]")
}

/// The root path, which the API server prints as `<nil>`.
pub(crate) fn or_nil(path: &str) -> String {
    if path.is_empty() {
        super::types::NIL_FIELD.to_owned()
    } else {
        path.to_owned()
    }
}
