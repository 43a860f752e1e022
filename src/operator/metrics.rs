//! The Prometheus metrics served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

/// The operator's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ready: Gauge,
    leader: Gauge,
    api_checks: Family<CheckLabels, Counter>,
    reconciles: Family<ReconcileLabels, Counter>,
    backups: Family<BackupLabels, Counter>,
    backup_bytes: Counter,
    backup_duration: Histogram,
    backups_running: Gauge,
    last_backup: Family<TenantLabels, Gauge>,
    drills: Family<BackupLabels, Counter>,
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
        let backups = Family::<BackupLabels, Counter>::default();
        registry.register(
            "backups",
            "Finished backup attempts by result (completed, or the failure category)",
            backups.clone(),
        );
        let backup_bytes = Counter::default();
        registry.register(
            "backup_bytes",
            "Bytes of encrypted backup objects written",
            backup_bytes.clone(),
        );
        let backup_duration =
            Histogram::new([1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4.0 * 3600.0]);
        registry.register(
            "backup_duration_seconds",
            "Duration of completed backups, from the start of the dump to the manifest",
            backup_duration.clone(),
        );
        let backups_running = Gauge::default();
        registry.register(
            "backups_running",
            "Backups running now (at most the backup concurrency)",
            backups_running.clone(),
        );
        let last_backup = Family::<TenantLabels, Gauge>::default();
        registry.register(
            "tenant_last_backup_timestamp_seconds",
            "Unix time of each tenant's newest completed backup, for alerts such as time() - x > 26h",
            last_backup.clone(),
        );
        let drills = Family::<BackupLabels, Counter>::default();
        registry.register(
            "restore_drills",
            "Restore drills by result (passed, failed)",
            drills.clone(),
        );
        Metrics {
            registry,
            drills,
            reconciles,
            backups,
            backup_bytes,
            backup_duration,
            backups_running,
            last_backup,
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

    /// Records one finished backup attempt: `None` for a completed backup of `bytes` that
    /// took `seconds`, else the failure category.
    pub fn record_backup(&self, failure: Option<&str>, bytes: u64, seconds: f64) {
        self.backups
            .get_or_create(&BackupLabels {
                result: failure.unwrap_or("completed").to_owned(),
            })
            .inc();
        if failure.is_none() {
            self.backup_bytes.inc_by(bytes);
            self.backup_duration.observe(seconds);
        }
    }

    /// Records one restore drill.
    pub fn record_drill(&self, passed: bool) {
        self.drills
            .get_or_create(&BackupLabels {
                result: if passed { "passed" } else { "failed" }.to_owned(),
            })
            .inc();
    }

    /// Counts a backup in or out of the running ones.
    pub fn backup_running(&self, started: bool) {
        if started {
            self.backups_running.inc();
        } else {
            self.backups_running.dec();
        }
    }

    /// Records the completion time (Unix seconds) of `tenant`'s newest completed backup.
    pub fn set_last_backup(&self, tenant: &str, unix_seconds: i64) {
        self.last_backup
            .get_or_create(&TenantLabels {
                tenant: tenant.to_owned(),
            })
            .set(unix_seconds);
    }

    /// Forgets a tenant that is gone.
    pub fn forget_tenant(&self, tenant: &str) {
        self.last_backup.remove(&TenantLabels {
            tenant: tenant.to_owned(),
        });
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
