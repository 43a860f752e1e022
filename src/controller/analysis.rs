//! Keeps the isolation verdict of every tenant current: whenever a NetworkPolicy or a
//! namespace in the caches changes, [`crate::isolation::analysis::analyze`] runs over all
//! tenant namespaces, and every Tenant whose verdict changed is reconciled so that its
//! `Isolated` condition (and Warning event) follows.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::Stores;
use crate::api::Tenant;
use crate::isolation::analysis::{AnalysisConfig, NamespaceInfo, TenantIsolation, analyze};
use crate::isolation::labels::TENANT_LABEL;

/// How often the caches are checked for changes.
const INTERVAL: Duration = Duration::from_millis(500);

/// The tenant namespaces and their policies, as the analyzer takes them, and a
/// fingerprint that changes whenever any of them does.
fn snapshot(stores: &Stores) -> (Vec<NamespaceInfo>, Vec<NetworkPolicy>, u64) {
    let mut hasher = DefaultHasher::new();
    let mut namespaces: Vec<NamespaceInfo> = stores
        .namespaces
        .state()
        .iter()
        .filter_map(|ns| {
            let tenant = ns.labels().get(TENANT_LABEL)?.clone();
            Some(NamespaceInfo {
                name: ns.name_any(),
                tenant,
                labels: ns.labels().clone(),
            })
        })
        .collect();
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    let tenant_namespaces: BTreeSet<&str> = namespaces.iter().map(|ns| ns.name.as_str()).collect();
    let mut policies: Vec<NetworkPolicy> = stores
        .policies
        .state()
        .iter()
        .filter(|p| {
            p.namespace()
                .is_some_and(|ns| tenant_namespaces.contains(ns.as_str()))
        })
        .map(|p| (**p).clone())
        .collect();
    policies.sort_by_key(|p| (p.namespace(), p.name_any()));
    for ns in &namespaces {
        (&ns.name, &ns.tenant, &ns.labels).hash(&mut hasher);
    }
    for p in &policies {
        (p.namespace(), p.name_any(), p.resource_version()).hash(&mut hasher);
    }
    (namespaces, policies, hasher.finish())
}

/// Runs until `stop` turns true.
pub async fn keep_analyzing(
    stores: Stores,
    config: AnalysisConfig,
    verdicts: Arc<RwLock<BTreeMap<String, TenantIsolation>>>,
    trigger: UnboundedSender<ObjectRef<Tenant>>,
    mut stop: watch::Receiver<bool>,
) {
    if stores.ready().await.is_err() {
        return;
    }
    debug!("caches ready: analyzing isolation");
    let mut last = None;
    loop {
        let (namespaces, policies, fingerprint) = snapshot(&stores);
        if last != Some(fingerprint) {
            last = Some(fingerprint);
            let config = config.clone();
            // The analysis is CPU-bound: keep it off the reconcilers' threads.
            let Ok(fresh) =
                tokio::task::spawn_blocking(move || analyze(&namespaces, &policies, &config)).await
            else {
                warn!("the isolation analysis panicked; retrying on the next change");
                last = None;
                continue;
            };
            let changed: Vec<String> = {
                let mut current = verdicts.write().unwrap_or_else(PoisonError::into_inner);
                let changed = fresh
                    .iter()
                    .filter(|(tenant, verdict)| current.get(*tenant) != Some(verdict))
                    .map(|(tenant, _)| tenant.clone())
                    .collect();
                *current = fresh;
                changed
            };
            debug!(changed = ?changed, "isolation verdicts changed");
            for tenant in changed {
                // The controller is gone when the receiver is dropped; nothing to do then.
                let _ = trigger.unbounded_send(ObjectRef::new(&tenant));
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}
