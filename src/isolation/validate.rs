//! The validate stage: what the CRD schema cannot judge about a Tenant's isolation spec,
//! decided before anything is built.
//!
//! Every problem is reported at once ([`ValidationErrors`]), each with a stable category
//! and a message that names the field to fix. A Tenant with any problem is not built:
//! Landlord never applies a half-understood spec, and the objects of the last valid spec
//! stay as they are. Reserved labels are such a problem rather than being silently
//! dropped, so that the platform engineer learns that the label they asked for is not
//! there (the builders drop them as well, as a second line of defence).

use std::collections::BTreeSet;
use std::fmt;

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use super::labels::{TENANT_LABEL, is_reserved_annotation, is_reserved_label};
use super::ownership::{self, Claim};
use super::{IsolationConfig, ValidatedTenant};
use crate::api::{DatabaseServer, OwnerKind, Tenant};

/// Namespaces no Tenant may claim, besides the operator's own and any `kube-` prefixed one.
pub const RESERVED_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// One reason a Tenant's isolation cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// The Tenant lacks `metadata.name` or `metadata.uid` (it was not read from the API).
    #[error(
        "the Tenant has no metadata.{field}: only Tenants read from the API server can be reconciled"
    )]
    MissingMetadata {
        /// `name` or `uid`.
        field: &'static str,
    },
    /// A namespace appears twice among the primary and additional namespaces.
    #[error(
        "namespace {namespace} is listed more than once in spec.namespaces: remove the repeated entry from spec.namespaces.additional"
    )]
    DuplicateNamespace {
        /// The repeated namespace.
        namespace: String,
    },
    /// A namespace belongs to Kubernetes or to the operator.
    #[error(
        "namespace {namespace} is reserved ({why}) and cannot belong to a tenant: choose another name in spec.namespaces"
    )]
    ReservedNamespace {
        /// The namespace.
        namespace: String,
        /// Whose it is.
        why: &'static str,
    },
    /// A spec label uses a key Landlord or Kubernetes sets on tenant namespaces.
    #[error(
        "label {key} in spec.namespaces.labels is reserved (Landlord sets landlord.dev/*, app.kubernetes.io/managed-by and the pod-security.kubernetes.io/* labels itself, and the API server sets kubernetes.io/metadata.name): remove it from spec.namespaces.labels"
    )]
    ReservedLabel {
        /// The label key.
        key: String,
    },
    /// A spec annotation uses Landlord's prefix.
    #[error(
        "annotation {key} in spec.namespaces.annotations is reserved (landlord.dev/* is Landlord's): remove it from spec.namespaces.annotations"
    )]
    ReservedAnnotation {
        /// The annotation key.
        key: String,
    },
    /// A ServiceAccount owner without a namespace.
    #[error(
        "owner {name} (spec.owners[{index}]) is a ServiceAccount and needs a namespace: set spec.owners[{index}].namespace"
    )]
    OwnerNamespaceMissing {
        /// Position in `spec.owners`.
        index: usize,
        /// The service account's name.
        name: String,
    },
    /// The DatabaseServer handed in is not the one the Tenant refers to.
    #[error(
        "DatabaseServer {given} was observed for this Tenant, but spec.database.serverRef is {expected}"
    )]
    DatabaseServerMismatch {
        /// What `spec.database.serverRef` names (empty when the Tenant has no database).
        expected: String,
        /// The server that was given.
        given: String,
    },
    /// An existing namespace belongs to someone else: Landlord never adopts it.
    #[error(
        "namespace {namespace} already exists and is not Landlord's for this tenant ({owner}): Landlord never adopts a namespace it did not create; remove it from spec.namespaces or choose another name"
    )]
    NamespaceTaken {
        /// The namespace.
        namespace: String,
        /// Who it belongs to, as far as its labels and owner references tell.
        owner: String,
    },
    /// An existing namespace was created by Landlord for an earlier Tenant of the same
    /// name (kept by `deletionPolicy: Retain`): never inherited without the opt-in.
    #[error(
        "namespace {namespace} holds data retained by an earlier Tenant {tenant} (UID {uid}); this Tenant does not inherit it: delete the namespace, or take it over by annotating this Tenant landlord.dev/adopt-retained-from={uid}"
    )]
    RetainedDataExists {
        /// The namespace.
        namespace: String,
        /// The Tenant's name (the same as the earlier one's).
        tenant: String,
        /// The earlier Tenant's UID, recorded on the namespace.
        uid: String,
    },
}

impl ValidationError {
    /// Stable short category: the metric label and the condition/event reason.
    pub fn category(&self) -> &'static str {
        match self {
            ValidationError::MissingMetadata { .. } => "tenant_metadata_missing",
            ValidationError::DuplicateNamespace { .. } => "duplicate_namespace",
            ValidationError::ReservedNamespace { .. } => "reserved_namespace",
            ValidationError::ReservedLabel { .. } => "reserved_label",
            ValidationError::ReservedAnnotation { .. } => "reserved_annotation",
            ValidationError::OwnerNamespaceMissing { .. } => "owner_invalid",
            ValidationError::DatabaseServerMismatch { .. } => "database_server_mismatch",
            ValidationError::NamespaceTaken { .. } => "namespace_taken",
            ValidationError::RetainedDataExists { .. } => "retained_data_exists",
        }
    }
}

/// Every problem found in one Tenant, in the order of the spec's fields. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(Vec<ValidationError>);

