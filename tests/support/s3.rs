//! A real S3-compatible server for integration tests: moto's server (`moto[server]`, which
//! `scripts/test` installs into the project's `.venv`), or MinIO ([`S3Server::start_minio`],
//! which `scripts/minio` builds from source), on a free loopback port, one per test, stopped
//! when dropped (and by a watchdog when the test binary exits).
//!
//! MinIO checks what moto lets through: a part of a multipart upload created with a
//! checksum algorithm must carry that checksum, and a write with Object Lock parameters
//! must carry one. The store's tests run against both.
//!
//! moto accepts any credentials unless it is started in its IAM mode
//! ([`S3Server::start_with_auth`]): then only access keys of IAM users created in it are
//! accepted (`InvalidAccessKeyId`, `SignatureDoesNotMatch` otherwise), and their IAM
//! policies are enforced (`AccessDenied`). Its first few requests are let through
//! unauthenticated, which is how the users and keys are made.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use landlord::storage::Multipart;
use landlord::storage::s3::{S3Settings, S3Store, StaticCredentials};

use super::wait::wait_for;

/// The project's virtual environment, where `scripts/test` installs moto.
fn python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test once (it installs moto[server] into .venv)",
        python.display()
    );
    python
}

/// The MinIO server binary: `LANDLORD_MINIO_BIN`, else where `scripts/minio` builds the
/// version pinned in `testenv/minio/go.mod`.
fn minio() -> PathBuf {
    if let Some(binary) = std::env::var_os("LANDLORD_MINIO_BIN") {
        return PathBuf::from(binary);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let go_mod = std::fs::read_to_string(root.join("testenv/minio/go.mod")).expect("go.mod");
    let version = go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("github.com/minio/minio "))
        .and_then(|v| v.split_whitespace().next())
        .map(str::to_owned)
        .expect("testenv/minio/go.mod requires github.com/minio/minio");
    let cache = std::env::var_os("LANDLORD_MINIO_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("landlord/minio"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/landlord/minio"))
        })
        .expect("a cache directory");
    let binary = cache.join(format!("minio-{version}")).join("minio");
    assert!(
        binary.exists(),
        "{} is missing: run scripts/minio (scripts/test does) to build MinIO {version}",
        binary.display()
    );
    binary
}

/// A new private directory under the system's temporary directory.
fn temp_dir(what: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // A count too: the clock can be too coarse to tell two servers of one test binary apart.
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "landlord-{what}-{}-{nanos}-{count}",
        std::process::id()
    ));
    std::fs::create_dir_all(&path).expect("temporary directory");
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    free_port()
}

/// An IAM user of a server started with [`S3Server::start_with_auth`].
#[derive(Clone, Debug)]
pub struct User {
    pub access_key_id: String,
    pub secret_access_key: String,
}

pub struct S3Server {
    child: Child,
    pub endpoint: String,
    /// With auth: a user allowed everything on S3.
    pub admin: User,
    /// With auth: a user allowed nothing.
    pub nobody: Option<User>,
    /// With auth: a user allowed everything on S3 but deleting objects.
    pub keeper: Option<User>,
    /// The TLS certificate authority (PEM), for a server started with TLS.
    pub ca_pem: Option<String>,
    dir: Option<PathBuf>,
}

