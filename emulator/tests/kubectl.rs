//! The real kubectl (/usr/bin/kubectl) driving an in-process emulator, as a platform
//! engineer would.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube_emulator::{Emulator, EmulatorHandle};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const KUBECTL: &str = "/usr/bin/kubectl";

fn kubectl_path() -> String {
    if std::path::Path::new(KUBECTL).exists() {
        return KUBECTL.to_string();
    }
    panic!(
        "kubectl is missing at {KUBECTL}: install it (e.g. `apt-get install kubectl` from the Kubernetes apt repository, or a static binary from dl.k8s.io) to run the kubectl tests"
    );
}

struct Kubectl {
    _emulator: EmulatorHandle,
    dir: PathBuf,
}

impl Kubectl {
    async fn start(name: &str) -> Result<Self, Box<dyn std::error::Error>> {
        Self::with(name, Emulator::start().await?)
    }

    /// kubectl with the kubeconfig `emulator` writes.
    fn with(name: &str, emulator: EmulatorHandle) -> Result<Self, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!(
            "kube-emulator-kubectl-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        emulator.write_kubeconfig(&dir.join("kubeconfig"))?;
        Ok(Self {
            _emulator: emulator,
            dir,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_path());
        c.args(args)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("KUBECACHEDIR", self.dir.join("cache"))
            .env("HOME", &self.dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs kubectl with `stdin`; returns stdout, failing the test on a non-zero exit.
    async fn run(&self, args: &[&str], stdin: &str) -> Result<String, Box<dyn std::error::Error>> {
        let (code, stdout, stderr) = self.output(args, stdin).await?;
        assert_eq!(
            code,
            Some(0),
            "kubectl {args:?} failed:\n{stdout}\n{stderr}"
        );
        Ok(stdout)
    }

    /// Runs kubectl with `stdin`; returns its exit code, stdout and stderr.
    async fn output(
        &self,
        args: &[&str],
        stdin: &str,
    ) -> Result<(Option<i32>, String, String), Box<dyn std::error::Error>> {
        let mut child = self.command(args).spawn()?;
        if let Some(mut i) = child.stdin.take() {
            tokio::io::AsyncWriteExt::write_all(&mut i, stdin.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        Ok((
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ))
    }

    fn client(&self) -> Result<kube::Client, Box<dyn std::error::Error>> {
        Ok(self._emulator.client()?)
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: tenants.landlord.dev
spec:
  group: landlord.dev
  scope: Cluster
  names: {plural: tenants, singular: tenant, kind: Tenant, shortNames: [tn], categories: [landlord]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Owner, type: string, jsonPath: .spec.owner}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              owner: {type: string}
"#;

const TENANT: &str = r#"
apiVersion: landlord.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec: {owner: alice}
"#;

// kubectl apply (with its default server-side field validation, which reads /openapi/v3)
// of a CRD and a custom resource; `get -o yaml`; `get` with printer columns and by category.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_a_crd_and_a_custom_resource_and_prints_columns() -> TestResult {
    let k = Kubectl::start("apply").await?;
    k.run(&["apply", "-f", "-"], CRD).await?;
    let out = k.run(&["apply", "-f", "-"], TENANT).await?;
    assert!(out.contains("tenant.landlord.dev/acme created"), "{out}");
    let yaml = k.run(&["get", "tenant", "acme", "-o", "yaml"], "").await?;
    assert!(
        yaml.contains("owner: alice") && yaml.contains("uid:"),
        "{yaml}"
    );
    let table = k.run(&["get", "tn"], "").await?;
    let header = table.lines().next().unwrap_or("");
    assert!(
        header.contains("OWNER") && header.contains("AGE"),
        "{table}"
    );
    assert!(table.contains("acme") && table.contains("alice"), "{table}");
    let by_category = k.run(&["get", "landlord"], "").await?;
    assert!(
        by_category.lines().any(|l| l.starts_with("acme")),
        "{by_category}"
    );
    Ok(())
}

// `kubectl delete --wait` returns once the finalizer is removed (by the test, as a controller would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_delete_waits_for_finalizers() -> TestResult {
    let k = Kubectl::start("delete").await?;
    let api: Api<ConfigMap> = Api::default_namespaced(k.client()?);
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "held", "finalizers": ["example.dev/hold"]}}))?;
    api.create(&PostParams::default(), &cm).await?;
    let child = k
        .command(&[
            "delete",
            "configmap",
            "held",
            "--wait=true",
            "--timeout=20s",
        ])
        .spawn()?;
    let mut marked = None;
    for _ in 0..100 {
        let o = api.get("held").await?;
        if o.metadata.deletion_timestamp.is_some() {
            marked = Some(o);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut o = marked.ok_or("kubectl did not delete")?;
    o.metadata.finalizers = None;
    api.replace("held", &PostParams::default(), &o).await?;
    let out = child.wait_with_output().await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configmap \"held\" deleted"));
    assert!(api.get_opt("held").await?.is_none());
    Ok(())
}

// `kubectl get --watch` prints a row for a change made while it watches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_receives_an_event() -> TestResult {
    let k = Kubectl::start("watch").await?;
    let api: Api<ConfigMap> = Api::default_namespaced(k.client()?);
    let mut child = k
        .command(&["get", "configmaps", "--watch", "--request-timeout=20s"])
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cm: ConfigMap = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "seen"}, "data": {"a": "b"}}),
    )?;
    api.create(&PostParams::default(), &cm).await?;
    let found = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("seen") {
                return true;
            }
        }
        false
    })
    .await?;
    child.start_kill()?;
    assert!(found, "kubectl --watch did not print the new configmap");
    Ok(())
}

const CONFIGMAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {team: a}}
data: {mode: fast, level: "1"}
"#;

// `kubectl patch --type merge` (JSON merge patch) and `kubectl patch` with its default,
// strategic merge patch, on a ConfigMap
// (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_patch_merge_and_strategic() -> TestResult {
    let k = Kubectl::start("patch").await?;
    let api: Api<ConfigMap> = Api::default_namespaced(k.client()?);
    k.run(&["create", "-f", "-"], CONFIGMAP).await?;
    let out = k
        .run(
            &[
                "patch",
                "configmap",
                "settings",
                "--type",
                "merge",
                "-p",
                r#"{"data":{"mode":"slow","level":null}}"#,
            ],
            "",
        )
        .await?;
    assert!(out.contains("configmap/settings patched"), "{out}");
    let cm = api.get("settings").await?;
    let data = cm.data.clone().unwrap_or_default();
    assert_eq!(data.get("mode").map(String::as_str), Some("slow"));
    assert!(!data.contains_key("level"), "{data:?}");
    let out = k
        .run(
            &[
                "patch",
                "configmap",
                "settings",
                "-p",
                r#"{"metadata":{"labels":{"tier":"gold"},"finalizers":["example.dev/keep"]}}"#,
            ],
            "",
        )
        .await?;
    assert!(out.contains("configmap/settings patched"), "{out}");
    let cm = api.get("settings").await?;
    let labels = cm.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("gold"));
    assert_eq!(
        cm.metadata.finalizers.clone().unwrap_or_default(),
        vec!["example.dev/keep".to_string()]
    );
    // Nothing changes: kubectl says so.
    let out = k
        .run(
            &[
                "patch",
                "configmap",
                "settings",
                "-p",
                r#"{"metadata":{"finalizers":null}}"#,
            ],
            "",
        )
        .await?;
    assert!(out.contains("patched"), "{out}");
    assert!(api.get("settings").await?.metadata.finalizers.is_none());
    Ok(())
}

// `kubectl apply --server-side` twice, the second time with a change: the object is
// created, then updated, and kubectl is its `Apply` manager
// (https://kubernetes.io/docs/reference/using-api/server-side-apply/).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_server_side_twice() -> TestResult {
    let k = Kubectl::start("ssa").await?;
    let api: Api<ConfigMap> = Api::default_namespaced(k.client()?);
    let out = k
        .run(&["apply", "--server-side", "-f", "-"], CONFIGMAP)
        .await?;
    assert!(
        out.contains("configmap/settings serverside-applied"),
        "{out}"
    );
    let changed = CONFIGMAP.replace("mode: fast, level: \"1\"", "mode: fast");
    let out = k
        .run(&["apply", "--server-side", "-f", "-"], &changed)
        .await?;
    assert!(
        out.contains("configmap/settings serverside-applied"),
        "{out}"
    );
    let cm = api.get("settings").await?;
    let data = cm.data.clone().unwrap_or_default();
    assert!(
        !data.contains_key("level"),
        "a field no longer applied is removed: {data:?}"
    );
    let managers: Vec<(Option<String>, Option<String>)> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.manager, m.operation))
        .collect();
    assert_eq!(
        managers,
        vec![(Some("kubectl".to_string()), Some("Apply".to_string()))]
    );
    // The Tenant CRD and a Tenant, server-side too.
    k.run(&["apply", "--server-side", "-f", "-"], CRD).await?;
    let out = k
        .run(&["apply", "--server-side", "-f", "-"], TENANT)
        .await?;
    assert!(
        out.contains("tenant.landlord.dev/acme serverside-applied"),
        "{out}"
    );
    let out = k
        .run(
            &["apply", "--server-side", "-f", "-"],
            &TENANT.replace("alice", "bob"),
        )
        .await?;
    assert!(out.contains("serverside-applied"), "{out}");
    let yaml = k.run(&["get", "tenant", "acme", "-o", "yaml"], "").await?;
    assert!(yaml.contains("owner: bob"), "{yaml}");
    Ok(())
}

