//! `landlord backup run`: one backup from the command line, what a Kubernetes Job can run
//! when backups must spread over many nodes.
//!
//! It parses where the database is, the recipient and the destination, and calls
//! [`job::run`]; the manifest goes to standard output. Secrets never come from the
//! command line (`ps` shows it to every user of the machine):
//!
//! - the database password is read from `--password-file`, which must not be readable,
//!   writable or executable by others (a Kubernetes Secret volume with `defaultMode: 0440`
//!   or stricter); one trailing newline is dropped;
//! - S3 credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//!   `AWS_SESSION_TOKEN` (a Secret's `env`), as every AWS tool reads them;
//! - only the public recipient (`age1...`) is taken: the command cannot decrypt anything.
//!
//! pg_dump runs as documented in [`super::pg_dump`]: with a cleared environment and the
//! password in a private `PGPASSFILE`. No message carries a password: errors name files
//! and hosts, and pg_dump's own stderr (which libpq keeps free of passwords).

use std::fs;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use clap::{Args, Subcommand, ValueEnum};

use super::job::{self, Job};
use super::manifest;
use super::pg_dump::{Compression, DumpSource, PgDump};
use super::pipeline::DEFAULT_CHUNK;
use crate::database::Password;
use crate::storage::filesystem::FilesystemStore;
use crate::storage::s3::{S3Settings, S3Store, StaticCredentials};
use crate::storage::{Multipart, ObjectStore, validate_key};

/// `landlord backup ...`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// The backup subcommands.
#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Run one backup: pg_dump → compression → age encryption to one recipient → the store,
    /// then the JSON manifest beside it (also printed on standard output).
    Run(Box<RunArgs>),
    /// Download the encrypted object of a TenantBackup (from the cluster of the current
    /// kubeconfig), checked against the SHA-256 and size the backup recorded before any
    /// byte is written out. It stays encrypted: restore it with stock tools, `age -d -i
    /// key.txt FILE | zstd -d | pg_restore ...` (without `zstd -d` for the pgdump and none
    /// compressions). No key material is read or printed.
    Download(DownloadArgs),
}

/// `landlord backup download`.
#[derive(Args, Debug)]
pub struct DownloadArgs {
    /// The TenantBackup.
    pub backup: String,
    /// Write the object to this file (created, mode 0600) instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The operator's namespace: the only one the BackupStorage's Secrets are read from.
    #[arg(long, env = "LANDLORD_NAMESPACE", default_value = "landlord")]
    pub operator_namespace: String,
}

/// How the dump is compressed (`spec.backup.compression`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CompressionArg {
    /// `pg_dump -Z0`, compressed by Landlord with multi-threaded zstd. Restore with
    /// `age -d | zstd -d | pg_restore`.
    Zstd,
    /// pg_dump's own (gzip) compression. Restore with `age -d | pg_restore`.
    Pgdump,
    /// No compression. Restore with `age -d | pg_restore`.
    None,
}

impl From<CompressionArg> for Compression {
    fn from(arg: CompressionArg) -> Compression {
        match arg {
            CompressionArg::Zstd => Compression::Zstd,
            CompressionArg::Pgdump => Compression::PgDump,
            CompressionArg::None => Compression::None,
        }
    }
}

