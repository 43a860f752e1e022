//! A real PostgreSQL 15 server for integration tests.
//!
//! [`shared`] starts one per test binary, on first use: `initdb` into a fresh temporary
//! directory (as the `postgres` user when the tests run as root, since `initdb` refuses
//! root), listening on a free loopback port only, no Unix socket, `scram-sha-256`
//! password authentication over TCP as the only `pg_hba.conf` rule, and TLS with a test
//! CA. It creates a non-superuser administrative role with `CREATEDB CREATEROLE` for
//! Landlord. Tests share the server and use their own tenant names, so they run in
//! parallel. The server is stopped (`pg_ctl stop -m fast`) and its directory removed when
//! the test binary exits (a watchdog process waits for it), or on drop for servers
//! started with [`PostgresServer::start`].
//!
//! The binaries come from Debian's `postgresql-15` package, which `scripts/test`
//! installs; `LANDLORD_PG_BIN` points elsewhere. The package's own cluster, if its
//! service runs, is neither used nor disturbed: this server has its own directory and port.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use landlord::api::TlsMode;
use landlord::database::{Password, ServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// Where Debian's `postgresql-15` package puts the server binaries.
pub const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The administrative role Landlord connects as.
pub const ADMIN_USER: &str = "landlord_admin";

/// A running PostgreSQL server owned by the tests.
pub struct PostgresServer {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Password of [`ADMIN_USER`].
    pub admin_password: String,
    /// Password of the superuser `postgres`, for assertions only Landlord's admin cannot make.
    pub superuser_password: String,
    /// PEM of the CA that signed the server's certificate (issued for `127.0.0.1` only).
    pub ca_pem: Vec<u8>,
    /// PEM of an unrelated CA.
    pub other_ca_pem: Vec<u8>,
    dir: PathBuf,
    bin: PathBuf,
    owned: bool,
    /// Lines of `postgresql.conf` after the harness's own, which they override.
    extra_settings: String,
    /// The whole `pg_hba.conf`.
    hba: String,
}

/// The harness's `pg_hba.conf`: SCRAM over TCP from loopback, nothing else.
pub const DEFAULT_HBA: &str = "# Password authentication over TCP from loopback, nothing else.\n\
                               host all all 127.0.0.1/32 scram-sha-256\n";

/// The server shared by every test in this binary, started on first use.
pub fn shared() -> &'static PostgresServer {
    static SERVER: OnceLock<PostgresServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut server = PostgresServer::start().unwrap_or_else(|e| panic!("{e}"));
        // Statics are never dropped: hand the clean-up to a watchdog process instead.
        server.watch_parent();
        server.owned = false;
        server
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command run as the `postgres` user when we are root.
fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn random_password() -> String {
    Password::generate()
        .expect("random password")
        .expose()
        .to_owned()
}

/// A CA and a certificate for `127.0.0.1` signed by it: (CA PEM, cert PEM, key PEM).
fn test_certificates() -> (String, String, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Landlord test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "landlord-test-postgres");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}

fn other_ca() -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Some other CA");
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
        .expect("other CA")
        .pem()
}

impl PostgresServer {
    /// Initialises and starts a new server in a new temporary directory.
    pub fn start() -> Result<Self, String> {
        Self::start_with_settings("")
    }

    /// Like [`start`](Self::start), with `settings` (lines of `postgresql.conf`, e.g.
    /// `log_statement = 'all'`) after the harness's own settings, which they override.
    pub fn start_with_settings(settings: &str) -> Result<Self, String> {
        Self::start_with(settings, DEFAULT_HBA)
    }

