//! Discovery documents: `/version`, `/api`, `/apis`, group and group-version resource lists,
//! plain and aggregated (`apidiscovery.k8s.io/v2`).
//!
//! <https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api>.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value, json};

use crate::resources::{Registry, ResourceType};

pub const GIT_VERSION: &str = "v1.33.0";

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// The resources of one version of a group.
type VersionTypes = (String, Vec<Arc<ResourceType>>);

/// Group name -> version -> resources, groups in the order clients should prefer them.
struct Groups {
    groups: Vec<(String, Vec<VersionTypes>)>,
}

fn group_order(g: &str) -> (u8, &str) {
    // Built-in groups first, then everything else alphabetically.
    let builtin = !g.contains('.') || g.ends_with(".k8s.io");
    (if builtin { 0 } else { 1 }, g)
}

fn groups(registry: &Registry) -> Groups {
    let mut map: BTreeMap<String, BTreeMap<String, Vec<Arc<ResourceType>>>> = BTreeMap::new();
    for t in registry.all() {
        for v in &t.versions {
            map.entry(t.group.clone())
                .or_default()
                .entry(v.name.clone())
                .or_default()
                .push(t.clone());
        }
    }
    let mut groups: Vec<(String, Vec<VersionTypes>)> = map
        .into_iter()
        .map(|(g, versions)| {
            let mut vs: Vec<VersionTypes> = versions.into_iter().collect();
            vs.sort_by(|a, b| crate::crd::compare_versions(&a.0, &b.0));
            (g, vs)
        })
        .collect();
    groups.sort_by(|a, b| group_order(&a.0).cmp(&group_order(&b.0)));
    Groups { groups }
}

fn api_resource(t: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": t.plural,
        "singularName": t.singular,
        "namespaced": t.namespaced,
        "kind": t.kind,
        "verbs": t.verbs,
    });
    if !t.short_names.is_empty() {
        main["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        main["categories"] = json!(t.categories);
    }
    let mut out = vec![main];
    for s in &t.subresources {
        let (kind, verbs) = match s.as_str() {
            "scale" => ("Scale", vec!["get", "patch", "update"]),
            "finalize" => (t.kind.as_str(), vec!["update"]),
            _ => (t.kind.as_str(), vec!["get", "patch", "update"]),
        };
        let mut r = json!({
            "name": format!("{}/{}", t.plural, s),
            "singularName": "",
            "namespaced": t.namespaced,
            "kind": kind,
            "verbs": verbs,
        });
        if s == "scale" {
            r["group"] = json!("autoscaling");
            r["version"] = json!("v1");
        }
        out.push(r);
    }
    out
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` if nothing is served there.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut types: Vec<&Arc<ResourceType>> = registry
        .all()
        .filter(|t| t.group == group && t.version(version).is_some())
        .collect();
    if types.is_empty() {
        return None;
    }
    types.sort_by(|a, b| a.plural.cmp(&b.plural));
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": types.iter().flat_map(|t| api_resource(t)).collect::<Vec<_>>(),
    }))
}

fn api_group(name: &str, versions: &[VersionTypes]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|(v, _)| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(json!({})),
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// `/apis`.
pub fn group_list(registry: &Registry) -> Value {
    let g = groups(registry);
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": g.groups.iter().filter(|(n, _)| !n.is_empty()).map(|(n, vs)| api_group(n, vs)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`.
pub fn group(registry: &Registry, name: &str) -> Option<Value> {
    let g = groups(registry);
    let (n, vs) = g.groups.iter().find(|(n, _)| n == name && !n.is_empty())?;
    let mut v = api_group(n, vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn aggregated_resource(t: &ResourceType, version: &str) -> Value {
    let response_kind = json!({"group": t.group, "version": version, "kind": t.kind});
    let mut r = json!({
        "resource": t.plural,
        "responseKind": response_kind,
        "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": t.singular,
        "verbs": t.verbs,
    });
    if !t.short_names.is_empty() {
        r["shortNames"] = json!(t.short_names);
    }
    if !t.categories.is_empty() {
        r["categories"] = json!(t.categories);
    }
    let subs: Vec<Value> = t
        .subresources
        .iter()
        .map(|s| {
            let (kind, verbs) = match s.as_str() {
                "scale" => (
                    json!({"group": "autoscaling", "version": "v1", "kind": "Scale"}),
                    json!(["get", "patch", "update"]),
                ),
                "finalize" => (response_kind.clone(), json!(["update"])),
                _ => (response_kind.clone(), json!(["get", "patch", "update"])),
            };
            json!({"subresource": s, "responseKind": kind, "verbs": verbs})
        })
        .collect();
    if !subs.is_empty() {
        r["subresources"] = json!(subs);
    }
    r
}

/// The media type of aggregated discovery that `accept` asks for, if any.
pub fn aggregated_media_type(accept: &str) -> Option<&'static str> {
    let wants = |v: &str| {
        accept.split(',').any(|part| {
            part.contains("as=APIGroupDiscoveryList")
                && part.contains("g=apidiscovery.k8s.io")
                && part.split(';').any(|p| p.trim() == format!("v={v}"))
        })
    };
    if wants("v2") {
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    } else if wants("v2beta1") {
        Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList")
    } else {
        None
    }
}

/// Aggregated discovery for `/api` (`core == true`) or `/apis`.
pub fn aggregated(registry: &Registry, core: bool, api_version: &str) -> Value {
    let g = groups(registry);
    let items: Vec<Value> = g
        .groups
        .iter()
        .filter(|(n, _)| n.is_empty() == core)
        .map(|(n, vs)| {
            let mut metadata = json!({"creationTimestamp": null});
            if !n.is_empty() {
                metadata["name"] = json!(n);
            }
            json!({
                "metadata": metadata,
                "versions": vs.iter().map(|(v, types)| json!({
                    "version": v,
                    "resources": types.iter().map(|t| aggregated_resource(t, v)).collect::<Vec<_>>(),
                    "freshness": "Current",
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    })
}
