//! Content negotiation of responses, as kube-apiserver does it: the `Accept` header picks
//! the encoding (JSON or YAML) and, with `as=`/`g=`/`v=` parameters, a conversion of the
//! object (`PartialObjectMetadata`, `PartialObjectMetadataList`, `Table`); what cannot be
//! served is 406.
//!
//! This follows `k8s.io/apiserver/pkg/endpoints/handlers/negotiation/negotiate.go`
//! (`NegotiateMediaTypeOptions`, `acceptMediaTypeOptions`), `RequestScope.AllowsMediaTypeTransform`
//! in `handlers/rest.go`, `transformObject`/`asPartialObjectMetadata(List)` in
//! `handlers/response.go`, and, for built-in kinds, go-restful's route selection by
//! `Produces` (`RouterJSR311.detectRoute`), which answers an `Accept` naming none of the
//! produced types before the API server's own negotiation runs.
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables>,
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#alternate-representations-of-resources>.
//!
//! The emulator encodes JSON and YAML only: a client that accepts nothing but protobuf
//! gets 406 naming those two (a real server would answer in protobuf).

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::resources::ResourceType;

/// How a response body is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Json,
    Yaml,
}

impl Encoding {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Yaml => "application/yaml",
        }
    }

    /// The body of `value` in this encoding.
    pub fn encode(self, value: &Value) -> Vec<u8> {
        match self {
            Self::Json => serde_json::to_vec(value).unwrap_or_default(),
            Self::Yaml => yaml(value).into_bytes(),
        }
    }
}

/// YAML as sigs.k8s.io/yaml's `JSONToYAML` writes it: keys in order (serde_json's maps
/// are sorted, like go-yaml's), list items at their key's indentation.
fn yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}

/// What a response object is converted to before it is encoded (`as=` of the `Accept`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conversion {
    None,
    /// `as=PartialObjectMetadata`: only `metadata`, as `meta.k8s.io/<version>`.
    Metadata(String),
    /// `as=PartialObjectMetadataList`: a list of `PartialObjectMetadata`.
    MetadataList(String),
    /// `as=Table`.
    Table(String),
}

/// The outcome of negotiation: the encoding and the conversion of the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub encoding: Encoding,
    pub conversion: Conversion,
}

impl Negotiated {
    pub const JSON: Negotiated = Negotiated {
        encoding: Encoding::Json,
        conversion: Conversion::None,
    };
}

/// The media types kube-apiserver serves for resources (json, yaml, protobuf; CBOR is an
/// alpha feature, off in v1.33).
const SERVED: &[(&str, &str)] = &[
    ("application", "json"),
    ("application", "yaml"),
    ("application", "vnd.kubernetes.protobuf"),
];
const SERVED_LIST: &str = "application/json, application/yaml, application/vnd.kubernetes.protobuf";
const STREAM_LIST: &str =
    "application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch";
const EMULATED_LIST: &str = "application/json, application/yaml";

/// One clause of an `Accept` header, as goautoneg parses it.
#[derive(Debug, Clone)]
struct Clause {
    type_: String,
    sub_type: String,
    q: f64,
    params: Vec<(String, String)>,
}

