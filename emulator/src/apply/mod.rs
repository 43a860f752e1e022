//! Server-side apply and `metadata.managedFields`, after
//! <https://kubernetes.io/docs/reference/using-api/server-side-apply/> and the apiserver's
//! field manager (`k8s.io/apimachinery/pkg/util/managedfields`, structured-merge-diff).
//!
//! - [`FieldManager::apply`]: merges an applied configuration into the live object,
//!   records the manager's `Apply` entry, refuses (409) changes to fields other managers
//!   own unless forced, and removes fields the manager stopped applying that nobody else
//!   owns.
//! - [`FieldManager::update`]: ownership for every other write (create, update, patch):
//!   the writer's `Update` entry gains the fields it changed, the others lose them.
//!
//! Not emulated: the cap of 10 `Update` managers (merged into "ancient-changes" by the
//! apiserver), the `kubectl.kubernetes.io/last-applied-configuration` upgrade path, and
//! conversion of managed fields between API versions.
//! Pure functions: no I/O.

pub mod fieldset;
mod managed;
pub mod schema;
mod typed;

use crate::patch::failure_status;
use fieldset::{FieldSet, path_string};
use managed::{APPLY, Entry, UPDATE};
pub use schema::Schema;
use serde_json::{Value, json};
use std::sync::LazyLock;

/// Who writes, through which endpoint, and when.
#[derive(Clone, Copy, Debug)]
pub struct Writer<'a> {
    /// The field manager: `fieldManager`, or [`manager_or_user_agent`].
    pub manager: &'a str,
    /// `Some("status")` for writes through `/status`.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time of the write, recorded in the manager's entry.
    pub time: &'a str,
}

/// Field ownership for one kind.
#[derive(Clone, Copy, Debug)]
pub struct FieldManager<'a> {
    schema: Schema<'a>,
    status_subresource: bool,
}

/// One field another manager owns, refused to an apply without `force`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The manager as the apiserver prints it: `"kubectl-client-side-apply" using v1`.
    pub manager: String,
    /// The field path: `.spec.replicas`.
    pub field: String,
}

/// Why an apply was refused, mapped to the `Status` the apiserver returns.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    /// 409: fields owned by other managers would change.
    #[error("{message}")]
    Conflict {
        message: String,
        conflicts: Vec<Conflict>,
    },
    /// 400: the configuration cannot be applied (undecodable, managedFields set, wrong
    /// apiVersion, invalid associative lists).
    #[error("{0}")]
    BadRequest(String),
    /// 422: apply requires `fieldManager`.
    #[error(
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    )]
    FieldManagerRequired,
    /// 500: the stored managedFields cannot be decoded.
    #[error("{0}")]
    Internal(String),
}

impl ApplyError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApplyError::Conflict { .. } => 409,
            ApplyError::BadRequest(_) => 400,
            ApplyError::FieldManagerRequired => 422,
            ApplyError::Internal(_) => 500,
        }
    }

    /// The `Status` object the apiserver answers with.
    pub fn to_status(&self) -> Value {
        let message = self.to_string();
        match self {
            ApplyError::Conflict { conflicts, .. } => {
                let causes: Vec<Value> = conflicts
                    .iter()
                    .map(|c| {
                        json!({
                            "reason": "FieldManagerConflict",
                            "message": format!("conflict with {}", c.manager),
                            "field": c.field,
                        })
                    })
                    .collect();
                failure_status(409, "Conflict", &message, Some(json!({ "causes": causes })))
            }
            ApplyError::BadRequest(_) => failure_status(400, "BadRequest", &message, None),
            ApplyError::FieldManagerRequired => failure_status(
                422,
                "Invalid",
                &message,
                Some(json!({
                    "group": "meta.k8s.io",
                    "kind": "PatchOptions",
                    "causes": [{
                        "reason": "FieldValueRequired",
                        "message": "Required value: is required for apply patch",
                        "field": "fieldManager",
                    }]
                })),
            ),
            ApplyError::Internal(_) => failure_status(500, "", &message, None),
        }
    }
}

