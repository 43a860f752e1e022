//! The compiled form of a CRD version's `openAPIV3Schema`, and the structural-schema checks
//! the API server applies when a CRD is created.
//!
//! See <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::cel::CelRule;

/// `additionalProperties` of an object schema.
#[derive(Debug)]
pub(crate) enum Additional {
    /// Absent (or `false`, which a structural schema may not use): unknown keys are pruned.
    None,
    /// `additionalProperties: true`: any key, values without a schema.
    Any,
    /// `additionalProperties: {...}`: every key not in `properties` has this schema.
    Schema(Box<Schema>),
}

/// `x-kubernetes-list-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map,
}

/// One node of a structural schema (or of a value-validation branch: `allOf`, `anyOf`,
/// `oneOf`, `not`, which carry no type).
#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) type_: Option<String>,
    pub(crate) nullable: bool,
    pub(crate) format: Option<String>,
    pub(crate) int_or_string: bool,
    pub(crate) preserve_unknown_fields: bool,
    pub(crate) embedded_resource: bool,
    pub(crate) properties: BTreeMap<String, Schema>,
    pub(crate) additional: Additional,
    pub(crate) items: Option<Box<Schema>>,
    pub(crate) required: Vec<String>,
    pub(crate) enum_: Option<Vec<Value>>,
    pub(crate) pattern: Option<(String, Regex)>,
    pub(crate) minimum: Option<f64>,
    pub(crate) maximum: Option<f64>,
    pub(crate) exclusive_minimum: bool,
    pub(crate) exclusive_maximum: bool,
    pub(crate) multiple_of: Option<f64>,
    pub(crate) min_length: Option<u64>,
    pub(crate) max_length: Option<u64>,
    pub(crate) min_items: Option<u64>,
    pub(crate) max_items: Option<u64>,
    pub(crate) min_properties: Option<u64>,
    pub(crate) max_properties: Option<u64>,
    pub(crate) all_of: Vec<Schema>,
    pub(crate) any_of: Vec<Schema>,
    pub(crate) one_of: Vec<Schema>,
    pub(crate) not: Option<Box<Schema>>,
    pub(crate) default: Option<Value>,
    pub(crate) list_type: ListType,
    pub(crate) list_map_keys: Vec<String>,
    pub(crate) cel_rules: Vec<CelRule>,
}

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

/// Keywords a value-validation branch (`allOf`...) may not carry in a structural schema.
/// (`x-kubernetes-validations` is refused there too: this emulator evaluates CEL rules on the
/// structural part only.)
const FORBIDDEN_IN_BRANCHES: [&str; 8] = [
    "type",
    "default",
    "nullable",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
];

/// Where a schema node sits, for the CRD validation messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Root,
    Field,
    Branch,
}

impl Schema {
    /// Compiles `json` (an `openAPIV3Schema`), checking it is structural. `path` is where the
    /// schema sits in the CRD, e.g. `spec.versions[0].schema.openAPIV3Schema`.
    pub(crate) fn compile(json: &Value, path: &str) -> Result<Self, String> {
        let root = compile_node(json, path, Position::Root)?;
        if root.type_.as_deref() != Some("object") {
            return Err(format!(
                "{path}.type: Invalid value: {}: must be object at the root",
                super::types::go_value(&json.get("type").cloned().unwrap_or(Value::Null))
            ));
        }
        if let Some(metadata) = json.pointer("/properties/metadata") {
            check_metadata(metadata, &format!("{path}.properties[metadata]"))?;
        }
        Ok(root)
    }

    /// The `type`, or `""` when the node has none (int-or-string, preserve-unknown-fields).
    pub(crate) fn type_name(&self) -> &str {
        self.type_.as_deref().unwrap_or("")
    }

    /// The schema of `key` inside an object of this schema, if any.
    pub(crate) fn child(&self, key: &str) -> Option<&Schema> {
        match (self.properties.get(key), &self.additional) {
            (Some(s), _) => Some(s),
            (None, Additional::Schema(s)) => Some(s),
            _ => None,
        }
    }
}

