//! `metadata.managedFields`: decoding, encoding and the identity of a field manager, as
//! in `k8s.io/apimachinery/pkg/util/managedfields/internal`.

use super::fieldset::FieldSet;
use serde_json::{Map, Value, json};

pub(crate) const APPLY: &str = "Apply";
pub(crate) const UPDATE: &str = "Update";

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub subresource: String,
    pub time: Option<String>,
    pub fields: FieldSet,
}

impl Entry {
    /// Whether two entries are the same manager (`BuildManagerIdentifier`: appliers are
    /// identified without their apiVersion, updaters with it).
    pub fn same_manager(&self, other: &Entry) -> bool {
        self.manager == other.manager
            && self.operation == other.operation
            && self.subresource == other.subresource
            && (self.operation == APPLY || self.api_version == other.api_version)
    }

    /// How conflict messages name the manager (`printManager`).
    pub fn display(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == UPDATE {
            out.push_str(&format!(" using {}", self.api_version));
        }
        out
    }

    fn sort_key(&self) -> (&str, &str, &str, &str, &str) {
        (
            &self.operation,
            self.time.as_deref().unwrap_or(""),
            &self.manager,
            &self.api_version,
            &self.subresource,
        )
    }

    fn encode(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(time) = &self.time {
            entry["time"] = json!(time);
        }
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }

    fn decode(index: usize, entry: &Value) -> Result<Entry, String> {
        let text = |name: &str| entry.get(name).and_then(Value::as_str).unwrap_or_default();
        let operation = text("operation");
        if operation != APPLY && operation != UPDATE {
            return Err("operation must be `Apply` or `Update`".into());
        }
        if text("apiVersion").is_empty() {
            return Err("apiVersion must not be empty".into());
        }
        match text("fieldsType") {
            "FieldsV1" => {}
            "" => {
                return Err(format!(
                    "missing fieldsType in managed fields entry {index}"
                ));
            }
            other => {
                return Err(format!(
                    "invalid fieldsType {other:?} in managed fields entry {index}"
                ));
            }
        }
        let fields = match entry.get("fieldsV1") {
            Some(fields) => FieldSet::from_fields_v1(fields)?,
            None => FieldSet::default(),
        };
        Ok(Entry {
            manager: text("manager").to_string(),
            operation: operation.to_string(),
            api_version: text("apiVersion").to_string(),
            subresource: text("subresource").to_string(),
            time: entry
                .get("time")
                .and_then(Value::as_str)
                .map(str::to_string),
            fields,
        })
    }
}

/// The entries of an object's `metadata.managedFields` (none when absent).
pub(crate) fn decode(object: &Value) -> Result<Vec<Entry>, String> {
    match object.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(entries)) => entries
            .iter()
            .enumerate()
            .map(|(i, e)| Entry::decode(i, e))
            .collect(),
        Some(other) => Err(format!("managedFields must be a list, got {other}")),
    }
}

/// The client asks to clear `managedFields` with a list holding one empty entry
/// (<https://kubernetes.io/docs/reference/using-api/server-side-apply/#clearing-managedfields>).
pub(crate) fn is_reset(object: &Value) -> bool {
    matches!(
        object.pointer("/metadata/managedFields"),
        Some(Value::Array(entries)) if entries.len() == 1 && entries[0] == json!({})
    )
}

/// The object without `metadata.managedFields`.
pub(crate) fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(Value::Object(metadata)) = object.get_mut("metadata") {
        metadata.remove("managedFields");
    }
    object
}

/// Stores the entries in `metadata.managedFields`, in the apiserver's order (Apply
/// before Update, then by time, manager, apiVersion, subresource); no entries removes
/// the field.
pub(crate) fn encode(object: &mut Value, entries: &[Entry]) {
    let mut entries: Vec<&Entry> = entries.iter().filter(|e| !e.fields.is_empty()).collect();
    entries.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    let Value::Object(root) = object else {
        return;
    };
    let metadata = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(metadata) = metadata {
        if entries.is_empty() {
            metadata.remove("managedFields");
        } else {
            metadata.insert(
                "managedFields".into(),
                Value::Array(entries.iter().map(|e| e.encode()).collect()),
            );
        }
    }
}