/// libpq's `sslmode` values.
const SSLMODES: [&str; 6] = [
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

/// `landlord backup run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Host name or address of the PostgreSQL server.
    #[arg(long, help_heading = "Database")]
    pub host: String,
    /// TCP port of the server.
    #[arg(long, default_value_t = 5432, help_heading = "Database")]
    pub port: u16,
    /// The database to dump.
    #[arg(long, help_heading = "Database")]
    pub dbname: String,
    /// The role pg_dump logs in as: the tenant's own, not a superuser.
    #[arg(long, help_heading = "Database")]
    pub user: String,
    /// A file holding the role's password (one trailing newline is ignored). It must not
    /// be accessible to others (mode 0600, 0640, 0400 or 0440).
    #[arg(long, value_name = "FILE", help_heading = "Database")]
    pub password_file: PathBuf,
    /// libpq's sslmode.
    #[arg(long, default_value = "verify-full", value_parser = SSLMODES, help_heading = "Database")]
    pub sslmode: String,
    /// CA certificates (PEM) that sign the server's certificate (libpq's sslrootcert;
    /// `system` for the system's trusted roots, with pg_dump 16 or newer).
    #[arg(long, value_name = "FILE", help_heading = "Database")]
    pub ca_file: Option<PathBuf>,
    /// The pg_dump binary; by default `pg_dump` on PATH, else the newest
    /// /usr/lib/postgresql/*/bin/pg_dump. It must be of the server's major version or newer.
    #[arg(long, value_name = "PATH", help_heading = "Database")]
    pub pg_dump: Option<PathBuf>,

    /// The tenant key's public half (`age1...`): the only recipient of the backup.
    #[arg(long, value_name = "AGE1...", help_heading = "Backup")]
    pub recipient: String,
    /// How the dump is compressed.
    #[arg(long, value_enum, default_value_t = CompressionArg::Zstd, help_heading = "Backup")]
    pub compression: CompressionArg,
    /// The Tenant's name: the first segment of the object keys.
    #[arg(long, help_heading = "Backup")]
    pub tenant: String,
    /// The Tenant's UID: the second segment, so a later Tenant of the same name never
    /// sees this backup.
    #[arg(long, value_name = "UID", help_heading = "Backup")]
    pub tenant_uid: String,
    /// The backup's name (the TenantBackup's, when the operator runs it).
    #[arg(long, value_name = "NAME", help_heading = "Backup")]
    pub backup: String,

    /// Write to this directory (it must exist) instead of S3.
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Destination",
        required_unless_present = "s3_bucket",
        conflicts_with_all = ["s3_bucket", "s3_endpoint", "s3_prefix", "s3_path_style", "s3_ca_file", "s3_parts_in_flight"]
    )]
    pub storage_dir: Option<PathBuf>,
    /// The S3 bucket. Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    /// (and AWS_SESSION_TOKEN).
    #[arg(long, value_name = "BUCKET", help_heading = "Destination")]
    pub s3_bucket: Option<String>,
    /// `http(s)://host:port` of an S3-compatible service; AWS S3 when unset.
    #[arg(long, value_name = "URL", help_heading = "Destination")]
    pub s3_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long, default_value = "us-east-1", help_heading = "Destination")]
    pub s3_region: String,
    /// Prepended to every key (a `/` is added when it does not end with one).
    #[arg(long, default_value = "", help_heading = "Destination")]
    pub s3_prefix: String,
    /// Address the bucket in the path (`endpoint/bucket/key`), as MinIO and Ceph want.
    #[arg(long, help_heading = "Destination")]
    pub s3_path_style: bool,
    /// CA certificates (PEM) for the S3 endpoint, instead of the system's.
    #[arg(long, value_name = "FILE", help_heading = "Destination")]
    pub s3_ca_file: Option<PathBuf>,
    /// Parts of 8 MiB uploaded at once. Memory for the upload is 8 MiB × (N + 1); more
    /// helps only on a slow, distant link.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=16), help_heading = "Destination")]
    pub s3_parts_in_flight: u16,
}

/// Runs `landlord backup ...`; the message of the error is one line, without secrets.
pub async fn run(args: BackupArgs) -> Result<(), String> {
    match args.command {
        BackupCommand::Run(args) => run_backup(*args).await,
        BackupCommand::Download(args) => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| format!("no Kubernetes configuration: {e}"))?;
            let done = download(&client, &args).await?;
            eprintln!("{done}");
            Ok(())
        }
    }
}

/// Downloads the object of `args.backup`, checks it and writes it out; returns what it
/// did, for the terminal.
pub async fn download(client: &kube::Client, args: &DownloadArgs) -> Result<String, String> {
    use kube::api::Api;
    let backups: Api<crate::api::TenantBackup> = Api::all(client.clone());
    let backup = backups
        .get(&args.backup)
        .await
        .map_err(|e| format!("reading the TenantBackup {}: {e}", args.backup))?;
    let status = backup.status.unwrap_or_default();
    if status.phase != Some(crate::api::BackupPhase::Completed) {
        return Err(format!(
            "the TenantBackup {} is not Completed ({:?})",
            args.backup, status.phase
        ));
    }
    let (Some(key), Some(sha256), Some(size), Some(storage)) = (
        status.object_key,
        status.sha256,
        status.size_bytes.and_then(|s| u64::try_from(s).ok()),
        status.storage_ref,
    ) else {
        return Err(format!(
            "the TenantBackup {} records no object, SHA-256, size or storage",
            args.backup
        ));
    };
    let storages: Api<crate::api::BackupStorage> = Api::all(client.clone());
    let storage = storages
        .get(&storage)
        .await
        .map_err(|e| format!("reading the BackupStorage {storage}: {e}"))?;
    let store =
        crate::controller::backup_storage::open(client, &args.operator_namespace, &storage.spec)
            .await
            .map_err(|e| {
                format!(
                    "opening the BackupStorage {}: {e}",
                    storage.metadata.name.as_deref().unwrap_or_default()
                )
            })?;
    let expected = super::restore::Expected {
        sha256: sha256.clone(),
        size,
    };
    let downloaded = super::restore::download_verified(&*store, &key, &expected)
        .await
        .map_err(|e| format!("downloading {key} ({}): {e}", e.reason()))?;
    match &args.output {
        Some(path) => {
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            let mut input = fs::File::open(downloaded.path())
                .map_err(|e| format!("reading the download: {e}"))?;
            std::io::copy(&mut input, &mut out)
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            Ok(format!(
                "wrote {} ({size} bytes, SHA-256 {sha256}, as recorded by the backup)",
                path.display()
            ))
        }
        None => {
            let mut input = fs::File::open(downloaded.path())
                .map_err(|e| format!("reading the download: {e}"))?;
            let mut stdout = std::io::stdout().lock();
            std::io::copy(&mut input, &mut stdout)
                .map_err(|e| format!("writing to standard output: {e}"))?;
            Ok(format!(
                "{size} bytes, SHA-256 {sha256}, as recorded by the backup"
            ))
        }
    }
}

