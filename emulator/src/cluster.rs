//! The API's object semantics over the store: create, update, delete, list, with system
//! metadata, optimistic concurrency, status subresources, finalizers and the controllers
//! (garbage collection, namespace lifecycle, CRD lifecycle) that run after every write.
//!
//! Documented behaviour followed here:
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/>,
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/>,
//! <https://kubernetes.io/docs/concepts/architecture/garbage-collection/>.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use base64::Engine;
use serde_json::{Value, json};

use crate::apply::Writer;
use crate::builtin;
use crate::error::{ApiError, ApiResult, FieldCause, GroupResource};
use crate::events;
use crate::meta;
use crate::rbac::RbacSnapshot;
use crate::resources::{Registry, ResourceType};
use crate::schema::CrdValidator;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{ObjKey, Store, TooOld};
use crate::validation;

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "Background" => Ok(Self::Background),
            "Foreground" => Ok(Self::Foreground),
            "Orphan" => Ok(Self::Orphan),
            other => Err(ApiError::invalid(
                "DeleteOptions",
                "meta.k8s.io",
                "",
                &[FieldCause::not_supported(
                    "propagationPolicy",
                    json!(other),
                    &["Foreground", "Background", "Orphan", "nil"],
                )],
            )),
        }
    }
}

pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
pub const ORPHAN_FINALIZER: &str = "orphan";

/// `unknown field "spec.foo"`, as the server words it.
pub fn unknown_field(path: &str) -> String {
    format!("unknown field \"{path}\"")
}

/// `duplicate field "spec.foo"`, as the server words it.
pub fn duplicate_field(path: &str) -> String {
    format!("duplicate field \"{path}\"")
}

/// `fieldValidation`: what happens to unknown and duplicate fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    /// The server default: accept, with a warning per field.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    /// `fieldValidation` of `options_kind` (CreateOptions...): 422 for other values.
    pub fn parse(options_kind: &str, s: Option<&str>) -> ApiResult<Self> {
        match s {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(crate::options::invalid(
                options_kind,
                &[FieldCause::not_supported(
                    "fieldValidation",
                    json!(other),
                    &["", "Ignore", "Strict", "Warn"],
                )],
            )),
        }
    }

    /// Warnings to send, or the strict decoding error, for these problems
    /// (`unknown field "spec.foo"`, `duplicate field "x"`).
    pub fn check(self, kind: &str, version: &str, problems: Vec<String>) -> ApiResult<Vec<String>> {
        match self {
            Self::Ignore => Ok(Vec::new()),
            Self::Warn => Ok(problems),
            Self::Strict if problems.is_empty() => Ok(Vec::new()),
            Self::Strict => Err(ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {}",
                problems.join(", ")
            ))),
        }
    }
}

/// Options of a write request.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    /// `status` or `finalize` for writes to a subresource.
    pub subresource: Option<String>,
    pub field_validation: FieldValidation,
    /// The field manager recorded in `managedFields` for this write (an `Update` entry),
    /// or `None` when the object's `managedFields` are already final (server-side apply,
    /// writes of the server itself).
    pub field_manager: Option<String>,
}

/// A stored object and the warnings for the client.
#[derive(Debug, Clone)]
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
}

/// Options of a delete request (query parameters and `DeleteOptions` body).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub propagation: Option<Propagation>,
    pub orphan_dependents: Option<bool>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

/// The outcome of a delete: the object as last seen, and whether it is gone.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub object: Value,
    pub removed: bool,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    pub items: Vec<Value>,
    pub resource_version: String,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// Options of a list request.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// `resourceVersion` with `resourceVersionMatch=Exact`.
    pub exact_rv: Option<u64>,
    /// `resourceVersion` otherwise (NotOlderThan): the list must be at least that fresh.
    pub min_rv: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Work {
    Object(GroupResource, ObjKey),
    Namespace(String),
    Crd(String),
}

/// The whole state of the emulated API: types, objects, pending controller work.
pub struct Cluster {
    pub registry: Registry,
    pub store: Store,
    /// Compiled schemas of served CRD versions, by resource and version.
    pub(crate) validators: HashMap<(GroupResource, String), Arc<CrdValidator>>,
    /// The RBAC objects as the authorizer sees them; rebuilt after RBAC writes.
    rbac_cache: Option<Arc<RbacSnapshot>>,
    queue: VecDeque<Work>,
    queued: HashSet<Work>,
}

