//! What the merge algorithms need to know about a type: which lists are atomic, sets or
//! maps (and by which keys), which objects are atomic, which object keys are declared
//! fields, and the strategic-merge-patch strategy of each list.
//!
//! Both sources speak the OpenAPI v3 vocabulary of Kubernetes:
//! - a CustomResourceDefinition's `openAPIV3Schema` ([`Schema::custom_resource`]),
//! - the table of built-in kinds in `builtin_types.json` ([`Schema::builtin`]), which
//!   carries the markers the Kubernetes types declare (`+listType`, `+listMapKey`,
//!   `+structType`/`+mapType`, `patchStrategy`, `patchMergeKey`).
//!
//! Markers: <https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy>.

use serde_json::Value;
use std::sync::LazyLock;

static BUILTIN_TABLE: LazyLock<Value> = LazyLock::new(|| {
    // The table is a constant of this crate; a unit test proves it parses.
    serde_json::from_str(include_str!("builtin_types.json")).unwrap_or(Value::Null)
});

/// Built-in kinds whose main endpoint ignores `status` because a `/status` subresource
/// exists (Kubernetes' `GetResetFields` of their registry strategies).
const BUILTIN_WITH_STATUS: &[&str] = &[
    "/Namespace",
    "/ResourceQuota",
    "batch/Job",
    "batch/CronJob",
    "apiextensions.k8s.io/CustomResourceDefinition",
    "admissionregistration.k8s.io/ValidatingAdmissionPolicy",
];

/// A position in a type.
#[derive(Clone, Copy, Debug)]
pub enum Schema<'a> {
    /// A node of an OpenAPI v3 schema. `builtin` tells how fields the node does not
    /// describe behave: as declared struct fields (built-in types, described sparsely)
    /// or as untyped values (custom resources).
    OpenApi {
        node: &'a Value,
        definitions: &'a Value,
        builtin: bool,
    },
    /// The root of a custom resource: `metadata` is the standard ObjectMeta, the rest
    /// comes from the CRD's schema.
    CustomRoot(&'a Value),
    /// A field of a built-in struct that the table does not describe: a struct whose
    /// keys are declared fields and whose lists are atomic.
    BuiltinStruct,
    /// No type information (structured-merge-diff's "deduced" type): lists atomic, maps
    /// granular, no declared fields.
    Deduced,
}

/// How a list merges under server-side apply (`x-kubernetes-list-type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType<'a> {
    Atomic,
    Set,
    Map(Vec<&'a str>),
}

/// A field of an object, with whether it is a declared (named) field of a struct rather
/// than a key of a map.
#[derive(Clone, Copy, Debug)]
pub struct Field<'a> {
    pub schema: Schema<'a>,
    pub declared: bool,
}

