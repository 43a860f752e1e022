//! The resource types the server knows: built-in kinds and those served for CRDs.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

use crate::apply::FieldManager;
use crate::error::GroupResource;
use crate::patch::ResourceKind;

pub const STANDARD_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Where a value of a printer column comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnSource {
    /// A JSONPath expression as in `additionalPrinterColumns` (`.spec.replicas`).
    JsonPath(String),
    /// The number of entries in the map or list at a JSONPath (`Data` of a ConfigMap).
    Count(String),
    /// A timestamp shown as it is stored (`Created At` of a CRD), not as an age.
    Timestamp(String),
}

/// One column of the `Table` rendering of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub source: ColumnSource,
}

impl PrinterColumn {
    fn builtin(name: &str, type_: &str, source: ColumnSource) -> Self {
        Self {
            name: name.to_string(),
            type_: type_.to_string(),
            format: String::new(),
            description: String::new(),
            priority: 0,
            source,
        }
    }

    /// The `Age` column every kind has.
    pub fn age() -> Self {
        Self {
            description: "CreationTimestamp is a timestamp representing the server time when this object was created.".to_string(),
            ..Self::builtin(
                "Age",
                "date",
                ColumnSource::JsonPath(".metadata.creationTimestamp".to_string()),
            )
        }
    }
}

/// One served version of a resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceVersion {
    pub name: String,
    /// Printer columns after `Name` (for built-ins and CRDs alike; `Age` included where it belongs).
    pub columns: Vec<PrinterColumn>,
    /// The OpenAPI v3 schema of the version (CRDs only).
    pub schema: Option<Value>,
}

/// What serves a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Builtin,
    /// Served because of the named CustomResourceDefinition.
    Crd(String),
}

/// A resource type: the unit of URL routing, storage and discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    /// Served versions; the first is the preferred (and storage) version.
    pub versions: Vec<ResourceVersion>,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Subresources besides the main endpoint (`status`, `finalize`).
    pub subresources: Vec<String>,
    /// The main endpoint ignores `status`, and `/status` writes only status.
    pub status_subresource: bool,
    /// `metadata.generation` is maintained (starts at 1, bumps on spec changes).
    pub generation: bool,
    /// DELETE answers with the deleted object rather than a `Status`.
    pub returns_deleted_object: bool,
    /// Where objects live: two resources may share storage (core and events.k8s.io Events).
    pub storage: GroupResource,
    pub origin: Origin,
}

impl ResourceType {
    pub fn group_resource(&self) -> GroupResource {
        GroupResource::new(&self.group, &self.plural)
    }

    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    pub fn preferred_version(&self) -> &str {
        self.versions
            .first()
            .map(|v| v.name.as_str())
            .unwrap_or("v1")
    }

    pub fn version(&self, name: &str) -> Option<&ResourceVersion> {
        self.versions.iter().find(|v| v.name == name)
    }

    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    pub fn is_crd(&self) -> bool {
        matches!(self.origin, Origin::Crd(_))
    }

    /// Whether a PUT without `metadata.resourceVersion` overwrites the object (the
    /// strategy's `AllowUnconditionalUpdate`): true for most built-in kinds, false for
    /// custom resources, CRDs, Leases and ValidatingAdmissionPolicies and their bindings
    /// (as kube-apiserver v1.33 answers).
    pub fn allows_unconditional_update(&self) -> bool {
        !self.is_crd()
            && !matches!(
                (self.group.as_str(), self.plural.as_str()),
                ("apiextensions.k8s.io", "customresourcedefinitions")
                    | ("coordination.k8s.io", "leases")
                    | ("admissionregistration.k8s.io", _)
            )
    }

    /// What patches and server-side apply need to know about the kind at `version`:
    /// built-in, or custom with its CRD version's `openAPIV3Schema`.
    pub fn patch_kind(&self, version: &str) -> ResourceKind<'_> {
        if self.is_crd() {
            ResourceKind::Custom {
                open_api_v3_schema: self.version(version).and_then(|v| v.schema.as_ref()),
            }
        } else {
            ResourceKind::Builtin {
                group: &self.group,
                kind: &self.kind,
            }
        }
    }

    /// The field manager (`managedFields`, server-side apply) of the kind at `version`.
    pub fn field_manager(&self, version: &str) -> FieldManager<'_> {
        FieldManager::new(self.patch_kind(version).schema(), self.status_subresource)
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    generation: bool,
    columns: Vec<PrinterColumn>,
}

