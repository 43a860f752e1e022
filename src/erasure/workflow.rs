//! The deletion workflow behind the `landlord.dev/erasure` finalizer: which steps run, in
//! which order, and how their progress is recorded so that a crash or a leader change at
//! any point resumes where it stopped.
//!
//! The steps are a closed set ([`ErasureStep`]); `status.deletion` holds one entry per
//! step of the plan (Pending → Running → Done) and `status.erasure` what the steps found
//! ([`ErasureProgress`]), both as structured data. A step is marked Running (and written)
//! before it acts and Done (and written) after, so a crash between the two runs it again:
//! every step is idempotent. `RemoveFinalizer` is recorded Done before it runs, since
//! afterwards the Tenant is gone. A step that cannot complete (a server down, an API
//! error, a check that fails) keeps the finalizer, says why in condition `Erasing` with a
//! Warning Event, and is retried with back-off.

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use tracing::info;

use super::{crash, objects, receipt_step, stop, verify};
use crate::api::{
    Condition, ConditionStatus, DeletionPolicy, DeletionStep, ErasedDatabase, ErasureProgress,
    ErasureStep, StepState, Tenant, TenantPhase, TenantStatus, set_condition,
};
use crate::controller::{Context, Error, status, tenant, tenant_database, tenant_key};
use crate::database::TenantIdentifiers;
use crate::isolation::ownership::{self, Claim};

/// The condition that says how the erasure goes: True while it progresses, False (with
/// the blocking reason) while a step cannot complete.
pub const ERASING: &str = "Erasing";

/// The steps of the deletion workflow for `policy`, in order.
pub fn plan(policy: DeletionPolicy) -> &'static [ErasureStep] {
    match policy {
        DeletionPolicy::Erase => &ErasureStep::ERASE,
        DeletionPolicy::Retain => &ErasureStep::RETAIN,
    }
}

/// The recorded progress, brought to `plan`: what was recorded of a step of the plan is
/// kept, a step of the plan not recorded yet (an erasure begun by an earlier version) is
/// added as Pending in its place, and a recorded step the plan does not have is dropped.
pub fn merge_plan(recorded: &[DeletionStep], plan: &[ErasureStep]) -> Vec<DeletionStep> {
    plan.iter()
        .map(|step| {
            recorded
                .iter()
                .find(|r| r.name == *step)
                .cloned()
                .unwrap_or_else(|| pending(*step))
        })
        .collect()
}

fn pending(step: ErasureStep) -> DeletionStep {
    DeletionStep {
        name: step,
        state: StepState::Pending,
        started_at: None,
        completed_at: None,
        message: None,
    }
}

/// The index of the step to run next: the first that is not Done, or `RemoveFinalizer`
/// (recorded Done before it runs, so it runs until the finalizer really is gone).
pub fn next_step(steps: &[DeletionStep]) -> Option<usize> {
    steps
        .iter()
        .position(|s| s.state != StepState::Done || s.name == ErasureStep::RemoveFinalizer)
}

fn now() -> Time {
    Time(jiff::Timestamp::now())
}

/// What erasure records about the tenant before its first step: its namespaces and its
/// database, as they were. The database counts once Landlord provisioned it
/// (`status.database`): a Tenant whose database never came to be (its names taken by
/// someone else's role, its Secret name taken) has none to check, and what holds its
/// names is not its own; `DropDatabase` still removes whatever of it records its UID.
fn begin(tenant: &Tenant, ctx: &Context) -> ErasureProgress {
    let provisioned = tenant.status.as_ref().and_then(|s| s.database.as_ref());
    let database = tenant
        .spec
        .database
        .as_ref()
        .filter(|_| provisioned.is_some())
        .map(|spec| {
            let ids = TenantIdentifiers::for_tenant(&tenant.name_any());
            ErasedDatabase {
                server: spec.server_ref.clone(),
                database: ids.database().to_owned(),
                role: ids.role().to_owned(),
            }
        });
    ErasureProgress {
        namespaces: tenant::tenant_namespaces(tenant, ctx),
        database,
        ..ErasureProgress::default()
    }
}

