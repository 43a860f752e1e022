//! `landlord run` against the emulator: readiness follows the CRDs, the Lease elects one
//! leader among replicas and passes on at a clean stop, and the endpoints answer as the
//! kubelet and Prometheus expect.

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use landlord::operator::{Config, Operator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.0 GET: status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn config(identity: &str) -> Config {
    Config {
        listen_addr: "127.0.0.1:0".parse().expect("address"),
        recheck_interval: Duration::from_millis(100),
        lease_name: "landlord-leader".to_owned(),
        lease_namespace: Some("default".to_owned()),
        identity: identity.to_owned(),
        resync: Duration::from_secs(300),
        concurrency: 4,
        pod_labels: None,
    }
}

async fn install_crds(client: &kube::Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in landlord::api::crds() {
        api.create(&PostParams::default(), &crd)
            .await
            .expect("CRD created");
    }
}

async fn holder(client: &kube::Client) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    leases
        .get_opt("landlord-leader")
        .await
        .expect("lease readable")
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

#[tokio::test]
async fn readiness_follows_the_crds_and_says_what_is_missing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("landlord=debug,kube_runtime=debug")
        .with_test_writer()
        .try_init();
    let emulator = kube_emulator::Emulator::start()
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    let operator = Operator::start(config("replica-a"), client.clone())
        .await
        .expect("operator starts");
    let addr = operator.local_addr();

    assert_eq!(get(addr, "/healthz").await, (200, "ok\n".to_owned()));
    eventually("/readyz names the missing CRD", || async {
        let (status, body) = get(addr, "/readyz").await;
        status == 503 && body.contains("tenants.landlord.dev is not installed")
    })
    .await;

    install_crds(&client).await;
    eventually("/readyz passes once the CRDs are served", || async {
        get(addr, "/readyz").await.0 == 200
    })
    .await;
    let (_, metrics) = get(addr, "/metrics").await;
    assert!(metrics.contains("landlord_ready 1"), "{metrics}");
    assert!(
        metrics.contains("landlord_api_checks_total{result=\"crd_missing\"}"),
        "{metrics}"
    );

    operator.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the endpoints close on stop"
    );
}

#[tokio::test]
async fn one_replica_leads_and_hands_over_on_a_clean_stop() {
    let emulator = kube_emulator::Emulator::start()
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    install_crds(&client).await;

    let a = Operator::start(config("replica-a"), client.clone())
        .await
        .expect("a starts");
    eventually("replica-a holds the lease", || async {
        holder(&client).await.as_deref() == Some("replica-a")
    })
    .await;
    let b = Operator::start(config("replica-b"), client.clone())
        .await
        .expect("b starts");
    let (a_addr, b_addr) = (a.local_addr(), b.local_addr());
    eventually("replica-a reports leading", || async {
        get(a_addr, "/metrics")
            .await
            .1
            .contains("landlord_leader 1")
    })
    .await;
    // b keeps trying for longer than its retry period, and stays a standby.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        get(b_addr, "/metrics")
            .await
            .1
            .contains("landlord_leader 0")
    );
    assert_eq!(holder(&client).await.as_deref(), Some("replica-a"));
    assert_eq!(
        get(b_addr, "/readyz").await.0,
        200,
        "a standby is ready to take over"
    );

    a.stop().await;
    // Released, not left to expire: b takes over within one retry period, well before
    // the 15 s lease duration.
    eventually("replica-b takes over", || async {
        holder(&client).await.as_deref() == Some("replica-b")
    })
    .await;
    eventually("replica-b reports leading", || async {
        get(b_addr, "/metrics")
            .await
            .1
            .contains("landlord_leader 1")
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease = leases.get("landlord-leader").await.expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(1));
    b.stop().await;
}
