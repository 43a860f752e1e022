//! CustomResourceDefinitions: validation, the resource type a CRD serves, and the status
//! (`NamesAccepted`, `Established`, `Terminating`) the API server maintains.
//!
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/>

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::cluster::{Cluster, Propagation, crds_gr};
use crate::error::{FieldCause, GroupResource};
use crate::meta;
use crate::resources::{
    ColumnSource, Origin, PrinterColumn, ResourceType, ResourceVersion, STANDARD_VERBS,
};
use crate::schema::CrdValidator;
use crate::validation;

/// The finalizer the server adds when a CRD is deleted, removed once its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

fn s<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Validation of a CRD's spec (the subset of the real rules that matters to clients).
pub fn validate(obj: &Value, old: Option<&Value>, causes: &mut Vec<FieldCause>) {
    let group = s(obj, "/spec/group");
    let plural = s(obj, "/spec/names/plural");
    let kind = s(obj, "/spec/names/kind");
    if group.is_empty() {
        causes.push(FieldCause::required("spec.group", ""));
    } else if !group.contains('.') {
        causes.push(FieldCause::invalid(
            "spec.group",
            json!(group),
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        causes.push(FieldCause::required("spec.names.plural", ""));
    } else {
        for e in validation::dns1123_label(plural) {
            causes.push(FieldCause::invalid("spec.names.plural", json!(plural), &e));
        }
    }
    if kind.is_empty() {
        causes.push(FieldCause::required("spec.names.kind", ""));
    }
    let singular = s(obj, "/spec/names/singular");
    if !singular.is_empty() {
        for e in validation::dns1123_label(singular) {
            causes.push(FieldCause::invalid(
                "spec.names.singular",
                json!(singular),
                &e,
            ));
        }
    }
    let name = meta::name(obj);
    if !plural.is_empty() && !group.is_empty() && name != format!("{plural}.{group}") {
        causes.push(FieldCause::invalid(
            "metadata.name",
            json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    let scope = s(obj, "/spec/scope");
    if scope != "Cluster" && scope != "Namespaced" {
        causes.push(FieldCause::not_supported(
            "spec.scope",
            json!(scope),
            &["Cluster", "Namespaced"],
        ));
    }
    let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        None => causes.push(FieldCause::invalid(
            "spec.versions",
            json!([]),
            "must have exactly one version marked as storage version",
        )),
        Some(vs) => {
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(FieldCause::invalid(
                    "spec.versions",
                    json!(vs.iter().map(|v| s(v, "/name")).collect::<Vec<_>>()),
                    "must have exactly one version marked as storage version",
                ));
            }
            for (i, v) in vs.iter().enumerate() {
                let vname = s(v, "/name");
                if vname.is_empty() {
                    causes.push(FieldCause::required(
                        &format!("spec.versions[{i}].name"),
                        "",
                    ));
                } else {
                    for e in validation::dns1123_label(vname) {
                        causes.push(FieldCause::invalid(
                            &format!("spec.versions[{i}].name"),
                            json!(vname),
                            &e,
                        ));
                    }
                }
                if v.pointer("/schema/openAPIV3Schema").is_none() {
                    causes.push(FieldCause::required(
                        &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                        "schemas are required",
                    ));
                }
            }
        }
    }
    if causes.is_empty() {
        for v in versions.into_iter().flatten() {
            if v.get("served").and_then(Value::as_bool) == Some(true)
                && let Err(e) = CrdValidator::new(obj, s(v, "/name"))
            {
                causes.push(FieldCause::worded(&e));
            }
        }
    }
    if let Some(old) = old {
        if s(old, "/spec/group") != group {
            causes.push(FieldCause::invalid(
                "spec.group",
                json!(group),
                "field is immutable",
            ));
        }
        if s(old, "/spec/scope") != scope {
            causes.push(FieldCause::invalid(
                "spec.scope",
                json!(scope),
                "field is immutable",
            ));
        }
    }
}

/// Kubernetes version priority: GA before beta before alpha, higher numbers first,
/// then anything else alphabetically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u64, u8, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major: u64 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, n) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((major, stage, n.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    meta::string_list(v)
}

/// The resource type a CRD serves (its served versions, best first).
pub fn resource_type(crd: &Value) -> ResourceType {
    let group = s(crd, "/spec/group").to_string();
    let plural = s(crd, "/spec/names/plural").to_string();
    let kind = s(crd, "/spec/names/kind").to_string();
    let singular = match s(crd, "/spec/names/singular") {
        "" => kind.to_lowercase(),
        x => x.to_string(),
    };
    let list_kind = match s(crd, "/spec/names/listKind") {
        "" => format!("{kind}List"),
        x => x.to_string(),
    };
    let mut versions: Vec<ResourceVersion> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("served").and_then(Value::as_bool) == Some(true))
        .map(|v| {
            let mut columns: Vec<PrinterColumn> = v
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| PrinterColumn {
                    name: s(c, "/name").to_string(),
                    type_: s(c, "/type").to_string(),
                    format: s(c, "/format").to_string(),
                    description: match s(c, "/description") {
                        "" => format!(
                            "Custom resource definition column (in JSONPath format): {}",
                            s(c, "/jsonPath")
                        ),
                        d => d.to_string(),
                    },
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    source: ColumnSource::JsonPath(s(c, "/jsonPath").to_string()),
                })
                .collect();
            if columns.is_empty() {
                columns.push(PrinterColumn::age());
            }
            ResourceVersion {
                name: s(v, "/name").to_string(),
                columns,
                schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            }
        })
        .collect();
    versions.sort_by(|a, b| compare_versions(&a.name, &b.name));
    let status_subresource = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| v.pointer("/subresources/status").is_some());
    let scale = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|v| v.pointer("/subresources/scale").is_some());
    let mut subresources = Vec::new();
    if scale {
        subresources.push("scale".to_string());
    }
    if status_subresource {
        subresources.push("status".to_string());
    }
    ResourceType {
        storage: GroupResource::new(&group, &plural),
        group,
        versions,
        plural,
        singular,
        kind,
        list_kind,
        namespaced: s(crd, "/spec/scope") == "Namespaced",
        short_names: strings(crd.pointer("/spec/names/shortNames")),
        categories: strings(crd.pointer("/spec/names/categories")),
        verbs: STANDARD_VERBS.iter().map(|v| v.to_string()).collect(),
        subresources,
        status_subresource,
        generation: true,
        returns_deleted_object: true,
        origin: Origin::Crd(meta::name(crd).to_string()),
    }
}

