//! A real Kubernetes control plane for the integration tests: etcd, kube-apiserver and
//! kube-controller-manager, built from source by `scripts/control-plane` (the versions
//! pinned in `testenv/go.mod`) and started here on loopback, in a fresh temporary
//! directory, as a production cluster configures them:
//!
//! - etcd, on two free loopback ports (clients, peers), data in the directory;
//! - kube-apiserver over HTTPS with a serving certificate from a CA generated here,
//!   `--authorization-mode=Node,RBAC`, a static token file for the users the tests act as
//!   ([`User`]), ServiceAccount signing keys generated here, and the admission plugins a
//!   production cluster runs ([`ADMISSION_PLUGINS`]);
//! - kube-controller-manager with the controllers a namespace's life needs
//!   ([`CONTROLLERS`]): without the namespace, garbage-collector and resource-quota
//!   controllers a deleted namespace never goes away.
//!
//! [`ControlPlane::start`] returns once the API server is ready and the controller
//! manager works (it has created the `default` ServiceAccount). Dropping the
//! [`ControlPlane`] stops the three processes and removes the directory; a watchdog
//! process does the same if the test binary dies first. The binaries come from
//! `LANDLORD_CONTROL_PLANE_BIN` when set, else from `scripts/control-plane` (which
//! builds them once into a cache outside the repository).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::Api;
use landlord::database::Password;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// `--enable-admission-plugins`: kube-apiserver's defaults, spelled out, plus what a
/// production cluster adds (`NodeRestriction`).
pub const ADMISSION_PLUGINS: &str = "NamespaceLifecycle,LimitRanger,ServiceAccount,\
TaintNodesByCondition,PodSecurity,Priority,DefaultTolerationSeconds,DefaultStorageClass,\
StorageObjectInUseProtection,PersistentVolumeClaimResize,RuntimeClass,CertificateApproval,\
CertificateSigning,ClusterTrustBundleAttest,CertificateSubjectRestriction,\
DefaultIngressClass,MutatingAdmissionPolicy,MutatingAdmissionWebhook,\
ValidatingAdmissionPolicy,ValidatingAdmissionWebhook,ResourceQuota,NodeRestriction";

/// `--controllers` of kube-controller-manager: what namespaces, owner references,
/// quotas and ServiceAccounts need to behave as in a cluster.
pub const CONTROLLERS: &str = "namespace-controller,garbage-collector-controller,\
resourcequota-controller,serviceaccount-controller,serviceaccount-token-controller,\
root-ca-certificate-publisher-controller,clusterrole-aggregation-controller";

/// How long the control plane may take to start on a loaded 2-core machine.
const STARTUP_DEADLINE: Duration = Duration::from_secs(180);

/// The users of the static token file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// `landlord-test-admin` in `system:masters`.
    Admin,
    /// The operator's ServiceAccount as the chart installs it,
    /// `system:serviceaccount:landlord:landlord`.
    Operator,
    /// `system:kube-controller-manager` (in `system:masters`, since it runs without
    /// per-controller ServiceAccount credentials).
    ControllerManager,
    /// `landlord-test-nobody`: authenticated, and granted nothing.
    Nobody,
}

impl User {
    const ALL: [User; 4] = [
        User::Admin,
        User::Operator,
        User::ControllerManager,
        User::Nobody,
    ];

    pub fn name(self) -> &'static str {
        match self {
            User::Admin => "landlord-test-admin",
            User::Operator => super::cluster::OPERATOR_USER,
            User::ControllerManager => "system:kube-controller-manager",
            User::Nobody => "landlord-test-nobody",
        }
    }

    fn groups(self) -> &'static str {
        match self {
            User::Admin | User::ControllerManager => "system:masters",
            User::Operator => "system:serviceaccounts,system:serviceaccounts:landlord",
            User::Nobody => "",
        }
    }
}

