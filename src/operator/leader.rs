//! Leader election over a `coordination.k8s.io/v1` Lease, with the guarantees of
//! client-go's leaderelection package:
//!
//! - **No clock comparison between replicas.** A candidate judges that the holder has
//!   stopped renewing by its own monotonic clock: the lease expires `leaseDurationSeconds`
//!   after the moment this candidate last *saw the record change* (holder, times,
//!   transitions). The times written into the Lease come from an injectable wall
//!   [`Clock`] and are informational only, so a replica whose clock runs hours ahead or
//!   behind can neither steal a live lease nor keep a dead one.
//! - **A renew deadline shorter than the lease duration.** The leader renews every retry
//!   period, each attempt bounded by its own timeout; leadership ends
//!   [`Election::renew_deadline`] after the *start* of the last successful renewal unless
//!   another succeeds first. The lease outlives that, for every other replica, by at least
//!   `lease_duration - renew_deadline`: the old leader has stopped before anyone else may
//!   start.
//! - **Optimistic concurrency.** Every write carries the resourceVersion it read, so of
//!   two candidates writing the same record one gets a 409.
//! - **Release on a clean stop**, so a standby takes over at once.
//!
//! Only `get`, `create` and `update` are used — exactly what the chart's Role grants.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// The wall clock whose readings are written into the Lease (`acquireTime`,
/// `renewTime`). No decision depends on it: expiry is measured on the monotonic clock.
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A wall clock off by a fixed offset, as on a node whose clock is wrong.
#[derive(Clone, Copy, Debug)]
pub struct SkewedClock {
    /// How far ahead (positive) or behind (negative) of the system clock it runs.
    pub offset: SignedDuration,
}

impl Clock for SkewedClock {
    fn now(&self) -> Timestamp {
        let now = Timestamp::now();
        now.checked_add(self.offset).unwrap_or(now)
    }
}

/// The timings of the election, and the wall clock written into the Lease.
#[derive(Clone, Debug)]
pub struct Election {
    /// How long other candidates wait, after they last saw the record change, before they
    /// take the lease over (whole seconds: it is written as `leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and a candidate retries.
    pub retry_period: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for Election {
    /// client-go's defaults: a 15 s lease, a 10 s renew deadline, a 2 s retry period.
    fn default() -> Self {
        Election {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Timings that cannot give an exclusive election.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElectionError {
    #[error("the lease duration ({0:?}) must be a whole number of seconds, at least 1")]
    LeaseDuration(Duration),
    #[error(
        "the renew deadline ({renew_deadline:?}) must be shorter than the lease duration ({lease_duration:?})"
    )]
    RenewDeadline {
        renew_deadline: Duration,
        lease_duration: Duration,
    },
    #[error(
        "the renew deadline ({renew_deadline:?}) must exceed 1.2 retry periods ({retry_period:?}), to leave room for a retry"
    )]
    RetryPeriod {
        retry_period: Duration,
        renew_deadline: Duration,
    },
}

impl Election {
    /// Checks what client-go checks: lease duration > renew deadline > 1.2 × retry period.
    pub fn validate(&self) -> Result<(), ElectionError> {
        if self.lease_duration < Duration::from_secs(1) || self.lease_duration.subsec_nanos() != 0 {
            return Err(ElectionError::LeaseDuration(self.lease_duration));
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(ElectionError::RenewDeadline {
                renew_deadline: self.renew_deadline,
                lease_duration: self.lease_duration,
            });
        }
        if self.renew_deadline <= self.retry_period.mul_f64(1.2) {
            return Err(ElectionError::RetryPeriod {
                retry_period: self.retry_period,
                renew_deadline: self.renew_deadline,
            });
        }
        Ok(())
    }

    /// How long one attempt (a read and a write) may take: half the renew deadline, at
    /// least a second, as client-go's lock clients are configured.
    pub fn attempt_timeout(&self) -> Duration {
        (self.renew_deadline / 2)
            .max(Duration::from_secs(1))
            .min(self.renew_deadline)
    }

