//! Writing a status and telling people what changed, the same way for every kind Landlord
//! reconciles.
//!
//! A status is written only when it differs from the one read (so a steady-state resync
//! writes nothing), by server-side apply of the status subresource with the field manager
//! `landlord`; every condition whose status changed becomes an Event on the object:
//! `Warning` when it turned `False`, `Normal` otherwise. A condition's first appearance is
//! news only when it is `False`, or when it is the kind's summary condition (`Ready`,
//! `Reachable`, `Available`).

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::warn;

use super::Context;
use super::apply::FIELD_MANAGER;
use crate::api::{
    BackupStorageStatus, Condition, ConditionStatus, DatabaseServerStatus, TenantStatus,
    find_condition,
};

/// A status with conditions.
pub trait Conditions: Serialize + PartialEq + Default + Clone {
    /// Its conditions.
    fn conditions(&self) -> &[Condition];
}

impl Conditions for TenantStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl Conditions for BackupStorageStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

impl Conditions for DatabaseServerStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// The Events that moving from `old` to `new` is worth, as (type, reason, note).
pub fn news(
    old: &[Condition],
    new: &[Condition],
    summary: &str,
) -> Vec<(EventType, String, String)> {
    new.iter()
        .filter_map(|c| {
            let before = find_condition(old, &c.type_).map(|o| o.status);
            if before == Some(c.status) {
                return None;
            }
            if before.is_none() && c.status != ConditionStatus::False && c.type_ != summary {
                return None;
            }
            let type_ = if c.status == ConditionStatus::False {
                EventType::Warning
            } else {
                EventType::Normal
            };
            Some((
                type_,
                c.reason.clone(),
                format!("{}: {}", c.type_, c.message),
            ))
        })
        .collect()
}

/// One part of an object's readiness: the condition a step of its reconcile sets, and
/// whether the summary condition (`Ready`) waits for it. A part that is not required is
/// still reported (its condition is set) but never holds readiness back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// The condition type the step sets.
    pub condition: &'static str,
    /// Whether the summary waits for it to be True.
    pub required: bool,
}

impl Part {
    /// A part the summary waits for.
    pub const fn required(condition: &'static str) -> Part {
        Part {
            condition,
            required: true,
        }
    }

    /// A part that is reported only.
    pub const fn reported(condition: &'static str) -> Part {
        Part {
            condition,
            required: false,
        }
    }
}

/// The required parts whose condition is not True in `conditions` (missing counts as not
/// True), in the order of `parts`: what the summary waits for.
pub fn waiting_for(parts: &[Part], conditions: &[Condition]) -> Vec<&'static str> {
    parts
        .iter()
        .filter(|p| p.required)
        .filter(|p| !find_condition(conditions, p.condition).is_some_and(Condition::is_true))
        .map(|p| p.condition)
        .collect()
}

/// Publishes one Event about `object`; a failure to publish is logged, never fatal.
pub async fn event<K>(ctx: &Context, object: &K, type_: EventType, reason: &str, note: &str)
where
    K: Resource<DynamicType = ()>,
{
    let event = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        warn!(kind = %K::kind(&()), name = %object.name_any(), error = %e, "could not publish an event");
    }
}

/// Writes `status` on `object` if it differs from `old`, then publishes the Events of its
/// condition changes. The write is guarded by the `resourceVersion` that `object` was read
/// at. A reconcile working from a stale copy (a cache that has not
/// seen this operator's previous status write yet) gets a 409, and the retry sees fresh
/// data, instead of overwriting what the previous write recorded and no pass can derive
/// again (a takeover of retained data, `status.adoptedFrom`).
pub async fn finish<K, S>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    old: &S,
    status: &S,
    summary: &str,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Conditions,
{
    if old == status {
        return Ok(());
    }
    write_over(api, object, status).await?;
    for (type_, reason, note) in news(old.conditions(), status.conditions(), summary) {
        event(ctx, object, type_, &reason, &note).await;
    }
    Ok(())
}

/// Writes `status` on `object`, guarded by the `resourceVersion` it was read at (a 409
/// when it changed since), and returns the object as written.
pub async fn write_over<K, S>(api: &Api<K>, object: &K, status: &S) -> Result<K, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"resourceVersion": object.resource_version()},
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
}

/// Writes `status` on `object`, unconditionally.
pub async fn write<K, S>(api: &Api<K>, object: &K, status: &S) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &object.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(type_: &str, status: ConditionStatus, reason: &str) -> Condition {
        Condition::new(type_, status, reason, "m", Some(1))
    }

    #[test]
    fn only_changes_are_news_and_failures_warn() {
        let old = vec![
            c("Ready", ConditionStatus::True, "Ready"),
            c("DatabaseReady", ConditionStatus::True, "Provisioned"),
        ];
        let new = vec![
            c("Ready", ConditionStatus::False, "NotReady"),
            c("DatabaseReady", ConditionStatus::True, "Provisioned"),
            c("KeyReady", ConditionStatus::True, "Created"),
            c(
                "MembershipVerified",
                ConditionStatus::False,
                "ForgedTenantLabel",
            ),
        ];
        let events = news(&old, &new, "Ready");
        let reasons: Vec<(bool, &str)> = events
            .iter()
            .map(|(t, r, _)| (matches!(t, EventType::Warning), r.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [(true, "NotReady"), (true, "ForgedTenantLabel")],
            "a new True condition is not news; a new False one is"
        );
    }

    #[test]
    fn the_summary_waits_for_required_parts_that_are_not_true() {
        let parts = [
            Part::required("NamespacesReady"),
            Part::required("DatabaseReady"),
            Part::reported("MembershipVerified"),
            Part::required("KeyReady"),
            Part::required("Isolated"),
        ];
        let conditions = vec![
            c("NamespacesReady", ConditionStatus::True, "Provisioned"),
            c("DatabaseReady", ConditionStatus::False, "Unreachable"),
            c(
                "MembershipVerified",
                ConditionStatus::False,
                "ForgedTenantLabel",
            ),
            c("Isolated", ConditionStatus::Unknown, "Analyzing"),
        ];
        assert_eq!(
            waiting_for(&parts, &conditions),
            ["DatabaseReady", "KeyReady", "Isolated"],
            "False, missing and Unknown hold it back, in the parts' order; a reported part never does"
        );
        let all_true: Vec<Condition> = parts
            .iter()
            .map(|p| c(p.condition, ConditionStatus::True, "Ok"))
            .collect();
        assert!(waiting_for(&parts, &all_true).is_empty());
    }

    #[test]
    fn the_first_summary_is_news() {
        let events = news(&[], &[c("Ready", ConditionStatus::True, "Ready")], "Ready");
        assert_eq!(events.len(), 1);
        assert!(matches!(events[0].0, EventType::Normal));
        assert_eq!(events[0].2, "Ready: m");
    }
}
