//! `DatabaseServer`: a shared PostgreSQL server that tenant databases are created on.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::{DNS1123_SUBDOMAIN, SECRET_KEY};
use super::{Condition, SecretKeyRef, SecretRef};

/// A PostgreSQL server that Landlord creates tenant databases and roles on, reached with
/// an administrative role whose credentials are in a Secret.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "DatabaseServer",
    plural = "databaseservers",
    singular = "databaseserver",
    shortname = "dbs",
    category = "landlord",
    status = "DatabaseServerStatus",
    doc = "A PostgreSQL server that tenant databases are created on.",
    printcolumn(name = "Host", type_ = "string", json_path = ".spec.host"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(name = "TLS", type_ = "string", json_path = ".spec.tls.mode"),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.serverVersion"
    ),
    printcolumn(
        name = "Tenants",
        type_ = "integer",
        json_path = ".status.tenants",
        priority = 1
    ),
    printcolumn(
        name = "Reachable",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Reachable\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServerSpec {
    /// Host name or IP address of the server.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = "^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$")
    )]
    pub host: String,
    /// TCP port of the server.
    #[serde(default = "default_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Transport security between Landlord (and tenants) and the server.
    #[serde(default)]
    pub tls: DatabaseTls,
    /// The administrative role Landlord connects as. It needs CREATEDB and CREATEROLE, not
    /// SUPERUSER.
    pub admin_credentials: AdminCredentials,
    /// Database the administrative connection opens.
    #[serde(default = "default_admin_database")]
    #[schemars(length(min = 1, max = 63))]
    pub admin_database: String,
    /// Most connections Landlord keeps open to this server at once.
    #[serde(default = "default_max_connections")]
    #[schemars(range(min = 1, max = 100))]
    pub max_connections: i32,
    /// Where tenant pods reach this server, for the egress NetworkPolicy of each tenant
    /// that uses it. Without it, tenants get no egress rule for the database (a NetworkPolicy
    /// cannot select a DNS name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<DatabaseNetwork>,
}

fn default_port() -> i32 {
    5432
}

fn default_admin_database() -> String {
    "postgres".to_owned()
}

fn default_max_connections() -> i32 {
    5
}

/// TLS settings for connections to the server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.mode != 'disable' || !has(self.caSecret)").message("caSecret is only used with mode require or verify-full"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseTls {
    /// `verify-full` (default): encrypted, certificate and host name verified. `require`:
    /// encrypted, certificate not verified. `disable`: plain text, for local development
    /// only. The same value is given to tenants as `sslmode`.
    #[serde(default)]
    pub mode: TlsMode,
    /// CA certificate (PEM) that signed the server's certificate; the system roots when
    /// unset. The Secret must be in Landlord's own namespace: Landlord reads Secrets that
    /// configure it from nowhere else (another namespace is refused with
    /// `SecretForbidden`, never read). Only its X.509 certificates, re-encoded, are given
    /// to tenants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeyRef>,
}

/// A PostgreSQL `sslmode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum TlsMode {
    /// No TLS.
    #[serde(rename = "disable")]
    Disable,
    /// TLS without certificate verification.
    #[serde(rename = "require")]
    Require,
    /// TLS with certificate and host name verification.
    #[default]
    #[serde(rename = "verify-full")]
    VerifyFull,
}

/// Where the administrative credentials are.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminCredentials {
    /// The Secret holding the user name and password. It must be in Landlord's own
    /// namespace: Landlord reads Secrets that configure it from nowhere else (another
    /// namespace is refused with `SecretForbidden`, never read).
    pub secret: SecretRef,
    /// Key of the user name in the Secret.
    #[serde(default = "default_username_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub username_key: String,
    /// Key of the password in the Secret.
    #[serde(default = "default_password_key")]
    #[schemars(length(min = 1, max = 253), regex(pattern = SECRET_KEY))]
    pub password_key: String,
}

fn default_username_key() -> String {
    "username".to_owned()
}

fn default_password_key() -> String {
    "password".to_owned()
}

/// Network location of a database server for NetworkPolicies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseNetwork {
    /// IP ranges the server answers on, e.g. `10.0.12.7/32`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry must be a CIDR such as 10.0.12.7/32"))]
    #[schemars(length(max = 16))]
    pub cidrs: Vec<String>,
    /// When the server runs in the cluster: the namespace it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_SUBDOMAIN))]
    pub namespace: Option<String>,
    /// When the server runs in the cluster: labels of its pods.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(schema_with = "super::schema::label_map")]
    pub pod_selector: std::collections::BTreeMap<String, String>,
}

/// Observed state of a DatabaseServer.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseServerStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Reachable`: whether Landlord can connect and authenticate, with reasons such as
    /// `Unreachable`, `AuthFailed`, `TLSFailed`, `InsecureAuthentication`,
    /// `SecretMissing`, `SecretForbidden`, `CAInvalid`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The server's version, as it reports it (`server_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// How many tenants have a database on this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenants: Option<i32>,
}
