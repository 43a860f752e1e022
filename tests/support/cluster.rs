//! A Landlord operator against an in-process emulator, or against a real control plane
//! with `LANDLORD_TEST_CLUSTER=real` (`control_plane.rs`): the harness of the controller
//! tests.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use landlord::api::{Tenant, TenantSpec, find_condition};
use landlord::operator::{Config, Operator};
use serde_json::json;

use super::control_plane::TestCluster;
use super::wait::poll;

pub struct Harness {
    /// The emulator, or the real control plane: emulator-only facilities (request
    /// counts, fault injection) panic against the latter.
    pub emulator: TestCluster,
    pub client: Client,
    /// What the operator connects as: the admin, or the chart's ServiceAccount.
    pub operator_client: Client,
    /// `--pod-labels` of the operators this harness starts.
    pub pod_labels: Option<std::collections::BTreeMap<String, String>>,
    /// `--resync-seconds` of the operators this harness starts: the production default
    /// ([`PRODUCTION_RESYNC`]), so that what a watch must trigger is tested through the
    /// watch. Only tests of drift outside Kubernetes (a dropped role) shorten it.
    pub resync: Duration,
    /// How the operators this harness starts run backups (the tests' PostgreSQL's
    /// pg_dump).
    pub backup: landlord::controller::BackupConfig,
    pub operator: Option<Operator>,
}

/// The default of `landlord run --resync-seconds`.
pub const PRODUCTION_RESYNC: Duration = Duration::from_secs(300);

/// The operator's ServiceAccount, as the chart installs it.
pub const OPERATOR_USER: &str = "system:serviceaccount:landlord:landlord";

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(false).await
    }

    /// With `rbac`, the emulator authorizes every request and the operator runs with
    /// exactly the chart's permissions (`tests/fixtures/chart-rbac.json`, kept equal to
    /// the rendered chart by `scripts/check-chart.py`). The real control plane always
    /// authorizes; without `rbac` the operator runs as its administrator.
    pub async fn start_with(rbac: bool) -> Harness {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                std::env::var("RUST_LOG").unwrap_or_else(|_| "landlord=info".to_owned()),
            )
            .with_test_writer()
            .try_init();
        let emulator = TestCluster::start(rbac).await;
        let admin = emulator.admin_client();
        let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
        for crd in landlord::api::crds() {
            crds.create(&PostParams::default(), &crd)
                .await
                .expect("CRD created");
        }
        wait_established(&crds).await;
        let operator_namespace = Namespace {
            metadata: ObjectMeta {
                name: Some("landlord".to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &operator_namespace)
            .await
            .expect("operator namespace created");
        let operator_client = if rbac {
            install_chart_rbac(&admin).await;
            emulator.operator_client()
        } else {
            admin.clone()
        };
        let mut harness = Harness {
            emulator,
            client: admin,
            operator_client: operator_client.clone(),
            pod_labels: None,
            resync: PRODUCTION_RESYNC,
            backup: landlord::controller::BackupConfig {
                pg_dump: Some(std::path::Path::new(super::postgres::DEFAULT_BIN).join("pg_dump")),
                ..landlord::controller::BackupConfig::default()
            },
            operator: None,
        };
        harness.start_operator_with(operator_client).await;
        harness
    }

    /// Starts an operator as [`Harness::operator_client`].
    pub async fn start_operator(&mut self) {
        self.start_operator_with(self.operator_client.clone()).await;
    }

    pub async fn start_operator_with(&mut self, client: Client) {
        let config = Config {
            listen_addr: "127.0.0.1:0".parse().expect("address"),
            recheck_interval: Duration::from_secs(1),
            lease_name: "landlord-leader".to_owned(),
            lease_namespace: Some("landlord".to_owned()),
            identity: "test".to_owned(),
            resync: self.resync,
            concurrency: 4,
            pod_labels: self.pod_labels.clone(),
            backup: self.backup.clone(),
        };
        self.operator = Some(
            Operator::start(config, client)
                .await
                .expect("operator starts"),
        );
    }

    pub async fn stop_operator(&mut self) {
        if let Some(operator) = self.operator.take() {
            operator.stop().await;
        }
    }

    /// The running operator's `/metrics` page.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self
            .operator
            .as_ref()
            .expect("an operator runs")
            .local_addr();
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: operator\r\n\r\n")
            .await
            .expect("request");
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .expect("response");
        response
    }

    /// How many reconciles of `controller` the running operator finished, by any outcome
    /// (`landlord_reconciles_total`): proof that it did look, not only that it wrote
    /// nothing.
    pub async fn reconciles(&self, controller: &str) -> u64 {
        let needle = format!("controller=\"{controller}\"");
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with("landlord_reconciles_total{") && l.contains(&needle))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }

    pub fn tenants(&self) -> Api<Tenant> {
        Api::all(self.client.clone())
    }

    pub async fn create_tenant(&self, name: &str, spec: serde_json::Value) -> Tenant {
        let spec: TenantSpec = serde_json::from_value(spec).expect("valid spec");
        self.tenants()
            .create(&PostParams::default(), &Tenant::new(name, spec))
            .await
            .expect("Tenant created")
    }

    pub async fn condition(&self, tenant: &str, type_: &str) -> Option<(String, String, String)> {
        let t = self.tenants().get_opt(tenant).await.expect("readable")?;
        let c = find_condition(&t.status?.conditions, type_)?.clone();
        Some((format!("{:?}", c.status), c.reason, c.message))
    }

    pub async fn wait_condition(
        &self,
        tenant: &str,
        type_: &str,
        status: &str,
    ) -> (String, String, String) {
        let found = poll(|| async {
            self.condition(tenant, type_)
                .await
                .filter(|c| c.0 == status)
        })
        .await;
        match found {
            Some(c) => c,
            None => {
                let all = self
                    .tenants()
                    .get(tenant)
                    .await
                    .ok()
                    .and_then(|t| t.status)
                    .map(|s| s.conditions);
                panic!("{tenant}: {type_} never became {status}; conditions {all:?}");
            }
        }
    }
}

