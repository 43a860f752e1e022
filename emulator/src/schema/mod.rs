//! Validation of custom resources against their CRD, as the Kubernetes API server does it:
//! pruning of unknown fields, defaulting, OpenAPI value validation, `metadata.name` rules,
//! `x-kubernetes-list-type` uniqueness and `x-kubernetes-validations` CEL rules, with the API
//! server's error wording.
//!
//! Pure: no I/O. A [`CrdValidator`] is compiled once per served version of a CRD.
//!
//! Documented behaviour followed here:
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/>
//! (structural schemas, pruning, defaulting, validation, validation rules and ratcheting).

mod cel;
mod defaults;
mod format;
mod path;
mod prune;
mod status;
mod structural;
mod types;
mod validate;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use status::invalid_status;
pub use types::{FieldError, FieldErrorKind};

use structural::Schema;

/// One served version of one CRD, compiled once when the CRD is created or updated.
#[derive(Debug)]
pub struct CrdValidator {
    schema: Schema,
    group: String,
    kind: String,
    status_subresource: bool,
    scale_subresource: bool,
}

/// An object accepted by [`CrdValidator::admit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// The pruned and defaulted object, as it is stored.
    pub object: Value,
    /// The unknown fields that were pruned, as the API server reports them for
    /// `fieldValidation=Strict|Warn`: `unknown field "spec.foo"`.
    pub unknown_fields: Vec<String>,
}

impl CrdValidator {
    /// Compiles the schema of `version` of `crd` (a whole `apiextensions.k8s.io/v1`
    /// CustomResourceDefinition as JSON).
    ///
    /// Fails when the version is missing or not served, when it has no `openAPIV3Schema`, or
    /// when the schema is not structural or has a rule that does not compile; the message
    /// names the schema path, e.g.
    /// `spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: ...`.
    pub fn new(crd: &Value, version: &str) -> Result<Self, String> {
        let spec = crd
            .get("spec")
            .ok_or_else(|| "spec: Required value".to_owned())?;
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or_else(|| "spec.versions: Required value".to_owned())?;
        let (index, entry) = versions
            .iter()
            .enumerate()
            .find(|(_, v)| v.get("name").and_then(Value::as_str) == Some(version))
            .ok_or_else(|| {
                format!("version {version:?} is not defined in the CustomResourceDefinition")
            })?;
        if entry.get("served").and_then(Value::as_bool) != Some(true) {
            return Err(format!("version {version:?} is not served"));
        }
        if spec.get("preserveUnknownFields").and_then(Value::as_bool) == Some(true) {
            return Err(
                "spec.preserveUnknownFields: Invalid value: true: must be false in order to use defaults in the schema"
                    .to_owned(),
            );
        }
        let schema_path = format!("spec.versions[{index}].schema.openAPIV3Schema");
        let schema_json = entry
            .pointer("/schema/openAPIV3Schema")
            .ok_or_else(|| format!("{schema_path}: Required value: schemas are required"))?;
        let schema = Schema::compile(schema_json, &schema_path)?;
        let subresources = entry.get("subresources");
        let text = |pointer: &str| {
            spec.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(Self {
            schema,
            group: text("/group"),
            kind: text("/names/kind"),
            status_subresource: subresources.and_then(|s| s.get("status")).is_some(),
            scale_subresource: subresources.and_then(|s| s.get("scale")).is_some(),
        })
    }

    /// Removes the fields the schema does not know, and returns them as the API server
    /// reports them for `fieldValidation=Strict|Warn`: `unknown field "spec.foo"`.
    ///
    /// `apiVersion`, `kind` and `metadata` (reduced to the fields of `ObjectMeta`) are kept
    /// at the root and in embedded resources; `x-kubernetes-preserve-unknown-fields` keeps
    /// unknown fields; `null`s of non-nullable fields without a default are dropped.
    pub fn prune(&self, obj: &mut Value) -> Vec<String> {
        prune::prune_root(&self.schema, obj)
            .into_iter()
            .map(|p| format!("unknown field {}", types::go_quote(&p)))
            .collect()
    }

    /// Applies the schema's `default`s (to absent fields, and to `null`s of non-nullable
    /// fields), recursively, including inside applied defaults and new array items.
    pub fn apply_defaults(&self, obj: &mut Value) {
        defaults::apply(&self.schema, obj);
    }

    /// Validates `obj` (already pruned and defaulted): `metadata.name`, the OpenAPI schema,
    /// embedded resources, list-type uniqueness and, when none of those found a blocking
    /// error, the CEL rules. `old` is the stored object on update: transition rules see it
    /// as `oldSelf`, and unchanged values are not refused again (ratcheting).
    pub fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errors = Vec::new();
        validate::object_meta(obj, &mut errors);
        validate::openapi(&self.schema, obj, old, "", &mut errors);
        validate::embedded(&self.schema, obj, "", &mut errors);
        validate::list_types(&self.schema, obj, "", &mut errors);
        if errors.iter().any(validate::is_blocking) {
            errors.push(FieldError::invalid(
                types::NIL_FIELD,
                &Value::Null,
                "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
            ));
        } else {
            cel::validate(&self.schema, obj, old, "", &mut errors);
        }
        errors
    }

    /// Prune, default, validate: the stored form of `obj`, or the errors to refuse it with.
    pub fn admit(&self, mut obj: Value, old: Option<&Value>) -> Result<Admitted, Vec<FieldError>> {
        let unknown_fields = self.prune(&mut obj);
        self.apply_defaults(&mut obj);
        let errors = self.validate(&obj, old);
        if errors.is_empty() {
            Ok(Admitted {
                object: obj,
                unknown_fields,
            })
        } else {
            Err(errors)
        }
    }

    /// Whether this version has the `status` subresource.
    pub fn status_subresource(&self) -> bool {
        self.status_subresource
    }

    /// Whether this version has the `scale` subresource.
    pub fn scale_subresource(&self) -> bool {
        self.scale_subresource
    }

    /// The CRD's API group (`spec.group`), for [`invalid_status`].
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The CRD's kind (`spec.names.kind`), for [`invalid_status`].
    pub fn kind(&self) -> &str {
        &self.kind
    }
}
