//! `landlord run` against the emulator: readiness follows the CRDs, the Lease elects one
//! leader among replicas and passes on at a clean stop, the election stays exclusive
//! under clock skew and hung renewals, and the endpoints answer as the kubelet and
//! Prometheus expect.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::jiff::SignedDuration;
use kube::api::{Api, PostParams};
use kube_emulator::{EmulatorHandle, FaultId, FaultRule};
use landlord::api::{Tenant, TenantSpec};
use landlord::operator::{Config, Election, Operator, SkewedClock};
use support::wait::{eventually, stays, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A plain HTTP/1.0 GET: status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path).await.expect("the endpoint answers")
}

async fn try_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

/// Whether the replica serving `addr` reports that it leads: the sample line
/// `landlord_leader 1` (not a substring: the metric's HELP text starts with "1 while").
async fn leads(addr: SocketAddr) -> bool {
    try_get(addr, "/metrics").await.is_some_and(|(_, metrics)| {
        metrics
            .lines()
            .any(|line| line.trim() == "landlord_leader 1")
    })
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
        backup: landlord::controller::BackupConfig::default(),
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
    eventually("replica-a reports leading", || leads(a_addr)).await;
    // b keeps trying for longer than its retry period, and stays a standby.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!leads(b_addr).await);
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
    eventually("replica-b reports leading", || leads(b_addr)).await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease = leases.get("landlord-leader").await.expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(1));
    b.stop().await;
}

/// Election timings for the tests below: short, with the same proportions as client-go's
/// defaults (the lease outlives the renew deadline by 3 s).
fn election(skew: SignedDuration) -> Election {
    Election {
        lease_duration: Duration::from_secs(8),
        renew_deadline: Duration::from_secs(5),
        retry_period: Duration::from_secs(1),
        clock: Arc::new(SkewedClock { offset: skew }),
    }
}

/// A replica of the operator, with its own identity and its own API user (so that the
/// emulator can tell its requests apart).
struct Replica {
    name: &'static str,
    operator: Operator,
}

impl Replica {
    async fn start(emulator: &EmulatorHandle, name: &'static str, skew: SignedDuration) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "landlord=info".into()))
            .with_test_writer()
            .try_init();
        let client = emulator
            .client_as(name, &["system:masters"])
            .expect("client");
        let operator = Operator::start_with_election(config(name), client, election(skew))
            .await
            .expect("operator starts");
        Replica { name, operator }
    }

    fn addr(&self) -> SocketAddr {
        self.operator.local_addr()
    }
}

/// When a sample was taken, and which replicas reported leading then.
type Sample = (Instant, Vec<bool>);