/// A running control plane; dropping it stops the processes and removes the directory.
pub struct ControlPlane {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// The CA (PEM) that signed the API server's serving certificate.
    pub ca_pem: String,
    ca_der: Vec<u8>,
    /// How long [`ControlPlane::start`] took, from spawning etcd to a working controller
    /// manager.
    pub startup: Duration,
    tokens: Vec<(User, String)>,
    dir: PathBuf,
    /// The controller manager, the API server, etcd: stopped in that order.
    processes: Vec<(&'static str, Child)>,
    watchdog: Option<Child>,
}

/// The directory of the three binaries: `LANDLORD_CONTROL_PLANE_BIN`, else what
/// `scripts/control-plane` prints (it builds them on first use, and is instant after).
pub fn bin_dir() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(dir) = std::env::var_os("LANDLORD_CONTROL_PLANE_BIN") {
            return PathBuf::from(dir);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/control-plane");
        let output = Command::new(&script)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{} does not run: {e}", script.display()));
        assert!(
            output.status.success(),
            "{} failed: the control plane could not be built",
            script.display()
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        PathBuf::from(stdout.lines().last().expect("the bin directory").trim())
    })
    .clone()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn random_token() -> String {
    Password::generate()
        .expect("random token")
        .expose()
        .to_owned()
}

fn temp_dir() -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "landlord-control-plane-{}-{n}-{}",
        std::process::id(),
        &random_token()[..8]
    ));
    fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// The CA (PEM, DER) and the API server's serving certificate and key (PEM) for every
/// name a client on this machine, or in the cluster, reaches it by.
fn serving_certificate() -> (String, Vec<u8>, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "landlord-test-kubernetes-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let names = [
        "127.0.0.1",
        "localhost",
        "10.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().expect("serving key");
    let cert = params.signed_by(&key, &ca).expect("serving certificate");
    (ca.pem(), ca.der().to_vec(), cert.pem(), key.serialize_pem())
}

impl ControlPlane {
    /// Starts etcd, kube-apiserver and kube-controller-manager and waits until they work.
    pub async fn start() -> Result<ControlPlane, String> {
        let bin = bin_dir();
        let began = Instant::now();
        let dir = temp_dir();
        let write = |name: &str, content: &str| -> PathBuf {
            let path = dir.join(name);
            fs::write(&path, content).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        };

        let (ca_pem, ca_der, cert_pem, key_pem) = serving_certificate();
        let ca_file = write("ca.crt", &ca_pem);
        let cert_file = write("apiserver.crt", &cert_pem);
        let key_file = write("apiserver.key", &key_pem);
        let sa_key_pair = KeyPair::generate().expect("ServiceAccount key");
        let sa_key = write("service-account.key", &sa_key_pair.serialize_pem());
        let sa_public = write("service-account.pub", &sa_key_pair.public_key_pem());
        let tokens: Vec<(User, String)> = User::ALL.iter().map(|u| (*u, random_token())).collect();
        let token_file = write(
            "tokens.csv",
            &tokens
                .iter()
                .map(|(user, token)| {
                    format!(
                        "{token},{},{},\"{}\"\n",
                        user.name(),
                        user.name(),
                        user.groups()
                    )
                })
                .collect::<String>(),
        );

        let mut plane = ControlPlane {
            url: String::new(),
            ca_pem,
            ca_der,
            startup: Duration::ZERO,
            tokens,
            dir: dir.clone(),
            processes: Vec::new(),
            watchdog: None,
        };

        let (etcd_port, peer_port, api_port) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        plane.spawn(
            "etcd",
            &bin,
            &[
                "--name=landlord-test".into(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=landlord-test={peer_url}"),
                "--unsafe-no-fsync=true".into(),
                "--log-level=warn".into(),
            ],
        )?;

        plane.url = format!("https://127.0.0.1:{api_port}");
        plane.spawn(
            "kube-apiserver",
            &bin,
            &[
                format!("--etcd-servers={etcd_url}"),
                "--bind-address=127.0.0.1".into(),
                "--advertise-address=127.0.0.1".into(),
                format!("--secure-port={api_port}"),
                format!("--cert-dir={}", dir.join("certs").display()),
                format!("--tls-cert-file={}", cert_file.display()),
                format!("--tls-private-key-file={}", key_file.display()),
                format!("--token-auth-file={}", token_file.display()),
                "--authorization-mode=Node,RBAC".into(),
                format!("--enable-admission-plugins={ADMISSION_PLUGINS}"),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
                format!("--service-account-key-file={}", sa_public.display()),
                format!("--service-account-signing-key-file={}", sa_key.display()),
                "--service-cluster-ip-range=10.0.0.0/24".into(),
                "--allow-privileged=true".into(),
                "--profiling=false".into(),
                "--v=0".into(),
            ],
        )?;

        let kubeconfig = dir.join("controller-manager.kubeconfig");
        kube_emulator::write_kubeconfig(
            &kubeconfig,
            &plane.url,
            plane.token(User::ControllerManager),
            Some(&plane.ca_pem),
        )
        .map_err(|e| e.to_string())?;
        plane.wait_ready().await?;
        plane.spawn(
            "kube-controller-manager",
            &bin,
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                format!("--controllers={CONTROLLERS}"),
                format!("--service-account-private-key-file={}", sa_key.display()),
                format!("--root-ca-file={}", ca_file.display()),
                "--use-service-account-credentials=false".into(),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--concurrent-namespace-syncs=4".into(),
                "--concurrent-gc-syncs=4".into(),
                "--profiling=false".into(),
                "--v=0".into(),
            ],
        )?;
        plane.processes.reverse();
        plane.watch_parent();
        plane.wait_controller_manager().await?;
        plane.startup = began.elapsed();
        Ok(plane)
    }