impl ValidationErrors {
    /// The individual problems.
    pub fn errors(&self) -> &[ValidationError] {
        &self.0
    }

    /// The category of the first problem: the condition reason.
    pub fn category(&self) -> &'static str {
        self.0
            .first()
            .map_or("invalid_spec", ValidationError::category)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

/// Validates a Tenant for building. `database_server` is the DatabaseServer named by
/// `spec.database.serverRef`, when the observe stage found it; without it the tenant gets
/// no database egress policy (its database condition says why).
pub fn validate<'a>(
    tenant: &'a Tenant,
    database_server: Option<&'a DatabaseServer>,
    config: &IsolationConfig,
) -> Result<ValidatedTenant<'a>, ValidationErrors> {
    let mut errors = Vec::new();
    let name = tenant.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        errors.push(ValidationError::MissingMetadata { field: "name" });
    }
    let uid = tenant.metadata.uid.clone().unwrap_or_default();
    if uid.is_empty() {
        errors.push(ValidationError::MissingMetadata { field: "uid" });
    }

    let primary = tenant.primary_namespace();
    let spec_namespaces = tenant.spec.namespaces.clone().unwrap_or_default();
    let mut namespaces = vec![primary];
    namespaces.extend(spec_namespaces.additional.iter().map(|a| a.name.clone()));
    let mut seen = BTreeSet::new();
    let mut reported = BTreeSet::new();
    for ns in &namespaces {
        if !seen.insert(ns.as_str()) && reported.insert(ns.as_str()) {
            errors.push(ValidationError::DuplicateNamespace {
                namespace: ns.clone(),
            });
        }
    }
    for ns in seen {
        let why = if RESERVED_NAMESPACES.contains(&ns) {
            Some("it belongs to Kubernetes")
        } else if ns.starts_with("kube-") {
            Some("the kube- prefix is reserved for Kubernetes")
        } else if ns == config.operator_namespace {
            Some("Landlord runs there and keeps tenant keys there")
        } else {
            None
        };
        if let Some(why) = why {
            errors.push(ValidationError::ReservedNamespace {
                namespace: ns.to_owned(),
                why,
            });
        }
    }
    let mut unique = BTreeSet::new();
    namespaces.retain(|ns| unique.insert(ns.clone()));

    errors.extend(
        spec_namespaces
            .labels
            .keys()
            .filter(|k| is_reserved_label(k))
            .map(|key| ValidationError::ReservedLabel { key: key.clone() }),
    );
    errors.extend(
        spec_namespaces
            .annotations
            .keys()
            .filter(|k| is_reserved_annotation(k))
            .map(|key| ValidationError::ReservedAnnotation { key: key.clone() }),
    );
    for (index, owner) in tenant.spec.owners.iter().enumerate() {
        if owner.kind == OwnerKind::ServiceAccount && owner.namespace.is_none() {
            errors.push(ValidationError::OwnerNamespaceMissing {
                index,
                name: owner.name.clone(),
            });
        }
    }
    if let Some(server) = database_server {
        let expected = tenant
            .spec
            .database
            .as_ref()
            .map(|d| d.server_ref.clone())
            .unwrap_or_default();
        let given = server.name_any();
        if expected != given {
            errors.push(ValidationError::DatabaseServerMismatch { expected, given });
        }
    }

    if errors.is_empty() {
        Ok(ValidatedTenant {
            tenant,
            name,
            uid,
            namespaces,
            database_server,
        })
    } else {
        Err(ValidationErrors(errors))
    }
}

/// Whether an existing namespace is this tenant's to update: only when Landlord created
/// it for this very Tenant (its [`ownership::TENANT_UID_ANNOTATION`] holds the Tenant's UID), or for
/// an earlier Tenant of the same name that this one was told to adopt from
/// ([`ownership::ADOPT_ANNOTATION`]). Labels and owner references decide nothing: anyone
/// who can create a namespace can set them. Anything else — `kube-system`, another
/// tenant's namespace, a namespace someone created by hand with Landlord's labels, one an
/// earlier Tenant retained — is refused.
pub fn check_namespace_claim(
    tenant: &ValidatedTenant<'_>,
    existing: &Namespace,
) -> Result<Claim, ValidationError> {
    let namespace = existing.name_any();
    let claim = ownership::claim(
        tenant.uid(),
        ownership::adopt_from(tenant.tenant()),
        ownership::recorded_uid(existing.metadata.annotations.as_ref()),
    );
    match claim {
        Claim::Ours | Claim::Adopt { .. } => Ok(claim),
        // Recorded for another Tenant: an earlier one of the same name (retained), or
        // another tenant altogether. Refused either way; the label only picks the message.
        Claim::Retained { uid } => match existing.labels().get(TENANT_LABEL) {
            Some(other) if other != tenant.name() => Err(ValidationError::NamespaceTaken {
                namespace,
                owner: format!("it belongs to tenant {other}"),
            }),
            _ => Err(ValidationError::RetainedDataExists {
                namespace,
                tenant: tenant.name().to_owned(),
                uid,
            }),
        },
        Claim::Foreign => {
            let owner = match existing.labels().get(TENANT_LABEL) {
                Some(t) => format!(
                    "it carries the label {TENANT_LABEL}={t} but no Tenant UID recorded by Landlord"
                ),
                None => "Landlord did not create it".to_owned(),
            };
            Err(ValidationError::NamespaceTaken { namespace, owner })
        }
    }
}
