//! A receipt as a document: the `ErasureReceipt` resource (as `kubectl get -o yaml|json`
//! prints it) or its stored copy in BackupStorage, parsed strictly and verified as a third
//! party would, from the bytes.
//!
//! # The stored copy
//!
//! [`stored_copy_json`] writes the copy that the workflow stores at
//! [`stored_copy_key`] (`<storage prefix>erasure-receipt.json`): compact JSON, UTF-8, no
//! whitespace and no trailing newline, of exactly
//!
//! ```json
//! {"apiVersion":"landlord.dev/v1alpha1","kind":"ErasureReceipt","metadata":{"name":"<tenant>-<uid>"},"spec":{...}}
//! ```
//!
//! members in that order, the spec's in the order of its fields. It is the resource
//! without its server-set metadata and status, so `kubectl apply -f` of it recreates the
//! resource, and the same bytes are written every time for the same receipt. With no
//! whitespace, every one-byte change of it either stops it from parsing or from verifying,
//! with one exception that changes nothing it says: the case of a hex letter in a
//! `\u00xx` escape (control characters U+000B, U+000E, U+000F, U+001A to U+001F in a text,
//! which receipts do not hold in practice).
//!
//! # What verification covers
//!
//! The signature covers the spec (without `signature`), computed over the spec exactly
//! as the document holds it, so that this check and one written with any JCS library
//! agree. Around it: `apiVersion` and `kind`, `metadata.name` (the deterministic
//! [`receipt_name`] of the tenant the spec names), no member a receipt does not have, and
//! a spec that this version of Landlord writes in exactly that form (an unknown field is
//! a problem, not ignored). Other metadata (labels, UID, timestamps) and the status are
//! the API server's and are not signed.

use std::collections::BTreeSet;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::receipt::{self, Problem};
use super::signing;
use crate::api::{ErasedStorage, ErasedTenant, ErasureReceipt, ErasureReceiptSpec};

/// `apiVersion` of a receipt.
pub const API_VERSION: &str = "landlord.dev/v1alpha1";
/// `kind` of a receipt.
pub const KIND: &str = "ErasureReceipt";
/// Name of the stored copy's object, under the tenant's storage prefix.
pub const STORED_COPY_NAME: &str = "erasure-receipt.json";

/// The name of a tenant's receipt: `<tenant name>-<tenant UID>`. Deterministic (writing the
/// receipt again is harmless), and distinct for a later Tenant of the same name.
pub fn receipt_name(tenant: &ErasedTenant) -> String {
    format!("{}-{}", tenant.name, tenant.uid)
}

/// Where the stored copy goes: `<storage.prefix>erasure-receipt.json`.
pub fn stored_copy_key(storage: &ErasedStorage) -> String {
    format!("{}{STORED_COPY_NAME}", storage.prefix)
}

/// The `ErasureReceipt` resource for a signed `spec`: named [`receipt_name`], with
/// Landlord's two labels.
pub fn receipt_resource(spec: ErasureReceiptSpec) -> ErasureReceipt {
    use crate::isolation::labels::{MANAGED_BY, MANAGED_BY_LABEL, TENANT_LABEL};
    let mut receipt = ErasureReceipt::new(&receipt_name(&spec.tenant), spec);
    receipt.metadata.labels = Some(
        [
            (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
            (TENANT_LABEL.to_owned(), receipt.spec.tenant.name.clone()),
        ]
        .into(),
    );
    receipt
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoredCopy<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: NameOnly<'a>,
    spec: &'a ErasureReceiptSpec,
}

#[derive(Serialize)]
struct NameOnly<'a> {
    name: &'a str,
}

/// The stored copy of `receipt` (see the module documentation): its apiVersion, kind,
/// `metadata.name` ([`receipt_name`] of its spec's tenant, whatever the resource's own
/// name) and spec, as compact JSON.
pub fn stored_copy_json(receipt: &ErasureReceipt) -> Vec<u8> {
    let name = receipt_name(&receipt.spec.tenant);
    let copy = StoredCopy {
        api_version: API_VERSION,
        kind: KIND,
        metadata: NameOnly { name: &name },
        spec: &receipt.spec,
    };
    // Serializing plain strings, integers and timestamps into a Vec cannot fail; were it
    // ever to, an empty copy is what verification refuses.
    serde_json::to_vec(&copy).unwrap_or_default()
}

/// A parsed receipt document.
#[derive(Debug, Clone)]
pub struct Document {
    /// `metadata.name`.
    pub name: String,
    /// The spec, typed.
    pub spec: ErasureReceiptSpec,
    /// The spec exactly as the document holds it: what the signature is checked over.
    pub spec_json: Value,
    /// Whether the document has members the stored copy does not (the resource's
    /// server-set metadata or its status): it is then the resource.
    pub is_resource: bool,
}