/// Runs the workflow for a Tenant being deleted, from where it stopped.
pub async fn run(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    if !tenant.finalizers().iter().any(|f| f == tenant::FINALIZER) {
        return Ok(Action::await_change());
    }
    let policy = tenant.spec.deletion_policy;
    let mut status = tenant.status.clone().unwrap_or_default();
    let steps = merge_plan(&status.deletion, plan(policy));
    if status.deletion.is_empty() {
        status.deletion = steps;
        status.phase = Some(TenantPhase::Deleting);
        if policy == DeletionPolicy::Erase {
            status.erasure = Some(begin(tenant, ctx));
        }
        let names: Vec<&str> = plan(policy).iter().map(|s| s.as_str()).collect();
        tenant::publish(
            tenant,
            ctx,
            EventType::Normal,
            "Deleting",
            &format!("deletionPolicy {policy:?}: running {}", names.join(", ")),
        )
        .await;
        write(tenant, ctx, &status).await?;
    } else if status.deletion != steps {
        status.deletion = steps;
        if policy == DeletionPolicy::Erase && status.erasure.is_none() {
            status.erasure = Some(begin(tenant, ctx));
        }
        write(tenant, ctx, &status).await?;
    }
    let name = tenant.name_any();
    while let Some(index) = next_step(&status.deletion) {
        let step = status.deletion[index].name;
        if status.deletion[index].state != StepState::Running
            && step != ErasureStep::RemoveFinalizer
        {
            status.deletion[index].state = StepState::Running;
            status.deletion[index].started_at = Some(now());
            write(tenant, ctx, &status).await?;
        }
        crash::point(step, crash::Point::Started);
        let outcome = match step {
            ErasureStep::StopBackups => stop::stop_backups(tenant, ctx).await,
            ErasureStep::DropDatabase => tenant_database::drop_database(tenant, ctx).await,
            ErasureStep::DeleteNamespaces => delete_namespaces(tenant, ctx, &status).await,
            ErasureStep::DeleteBackups => objects::delete_backups(tenant, ctx, &mut status).await,
            ErasureStep::DestroyKey => tenant_key::destroy_key(tenant, ctx).await,
            ErasureStep::Verify => verify::verify(tenant, ctx, &mut status).await,
            ErasureStep::IssueReceipt => receipt_step::issue(tenant, ctx, &mut status).await,
            ErasureStep::ReleaseObjects => tenant::release_objects(tenant, ctx).await,
            ErasureStep::RemoveFinalizer => {
                // Recorded before it runs: once the finalizer is gone, so is the Tenant.
                if status.deletion[index].state != StepState::Done {
                    let at = now();
                    status.deletion[index]
                        .started_at
                        .get_or_insert_with(|| at.clone());
                    status.deletion[index].state = StepState::Done;
                    status.deletion[index].completed_at = Some(at);
                    status.deletion[index].message =
                        Some("the Tenant's finalizer is removed".to_owned());
                    progressing(&mut status, tenant, step);
                    write(tenant, ctx, &status).await?;
                }
                tenant::remove_finalizer(tenant, ctx).await?;
                info!(tenant = %name, "deletion finished");
                return Ok(Action::await_change());
            }
        };
        match outcome {
            Ok(message) => {
                crash::point(step, crash::Point::Finished);
                info!(tenant = %name, step = %step, "deletion step done");
                let was_blocked = blocked(&status);
                status.deletion[index].state = StepState::Done;
                status.deletion[index].completed_at = Some(now());
                status.deletion[index].message = Some(message);
                progressing(&mut status, tenant, step);
                write(tenant, ctx, &status).await?;
                if was_blocked {
                    tenant::publish(
                        tenant,
                        ctx,
                        EventType::Normal,
                        "ErasureResumed",
                        &format!("{step} completed"),
                    )
                    .await;
                }
            }
            Err(e) => {
                let message = format!("{step}: {e}");
                let reason = reason(step, &e);
                let changed = status.deletion[index].message.as_deref() != Some(message.as_str())
                    || !blocked(&status);
                if changed {
                    status.deletion[index].message = Some(message.clone());
                    set_condition(
                        &mut status.conditions,
                        Condition::new(
                            ERASING,
                            ConditionStatus::False,
                            reason,
                            message.clone(),
                            tenant.metadata.generation,
                        ),
                    );
                    write(tenant, ctx, &status).await?;
                    tenant::publish(tenant, ctx, EventType::Warning, reason, &message).await;
                }
                return Err(e);
            }
        }
    }
    Ok(Action::requeue(Duration::from_secs(1)))
}

/// Whether condition `Erasing` says a step is blocked.
fn blocked(status: &TenantStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == ERASING && c.status == ConditionStatus::False)
}

fn progressing(status: &mut TenantStatus, tenant: &Tenant, done: ErasureStep) {
    set_condition(
        &mut status.conditions,
        Condition::new(
            ERASING,
            ConditionStatus::True,
            "InProgress",
            format!("{done} completed"),
            tenant.metadata.generation,
        ),
    );
}

/// The reason of condition `Erasing` when `step` failed with `error`.
fn reason(step: ErasureStep, error: &Error) -> &'static str {
    match error.category() {
        "namespaces_terminating" => "NamespacesTerminating",
        "erasure_waiting" if step == ErasureStep::StopBackups => "BackupsRunning",
        "erasure_waiting" if step == ErasureStep::Verify => "VerificationFailed",
        "erasure_waiting" => "Waiting",
        category if category.starts_with("database") => "DatabaseUnavailable",
        category if category.starts_with("storage") => "StorageUnavailable",
        category if category.starts_with("key") => "KeyProviderFailed",
        "signing_key" => "SigningKeyUnavailable",
        _ => "ApiError",
    }
}

/// Writes the Tenant's status (server-side apply, as every status write of Landlord).
pub(super) async fn write(
    tenant: &Tenant,
    ctx: &Context,
    status: &TenantStatus,
) -> Result<(), Error> {
    status::write(&Api::<Tenant>::all(ctx.client.clone()), tenant, status)
        .await
        .map_err(|source| Error::Tenant {
            name: tenant.name_any(),
            source,
        })
}