/// Decodes the body of an `application/apply-patch+yaml` request (YAML or JSON).
pub fn decode_apply_body(body: &[u8]) -> Result<Value, ApplyError> {
    serde_saphyr::from_slice::<Value>(body)
        .map_err(|e| ApplyError::BadRequest(format!("error decoding YAML: {e}")))
}

/// The manager of a non-apply write: `fieldManager` when given, otherwise the
/// User-Agent up to its first `/` (`kubectl/v1.33.0 (linux/amd64)` → `kubectl`),
/// without unprintable characters, at most 128 bytes (`managerOrUserAgent`).
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: &str) -> String {
    if let Some(manager) = field_manager.filter(|m| !m.is_empty()) {
        return manager.to_string();
    }
    let prefix = user_agent.split('/').next().unwrap_or_default();
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > 128 {
            break;
        }
        out.push(c);
    }
    out
}

/// Server-side apply of `config` for the manager, with the schema of the kind named by
/// the configuration's apiVersion/kind (a built-in kind; custom resources get the
/// untyped schema: use [`FieldManager::new`] with the CRD schema for them).
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    subresource: Option<&str>,
    now: &str,
) -> Result<Value, ApplyError> {
    let writer = Writer {
        manager,
        subresource,
        time: now,
    };
    FieldManager::for_object(config).apply(live, config, &writer, force)
}

/// Ownership after a create, update or patch: `new` with its `managedFields` updated.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) -> Value {
    let writer = Writer {
        manager,
        subresource,
        time: now,
    };
    FieldManager::for_object(new).update(old, new, &writer)
}

/// Fields the apiserver never records in managedFields (`stripMetaManager`).
static STRIPPED_FIELDS: LazyLock<FieldSet> = LazyLock::new(stripped_fields);

fn stripped_fields() -> FieldSet {
    let mut set = FieldSet::default();
    for path in [
        &["apiVersion"][..],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ] {
        let path: Vec<String> = path.iter().map(|p| fieldset::field_element(p)).collect();
        set.insert(&path);
    }
    set
}

fn conflict_error(mut owners: Vec<(&Entry, FieldSet)>) -> ApplyError {
    owners.sort_by(|a, b| {
        (
            &a.0.manager,
            &a.0.operation,
            &a.0.api_version,
            &a.0.subresource,
        )
            .cmp(&(
                &b.0.manager,
                &b.0.operation,
                &b.0.api_version,
                &b.0.subresource,
            ))
    });
    let mut conflicts = Vec::new();
    let mut lines = Vec::new();
    for (entry, fields) in &owners {
        let manager = entry.display();
        lines.push(format!("conflicts with {manager}:"));
        for path in fields.paths() {
            let field = path_string(&path);
            lines.push(format!("- {field}"));
            conflicts.push(Conflict {
                manager: manager.clone(),
                field,
            });
        }
    }
    let message = match conflicts.as_slice() {
        [only] => format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.field
        ),
        all => format!(
            "Apply failed with {} conflicts: {}",
            all.len(),
            lines.join("\n")
        ),
    };
    ApplyError::Conflict { message, conflicts }
}