fn compile_node(json: &Value, path: &str, position: Position) -> Result<Schema, String> {
    let obj = json
        .as_object()
        .ok_or_else(|| format!("{path}: Invalid value: {json}: must be a schema object"))?;
    for (key, value) in obj {
        if key == "$ref" {
            return Err(format!("{path}.$ref: Forbidden: $ref is not supported"));
        }
        if position == Position::Branch
            && FORBIDDEN_IN_BRANCHES.contains(&key.as_str())
            && value != &Value::Bool(false)
        {
            return Err(format!(
                "{path}.{key}: Forbidden: must be empty to be structural"
            ));
        }
    }
    let flag = |key: &str| obj.get(key).and_then(Value::as_bool).unwrap_or(false);
    let uint = |key: &str| -> Result<Option<u64>, String> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                format!("{path}.{key}: Invalid value: {v}: must be a non-negative integer")
            }),
        }
    };
    let float = |key: &str| -> Result<Option<f64>, String> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("{path}.{key}: Invalid value: {v}: must be a number")),
        }
    };

    let int_or_string = flag("x-kubernetes-int-or-string");
    let preserve_unknown_fields = flag("x-kubernetes-preserve-unknown-fields");
    let embedded_resource = flag("x-kubernetes-embedded-resource");
    let type_ = match obj.get("type") {
        None => None,
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => Some(t.clone()),
        Some(other) => {
            let supported: Vec<String> = TYPES.iter().map(|t| (*t).to_owned()).collect();
            return Err(super::types::FieldError::not_supported(
                &format!("{path}.type"),
                other,
                &supported,
            )
            .to_string());
        }
    };
    if position != Position::Branch && type_.is_none() && !int_or_string && !preserve_unknown_fields
    {
        return Err(format!(
            "{path}.type: Required value: must not be empty for specified object fields"
        ));
    }
    if embedded_resource && type_.as_deref() != Some("object") {
        return Err(format!(
            "{path}.type: Required value: must be object if x-kubernetes-embedded-resource is true"
        ));
    }
    if int_or_string && type_.is_some() {
        return Err(format!(
            "{path}.type: Invalid value: {}: must be empty if x-kubernetes-int-or-string is true",
            super::types::go_quote(type_.as_deref().unwrap_or_default())
        ));
    }

    let mut properties = BTreeMap::new();
    if let Some(props) = obj.get("properties") {
        let props = props
            .as_object()
            .ok_or_else(|| format!("{path}.properties: Invalid value: must be an object"))?;
        for (name, prop) in props {
            let child_position = if position == Position::Branch {
                Position::Branch
            } else {
                Position::Field
            };
            properties.insert(
                name.clone(),
                compile_node(prop, &format!("{path}.properties[{name}]"), child_position)?,
            );
        }
    }
    let additional = match obj.get("additionalProperties") {
        None => Additional::None,
        Some(Value::Bool(true)) => Additional::Any,
        Some(Value::Bool(false)) => {
            return Err(format!(
                "{path}.additionalProperties: Forbidden: must not be false to be structural, unknown fields are pruned instead"
            ));
        }
        Some(schema) => Additional::Schema(Box::new(compile_node(
            schema,
            &format!("{path}.additionalProperties"),
            Position::Field,
        )?)),
    };
    if !properties.is_empty() && !matches!(additional, Additional::None) {
        return Err(format!(
            "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ));
    }
    let items = match obj.get("items") {
        None => None,
        Some(schema) => {
            let child_position = if position == Position::Branch {
                Position::Branch
            } else {
                Position::Field
            };
            Some(Box::new(compile_node(
                schema,
                &format!("{path}.items"),
                child_position,
            )?))
        }
    };
    if type_.as_deref() == Some("array") && items.is_none() {
        return Err(format!(
            "{path}.items: Required value: must be specified for arrays"
        ));
    }

    let pattern = match obj.get("pattern").and_then(Value::as_str) {
        None => None,
        Some(p) => Some((
            p.to_owned(),
            Regex::new(p).map_err(|e| {
                format!(
                    "{path}.pattern: Invalid value: {}: must be a valid regular expression, but isn't: {e}",
                    super::types::go_quote(p)
                )
            })?,
        )),
    };
    let branches = |key: &str| -> Result<Vec<Schema>, String> {
        match obj.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, s)| compile_node(s, &format!("{path}.{key}[{i}]"), Position::Branch))
                .collect(),
            Some(_) => Err(format!("{path}.{key}: Invalid value: must be an array")),
        }
    };
    let not = match obj.get("not") {
        None => None,
        Some(s) => Some(Box::new(compile_node(
            s,
            &format!("{path}.not"),
            Position::Branch,
        )?)),
    };

    let list_type = match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
        None | Some("atomic") => ListType::Atomic,
        Some("set") => ListType::Set,
        Some("map") => ListType::Map,
        Some(other) => {
            return Err(super::types::FieldError::not_supported(
                &format!("{path}.x-kubernetes-list-type"),
                &Value::String(other.to_owned()),
                &["atomic".to_owned(), "set".to_owned(), "map".to_owned()],
            )
            .to_string());
        }
    };
    let list_map_keys: Vec<String> = obj
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if list_type == ListType::Map {
        check_list_map_keys(&list_map_keys, items.as_deref(), path)?;
    }

    let cel_rules = super::cel::compile_rules(json, path)?;

    Ok(Schema {
        type_,
        nullable: flag("nullable"),
        format: obj.get("format").and_then(Value::as_str).map(str::to_owned),
        int_or_string,
        preserve_unknown_fields,
        embedded_resource,
        properties,
        additional,
        items,
        required: obj
            .get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        enum_: obj.get("enum").and_then(Value::as_array).cloned(),
        pattern,
        minimum: float("minimum")?,
        maximum: float("maximum")?,
        exclusive_minimum: flag("exclusiveMinimum"),
        exclusive_maximum: flag("exclusiveMaximum"),
        multiple_of: float("multipleOf")?,
        min_length: uint("minLength")?,
        max_length: uint("maxLength")?,
        min_items: uint("minItems")?,
        max_items: uint("maxItems")?,
        min_properties: uint("minProperties")?,
        max_properties: uint("maxProperties")?,
        all_of: branches("allOf")?,
        any_of: branches("anyOf")?,
        one_of: branches("oneOf")?,
        not,
        default: obj.get("default").cloned(),
        list_type,
        list_map_keys,
        cel_rules,
    })
}