/// Parses a receipt from YAML or JSON bytes (JSON when the first non-blank character is
/// `{`). Strict: duplicate member names are refused at any depth (JCS has no answer for
/// them), and so are members a receipt does not have at the top level.
pub fn parse(bytes: &[u8]) -> Result<Document, Problem> {
    let not = |detail: String| Problem::NotAReceipt { detail };
    let text = std::str::from_utf8(bytes).map_err(|e| not(format!("not UTF-8: {e}")))?;
    let value = if text.trim_start().starts_with('{') {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let value = StrictValue::deserialize(&mut deserializer)
            .and_then(|v| deserializer.end().map(|()| v))
            .map_err(|e| not(format!("invalid JSON: {e}")))?;
        value.0
    } else {
        serde_saphyr::from_str::<StrictValue>(text)
            .map_err(|e| not(format!("invalid YAML: {e}")))?
            .0
    };
    let Value::Object(mut top) = value else {
        return Err(not("the document is not an object".to_owned()));
    };
    let allowed = ["apiVersion", "kind", "metadata", "spec", "status"];
    if let Some(unknown) = top.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(not(format!("it has a member {unknown:?}")));
    }
    for (member, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
        match top.get(member) {
            Some(Value::String(s)) if s == expected => {}
            Some(other) => return Err(not(format!("{member} is {other}, not {expected:?}"))),
            None => return Err(not(format!("it has no {member}"))),
        }
    }
    let metadata = top
        .get("metadata")
        .and_then(Value::as_object)
        .ok_or_else(|| not("it has no metadata".to_owned()))?;
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| not("it has no metadata.name".to_owned()))?
        .to_owned();
    let is_resource = metadata.len() > 1 || top.contains_key("status");
    let spec_json = top
        .remove("spec")
        .ok_or_else(|| not("it has no spec".to_owned()))?;
    if !spec_json.is_object() {
        return Err(not("spec is not an object".to_owned()));
    }
    let spec: ErasureReceiptSpec =
        serde_json::from_value(spec_json.clone()).map_err(|e| not(format!("spec: {e}")))?;
    Ok(Document {
        name,
        spec,
        spec_json,
        is_resource,
    })
}

/// Every problem of `document`: its name, its spec's form, its signature (over the spec as
/// the document holds it, with `pinned` when given) and its consistency
/// ([`receipt::check`]). Empty when it verifies.
pub fn verify(document: &Document, pinned: Option<&VerifyingKey>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let expected = receipt_name(&document.spec.tenant);
    if document.name != expected {
        problems.push(Problem::Name {
            found: document.name.clone(),
            expected,
        });
    }
    match serde_json::to_value(&document.spec) {
        Ok(ours) => {
            if let Some(path) = first_difference(&document.spec_json, &ours, "spec") {
                problems.push(Problem::UnknownContent { path });
            }
        }
        Err(e) => problems.push(Problem::NotCanonical {
            detail: e.to_string(),
        }),
    }
    match signing::signed_bytes_of_value(&document.spec_json) {
        Ok(message) => {
            if let Err(problem) =
                signing::verify_signed_bytes(&document.spec.signature, &message, pinned)
            {
                problems.push(problem);
            }
        }
        Err(e) => problems.push(Problem::NotCanonical {
            detail: e.to_string(),
        }),
    }
    problems.extend(receipt::check(&document.spec));
    problems
}

/// [`parse`], then [`verify`].
pub fn parse_and_verify(
    bytes: &[u8],
    pinned: Option<&VerifyingKey>,
) -> Result<Document, Vec<Problem>> {
    let document = parse(bytes).map_err(|p| vec![p])?;
    let problems = verify(&document, pinned);
    if problems.is_empty() {
        Ok(document)
    } else {
        Err(problems)
    }
}

/// The first path at which `theirs` (the document) and `ours` (the spec as Landlord
/// writes it) differ.
fn first_difference(theirs: &Value, ours: &Value, path: &str) -> Option<String> {
    match (theirs, ours) {
        (Value::Object(a), Value::Object(b)) => {
            let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            names
                .into_iter()
                .find_map(|name| match (a.get(name), b.get(name)) {
                    (Some(x), Some(y)) => first_difference(x, y, &format!("{path}.{name}")),
                    _ => Some(format!("{path}.{name}")),
                })
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                return Some(path.to_owned());
            }
            a.iter()
                .zip(b)
                .enumerate()
                .find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]")))
        }
        (a, b) => (a != b).then(|| path.to_owned()),
    }
}

