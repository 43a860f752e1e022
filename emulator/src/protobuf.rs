//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`) for the few kinds
//! kubectl's typed clients send that way (`kubectl create namespace|configmap|secret|
//! serviceaccount|role|clusterrole|rolebinding|clusterrolebinding`, `kubectl auth can-i`),
//! decoded into the JSON form of the object.
//!
//! The envelope is the `k8s\0` magic followed by a `runtime.Unknown` message whose
//! `typeMeta` names the kind and whose `raw` holds the object
//! (<https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding>).
//! Field numbers are those of the `generated.proto` files of `k8s.io/api` and
//! `k8s.io/apimachinery`. Fields at their zero value are left out, as the JSON encoding's
//! `omitempty` does; unknown field numbers are skipped.

use base64::Engine;
use serde_json::{Map, Value, json};

use crate::meta;

/// Why a protobuf body cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("provided object is not a protobuf message: the k8s magic prefix is missing")]
    Magic,
    #[error("the protobuf message is truncated or malformed")]
    Malformed,
    #[error("protobuf wire type {0} is not supported")]
    WireType(u64),
    #[error("a protobuf string is not UTF-8")]
    Utf8,
    /// A kind this decoder has no table for.
    #[error("protobuf bodies of {kind} ({api_version}) are not supported; send JSON")]
    Unsupported { api_version: String, kind: String },
}

const MAGIC: &[u8] = b"k8s\0";

/// How one field is encoded.
#[derive(Clone, Copy)]
enum Type {
    Str,
    Bool,
    Int,
    /// `metav1.Time`: seconds and nanos, shown as RFC 3339.
    Time,
    Msg(&'static [Field]),
    /// `map<string, string>`.
    StrMap,
    /// `map<string, bytes>`, shown as base64.
    BytesMap,
}

#[derive(Clone, Copy)]
struct Field {
    number: u64,
    name: &'static str,
    ty: Type,
    repeated: bool,
}

const fn one(number: u64, name: &'static str, ty: Type) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: false,
    }
}

const fn many(number: u64, name: &'static str, ty: Type) -> Field {
    Field {
        number,
        name,
        ty,
        repeated: true,
    }
}

const OWNER_REFERENCE: &[Field] = &[
    one(5, "apiVersion", Type::Str),
    one(1, "kind", Type::Str),
    one(3, "name", Type::Str),
    one(4, "uid", Type::Str),
    one(6, "controller", Type::Bool),
    one(7, "blockOwnerDeletion", Type::Bool),
];

const OBJECT_META: &[Field] = &[
    one(1, "name", Type::Str),
    one(2, "generateName", Type::Str),
    one(3, "namespace", Type::Str),
    one(5, "uid", Type::Str),
    one(6, "resourceVersion", Type::Str),
    one(7, "generation", Type::Int),
    one(8, "creationTimestamp", Type::Time),
    one(9, "deletionTimestamp", Type::Time),
    one(10, "deletionGracePeriodSeconds", Type::Int),
    one(11, "labels", Type::StrMap),
    one(12, "annotations", Type::StrMap),
    many(13, "ownerReferences", Type::Msg(OWNER_REFERENCE)),
    many(14, "finalizers", Type::Str),
];

const METADATA: Field = one(1, "metadata", Type::Msg(OBJECT_META));

const NAMESPACE: &[Field] = &[
    METADATA,
    one(2, "spec", Type::Msg(&[many(1, "finalizers", Type::Str)])),
];

const CONFIG_MAP: &[Field] = &[
    METADATA,
    one(2, "data", Type::StrMap),
    one(3, "binaryData", Type::BytesMap),
    one(4, "immutable", Type::Bool),
];

const SECRET: &[Field] = &[
    METADATA,
    one(2, "data", Type::BytesMap),
    one(3, "type", Type::Str),
    one(4, "stringData", Type::StrMap),
    one(5, "immutable", Type::Bool),
];

const OBJECT_REFERENCE: &[Field] = &[
    one(1, "kind", Type::Str),
    one(2, "namespace", Type::Str),
    one(3, "name", Type::Str),
    one(4, "uid", Type::Str),
    one(5, "apiVersion", Type::Str),
    one(6, "resourceVersion", Type::Str),
    one(7, "fieldPath", Type::Str),
];

