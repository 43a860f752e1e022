//! `Tenant`: one client of the platform and everything Landlord keeps for it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::{self, CRON, DNS1123_LABEL, DNS1123_SUBDOMAIN};
use super::{Condition, NamespacedName, Quantity};
use super::{ErasedDatabase, ErasedStorage, ErasureStep, Evidence, ObjectHeader};

/// The longest Tenant name: the default namespace `tenant-<name>` and the database
/// identifier `tenant_<name>` must both fit in 63 characters.
pub const MAX_TENANT_NAME_LEN: usize = 56;

/// One client of the platform: its isolated namespaces, its own PostgreSQL database and
/// role, its encryption key, its backup schedule and what happens to its data when it
/// leaves.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "landlord.dev",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    singular = "tenant",
    shortname = "tn",
    category = "landlord",
    status = "TenantStatus",
    doc = "A client of the platform: isolated namespaces, a segregated database, an encryption key, encrypted backups, and a verified erasure when it is deleted.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName", priority = 1),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Namespace", type_ = "string", description = "The tenant's primary namespace", json_path = ".status.namespaces[0]"),
    printcolumn(name = "Database", type_ = "string", json_path = ".status.database.name", priority = 1),
    printcolumn(name = "Key", type_ = "string", description = "Fingerprint of the tenant's backup encryption key", json_path = ".status.keyId", priority = 1),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.lastBackup.completionTime"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Policy", type_ = "string", description = "What deleting the Tenant does to its data", json_path = ".spec.deletionPolicy", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.size() <= 56 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("Tenant names must be DNS-1123 labels (lower-case letters, digits and '-', starting and ending with a letter or digit) of at most 56 characters, so that the namespace tenant-<name> and the database tenant_<name> fit Kubernetes' and PostgreSQL's limits")
        .field_path(".metadata.name"),
    validation = Rule::new("(has(oldSelf.spec.namespaces) && has(oldSelf.spec.namespaces.primary) ? oldSelf.spec.namespaces.primary : 'tenant-' + oldSelf.metadata.name) == (has(self.spec.namespaces) && has(self.spec.namespaces.primary) ? self.spec.namespaces.primary : 'tenant-' + self.metadata.name)")
        .message("the primary namespace cannot change once the Tenant exists: it holds the tenant's workloads and credentials; create a new Tenant instead")
        .field_path(".spec.namespaces.primary"),
    validation = Rule::new("!has(oldSelf.spec.database) || has(self.spec.database)")
        .message("spec.database cannot be removed once set: the database is only ever dropped by erasure, when the Tenant is deleted")
        .field_path(".spec.database"),
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// Human-readable name of the client, shown by `kubectl get tenants -o wide`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub display_name: Option<String>,

    /// Who administers the tenant: each subject is bound to the `admin` ClusterRole in every
    /// namespace of the tenant, and nowhere else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub owners: Vec<Owner>,

    /// The tenant's namespaces. By default one namespace, `tenant-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<TenantNamespaces>,

    /// How the tenant is fenced off: Pod Security level, quota, default limits and network
    /// allow-lists. Everything not allowed here is denied.
    #[serde(default)]
    pub isolation: IsolationSpec,

    /// The tenant's own PostgreSQL database and role. Once set it cannot be removed: the
    /// database is dropped only by erasure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<TenantDatabase>,

    /// Scheduled, encrypted backups of the tenant's database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<TenantBackupPolicy>,

    /// How the tenant's data is encrypted at rest in backups.
    #[serde(default)]
    pub encryption: EncryptionSpec,

    /// What deleting the Tenant does. `Erase` (default): a verified crypto-shredding erasure
    /// of the database, namespaces, backups and key, leaving a signed ErasureReceipt.
    /// `Retain`: the Tenant object goes, its namespaces, database, backups and key stay.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// A user, group or service account that administers a tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)").message("namespace is required for a ServiceAccount and not allowed for a User or Group"))]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// Kind of subject: `User`, `Group` or `ServiceAccount`.
    pub kind: OwnerKind,
    /// Name of the user, group or service account, as the cluster's authenticator reports it.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of the service account; only for `kind: ServiceAccount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub namespace: Option<String>,
}