pub(crate) fn namespaces_gr() -> GroupResource {
    GroupResource::new("", "namespaces")
}

pub(crate) fn crds_gr() -> GroupResource {
    GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions")
}

/// An object as a client of `rt` at `version` sees it.
pub fn to_view(rt: &ResourceType, version: &str, stored: &Value) -> Value {
    if rt.group == "events.k8s.io" && rt.storage != rt.group_resource() {
        return events::to_events_v1(stored);
    }
    let mut v = stored.clone();
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(rt.api_version(version)));
        m.insert("kind".into(), json!(rt.kind));
    }
    v
}

/// An object written through `rt` in its stored form.
pub fn to_storage(rt: &ResourceType, view: Value) -> Value {
    if rt.group == "events.k8s.io" && rt.storage != rt.group_resource() {
        return events::to_core_v1(&view);
    }
    view
}

/// Everything except `metadata`, `status`, `apiVersion` and `kind`: what bumps generation.
fn spec_part(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    v
}

/// `obj` with the `managedFields` of a non-apply write by `opts.field_manager`
/// (<https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management>:
/// every write is tracked, not only apply).
fn track_fields(
    rt: &ResourceType,
    version: &str,
    old: Option<&Value>,
    obj: Value,
    opts: &WriteOptions,
) -> Value {
    let Some(manager) = &opts.field_manager else {
        return obj;
    };
    let time = meta::now_rfc3339();
    let writer = Writer {
        manager,
        subresource: opts.subresource.as_deref(),
        time: &time,
    };
    rt.field_manager(version).update(old, &obj, &writer)
}

fn without_rv(obj: &Value) -> Value {
    let mut v = obj.clone();
    meta::metadata_mut(&mut v).remove("resourceVersion");
    v
}

fn should_remove(storage: &GroupResource, obj: &Value) -> bool {
    meta::is_deleting(obj)
        && meta::finalizers(obj).is_empty()
        && (storage != &namespaces_gr()
            || meta::string_list(obj.pointer("/spec/finalizers")).is_empty())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: u64,
    ns: String,
    name: String,
}

const EXPIRED_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

impl Cluster {
    pub fn new(history_limit: usize) -> Self {
        let mut c = Self {
            registry: Registry::with_builtins(),
            store: Store::new(history_limit),
            validators: HashMap::new(),
            rbac_cache: None,
            queue: VecDeque::new(),
            queued: HashSet::new(),
        };
        c.bootstrap_namespaces();
        c.bootstrap_rbac();
        c
    }

    /// The default ClusterRoles and ClusterRoleBindings every cluster has.
    fn bootstrap_rbac(&mut self) {
        for obj in crate::rbac::bootstrap_policy() {
            let plural = match obj.get("kind").and_then(Value::as_str) {
                Some("ClusterRole") => "clusterroles",
                _ => "clusterrolebindings",
            };
            let Some(rt) = self.resolve(crate::rbac::RBAC_GROUP, "v1", plural) else {
                continue;
            };
            if let Err(e) = self.create(&rt, "v1", "", obj, &WriteOptions::default()) {
                tracing::error!(error = %e, "bootstrap RBAC policy");
            }
        }
    }

    /// The stored Roles, ClusterRoles and bindings, for the authorizer.
    pub fn rbac_snapshot(&mut self) -> Arc<RbacSnapshot> {
        if let Some(s) = &self.rbac_cache {
            return s.clone();
        }
        let mut objects = Vec::new();
        for plural in [
            "roles",
            "rolebindings",
            "clusterroles",
            "clusterrolebindings",
        ] {
            let gr = GroupResource::new(crate::rbac::RBAC_GROUP, plural);
            objects.extend(self.store.list(&gr, None).map(|o| o.as_ref().clone()));
        }
        let snapshot = Arc::new(RbacSnapshot::from_objects(&objects).unwrap_or_else(|e| {
            tracing::error!(error = %e, "RBAC objects");
            RbacSnapshot::new()
        }));
        self.rbac_cache = Some(snapshot.clone());
        snapshot
    }