const SERVICE_ACCOUNT: &[Field] = &[
    METADATA,
    many(2, "secrets", Type::Msg(OBJECT_REFERENCE)),
    many(
        3,
        "imagePullSecrets",
        Type::Msg(&[one(1, "name", Type::Str)]),
    ),
    one(4, "automountServiceAccountToken", Type::Bool),
];

const POLICY_RULE: &[Field] = &[
    many(1, "verbs", Type::Str),
    many(2, "apiGroups", Type::Str),
    many(3, "resources", Type::Str),
    many(4, "resourceNames", Type::Str),
    many(5, "nonResourceURLs", Type::Str),
];

const LABEL_SELECTOR: &[Field] = &[
    one(1, "matchLabels", Type::StrMap),
    many(
        2,
        "matchExpressions",
        Type::Msg(&[
            one(1, "key", Type::Str),
            one(2, "operator", Type::Str),
            many(3, "values", Type::Str),
        ]),
    ),
];

const ROLE: &[Field] = &[METADATA, many(2, "rules", Type::Msg(POLICY_RULE))];

const CLUSTER_ROLE: &[Field] = &[
    METADATA,
    many(2, "rules", Type::Msg(POLICY_RULE)),
    one(
        3,
        "aggregationRule",
        Type::Msg(&[many(1, "clusterRoleSelectors", Type::Msg(LABEL_SELECTOR))]),
    ),
];

const BINDING: &[Field] = &[
    METADATA,
    many(
        2,
        "subjects",
        Type::Msg(&[
            one(1, "kind", Type::Str),
            one(2, "apiGroup", Type::Str),
            one(3, "name", Type::Str),
            one(4, "namespace", Type::Str),
        ]),
    ),
    one(
        3,
        "roleRef",
        Type::Msg(&[
            one(1, "apiGroup", Type::Str),
            one(2, "kind", Type::Str),
            one(3, "name", Type::Str),
        ]),
    ),
];

const SELECTOR_ATTRIBUTES: &[Field] = &[
    one(1, "rawSelector", Type::Str),
    many(
        2,
        "requirements",
        Type::Msg(&[
            one(1, "key", Type::Str),
            one(2, "operator", Type::Str),
            many(3, "values", Type::Str),
        ]),
    ),
];

const SELF_SUBJECT_ACCESS_REVIEW: &[Field] = &[
    METADATA,
    one(
        2,
        "spec",
        Type::Msg(&[
            one(
                1,
                "resourceAttributes",
                Type::Msg(&[
                    one(1, "namespace", Type::Str),
                    one(2, "verb", Type::Str),
                    one(3, "group", Type::Str),
                    one(4, "version", Type::Str),
                    one(5, "resource", Type::Str),
                    one(6, "subresource", Type::Str),
                    one(7, "name", Type::Str),
                    one(8, "fieldSelector", Type::Msg(SELECTOR_ATTRIBUTES)),
                    one(9, "labelSelector", Type::Msg(SELECTOR_ATTRIBUTES)),
                ]),
            ),
            one(
                2,
                "nonResourceAttributes",
                Type::Msg(&[one(1, "path", Type::Str), one(2, "verb", Type::Str)]),
            ),
        ]),
    ),
];

const SELF_SUBJECT_RULES_REVIEW: &[Field] = &[
    METADATA,
    one(2, "spec", Type::Msg(&[one(1, "namespace", Type::Str)])),
];

fn table(api_version: &str, kind: &str) -> Option<&'static [Field]> {
    Some(match (api_version, kind) {
        ("v1", "Namespace") => NAMESPACE,
        ("v1", "ConfigMap") => CONFIG_MAP,
        ("v1", "Secret") => SECRET,
        ("v1", "ServiceAccount") => SERVICE_ACCOUNT,
        ("rbac.authorization.k8s.io/v1", "Role") => ROLE,
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => CLUSTER_ROLE,
        ("rbac.authorization.k8s.io/v1", "RoleBinding" | "ClusterRoleBinding") => BINDING,
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => SELF_SUBJECT_ACCESS_REVIEW,
        ("authorization.k8s.io/v1", "SelfSubjectRulesReview") => SELF_SUBJECT_RULES_REVIEW,
        _ => return None,
    })
}