/// Kind of an owner subject, as in RBAC.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OwnerKind {
    User,
    Group,
    ServiceAccount,
}

/// The namespaces of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantNamespaces {
    /// Name of the primary namespace, which holds the tenant's database credentials.
    /// Defaults to `tenant-<tenant name>`. Cannot change once the Tenant exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub primary: Option<String>,
    /// Further namespaces of the tenant, isolated like the primary one and open to each
    /// other. Removing one from this list deletes that namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub additional: Vec<AdditionalNamespace>,
    /// Extra labels set on every namespace of the tenant. Labels under `landlord.dev/` and
    /// `pod-security.kubernetes.io/` are Landlord's and cannot be set here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::label_map")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations set on every namespace of the tenant.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "schema::annotation_map")]
    pub annotations: BTreeMap<String, String>,
}

/// A further namespace of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdditionalNamespace {
    /// Name of the namespace: a DNS-1123 label. It must not exist already unless Landlord
    /// created it for this tenant: Landlord never adopts someone else's namespace.
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS1123_LABEL))]
    pub name: String,
}

/// How a tenant is fenced off from the rest of the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IsolationSpec {
    /// Pod Security Standard enforced (and warned and audited) in the tenant's namespaces.
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    /// Hard limits of the ResourceQuota in each namespace, by resource name
    /// (`requests.cpu`, `limits.memory`, `pods`, `persistentvolumeclaims`, ...).
    /// No quota is created when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 64))]
    pub quota: BTreeMap<String, Quantity>,
    /// Defaults for containers that do not set their own requests and limits, applied by a
    /// LimitRange in each namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ContainerLimits>,
    /// Network allow-lists. Every namespace of the tenant denies all ingress and egress
    /// except: traffic among the tenant's own namespaces, DNS, the tenant's database server,
    /// and what is listed here.
    #[serde(default)]
    pub network: NetworkIsolation,
}

/// A Pod Security Standard level.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    /// Unrestricted; only for tenants that run trusted system workloads.
    Privileged,
    /// Prevents known privilege escalations.
    Baseline,
    /// Current pod hardening best practice (default).
    #[default]
    Restricted,
}

/// Container defaults enforced by a LimitRange.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerLimits {
    /// Limits given to containers that set none, e.g. `{cpu: 500m, memory: 512Mi}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 16))]
    pub default: BTreeMap<String, Quantity>,
    /// Requests given to containers that set none, e.g. `{cpu: 100m, memory: 128Mi}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 16))]
    pub default_request: BTreeMap<String, Quantity>,
    /// The most any single container may ask for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(length(max = 16))]
    pub max: BTreeMap<String, Quantity>,
}

/// Network allow-lists of a tenant, on top of its default-deny policies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkIsolation {
    /// Where the cluster DNS runs; tenant pods may reach it on port 53 (UDP and TCP).
    #[serde(default)]
    pub dns: DnsSelector,
    /// Extra sources allowed to connect to the tenant's pods, e.g. the ingress controller.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub ingress: Vec<NetworkRule>,
    /// Extra destinations the tenant's pods may connect to, e.g. a payment provider's CIDR.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub egress: Vec<NetworkRule>,
}

/// Selects the cluster DNS pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DnsSelector {
    /// Labels of the namespace the DNS pods run in.
    #[serde(default = "default_dns_namespace_selector")]
    #[schemars(schema_with = "schema::label_map")]
    pub namespace_selector: BTreeMap<String, String>,
    /// Labels of the DNS pods.
    #[serde(default = "default_dns_pod_selector")]
    #[schemars(schema_with = "schema::label_map")]
    pub pod_selector: BTreeMap<String, String>,
}

impl Default for DnsSelector {
    fn default() -> Self {
        DnsSelector {
            namespace_selector: default_dns_namespace_selector(),
            pod_selector: default_dns_pod_selector(),
        }
    }
}

fn default_dns_namespace_selector() -> BTreeMap<String, String> {
    BTreeMap::from([(
        "kubernetes.io/metadata.name".to_owned(),
        "kube-system".to_owned(),
    )])
}

fn default_dns_pod_selector() -> BTreeMap<String, String> {
    BTreeMap::from([("k8s-app".to_owned(), "kube-dns".to_owned())])
}