/// A JSON value whose objects may not repeat a member name (serde_json's own `Value`
/// keeps the last one silently: a verifier and a reader could then disagree on what a
/// receipt says).
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        StrictValue::deserialize(d).map(|v| v.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let StrictValue(value) = map.next_value()?;
            if members.contains_key(&name) {
                return Err(de::Error::custom(format!(
                    "the member {name:?} appears twice"
                )));
            }
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::erasure::receipt::tests::good;
    use crate::erasure::signing::ReceiptSigner;

    fn signer() -> ReceiptSigner {
        ReceiptSigner::from_seed(&[5; 32])
    }

    fn signed_receipt() -> ErasureReceipt {
        let mut spec = good();
        signer().sign(&mut spec).expect("signed");
        receipt_resource(spec)
    }

    #[test]
    fn the_stored_copy_is_compact_deterministic_and_verifies() {
        let receipt = signed_receipt();
        let copy = stored_copy_json(&receipt);
        // Signed again (after a crash): the same bytes.
        assert_eq!(copy, stored_copy_json(&signed_receipt()));
        let text = std::str::from_utf8(&copy).expect("UTF-8");
        assert!(
            text.starts_with(
                r#"{"apiVersion":"landlord.dev/v1alpha1","kind":"ErasureReceipt","metadata":{"name":"acme-0b7e6c1a-9c51-4d0e-a0e4-5f1b6b8f2c11"},"spec":{"tenant":"#
            ),
            "{text}"
        );
        assert!(!text.ends_with('\n'));
        let document = parse_and_verify(&copy, Some(&signer().verifying_key())).expect("verifies");
        assert!(!document.is_resource);
        assert_eq!(document.spec, receipt.spec);
        // The copy is what `kubectl apply` reads back as the same receipt.
        let back: ErasureReceipt = serde_json::from_slice(&copy).expect("a resource");
        assert_eq!(back.spec, receipt.spec);
    }

    #[test]
    fn the_resource_verifies_as_json_and_as_yaml_with_server_metadata_and_status() {
        let mut receipt = signed_receipt();
        receipt.metadata.uid = Some("1234".to_owned());
        receipt.metadata.resource_version = Some("42".to_owned());
        receipt.status = Some(Default::default());
        let json = serde_json::to_vec_pretty(&receipt).expect("JSON");
        let document = parse_and_verify(&json, None).expect("JSON verifies");
        assert!(document.is_resource);
        let yaml = serde_saphyr::to_string(&receipt).expect("YAML");
        let document = parse_and_verify(yaml.as_bytes(), None).expect("YAML verifies");
        assert_eq!(document.spec, receipt.spec);
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth() {
        let copy = String::from_utf8(stored_copy_json(&signed_receipt())).expect("UTF-8");
        let twice = copy.replacen(
            r#""keyProvider":"kubernetes""#,
            r#""keyProvider":"kubernetes","keyProvider":"kubernetes""#,
            1,
        );
        assert_ne!(twice, copy);
        let problem = parse(twice.as_bytes()).expect_err("duplicate");
        assert!(problem.to_string().contains("appears twice"), "{problem}");
        let yaml =
            "apiVersion: landlord.dev/v1alpha1\nkind: ErasureReceipt\nkind: ErasureReceipt\n";
        assert!(parse(yaml.as_bytes()).is_err());
    }

    #[test]
    fn what_is_not_a_receipt_is_refused() {
        let copy = String::from_utf8(stored_copy_json(&signed_receipt())).expect("UTF-8");
        for (from, to) in [
            ("landlord.dev/v1alpha1", "landlord.dev/v1"),
            (r#""kind":"ErasureReceipt""#, r#""kind":"Tenant""#),
            (r#""metadata":{"name""#, r#""metadata":{"nome""#),
            (r#""spec":{"#, r#""spek":{"#),
        ] {
            let changed = copy.replacen(from, to, 1);
            assert!(
                matches!(parse(changed.as_bytes()), Err(Problem::NotAReceipt { .. })),
                "{from} -> {to}"
            );
        }
        assert!(parse(b"[]").is_err());
        assert!(parse(b"\xff").is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn a_renamed_receipt_or_an_unknown_field_is_a_problem() {
        let copy = String::from_utf8(stored_copy_json(&signed_receipt())).expect("UTF-8");
        let renamed = copy.replacen(r#""name":"acme-"#, r#""name":"globex-"#, 1);
        let problems = parse_and_verify(renamed.as_bytes(), None).expect_err("renamed");
        assert!(
            matches!(problems.as_slice(), [Problem::Name { .. }]),
            "{problems:?}"
        );
        let extended = copy.replacen(r#""keyProvider":"#, r#""extra":1,"keyProvider":"#, 1);
        let problems = parse_and_verify(extended.as_bytes(), None).expect_err("extended");
        assert!(
            matches!(problems.as_slice(), [Problem::UnknownContent { path }, Problem::SignatureInvalid { .. }] if path == "spec.extra"),
            "{problems:?}"
        );
    }
}