impl Builtin {
    fn new(
        group: &'static str,
        version: &'static str,
        plural: &'static str,
        kind: &'static str,
    ) -> Self {
        Self {
            group,
            version,
            plural,
            kind,
            namespaced: true,
            short_names: &[],
            categories: &[],
            subresources: &[],
            generation: false,
            columns: vec![PrinterColumn::age()],
        }
    }
    fn cluster(mut self) -> Self {
        self.namespaced = false;
        self
    }
    fn short(mut self, names: &'static [&'static str]) -> Self {
        self.short_names = names;
        self
    }
    fn categories(mut self, c: &'static [&'static str]) -> Self {
        self.categories = c;
        self
    }
    fn subresources(mut self, s: &'static [&'static str]) -> Self {
        self.subresources = s;
        self
    }
    fn generation(mut self) -> Self {
        self.generation = true;
        self
    }
    fn columns(mut self, columns: Vec<PrinterColumn>) -> Self {
        self.columns = columns;
        self
    }

    fn build(self, verbs: &[&str], storage: GroupResource) -> ResourceType {
        ResourceType {
            group: self.group.to_string(),
            versions: vec![ResourceVersion {
                name: self.version.to_string(),
                columns: self.columns,
                schema: None,
            }],
            plural: self.plural.to_string(),
            singular: self.kind.to_lowercase(),
            kind: self.kind.to_string(),
            list_kind: format!("{}List", self.kind),
            namespaced: self.namespaced,
            short_names: self.short_names.iter().map(|s| s.to_string()).collect(),
            categories: self.categories.iter().map(|s| s.to_string()).collect(),
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            subresources: self.subresources.iter().map(|s| s.to_string()).collect(),
            status_subresource: self.subresources.contains(&"status"),
            generation: self.generation,
            returns_deleted_object: self.plural == "namespaces",
            storage,
            origin: Origin::Builtin,
        }
    }
}

fn col(name: &str, type_: &str, path: &str) -> PrinterColumn {
    PrinterColumn::builtin(name, type_, ColumnSource::JsonPath(path.to_string()))
}

fn count(name: &str, path: &str) -> PrinterColumn {
    PrinterColumn::builtin(name, "integer", ColumnSource::Count(path.to_string()))
}