/// Waits until the API server serves every CRD of Landlord (a real one takes a moment).
async fn wait_established(crds: &Api<CustomResourceDefinition>) {
    for crd in landlord::api::crds() {
        let name = crd.metadata.name.clone().expect("CRD name");
        let established = poll(|| async {
            let crd = crds.get(&name).await.ok()?;
            crd.status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
                .then_some(())
        })
        .await;
        assert!(established.is_some(), "CRD {name} never became Established");
    }
}

pub async fn install_chart_rbac(admin: &Client) {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("../fixtures/chart-rbac.json")).expect("fixture");
    let subject = json!([{"kind": "ServiceAccount", "name": "landlord", "namespace": "landlord"}]);
    let objects = [
        (
            "rbac.authorization.k8s.io/v1",
            "clusterroles",
            None,
            json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "landlord"}, "rules": fixture["clusterRoleRules"]}),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "clusterrolebindings",
            None,
            json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "landlord"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "landlord"}}),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "roles",
            Some("landlord"),
            json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "landlord-leader-election", "namespace": "landlord"},
            "rules": fixture["leaseRoleRules"]}),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "rolebindings",
            Some("landlord"),
            json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "landlord-leader-election", "namespace": "landlord"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "landlord-leader-election"}}),
        ),
    ];
    for (api_version, plural, namespace, object) in objects {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = kube::core::GroupVersionKind::gvk(
            group,
            version,
            object["kind"].as_str().expect("kind"),
        );
        let resource = kube::core::ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<kube::core::DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(admin.clone(), ns, &resource),
            None => Api::all_with(admin.clone(), &resource),
        };
        let object: kube::core::DynamicObject = serde_json::from_value(object).expect("object");
        api.create(&PostParams::default(), &object)
            .await
            .expect("RBAC object created");
    }
}

pub async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("readable").is_some()
}