/// `goautoneg.ParseAccept`: clauses with their parameters, sorted by its comparator (by
/// `q`, then wildcards last) with the insertion sort Go's `sort.Sort` uses for short
/// slices, so that its quirks (a `*/*` of higher q after a specific type of lower q) hold.
fn parse_accept(header: &str) -> Vec<Clause> {
    let mut clauses = Vec::new();
    for part in header.split(',') {
        let mut pieces = part.trim().split(';');
        let mt = pieces.next().unwrap_or("").trim();
        let (type_, sub_type) = match mt.split_once('/') {
            Some((t, s)) => (t.trim().to_string(), s.trim().to_string()),
            None if mt == "*" => ("*".to_string(), "*".to_string()),
            None => (mt.to_string(), String::new()),
        };
        let mut c = Clause {
            type_,
            sub_type,
            q: 1.0,
            params: Vec::new(),
        };
        for p in pieces {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            let (k, v) = (k.trim(), v.trim());
            if k == "q" {
                c.q = v.parse().unwrap_or(0.0);
            } else {
                c.params.push((k.to_string(), v.to_string()));
            }
        }
        clauses.push(c);
    }
    let less = |a: &Clause, b: &Clause| {
        a.q > b.q || (a.type_ != "*" && b.type_ == "*") || (a.sub_type != "*" && b.sub_type == "*")
    };
    for i in 1..clauses.len() {
        let mut j = i;
        while j > 0 && less(&clauses[j], &clauses[j - 1]) {
            clauses.swap(j, j - 1);
            j -= 1;
        }
    }
    clauses
}

/// A served media type (type, subtype).
type Served = (&'static str, &'static str);

/// The `as`, `g` and `v` parameters of a clause.
#[derive(Debug, Clone, Default)]
struct As {
    kind: String,
    group: String,
    version: String,
}

/// `acceptMediaTypeOptions` with `AllowsMediaTypeTransform` (`conversions`: the endpoint
/// converts to Table and PartialObjectMetadata; error responses do not): `None` when the
/// clause cannot be served as `served`, otherwise the conversion it asks for.
fn options(clause: &Clause, served: Served, conversions: bool) -> Option<Option<As>> {
    let mut convert: Option<As> = None;
    for (k, v) in &clause.params {
        match k.as_str() {
            "as" => convert.get_or_insert_default().kind = v.clone(),
            "g" => convert.get_or_insert_default().group = v.clone(),
            "v" => convert.get_or_insert_default().version = v.clone(),
            "stream" if !v.is_empty() && (served.1 == "yaml" || v != "watch") => return None,
            _ => {}
        }
    }
    if let Some(a) = &convert {
        if !conversions
            || a.group != "meta.k8s.io"
            || !matches!(a.version.as_str(), "v1" | "v1beta1")
        {
            return None;
        }
        match a.kind.as_str() {
            "Table" if served.1 == "json" || served.1 == "yaml" => {}
            "PartialObjectMetadata" | "PartialObjectMetadataList" => {}
            _ => return None,
        }
    }
    Some(convert)
}

/// The served type and conversion the first acceptable clause asks for.
fn first_acceptable(
    clauses: &[Clause],
    served: &[Served],
    conversions: bool,
) -> Option<(Served, Option<As>)> {
    for c in clauses {
        for s in served {
            let matches = (c.type_ == "*" && c.sub_type == "*")
                || (c.type_ == s.0 && (c.sub_type == s.1 || c.sub_type == "*"));
            if matches && let Some(convert) = options(c, *s, conversions) {
                return Some((*s, convert));
            }
        }
    }
    None
}

fn not_acceptable(list: &str) -> ApiError {
    ApiError::new(
        406,
        "NotAcceptable",
        format!("only the following media types are accepted: {list}"),
    )
}

/// go-restful's check of the `Accept` against what a built-in route produces (the
/// collection GET route also produces the watch stream types).
fn restful_accepts(accept: &str, collection_get: bool) -> Result<(), ApiError> {
    let mut produces: Vec<&str> = vec![
        "application/json",
        "application/yaml",
        "application/vnd.kubernetes.protobuf",
    ];
    if collection_get {
        produces.extend([
            "application/json;stream=watch",
            "application/vnd.kubernetes.protobuf;stream=watch",
        ]);
    }
    if accept.is_empty() {
        return Ok(());
    }
    let ok = accept.split(',').any(|part| {
        let mt = part.split(';').next().unwrap_or("").trim();
        mt == "*/*" || produces.contains(&mt)
    });
    if ok {
        return Ok(());
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        format!(
            "406: Not Acceptable\n\nAvailable representations: {}",
            produces.join(", ")
        ),
    )
    .with_details(json!({})))
}

