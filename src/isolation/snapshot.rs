//! Snapshot tests: the JSON of every object built for representative Tenants, compared
//! with `tests/snapshots/isolation/<case>.json`. A mismatch prints a line diff; run with
//! `UPDATE_SNAPSHOTS=1` to rewrite the files after an intended change, and review them.

use std::path::PathBuf;

use super::tests::{config, example_tenant, minimal_tenant, server, tenant};
use super::{build, validate};
use crate::api::{DatabaseServer, Tenant};

/// A unified-style line diff of two texts (longest common subsequence).
fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{:>5} {}\n", i + 1, a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{:>5} {}\n", j + 1, b[j]));
            j += 1;
        }
    }
    out
}

fn assert_snapshot(case: &str, tenant: &Tenant, server: Option<&DatabaseServer>) {
    let validated = validate(tenant, server, &config()).unwrap();
    let actual = serde_json::to_string_pretty(&build(&validated)).unwrap() + "\n";
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "snapshots",
        "isolation",
    ]
    .iter()
    .collect::<PathBuf>()
    .join(format!("{case}.json"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run with UPDATE_SNAPSHOTS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "the objects built for {case} differ from {} (- expected, + built; line numbers of each side):\n{}\nIf the change is intended, rerun with UPDATE_SNAPSHOTS=1 and review the file.",
            path.display(),
            diff(&expected, &actual)
        );
    }
}

#[test]
fn snapshot_example_tenant() {
    assert_snapshot("example-tenant", &example_tenant(), None);
}

#[test]
fn snapshot_minimal_tenant() {
    assert_snapshot("minimal-tenant", &minimal_tenant("beta"), None);
}

#[test]
fn snapshot_database_server_with_cidrs() {
    let server = server("  network:\n    cidrs: [10.0.12.7/32, 10.0.13.0/24]\n");
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: gamma}
spec:
  owners: [{kind: User, name: gina@example.com}]
  database: {serverRef: pg-main}
  isolation:
    podSecurity: baseline
    quota: {pods: 10}
",
    );
    assert_snapshot("database-cidrs", &tenant, Some(&server));
}

#[test]
fn snapshot_database_server_in_cluster() {
    let server = server(
        "  network:\n    namespace: databases\n    podSelector: {app.kubernetes.io/name: postgresql}\n",
    );
    let tenant = tenant(
        "apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: delta}
spec:
  namespaces:
    primary: delta-prod
    additional: [{name: delta-dev}]
    annotations: {example.com/contact: ops@delta.example}
  database: {serverRef: pg-main}
  isolation:
    network:
      dns:
        namespaceSelector: {kubernetes.io/metadata.name: dns-system}
        podSelector: {app: coredns}
      egress:
        - description: partner API, except its admin range
          peers: [{ipBlock: {cidr: 198.51.100.0/24, except: [198.51.100.128/25]}}]
          ports: [{port: 443}, {protocol: UDP, port: 4500, endPort: 4510}]
        - peers: [{namespaceSelector: {team: shared}, podSelector: {app: cache}}]
",
    );
    assert_snapshot("database-in-cluster", &tenant, Some(&server));
}

#[test]
fn diff_marks_changed_lines() {
    assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "-    2 b\n+    2 x\n");
    assert_eq!(diff("a\n", "a\n"), "");
}