    fn lease_duration_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Which Lease, who campaigns, and how.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity, usually the pod name.
    pub identity: String,
    pub election: Election,
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Holding,
    HeldByOther(String),
}

/// The fields of a Lease whose change shows that its holder is alive.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    holder: Option<String>,
    duration_seconds: Option<i32>,
    acquire_time: Option<MicroTime>,
    renew_time: Option<MicroTime>,
    transitions: Option<i32>,
}

impl Record {
    fn of(spec: &LeaseSpec) -> Record {
        Record {
            holder: spec.holder_identity.clone().filter(|h| !h.is_empty()),
            duration_seconds: spec.lease_duration_seconds,
            acquire_time: spec.acquire_time.clone(),
            renew_time: spec.renew_time.clone(),
            transitions: spec.lease_transitions,
        }
    }

    /// How long the record is valid after it was seen: its own `leaseDurationSeconds`.
    fn valid_for(&self) -> Duration {
        let seconds = self.duration_seconds.unwrap_or(0);
        Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
    }
}

/// The record last seen, and when (on the monotonic clock) it was first seen so.
#[derive(Debug)]
struct Observed {
    record: Record,
    at: Instant,
}

/// The candidate's memory of the Lease between attempts.
#[derive(Debug, Default)]
struct Observation {
    last: Option<Observed>,
}

impl Observation {
    /// Notes the record seen at `at`; the observation time moves only when it changed.
    fn see(&mut self, record: Record, at: Instant) {
        if self.last.as_ref().is_none_or(|o| o.record != record) {
            self.last = Some(Observed { record, at });
        }
    }

    /// Whether the record last seen is still valid at `now`: held by someone, seen to
    /// change less than its lease duration ago.
    fn held_by_other(&self, identity: &str, now: Instant) -> Option<String> {
        let last = self.last.as_ref()?;
        let holder = last.record.holder.as_deref()?;
        (holder != identity && now < last.at + last.record.valid_for()).then(|| holder.to_owned())
    }
}

/// The spec to write to take or keep the lease.
fn claimed(spec: &LeaseSpec, settings: &LeaseSettings, now: Timestamp) -> LeaseSpec {
    let ours = spec.holder_identity.as_deref() == Some(settings.identity.as_str());
    let now = MicroTime(now);
    LeaseSpec {
        holder_identity: Some(settings.identity.clone()),
        lease_duration_seconds: Some(settings.election.lease_duration_seconds()),
        acquire_time: if ours {
            spec.acquire_time.clone()
        } else {
            Some(now.clone())
        },
        renew_time: Some(now),
        lease_transitions: Some(if ours {
            spec.lease_transitions.unwrap_or(0)
        } else {
            spec.lease_transitions.unwrap_or(0).saturating_add(1)
        }),
        ..spec.clone()
    }
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    settings: &LeaseSettings,
    observation: &mut Observation,
) -> Result<Attempt, kube::Error> {
    let clock = &settings.election.clock;
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(settings.name.clone()),
                namespace: Some(settings.namespace.clone()),
                labels: Some(
                    [(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "landlord".to_owned(),
                    )]
                    .into(),
                ),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                lease_transitions: Some(0),
                ..claimed(&LeaseSpec::default(), settings, clock.now())
            }),
        };
        // Two candidates creating at once: one gets a 409.
        let created = api.create(&PostParams::default(), &lease).await?;
        let spec = created.spec.unwrap_or_default();
        observation.see(Record::of(&spec), Instant::now());
        return Ok(Attempt::Holding);
    };
    let spec = lease.spec.take().unwrap_or_default();
    observation.see(Record::of(&spec), Instant::now());
    if let Some(holder) = observation.held_by_other(&settings.identity, Instant::now()) {
        return Ok(Attempt::HeldByOther(holder));
    }
    lease.spec = Some(claimed(&spec, settings, clock.now()));
    // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
    let written = api
        .replace(&settings.name, &PostParams::default(), &lease)
        .await?;
    observation.see(
        Record::of(&written.spec.unwrap_or_default()),
        Instant::now(),
    );
    Ok(Attempt::Holding)
}