/// Which replicas report leading, sampled every few milliseconds for the whole test.
struct LeaderLog {
    names: Vec<&'static str>,
    samples: Arc<Mutex<Vec<Sample>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaderLog {
    fn start(replicas: &[&Replica]) -> Self {
        let addrs: Vec<SocketAddr> = replicas.iter().map(|r| r.addr()).collect();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let samples = samples.clone();
            async move {
                loop {
                    let mut leading = Vec::new();
                    for addr in &addrs {
                        leading.push(leads(*addr).await);
                    }
                    samples
                        .lock()
                        .expect("samples")
                        .push((Instant::now(), leading));
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        });
        LeaderLog {
            names: replicas.iter().map(|r| r.name).collect(),
            samples,
            task,
        }
    }

    /// Whether a sample taken after `since` saw replica `i` leading.
    fn saw_leading_since(&self, since: Instant, i: usize) -> bool {
        self.samples
            .lock()
            .expect("samples")
            .iter()
            .any(|(at, leading)| *at > since && leading[i])
    }

    /// Stops sampling; panics if two replicas ever reported leading at once.
    fn finish(self) -> Vec<Sample> {
        self.task.abort();
        let samples = self.samples.lock().expect("samples").clone();
        assert!(samples.len() > 100, "too few samples: {}", samples.len());
        for (at, leading) in &samples {
            let leaders: Vec<_> = self
                .names
                .iter()
                .zip(leading)
                .filter(|(_, l)| **l)
                .map(|(n, _)| *n)
                .collect();
            assert!(leaders.len() <= 1, "{leaders:?} led at once (at {at:?})");
        }
        samples
    }
}

/// When replica `i` was last, and first, seen leading.
fn seen_leading(samples: &[Sample], i: usize) -> (Option<Instant>, Option<Instant>) {
    let mut times = samples.iter().filter(|(_, l)| l[i]).map(|(at, _)| *at);
    let first = times.next();
    (times.next_back().or(first), first)
}

/// Makes `replica` stop renewing: every lease update it sends fails.
fn break_renewals(emulator: &EmulatorHandle, replica: &Replica) -> FaultId {
    emulator
        .inject_fault(FaultRule::fail(Some("update"), Some("leases"), 500).for_user(replica.name))
}

#[tokio::test]
async fn replicas_with_skewed_clocks_never_lead_together_and_the_standby_takes_over() {
    let emulator = kube_emulator::Emulator::start()
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    install_crds(&client).await;
    let lease_duration = election(SignedDuration::ZERO).lease_duration;

    // The leader's clock is an hour behind, the standby's an hour ahead: compared with
    // the standby's clock, the leader's renewTime is always two hours old.
    let behind = Replica::start(&emulator, "replica-behind", SignedDuration::from_hours(-1)).await;
    eventually("replica-behind leads", || leads(behind.addr())).await;
    let ahead = Replica::start(&emulator, "replica-ahead", SignedDuration::from_hours(1)).await;
    let log = LeaderLog::start(&[&behind, &ahead]);
    stays(
        "replica-behind holding the lease with replica-ahead standing by",
        lease_duration + Duration::from_secs(3),
        || async {
            holder(&client).await.as_deref() == Some("replica-behind")
                && leads(behind.addr()).await
                && !leads(ahead.addr()).await
        },
    )
    .await;

    // The leader stops renewing: the standby takes over once the lease expires.
    let broken = break_renewals(&emulator, &behind);
    eventually("replica-ahead takes over", || async {
        holder(&client).await.as_deref() == Some("replica-ahead") && leads(ahead.addr()).await
    })
    .await;
    assert!(
        !emulator.fault_hits(broken).is_empty(),
        "the renewals failed"
    );
    assert!(!leads(behind.addr()).await);
    emulator.remove_fault(broken);

    // The other way round: the leader's renewTime is now two hours in the future for the
    // standby, which must neither wait for it nor take over a live lease.
    stays(
        "replica-ahead holding the lease with replica-behind standing by",
        lease_duration + Duration::from_secs(3),
        || async {
            holder(&client).await.as_deref() == Some("replica-ahead")
                && leads(ahead.addr()).await
                && !leads(behind.addr()).await
        },
    )
    .await;
    let broken = break_renewals(&emulator, &ahead);
    eventually("replica-behind takes over again", || async {
        holder(&client).await.as_deref() == Some("replica-behind") && leads(behind.addr()).await
    })
    .await;
    assert!(
        !emulator.fault_hits(broken).is_empty(),
        "the renewals failed"
    );
    // The sampler runs on its own: let it see the takeover the check above saw.
    let took_over = Instant::now();
    eventually("the leader log sees replica-behind lead again", || async {
        log.saw_leading_since(took_over, 0)
    })
    .await;

    let samples = log.finish();
    let (behind_last, behind_first) = seen_leading(&samples, 0);
    let (ahead_last, ahead_first) = seen_leading(&samples, 1);
    let (behind_first, ahead_first, ahead_last) = (
        behind_first.expect("replica-behind seen leading"),
        ahead_first.expect("replica-ahead seen leading"),
        ahead_last.expect("replica-ahead seen leading"),
    );
    assert!(behind_first < ahead_first && ahead_last < behind_last.expect("seen"));
    let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
    let lease = leases.get("landlord-leader").await.expect("lease");
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(2));
    emulator.clear_faults();
    ahead.operator.stop().await;
    behind.operator.stop().await;
}

async fn create_tenant(client: &kube::Client, name: &str) {
    let spec: TenantSpec = serde_json::from_value(serde_json::json!({})).expect("spec");
    Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &Tenant::new(name, spec))
        .await
        .expect("Tenant created");
}

