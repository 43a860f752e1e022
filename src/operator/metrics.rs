//! The Prometheus metrics served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    result: String,
}

/// The operator's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ready: Gauge,
    leader: Gauge,
    api_checks: Family<CheckLabels, Counter>,
    reconciles: Family<ReconcileLabels, Counter>,
}

impl Metrics {
    /// Registers every metric under the `landlord` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("landlord");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "Landlord version running", build_info);
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when every Landlord CRD is served and readable, else 0",
            ready.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader-election Lease, else 0",
            leader.clone(),
        );
        let api_checks = Family::<CheckLabels, Counter>::default();
        registry.register(
            "api_checks",
            "API readiness checks by result (ok, crd_missing, forbidden, api_unreachable)",
            api_checks.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by controller and result (ok, or the error category)",
            reconciles.clone(),
        );
        Metrics {
            registry,
            reconciles,
            ready,
            leader,
            api_checks,
        }
    }

    /// Records one readiness check: `None` for success, else the failure category.
    pub fn record_api_check(&self, failure: Option<&str>) {
        self.ready.set(i64::from(failure.is_none()));
        self.api_checks
            .get_or_create(&CheckLabels {
                result: failure.unwrap_or("ok").to_owned(),
            })
            .inc();
    }

    /// Records one reconcile: `None` for success, else the error category.
    pub fn record_reconcile(&self, controller: &str, failure: Option<&str>) {
        self.reconciles
            .get_or_create(&ReconcileLabels {
                controller: controller.to_owned(),
                result: failure.unwrap_or("ok").to_owned(),
            })
            .inc();
    }

    /// Records whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
