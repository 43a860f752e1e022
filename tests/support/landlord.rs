//! Landlord objects the integration tests set up again and again: Secrets in the
//! operator's namespace, a DatabaseServer for the test PostgreSQL, a BackupStorage for
//! the test S3 server.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use landlord::api::{BackupStorage, BackupStorageSpec, DatabaseServer};
use serde_json::json;

use super::postgres::{ADMIN_USER, PostgresServer};
use super::s3::S3Server;

/// The operator's namespace in the harness.
pub const OPERATOR_NAMESPACE: &str = "landlord";

/// Writes the Secret `name` in the operator's namespace.
pub async fn put_secret(client: &Client, name: &str, data: &[(&str, &str)]) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(OPERATOR_NAMESPACE.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), OPERATOR_NAMESPACE)
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("Secret written");
}

/// A DatabaseServer `name` for `pg`, with TLS `verify-full` against its CA.
pub async fn create_database_server(client: &Client, name: &str, pg: &PostgresServer) {
    put_secret(
        client,
        &format!("{name}-admin"),
        &[("username", ADMIN_USER), ("password", &pg.admin_password)],
    )
    .await;
    put_secret(
        client,
        &format!("{name}-ca"),
        &[("ca.crt", std::str::from_utf8(&pg.ca_pem).expect("PEM"))],
    )
    .await;
    let server: DatabaseServer = serde_json::from_value(json!({
        "apiVersion": "landlord.dev/v1alpha1", "kind": "DatabaseServer",
        "metadata": {"name": name},
        "spec": {
            "host": "127.0.0.1", "port": pg.port,
            "tls": {"mode": "verify-full", "caSecret": {"name": format!("{name}-ca"), "namespace": OPERATOR_NAMESPACE, "key": "ca.crt"}},
            "adminCredentials": {"secret": {"name": format!("{name}-admin"), "namespace": OPERATOR_NAMESPACE}},
            "maxConnections": 3
        }
    }))
    .expect("DatabaseServer");
    Api::<DatabaseServer>::all(client.clone())
        .create(&PostParams::default(), &server)
        .await
        .expect("DatabaseServer created");
}

/// A BackupStorage `name` for `bucket` on `s3` (created here), with credentials of the
/// server's admin user.
pub async fn create_s3_storage(client: &Client, name: &str, s3: &S3Server, bucket: &str) {
    s3.create_bucket(bucket, false).await;
    create_s3_storage_at(
        client,
        name,
        &s3.endpoint,
        bucket,
        &s3.admin.access_key_id,
        &s3.admin.secret_access_key,
    )
    .await;
}

/// A BackupStorage `name` for a new `bucket` with Object Lock on `s3`, whose backups are
/// locked in `mode` for a day.
pub async fn create_locked_s3_storage(
    client: &Client,
    name: &str,
    s3: &S3Server,
    bucket: &str,
    mode: &str,
) {
    s3.create_bucket(bucket, true).await;
    create_storage(
        client,
        name,
        &s3.endpoint,
        bucket,
        (&s3.admin.access_key_id, &s3.admin.secret_access_key),
        json!({"mode": mode, "retentionDays": 1}),
    )
    .await;
}

/// A BackupStorage `name` for `bucket` at `endpoint`, with the given credentials.
pub async fn create_s3_storage_at(
    client: &Client,
    name: &str,
    endpoint: &str,
    bucket: &str,
    access_key_id: &str,
    secret_access_key: &str,
) {
    create_storage(
        client,
        name,
        endpoint,
        bucket,
        (access_key_id, secret_access_key),
        serde_json::Value::Null,
    )
    .await;
}

async fn create_storage(
    client: &Client,
    name: &str,
    endpoint: &str,
    bucket: &str,
    (access_key_id, secret_access_key): (&str, &str),
    object_lock: serde_json::Value,
) {
    let secret = format!("{name}-s3");
    put_secret(
        client,
        &secret,
        &[
            ("accessKeyId", access_key_id),
            ("secretAccessKey", secret_access_key),
        ],
    )
    .await;
    let mut spec = json!({"s3": {
        "bucket": bucket, "endpoint": endpoint, "forcePathStyle": true,
        "credentials": {"secret": {"name": secret, "namespace": OPERATOR_NAMESPACE}},
    }});
    if !object_lock.is_null() {
        spec["objectLock"] = object_lock;
    }
    let spec: BackupStorageSpec = serde_json::from_value(spec).expect("valid BackupStorage spec");
    Api::<BackupStorage>::all(client.clone())
        .create(&PostParams::default(), &BackupStorage::new(name, spec))
        .await
        .expect("BackupStorage created");
}