// Client-side `kubectl apply` of a changed object: kubectl GETs it and sends a strategic
// merge patch computed from the last-applied-configuration annotation, which removes
// what the previous apply set and this one does not
// (https://kubernetes.io/docs/tasks/manage-kubernetes-objects/declarative-config/#how-apply-calculates-differences-and-merges-changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_client_side_apply_of_a_changed_object() -> TestResult {
    let k = Kubectl::start("csa").await?;
    let api: Api<ConfigMap> = Api::default_namespaced(k.client()?);
    let out = k.run(&["apply", "-f", "-"], CONFIGMAP).await?;
    assert!(out.contains("configmap/settings created"), "{out}");
    let changed = CONFIGMAP.replace("mode: fast, level: \"1\"", "mode: safe");
    let out = k.run(&["apply", "-f", "-"], &changed).await?;
    assert!(out.contains("configmap/settings configured"), "{out}");
    let cm = api.get("settings").await?;
    let data = cm.data.clone().unwrap_or_default();
    assert_eq!(data.get("mode").map(String::as_str), Some("safe"));
    assert!(!data.contains_key("level"), "{data:?}");
    let annotations = cm.metadata.annotations.unwrap_or_default();
    assert!(
        annotations
            .get("kubectl.kubernetes.io/last-applied-configuration")
            .is_some_and(|a| a.contains("safe")),
        "{annotations:?}"
    );
    let out = k.run(&["apply", "-f", "-"], &changed).await?;
    assert!(out.contains("configmap/settings unchanged"), "{out}");
    // A custom resource: kubectl uses a JSON merge patch for it.
    k.run(&["apply", "-f", "-"], CRD).await?;
    k.run(&["apply", "-f", "-"], TENANT).await?;
    let out = k
        .run(&["apply", "-f", "-"], &TENANT.replace("alice", "carol"))
        .await?;
    assert!(out.contains("tenant.landlord.dev/acme configured"), "{out}");
    let yaml = k.run(&["get", "tenant", "acme", "-o", "yaml"], "").await?;
    assert!(yaml.contains("owner: carol"), "{yaml}");
    Ok(())
}

// kubectl's typed clients send protobuf bodies (`kubectl create namespace`, `kubectl
// create configmap`), which the real server accepts
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_namespace_and_configmap_send_protobuf() -> TestResult {
    let k = Kubectl::start("protobuf").await?;
    let out = k.run(&["create", "namespace", "team-a"], "").await?;
    assert!(out.contains("namespace/team-a created"), "{out}");
    let out = k
        .run(
            &[
                "create",
                "configmap",
                "settings",
                "-n",
                "team-a",
                "--from-literal=mode=fast",
                "--from-literal=level=1",
            ],
            "",
        )
        .await?;
    assert!(out.contains("configmap/settings created"), "{out}");
    let api: Api<ConfigMap> = Api::namespaced(k.client()?, "team-a");
    let cm = api.get("settings").await?;
    let data = cm.data.unwrap_or_default();
    assert_eq!(data.get("mode").map(String::as_str), Some("fast"));
    assert_eq!(data.get("level").map(String::as_str), Some("1"));
    let managers: Vec<Option<String>> = cm
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.manager)
        .collect();
    assert_eq!(managers, vec![Some("kubectl-create".to_string())]);
    Ok(())
}

// `kubectl create role` sends a Role in protobuf; a rule on core resources has the API
// group "" (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#role-example),
// which protobuf encodes as an empty element of the repeated `apiGroups`. The real server
// keeps it; so must the emulator (issue 13 item 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_role_on_core_resources() -> TestResult {
    let k = Kubectl::start("create-role").await?;
    let out = k
        .run(
            &[
                "create",
                "role",
                "r",
                "--verb=get",
                "--verb=list",
                "--resource=configmaps,jobs.batch",
            ],
            "",
        )
        .await?;
    assert!(
        out.contains("role.rbac.authorization.k8s.io/r created"),
        "{out}"
    );
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::default_namespaced(k.client()?);
    let rules = roles.get("r").await?.rules.unwrap_or_default();
    let got: Vec<(Vec<String>, Vec<String>, Vec<String>)> = rules
        .into_iter()
        .map(|r| {
            (
                r.api_groups.unwrap_or_default(),
                r.resources.unwrap_or_default(),
                r.verbs,
            )
        })
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        got,
        vec![
            (
                strings(&[""]),
                strings(&["configmaps"]),
                strings(&["get", "list"])
            ),
            (
                strings(&["batch"]),
                strings(&["jobs"]),
                strings(&["get", "list"])
            ),
        ]
    );
    let out = k
        .run(
            &[
                "create",
                "clusterrole",
                "cr",
                "--verb=get",
                "--resource=namespaces",
            ],
            "",
        )
        .await?;
    assert!(
        out.contains("clusterrole.rbac.authorization.k8s.io/cr created"),
        "{out}"
    );
    Ok(())
}

