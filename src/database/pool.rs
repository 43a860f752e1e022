//! A small bounded pool of administrative connections to one server.
//!
//! A semaphore bounds the connections open at once (idle ones included); idle connections
//! to the administrative database are reused, connections to other databases are closed
//! after use. Counters feed metrics and the provisioning benchmark.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Config, NoTls, Row};

use super::auth::AuthGuard;
use super::error::DatabaseError;
use super::tls::MakeRustlsConnect;

/// Idle time before TCP keepalive probes, tokio-postgres's default.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// How long the client waits for any one statement: the server's `statement_timeout`
/// plus a margin for the answer to arrive.
const CLIENT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(45);

/// Counters of one server's connections and statements since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AdminStats {
    /// Statements sent to the server (each `execute`/`query` is one).
    pub statements: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Most connections open at the same time.
    pub peak_connections_open: u64,
}

#[derive(Default)]
struct Counters {
    statements: AtomicU64,
    opened: AtomicU64,
    open: AtomicU64,
    peak: AtomicU64,
}

pub(crate) struct Pool {
    server: String,
    host: String,
    port: u16,
    user: String,
    password: String,
    config: Config,
    tls: Option<MakeRustlsConnect>,
    connect_timeout: Duration,
    permits: Semaphore,
    idle: Mutex<Vec<Client>>,
    counters: Counters,
}

impl Pool {
    /// A pool of at most `max` connections (at least one) made with `config`.
    pub(crate) fn new(
        server: String,
        user: String,
        password: String,
        config: Config,
        tls: Option<MakeRustlsConnect>,
        max: usize,
    ) -> Self {
        let connect_timeout = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(Duration::from_secs(10));
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(host) => host.clone(),
                _ => String::new(),
            })
            .unwrap_or_default();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        Pool {
            connect_timeout,
            host,
            port,
            server,
            user,
            password,
            config,
            tls,
            permits: Semaphore::new(max.max(1)),
            idle: Mutex::new(Vec::new()),
            counters: Counters::default(),
        }
    }

    pub(crate) fn server(&self) -> &str {
        &self.server
    }

    pub(crate) fn stats(&self) -> AdminStats {
        AdminStats {
            statements: self.counters.statements.load(Ordering::Relaxed),
            connections_opened: self.counters.opened.load(Ordering::Relaxed),
            connections_open: self.counters.open.load(Ordering::Relaxed),
            peak_connections_open: self.counters.peak.load(Ordering::Relaxed),
        }
    }

    /// A connection to the administrative database, reused when one is idle.
    pub(crate) async fn get(&self) -> Result<PooledClient<'_>, DatabaseError> {
        let permit = self.acquire().await?;
        loop {
            let candidate = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
            match candidate {
                Some(client) if !client.is_closed() => {
                    return Ok(PooledClient {
                        pool: self,
                        client: Some(client),
                        reusable: true,
                        _permit: permit,
                    });
                }
                Some(closed) => self.close(closed),
                None => break,
            }
        }
        self.connect(None, permit, true).await
    }

    /// A new connection to `database`, closed when dropped.
    pub(crate) async fn connect_to(
        &self,
        database: &str,
    ) -> Result<PooledClient<'_>, DatabaseError> {
        let permit = self.acquire().await?;
        self.connect(Some(database), permit, false).await
    }

    async fn acquire(&self) -> Result<SemaphorePermit<'_>, DatabaseError> {
        // The semaphore is never closed, so this only fails if that changes.
        self.permits
            .acquire()
            .await
            .map_err(|_| DatabaseError::Unreachable {
                server: self.server.clone(),
                detail: "the connection pool is closed".to_owned(),
            })
    }

    async fn connect<'a>(
        &'a self,
        database: Option<&str>,
        permit: SemaphorePermit<'a>,
        reusable: bool,
    ) -> Result<PooledClient<'a>, DatabaseError> {
        // Idle connections hold permits of their own: make room by closing one.
        self.close_idle_over(self.permits.available_permits());
        let mut config = self.config.clone();
        if let Some(database) = database {
            config.dbname(database);
        }
        let secrets = [self.password.as_str()];
        let map = |e: tokio_postgres::Error| {
            DatabaseError::from_postgres(&e, &self.server, &self.user, &secrets)
        };
        let connect = async {
            match &self.tls {
                None => {
                    // Without TLS the server is not verified: its messages pass through
                    // the guard that refuses cleartext and MD5 password requests.
                    let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                        .await
                        .map_err(|e| DatabaseError::Unreachable {
                            server: self.server.clone(),
                            detail: format!("error connecting to server: {e}"),
                        })?;
                    let _ = tcp.set_nodelay(true);
                    // As tokio-postgres does for its own sockets (`keepalives(true)`).
                    let _ = socket2::SockRef::from(&tcp)
                        .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(KEEPALIVE_IDLE));
                    let (client, connection) = config
                        .connect_raw(AuthGuard::new(tcp, true), NoTls)
                        .await
                        .map_err(map)?;
                    tokio::spawn(connection);
                    Ok(client)
                }
                Some(tls) => {
                    let (client, connection) = config.connect(tls.clone()).await.map_err(map)?;
                    tokio::spawn(connection);
                    Ok(client)
                }
            }
        };
        // tokio-postgres bounds the TCP connect only; bound TLS and authentication too.
        let client = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| DatabaseError::Unreachable {
                server: self.server.clone(),
                detail: format!(
                    "no answer within {:?} (TCP connect, TLS and authentication)",
                    self.connect_timeout
                ),
            })??;
        self.counters.opened.fetch_add(1, Ordering::Relaxed);
        let open = self.counters.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.counters.peak.fetch_max(open, Ordering::Relaxed);
        Ok(PooledClient {
            pool: self,
            client: Some(client),
            reusable,
            _permit: permit,
        })
    }

    /// Closes idle connections until at most `keep` remain.
    fn close_idle_over(&self, keep: usize) {
        let surplus: Vec<Client> = match self.idle.lock() {
            Ok(mut idle) if idle.len() > keep => {
                let excess = idle.len() - keep;
                idle.drain(..excess).collect()
            }
            _ => Vec::new(),
        };
        for client in surplus {
            self.close(client);
        }
    }

    fn close(&self, client: Client) {
        drop(client);
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection borrowed from the pool; it goes back when dropped, unless it was
/// [discarded](PooledClient::discard) or is not to the administrative database.
pub(crate) struct PooledClient<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    reusable: bool,
    _permit: SemaphorePermit<'a>,
}

