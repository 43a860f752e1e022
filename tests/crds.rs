//! The committed CRDs (`crds/` and the Helm chart's copy) are exactly what the Rust types
//! generate, and they carry what `kubectl` users rely on: descriptions for `kubectl
//! explain`, printer columns, short names, the `landlord` category and CEL rules.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

const CRD_DIRS: [&str; 2] = ["crds", "charts/landlord/crds"];

fn committed(dir: &str) -> Vec<(String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<(String, String)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (
                name,
                std::fs::read_to_string(&p).expect("readable CRD file"),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let mut generated = landlord::crd::render_all().expect("CRDs render");
    generated.sort();
    for dir in CRD_DIRS {
        let files = committed(dir);
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&files),
            names(&generated),
            "{dir}/ must hold exactly one file per CRD; regenerate with `cargo run -- crds --output-dir {dir}`"
        );
        for ((file, on_disk), (_, fresh)) in files.iter().zip(&generated) {
            assert!(
                on_disk == fresh,
                "{dir}/{file} differs from the generated CRD; regenerate with `cargo run -- crds --output-dir {dir}`"
            );
        }
    }
}

#[test]
fn the_printed_stream_holds_every_crd() {
    let stream = landlord::crd::render_stream().expect("CRDs render");
    let names: Vec<&str> = stream
        .lines()
        .filter_map(|l| l.strip_prefix("  name: "))
        .collect();
    assert_eq!(
        names,
        [
            "tenants.landlord.dev",
            "databaseservers.landlord.dev",
            "backupstorages.landlord.dev",
            "tenantbackups.landlord.dev",
            "tenantrestores.landlord.dev",
            "erasurereceipts.landlord.dev"
        ]
    );
}

fn crd_json(kind: &str) -> Value {
    landlord::api::crds()
        .into_iter()
        .map(|crd| serde_json::to_value(crd).expect("CRD serializes"))
        .find(|crd| crd["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

/// Every property below the root must carry a description, or `kubectl explain` shows
/// nothing for it.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let child = format!("{path}.{name}");
            if prop
                .get("description")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                out.push(child.clone());
            }
            undocumented(prop, &child, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        undocumented(values, &format!("{path}{{}}"), out);
    }
}

fn collect_rules(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(rules) = map
                .get("x-kubernetes-validations")
                .and_then(Value::as_array)
            {
                out.extend(
                    rules
                        .iter()
                        .filter_map(|r| r["rule"].as_str().map(str::to_owned)),
                );
            }
            map.values().for_each(|v| collect_rules(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_rules(v, out)),
        _ => {}
    }
}

#[test]
fn every_kind_is_documented_listed_and_categorized() {
    let mut short_names = BTreeSet::new();
    for kind in [
        "Tenant",
        "DatabaseServer",
        "BackupStorage",
        "TenantBackup",
        "TenantRestore",
        "ErasureReceipt",
    ] {
        let crd = crd_json(kind);
        assert_eq!(crd["spec"]["group"], "landlord.dev");
        assert_eq!(crd["spec"]["scope"], "Cluster", "{kind} is cluster-scoped");
        assert_eq!(
            crd["spec"]["names"]["categories"],
            serde_json::json!(["landlord"]),
            "{kind}"
        );
        let short = crd["spec"]["names"]["shortNames"][0]
            .as_str()
            .expect("a short name");
        assert!(
            short_names.insert(short.to_owned()),
            "short name {short} is used twice"
        );

        let version = &crd["spec"]["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(
            version["subresources"]["status"],
            serde_json::json!({}),
            "{kind} has a status subresource"
        );
        let columns: Vec<&str> = version["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert!(
            columns.len() >= 3,
            "{kind} needs useful printer columns, has {columns:?}"
        );
        assert_eq!(
            columns.last(),
            Some(&"Age"),
            "{kind}: Age comes last, as in built-in kinds"
        );

        let schema = &version["schema"]["openAPIV3Schema"];
        let mut missing = Vec::new();
        undocumented(schema, "", &mut missing);
        // apiVersion/kind/metadata are described by Kubernetes itself.
        missing.retain(|p| ![".apiVersion", ".kind", ".metadata"].contains(&p.as_str()));
        assert!(
            missing.is_empty(),
            "{kind}: fields without a description: {missing:?}"
        );
        let status = &schema["properties"]["status"]["properties"];
        assert!(
            status.get("observedGeneration").is_some(),
            "{kind} status has observedGeneration"
        );
        assert_eq!(
            status["conditions"]["x-kubernetes-list-type"], "map",
            "{kind} conditions are a map keyed by type"
        );
    }
}

#[test]
fn immutability_rules_are_in_the_schema() {
    let mut rules = Vec::new();
    collect_rules(&crd_json("Tenant"), &mut rules);
    assert!(
        rules
            .iter()
            .any(|r| r.contains("oldSelf.spec.namespaces.primary")),
        "{rules:?}"
    );
    assert!(
        rules.iter().any(|r| r == "self == oldSelf"),
        "serverRef and keyProvider are immutable"
    );
    for kind in ["ErasureReceipt", "TenantBackup", "TenantRestore"] {
        let crd = crd_json(kind);
        let spec_rules = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["x-kubernetes-validations"];
        assert_eq!(
            spec_rules[0]["rule"], "self == oldSelf",
            "{kind} spec is immutable"
        );
    }
}
