//! Running `pg_dump` as the tenant: its version, the connection it makes, and where its
//! password goes.
//!
//! The dump runs with the tenant's own role (never the server's administrator), so it can
//! read exactly what the tenant's applications can. Its password is never on a command
//! line (`ps` shows those), never in an environment variable (`/proc/<pid>/environ` shows
//! those to the same user), never in a log: it is written to a `PGPASSFILE` of mode 0600
//! in a fresh directory of mode 0700, removed as soon as `pg_dump` has exited. The child's
//! environment is cleared, so nothing of the operator's own (credentials of other
//! services) reaches it.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::database::Password;

/// Where the tenant's database is and how to log in to it.
#[derive(Clone)]
pub struct DumpSource {
    /// Host name or address of the server.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The tenant's database.
    pub database: String,
    /// The tenant's role.
    pub user: String,
    /// The role's password.
    pub password: Password,
    /// libpq's `sslmode` (`verify-full`, `require`, `disable`).
    pub sslmode: String,
    /// A CA bundle file for `verify-full`, when not the system's.
    pub ca_file: Option<PathBuf>,
}

impl fmt::Debug for DumpSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DumpSource")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

/// How the dump is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `pg_dump -Z0`, compressed by Landlord with multi-threaded zstd: several times faster
    /// than pg_dump's gzip. Restore: `age -d | zstd -d | pg_restore`.
    Zstd,
    /// pg_dump's own compression (gzip). Restore: `age -d | pg_restore`.
    PgDump,
    /// None at all. Restore: `age -d | pg_restore`.
    None,
}

impl Compression {
    /// The name the manifest records.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::PgDump => "pgdump",
            Compression::None => "none",
        }
    }
}

/// Why a dump could not run.
#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// The `pg_dump` binary could not be run.
    #[error("cannot run {binary}: {source}")]
    Spawn {
        binary: String,
        #[source]
        source: std::io::Error,
    },
    /// `pg_dump --version` said something unexpected.
    #[error("cannot tell the version of {binary} from {output:?}")]
    Version { binary: String, output: String },
    /// `pg_dump` is older than the server: it refuses to dump it, so fail before trying.
    #[error(
        "pg_dump {client} cannot dump a PostgreSQL {server_major} server: the operator image needs pg_dump {server_major} or newer"
    )]
    TooOld { client: String, server_major: u32 },
    /// The private password file could not be written.
    #[error("cannot write the password file for pg_dump: {0}")]
    PassFile(#[source] std::io::Error),
    /// `pg_dump` exited with a failure; `stderr` is the end of what it said.
    #[error("pg_dump failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
}

impl DumpError {
    /// Stable short category.
    pub fn category(&self) -> &'static str {
        match self {
            DumpError::Spawn { .. } | DumpError::Version { .. } => "pg_dump_missing",
            DumpError::TooOld { .. } => "pg_dump_too_old",
            DumpError::PassFile(_) => "pg_dump_setup_failed",
            DumpError::Failed { .. } => "pg_dump_failed",
        }
    }
}

/// A `pg_dump` binary and its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgDump {
    /// Path or name of the binary.
    pub binary: PathBuf,
    /// Its version, e.g. `15.10`.
    pub version: String,
    /// Its major version, e.g. 15.
    pub major: u32,
}

/// Parses `pg_dump --version` output such as `pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)`.
pub fn parse_version(output: &str) -> Option<(String, u32)> {
    let version = output
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))?;
    let major = version.split(['.', 'b', 'r']).next()?.parse().ok()?;
    Some((version.to_owned(), major))
}

impl PgDump {
    /// Asks `binary` for its version.
    pub fn find(binary: &Path) -> Result<PgDump, DumpError> {
        let output = Command::new(binary)
            .arg("--version")
            .env_clear()
            .stdin(Stdio::null())
            .output()
            .map_err(|source| DumpError::Spawn {
                binary: binary.display().to_string(),
                source,
            })?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (version, major) = parse_version(&text).ok_or_else(|| DumpError::Version {
            binary: binary.display().to_string(),
            output: text.trim().to_owned(),
        })?;
        Ok(PgDump {
            binary: binary.to_owned(),
            version,
            major,
        })
    }

    /// Fails fast when this pg_dump cannot dump a server of `server_major`.
    pub fn check_server(&self, server_major: u32) -> Result<(), DumpError> {
        if self.major < server_major {
            return Err(DumpError::TooOld {
                client: self.version.clone(),
                server_major,
            });
        }
        Ok(())
    }
}

/// One line of a libpq password file, with `:` and `\` escaped.
pub(super) fn passfile_line(source: &DumpSource) -> String {
    let escape = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    format!(
        "{}:{}:{}:{}:{}\n",
        escape(&source.host),
        source.port,
        escape(&source.database),
        escape(&source.user),
        escape(source.password.expose())
    )
}

/// A libpq connection string value, quoted.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The connection string of the dump: everything but the password.
fn conninfo(source: &DumpSource) -> String {
    conninfo_as(source, "landlord-backup")
}