impl<'a> Schema<'a> {
    /// The schema of a built-in kind the emulator stores, by API group ("" for core) and kind.
    pub fn builtin(group: &str, kind: &str) -> Option<Schema<'static>> {
        let table: &'static Value = &BUILTIN_TABLE;
        let node = table.get("kinds")?.get(format!("{group}/{kind}"))?;
        Some(Schema::OpenApi {
            node,
            definitions: &table["definitions"],
            builtin: true,
        })
    }

    /// Whether a built-in kind has a `/status` subresource.
    pub fn builtin_has_status(group: &str, kind: &str) -> bool {
        BUILTIN_WITH_STATUS.contains(&format!("{group}/{kind}").as_str())
    }

    /// The schema of a custom resource, from its CRD version's `schema.openAPIV3Schema`.
    pub fn custom_resource(open_api_v3_schema: &'a Value) -> Schema<'a> {
        Schema::CustomRoot(open_api_v3_schema)
    }

    /// The node itself, following `$ref` (and the `allOf: [{$ref}]` form) into the table.
    fn node(&self) -> Option<&'a Value> {
        match *self {
            Schema::OpenApi {
                node, definitions, ..
            } => Some(resolve(node, definitions)),
            Schema::CustomRoot(node) => Some(node),
            Schema::BuiltinStruct | Schema::Deduced => None,
        }
    }

    fn child(&self, node: &'a Value) -> Schema<'a> {
        match *self {
            Schema::OpenApi {
                definitions,
                builtin,
                ..
            } => Schema::OpenApi {
                node,
                definitions,
                builtin,
            },
            _ => Schema::OpenApi {
                node,
                definitions: &Value::Null,
                builtin: false,
            },
        }
    }

    fn is_builtin(&self) -> bool {
        matches!(
            self,
            Schema::OpenApi { builtin: true, .. } | Schema::BuiltinStruct
        )
    }

    /// The schema of an object's key.
    pub fn field(&self, name: &str) -> Field<'a> {
        if matches!(self, Schema::CustomRoot(_)) && name == "metadata" {
            let table: &'static Value = &BUILTIN_TABLE;
            let definitions = &table["definitions"];
            return Field {
                schema: Schema::OpenApi {
                    node: &definitions["ObjectMeta"],
                    definitions,
                    builtin: true,
                },
                declared: true,
            };
        }
        let Some(node) = self.node() else {
            return match self {
                Schema::BuiltinStruct => Field {
                    schema: Schema::BuiltinStruct,
                    declared: true,
                },
                _ => Field {
                    schema: Schema::Deduced,
                    declared: false,
                },
            };
        };
        if let Some(prop) = node.get("properties").and_then(|p| p.get(name)) {
            return Field {
                schema: self.child(prop),
                declared: true,
            };
        }
        match node.get("additionalProperties") {
            Some(additional @ Value::Object(_)) => Field {
                schema: self.child(additional),
                declared: false,
            },
            Some(_) => Field {
                schema: Schema::Deduced,
                declared: false,
            },
            None if self.is_builtin() => Field {
                schema: Schema::BuiltinStruct,
                declared: true,
            },
            None => Field {
                schema: Schema::Deduced,
                declared: false,
            },
        }
    }

    /// The schema of a list's items.
    pub fn items(&self) -> Schema<'a> {
        match self.node().and_then(|n| n.get("items")) {
            Some(items) => self.child(items),
            None if self.is_builtin() => Schema::BuiltinStruct,
            None => Schema::Deduced,
        }
    }

    /// `x-kubernetes-list-type` (atomic when absent, as for both CRDs and built-ins).
    pub fn list_type(&self) -> ListType<'a> {
        let Some(node) = self.node() else {
            return ListType::Atomic;
        };
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => ListType::Map(
                node.get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default(),
            ),
            _ => ListType::Atomic,
        }
    }

    /// `x-kubernetes-map-type: atomic` (structs and maps replaced as a whole by apply).
    pub fn is_atomic_object(&self) -> bool {
        self.node()
            .and_then(|n| n.get("x-kubernetes-map-type"))
            .and_then(Value::as_str)
            == Some("atomic")
    }

    /// The strategic-merge-patch strategy of a list: `Some(merge key)` when the list
    /// merges (`Some(None)` for a merging list of scalars), `None` when it is replaced.
    pub fn patch_merge(&self) -> Option<Option<&'a str>> {
        let node = self.node()?;
        let strategy = node.get("x-kubernetes-patch-strategy")?.as_str()?;
        if !strategy.split(',').any(|s| s == "merge") {
            return None;
        }
        Some(
            node.get("x-kubernetes-patch-merge-key")
                .and_then(Value::as_str),
        )
    }

    /// The default value of a key field of this list's items, if the schema gives one.
    pub fn item_key_default(&self, key: &str) -> Option<&'a Value> {
        let items = self.items();
        items.node()?.get("properties")?.get(key)?.get("default")
    }
}

