//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
//! package does it: one holder at a time, renewed well within the lease duration, taken
//! over only when the holder has stopped renewing, and released on a clean stop so a
//! standby replica takes over at once.
//!
//! Only `get`, `create` and `update` are used — exactly what the chart's Role grants —
//! and every write carries the resourceVersion it read, so two candidates can never both
//! believe they hold the lease.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Timings of the election.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity, usually the pod name.
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews and a candidate retries.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// client-go's defaults: a 15 s lease, retried every 2 s.
    pub fn new(namespace: String, name: String, identity: String) -> Self {
        LeaseSettings {
            namespace,
            name,
            identity,
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What one attempt found.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    Holding,
    HeldByOther(String),
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn expired(spec: &LeaseSpec, at: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
    renewed.0 + SignedDuration::from_secs(duration) < at
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    settings: &LeaseSettings,
) -> Result<Attempt, kube::Error> {
    let duration_seconds = i32::try_from(settings.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let existing = api.get_opt(&settings.name).await?;
    let Some(mut lease) = existing else {
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
                holder_identity: Some(settings.identity.clone()),
                lease_duration_seconds: Some(duration_seconds),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        api.create(&PostParams::default(), &lease).await?;
        return Ok(Attempt::Holding);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    match holder {
        Some(holder) if holder == settings.identity => {
            spec.renew_time = Some(now());
            spec.lease_duration_seconds = Some(duration_seconds);
        }
        Some(holder) if !expired(spec, Timestamp::now()) => {
            return Ok(Attempt::HeldByOther(holder));
        }
        _ => {
            spec.holder_identity = Some(settings.identity.clone());
            spec.lease_duration_seconds = Some(duration_seconds);
            spec.acquire_time = Some(now());
            spec.renew_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
    }
    // `replace` sends the resourceVersion we read: a concurrent writer makes this a 409.
    api.replace(&settings.name, &PostParams::default(), &lease)
        .await?;
    Ok(Attempt::Holding)
}

async fn release(api: &Api<Lease>, settings: &LeaseSettings) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&settings.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(settings.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    api.replace(&settings.name, &PostParams::default(), &lease)
        .await?;
    Ok(())
}

/// Campaigns for the lease until `stop` turns true, publishing whether this replica leads
/// on `leading`. Leadership is given up (published as `false`) as soon as a renewal has
/// not succeeded for a whole lease duration, so two replicas never lead at once.
pub async fn campaign(
    client: kube::Client,
    settings: LeaseSettings,
    leading: watch::Sender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_renewal: Option<tokio::time::Instant> = None;
    loop {
        match try_acquire_or_renew(&api, &settings).await {
            Ok(Attempt::Holding) => {
                last_renewal = Some(tokio::time::Instant::now());
                if !*leading.borrow() {
                    info!(lease = %settings.name, identity = %settings.identity, "became the leader");
                    leading.send_replace(true);
                }
            }
            Ok(Attempt::HeldByOther(holder)) => {
                if *leading.borrow() {
                    warn!(lease = %settings.name, %holder, "lost the lease to another replica");
                    leading.send_replace(false);
                }
                last_renewal = None;
                debug!(lease = %settings.name, %holder, "standing by");
            }
            Err(e) => {
                warn!(lease = %settings.name, error = %e, "lease renewal failed");
                let overdue = last_renewal.is_none_or(|at| at.elapsed() >= settings.lease_duration);
                if *leading.borrow() && overdue {
                    warn!(lease = %settings.name, "lease expired without renewal: stepping down");
                    leading.send_replace(false);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.retry_period) => {}
            _ = stop.wait_for(|stopping| *stopping) => break,
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        match release(&api, &settings).await {
            Ok(()) => info!(lease = %settings.name, "released the lease"),
            Err(e) => {
                warn!(lease = %settings.name, error = %e, "could not release the lease; it expires on its own")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(renewed_at: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(duration),
            renew_time: Some(MicroTime(
                Timestamp::from_second(renewed_at).expect("valid"),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_lease_is_valid_until_its_duration_has_passed_since_renewal() {
        let at = |s| Timestamp::from_second(s).expect("valid");
        assert!(!expired(&spec(100, 15), at(110)));
        assert!(!expired(&spec(100, 15), at(115)));
        assert!(expired(&spec(100, 15), at(116)));
    }

    #[test]
    fn a_lease_never_renewed_is_expired() {
        assert!(expired(&LeaseSpec::default(), Timestamp::now()));
    }
}