/// The connection string for `source` as the application `application`: everything but
/// the password.
pub(super) fn conninfo_as(source: &DumpSource, application: &str) -> String {
    let mut parts = vec![
        format!("host={}", conninfo_value(&source.host)),
        format!("port={}", source.port),
        format!("dbname={}", conninfo_value(&source.database)),
        format!("user={}", conninfo_value(&source.user)),
        format!("sslmode={}", conninfo_value(&source.sslmode)),
        "connect_timeout=10".to_owned(),
        format!("application_name={}", conninfo_value(application)),
    ];
    if let Some(ca) = &source.ca_file {
        parts.push(format!(
            "sslrootcert={}",
            conninfo_value(&ca.display().to_string())
        ));
    }
    parts.join(" ")
}

/// A directory of mode 0700 holding the password file, removed on drop.
pub struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates a fresh directory under the system's temporary directory.
    pub fn new() -> std::io::Result<PrivateDir> {
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).map_err(|e| std::io::Error::other(e.to_string()))?;
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let path = std::env::temp_dir().join(format!("landlord-dump-{name}"));
        fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(PrivateDir { path })
    }

    /// Writes a file of mode 0600 in it (a CA bundle for pg_dump, say) and returns its
    /// path.
    pub fn write_file(&self, name: &str, content: &[u8]) -> std::io::Result<PathBuf> {
        self.write_bytes(name, content)
    }

    fn write(&self, name: &str, content: &str) -> std::io::Result<PathBuf> {
        self.write_bytes(name, content.as_bytes())
    }

    fn write_bytes(&self, name: &str, content: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path.join(name);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        file.write_all(content)?;
        file.sync_all()?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The `pg_dump` command for `source`, reading its password from a file in `dir`: custom
/// format to stdout, `-Z0` unless pg_dump compresses itself, nothing else of the
/// operator's environment.
pub fn command(
    pg_dump: &PgDump,
    source: &DumpSource,
    compression: Compression,
    dir: &PrivateDir,
) -> Result<Command, DumpError> {
    let passfile = dir
        .write("pgpass", &passfile_line(source))
        .map_err(DumpError::PassFile)?;
    let mut command = Command::new(&pg_dump.binary);
    command
        .arg("--format=custom")
        .arg("--no-password")
        .arg(format!("--dbname={}", conninfo(source)));
    if compression != Compression::PgDump {
        command.arg("--compress=0");
    }
    command
        .env_clear()
        .env("PGPASSFILE", passfile)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(password: &str) -> DumpSource {
        DumpSource {
            host: "db.example".into(),
            port: 5432,
            database: "tenant_acme".into(),
            user: "tenant_acme".into(),
            password: Password::new(password),
            sslmode: "verify-full".into(),
            ca_file: None,
        }
    }

    #[test]
    fn versions_are_read_from_the_banner() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.10 (Debian 15.10-0+deb12u1)\n"),
            Some(("15.10".to_owned(), 15))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 17beta1"),
            Some(("17beta1".to_owned(), 17))
        );
        assert_eq!(parse_version("command not found"), None);
    }

    #[test]
    fn an_older_pg_dump_is_refused_before_it_runs() {
        let dump = PgDump {
            binary: "pg_dump".into(),
            version: "15.10".into(),
            major: 15,
        };
        assert!(dump.check_server(15).is_ok());
        assert!(dump.check_server(14).is_ok());
        let e = dump.check_server(16).unwrap_err();
        assert_eq!(e.category(), "pg_dump_too_old");
        assert!(e.to_string().contains("pg_dump 16 or newer"), "{e}");
    }

    #[test]
    fn the_password_goes_to_a_private_file_only() {
        let secret = "s3cr:et\\pw";
        let dir = PrivateDir::new().unwrap();
        let dump = PgDump {
            binary: "pg_dump".into(),
            version: "15.10".into(),
            major: 15,
        };
        let command = command(&dump, &source(secret), Compression::Zstd, &dir).unwrap();
        let args: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args.iter().any(|a| a.contains("s3cr")), "{args:?}");
        assert!(args.contains(&"--compress=0".to_owned()));
        let envs: Vec<(String, String)> = command
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert!(!envs.iter().any(|(_, v)| v.contains("s3cr")), "{envs:?}");
        let passfile = envs
            .iter()
            .find(|(k, _)| k == "PGPASSFILE")
            .unwrap()
            .1
            .clone();
        let meta = fs::metadata(&passfile).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_to_string(&passfile).unwrap(),
            "db.example:5432:tenant_acme:tenant_acme:s3cr\\:et\\\\pw\n"
        );
        let dir_path = Path::new(&passfile).parent().unwrap().to_owned();
        drop(dir);
        assert!(!dir_path.exists(), "removed with its directory");
        assert!(!format!("{:?}", source(secret)).contains("s3cr"));
    }

    #[test]
    fn pg_dump_compresses_only_when_asked() {
        let dir = PrivateDir::new().unwrap();
        let dump = PgDump {
            binary: "pg_dump".into(),
            version: "15.10".into(),
            major: 15,
        };
        let command = command(&dump, &source("x"), Compression::PgDump, &dir).unwrap();
        assert!(!command.get_args().any(|a| a == "--compress=0"));
    }
}