/// The built-in kinds this server stores.
pub fn builtin_types() -> Vec<ResourceType> {
    let age = PrinterColumn::age;
    let standard = |b: Builtin| {
        let storage = GroupResource::new(b.group, b.plural);
        b.build(STANDARD_VERBS, storage)
    };
    let create_only = |b: Builtin| {
        let storage = GroupResource::new(b.group, b.plural);
        b.build(&["create"], storage)
    };
    vec![
        standard(
            Builtin::new("", "v1", "namespaces", "Namespace")
                .cluster()
                .short(&["ns"])
                .subresources(&["finalize", "status"])
                .columns(vec![col("Status", "string", ".status.phase"), age()]),
        ),
        standard(Builtin::new("", "v1", "secrets", "Secret").columns(vec![
            col("Type", "string", ".type"),
            count("Data", ".data"),
            age(),
        ])),
        standard(
            Builtin::new("", "v1", "configmaps", "ConfigMap")
                .short(&["cm"])
                .columns(vec![count("Data", ".data"), age()]),
        ),
        standard(
            Builtin::new("", "v1", "serviceaccounts", "ServiceAccount")
                .short(&["sa"])
                .columns(vec![count("Secrets", ".secrets"), age()]),
        ),
        standard(
            Builtin::new("", "v1", "resourcequotas", "ResourceQuota")
                .short(&["quota"])
                .subresources(&["status"]),
        ),
        standard(Builtin::new("", "v1", "limitranges", "LimitRange").short(&["limits"])),
        standard(
            Builtin::new("", "v1", "events", "Event")
                .short(&["ev"])
                .columns(vec![
                    col("Type", "string", ".type"),
                    col("Reason", "string", ".reason"),
                    col("Message", "string", ".message"),
                    age(),
                ]),
        ),
        {
            let b = Builtin::new("events.k8s.io", "v1", "events", "Event")
                .short(&["ev"])
                .columns(vec![
                    col("Type", "string", ".type"),
                    col("Reason", "string", ".reason"),
                    col("Note", "string", ".note"),
                    age(),
                ]);
            b.build(STANDARD_VERBS, GroupResource::new("", "events"))
        },
        standard(
            Builtin::new("coordination.k8s.io", "v1", "leases", "Lease")
                .columns(vec![col("Holder", "string", ".spec.holderIdentity"), age()]),
        ),
        standard(
            Builtin::new(
                "networking.k8s.io",
                "v1",
                "networkpolicies",
                "NetworkPolicy",
            )
            .short(&["netpol"])
            .generation(),
        ),
        standard(Builtin::new(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
        )),
        standard(
            Builtin::new(
                "rbac.authorization.k8s.io",
                "v1",
                "rolebindings",
                "RoleBinding",
            )
            .columns(vec![col("Role", "string", ".roleRef.name"), age()]),
        ),
        standard(
            Builtin::new(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterroles",
                "ClusterRole",
            )
            .cluster(),
        ),
        standard(
            Builtin::new(
                "rbac.authorization.k8s.io",
                "v1",
                "clusterrolebindings",
                "ClusterRoleBinding",
            )
            .cluster()
            .columns(vec![col("Role", "string", ".roleRef.name"), age()]),
        ),
        standard(
            Builtin::new("batch", "v1", "jobs", "Job")
                .categories(&["all"])
                .subresources(&["status"])
                .generation()
                .columns(vec![
                    col("Status", "string", ".status.conditions[-1:].type"),
                    col("Completions", "string", ".spec.completions"),
                    age(),
                ]),
        ),
        standard(
            Builtin::new("batch", "v1", "cronjobs", "CronJob")
                .short(&["cj"])
                .categories(&["all"])
                .subresources(&["status"])
                .generation()
                .columns(vec![
                    col("Schedule", "string", ".spec.schedule"),
                    col("Suspend", "boolean", ".spec.suspend"),
                    col("Last Schedule", "date", ".status.lastScheduleTime"),
                    age(),
                ]),
        ),
        standard(
            Builtin::new(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
            )
            .cluster()
            .short(&["crd", "crds"])
            .categories(&["api-extensions"])
            .subresources(&["status"])
            .generation()
            .columns(vec![PrinterColumn::builtin(
                "Created At",
                "date",
                ColumnSource::Timestamp(".metadata.creationTimestamp".to_string()),
            )]),
        ),
        standard(
            Builtin::new(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicies",
                "ValidatingAdmissionPolicy",
            )
            .cluster()
            .categories(&["api-extensions"])
            .subresources(&["status"])
            .generation(),
        ),
        standard(
            Builtin::new(
                "admissionregistration.k8s.io",
                "v1",
                "validatingadmissionpolicybindings",
                "ValidatingAdmissionPolicyBinding",
            )
            .cluster()
            .categories(&["api-extensions"])
            .generation(),
        ),
        create_only(
            Builtin::new(
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
            )
            .cluster(),
        ),
        create_only(
            Builtin::new(
                "authorization.k8s.io",
                "v1",
                "subjectaccessreviews",
                "SubjectAccessReview",
            )
            .cluster(),
        ),
        create_only(
            Builtin::new(
                "authentication.k8s.io",
                "v1",
                "selfsubjectreviews",
                "SelfSubjectReview",
            )
            .cluster(),
        ),
        create_only(
            Builtin::new(
                "authorization.k8s.io",
                "v1",
                "selfsubjectrulesreviews",
                "SelfSubjectRulesReview",
            )
            .cluster(),
        ),
    ]
}

/// All resource types currently served, keyed by group and plural.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: BTreeMap<GroupResource, Arc<ResourceType>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let mut r = Self::default();
        for t in builtin_types() {
            r.insert(t);
        }
        r
    }

    pub fn insert(&mut self, t: ResourceType) {
        self.types.insert(t.group_resource(), Arc::new(t));
    }

    pub fn remove(&mut self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        self.types.remove(gr)
    }

    pub fn get(&self, gr: &GroupResource) -> Option<&Arc<ResourceType>> {
        self.types.get(gr)
    }

    /// The type serving `group/version/plural`, if that version is served.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<&Arc<ResourceType>> {
        self.types
            .get(&GroupResource::new(group, plural))
            .filter(|t| t.version(version).is_some())
    }

    /// The type of objects of `apiVersion` + `kind` (for ownerReferences).
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<&Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.types
            .values()
            .find(|t| t.group == group && t.kind == kind && t.version(version).is_some())
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Types that store into `storage` (usually one, two for Events).
    pub fn sharing_storage<'a>(
        &'a self,
        storage: &'a GroupResource,
    ) -> impl Iterator<Item = &'a Arc<ResourceType>> {
        self.types.values().filter(move |t| &t.storage == storage)
    }
}

/// Splits `group/version` (`v1` for the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}