async fn namespace_exists(client: &kube::Client, name: &str) -> bool {
    Api::<Namespace>::all(client.clone())
        .get_opt(name)
        .await
        .expect("namespaces readable")
        .is_some()
}

#[tokio::test]
async fn a_leader_whose_renewals_hang_stops_reconciling_before_the_standby_takes_over() {
    let emulator = kube_emulator::Emulator::start()
        .await
        .expect("emulator starts");
    let client = emulator.client().expect("client");
    install_crds(&client).await;
    let timings = election(SignedDuration::ZERO);

    let a = Replica::start(&emulator, "replica-a", SignedDuration::ZERO).await;
    eventually("replica-a leads", || leads(a.addr())).await;
    // replica-a's controllers run: it provisions a first Tenant.
    create_tenant(&client, "before").await;
    eventually("replica-a provisioned tenant-before", || {
        namespace_exists(&client, "tenant-before")
    })
    .await;
    let b = Replica::start(&emulator, "replica-b", SignedDuration::ZERO).await;
    let log = LeaderLog::start(&[&a, &b]);

    // Every write replica-a sends from now on is recorded.
    let writes: Vec<FaultId> = ["create", "update", "patch", "delete"]
        .into_iter()
        .map(|verb| emulator.inject_fault(FaultRule::observe(Some(verb), None).for_user(a.name)))
        .collect();
    // Its lease updates hang; and a reconcile it starts hangs on its first write (the
    // finalizer), so that it is in flight when leadership ends.
    let renewals =
        emulator.inject_fault(FaultRule::hang(Some("update"), Some("leases")).for_user(a.name));
    let in_flight =
        emulator.inject_fault(FaultRule::hang(Some("patch"), Some("tenants")).for_user(a.name));
    let hung_at = Instant::now();
    create_tenant(&client, "during").await;
    wait_for(
        "replica-a's reconcile of `during` to be in flight",
        || async {
            let hits = emulator.fault_hits(in_flight);
            hits.iter()
                .any(|h| h.name.as_deref() == Some("during"))
                .then_some(())
        },
    )
    .await;

    eventually("replica-a gives up leading", || async {
        !leads(a.addr()).await
    })
    .await;
    let lost_at = Instant::now();
    assert!(
        !emulator.fault_hits(renewals).is_empty(),
        "replica-a's renewals hung"
    );
    assert!(
        lost_at - hung_at < timings.lease_duration,
        "replica-a led for {:?} without a renewal: longer than the lease",
        lost_at - hung_at
    );
    assert_ne!(
        holder(&client).await.as_deref(),
        Some("replica-b"),
        "replica-a stepped down before the lease could be taken over"
    );
    // The reconcile's request is answered now: a reconcile drained rather than aborted
    // would go on to create the tenant's namespace.
    emulator.remove_fault(in_flight);

    eventually("replica-b takes over", || async {
        holder(&client).await.as_deref() == Some("replica-b") && leads(b.addr()).await
    })
    .await;
    // The new leader did reconcile `during`: the check below is not vacuous.
    eventually("replica-b provisioned tenant-during", || {
        namespace_exists(&client, "tenant-during")
    })
    .await;
    let late: Vec<_> = writes
        .iter()
        .flat_map(|id| emulator.fault_hits(*id))
        .filter(|h| h.resource != "leases" && h.at > lost_at)
        .collect();
    assert!(
        late.is_empty(),
        "replica-a wrote after it stopped leading: {late:?}"
    );

    // replica-a's held lease updates carry the resourceVersion it read: once answered,
    // they are refused, and replica-b keeps the lease.
    emulator.remove_fault(renewals);
    stays(
        "replica-b leading, replica-a standing by",
        timings.retry_period * 3,
        || async {
            holder(&client).await.as_deref() == Some("replica-b")
                && leads(b.addr()).await
                && !leads(a.addr()).await
        },
    )
    .await;

    let samples = log.finish();
    let (a_last, _) = seen_leading(&samples, 0);
    let (_, b_first) = seen_leading(&samples, 1);
    assert!(
        a_last.expect("replica-a seen leading") < b_first.expect("replica-b seen leading"),
        "replica-a stopped leading before replica-b started"
    );
    emulator.clear_faults();
    b.operator.stop().await;
    a.operator.stop().await;
}
