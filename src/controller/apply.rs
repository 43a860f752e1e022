//! The one place Landlord writes the objects it manages: server-side apply with the field
//! manager `landlord`, skipped when the cached object already holds every field Landlord
//! wants — so a resync of an unchanged Tenant makes no write requests at all.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use crate::isolation::labels::FIELD_MANAGER;

/// Whether every field `desired` sets has the same value in `live`: re-applying `desired`
/// would change nothing Landlord owns.
///
/// Objects are compared field by field (extra fields in `live`, set by the server or by
/// other managers, are fine); lists and scalars are compared whole. The comparison errs
/// towards writing: a value the server normalizes differently (a quantity `1000m` stored
/// as `1`) only costs one idempotent apply.
pub fn satisfied_by(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|live| satisfied_by(value, live))),
        _ => desired == live,
    }
}

/// What [`Applier::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The live object already matched; no request was made.
    Unchanged,
    /// The object was created or updated.
    Applied,
}

/// A write to the API failed.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {kind} {name}")]
pub struct ApplyError {
    verb: &'static str,
    kind: String,
    name: String,
    #[source]
    pub source: kube::Error,
}

impl ApplyError {
    /// A failed `verb` on the object `kind` `name`.
    pub fn new(verb: &'static str, kind: &str, name: &str, source: kube::Error) -> Self {
        ApplyError {
            verb,
            kind: kind.to_owned(),
            name: name.to_owned(),
            source,
        }
    }

    /// Stable short category, for metrics and condition reasons.
    pub fn category(&self) -> &'static str {
        super::error::api_category(&self.source)
    }
}

/// Server-side applies `desired` (forcing ownership of its fields) unless `live` already
/// satisfies it.
pub async fn apply<K>(api: &Api<K>, desired: &K, live: Option<&K>) -> Result<Outcome, ApplyError>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = desired.name_any();
    let error = |verb, source| ApplyError {
        verb,
        kind: K::kind(&()).into_owned(),
        name: name.clone(),
        source,
    };
    let want = serde_json::to_value(desired)
        .map_err(|e| error("serialize", kube::Error::SerdeError(e)))?;
    if let Some(live) = live {
        let have = serde_json::to_value(live)
            .map_err(|e| error("serialize", kube::Error::SerdeError(e)))?;
        if satisfied_by(&want, &have) {
            return Ok(Outcome::Unchanged);
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&name, &params, &Patch::Apply(&want))
        .await
        .map_err(|e| error("apply", e))?;
    Ok(Outcome::Applied)
}

/// Deletes an object; one that is already gone counts as deleted.
pub async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), ApplyError>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(ApplyError {
            verb: "delete",
            kind: K::kind(&()).into_owned(),
            name: name.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn extra_live_fields_do_not_need_a_write() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"hard": {"pods": "5"}}});
        let live = json!({
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "9", "labels": {"x": "1", "other": "y"}},
            "spec": {"hard": {"pods": "5"}},
            "status": {"used": {"pods": "1"}}
        });
        assert!(satisfied_by(&desired, &live));
    }

    #[test]
    fn a_changed_or_missing_field_needs_a_write() {
        let desired = json!({"spec": {"hard": {"pods": "5"}}});
        assert!(!satisfied_by(
            &desired,
            &json!({"spec": {"hard": {"pods": "6"}}})
        ));
        assert!(!satisfied_by(&desired, &json!({"spec": {"hard": {}}})));
        assert!(!satisfied_by(&desired, &json!({})));
    }

    #[test]
    fn lists_are_compared_whole() {
        let desired = json!({"spec": {"policyTypes": ["Ingress", "Egress"]}});
        assert!(satisfied_by(
            &desired,
            &json!({"spec": {"policyTypes": ["Ingress", "Egress"]}})
        ));
        assert!(!satisfied_by(
            &desired,
            &json!({"spec": {"policyTypes": ["Ingress"]}})
        ));
        assert!(!satisfied_by(
            &desired,
            &json!({"spec": {"policyTypes": ["Egress", "Ingress"]}})
        ));
    }
}