async fn run_backup(args: RunArgs) -> Result<(), String> {
    let recipient = parse_recipient(&args.recipient)?;
    for (flag, value) in [
        ("--tenant", &args.tenant),
        ("--tenant-uid", &args.tenant_uid),
        ("--backup", &args.backup),
    ] {
        check_segment(flag, value)?;
    }
    let compression = Compression::from(args.compression);
    let keys = manifest::object_keys(&args.tenant, &args.tenant_uid, &args.backup, compression);
    validate_key(&keys.object).map_err(|e| e.to_string())?;
    if let Some(ca) = args
        .ca_file
        .as_ref()
        .filter(|ca| ca.as_os_str() != "system")
    {
        fs::metadata(ca).map_err(|e| format!("--ca-file {}: {e}", ca.display()))?;
    }
    let password = read_password(&args.password_file)?;
    let binary = match &args.pg_dump {
        Some(path) => path.clone(),
        None => default_pg_dump().ok_or(
            "no pg_dump on PATH nor in /usr/lib/postgresql/*/bin: install postgresql-client, or give --pg-dump",
        )?,
    };
    let pg_dump = PgDump::find(&binary).map_err(|e| e.to_string())?;
    let store = store(&args)?;
    store
        .check(false)
        .await
        .map_err(|e| format!("the store {} cannot be used: {e}", store.location()))?;

    let completed = job::run(Job {
        pg_dump,
        // pg_dump itself refuses a server of a newer major ("server version mismatch").
        server_major: None,
        server_version: None,
        server: String::new(),
        source: DumpSource {
            host: args.host,
            port: args.port,
            database: args.dbname,
            user: args.user,
            password,
            sslmode: args.sslmode,
            ca_file: args.ca_file,
        },
        recipient,
        compression,
        store,
        tenant: args.tenant,
        tenant_uid: args.tenant_uid,
        backup: args.backup,
        object_lock: None,
        chunk: DEFAULT_CHUNK,
    })
    .await
    .map_err(|e| format!("backup failed ({}): {}", e.reason(), chain(&e)))?;
    let json = completed.manifest.to_json();
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(&json)
        .and_then(|()| stdout.flush())
        .map_err(|e| format!("the backup is written, but printing its manifest failed: {e}"))
}

/// The recipient, without echoing what was given (it may be an identity pasted by mistake).
fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, String> {
    let text = text.trim();
    if text.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-") {
        return Err(
            "--recipient was given an age identity (a secret key): give its public recipient (age1..., `age-keygen -y key.txt`), and treat that identity as disclosed"
                .to_owned(),
        );
    }
    age::x25519::Recipient::from_str(text)
        .map_err(|_| "--recipient is not an age X25519 recipient (age1...)".to_owned())
}

/// A Tenant name, UID or backup name: one segment of an object key.
fn check_segment(flag: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.contains('/') || value == "." || value == ".." {
        return Err(format!(
            "{flag} {value:?} cannot be one segment of an object key"
        ));
    }
    Ok(())
}