/// One allow-list entry: traffic to or from these peers on these ports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRule {
    /// Why this traffic is allowed; shown in the NetworkPolicy's annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub description: Option<String>,
    /// The peers. At least one.
    #[schemars(length(min = 1, max = 32))]
    pub peers: Vec<NetworkPeer>,
    /// The ports; all ports when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub ports: Vec<NetworkPort>,
}

/// A network peer: an IP block, or pods selected by namespace and/or pod labels.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.ipBlock) != (has(self.namespaceSelector) || has(self.podSelector))").message("a peer is either an ipBlock or namespaceSelector/podSelector, not both and not neither"))]
#[serde(rename_all = "camelCase")]
pub struct NetworkPeer {
    /// An IP range outside the cluster, with optional exceptions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
    /// Namespaces whose labels match all of these (`{}` selects every namespace). With a
    /// podSelector, only matching pods in matching namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_label_map")]
    pub namespace_selector: Option<BTreeMap<String, String>>,
    /// Pods whose labels match all of these; without a namespaceSelector, in the tenant's
    /// own namespaces only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_label_map")]
    pub pod_selector: Option<BTreeMap<String, String>>,
}

fn optional_label_map(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schema::label_map(generator)
}

/// An IP range in CIDR notation with optional excluded sub-ranges.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    /// The range, e.g. `203.0.113.0/24` or `2001:db8::/32`.
    #[x_kube(validation = Rule::new("isCIDR(self)").message("must be a CIDR such as 203.0.113.0/24"))]
    #[schemars(length(min = 1, max = 64))]
    pub cidr: String,
    /// Sub-ranges of `cidr` that are not allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every entry must be a CIDR such as 203.0.113.128/25"))]
    #[schemars(length(max = 32), inner(length(min = 1, max = 64)))]
    pub except: Vec<String>,
}

/// A port (or port range) and protocol.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.endPort) || self.endPort >= self.port").message("endPort must not be lower than port"))]
#[serde(rename_all = "camelCase")]
pub struct NetworkPort {
    /// Protocol: TCP (default), UDP or SCTP.
    #[serde(default)]
    pub protocol: Protocol,
    /// Port number.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Last port of a range starting at `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub end_port: Option<i32>,
}

/// A network protocol.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

/// The tenant's database on a shared PostgreSQL server.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TenantDatabase {
    /// Name of the DatabaseServer the database lives on. Cannot change once set: moving a
    /// tenant between servers is a backup and restore, not an edit.
    #[x_kube(validation = Rule::new("self == oldSelf").message("serverRef is immutable: moving a tenant to another server is a backup and restore"))]
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub server_ref: String,
    /// Most concurrent connections the tenant's role may open.
    #[serde(default = "default_connection_limit")]
    #[schemars(range(min = 1, max = 10000))]
    pub connection_limit: i32,
}

fn default_connection_limit() -> i32 {
    20
}

/// When and how long the tenant's database is backed up.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantBackupPolicy {
    /// Name of the BackupStorage the encrypted backups are written to.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS1123_SUBDOMAIN))]
    pub storage_ref: String,
    /// When to back up, as a five-field cron expression (`0 3 * * *`) or a macro
    /// (`@daily`).
    #[schemars(length(min = 1, max = 128), regex(pattern = CRON))]
    pub schedule: String,
    /// IANA time zone the schedule is read in, e.g. `Europe/Berlin`. Defaults to UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = "^[A-Za-z]+(/[A-Za-z0-9_+-]+)*$")
    )]
    pub time_zone: Option<String>,
    /// Which backups to keep; the rest are deleted together with their objects, unless
    /// object lock forbids it.
    #[serde(default)]
    pub retention: Retention,
    /// Stop scheduling new backups; existing ones are kept.
    #[serde(default)]
    pub suspend: bool,
    /// How the dump is compressed before it is encrypted. `Zstd` (default): `pg_dump -Z0`
    /// compressed by Landlord with multi-threaded zstd, several times faster than
    /// pg_dump's gzip; restore with `age -d | zstd -d | pg_restore`. `PgDump`: pg_dump's
    /// own compression; restore with `age -d | pg_restore`. `None`: uncompressed.
    #[serde(default)]
    pub compression: BackupCompression,
    /// Restore drills: the newest backup restored into a scratch database on the same
    /// server and checked (pg_restore succeeds, every table of the dump exists, rows
    /// counted), then dropped. The result is the TenantBackup's `Verified` condition and
    /// the Tenant's `status.lastVerifiedBackup`; a failure is a Warning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyPolicy>,
}

