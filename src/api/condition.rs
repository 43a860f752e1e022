//! Standard status conditions (`metav1.Condition` shape) and the rules for updating them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The status of a condition: `True`, `False` or `Unknown`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

/// One aspect of a resource's current state, as in every Kubernetes API.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of condition in CamelCase, e.g. `Ready`, `NamespacesReady`, `DatabaseReady`.
    #[serde(rename = "type")]
    #[schemars(length(min = 1, max = 316))]
    pub type_: String,
    /// Status of the condition: True, False or Unknown.
    pub status: ConditionStatus,
    /// The `metadata.generation` this condition was computed from; when it is lower than
    /// the resource's generation, the condition is out of date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub observed_generation: Option<i64>,
    /// When the condition last changed from one status to another.
    #[schemars(schema_with = "super::schema::timestamp")]
    pub last_transition_time: Time,
    /// Machine-readable CamelCase reason for the last transition, e.g. `SecretMissing`.
    #[schemars(length(min = 1, max = 1024))]
    pub reason: String,
    /// Human-readable explanation: what happened and what to do about it.
    #[schemars(length(max = 32768))]
    pub message: String,
}

impl Condition {
    /// A condition of the given type and status, stamped now.
    pub fn new(
        type_: &str,
        status: ConditionStatus,
        reason: &str,
        message: impl Into<String>,
        observed_generation: Option<i64>,
    ) -> Self {
        Condition {
            type_: type_.to_owned(),
            status,
            observed_generation,
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// Whether the condition holds.
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Sets `new` in `conditions`, replacing the condition of the same type.
///
/// As the API conventions require, `lastTransitionTime` changes only when the status
/// does: a condition whose reason or message changes keeps its transition time. Returns
/// whether the status changed (a transition worth an Event).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            let transitioned = existing.status != new.status;
            if !transitioned {
                new.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = new;
            transitioned
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// The condition of the given type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    fn condition(status: ConditionStatus, reason: &str, time: i64) -> Condition {
        Condition {
            last_transition_time: at(time),
            ..Condition::new("Ready", status, reason, "", Some(1))
        }
    }

    #[test]
    fn same_status_keeps_transition_time_but_updates_reason() {
        let mut conditions = vec![condition(ConditionStatus::False, "Provisioning", 100)];
        let changed = set_condition(
            &mut conditions,
            condition(ConditionStatus::False, "DatabaseUnreachable", 200),
        );
        assert!(!changed);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "DatabaseUnreachable");
        assert_eq!(conditions[0].last_transition_time, at(100));
    }

    #[test]
    fn status_change_is_a_transition_with_new_time() {
        let mut conditions = vec![condition(ConditionStatus::False, "Provisioning", 100)];
        let changed = set_condition(
            &mut conditions,
            condition(ConditionStatus::True, "Ready", 200),
        );
        assert!(changed);
        assert_eq!(conditions[0].last_transition_time, at(200));
        assert!(find_condition(&conditions, "Ready").is_some_and(Condition::is_true));
    }

    #[test]
    fn new_type_is_appended() {
        let mut conditions = vec![condition(ConditionStatus::True, "Ready", 100)];
        let mut other = condition(ConditionStatus::True, "Isolated", 100);
        other.type_ = "Isolated".into();
        assert!(set_condition(&mut conditions, other));
        assert_eq!(conditions.len(), 2);
    }
}