/// The password in `path`, refusing a file others can access. The content is never shown.
fn read_password(path: &Path) -> Result<Password, String> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| format!("--password-file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("--password-file {shown} is not a file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "--password-file {shown} is accessible to others (mode {mode:04o}): chmod 600 it (or mount the Secret with defaultMode 0440)"
        ));
    }
    let bytes = fs::read(path).map_err(|e| format!("--password-file {shown}: {e}"))?;
    let mut text = String::from_utf8(bytes)
        .map_err(|_| format!("--password-file {shown} is not UTF-8 text"))?;
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if text.is_empty() {
        return Err(format!("--password-file {shown} is empty"));
    }
    if text.contains('\n') {
        return Err(format!(
            "--password-file {shown} has more than one line: it must hold the password only"
        ));
    }
    Ok(Password::new(text))
}

/// `pg_dump` on PATH, else the newest `/usr/lib/postgresql/<major>/bin/pg_dump`.
fn default_pg_dump() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("pg_dump"))
            .find(|p| is_executable(p))
    });
    on_path.or_else(|| newest_in(Path::new("/usr/lib/postgresql")))
}

/// The pg_dump of the highest major under `root` (`<root>/<major>/bin/pg_dump`).
fn newest_in(root: &Path) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let major: u32 = entry.file_name().to_str()?.parse().ok()?;
            let binary = entry.path().join("bin/pg_dump");
            is_executable(&binary).then_some((major, binary))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, binary)| binary)
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The destination the arguments name.
fn store(args: &RunArgs) -> Result<Arc<dyn ObjectStore>, String> {
    if let Some(dir) = &args.storage_dir {
        return Ok(Arc::new(FilesystemStore::new(dir.clone())));
    }
    let bucket = args
        .s3_bucket
        .clone()
        .ok_or("give --storage-dir or --s3-bucket")?;
    let credentials = StaticCredentials::from_env()
        .ok_or("--s3-bucket needs credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")?;
    let ca_pem = args
        .s3_ca_file
        .as_ref()
        .map(|path| fs::read(path).map_err(|e| format!("--s3-ca-file {}: {e}", path.display())))
        .transpose()?;
    let mut prefix = args.s3_prefix.clone();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        prefix.push('/');
    }
    let store = S3Store::new(S3Settings {
        bucket,
        prefix,
        region: args.s3_region.clone(),
        endpoint: args.s3_endpoint.clone(),
        force_path_style: args.s3_path_style,
        credentials,
        ca_pem,
        multipart: Multipart {
            parts_in_flight: usize::from(args.s3_parts_in_flight),
            ..Multipart::default()
        },
    })
    .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// The error and its causes on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("landlord-cli-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch");
        dir
    }

    #[test]
    fn the_password_file_must_be_private_and_is_never_shown() {
        let dir = scratch("password");
        let path = dir.join("pw");
        fs::write(&path, "hunter2-secret\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = read_password(&path).expect_err("world-readable");
        assert!(e.contains("0644") && !e.contains("hunter2"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        assert_eq!(
            read_password(&path).expect("0640").expose(),
            "hunter2-secret"
        );
        fs::write(&path, "a\r\n").expect("write");
        assert_eq!(read_password(&path).expect("crlf").expose(), "a");
        fs::write(&path, "hunter2\nsecond\n").expect("write");
        let e = read_password(&path).expect_err("two lines");
        assert!(!e.contains("hunter2"), "{e}");
        fs::write(&path, "\n").expect("write");
        assert!(read_password(&path).is_err());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn an_identity_is_refused_as_recipient_without_echo() {
        let identity = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let secret = identity.to_string().expose_secret().to_owned();
        let e = parse_recipient(&secret).expect_err("an identity");
        assert!(!e.contains(&secret[15..]), "{e}");
        assert!(parse_recipient("age1nope").is_err());
        let public = identity.to_public().to_string();
        assert_eq!(
            parse_recipient(&public).expect("public").to_string(),
            public
        );
    }

    #[test]
    fn names_are_single_key_segments() {
        assert!(check_segment("--tenant", "acme").is_ok());
        for bad in ["", "a/b", "..", "."] {
            assert!(check_segment("--tenant", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_newest_installed_major_is_the_default() {
        let dir = scratch("majors");
        for major in ["9", "15", "17", "notanumber"] {
            let bin = dir.join(major).join("bin");
            fs::create_dir_all(&bin).expect("dir");
            let dump = bin.join("pg_dump");
            fs::write(&dump, "#!/bin/sh\n").expect("write");
            fs::set_permissions(&dump, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        // Not executable: skipped.
        fs::create_dir_all(dir.join("18/bin")).expect("dir");
        fs::write(dir.join("18/bin/pg_dump"), "").expect("write");
        assert_eq!(newest_in(&dir), Some(dir.join("17/bin/pg_dump")));
        let _ = fs::remove_dir_all(&dir);
    }
}