/// Deletes every namespace of the tenant that is really the tenant's (those recorded when
/// the erasure began, and those the caches show it created), and waits until the API no
/// longer has them.
async fn delete_namespaces(
    tenant: &Tenant,
    ctx: &Context,
    status: &TenantStatus,
) -> Result<String, Error> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let mut names = tenant::tenant_namespaces(tenant, ctx);
    if let Some(progress) = &status.erasure {
        names.extend(progress.namespaces.iter().cloned());
    }
    names.sort();
    names.dedup();
    let uid = tenant.uid().unwrap_or_default();
    let mut remaining = Vec::new();
    let mut gone = Vec::new();
    for name in names {
        // Read from the API, not the cache: this step decides that data is gone.
        let Some(live) = api.get_opt(&name).await.map_err(|source| Error::Object {
            kind: "Namespace",
            name: name.clone(),
            source,
        })?
        else {
            gone.push(name);
            continue;
        };
        let recorded = ownership::recorded_uid(live.metadata.annotations.as_ref());
        if ownership::claim(&uid, None, recorded) != Claim::Ours {
            // Never this tenant's (a name it could not claim, one an earlier Tenant
            // retained, one that only carries its label): not ours to delete.
            continue;
        }
        if live.metadata.deletion_timestamp.is_none() {
            crate::controller::apply::delete(&api, &name).await?;
        }
        remaining.push(name);
    }
    if remaining.is_empty() {
        Ok(format!(
            "every namespace of the tenant is gone (404 from the API): {}",
            gone.join(", ")
        ))
    } else {
        Err(Error::NamespacesTerminating(remaining.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: ErasureStep, state: StepState) -> DeletionStep {
        DeletionStep {
            state,
            ..pending(name)
        }
    }

    #[test]
    fn an_erasure_runs_every_step_in_order_and_retain_only_releases() {
        assert_eq!(plan(DeletionPolicy::Erase), &ErasureStep::ERASE);
        assert_eq!(
            plan(DeletionPolicy::Retain),
            &[ErasureStep::ReleaseObjects, ErasureStep::RemoveFinalizer]
        );
        // The key is destroyed only after the data and the backups are gone, and checked
        // before the receipt.
        let order = |s: ErasureStep| ErasureStep::ERASE.iter().position(|x| *x == s);
        assert!(order(ErasureStep::DeleteBackups) < order(ErasureStep::DestroyKey));
        assert!(order(ErasureStep::DropDatabase) < order(ErasureStep::DestroyKey));
        assert!(order(ErasureStep::DestroyKey) < order(ErasureStep::Verify));
        assert!(order(ErasureStep::Verify) < order(ErasureStep::IssueReceipt));
        assert!(order(ErasureStep::IssueReceipt) < order(ErasureStep::RemoveFinalizer));
    }

    #[test]
    fn an_erasure_begun_by_an_earlier_plan_keeps_its_progress_and_gains_the_new_steps() {
        let recorded = vec![
            step(ErasureStep::DropDatabase, StepState::Done),
            step(ErasureStep::DeleteNamespaces, StepState::Running),
            step(ErasureStep::DestroyKey, StepState::Pending),
            step(ErasureStep::RemoveFinalizer, StepState::Pending),
        ];
        let merged = merge_plan(&recorded, &ErasureStep::ERASE);
        let states: Vec<(ErasureStep, StepState)> =
            merged.iter().map(|s| (s.name, s.state)).collect();
        assert_eq!(
            states,
            vec![
                (ErasureStep::StopBackups, StepState::Pending),
                (ErasureStep::DropDatabase, StepState::Done),
                (ErasureStep::DeleteNamespaces, StepState::Running),
                (ErasureStep::DeleteBackups, StepState::Pending),
                (ErasureStep::DestroyKey, StepState::Pending),
                (ErasureStep::Verify, StepState::Pending),
                (ErasureStep::IssueReceipt, StepState::Pending),
                (ErasureStep::RemoveFinalizer, StepState::Pending),
            ]
        );
        // The first step not done runs next: one the earlier plan skipped counts as not
        // done.
        assert_eq!(next_step(&merged), Some(0));
        assert_eq!(merge_plan(&merged, &ErasureStep::ERASE), merged);
    }

    #[test]
    fn a_failed_or_unknown_step_never_counts_as_done_and_remove_finalizer_always_runs() {
        let mut steps: Vec<DeletionStep> = ErasureStep::ERASE
            .iter()
            .map(|s| step(*s, StepState::Done))
            .collect();
        assert_eq!(
            next_step(&steps),
            Some(7),
            "RemoveFinalizer runs until it is gone"
        );
        steps[5].state = StepState::Failed;
        assert_eq!(next_step(&steps), Some(5));
        steps[5].state = StepState::Running;
        assert_eq!(next_step(&steps), Some(5));
    }
}