/// When restore drills run: after every N completed backups, or on a schedule.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.afterEveryBackups) != has(self.schedule)").message("set exactly one of afterEveryBackups or schedule"))]
pub struct VerifyPolicy {
    /// Verify the newest backup after every N completed backups (1: every backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub after_every_backups: Option<i32>,
    /// Verify the newest backup on this cron schedule, in `spec.backup.timeZone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128), regex(pattern = CRON))]
    pub schedule: Option<String>,
}

/// How a backup is compressed (recorded in its manifest).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BackupCompression {
    /// Landlord's multi-threaded zstd over `pg_dump -Z0`.
    #[default]
    Zstd,
    /// pg_dump's built-in compression.
    PgDump,
    /// No compression.
    None,
}

impl From<BackupCompression> for crate::backup::pg_dump::Compression {
    fn from(c: BackupCompression) -> Self {
        match c {
            BackupCompression::Zstd => crate::backup::pg_dump::Compression::Zstd,
            BackupCompression::PgDump => crate::backup::pg_dump::Compression::PgDump,
            BackupCompression::None => crate::backup::pg_dump::Compression::None,
        }
    }
}

/// Backup retention: a backup is kept if any rule keeps it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Keep the most recent N backups.
    #[serde(default = "default_keep_last")]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_last: i32,
    /// Keep the newest backup of each of the last N days.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_daily: i32,
    /// Keep the newest backup of each of the last N weeks.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_weekly: i32,
    /// Keep the newest backup of each of the last N months.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000))]
    pub keep_monthly: i32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_last: default_keep_last(),
            keep_daily: 0,
            keep_weekly: 0,
            keep_monthly: 0,
        }
    }
}

fn default_keep_last() -> i32 {
    7
}

/// How the tenant's backups are encrypted.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSpec {
    /// Where the tenant's age identity is kept. `Kubernetes` (default): a Secret in the
    /// operator's namespace. `AwsKms`: wrapped by a per-tenant AWS KMS key. Cannot change
    /// once set: the key of existing backups stays where it is.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("keyProvider is immutable: existing backups are encrypted to the key it holds"))]
    pub key_provider: KeyProvider,
}

/// A key provider.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum KeyProvider {
    /// A Secret in the operator's namespace.
    #[default]
    Kubernetes,
    /// A per-tenant key in AWS KMS.
    AwsKms,
}

/// What deleting a Tenant does to its data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Verified crypto-shredding erasure, with a signed ErasureReceipt.
    #[default]
    Erase,
    /// Leave namespaces, database, backups and key in place.
    Retain,
}

/// Observed state of a Tenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary of the tenant's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<TenantPhase>,
    /// Ready, NamespacesReady, NetworkIsolated, Isolated, DatabaseReady, KeyReady,
    /// BackupScheduled; each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The tenant's namespaces, primary first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Where the tenant's database is and how to reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<TenantDatabaseStatus>,
    /// Fingerprint of the tenant's public age recipient: the key every backup is
    /// encrypted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The erasure canary: a fixed, published plaintext encrypted at onboarding to the key
    /// `keyId`, as the base64 of an age file. Not secret (anyone may know the plaintext);
    /// erasure tries it after destroying the key, to prove that no identity the operator
    /// can read still opens it. Sealed again only when `keyId` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub canary: Option<String>,
    /// The most recent successful backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<LastBackup>,
    /// The most recent restore drill: which backup, when, and whether it passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_verified_backup: Option<LastVerified>,
    /// Progress of the deletion workflow, one entry per step, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deletion: Vec<DeletionStep>,
    /// What the erasure has recorded so far, as structured data, for its receipt: what
    /// existed, every backup object (recorded before it is deleted), the verification's
    /// evidence, and the receipt once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureProgress>,
    /// The UID of the earlier Tenant of the same name whose retained namespaces, database
    /// and credentials this Tenant took over, as its annotation
    /// `landlord.dev/adopt-retained-from` asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopted_from: Option<String>,
}