    pub fn resolve(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.registry.lookup(group, version, plural).cloned()
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        self.store
            .get(&rt.storage, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group_resource(), name))
    }

    /// Checks that namespace `ns` exists and accepts new content.
    fn check_namespace(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        let Some(n) = self.store.get(&namespaces_gr(), "", ns) else {
            return Err(ApiError::not_found(&namespaces_gr(), ns));
        };
        if meta::is_deleting(n) {
            let mut e = ApiError::forbidden(
                &rt.group_resource(),
                name,
                &format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                ),
            );
            if let Some(d) = e.details.as_mut() {
                d["causes"] = json!([{
                    "reason": "NamespaceTerminating",
                    "message": format!("namespace {ns} is being terminated"),
                    "field": "metadata.namespace",
                }]);
            }
            return Err(e);
        }
        Ok(())
    }

    /// The CRD serving `rt`, if it is being deleted.
    fn crd_terminating(&self, rt: &ResourceType) -> bool {
        match &rt.origin {
            crate::resources::Origin::Crd(name) => self
                .store
                .get(&crds_gr(), "", name)
                .is_some_and(|c| meta::is_deleting(c)),
            crate::resources::Origin::Builtin => false,
        }
    }

    /// Validation of metadata and kind-specific rules; custom resources go through
    /// [`crate::admission`].
    fn validate(
        &self,
        rt: &ResourceType,
        version: &str,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> ApiResult<Vec<String>> {
        let mut causes = if rt.is_crd() {
            validation::object_meta(obj, validation::NameRule::Dns1123Subdomain, rt.namespaced)
        } else {
            builtin::validate_all(rt, obj, old)
        };
        if let Some(old) = old
            && meta::is_deleting(old)
        {
            let old_f = meta::finalizers(old);
            let added: Vec<String> = meta::finalizers(obj)
                .into_iter()
                .filter(|f| !old_f.contains(f))
                .collect();
            if !added.is_empty() {
                causes.push(FieldCause::forbidden(
                    "metadata.finalizers",
                    &format!(
                        "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        added.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        if !causes.is_empty() {
            // events.k8s.io Events are core Events inside the server: their errors name
            // the kind without a group.
            let group = if rt.group == "events.k8s.io" {
                ""
            } else {
                rt.group.as_str()
            };
            return Err(ApiError::invalid(&rt.kind, group, meta::name(obj), &causes));
        }
        if rt.is_crd() {
            let Some(validator) = self
                .validators
                .get(&(rt.group_resource(), version.to_string()))
                .cloned()
            else {
                return Err(ApiError::internal(format!(
                    "no schema for {}/{version}",
                    rt.group_resource()
                )));
            };
            let name = meta::name(obj).to_string();
            let unknown = crate::admission::admit_custom_resource(&validator, &name, obj, old)?;
            return opts.field_validation.check(&rt.kind, version, unknown);
        }
        Ok(Vec::new())
    }

    /// POST: creates an object (`ns` is "" for cluster-scoped resources).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let gr = rt.group_resource();
        {
            let m = meta::metadata_mut(&mut obj);
            place_in_namespace(m, rt.namespaced, ns)?;
            if m.get("resourceVersion")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(ApiError::internal(
                    "resourceVersion should not be set on objects to be created",
                ));
            }
            m.remove("resourceVersion");
            for k in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
            ] {
                m.remove(k);
            }
            m.insert("uid".into(), json!(meta::new_uid()));
            m.insert("creationTimestamp".into(), json!(meta::now_rfc3339()));
            if rt.generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if rt.status_subresource
            && let Some(o) = obj.as_object_mut()
        {
            o.remove("status");
        }
        if !rt.is_crd() {
            builtin::prepare_create(rt, &mut obj);
        }
        if self.crd_terminating(rt) {
            return Err(ApiError::new(
                405,
                "MethodNotAllowed",
                "create not allowed while custom resource definition is terminating",
            ));
        }
        let generate_name = meta::meta_str(&obj, "generateName").to_string();
        let explicit_name = meta::name(&obj).to_string();
        if explicit_name.is_empty() && !generate_name.is_empty() {
            let candidate = format!("{generate_name}{}", meta::name_suffix());
            meta::metadata_mut(&mut obj).insert("name".into(), json!(candidate));
        }
        if rt.namespaced {
            self.check_namespace(rt, ns, meta::name(&obj))?;
        }
        let warnings = self.validate(rt, version, &mut obj, None, opts)?;
        let mut obj = track_fields(rt, version, None, obj, opts);
        // generateName: retry with a new suffix on collision, as the real server does.
        let mut attempts = 0;
        while self.store.get(&rt.storage, ns, meta::name(&obj)).is_some() {
            attempts += 1;
            if explicit_name.is_empty() && !generate_name.is_empty() && attempts < 8 {
                let candidate = format!("{generate_name}{}", meta::name_suffix());
                meta::metadata_mut(&mut obj).insert("name".into(), json!(candidate));
            } else {
                return Err(ApiError::already_exists(&gr, meta::name(&obj)));
            }
        }
        if opts.dry_run {
            return Ok(Written {
                object: obj,
                warnings,
            });
        }
        let stored = self.store.insert(&rt.storage, to_storage(rt, obj));
        self.after_change(&rt.storage, &stored, false);
        self.run_controllers();
        Ok(Written {
            object: to_view(rt, version, &stored),
            warnings,
        })
    }

    /// PUT: replaces an object (or its `status` / `finalize` subresource).
    pub fn update(
        &mut self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        name: &str,
        mut new: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let gr = rt.group_resource();
        let old_stored = self.get(rt, ns, name)?;
        let old = to_view(rt, version, &old_stored);
        {
            let m = meta::metadata_mut(&mut new);
            match m.get("name").and_then(Value::as_str) {
                None | Some("") => {
                    m.insert("name".into(), json!(name));
                }
                Some(n) if n != name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
                Some(_) => {}
            }
            place_in_namespace(m, rt.namespaced, ns)?;
            let rv = m
                .get("resourceVersion")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !rv.is_empty() && rv != meta::resource_version(&old) {
                return Err(ApiError::modified(&gr, name));
            }
            let uid = m.get("uid").and_then(Value::as_str).unwrap_or("");
            if !uid.is_empty() && uid != meta::uid(&old) {
                return Err(ApiError::conflict(
                    &gr,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&old)
                    ),
                ));
            }
        }
        let mut result = match opts.subresource.as_deref() {
            Some("status") => {
                let mut r = old.clone();
                match new.get("status") {
                    Some(s) => r["status"] = s.clone(),
                    None => {
                        if let Some(o) = r.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
                if let Some(mf) = meta::metadata(&new).and_then(|m| m.get("managedFields")) {
                    meta::metadata_mut(&mut r).insert("managedFields".into(), mf.clone());
                }
                r
            }
            Some("finalize") => {
                let mut r = old.clone();
                let f = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
                meta::ensure_object(
                    meta::ensure_object(&mut r)
                        .entry("spec")
                        .or_insert(Value::Null),
                )
                .insert("finalizers".into(), f);
                r
            }
            Some(other) => {
                return Err(
                    ApiError::path_not_found().with_details(json!({ "subresource": other }))
                );
            }
            None => {
                let mut r = new;
                {
                    let om = meta::metadata(&old).cloned().unwrap_or_default();
                    let m = meta::metadata_mut(&mut r);
                    for k in [
                        "uid",
                        "creationTimestamp",
                        "deletionTimestamp",
                        "deletionGracePeriodSeconds",
                        "generation",
                    ] {
                        match om.get(k) {
                            Some(v) => m.insert(k.to_string(), v.clone()),
                            None => m.remove(k),
                        };
                    }
                    m.remove("selfLink");
                }
                if rt.status_subresource {
                    match old.get("status") {
                        Some(s) => r["status"] = s.clone(),
                        None => {
                            if let Some(o) = r.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                }
                if !rt.is_crd() {
                    builtin::prepare_update(rt, &old, &mut r);
                }
                r
            }
        };
        meta::metadata_mut(&mut result).insert(
            "resourceVersion".into(),
            json!(meta::resource_version(&old)),
        );
        if rt.generation && spec_part(&result) != spec_part(&old) {
            let g = meta::metadata(&old)
                .and_then(|m| m.get("generation"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::metadata_mut(&mut result).insert("generation".into(), json!(g + 1));
        }
        let warnings = self.validate(rt, version, &mut result, Some(&old), opts)?;
        let result = track_fields(rt, version, Some(&old), result, opts);
        if without_rv(&result) == without_rv(&old) {
            return Ok(Written {
                object: old,
                warnings,
            });
        }
        if opts.dry_run {
            return Ok(Written {
                object: result,
                warnings,
            });
        }
        let stored = self.commit(rt, result);
        self.run_controllers();
        Ok(Written {
            object: to_view(rt, version, &stored),
            warnings,
        })
    }

    /// Stores an updated object (no validation), removing it if it is deleting and has
    /// no finalizers left, and queues the controllers that care.
    ///
    /// An update that empties the finalizers of a deleting object is not written: the
    /// generic registry's `Update` deletes the stored object instead
    /// (`errEmptiedFinalizers`, `deleteWithoutFinalizers` in
    /// k8s.io/apiserver/pkg/registry/generic/registry/store.go), so watchers see one
    /// DELETED event whose object still lists the finalizers, and the writer gets the
    /// object it sent (with the resourceVersion it sent).
    pub(crate) fn commit(&mut self, rt: &ResourceType, view: Value) -> Arc<Value> {
        let storage = rt.storage.clone();
        let obj = to_storage(rt, view);
        if should_remove(&storage, &obj) {
            let ns = meta::namespace(&obj).to_string();
            let name = meta::name(&obj).to_string();
            if let Some(last) = self.store.remove(&storage, &ns, &name) {
                self.after_change(&storage, &last, true);
                return Arc::new(obj);
            }
        }
        let stored = self.store.replace(&storage, obj);
        self.after_change(&storage, &stored, false);
        stored
    }

    /// Commits a stored-form object (for controllers that work on stored objects).
    pub(crate) fn commit_stored(&mut self, storage: &GroupResource, obj: Value) {
        let Some(rt) = self.registry.get(storage).cloned() else {
            return;
        };
        let version = rt.preferred_version().to_string();
        let view = to_view(&rt, &version, &obj);
        self.commit(&rt, view);
    }

    fn enqueue(&mut self, w: Work) {
        if self.queued.insert(w.clone()) {
            self.queue.push_back(w);
        }
    }

    fn after_change(&mut self, storage: &GroupResource, obj: &Value, removed: bool) {
        if storage.group == crate::rbac::RBAC_GROUP {
            self.rbac_cache = None;
        }
        let ns = meta::namespace(obj).to_string();
        let name = meta::name(obj).to_string();
        if removed {
            for dep in self.store.dependents_of(meta::uid(obj)) {
                self.enqueue(Work::Object(dep.0, dep.1));
            }
            for r in meta::owner_references(obj) {
                if let Some(ort) = self.registry.by_kind(&r.api_version, &r.kind).cloned() {
                    let ons = if ort.namespaced {
                        ns.clone()
                    } else {
                        String::new()
                    };
                    self.enqueue(Work::Object(ort.storage.clone(), (ons, r.name)));
                }
            }
        } else {
            self.enqueue(Work::Object(storage.clone(), (ns.clone(), name.clone())));
        }
        if !ns.is_empty()
            && self
                .store
                .get(&namespaces_gr(), "", &ns)
                .is_some_and(|n| meta::is_deleting(n))
        {
            self.enqueue(Work::Namespace(ns.clone()));
        }
        if storage == &namespaces_gr() {
            self.enqueue(Work::Namespace(name.clone()));
        }
        if storage == &crds_gr() {
            self.enqueue(Work::Crd(name));
        }
        let crd = self
            .registry
            .sharing_storage(storage)
            .find_map(|t| match &t.origin {
                crate::resources::Origin::Crd(c) => Some(c.clone()),
                crate::resources::Origin::Builtin => None,
            });
        if let Some(c) = crd {
            self.enqueue(Work::Crd(c));
        }
    }

    /// Runs the controllers until no work is left.
    pub(crate) fn run_controllers(&mut self) {
        // A bound against livelock; each unit of work is small.
        let mut budget = 10_000_000usize;
        while let Some(w) = self.queue.pop_front() {
            self.queued.remove(&w);
            budget = budget.saturating_sub(1);
            if budget == 0 {
                tracing::error!("controller work did not settle; dropping the queue");
                self.queue.clear();
                self.queued.clear();
                return;
            }
            match w {
                Work::Object(storage, key) => self.gc_object(&storage, &key),
                Work::Namespace(name) => self.namespace_lifecycle(&name),
                Work::Crd(name) => self.crd_lifecycle(&name),
            }
        }
    }

    /// DELETE of one object.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Deleted> {
        let gr = rt.group_resource();
        let current = self.get(rt, ns, name)?;
        if rt.storage == namespaces_gr() && crate::namespaces::is_immortal(name) {
            return Err(ApiError::forbidden(
                &gr,
                name,
                "this namespace may not be deleted",
            ));
        }
        if let Some(uid) = &opts.precondition_uid
            && uid != meta::uid(&current)
        {
            return Err(ApiError::conflict(
                &gr,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta::uid(&current)
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && rv != meta::resource_version(&current)
        {
            return Err(ApiError::conflict(
                &gr,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta::resource_version(&current)
                ),
            ));
        }
        let policy = match (opts.propagation, opts.orphan_dependents) {
            (Some(p), _) => Some(p),
            (None, Some(true)) => Some(Propagation::Orphan),
            (None, Some(false)) => Some(Propagation::Background),
            (None, None) => None,
        };
        let out = self.delete_object(rt, version, ns, name, policy, opts.dry_run);
        if !opts.dry_run {
            self.run_controllers();
        }
        out.ok_or_else(|| ApiError::not_found(&gr, name))
    }

    /// The default propagation of a resource when the request names none.
    fn default_propagation(rt: &ResourceType) -> Propagation {
        // batch/v1 Jobs keep orphaning by default for compatibility.
        if rt.group == "batch" && rt.kind == "Job" {
            Propagation::Orphan
        } else {
            Propagation::Background
        }
    }

    /// Deletes (or marks for deletion) one object; the core of API and controller deletes.
    pub(crate) fn delete_object(
        &mut self,
        rt: &ResourceType,
        version: &str,
        ns: &str,
        name: &str,
        policy: Option<Propagation>,
        dry_run: bool,
    ) -> Option<Deleted> {
        let current = self.store.get(&rt.storage, ns, name)?.clone();
        let mut obj = to_view(rt, version, &current);
        let mut finalizers = meta::finalizers(&obj);
        let deleting = meta::is_deleting(&obj);
        // GC finalizers follow the request's policy (or, first time, the default).
        let effective = policy.or(if deleting {
            None
        } else {
            Some(Self::default_propagation(rt))
        });
        if let Some(p) = effective {
            finalizers.retain(|f| f != FOREGROUND_FINALIZER && f != ORPHAN_FINALIZER);
            let has_dependents = !self.store.dependents_of(meta::uid(&obj)).is_empty();
            match p {
                Propagation::Foreground => finalizers.push(FOREGROUND_FINALIZER.to_string()),
                // Orphaning only matters when there is something to orphan.
                Propagation::Orphan if has_dependents || policy.is_some() => {
                    finalizers.push(ORPHAN_FINALIZER.to_string())
                }
                _ => {}
            }
        }
        let is_namespace = rt.storage == namespaces_gr();
        let is_crd = rt.storage == crds_gr();
        if is_crd
            && !finalizers
                .iter()
                .any(|f| f == crate::crd::CLEANUP_FINALIZER)
        {
            finalizers.push(crate::crd::CLEANUP_FINALIZER.to_string());
        }
        let spec_finalizers =
            is_namespace && !meta::string_list(obj.pointer("/spec/finalizers")).is_empty();
        if finalizers.is_empty() && !spec_finalizers {
            if dry_run {
                return Some(Deleted {
                    object: obj,
                    removed: true,
                });
            }
            let last = self.store.remove(&rt.storage, ns, name)?;
            self.after_change(&rt.storage, &last, true);
            return Some(Deleted {
                object: to_view(rt, version, &last),
                removed: true,
            });
        }
        meta::set_finalizers(&mut obj, &finalizers);
        if !deleting {
            let m = meta::metadata_mut(&mut obj);
            m.insert("deletionTimestamp".into(), json!(meta::now_rfc3339()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        if is_namespace {
            obj["status"]["phase"] = json!("Terminating");
        }
        if is_crd {
            meta::set_condition(
                &mut obj,
                "Terminating",
                "True",
                "InstanceDeletionPending",
                "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
            );
        }
        if dry_run {
            return Some(Deleted {
                object: obj,
                removed: false,
            });
        }
        if without_rv(&obj) == without_rv(&to_view(rt, version, &current)) {
            return Some(Deleted {
                object: obj,
                removed: false,
            });
        }
        let stored = self.commit(rt, obj);
        let removed = self.store.get(&rt.storage, ns, name).is_none();
        Some(Deleted {
            object: to_view(rt, version, &stored),
            removed,
        })
    }

    /// DELETE of a collection: every object matching the selectors.
    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Value>> {
        let keys: Vec<(String, String)> = self
            .store
            .list(&rt.storage, ns)
            .map(|o| to_view(rt, version, o))
            .filter(|o| list.labels.matches(o) && list.fields.matches(o))
            .map(|o| (meta::namespace(&o).to_string(), meta::name(&o).to_string()))
            .collect();
        let mut out = Vec::new();
        for (ns, name) in keys {
            match self.delete(rt, version, &ns, &name, opts) {
                Ok(d) => out.push(d.object),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// LIST, with selectors, paging and `resourceVersionMatch=Exact`.
    pub fn list(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        let current = self.store.current_rv();
        if opts.exact_rv.is_some_and(|rv| rv > current) {
            return Err(ApiError::new(
                500,
                "",
                "etcdserver: mvcc: required revision is a future revision",
            ));
        }
        if let Some(rv) = opts.min_rv.filter(|rv| *rv > current) {
            return Err(crate::options::too_large_resource_version(rv, current));
        }
        let (rv, start) = match &opts.continue_token {
            Some(token) => {
                let t = decode_continue(token)?;
                (t.rv, Some((t.ns, t.name)))
            }
            None => (opts.exact_rv.unwrap_or(self.store.current_rv()), None),
        };
        let snapshot = if rv == self.store.current_rv() {
            self.store
                .list(&rt.storage, ns)
                .map(|o| {
                    (
                        (meta::namespace(o).to_string(), meta::name(o).to_string()),
                        o.clone(),
                    )
                })
                .collect()
        } else {
            self.store.snapshot_at(&rt.storage, ns, rv).map_err(
                |TooOld { requested, oldest }| {
                    if opts.continue_token.is_some() {
                        ApiError::gone(EXPIRED_CONTINUE)
                    } else {
                        ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
                    }
                },
            )?
        };
        let unfiltered =
            opts.labels == LabelSelector::default() && opts.fields == FieldSelector::default();
        let mut items = Vec::new();
        let mut continue_token = None;
        let mut remaining = None;
        let mut iter = snapshot
            .iter()
            .filter(|(k, _)| start.as_ref().is_none_or(|s| *k > s))
            .map(|(_, o)| to_view(rt, version, o))
            .filter(|o| opts.labels.matches(o) && opts.fields.matches(o))
            .peekable();
        while let Some(o) = iter.next() {
            items.push(o);
            if opts.limit.is_some_and(|l| l > 0 && items.len() >= l) && iter.peek().is_some() {
                if let Some(last) = items.last() {
                    continue_token = Some(encode_continue(&ContinueToken {
                        rv,
                        ns: meta::namespace(last).to_string(),
                        name: meta::name(last).to_string(),
                    }));
                }
                if unfiltered {
                    remaining = Some(iter.count() as u64);
                }
                break;
            }
        }
        Ok(ListPage {
            items,
            resource_version: rv.to_string(),
            continue_token,
            remaining,
        })
    }
}

fn encode_continue(t: &ContinueToken) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode_continue(token: &str) -> ApiResult<ContinueToken> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| ApiError::bad_request(format!("continue key is not valid: {token}")))
}

/// Sets the namespace of a written object from the request's: filled in when the body has
/// none, refused when it names another, removed for cluster-scoped kinds.
fn place_in_namespace(
    m: &mut serde_json::Map<String, Value>,
    namespaced: bool,
    ns: &str,
) -> ApiResult<()> {
    if !namespaced {
        m.remove("namespace");
        return Ok(());
    }
    match m.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("namespace".into(), json!(ns));
            Ok(())
        }
        Some(n) if n != ns => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
        Some(_) => Ok(()),
    }
}