// `kubectl auth can-i` sends a SelfSubjectAccessReview in protobuf
// (https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access);
// without a token file every request is allowed, so the answer is "yes". (RBAC answers:
// `kubectl_auth_can_i_under_rbac_over_https` below.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_sends_a_protobuf_review() -> TestResult {
    let k = Kubectl::start("can-i").await?;
    let out = k.run(&["auth", "can-i", "get", "configmaps"], "").await?;
    assert_eq!(out.trim(), "yes");
    let out = k
        .run(
            &["auth", "can-i", "delete", "namespaces", "--all-namespaces"],
            "",
        )
        .await?;
    assert_eq!(out.trim(), "yes");
    Ok(())
}

const TOKENS: &str = "\
admin-token,admin,uid-admin,\"system:masters\"
alice-token,alice,uid-alice,\"team-a\"
";

/// A user `alice` bound in `team-a` to a Role allowing `get` on configmaps; namespaces
/// `team-a` and `team-b`; created by the administrator through kube-rs (which trusts the
/// emulator's CA).
async fn alice_reads_configmaps_in_team_a(
    admin: kube::Client,
) -> Result<(), Box<dyn std::error::Error>> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    for ns in ["team-a", "team-b"] {
        namespaces
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?,
            )
            .await?;
    }
    let roles: Api<Role> = Api::namespaced(admin.clone(), "team-a");
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "configmap-getter"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]
            }))?,
        )
        .await?;
    let bindings: Api<RoleBinding> = Api::namespaced(admin, "team-a");
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "alice-gets-configmaps"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "configmap-getter"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]
            }))?,
        )
        .await?;
    Ok(())
}

// `kubectl auth can-i` under RBAC: client-go sends the bearer token only over HTTPS, so
// the token-file emulator serves HTTPS and the kubeconfig carries its CA. kubectl prints
// "yes" or "no" (https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access)
// and reports the answer in its exit code as well (`kubectl auth can-i --quiet`: "suppress
// output and just return the exit code"; 0 for yes, 1 for no); a RoleBinding grants its
// Role's rules in its namespace only
// (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#rolebinding-and-clusterrolebinding);
// an unknown token is refused with 401 Unauthorized
// (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#static-token-file:
// the token must be one of the file's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_under_rbac_over_https() -> TestResult {
    let emulator = Emulator::builder().token_file(TOKENS).serve().await?;
    assert!(emulator.url().starts_with("https://"), "{}", emulator.url());
    alice_reads_configmaps_in_team_a(emulator.client()?).await?;
    let k = Kubectl::with("can-i-rbac", emulator)?;

    let alice = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--token=alice-token".to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let cases: [(&[&str], &str, i32); 4] = [
        (
            &["auth", "can-i", "get", "configmaps", "-n", "team-a"],
            "yes",
            0,
        ),
        (
            &["auth", "can-i", "get", "configmaps", "-n", "team-b"],
            "no",
            1,
        ),
        (
            &["auth", "can-i", "delete", "configmaps", "-n", "team-a"],
            "no",
            1,
        ),
        (
            &["auth", "can-i", "delete", "namespaces", "--all-namespaces"],
            "no",
            1,
        ),
    ];
    for (args, answer, exit) in cases {
        let args = alice(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = k.output(&args, "").await?;
        assert_eq!(
            (stdout.trim(), code),
            (answer, Some(exit)),
            "kubectl {args:?}:\n{stdout}\n{stderr}"
        );
    }

    // The administrator of the kubeconfig (system:masters) may do anything.
    let out = k
        .run(
            &["auth", "can-i", "delete", "namespaces", "--all-namespaces"],
            "",
        )
        .await?;
    assert_eq!(out.trim(), "yes");

    // alice's Role allows get, not list: `kubectl get configmaps` is forbidden, with the
    // real message.
    let (code, stdout, stderr) = k
        .output(
            &["--token=alice-token", "get", "configmaps", "-n", "team-a"],
            "",
        )
        .await?;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team-a\""
        ),
        "{stderr}"
    );

    // An unknown token: 401, which kubectl reports as Unauthorized.
    let (code, stdout, stderr) = k
        .output(
            &[
                "--token=not-a-token",
                "auth",
                "can-i",
                "get",
                "configmaps",
                "-n",
                "team-a",
            ],
            "",
        )
        .await?;
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(stdout.trim().is_empty(), "{stdout}");
    assert!(stderr.contains("Unauthorized"), "{stderr}");
    Ok(())
}