/// Summary phase of a Tenant.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TenantPhase {
    /// Being set up for the first time.
    Provisioning,
    /// Everything the spec asks for is in place.
    Ready,
    /// Was ready, now something needs attention (see the conditions).
    Degraded,
    /// Being deleted: the erasure (or retain) workflow is running.
    Deleting,
}

/// The tenant's database as provisioned.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantDatabaseStatus {
    /// The DatabaseServer it lives on.
    pub server: String,
    /// Database name on that server.
    pub name: String,
    /// Role (user) that owns the database.
    pub role: String,
    /// The Secret holding the connection details, in the tenant's primary namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<NamespacedName>,
    /// When the role's password was last set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub password_set_at: Option<Time>,
}

/// The most recent successful backup of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    /// Name of the TenantBackup.
    pub name: String,
    /// When it completed.
    #[schemars(schema_with = "schema::timestamp")]
    pub completion_time: Time,
    /// Size of the encrypted object in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
}

/// The most recent restore drill of a tenant.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastVerified {
    /// Name of the TenantBackup restored.
    pub name: String,
    /// When the drill finished.
    #[schemars(schema_with = "schema::timestamp")]
    pub time: Time,
    /// Whether the backup restored and checked out.
    pub passed: bool,
}

/// What an erasure in progress has recorded (`status.erasure`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureProgress {
    /// The tenant's namespaces, recorded when the erasure began.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// The tenant's database, recorded when the erasure began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<ErasedDatabase>,
    /// The BackupStorage of the tenant's backups, recorded by `DeleteBackups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ErasedStorage>,
    /// Every backup object, recorded by `DeleteBackups` before it deletes any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100000))]
    pub objects: Vec<ErasureObject>,
    /// The checks of `Verify`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// The ErasureReceipt, once issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
}

/// A backup object as the erasure recorded it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureObject {
    /// Object key, relative to the storage's location.
    pub key: String,
    /// SHA-256 of the object, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// Recorded (not deleted yet), Deleted, or Locked.
    pub state: ErasureObjectState,
    /// Until when Object Lock keeps it, when the store said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub locked_until: Option<Time>,
    /// Its age header as `Verify` read it, for a remaining encrypted object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<ObjectHeader>,
}

/// What the erasure has done with a backup object.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ErasureObjectState {
    /// Recorded, not deleted yet.
    Recorded,
    /// Deleted, every version of it.
    Deleted,
    /// Object Lock refused the deletion.
    Locked,
}

/// One step of the deletion workflow.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletionStep {
    /// The step (a closed set, see ErasureStep).
    pub name: ErasureStep,
    /// Pending, Running, Done or Failed.
    pub state: StepState,
    /// When the step started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub started_at: Option<Time>,
    /// When the step finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::timestamp")]
    pub completed_at: Option<Time>,
    /// What happened, or what is blocking the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// State of a workflow step.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
}

/// The annotation that protects a Tenant from deletion: with the value `"true"`, the
/// chart's ValidatingAdmissionPolicy (`deletionProtection.enabled`) refuses to delete it.
pub const PROTECTED_ANNOTATION: &str = "landlord.dev/protected";

impl Tenant {
    /// Every namespace the spec asks for: the primary one, then the additional ones.
    pub fn namespace_names(&self) -> Vec<String> {
        let mut names = vec![self.primary_namespace()];
        if let Some(spec) = &self.spec.namespaces {
            names.extend(spec.additional.iter().map(|a| a.name.clone()));
        }
        names
    }

    /// The name of the tenant's primary namespace: `spec.namespaces.primary`, or
    /// `tenant-<name>`.
    pub fn primary_namespace(&self) -> String {
        self.spec
            .namespaces
            .as_ref()
            .and_then(|n| n.primary.clone())
            .unwrap_or_else(|| {
                format!(
                    "tenant-{}",
                    self.metadata.name.as_deref().unwrap_or_default()
                )
            })
    }
}
