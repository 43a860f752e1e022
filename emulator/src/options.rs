//! Query parameters of resource requests, checked as kube-apiserver checks them: the
//! validation of `ListOptions` (k8s.io/apimachinery/pkg/apis/meta/internalversion/
//! validation: `ValidateListOptions`, `validateWatchOptions`), `dryRun` and
//! `fieldValidation` of Create/Update/Patch/DeleteOptions and the propagation policy of
//! DeleteOptions (k8s.io/apimachinery/pkg/apis/meta/v1/validation), and the parsing of
//! integer parameters (`strconv.ParseInt`). Messages are those of kube-apiserver v1.33.
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list>,
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists>.

use std::collections::HashMap;

use crate::error::{ApiError, ApiResult, FieldCause};

/// 422 for invalid `<kind>` options (`ListOptions.meta.k8s.io "" is invalid: ...`).
pub fn invalid(kind: &str, causes: &[FieldCause]) -> ApiError {
    ApiError::invalid(kind, "meta.k8s.io", "", causes)
}

/// A boolean query parameter as Go's `strconv.ParseBool` reads it (what kube-apiserver's
/// query conversion uses): `1`, `t`, `T`, `TRUE`, `true`, `True` and the matching false
/// spellings; anything else is `None`. The official Python client sends `watch=True`.
pub fn go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// An integer query parameter, or the 400 of Go's `strconv.ParseInt`.
pub fn int(query: &HashMap<String, String>, key: &str) -> ApiResult<Option<i64>> {
    match query.get(key) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))
        }),
    }
}

/// `dryRun` of `<kind>` (CreateOptions, UpdateOptions, PatchOptions, DeleteOptions): only
/// `All`; anything else, an empty value included, is 422.
pub fn dry_run(kind: &str, value: Option<&str>) -> ApiResult<bool> {
    match value {
        None => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(invalid(
            kind,
            &[FieldCause::not_supported_go(
                "dryRun",
                &format!("[]string{{{other:?}}}"),
                &["All"],
            )],
        )),
    }
}

/// Checks the list options of a list (`watch` false) or watch request.
///
/// `watch_list` is the WatchList feature gate: off by default in v1.33, where any
/// `sendInitialEvents` of a watch is refused.
pub fn check_list(query: &HashMap<String, String>, watch: bool, watch_list: bool) -> ApiResult<()> {
    let q = |k: &str| query.get(k).map(String::as_str);
    let rv = q("resourceVersion").unwrap_or("");
    let rv_match = q("resourceVersionMatch").unwrap_or("");
    let has_continue = q("continue").is_some_and(|c| !c.is_empty());
    let send_initial = q("sendInitialEvents").is_some();
    let mut causes = Vec::new();
    let forbidden = |field: &str, detail: &str| FieldCause::forbidden(field, detail);
    if watch {
        if send_initial {
            if rv_match != "NotOlderThan" {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
            if !watch_list {
                causes.push(forbidden(
                    "sendInitialEvents",
                    "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
                ));
            }
        }
        if !rv_match.is_empty() {
            if !send_initial {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if rv_match != "NotOlderThan" {
                causes.push(FieldCause::not_supported(
                    "resourceVersionMatch",
                    serde_json::json!(rv_match),
                    &["NotOlderThan"],
                ));
            }
            if has_continue {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
        }
    } else {
        if !rv_match.is_empty() {
            if rv.is_empty() {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if has_continue {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden when continue is provided",
                ));
            }
            if rv_match != "Exact" && rv_match != "NotOlderThan" {
                causes.push(FieldCause::not_supported(
                    "resourceVersionMatch",
                    serde_json::json!(rv_match),
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if rv_match == "Exact" && rv == "0" {
                causes.push(forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if send_initial {
            causes.push(forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid("ListOptions", &causes))
    }
}

/// A resourceVersion parameter: `None` for none or "0" (any), the number otherwise, or the
/// storage layer's error for one that is not a number (400 for a list, a reasonless 500
/// for a watch).
pub fn resource_version(rv: &str, watch: bool) -> ApiResult<Option<u64>> {
    if rv.is_empty() {
        return Ok(None);
    }
    match rv.parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(n) => Ok(Some(n)),
        Err(_) => {
            let detail = format!(
                "resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
            );
            Err(if watch {
                ApiError::new(500, "", detail)
            } else {
                ApiError::bad_request(format!("invalid resource version: {detail}"))
            })
        }
    }
}

/// The watch cache's answer to a list at a resourceVersion it has not reached (it waits
/// up to 3 s, then 504).
pub fn too_large_resource_version(rv: u64, current: u64) -> ApiError {
    ApiError::new(
        504,
        "Timeout",
        format!("Timeout: Too large resource version: {rv}, current: {current}"),
    )
    .with_details(serde_json::json!({
        "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
        "retryAfterSeconds": 1,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_options_as_kube_apiserver_v1_33() {
        let e = check_list(
            &query(&[("resourceVersionMatch", "NotOlderThan")]),
            false,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"
        );
        let e = check_list(
            &query(&[("watch", "1"), ("sendInitialEvents", "true")]),
            true,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled]"
        );
        assert!(
            check_list(
                &query(&[
                    ("sendInitialEvents", "true"),
                    ("resourceVersionMatch", "NotOlderThan")
                ]),
                true,
                true
            )
            .is_ok()
        );
        assert_eq!(
            dry_run("CreateOptions", Some("Bogus")).unwrap_err().message,
            "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\""
        );
    }
}