/// The status of a CRD that the server accepted (`conflict` names a clash, if any).
pub fn accepted_status(crd: &Value, conflict: Option<&str>) -> Value {
    let mut out = crd.clone();
    match conflict {
        None => {
            let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
            let kind = s(crd, "/spec/names/kind").to_string();
            if s(&names, "/singular").is_empty() {
                names["singular"] = json!(kind.to_lowercase());
            }
            if s(&names, "/listKind").is_empty() {
                names["listKind"] = json!(format!("{kind}List"));
            }
            meta::set_condition(
                &mut out,
                "NamesAccepted",
                "True",
                "NoConflicts",
                "no conflicts found",
            );
            meta::set_condition(
                &mut out,
                "Established",
                "True",
                "InitialNamesAccepted",
                "the initial names have been accepted",
            );
            out["status"]["acceptedNames"] = names;
        }
        Some(why) => {
            meta::set_condition(&mut out, "NamesAccepted", "False", "NameConflict", why);
            meta::set_condition(
                &mut out,
                "Established",
                "False",
                "NotAccepted",
                "not all names are accepted",
            );
            if out.pointer("/status/acceptedNames").is_none() {
                out["status"]["acceptedNames"] = json!({"plural": "", "kind": ""});
            }
        }
    }
    let storage = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .map(|v| s(v, "/name").to_string());
    let mut stored = strings(crd.pointer("/status/storedVersions"));
    if let Some(v) = storage
        && !stored.contains(&v)
    {
        stored.push(v);
    }
    out["status"]["storedVersions"] = json!(stored);
    out
}

impl Cluster {
    /// The CRD controller: serve what an accepted CRD defines, keep its status, and on
    /// deletion remove every object before letting the CRD go.
    pub(crate) fn crd_lifecycle(&mut self, name: &str) {
        let Some(crd) = self
            .store
            .get(&crds_gr(), "", name)
            .map(|o| o.as_ref().clone())
        else {
            let served: Vec<GroupResource> = self
                .registry
                .all()
                .filter(|t| t.origin == Origin::Crd(name.to_string()))
                .map(|t| t.group_resource())
                .collect();
            for gr in served {
                self.validators.retain(|(g, _), _| g != &gr);
                self.registry.remove(&gr);
            }
            return;
        };
        let rt = resource_type(&crd);
        if !meta::is_deleting(&crd) {
            let conflict = self
                .registry
                .get(&rt.group_resource())
                .filter(|t| t.origin != rt.origin)
                .map(|_| format!("\"{}\" is already in use", rt.plural));
            if conflict.is_none() {
                let gr = rt.group_resource();
                self.validators.retain(|(g, _), _| g != &gr);
                for v in &rt.versions {
                    match CrdValidator::new(&crd, &v.name) {
                        Ok(validator) => {
                            self.validators
                                .insert((gr.clone(), v.name.clone()), Arc::new(validator));
                        }
                        Err(e) => tracing::warn!(crd = name, version = v.name, error = e, "schema"),
                    }
                }
                self.registry.insert(rt);
            }
            let updated = accepted_status(&crd, conflict.as_deref());
            if updated != crd {
                self.commit_stored(&crds_gr(), updated);
            }
            return;
        }
        let mut updated = crd.clone();
        meta::set_condition(
            &mut updated,
            "Terminating",
            "True",
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        );
        let served = self
            .registry
            .get(&rt.group_resource())
            .filter(|t| t.origin == rt.origin)
            .cloned();
        if let Some(served) = served {
            let version = served.preferred_version().to_string();
            let keys: Vec<(String, String)> = self
                .store
                .list(&served.storage, None)
                .filter(|o| !meta::is_deleting(o))
                .map(|o| (meta::namespace(o).to_string(), meta::name(o).to_string()))
                .collect();
            for (ns, n) in keys {
                self.delete_object(
                    &served,
                    &version,
                    &ns,
                    &n,
                    Some(Propagation::Background),
                    false,
                );
            }
            if self.store.count(&served.storage) > 0 {
                if updated != crd {
                    self.commit_stored(&crds_gr(), updated);
                }
                return;
            }
        }
        let mut f = meta::finalizers(&updated);
        f.retain(|x| x != CLEANUP_FINALIZER);
        meta::set_finalizers(&mut updated, &f);
        meta::set_condition(
            &mut updated,
            "Terminating",
            "True",
            "InstanceDeletionCompleted",
            "removed all instances",
        );
        self.commit_stored(&crds_gr(), updated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_priority() {
        let mut v = vec!["v1alpha1", "v2", "v1beta2", "v1", "foo", "v1beta1"];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(v, vec!["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }
}
