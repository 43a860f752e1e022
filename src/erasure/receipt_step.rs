//! `IssueReceipt`: the ErasureReceipt is built from what the steps recorded (never from
//! anything else), signed, written to the BackupStorage (under Object Lock when the
//! storage has it) and then created as the resource.
//!
//! Issuing is deterministic, so doing it twice is harmless: the receipt's name is the
//! Tenant's name and UID, its `issuedAt` the time this step started (recorded before it
//! ran), and Ed25519 signatures are deterministic, so a second attempt after a crash
//! writes the same bytes. A receipt that already exists for this Tenant's UID is kept as
//! it is: a receipt never changes.

use kube::ResourceExt;
use kube::api::{Api, PostParams};
use kube::runtime::events::EventType;

use super::{crash, document, objects};
use crate::api::{
    DeletionStep, ErasedTenant, ErasureObject, ErasureObjectState, ErasureProgress, ErasureReceipt,
    ErasureReceiptSpec, ErasureStep, ObjectDisposition, ReceiptObject, ReceiptStep, Signature,
    SignatureAlgorithm, StepState, StoredCopy, Tenant, TenantStatus,
};
use crate::controller::{Context, Error, tenant};
use crate::storage::Retention;

/// Why a receipt cannot be built from what was recorded.
#[derive(Debug, PartialEq, Eq)]
pub struct Incomplete(String);

impl std::fmt::Display for Incomplete {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no receipt can be issued: {}", self.0)
    }
}

fn incomplete(what: String) -> Incomplete {
    Incomplete(what)
}

impl From<Incomplete> for Error {
    fn from(e: Incomplete) -> Error {
        Error::Erasure(e.to_string())
    }
}

/// The receipt's steps: every step before the receipt, each Done.
fn receipt_steps(recorded: &[DeletionStep]) -> Result<Vec<ReceiptStep>, Incomplete> {
    ErasureStep::RECEIPTED
        .iter()
        .map(|name| {
            let step = recorded
                .iter()
                .find(|s| s.name == *name)
                .ok_or_else(|| incomplete(format!("the step {name} never ran")))?;
            match (step.state, &step.started_at, &step.completed_at) {
                (StepState::Done, Some(started), Some(completed)) => Ok(ReceiptStep {
                    name: *name,
                    started_at: started.clone(),
                    completed_at: completed.clone(),
                    outcome: step.message.clone().unwrap_or_default(),
                }),
                _ => Err(incomplete(format!("the step {name} is not done"))),
            }
        })
        .collect()
}

fn receipt_object(object: &ErasureObject) -> Result<ReceiptObject, Incomplete> {
    let disposition = match object.state {
        ErasureObjectState::Deleted => ObjectDisposition::Deleted,
        ErasureObjectState::Locked => ObjectDisposition::Locked,
        ErasureObjectState::Recorded => {
            return Err(incomplete(format!(
                "{} was recorded but never deleted",
                object.key
            )));
        }
    };
    Ok(ReceiptObject {
        key: object.key.clone(),
        sha256: object.sha256.clone(),
        size_bytes: object.size_bytes,
        disposition,
        locked_until: object.locked_until.clone(),
        header: object.header.clone(),
    })
}

/// The unsigned receipt of what `status` recorded.
pub fn draft(
    tenant: &Tenant,
    status: &TenantStatus,
    key_provider: &str,
    stored: Option<StoredCopy>,
) -> Result<ErasureReceiptSpec, Incomplete> {
    let progress: &ErasureProgress = status
        .erasure
        .as_ref()
        .ok_or_else(|| incomplete("the erasure recorded nothing".to_owned()))?;
    if progress.evidence.is_empty() || progress.evidence.iter().any(|e| !e.passed) {
        return Err(incomplete("not every check of Verify passed".to_owned()));
    }
    let issued_at = status
        .deletion
        .iter()
        .find(|s| s.name == ErasureStep::IssueReceipt)
        .and_then(|s| s.started_at.clone())
        .ok_or_else(|| incomplete("the step IssueReceipt has not started".to_owned()))?;
    Ok(ErasureReceiptSpec {
        tenant: ErasedTenant {
            name: tenant.name_any(),
            uid: tenant.uid().unwrap_or_default(),
        },
        namespaces: progress.namespaces.clone(),
        database: progress.database.clone(),
        storage: progress.storage.clone(),
        key_id: status
            .key_id
            .clone()
            .unwrap_or_else(|| crate::api::NO_KEY.to_owned()),
        key_provider: key_provider.to_owned(),
        steps: receipt_steps(&status.deletion)?,
        evidence: progress.evidence.clone(),
        objects: progress
            .objects
            .iter()
            .map(receipt_object)
            .collect::<Result<_, _>>()?,
        operator_version: env!("CARGO_PKG_VERSION").to_owned(),
        issued_at,
        stored_copy: stored,
        signature: Signature {
            algorithm: SignatureAlgorithm::Ed25519,
            public_key: String::new(),
            value: String::new(),
        },
    })
}

