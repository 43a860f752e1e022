//! The library API: start an emulator in-process, get clients for it, count requests,
//! inject faults, write a kubeconfig.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::header::{AUTHORIZATION, HeaderValue};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::auth::{Authenticator, UserInfo};
use crate::cluster::Cluster;
use crate::faults::{FaultHit, FaultId, FaultRule, Faults};
use crate::metrics::RequestCounter;
use crate::server::{self, Shared};
use crate::tls::ServingTls;

/// Why an emulator could not start or a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot build a client: {0}")]
    Client(String),
    #[error("invalid token file: {0}")]
    TokenFile(String),
    #[error("the token file has no user in group system:masters to act as administrator")]
    NoAdminToken,
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Configures an emulator before it starts.
#[derive(Debug, Clone)]
pub struct Emulator {
    listen: String,
    history_limit: usize,
    bookmark_interval: Duration,
    watch_list: bool,
    rbac: bool,
    token_file: Option<String>,
    /// `None`: HTTPS exactly when a token file is given.
    tls: Option<bool>,
}

impl Default for Emulator {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".to_string(),
            history_limit: 100_000,
            bookmark_interval: Duration::from_secs(60),
            watch_list: false,
            rbac: false,
            token_file: None,
            tls: None,
        }
    }
}

/// The first token of a static token file whose user is in `system:masters`: the user
/// kube-apiserver lets do anything, so the one a kubeconfig for an administrator carries.
fn admin_token_in(token_file: &str) -> Option<String> {
    token_file
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find(|l| l.contains(crate::rbac::PRIVILEGED_GROUP))
        .and_then(|l| l.split(',').next())
        .map(|t| t.trim().trim_matches('"').to_string())
}

fn random_token() -> String {
    (0..32).map(|_| fastrand::alphanumeric()).collect()
}

/// The user the admin client and the written kubeconfig act as.
pub const ADMIN_USER: &str = "kubernetes-admin";

impl Emulator {
    pub fn builder() -> Self {
        Self::default()
    }

    /// Starts an emulator on a free loopback port with default settings.
    pub async fn start() -> Result<EmulatorHandle, EmulatorError> {
        Self::default().serve().await
    }

    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = addr.to_string();
        self
    }

    /// How many changes are kept for watches and paged lists (older ones get 410 Gone).
    pub fn history_limit(mut self, n: usize) -> Self {
        self.history_limit = n.max(1);
        self
    }

    /// How often watches that allow bookmarks get one (a minute by default, as the real
    /// watch cache; besides, one comes 2 s before a watch's timeout).
    pub fn bookmark_interval(mut self, every: Duration) -> Self {
        self.bookmark_interval = every;
        self
    }

    /// The WatchList feature gate (`--feature-gates=WatchList=true`): watches with
    /// `sendInitialEvents` (streaming lists). Off by default, as in kube-apiserver v1.33,
    /// which then refuses them (422).
    pub fn watch_list(mut self, enabled: bool) -> Self {
        self.watch_list = enabled;
        self
    }

    /// Authenticates requests by bearer token and authorizes them by the stored RBAC
    /// objects (401/403 like kube-apiserver with `--authorization-mode=RBAC`).
    pub fn rbac(mut self, enabled: bool) -> Self {
        self.rbac = enabled;
        self
    }

    /// Users from a kube-apiserver static token file (`token,user,uid,"group1,group2"`);
    /// implies [`Emulator::rbac`]. The administrator is the first user in `system:masters`.
    /// Also turns on [`Emulator::tls`] unless it was set explicitly: kubectl (client-go)
    /// sends bearer tokens only over HTTPS.
    pub fn token_file(mut self, content: &str) -> Self {
        self.token_file = Some(content.to_string());
        self.rbac = true;
        self
    }

    /// Serves HTTPS with a CA and serving certificate generated at start (see
    /// [`crate::tls`]) instead of plain HTTP. The default is plain HTTP without a token file
    /// and HTTPS with one.
    pub fn tls(mut self, enabled: bool) -> Self {
        self.tls = Some(enabled);
        self
    }

    /// Binds and starts serving in the current tokio runtime.
    pub async fn serve(self) -> Result<EmulatorHandle, EmulatorError> {
        let listener =
            TcpListener::bind(&self.listen)
                .await
                .map_err(|source| EmulatorError::Bind {
                    addr: self.listen.clone(),
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: self.listen.clone(),
                source,
            })?;
        let (mut authenticator, admin_token) = match &self.token_file {
            Some(content) => {
                let a = Authenticator::from_token_file(content)
                    .map_err(|e| EmulatorError::TokenFile(e.to_string()))?;
                let token = admin_token_in(content).ok_or(EmulatorError::NoAdminToken)?;
                (a, token)
            }
            None => (Authenticator::new(), random_token()),
        };
        if self.token_file.is_none() {
            authenticator.insert(
                admin_token.clone(),
                UserInfo {
                    name: ADMIN_USER.to_string(),
                    uid: String::new(),
                    groups: vec![crate::rbac::PRIVILEGED_GROUP.to_string()],
                },
            );
        }
        let tls = if self.tls.unwrap_or(self.token_file.is_some()) {
            Some(ServingTls::generate(addr.ip())?)
        } else {
            None
        };
        let (drop_watches, _) = watch::channel(0);
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            cluster: Mutex::new(Cluster::new(self.history_limit)),
            requests: RequestCounter::default(),
            faults: Faults::default(),
            authenticator: RwLock::new(authenticator),
            rbac: self.rbac,
            drop_watches,
            shutdown,
            address: addr.to_string(),
            bookmark_interval: self.bookmark_interval,
            watch_list: self.watch_list,
        });
        tokio::spawn(server::serve(
            listener,
            shared.clone(),
            tls.as_ref().map(ServingTls::acceptor),
        ));
        Ok(EmulatorHandle {
            shared,
            addr,
            admin_token,
            tls,
        })
    }
}