fn check_list_map_keys(keys: &[String], items: Option<&Schema>, path: &str) -> Result<(), String> {
    if keys.is_empty() {
        return Err(format!(
            "{path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
        ));
    }
    let Some(items) = items.filter(|i| i.type_.as_deref() == Some("object")) else {
        return Err(format!(
            "{path}.items.type: Invalid value: must be object if parent array's x-kubernetes-list-type is map"
        ));
    };
    for key in keys {
        let Some(prop) = items.properties.get(key) else {
            return Err(format!(
                "{path}.x-kubernetes-list-map-keys: Invalid value: {}: entries must all be names of item properties",
                super::types::go_quote(key)
            ));
        };
        if !matches!(
            prop.type_.as_deref(),
            Some("string" | "integer" | "number" | "boolean")
        ) {
            return Err(format!(
                "{path}.items.properties[{key}].type: Invalid value: must be a scalar type if parent array's x-kubernetes-list-type is map"
            ));
        }
        if !items.required.contains(key) && prop.default.is_none() {
            return Err(format!(
                "{path}.items.properties[{key}]: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"
            ));
        }
    }
    Ok(())
}

/// A CRD schema may only constrain `metadata.name` and `metadata.generateName`.
fn check_metadata(metadata: &Value, path: &str) -> Result<(), String> {
    let forbidden = || {
        format!(
            "{path}: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"
        )
    };
    let obj: &Map<String, Value> = metadata.as_object().ok_or_else(forbidden)?;
    for (key, value) in obj {
        match key.as_str() {
            "type" | "description" => {}
            "properties" => {
                let props = value.as_object().ok_or_else(forbidden)?;
                if props.keys().any(|k| k != "name" && k != "generateName") {
                    return Err(forbidden());
                }
            }
            _ => return Err(forbidden()),
        }
    }
    Ok(())
}