/// Issues the receipt: signs it, stores its copy, creates the resource.
pub async fn issue(
    tenant: &Tenant,
    ctx: &Context,
    status: &mut TenantStatus,
) -> Result<String, Error> {
    let name = document::receipt_name(&ErasedTenant {
        name: tenant.name_any(),
        uid: tenant.uid().unwrap_or_default(),
    });
    let api: Api<ErasureReceipt> = Api::all(ctx.client.clone());
    let api_error = |source| Error::Object {
        kind: "ErasureReceipt",
        name: name.clone(),
        source,
    };
    if let Some(existing) = api.get_opt(&name).await.map_err(api_error)? {
        return Ok(already_issued(tenant, status, existing, &name)?);
    }
    let storage = status.erasure.as_ref().and_then(|p| p.storage.clone());
    let target = match &storage {
        Some(storage) => {
            let (resource, store) =
                objects::store(ctx, &storage.name).map_err(|source| Error::Storage {
                    name: storage.name.clone(),
                    source,
                })?;
            Some((resource, store, document::stored_copy_key(storage)))
        }
        None => None,
    };
    let stored = target.as_ref().map(|(resource, _, key)| StoredCopy {
        storage_ref: resource.name_any(),
        key: key.clone(),
        locked: resource.spec.object_lock.is_some(),
    });
    let mut spec = draft(tenant, status, ctx.keys.name(), stored)?;
    ctx.receipt_signer
        .sign(&mut spec)
        .map_err(|e| Error::Erasure(format!("signing the receipt: {e}")))?;
    let receipt = document::receipt_resource(spec);
    if let Some((resource, store, key)) = &target {
        let retention = match &resource.spec.object_lock {
            Some(lock) => Some(Retention::starting(lock, receipt.spec.issued_at.0).map_err(
                |source| Error::Storage {
                    name: resource.name_any(),
                    source,
                },
            )?),
            None => None,
        };
        let bytes = document::stored_copy_json(&receipt);
        store
            .put(key, bytes.into(), retention)
            .await
            .map_err(|source| Error::Storage {
                name: resource.name_any(),
                source,
            })?;
    }
    crash::point(ErasureStep::IssueReceipt, crash::Point::Inside);
    match api.create(&PostParams::default(), &receipt).await {
        Ok(_) => {}
        Err(kube::Error::Api(response)) if response.code == 409 => {
            let existing = api.get(&name).await.map_err(api_error)?;
            return Ok(already_issued(tenant, status, existing, &name)?);
        }
        Err(source) => return Err(api_error(source)),
    }
    tenant::publish(
        tenant,
        ctx,
        EventType::Normal,
        "ErasureReceiptIssued",
        &format!(
            "the erasure is verified; ErasureReceipt {name} is signed with the operator's key {}",
            ctx.receipt_signer.key_id()
        ),
    )
    .await;
    record(status, &name);
    Ok(issued_message(&name, &receipt.spec))
}

fn record(status: &mut TenantStatus, name: &str) {
    if let Some(progress) = status.erasure.as_mut() {
        progress.receipt = Some(name.to_owned());
    }
}

fn issued_message(name: &str, spec: &ErasureReceiptSpec) -> String {
    match &spec.stored_copy {
        Some(copy) => format!(
            "ErasureReceipt {name} issued, and stored as {} in the BackupStorage {}{}",
            copy.key,
            copy.storage_ref,
            if copy.locked {
                " under Object Lock"
            } else {
                ""
            }
        ),
        None => format!("ErasureReceipt {name} issued"),
    }
}