    /// Like [`start_with_settings`](Self::start_with_settings), with `hba` as the whole
    /// `pg_hba.conf` (e.g. `host all all 127.0.0.1/32 md5`).
    pub fn start_with(settings: &str, hba: &str) -> Result<Self, String> {
        let bin = std::env::var_os("LANDLORD_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN));
        if !bin.join("initdb").exists() {
            return Err(format!(
                "PostgreSQL 15 is not installed: {} is missing. `scripts/test` installs it \
                 (Debian package postgresql-15); or run `apt-get install postgresql-15`, or \
                 set LANDLORD_PG_BIN to a directory holding initdb, pg_ctl and postgres.",
                bin.join("initdb").display()
            ));
        }
        // The process, the time and a count: two tests of one binary starting a server in
        // the same tick of a coarse clock once got the same directory, and the first to
        // fail removed the other's (seen in CI).
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let count = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "landlord-pg-{}-{nanos}-{count}",
            std::process::id()
        ));
        fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut server = PostgresServer {
            port: 0,
            admin_password: random_password(),
            superuser_password: random_password(),
            ca_pem: Vec::new(),
            other_ca_pem: other_ca().into_bytes(),
            dir,
            bin,
            owned: true,
            extra_settings: settings.to_owned(),
            hba: hba.to_owned(),
        };
        // Drop removes the directory if anything below fails.
        server.init()?;
        let mut last_error = String::new();
        for _ in 0..3 {
            server.port = free_port()?;
            match server.configure_and_start() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The process id of the running server's postmaster (the parent of its backends).
    pub fn postmaster_pid(&self) -> Option<u32> {
        fs::read_to_string(self.data().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The server's log (every DDL statement is logged, unless settings say otherwise).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn init(&mut self) -> Result<(), String> {
        let (ca, cert, key) = test_certificates();
        self.ca_pem = ca.into_bytes();
        let write = |name: &str, contents: &str| {
            fs::write(self.dir.join(name), contents).map_err(|e| format!("write {name}: {e}"))
        };
        write("server.crt", &cert)?;
        write("server.key", &key)?;
        write("pwfile", &format!("{}\n", self.superuser_password))?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            self.dir.join("server.key"),
            fs::Permissions::from_mode(0o600),
        )
        .map_err(|e| format!("chmod server.key: {e}"))?;
        if running_as_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&self.dir),
                "chown the test server's directory to postgres",
            )?;
        }
        run(
            as_server_user(&self.bin.join("initdb"))
                .arg("-D")
                .arg(self.data())
                .args(["-U", "postgres", "--auth=scram-sha-256", "--encoding=UTF8"])
                .args(["--locale=C", "--no-sync"])
                .arg(format!("--pwfile={}", self.dir.join("pwfile").display())),
            "initdb",
        )?;
        fs::write(self.data().join("pg_hba.conf"), &self.hba)
            .map_err(|e| format!("write pg_hba.conf: {e}"))?;
        // The administrative role, created in single-user mode before the server listens.
        let mut single = as_server_user(&self.bin.join("postgres"))
            .args(["--single", "-D"])
            .arg(self.data())
            .args(["-c", "password_encryption=scram-sha-256", "postgres"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("postgres --single: {e}"))?;
        {
            use std::io::Write;
            let mut stdin = single.stdin.take().ok_or("postgres --single: no stdin")?;
            writeln!(
                stdin,
                "CREATE ROLE {ADMIN_USER} WITH LOGIN CREATEDB CREATEROLE NOSUPERUSER INHERIT PASSWORD '{}';",
                self.admin_password
            )
            .map_err(|e| format!("postgres --single: {e}"))?;
        }
        let out = single
            .wait_with_output()
            .map_err(|e| format!("postgres --single: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || stdout.contains("ERROR") {
            return Err(format!(
                "creating {ADMIN_USER} failed:\n{stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    fn configure_and_start(&self) -> Result<(), String> {
        let conf = format!(
            "listen_addresses = '127.0.0.1'\n\
             port = {port}\n\
             unix_socket_directories = ''\n\
             password_encryption = 'scram-sha-256'\n\
             ssl = on\n\
             ssl_cert_file = '{dir}/server.crt'\n\
             ssl_key_file = '{dir}/server.key'\n\
             max_connections = 200\n\
             shared_buffers = 32MB\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             log_statement = 'ddl'\n\
             {extra}\n",
            port = self.port,
            dir = self.dir.display(),
            extra = self.extra_settings
        );
        fs::write(self.data().join("postgresql.auto.conf"), conf)
            .map_err(|e| format!("write postgresql.auto.conf: {e}"))?;
        if running_as_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&self.dir),
                "chown the test server's directory to postgres",
            )?;
        }
        run(
            as_server_user(&self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.join("server.log"))
                .args(["-w", "-t", "60", "start"]),
            "pg_ctl start",
        )
        .map_err(|e| format!("{e}\nserver log:\n{}", self.log()))
    }

    /// Stops the server and removes its directory once this process has exited.
    fn watch_parent(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop}; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = self.stop_command_line(),
            dir = self.dir.display()
        );
        // Not waited for: it outlives us on purpose.
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// Stops the server now (`pg_ctl stop -m fast`), as a database outage would.
    pub fn stop(&self) {
        let out = Command::new("sh")
            .args(["-c", &self.stop_command_line()])
            .stdin(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server again after [`stop`](Self::stop), on the same port and data.
    pub fn start_again(&self) {
        self.configure_and_start()
            .unwrap_or_else(|e| panic!("pg_ctl start: {e}"));
    }

    fn stop_command_line(&self) -> String {
        let pg_ctl = format!(
            "'{}' -D '{}' stop -m fast",
            self.bin.join("pg_ctl").display(),
            self.data().display()
        );
        if running_as_root() {
            format!("runuser -u postgres -- {pg_ctl}")
        } else {
            pg_ctl
        }
    }

    /// Landlord's configuration for this server, as its non-superuser administrator.
    pub fn admin_config(&self, tls: TlsMode) -> ServerConfig {
        let mut config = ServerConfig::new(
            "127.0.0.1",
            self.port,
            ADMIN_USER,
            Password::new(self.admin_password.clone()),
        );
        config.tls = tls;
        config.ca_pem = Some(self.ca_pem.clone());
        config.connect_timeout = Duration::from_secs(5);
        config
    }

    /// A plain connection (no TLS) as any role, the way a tenant's application connects.
    pub async fn connect(
        &self,
        user: &str,
        password: &str,
        database: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::Config::new()
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .password(password)
            .dbname(database)
            .connect_timeout(Duration::from_secs(5))
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A connection as the superuser `postgres`.
    pub async fn superuser(&self, database: &str) -> tokio_postgres::Client {
        self.connect("postgres", &self.superuser_password, database)
            .await
            .expect("superuser connection")
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let _ = Command::new("sh")
            .args(["-c", &self.stop_command_line()])
            .stdin(Stdio::null())
            .output();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