impl<'a> FieldManager<'a> {
    /// A field manager for a kind: its schema, and whether it has a `/status`
    /// subresource (then the main endpoint ignores `status` and `/status` ignores `spec`).
    pub fn new(schema: Schema<'a>, status_subresource: bool) -> FieldManager<'a> {
        FieldManager {
            schema,
            status_subresource,
        }
    }

    /// The field manager of a built-in kind, from the object's apiVersion and kind;
    /// untyped for other kinds.
    pub fn for_object(object: &Value) -> FieldManager<'static> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match Schema::builtin(group, kind) {
            Some(schema) => FieldManager::new(schema, Schema::builtin_has_status(group, kind)),
            None => FieldManager::new(Schema::Deduced, false),
        }
    }

    /// Top-level fields a write through this endpoint does not change
    /// (`GetResetFields` of the registry strategies).
    fn reset_fields(&self, subresource: Option<&str>) -> &'static [&'static str] {
        match subresource {
            Some("status") => &["spec"],
            None if self.status_subresource => &["status"],
            _ => &[],
        }
    }

    fn reset_set(&self, subresource: Option<&str>) -> FieldSet {
        let mut set = FieldSet::default();
        for field in self.reset_fields(subresource) {
            set.insert_member(fieldset::field_element(field));
        }
        set
    }

    /// Fields changed (added or modified) and removed between two objects, outside the
    /// fields this endpoint does not write.
    fn changes(&self, old: &Value, new: &Value, subresource: Option<&str>) -> (FieldSet, FieldSet) {
        let ignored = self.reset_set(subresource);
        let comparison = typed::compare(old, new, self.schema);
        let changed = comparison
            .modified
            .union(&comparison.added)
            .recursive_difference(&ignored);
        let removed = comparison.removed.recursive_difference(&ignored);
        (changed, removed)
    }

    /// Server-side apply: `live` (absent to create) with `config` applied.
    pub fn apply(
        &self,
        live: Option<&Value>,
        config: &Value,
        writer: &Writer<'_>,
        force: bool,
    ) -> Result<Value, ApplyError> {
        if writer.manager.is_empty() {
            return Err(ApplyError::FieldManagerRequired);
        }
        let Value::Object(config_fields) = config else {
            return Err(ApplyError::BadRequest(
                "error decoding YAML: the applied configuration is not an object".into(),
            ));
        };
        if config
            .pointer("/metadata/managedFields")
            .is_some_and(|m| !m.is_null())
        {
            return Err(ApplyError::BadRequest(
                "metadata.managedFields must be nil".into(),
            ));
        }
        let text = |v: &Value, field: &str| -> String {
            v.get(field)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let api_version = text(config, "apiVersion");
        if let Some(live) = live {
            let expected = text(live, "apiVersion");
            if !expected.is_empty() && expected != api_version {
                return Err(ApplyError::BadRequest(format!(
                    "Incorrect version specified in apply patch. Specified patch version: {api_version}, expected: {expected}"
                )));
            }
        }
        let mut config_fields = config_fields.clone();
        for field in self.reset_fields(writer.subresource) {
            config_fields.remove(*field);
        }
        let config = Value::Object(config_fields);

        let mut entries = match live {
            Some(live) => managed::decode(live).map_err(|e| {
                ApplyError::Internal(format!("failed to decode managed fields: {e}"))
            })?,
            None => Vec::new(),
        };
        let live_object = live.map_or_else(|| json!({}), managed::without_managed_fields);
        let applied = typed::to_field_set(&config, self.schema, true).map_err(|e| {
            let version = if api_version.contains('/') {
                api_version.clone()
            } else {
                format!("/{api_version}")
            };
            ApplyError::BadRequest(format!(
                "failed to create typed patch object ({version}, Kind={}): {e}",
                text(&config, "kind")
            ))
        })?;
        let merged = typed::merge(Some(&live_object), &config, self.schema);

        let mut me = Entry {
            manager: writer.manager.to_string(),
            operation: APPLY.to_string(),
            api_version,
            subresource: writer.subresource.unwrap_or_default().to_string(),
            time: None,
            fields: applied,
        };
        let mut last = FieldSet::default();
        if let Some(i) = entries.iter().position(|e| e.same_manager(&me)) {
            let previous = entries.remove(i);
            last = previous.fields;
            me.time = previous.time;
        }
        entries.push(me.clone());
        let object = self.prune(&merged, &entries, &last);

        let (changed, removed) = self.changes(&live_object, &object, writer.subresource);
        let owners: Vec<(&Entry, FieldSet)> = entries
            .iter()
            .filter(|e| !e.same_manager(&me))
            .map(|e| (e, e.fields.intersection(&changed)))
            .filter(|(_, fields)| !fields.is_empty())
            .collect();
        if !force && !owners.is_empty() {
            return Err(conflict_error(owners));
        }
        transfer(&mut entries, Some(&me), &changed, &removed);
        let strip = &*STRIPPED_FIELDS;
        for entry in entries.iter_mut().filter(|e| e.same_manager(&me)) {
            entry.fields = entry.fields.difference(strip);
            if object != live_object {
                entry.time = Some(writer.time.to_string());
            }
        }
        let mut object = object;
        managed::encode(&mut object, &entries);
        Ok(object)
    }

    /// Removes what the manager applied last time and no longer applies, unless a
    /// manager (including this one's new configuration) owns it: structured-merge-diff's
    /// `prune`, `addBackOwnedItems` and `addBackDanglingItems`.
    fn prune(&self, merged: &Value, entries: &[Entry], last: &FieldSet) -> Value {
        if last.is_empty() {
            return merged.clone();
        }
        let schema = self.schema;
        let named = |set: &FieldSet| typed::ensure_named_fields_are_members(set, schema);
        let set_of = |value: &Value| named(&typed::field_set_of(value, schema));
        let last = named(last);
        let owned = named(
            &entries
                .iter()
                .fold(FieldSet::default(), |all, e| all.union(&e.fields)),
        );
        let merged_set = set_of(merged);
        let pruned = typed::remove_items(merged, &last, schema);
        let unowned = merged_set.difference(&set_of(&pruned).union(&owned));
        let pruned = typed::remove_items(merged, &unowned, schema);
        let mut removed = merged_set.difference(&set_of(&pruned)).intersection(&last);
        // The object's metadata always stays, whatever the configurations held.
        removed.remove_member(&fieldset::field_element("metadata"));
        typed::remove_items(merged, &removed, schema)
    }

    /// Ownership after a non-apply write of `new` over `old` (absent on create).
    ///
    /// The base is the `managedFields` the client sent when it sent any (a list of one
    /// empty entry clears them), otherwise the stored ones; writes through a subresource
    /// always start from the stored ones.
    pub fn update(&self, old: Option<&Value>, new: &Value, writer: &Writer<'_>) -> Value {
        let stored = || {
            old.and_then(|o| managed::decode(o).ok())
                .unwrap_or_default()
        };
        let mut entries = if writer.subresource.is_some() {
            stored()
        } else if managed::is_reset(new) {
            Vec::new()
        } else {
            match managed::decode(new) {
                Ok(sent) if !sent.is_empty() => sent,
                _ => stored(),
            }
        };
        let old_object = old.map_or_else(|| json!({}), managed::without_managed_fields);
        let mut new_object = managed::without_managed_fields(new);
        let (changed, removed) = self.changes(&old_object, &new_object, writer.subresource);
        transfer(&mut entries, None, &changed, &removed);

        let me = Entry {
            manager: writer.manager.to_string(),
            operation: UPDATE.to_string(),
            api_version: new
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            subresource: writer.subresource.unwrap_or_default().to_string(),
            time: Some(writer.time.to_string()),
            fields: changed.difference(&STRIPPED_FIELDS),
        };
        if !me.fields.is_empty() {
            match entries.iter_mut().find(|e| e.same_manager(&me)) {
                Some(entry) => {
                    entry.fields = entry.fields.union(&me.fields);
                    entry.time = me.time;
                }
                None => entries.push(me),
            }
        }
        managed::encode(&mut new_object, &entries);
        new_object
    }
}

/// Managers other than `except` lose the fields that changed or disappeared; managers
/// left with nothing are dropped.
fn transfer(
    entries: &mut Vec<Entry>,
    except: Option<&Entry>,
    changed: &FieldSet,
    removed: &FieldSet,
) {
    for entry in entries.iter_mut() {
        if except.is_some_and(|e| e.same_manager(entry)) {
            continue;
        }
        entry.fields = entry.fields.difference(changed).difference(removed);
    }
    entries.retain(|e| !e.fields.is_empty());
}

#[cfg(test)]
mod tests;