/// A receipt of this name exists: it is this erasure's when it records this Tenant's UID
/// (issued by an attempt that stopped before recording it), and stays as it is.
fn already_issued(
    tenant: &Tenant,
    status: &mut TenantStatus,
    existing: ErasureReceipt,
    name: &str,
) -> Result<String, Incomplete> {
    let uid = tenant.uid().unwrap_or_default();
    if existing.spec.tenant.uid != uid || existing.spec.tenant.name != tenant.name_any() {
        return Err(incomplete(format!(
            "an ErasureReceipt {name} exists for another tenant ({} with UID {})",
            existing.spec.tenant.name, existing.spec.tenant.uid
        )));
    }
    record(status, name);
    Ok(issued_message(name, &existing.spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Evidence, EvidenceCheck};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn t(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).expect("a time"))
    }

    fn done(name: ErasureStep, at: i64) -> DeletionStep {
        DeletionStep {
            name,
            state: StepState::Done,
            started_at: Some(t(at)),
            completed_at: Some(t(at + 1)),
            message: Some(format!("{name} done")),
        }
    }

    fn finished() -> (Tenant, TenantStatus) {
        let mut tenant = Tenant::new(
            "acme",
            serde_json::from_value(serde_json::json!({})).expect("a spec"),
        );
        tenant.metadata.uid = Some("uid-1".to_owned());
        let mut deletion: Vec<DeletionStep> = ErasureStep::RECEIPTED
            .iter()
            .enumerate()
            .map(|(i, s)| done(*s, i as i64 * 10))
            .collect();
        deletion.push(DeletionStep {
            state: StepState::Running,
            completed_at: None,
            ..done(ErasureStep::IssueReceipt, 100)
        });
        let status = TenantStatus {
            key_id: Some("age1key".to_owned()),
            deletion,
            erasure: Some(ErasureProgress {
                namespaces: vec!["tenant-acme".to_owned()],
                evidence: vec![Evidence {
                    check: EvidenceCheck::NamespacesNotFound,
                    passed: true,
                    observation: "404".to_owned(),
                }],
                ..ErasureProgress::default()
            }),
            ..TenantStatus::default()
        };
        (tenant, status)
    }

    #[test]
    fn a_receipt_is_drawn_from_what_was_recorded_and_issued_when_its_step_started() {
        let (tenant, status) = finished();
        let spec = draft(&tenant, &status, "kubernetes", None).expect("a draft");
        assert_eq!(spec.tenant.uid, "uid-1");
        assert_eq!(spec.issued_at, t(100));
        assert_eq!(
            spec.steps.iter().map(|s| s.name).collect::<Vec<_>>(),
            ErasureStep::RECEIPTED.to_vec()
        );
        // The same status gives the same receipt: issuing twice writes the same bytes.
        assert_eq!(
            draft(&tenant, &status, "kubernetes", None).expect("a draft"),
            spec
        );
    }

    #[test]
    fn no_receipt_for_an_erasure_that_did_not_finish_or_a_check_that_failed() {
        let (tenant, status) = finished();
        let mut unfinished = status.clone();
        unfinished.deletion[4].state = StepState::Running;
        assert!(draft(&tenant, &unfinished, "kubernetes", None).is_err());
        let mut missing = status.clone();
        missing.deletion.remove(2);
        assert!(draft(&tenant, &missing, "kubernetes", None).is_err());
        let mut failed = status.clone();
        failed.erasure.as_mut().expect("progress").evidence[0].passed = false;
        assert!(draft(&tenant, &failed, "kubernetes", None).is_err());
        let mut unchecked = status.clone();
        unchecked
            .erasure
            .as_mut()
            .expect("progress")
            .evidence
            .clear();
        assert!(draft(&tenant, &unchecked, "kubernetes", None).is_err());
        let mut undeleted = status;
        undeleted
            .erasure
            .as_mut()
            .expect("progress")
            .objects
            .push(ErasureObject {
                key: "acme/uid-1/backups/b.dump.zst.age".to_owned(),
                sha256: "0".repeat(64),
                size_bytes: 1,
                state: ErasureObjectState::Recorded,
                locked_until: None,
                header: None,
            });
        assert!(draft(&tenant, &undeleted, "kubernetes", None).is_err());
    }
}