    fn spawn(&mut self, name: &'static str, bin: &Path, args: &[String]) -> Result<(), String> {
        let log = fs::File::create(self.dir.join(format!("{name}.log")))
            .map_err(|e| format!("{name}.log: {e}"))?;
        let child = Command::new(bin.join(name))
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{} does not start: {e}", bin.join(name).display()))?;
        self.processes.push((name, child));
        Ok(())
    }

    /// The last lines of a process's log, for a failure message.
    fn log_tail(&self, name: &str) -> String {
        let text = fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Fails with the process's log if one of them exited.
    fn check_alive(&mut self) -> Result<(), String> {
        for i in 0..self.processes.len() {
            let (name, child) = &mut self.processes[i];
            if let Ok(Some(status)) = child.try_wait() {
                let name = *name;
                return Err(format!(
                    "{name} exited ({status}):\n{}",
                    self.log_tail(name)
                ));
            }
        }
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = self.client();
        let until = Instant::now() + STARTUP_DEADLINE;
        loop {
            self.check_alive()?;
            let request = hyper::http::Request::get("/readyz")
                .body(Vec::new())
                .expect("request");
            let last = match client.request_text(request).await {
                Ok(text) if text.trim() == "ok" => return Ok(()),
                Ok(text) => text,
                Err(e) => e.to_string(),
            };
            if Instant::now() >= until {
                return Err(format!(
                    "kube-apiserver not ready after {STARTUP_DEADLINE:?}: {last}\n{}",
                    self.log_tail("kube-apiserver")
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The controller manager works once its ServiceAccount controller has created the
    /// `default` ServiceAccount of `default`.
    async fn wait_controller_manager(&mut self) -> Result<(), String> {
        let accounts: Api<ServiceAccount> = Api::namespaced(self.client(), "default");
        let until = Instant::now() + STARTUP_DEADLINE;
        loop {
            self.check_alive()?;
            if let Ok(Some(_)) = accounts.get_opt("default").await {
                return Ok(());
            }
            if Instant::now() >= until {
                return Err(format!(
                    "kube-controller-manager did not create the default ServiceAccount in {STARTUP_DEADLINE:?}:\n{}",
                    self.log_tail("kube-controller-manager")
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// If the test binary dies without dropping this, a shell process stops the control
    /// plane and removes its directory; [`Drop`] ends that process first.
    fn watch_parent(&mut self) {
        let pids: Vec<String> = self
            .processes
            .iter()
            .map(|(_, c)| c.id().to_string())
            .collect();
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill -9 {pids} 2>/dev/null; sleep 1; rm -rf '{dir}'",
            pid = std::process::id(),
            pids = pids.join(" "),
            dir = self.dir.display()
        );
        self.watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
    }

    /// The bearer token of `user`.
    pub fn token(&self, user: User) -> &str {
        &self
            .tokens
            .iter()
            .find(|(u, _)| *u == user)
            .expect("every user has a token")
            .1
    }

    /// A client acting as `user`.
    pub fn client_as(&self, user: User) -> Client {
        let mut config = kube::Config::new(self.url.parse().expect("URL"));
        config.default_namespace = "default".to_owned();
        config.root_cert = Some(vec![self.ca_der.clone()]);
        let value = hyper::http::HeaderValue::from_str(&format!("Bearer {}", self.token(user)))
            .expect("header");
        config
            .headers
            .push((hyper::http::header::AUTHORIZATION, value));
        Client::try_from(config).expect("client")
    }

    /// A client acting as the administrator (`system:masters`).
    pub fn client(&self) -> Client {
        self.client_as(User::Admin)
    }

    /// Writes a kubeconfig for kubectl and kube-rs: the URL, the CA, the admin's token.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), String> {
        kube_emulator::write_kubeconfig(
            path,
            &self.url,
            self.token(User::Admin),
            Some(&self.ca_pem),
        )
        .map_err(|e| e.to_string())
    }

    /// The directory of the processes' data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::env::var_os("LANDLORD_KEEP_CONTROL_PLANE").is_none() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `LANDLORD_TEST_CLUSTER`: which cluster [`super::cluster::Harness`] runs against.
pub const SWITCH: &str = "LANDLORD_TEST_CLUSTER";

/// Whether the tests run against the real control plane (`LANDLORD_TEST_CLUSTER=real`)
/// rather than the in-process emulator (unset, or `emulator`).
pub fn real_cluster() -> bool {
    match std::env::var(SWITCH).as_deref() {
        Err(_) | Ok("") | Ok("emulator") => false,
        Ok("real") => true,
        Ok(other) => panic!("{SWITCH}={other}: expected `emulator` or `real`"),
    }
}

/// The cluster of a [`super::cluster::Harness`]: the emulator, or a real control plane.
///
/// It dereferences to the emulator's handle, so that the tests that use what only the
/// emulator has (request counts, fault injection, dropped watches) read
/// `harness.emulator.request_counts()`; against the real control plane those panic and
/// say so. [`TestCluster::write_kubeconfig`] works against both.
pub enum TestCluster {
    Emulator(kube_emulator::EmulatorHandle),
    Real(ControlPlane),
}

impl TestCluster {
    /// The emulator (with or without RBAC), or a real control plane under
    /// `LANDLORD_TEST_CLUSTER=real` (which always authorizes with RBAC).
    pub async fn start(rbac: bool) -> TestCluster {
        if real_cluster() {
            // The ports are picked free, then bound by etcd and kube-apiserver: another
            // test's process can take one in between ("address already in use", seen in
            // CI). Such a start is tried again with new ports; any other failure is final.
            let mut attempt = 1;
            let plane = loop {
                match ControlPlane::start().await {
                    Ok(plane) => break plane,
                    Err(e) if attempt < 3 && e.contains("address already in use") => {
                        eprintln!("control plane start {attempt} lost a port race; again: {e}");
                        attempt += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            eprintln!(
                "control plane started in {:.1} s at {}",
                plane.startup.as_secs_f64(),
                plane.url
            );
            TestCluster::Real(plane)
        } else {
            TestCluster::Emulator(
                kube_emulator::Emulator::builder()
                    .rbac(rbac)
                    .serve()
                    .await
                    .expect("emulator starts"),
            )
        }
    }

    pub fn is_real(&self) -> bool {
        matches!(self, TestCluster::Real(_))
    }

    /// The emulator, unless this is a real control plane.
    pub fn emulator(&self) -> Option<&kube_emulator::EmulatorHandle> {
        match self {
            TestCluster::Emulator(e) => Some(e),
            TestCluster::Real(_) => None,
        }
    }

    /// The real control plane, if this is one.
    pub fn control_plane(&self) -> Option<&ControlPlane> {
        match self {
            TestCluster::Emulator(_) => None,
            TestCluster::Real(plane) => Some(plane),
        }
    }

    /// A client acting as the administrator.
    pub fn admin_client(&self) -> Client {
        match self {
            TestCluster::Emulator(e) => e.client().expect("client"),
            TestCluster::Real(plane) => plane.client(),
        }
    }

    /// A client acting as the operator's ServiceAccount, as the chart installs it.
    pub fn operator_client(&self) -> Client {
        match self {
            TestCluster::Emulator(e) => e
                .client_as(
                    super::cluster::OPERATOR_USER,
                    &["system:serviceaccounts", "system:serviceaccounts:landlord"],
                )
                .expect("client"),
            TestCluster::Real(plane) => plane.client_as(User::Operator),
        }
    }

    /// Writes a kubeconfig with the administrator's credentials, for kubectl.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), String> {
        match self {
            TestCluster::Emulator(e) => e.write_kubeconfig(path).map_err(|e| e.to_string()),
            TestCluster::Real(plane) => plane.write_kubeconfig(path),
        }
    }
}

impl std::ops::Deref for TestCluster {
    type Target = kube_emulator::EmulatorHandle;

    fn deref(&self) -> &kube_emulator::EmulatorHandle {
        self.emulator().unwrap_or_else(|| {
            panic!(
                "this test uses a facility only the emulator has (request counts, fault \
                 injection, dropped watches): it runs against the emulator only, not with \
                 {SWITCH}=real"
            )
        })
    }
}