fn conversion_of(convert: Option<As>) -> Conversion {
    match convert {
        None => Conversion::None,
        Some(a) => match a.kind.as_str() {
            "PartialObjectMetadata" => Conversion::Metadata(a.version),
            "PartialObjectMetadataList" => Conversion::MetadataList(a.version),
            _ => Conversion::Table(a.version),
        },
    }
}

/// What kind of request is negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// A GET of a collection (list or watch).
    CollectionGet,
    Other,
}

/// Negotiates the response to a resource request (`NegotiateOutputMediaType`), and, for a
/// watch, its stream (`NegotiateOutputMediaTypeStream`).
pub fn negotiate(
    rt: &ResourceType,
    accept: &str,
    request: Request,
    watch: bool,
) -> Result<Negotiated, ApiError> {
    if !rt.is_crd() {
        restful_accepts(accept, request == Request::CollectionGet)?;
    }
    let clauses = parse_accept(accept);
    let (served, convert) = if accept.is_empty() {
        (SERVED[0], None)
    } else {
        first_acceptable(&clauses, SERVED, true).ok_or_else(|| not_acceptable(SERVED_LIST))?
    };
    if watch && served.1 == "yaml" {
        return Err(not_acceptable(STREAM_LIST));
    }
    let (served, convert) = if served.1 == "vnd.kubernetes.protobuf" {
        first_acceptable(&clauses, &SERVED[..2], true)
            .ok_or_else(|| not_acceptable(EMULATED_LIST))?
    } else {
        (served, convert)
    };
    let encoding = if served.1 == "yaml" {
        Encoding::Yaml
    } else {
        Encoding::Json
    };
    Ok(Negotiated {
        encoding,
        conversion: conversion_of(convert),
    })
}

/// The encoding of an error response (`ErrorNegotiated`: no conversions; JSON when
/// nothing is acceptable).
pub fn error_encoding(accept: &str) -> Encoding {
    match first_acceptable(&parse_accept(accept), &SERVED[..2], false) {
        Some((("application", "yaml"), _)) => Encoding::Yaml,
        _ => Encoding::Json,
    }
}

/// The Go type of an object of `rt` as the API server's handlers hold it (internal types
/// for built-ins, unstructured for custom resources), which 406 messages name.
fn go_type(rt: &ResourceType, list: bool) -> String {
    if rt.is_crd() {
        return if list {
            "*unstructured.UnstructuredList".into()
        } else {
            "*unstructured.Unstructured".into()
        };
    }
    let package = match rt.group.as_str() {
        "" | "events.k8s.io" => "core",
        g => g.split('.').next().unwrap_or(g),
    };
    let suffix = if list { "List" } else { "" };
    format!("*{package}.{}{suffix}", rt.kind)
}

/// Whether `obj` is a list (has `items`).
pub fn is_list(obj: &Value) -> bool {
    obj.get("items").is_some_and(Value::is_array)
        && obj
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| k.ends_with("List"))
}

/// `PartialObjectMetadata` of one object.
pub fn partial(obj: &Value, version: &str) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

/// `asPartialObjectMetadata`: a single object's metadata; 406 for a list.
pub fn as_partial(rt: &ResourceType, obj: &Value, version: &str) -> Result<Value, ApiError> {
    if is_list(obj) {
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "you requested PartialObjectMetadata, but the requested object is a list ({})",
                go_type(rt, true)
            ),
        ));
    }
    Ok(partial(obj, version))
}