impl PooledClient<'_> {
    /// Closes the connection instead of returning it, e.g. after an error left its
    /// session state (an advisory lock, a transaction) unknown.
    pub(crate) fn discard(mut self) {
        self.reusable = false;
    }

    fn client(&self) -> Result<&Client, DatabaseError> {
        self.client
            .as_ref()
            .ok_or_else(|| DatabaseError::Unreachable {
                server: self.pool.server.clone(),
                detail: "connection already returned".to_owned(),
            })
    }

    /// Bounds one statement on the client side too: the server's `statement_timeout`
    /// cannot help when the server (or the network) stops answering.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, DatabaseError>>,
    ) -> Result<T, DatabaseError> {
        tokio::time::timeout(CLIENT_STATEMENT_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| {
                Err(DatabaseError::Unreachable {
                    server: self.pool.server.clone(),
                    detail: format!("no answer to a statement within {CLIENT_STATEMENT_TIMEOUT:?}"),
                })
            })
    }

    fn map(&self, secrets: &[&str]) -> impl Fn(tokio_postgres::Error) -> DatabaseError {
        let server = self.pool.server.clone();
        let user = self.pool.user.clone();
        let mut all: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        all.push(self.pool.password.clone());
        move |e| {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            DatabaseError::from_postgres(&e, &server, &user, &refs)
        }
    }

    /// Runs one statement without parameters (DDL); `secrets` are redacted from errors.
    pub(crate) async fn execute_ddl(
        &self,
        sql: &str,
        secrets: &[&str],
    ) -> Result<(), DatabaseError> {
        self.pool
            .counters
            .statements
            .fetch_add(1, Ordering::Relaxed);
        let client = self.client()?;
        self.bounded(async { client.batch_execute(sql).await.map_err(self.map(secrets)) })
            .await
    }

    /// Runs one query with bound parameters.
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DatabaseError> {
        self.pool
            .counters
            .statements
            .fetch_add(1, Ordering::Relaxed);
        let client = self.client()?;
        self.bounded(async { client.query(sql, params).await.map_err(self.map(&[])) })
            .await
    }

    /// Runs one query with bound parameters that returns exactly one row.
    pub(crate) async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DatabaseError> {
        self.pool
            .counters
            .statements
            .fetch_add(1, Ordering::Relaxed);
        let client = self.client()?;
        self.bounded(async { client.query_one(sql, params).await.map_err(self.map(&[])) })
            .await
    }

    /// Column `index` of `row`, as `T`.
    pub(crate) fn column<'r, T: FromSql<'r>>(
        &self,
        row: &'r Row,
        index: usize,
    ) -> Result<T, DatabaseError> {
        row.try_get(index).map_err(self.map(&[]))
    }

    /// Runs one query with bound parameters that returns at most one row.
    pub(crate) async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DatabaseError> {
        self.pool
            .counters
            .statements
            .fetch_add(1, Ordering::Relaxed);
        let client = self.client()?;
        self.bounded(async { client.query_opt(sql, params).await.map_err(self.map(&[])) })
            .await
    }
}

impl Drop for PooledClient<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if self.reusable
                && !client.is_closed()
                && let Ok(mut idle) = self.pool.idle.lock()
            {
                idle.push(client);
                return;
            }
            self.pool.close(client);
        }
    }
}