fn resolve<'a>(node: &'a Value, definitions: &'a Value) -> &'a Value {
    let mut node = node;
    // References in the table are short chains; the bound guards against a cycle.
    for _ in 0..8 {
        let reference = node.get("$ref").and_then(Value::as_str).or_else(|| {
            node.get("allOf")
                .and_then(|all| all.get(0))
                .and_then(|first| first.get("$ref"))
                .and_then(Value::as_str)
        });
        let Some(target) = reference
            .and_then(|r| r.rsplit('/').next())
            .and_then(|name| definitions.get(name))
        else {
            return node;
        };
        node = target;
    }
    node
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn walk<'a>(schema: Schema<'a>, path: &[&str]) -> Schema<'a> {
        path.iter().fold(schema, |s, p| {
            if *p == "[]" {
                s.items()
            } else {
                s.field(p).schema
            }
        })
    }

    #[test]
    fn builtin_table_parses_and_every_reference_resolves() {
        let table: &Value = &BUILTIN_TABLE;
        assert!(
            table.get("kinds").is_some(),
            "builtin_types.json must parse"
        );
        fn check(v: &Value, defs: &Value) {
            match v {
                Value::Object(map) => {
                    if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                        let name = r.rsplit('/').next().unwrap_or_default();
                        assert!(defs.get(name).is_some(), "dangling reference {r}");
                    }
                    map.values().for_each(|c| check(c, defs));
                }
                Value::Array(items) => items.iter().for_each(|c| check(c, defs)),
                _ => {}
            }
        }
        check(table, &table["definitions"]);
    }

    // https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy
    // ("x-kubernetes-list-type: map ... x-kubernetes-list-map-keys"): the table carries
    // the markers of the Kubernetes types, e.g. containers by name, ports by
    // containerPort+protocol, finalizers as a set, ownerReferences by uid.
    #[test]
    fn builtin_markers_follow_kubernetes_types() {
        let job = Schema::builtin("batch", "Job").unwrap();
        let containers = walk(job, &["spec", "template", "spec", "containers"]);
        assert_eq!(containers.list_type(), ListType::Map(vec!["name"]));
        assert_eq!(containers.patch_merge(), Some(Some("name")));
        let ports = walk(containers, &["[]", "ports"]);
        assert_eq!(
            ports.list_type(),
            ListType::Map(vec!["containerPort", "protocol"])
        );
        assert_eq!(ports.patch_merge(), Some(Some("containerPort")));
        assert_eq!(ports.item_key_default("protocol"), Some(&json!("TCP")));
        let conditions = walk(job, &["status", "conditions"]);
        assert_eq!(conditions.list_type(), ListType::Atomic);
        assert_eq!(conditions.patch_merge(), Some(Some("type")));
        let finalizers = walk(job, &["metadata", "finalizers"]);
        assert_eq!(finalizers.list_type(), ListType::Set);
        assert_eq!(finalizers.patch_merge(), Some(None));
        let owners = walk(job, &["metadata", "ownerReferences"]);
        assert_eq!(owners.list_type(), ListType::Map(vec!["uid"]));
        assert!(owners.items().is_atomic_object());
        assert!(walk(job, &["spec", "selector"]).is_atomic_object());
        // Undescribed parts of a built-in type are declared struct fields with atomic lists.
        let args = job.field("spec").schema.field("backoffLimit");
        assert!(args.declared);
        assert_eq!(
            walk(containers, &["[]", "args"]).list_type(),
            ListType::Atomic
        );
        // Map keys are not declared fields.
        assert!(
            !walk(job, &["metadata"])
                .field("labels")
                .schema
                .field("app")
                .declared
        );
        let policy = Schema::builtin("networking.k8s.io", "NetworkPolicy").unwrap();
        assert_eq!(walk(policy, &["spec", "ingress"]).patch_merge(), None);
        assert!(Schema::builtin("example.com", "Widget").is_none());
    }

    // https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema
    // and https://kubernetes.io/docs/reference/using-api/server-side-apply/#merge-strategy:
    // CRD list markers come from the schema, and metadata is the standard ObjectMeta.
    #[test]
    fn custom_resource_markers_come_from_the_crd_schema() {
        let crd = json!({
            "type": "object",
            "properties": {
                "metadata": {"type": "object"},
                "spec": {"type": "object", "properties": {
                    "hosts": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                    "ports": {"type": "array", "x-kubernetes-list-type": "map",
                              "x-kubernetes-list-map-keys": ["name"], "items": {"type": "object"}},
                    "ref": {"type": "object", "x-kubernetes-map-type": "atomic"},
                    "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}
                }}
            }
        });
        let cr = Schema::custom_resource(&crd);
        assert_eq!(walk(cr, &["spec", "hosts"]).list_type(), ListType::Set);
        assert_eq!(
            walk(cr, &["spec", "ports"]).list_type(),
            ListType::Map(vec!["name"])
        );
        assert!(walk(cr, &["spec", "ref"]).is_atomic_object());
        assert!(!walk(cr, &["spec", "extra"]).field("a").declared);
        assert!(!walk(cr, &["spec", "labels"]).field("a").declared);
        assert_eq!(
            walk(cr, &["metadata", "finalizers"]).list_type(),
            ListType::Set
        );
        // Strategic merge patch markers are never read from a CRD.
        assert_eq!(walk(cr, &["spec", "hosts"]).patch_merge(), None);
    }
}