/// Creates the IAM users with the unauthenticated requests moto lets through at first.
const BOOTSTRAP: &str = r#"
import json, sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
keys = []
for user in ("landlord", "nobody", "keeper"):
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    keys += [key["AccessKeyId"], key["SecretAccessKey"]]
iam.put_user_policy(UserName="landlord", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
iam.put_user_policy(UserName="keeper", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"], "Resource": "*"}]}))
print(" ".join(keys))
"#;

/// How many requests [`BOOTSTRAP`] makes.
const BOOTSTRAP_REQUESTS: u32 = 9;

impl S3Server {
    /// A server that accepts any credentials.
    pub async fn start() -> S3Server {
        S3Server::launch(None, false).await
    }

    /// A server that checks credentials and IAM policies.
    pub async fn start_with_auth() -> S3Server {
        S3Server::launch(Some(BOOTSTRAP_REQUESTS), false).await
    }

    /// A MinIO server (single drive, in a temporary directory) that accepts its root user only.
    pub async fn start_minio() -> S3Server {
        let port = free_port();
        let console = free_port();
        let dir = temp_dir("minio");
        let user = User {
            access_key_id: "landlord-root".to_owned(),
            secret_access_key: "landlord-root-secret".to_owned(),
        };
        let child = Command::new(minio())
            .arg("server")
            .arg(dir.join("data"))
            .args(["--address", &format!("127.0.0.1:{port}")])
            .args(["--console-address", &format!("127.0.0.1:{console}")])
            .arg("--quiet")
            .env("MINIO_ROOT_USER", &user.access_key_id)
            .env("MINIO_ROOT_PASSWORD", &user.secret_access_key)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .env("MINIO_CI_CD", "on")
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("minio starts");
        watch_parent(child.id());
        let server = S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            admin: user,
            nobody: None,
            keeper: None,
            ca_pem: None,
            dir: Some(dir),
        };
        // MinIO accepts connections before it serves S3: wait for an answer to a request.
        let client = server.client();
        wait_for("minio serves S3", || {
            let client = client.clone();
            async move { client.list_buckets().send().await.ok() }
        })
        .await;
        server
    }

    /// A server on `https://127.0.0.1`, with a certificate from a test CA ([`S3Server::ca_pem`]).
    pub async fn start_with_tls() -> S3Server {
        S3Server::launch(None, true).await
    }

    async fn launch(auth: Option<u32>, tls: bool) -> S3Server {
        let port = free_port();
        let mut command = Command::new(python());
        command
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(count) = auth {
            command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
        }
        let (mut dir, mut ca_pem) = (None, None);
        if tls {
            let path = temp_dir("s3");
            let (ca, cert, key) = certificates();
            std::fs::write(path.join("cert.pem"), cert).expect("certificate written");
            std::fs::write(path.join("key.pem"), key).expect("key written");
            command
                .arg("-c")
                .arg(path.join("cert.pem"))
                .arg("-k")
                .arg(path.join("key.pem"));
            dir = Some(path);
            ca_pem = Some(ca);
        }
        let child = command.spawn().expect("moto starts");
        watch_parent(child.id());
        let scheme = if tls { "https" } else { "http" };
        let mut server = S3Server {
            child,
            endpoint: format!("{scheme}://127.0.0.1:{port}"),
            admin: User {
                access_key_id: "testing".to_owned(),
                secret_access_key: "testing".to_owned(),
            },
            nobody: None,
            keeper: None,
            ca_pem,
            dir,
        };
        let address = format!("127.0.0.1:{port}");
        wait_for("moto listens", || {
            let address = address.clone();
            async move { tokio::net::TcpStream::connect(&address).await.ok() }
        })
        .await;
        if auth.is_some() {
            let out = Command::new(python())
                .args(["-c", BOOTSTRAP, &server.endpoint])
                .output()
                .expect("IAM users created");
            assert!(
                out.status.success(),
                "creating the IAM users failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let keys: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(keys.len(), 6, "{text}");
            server.admin = User {
                access_key_id: keys[0].to_owned(),
                secret_access_key: keys[1].to_owned(),
            };
            server.nobody = Some(User {
                access_key_id: keys[2].to_owned(),
                secret_access_key: keys[3].to_owned(),
            });
            server.keeper = Some(User {
                access_key_id: keys[4].to_owned(),
                secret_access_key: keys[5].to_owned(),
            });
        }
        server
    }

    /// The server's process id (for its CPU time in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A client of the server that is not Landlord's store, as the admin user.
    pub fn client(&self) -> Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                &self.admin.access_key_id,
                &self.admin.secret_access_key,
                None,
                None,
                "test",
            ))
            .endpoint_url(&self.endpoint)
            .force_path_style(true);
        use aws_smithy_http_client::tls;
        let trust = match &self.ca_pem {
            Some(ca) => tls::TrustStore::empty()
                .with_native_roots(false)
                .with_pem_certificate(ca.as_bytes().to_vec()),
            None => tls::TrustStore::empty(),
        };
        let config = config.http_client(
            aws_smithy_http_client::Builder::new()
                .tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::Ring,
                ))
                .tls_context(
                    tls::TlsContext::builder()
                        .with_trust_store(trust)
                        .build()
                        .expect("TLS context"),
                )
                .build_https(),
        );
        Client::from_conf(config.build())
    }

    /// Creates `bucket`, with Object Lock (and so versioning) when `object_lock`.
    pub async fn create_bucket(&self, bucket: &str, object_lock: bool) {
        self.client()
            .create_bucket()
            .bucket(bucket)
            .object_lock_enabled_for_bucket(object_lock)
            .send()
            .await
            .unwrap_or_else(|e| panic!("bucket {bucket} created: {e:?}"));
    }

    /// Settings of a Landlord store of `bucket`/`prefix` as `user` (the admin when `None`).
    pub fn settings(&self, bucket: &str, prefix: &str, user: Option<&User>) -> S3Settings {
        let user = user.unwrap_or(&self.admin);
        S3Settings {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: "us-east-1".to_owned(),
            endpoint: Some(self.endpoint.clone()),
            force_path_style: true,
            credentials: StaticCredentials {
                access_key_id: user.access_key_id.clone(),
                secret_access_key: user.secret_access_key.clone(),
                session_token: None,
            },
            ca_pem: self.ca_pem.as_ref().map(|c| c.as_bytes().to_vec()),
            multipart: Multipart {
                part_size: landlord::storage::MIN_PART_SIZE,
                parts_in_flight: 2,
            },
        }
    }

    /// A Landlord store of `bucket`/`prefix` as the admin user.
    pub fn store(&self, bucket: &str, prefix: &str) -> S3Store {
        S3Store::new(self.settings(bucket, prefix, None)).expect("store")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Kills the server once this test binary has exited, even if it never drops it.
fn watch_parent(child: u32) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill {child} 2>/dev/null",
        pid = std::process::id()
    );
    // Not waited for: it outlives us on purpose.
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// A CA and a certificate for `127.0.0.1` signed by it: (CA PEM, cert PEM, key PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Landlord storage test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let cert = params.signed_by(&key, &ca).expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}
