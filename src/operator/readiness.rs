//! What `/readyz` reports: whether the API server is reachable, every Landlord CRD is
//! served, and the operator may read every Landlord kind.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Client, CustomResourceExt, Resource};
use tokio::sync::watch;
use tracing::{info, warn};

use super::Metrics;
use crate::api::{
    BackupStorage, DatabaseServer, ErasureReceipt, Tenant, TenantBackup, TenantRestore,
};

/// Why the operator is not ready. Messages say what to fix; they never carry secrets.
#[derive(Debug, thiserror::Error)]
pub enum ApiCheckError {
    #[error(
        "the CustomResourceDefinition {crd} is not installed: install the Helm chart, or `landlord crds | kubectl apply --server-side -f -`"
    )]
    CrdMissing { crd: String },
    #[error(
        "the operator may not list {crd}: its ClusterRole must grant list on {plural} in API group landlord.dev"
    )]
    Forbidden { crd: String, plural: String },
    #[error("listing {crd} failed")]
    Api {
        crd: String,
        #[source]
        source: kube::Error,
    },
}

impl ApiCheckError {
    /// Stable short category, used as a metric label.
    pub fn category(&self) -> &'static str {
        match self {
            ApiCheckError::CrdMissing { .. } => "crd_missing",
            ApiCheckError::Forbidden { .. } => "forbidden",
            ApiCheckError::Api { .. } => "api_unreachable",
        }
    }
}

fn resources() -> [(ApiResource, String); 6] {
    fn entry<K: Resource<DynamicType = ()> + CustomResourceExt>() -> (ApiResource, String) {
        (ApiResource::erase::<K>(&()), K::crd_name().to_owned())
    }
    [
        entry::<Tenant>(),
        entry::<DatabaseServer>(),
        entry::<BackupStorage>(),
        entry::<TenantBackup>(),
        entry::<TenantRestore>(),
        entry::<ErasureReceipt>(),
    ]
}

/// Lists one object of every Landlord kind: succeeds when all CRDs are served and readable.
pub async fn check_api(client: &Client) -> Result<(), ApiCheckError> {
    for (resource, crd) in resources() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        match api.list(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(ApiCheckError::CrdMissing { crd });
            }
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Err(ApiCheckError::Forbidden {
                    crd,
                    plural: resource.plural.clone(),
                });
            }
            Err(source) => return Err(ApiCheckError::Api { crd, source }),
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct State {
    ready: bool,
    stopping: bool,
    reason: Option<String>,
}

/// Shared readiness state.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<Mutex<State>>);

impl Readiness {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// `Ok` when ready to serve, otherwise why not.
    pub fn status(&self) -> Result<(), String> {
        self.with(|s| {
            if s.stopping {
                Err("stopping".to_owned())
            } else if s.ready {
                Ok(())
            } else {
                Err(s.reason.clone().unwrap_or_else(|| "starting".to_owned()))
            }
        })
    }

    fn set(&self, result: &Result<(), ApiCheckError>) {
        self.with(|s| match result {
            Ok(()) => {
                s.ready = true;
                s.reason = None;
            }
            Err(e) => {
                s.ready = false;
                s.reason = Some(e.to_string());
            }
        });
    }

    #[cfg(test)]
    pub(crate) fn set_for_test(&self, ready: bool) {
        self.with(|s| s.ready = ready);
    }

    /// Marks the process as stopping: `/readyz` fails from now on.
    pub fn set_stopping(&self) {
        self.with(|s| s.stopping = true);
    }
}

/// Runs [`check_api`] now and then every `interval` until `stop` turns true, keeping
/// `readiness` and the metrics current and logging each change.
pub async fn keep_checking(
    client: Client,
    readiness: Readiness,
    metrics: Arc<Metrics>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut was_ready = None;
    loop {
        let result = check_api(&client).await;
        metrics.record_api_check(result.as_ref().err().map(ApiCheckError::category));
        readiness.set(&result);
        let ready = result.is_ok();
        if was_ready != Some(ready) {
            match &result {
                Ok(()) => info!("every Landlord CRD is served and readable: ready"),
                Err(e) => warn!(error = %e, category = e.category(), "not ready"),
            }
            was_ready = Some(ready);
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