/// `asPartialObjectMetadataList`: the items' metadata with the list's `resourceVersion`,
/// `continue` and `remainingItemCount`; for a single object 406 (built-ins) or the 500 of
/// the custom resource handler, whose unstructured object is no `ListInterface`.
pub fn as_partial_list(rt: &ResourceType, obj: &Value, version: &str) -> Result<Value, ApiError> {
    if !is_list(obj) {
        if rt.is_crd() {
            return Err(ApiError::new(500, "", "content is not a list"));
        }
        return Err(ApiError::new(
            406,
            "NotAcceptable",
            format!(
                "you requested PartialObjectMetadataList, but the requested object is not a list ({})",
                go_type(rt, false)
            ),
        ));
    }
    let items: Vec<Value> = obj["items"]
        .as_array()
        .map(|items| items.iter().map(|i| partial(i, version)).collect())
        .unwrap_or_default();
    let mut metadata = serde_json::Map::new();
    for k in ["resourceVersion", "continue", "remainingItemCount"] {
        if let Some(v) = obj.pointer(&format!("/metadata/{k}")) {
            metadata.insert(k.to_string(), v.clone());
        }
    }
    Ok(json!({
        "kind": "PartialObjectMetadataList",
        "apiVersion": format!("meta.k8s.io/{version}"),
        "metadata": metadata,
        "items": items,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::builtin_types;

    fn configmaps() -> ResourceType {
        builtin_types()
            .into_iter()
            .find(|t| t.plural == "configmaps")
            .unwrap()
    }

    fn n(accept: &str) -> Result<Negotiated, ApiError> {
        negotiate(&configmaps(), accept, Request::Other, false)
    }

    #[test]
    fn kubectl_table_accept_picks_table_v1() {
        let got = n("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json").unwrap();
        assert_eq!(got.conversion, Conversion::Table("v1".into()));
        assert_eq!(got.encoding, Encoding::Json);
    }

    #[test]
    fn unknown_conversions_fall_through_or_406() {
        let e = n("application/json;as=Foo;g=meta.k8s.io;v=v1").unwrap_err();
        assert_eq!(e.code, 406);
        assert_eq!(
            e.message,
            "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        let e = n("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2").unwrap_err();
        assert_eq!(e.code, 406);
        let got = n("application/json;as=Foo;g=meta.k8s.io;v=v1, application/yaml").unwrap();
        assert_eq!(
            got,
            Negotiated {
                encoding: Encoding::Yaml,
                conversion: Conversion::None
            }
        );
    }

    #[test]
    fn go_sort_quirk_puts_specific_types_before_wildcards() {
        // Observed on kube-apiserver v1.33: YAML although `*/*` has the higher q.
        let got = n("*/*;q=0.1, application/yaml;q=0").unwrap();
        assert_eq!(got.encoding, Encoding::Yaml);
        let got = n("application/json;q=0.5, application/yaml").unwrap();
        assert_eq!(got.encoding, Encoding::Yaml);
    }

    #[test]
    fn restful_406_for_types_no_route_produces() {
        let e = n("text/html").unwrap_err();
        assert_eq!(
            e.message,
            "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf"
        );
        assert_eq!(n("application/*").unwrap_err().code, 406);
        assert!(n("text/html, application/json").is_ok());
    }

    #[test]
    fn protobuf_falls_back_to_json_or_is_406() {
        assert_eq!(
            n("application/vnd.kubernetes.protobuf, */*").unwrap(),
            Negotiated::JSON
        );
        let e = n("application/vnd.kubernetes.protobuf").unwrap_err();
        assert_eq!(
            e.message,
            "only the following media types are accepted: application/json, application/yaml"
        );
    }

    #[test]
    fn yaml_quotes_what_yaml_1_1_would_read_otherwise() {
        let y = yaml(&json!({"a": "y", "b": "123", "c": ["x"], "d": {}, "e": "true"}));
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(
            back,
            json!({"a": "y", "b": "123", "c": ["x"], "d": {}, "e": "true"})
        );
        assert!(y.contains("a: \"y\"") || y.contains("a: 'y'"), "{y}");
        assert!(y.contains("c:\n- x\n"), "{y}");
    }
}