/// A running emulator; it stops when dropped.
pub struct EmulatorHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    admin_token: String,
    tls: Option<ServingTls>,
}

impl EmulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://127.0.0.1:PORT` when serving TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether the emulator serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The CA certificate (PEM) the serving certificate is signed by, when serving TLS.
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(ServingTls::ca_pem)
    }

    /// The CA certificate (DER), when serving TLS: the root a client must trust.
    pub fn ca_certificate_der(&self) -> Option<&[u8]> {
        self.tls.as_ref().map(ServingTls::ca_der)
    }

    fn client_with_token(&self, token: &str) -> Result<kube::Client, EmulatorError> {
        let uri = self
            .url()
            .parse()
            .map_err(|e: hyper::http::uri::InvalidUri| EmulatorError::Client(e.to_string()))?;
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".to_string();
        config.root_cert = self.ca_certificate_der().map(|der| vec![der.to_vec()]);
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| EmulatorError::Client(e.to_string()))?;
        config.headers.push((AUTHORIZATION, value));
        kube::Client::try_from(config).map_err(|e| EmulatorError::Client(e.to_string()))
    }

    /// A client acting as the cluster administrator.
    pub fn client(&self) -> Result<kube::Client, EmulatorError> {
        self.client_with_token(&self.admin_token)
    }

    /// A client acting as `user` in `groups` (`system:authenticated` is added; a
    /// `system:serviceaccount:<ns>:<name>` user gets the ServiceAccount groups).
    pub fn client_as(&self, user: &str, groups: &[&str]) -> Result<kube::Client, EmulatorError> {
        let token = self.token_for(user, groups);
        self.client_with_token(&token)
    }

    /// Registers a new bearer token for `user` in `groups` and returns it.
    pub fn token_for(&self, user: &str, groups: &[&str]) -> String {
        let token = random_token();
        if let Ok(mut a) = self.shared.authenticator.write() {
            a.insert(
                token.clone(),
                UserInfo {
                    name: user.to_string(),
                    uid: String::new(),
                    groups: groups.iter().map(|s| s.to_string()).collect(),
                },
            );
        }
        token
    }

    /// The bearer token of the administrator.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Writes a kubeconfig (the [`EmulatorHandle::url`], the CA as
    /// `certificate-authority-data` when serving TLS, the admin token) for kubectl and
    /// kube-rs.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), EmulatorError> {
        write_kubeconfig(
            path,
            &self.url(),
            &self.admin_token,
            self.ca_certificate_pem(),
        )
    }

    /// How many requests with this verb reached this resource (`tenants`, `tenants/status`).
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.shared.requests.get(verb, resource)
    }

    /// All request counts by `(verb, resource)`.
    pub fn request_counts(&self) -> BTreeMap<(String, String), u64> {
        self.shared.requests.snapshot()
    }

    pub fn reset_request_counts(&self) {
        self.shared.requests.reset();
    }

    pub fn inject_fault(&self, rule: FaultRule) -> FaultId {
        self.shared.faults.add(rule)
    }

    /// Removes one injected rule, releasing the requests it holds
    /// ([`crate::FaultAction::Hang`]).
    pub fn remove_fault(&self, id: FaultId) {
        self.shared.faults.remove(id);
    }

    /// The requests an injected rule matched so far, in order of arrival: proof that a
    /// fault fired, and when.
    pub fn fault_hits(&self, id: FaultId) -> Vec<FaultHit> {
        self.shared.faults.hits(id)
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Ends every open watch (clients see the stream close and re-watch).
    pub fn drop_watches(&self) {
        self.shared.drop_watches.send_modify(|n| *n += 1);
    }

    /// Forgets the change history, so watches and continues from older resourceVersions get
    /// 410 Gone.
    pub fn compact(&self) {
        self.shared.lock().store.compact();
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().store.current_rv()
    }
}

impl Drop for EmulatorHandle {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// Writes a kubeconfig for a server at `url` with a bearer token; `certificate_authority`
/// (PEM) becomes the cluster's `certificate-authority-data`, which an `https://` server
/// needs unless it has a publicly trusted certificate.
pub fn write_kubeconfig(
    path: &Path,
    url: &str,
    token: &str,
    certificate_authority: Option<&str>,
) -> Result<(), EmulatorError> {
    use base64::Engine;
    let ca = certificate_authority
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-emulator\n  cluster:\n    server: {url}\n{ca}contexts:\n- name: kube-emulator\n  context:\n    cluster: kube-emulator\n    namespace: default\n    user: {ADMIN_USER}\ncurrent-context: kube-emulator\nusers:\n- name: {ADMIN_USER}\n  user:\n    token: {token}\npreferences: {{}}\n"
    );
    std::fs::write(path, text).map_err(|source| EmulatorError::Write {
        path: path.display().to_string(),
        source,
    })
}
