//! Admission of custom resources: the one place where writes to CRD-served resources meet
//! their CRD's structural schema (pruning, defaulting, validation, CEL rules).

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::schema::{CrdValidator, invalid_status};

/// Prunes, defaults and validates a custom resource about to be stored (`old` on update).
/// Returns the unknown fields that were pruned (`unknown field "spec.foo"`), or the 422.
pub fn admit_custom_resource(
    validator: &CrdValidator,
    name: &str,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<Vec<String>> {
    match validator.admit(obj.clone(), old) {
        Ok(admitted) => {
            *obj = admitted.object;
            Ok(admitted.unknown_fields)
        }
        Err(errors) => Err(ApiError::from_status(&invalid_status(
            validator.kind(),
            validator.group(),
            name,
            &errors,
        ))),
    }
}