async fn release(api: &Api<Lease>, settings: &LeaseSettings) -> Result<bool, kube::Error> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        return Ok(false);
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(false);
    };
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return Ok(false);
    }
    let now = MicroTime(settings.election.clock.now());
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.acquire_time = Some(now.clone());
    spec.renew_time = Some(now);
    api.replace(&settings.name, &PostParams::default(), &lease)
        .await?;
    Ok(true)
}

/// Campaigns for the lease until `stop` turns true, publishing whether this replica leads
/// on `leading`. Leadership is given up (published as `false`) the moment the renew
/// deadline passes without a successful renewal, or another holder is seen; then, when
/// `stop` turns true, the lease is released if this replica still holds it.
pub async fn campaign(
    client: kube::Client,
    settings: LeaseSettings,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let election = settings.election.clone();
    let mut observation = Observation::default();
    // While leading: when leadership ends unless a renewal succeeds first.
    let mut leading_until: Option<Instant> = None;
    let step_down = |leading_until: &mut Option<Instant>, why: &str| {
        if leading_until.take().is_some() {
            warn!(lease = %settings.name, identity = %settings.identity, "{why}: no longer the leader");
            leading.send_replace(false);
        }
    };
    'campaign: loop {
        let started = Instant::now();
        let budget = match leading_until {
            Some(until) => election
                .attempt_timeout()
                .min(until.saturating_duration_since(started)),
            None => election.attempt_timeout(),
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(
                budget,
                try_acquire_or_renew(&api, &settings, &mut observation),
            ) => outcome,
            _ = stop.wait_for(|stopping| *stopping) => break 'campaign,
        };
        match outcome {
            Ok(Ok(Attempt::Holding)) => {
                leading_until = Some(started + election.renew_deadline);
                if !*leading.borrow() {
                    info!(lease = %settings.name, identity = %settings.identity, "became the leader");
                    leading.send_replace(true);
                }
            }
            Ok(Ok(Attempt::HeldByOther(holder))) => {
                step_down(&mut leading_until, "the lease is held by another replica");
                debug!(lease = %settings.name, %holder, "standing by");
            }
            Ok(Err(e)) => warn!(lease = %settings.name, error = %e, "lease attempt failed"),
            Err(_) => warn!(lease = %settings.name, timeout = ?budget, "lease attempt timed out"),
        }
        if leading_until.is_some_and(|until| Instant::now() >= until) {
            step_down(
                &mut leading_until,
                "the lease was not renewed within the renew deadline",
            );
        }
        // Wait for the next attempt, stepping down the moment the deadline passes.
        let next = Instant::now() + election.retry_period;
        loop {
            let deadline = leading_until.filter(|until| *until < next);
            tokio::select! {
                () = tokio::time::sleep_until(deadline.unwrap_or(next)) => {
                    if deadline.is_none() {
                        break;
                    }
                    step_down(&mut leading_until, "the lease was not renewed within the renew deadline");
                }
                _ = stop.wait_for(|stopping| *stopping) => break 'campaign,
            }
        }
    }
    leading.send_replace(false);
    // Whoever drives `stop` has stopped the controllers first: releasing is safe.
    match tokio::time::timeout(election.attempt_timeout(), release(&api, &settings)).await {
        Ok(Ok(true)) => info!(lease = %settings.name, "released the lease"),
        Ok(Ok(false)) => debug!(lease = %settings.name, "not the holder: nothing to release"),
        Ok(Err(e)) => {
            warn!(lease = %settings.name, error = %e, "could not release the lease; it expires on its own")
        }
        Err(_) => {
            warn!(lease = %settings.name, "releasing the lease timed out; it expires on its own")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: &str, renewed_at: i64, duration: i32) -> Record {
        Record::of(&LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                Timestamp::from_second(renewed_at).expect("valid"),
            )),
            ..LeaseSpec::default()
        })
    }

    #[test]
    fn expiry_counts_from_when_the_record_was_seen_to_change_not_from_its_renew_time() {
        let start = Instant::now();
        let mut seen = Observation::default();
        // A renewTime far in the past (the holder's clock is behind): still valid.
        seen.see(record("other", 0, 15), start);
        assert_eq!(
            seen.held_by_other("me", start + Duration::from_secs(14)),
            Some("other".to_owned())
        );
        assert_eq!(
            seen.held_by_other("me", start + Duration::from_secs(15)),
            None
        );
        // The same record seen again later does not extend it...
        seen.see(record("other", 0, 15), start + Duration::from_secs(10));
        assert_eq!(
            seen.held_by_other("me", start + Duration::from_secs(15)),
            None
        );
        // ...a renewal does, whatever time it carries (here, far in the future).
        let renewed = start + Duration::from_secs(16);
        seen.see(record("other", 4_000_000_000, 15), renewed);
        assert_eq!(
            seen.held_by_other("me", renewed + Duration::from_secs(14)),
            Some("other".to_owned())
        );
        assert_eq!(
            seen.held_by_other("me", renewed + Duration::from_secs(15)),
            None
        );
    }

    #[test]
    fn a_released_or_own_lease_is_not_held_by_another() {
        let now = Instant::now();
        let mut seen = Observation::default();
        seen.see(Record::of(&LeaseSpec::default()), now);
        assert_eq!(seen.held_by_other("me", now), None);
        seen.see(record("me", 0, 15), now);
        assert_eq!(seen.held_by_other("me", now), None);
    }

    fn settings() -> LeaseSettings {
        LeaseSettings {
            namespace: "ns".into(),
            name: "lease".into(),
            identity: "me".into(),
            election: Election::default(),
        }
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_acquire_time() {
        let at = |s| Timestamp::from_second(s).expect("valid");
        let mut theirs = LeaseSpec {
            lease_transitions: Some(3),
            acquire_time: Some(MicroTime(at(1))),
            ..LeaseSpec::default()
        };
        theirs.holder_identity = Some("other".into());
        let taken = claimed(&theirs, &settings(), at(100));
        assert_eq!(taken.holder_identity.as_deref(), Some("me"));
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(taken.lease_duration_seconds, Some(15));
        let renewed = claimed(&taken, &settings(), at(102));
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, Some(MicroTime(at(100))));
        assert_eq!(renewed.renew_time, Some(MicroTime(at(102))));
    }

    #[test]
    fn timings_that_cannot_be_exclusive_are_refused() {
        assert_eq!(Election::default().validate(), Ok(()));
        let with = |lease, renew, retry| Election {
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
            ..Election::default()
        };
        assert!(matches!(
            with(10, 10, 2).validate(),
            Err(ElectionError::RenewDeadline { .. })
        ));
        assert!(matches!(
            with(15, 10, 9).validate(),
            Err(ElectionError::RetryPeriod { .. })
        ));
        assert!(matches!(
            with(0, 0, 0).validate(),
            Err(ElectionError::LeaseDuration(_))
        ));
        assert_eq!(with(15, 10, 2).attempt_timeout(), Duration::from_secs(5));
    }

    #[test]
    fn a_skewed_clock_runs_off_by_its_offset() {
        let ahead = SkewedClock {
            offset: SignedDuration::from_hours(1),
        };
        let skew = ahead.now().duration_since(Timestamp::now());
        assert!(skew > SignedDuration::from_mins(59), "{skew:?}");
    }
}
