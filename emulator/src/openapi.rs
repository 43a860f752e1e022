//! OpenAPI documents: the `/openapi/v3` index and per group-version documents, and a
//! `/openapi/v2` document. CRD versions carry their schemas (what `kubectl explain` shows);
//! built-in kinds have open schemas. Every PATCH operation declares `fieldValidation`, which
//! is how kubectl decides to leave validation to the server.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::discovery::GIT_VERSION;
use crate::resources::{Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `dev.landlord.v1alpha1.Tenant` for group `landlord.dev`.
fn schema_name(t: &ResourceType, version: &str) -> String {
    if t.group.is_empty() {
        return format!("io.k8s.api.core.{version}.{}", t.kind);
    }
    let reversed: Vec<&str> = t.group.split('.').rev().collect();
    format!("{}.{version}.{}", reversed.join("."), t.kind)
}

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

fn object_meta_schema() -> Value {
    let s = |d: &str| json!({"type": "string", "description": d});
    json!({
        "description": "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.",
        "type": "object",
        "properties": {
            "name": s("Name must be unique within a namespace."),
            "generateName": s("GenerateName is an optional prefix, used by the server, to generate a unique name ONLY IF the Name field has not been provided."),
            "namespace": s("Namespace defines the space within which each name must be unique."),
            "uid": s("UID is the unique in time and space value for this object."),
            "resourceVersion": s("An opaque value that represents the internal version of this object."),
            "generation": {"type": "integer", "format": "int64", "description": "A sequence number representing a specific generation of the desired state."},
            "creationTimestamp": {"type": "string", "format": "date-time", "description": "CreationTimestamp is a timestamp representing the server time when this object was created."},
            "deletionTimestamp": {"type": "string", "format": "date-time", "description": "DeletionTimestamp is RFC 3339 date and time at which this resource will be deleted."},
            "deletionGracePeriodSeconds": {"type": "integer", "format": "int64", "description": "Number of seconds allowed for this object to gracefully terminate before it will be removed from the system."},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Map of string keys and values that can be used to organize and categorize (scope and select) objects."},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Annotations is an unstructured key value map stored with a resource."},
            "finalizers": {"type": "array", "items": {"type": "string"}, "description": "Must be empty before the object is deleted from the registry."},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "List of objects depended by this object."},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}, "description": "ManagedFields maps workflow-id and version to the set of fields that are managed by that workflow."},
        },
    })
}

fn kind_schema(t: &ResourceType, version: &str) -> Value {
    let gvk = json!([{"group": t.group, "version": version, "kind": t.kind}]);
    let mut schema = t
        .version(version)
        .and_then(|v| v.schema.clone())
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let props = schema
        .as_object_mut()
        .map(|m| m.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(p)) = props {
        p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        p.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}], "description": "Standard object's metadata."}));
    }
    schema["x-kubernetes-group-version-kind"] = gvk;
    schema
}

fn parameters(names: &[&str]) -> Value {
    json!(names
        .iter()
        .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect::<Vec<_>>())
}

fn operation(
    t: &ResourceType,
    version: &str,
    action: &str,
    op_params: &[&str],
    schema_ref: &str,
) -> Value {
    json!({
        "operationId": format!("{action}{}", t.kind),
        "parameters": parameters(op_params),
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": schema_ref}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": version, "kind": t.kind},
    })
}

fn paths_for(t: &ResourceType, version: &str, paths: &mut Map<String, Value>) {
    let base = format!("/{}", gv_path(&t.group, version));
    let collection = if t.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", t.plural)
    } else {
        format!("{base}/{}", t.plural)
    };
    let sref = format!("#/components/schemas/{}", schema_name(t, version));
    let write = ["dryRun", "fieldManager", "fieldValidation"];
    let mut col = Map::new();
    if t.has_verb("list") {
        col.insert(
            "get".into(),
            operation(
                t,
                version,
                "list",
                &[
                    "labelSelector",
                    "fieldSelector",
                    "limit",
                    "continue",
                    "resourceVersion",
                    "watch",
                ],
                &sref,
            ),
        );
    }
    if t.has_verb("create") {
        col.insert("post".into(), operation(t, version, "post", &write, &sref));
    }
    if t.has_verb("deletecollection") {
        col.insert(
            "delete".into(),
            operation(
                t,
                version,
                "deletecollection",
                &["labelSelector", "fieldSelector", "dryRun"],
                &sref,
            ),
        );
    }
    paths.insert(collection.clone(), Value::Object(col));
    if t.has_verb("get") {
        let mut item = Map::new();
        item.insert("get".into(), operation(t, version, "get", &[], &sref));
        item.insert("put".into(), operation(t, version, "put", &write, &sref));
        item.insert(
            "patch".into(),
            operation(
                t,
                version,
                "patch",
                &["dryRun", "fieldManager", "fieldValidation", "force"],
                &sref,
            ),
        );
        item.insert(
            "delete".into(),
            operation(
                t,
                version,
                "delete",
                &["dryRun", "gracePeriodSeconds", "propagationPolicy"],
                &sref,
            ),
        );
        paths.insert(
            format!("{collection}/{{name}}"),
            Value::Object(item.clone()),
        );
        for s in &t.subresources {
            paths.insert(
                format!("{collection}/{{name}}/{s}"),
                Value::Object(item.clone()),
            );
        }
    }
}

/// The OpenAPI v3 document of one group-version.
pub fn v3_document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let types: Vec<_> = registry
        .all()
        .filter(|t| t.group == group && t.version(version).is_some())
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(OBJECT_META.to_string(), object_meta_schema());
    for t in types {
        paths_for(t, version, &mut paths);
        schemas.insert(schema_name(t, version), kind_schema(t, version));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn hash(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// The `/openapi/v3` index: one entry per group-version, with a content hash.
pub fn v3_index(registry: &Registry) -> Value {
    let mut gvs: BTreeMap<String, (String, String)> = BTreeMap::new();
    for t in registry.all() {
        for v in &t.versions {
            gvs.insert(
                gv_path(&t.group, &v.name),
                (t.group.clone(), v.name.clone()),
            );
        }
    }
    let mut paths = Map::new();
    for (path, (g, v)) in gvs {
        if let Some(doc) = v3_document(registry, &g, &v) {
            paths.insert(
                path.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({ "paths": paths })
}

/// A Swagger 2.0 document of every kind (definitions only, enough for schema lookups).
pub fn v2_document(registry: &Registry) -> Value {
    let mut defs = Map::new();
    defs.insert(OBJECT_META.to_string(), object_meta_schema());
    let mut paths = Map::new();
    for t in registry.all() {
        for v in &t.versions {
            let mut s = kind_schema(t, &v.name);
            if let Some(m) = s.pointer_mut("/properties/metadata") {
                *m = json!({"$ref": format!("#/definitions/{OBJECT_META}")});
            }
            defs.insert(schema_name(t, &v.name), s);
            let mut p = Map::new();
            paths_for(t, &v.name, &mut p);
            for (k, mut val) in p {
                rewrite_refs(&mut val);
                paths.insert(k, val);
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "definitions": defs,
    })
}

fn rewrite_refs(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get_mut("$ref") {
                *r = r.replace("#/components/schemas/", "#/definitions/");
            }
            m.values_mut().for_each(rewrite_refs);
        }
        Value::Array(a) => a.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}