/// Decodes a protobuf request body into the JSON form of its object.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let unknown = body.strip_prefix(MAGIC).ok_or(ProtobufError::Magic)?;
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: &[u8] = &[];
    for item in Reader(unknown) {
        match item? {
            (1, Wire::Bytes(type_meta)) => {
                for item in Reader(type_meta) {
                    match item? {
                        (1, Wire::Bytes(b)) => api_version = string(b)?,
                        (2, Wire::Bytes(b)) => kind = string(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let fields = table(&api_version, &kind).ok_or_else(|| ProtobufError::Unsupported {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), json!(api_version));
    object.insert("kind".into(), json!(kind));
    object.extend(message(raw, fields)?);
    Ok(Value::Object(object))
}

/// One field of a message on the wire.
enum Wire<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of a message, in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first().ok_or(ProtobufError::Malformed)?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::Malformed)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtobufError> {
        if n > self.0.len() {
            return Err(ProtobufError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn field(&mut self) -> Result<(u64, Wire<'a>), ProtobufError> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Wire::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ProtobufError::Malformed)?;
                Wire::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed
            }
            other => return Err(ProtobufError::WireType(other)),
        };
        Ok((key >> 3, wire))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<(u64, Wire<'a>), ProtobufError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let item = self.field();
        if item.is_err() {
            self.0 = &[];
        }
        Some(item)
    }
}

fn string(bytes: &[u8]) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::Utf8)
}

/// A message decoded by its table; fields at their zero value are left out.
fn message(bytes: &[u8], fields: &[Field]) -> Result<Map<String, Value>, ProtobufError> {
    let mut out = Map::new();
    for item in Reader(bytes) {
        let (number, wire) = item?;
        let Some(field) = fields.iter().find(|f| f.number == number) else {
            continue;
        };
        // Every element of a repeated field is on the wire, an empty string too (the core
        // group `""` of a PolicyRule's apiGroups): only singular zero values are omitted.
        let decoded = match (field.ty, wire) {
            (Type::Str, Wire::Bytes(b)) if field.repeated => Some(json!(string(b)?)),
            (ty, wire) => value(ty, wire)?,
        };
        let Some(value) = decoded else {
            continue;
        };
        match field.ty {
            Type::StrMap | Type::BytesMap => {
                if let (Value::Object(entry), Value::Object(map)) = (
                    value,
                    out.entry(field.name)
                        .or_insert_with(|| Value::Object(Map::new())),
                ) {
                    map.extend(entry);
                }
            }
            _ if field.repeated => {
                if let Value::Array(items) = out.entry(field.name).or_insert_with(|| json!([])) {
                    items.push(value);
                }
            }
            _ => {
                out.insert(field.name.to_string(), value);
            }
        }
    }
    Ok(out)
}

/// One value; `None` for a zero value a JSON encoder would omit.
fn value(ty: Type, wire: Wire<'_>) -> Result<Option<Value>, ProtobufError> {
    Ok(match (ty, wire) {
        (Type::Str, Wire::Bytes([])) => None,
        (Type::Str, Wire::Bytes(b)) => Some(json!(string(b)?)),
        (Type::Bool, Wire::Varint(v)) => (v != 0).then_some(json!(true)),
        // int64 and int32 fields are two's complement varints.
        (Type::Int, Wire::Varint(v)) => (v != 0).then(|| json!(v as i64)),
        (Type::Time, Wire::Bytes(b)) => time(b)?,
        (Type::Msg(fields), Wire::Bytes(b)) => Some(Value::Object(message(b, fields)?)),
        (Type::StrMap | Type::BytesMap, Wire::Bytes(b)) => {
            let mut key = String::new();
            let mut value = Value::String(String::new());
            for item in Reader(b) {
                match item? {
                    (1, Wire::Bytes(k)) => key = string(k)?,
                    (2, Wire::Bytes(v)) if matches!(ty, Type::BytesMap) => {
                        value = json!(base64::engine::general_purpose::STANDARD.encode(v));
                    }
                    (2, Wire::Bytes(v)) => value = json!(string(v)?),
                    _ => {}
                }
            }
            let mut entry = Map::new();
            entry.insert(key, value);
            Some(Value::Object(entry))
        }
        _ => return Err(ProtobufError::Malformed),
    })
}

/// `metav1.Time` (seconds since the epoch, nanos) as RFC 3339; the zero time is omitted.
fn time(bytes: &[u8]) -> Result<Option<Value>, ProtobufError> {
    let mut seconds = 0i64;
    for item in Reader(bytes) {
        if let (1, Wire::Varint(v)) = item? {
            seconds = v as i64;
        }
    }
    if seconds == 0 {
        return Ok(None);
    }
    let ts = jiff::Timestamp::from_second(seconds).map_err(|_| ProtobufError::Malformed)?;
    Ok(Some(json!(meta::format_timestamp(ts))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(number: u64, value: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(value.len() as u64, out);
        out.extend_from_slice(value);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut type_meta = Vec::new();
        bytes_field(1, api_version.as_bytes(), &mut type_meta);
        bytes_field(2, kind.as_bytes(), &mut type_meta);
        let mut out = MAGIC.to_vec();
        bytes_field(1, &type_meta, &mut out);
        bytes_field(2, raw, &mut out);
        bytes_field(3, b"", &mut out);
        bytes_field(4, b"", &mut out);
        out
    }

    // https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding :
    // the k8s magic, then runtime.Unknown with typeMeta and raw. A ConfigMap as
    // `kubectl create configmap` sends it: empty strings for unset ObjectMeta fields, a
    // zero creationTimestamp, data entries.
    #[test]
    fn decodes_a_config_map() {
        let mut meta = Vec::new();
        bytes_field(1, b"settings", &mut meta);
        bytes_field(2, b"", &mut meta);
        bytes_field(3, b"", &mut meta);
        bytes_field(8, &[8, 0, 16, 0], &mut meta);
        let mut label = Vec::new();
        bytes_field(1, b"team", &mut label);
        bytes_field(2, b"a", &mut label);
        bytes_field(11, &label, &mut meta);
        let mut raw = Vec::new();
        bytes_field(1, &meta, &mut raw);
        for (k, v) in [("a", "1"), ("b", "2")] {
            let mut entry = Vec::new();
            bytes_field(1, k.as_bytes(), &mut entry);
            bytes_field(2, v.as_bytes(), &mut entry);
            bytes_field(2, &entry, &mut raw);
        }
        varint(4 << 3, &mut raw);
        varint(1, &mut raw);
        let decoded = decode(&envelope("v1", "ConfigMap", &raw)).unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "settings", "labels": {"team": "a"}},
                   "data": {"a": "1", "b": "2"}, "immutable": true})
        );
    }

    #[test]
    fn decodes_a_self_subject_access_review() {
        let mut attributes = Vec::new();
        bytes_field(1, b"default", &mut attributes);
        bytes_field(2, b"get", &mut attributes);
        bytes_field(5, b"pods", &mut attributes);
        let mut spec = Vec::new();
        bytes_field(1, &attributes, &mut spec);
        let mut raw = Vec::new();
        bytes_field(1, b"", &mut raw);
        bytes_field(2, &spec, &mut raw);
        bytes_field(3, &[8, 0], &mut raw);
        let decoded = decode(&envelope(
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            &raw,
        ))
        .unwrap();
        assert_eq!(
            decoded,
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                   "metadata": {},
                   "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}}})
        );
    }

    // `kubectl create role r --verb=get --resource=configmaps`: apiGroups [""].
    #[test]
    fn keeps_empty_strings_of_repeated_fields() {
        let mut rule = Vec::new();
        bytes_field(1, b"get", &mut rule);
        bytes_field(2, b"", &mut rule);
        bytes_field(3, b"configmaps", &mut rule);
        let mut meta = Vec::new();
        bytes_field(1, b"r", &mut meta);
        let mut role = Vec::new();
        bytes_field(1, &meta, &mut role);
        bytes_field(2, &rule, &mut role);
        let got = decode(&envelope("rbac.authorization.k8s.io/v1", "Role", &role)).unwrap();
        assert_eq!(
            got["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}])
        );
        assert_eq!(got["metadata"], json!({"name": "r"}));
    }

    #[test]
    fn refuses_what_it_cannot_decode() {
        assert_eq!(decode(b"{}"), Err(ProtobufError::Magic));
        assert_eq!(
            decode(&envelope("batch/v1", "Job", &[])),
            Err(ProtobufError::Unsupported {
                api_version: "batch/v1".into(),
                kind: "Job".into()
            })
        );
        let mut truncated = envelope("v1", "ConfigMap", &[]);
        truncated.extend_from_slice(&[0x12, 0x05, 0x01]);
        assert_eq!(decode(&truncated), Err(ProtobufError::Malformed));
    }
}
