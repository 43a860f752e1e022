//! The custom resources of the `landlord.dev/v1alpha1` API.
//!
//! One file per kind; this module holds what they share: condition handling, references,
//! quantities and the schema helpers that put Kubernetes-specific validation into the
//! generated CRDs. Every field's doc comment becomes its `kubectl explain` text.
#![allow(
    clippy::duplicated_attributes,
    reason = "kube's repeated printcolumn(type_ = ...) attributes are distinct columns"
)]

mod backup_storage;
mod condition;
mod database_server;
mod erasure_receipt;
mod schema;
mod tenant;
mod tenant_backup;
mod tenant_restore;

pub use backup_storage::*;
pub use condition::*;
pub use database_server::*;
pub use erasure_receipt::*;
pub use schema::Quantity;
pub use tenant::*;
pub use tenant_backup::*;
pub use tenant_restore::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every Landlord resource.
pub const GROUP: &str = "landlord.dev";
/// The API version served.
pub const VERSION: &str = "v1alpha1";
/// The category that lists every Landlord kind: `kubectl get landlord`.
pub const CATEGORY: &str = "landlord";

/// Every CustomResourceDefinition Landlord serves, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        with_metadata_name(Tenant::crd()),
        DatabaseServer::crd(),
        BackupStorage::crd(),
        TenantBackup::crd(),
        TenantRestore::crd(),
        ErasureReceipt::crd(),
    ]
}

/// Declares `metadata.name` in the root schema, so that a root rule may name
/// `.metadata.name` as its `fieldPath` (kube-apiserver refuses a fieldPath that is not a
/// path of the schema; `metadata` may declare `name` and nothing else of its own).
fn with_metadata_name(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
    for version in &mut crd.spec.versions {
        let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let metadata = root
            .properties
            .get_or_insert_default()
            .entry("metadata".to_owned())
            .or_insert_with(|| JSONSchemaProps {
                type_: Some("object".to_owned()),
                ..JSONSchemaProps::default()
            });
        metadata.properties.get_or_insert_default().insert(
            "name".to_owned(),
            JSONSchemaProps {
                type_: Some("string".to_owned()),
                description: Some(
                    "The name: a DNS label of at most 56 characters, so that the names derived from it fit."
                        .to_owned(),
                ),
                ..JSONSchemaProps::default()
            },
        );
    }
    crd
}

/// A reference to a key of a Secret in a given namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = schema::DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the Secret. Landlord's resources are cluster-scoped, so the namespace
    /// is always explicit; usually the namespace Landlord is installed in.
    #[schemars(length(min = 1, max = 63), regex(pattern = schema::DNS1123_LABEL))]
    pub namespace: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = schema::SECRET_KEY))]
    pub key: String,
}

/// A reference to a Secret in a given namespace, whose keys are named by the referring field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = schema::DNS1123_SUBDOMAIN))]
    pub name: String,
    /// Namespace of the Secret; usually the namespace Landlord is installed in.
    #[schemars(length(min = 1, max = 63), regex(pattern = schema::DNS1123_LABEL))]
    pub namespace: String,
}

/// A reference to a namespaced object by name, as recorded in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NamespacedName {
    /// Name of the object.
    pub name: String,
    /// Namespace of the object.
    pub namespace: String,
}
