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
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;
use tracing::{debug, warn};

use super::Stores;
use crate::api::Tenant;
use crate::isolation::analysis::{AnalysisConfig, NamespaceInfo, TenantIsolation, analyze};
use crate::isolation::labels::TENANT_LABEL;
use crate::isolation::ownership;

/// How often the caches are checked for changes.
const INTERVAL: Duration = Duration::from_millis(500);

/// What the controller knows of one tenant's isolation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The analyzer's answer over the tenant's own namespaces; `None` until it covered
    /// them.
    pub isolation: Option<TenantIsolation>,
    /// Namespaces that carry the label `landlord.dev/tenant=<tenant>` but are not the
    /// tenant's (no matching UID, or a name the Tenant does not ask for), sorted: a forged
    /// label, which Landlord ignores and reports.
    pub forged: Vec<String>,
}

/// Whose namespaces are whose: the Tenants' UIDs and the namespaces each asks for
/// (spec and status).
struct Membership {
    by_uid: BTreeMap<String, (String, BTreeSet<String>)>,
}

impl Membership {
    fn of(stores: &Stores) -> Membership {
        let by_uid = stores
            .tenants
            .state()
            .iter()
            .filter_map(|t| {
                let uid = t.uid()?;
                let mut names: BTreeSet<String> = t.namespace_names().into_iter().collect();
                if let Some(status) = &t.status {
                    names.extend(status.namespaces.iter().cloned());
                }
                Some((uid, (t.name_any(), names)))
            })
            .collect();
        Membership { by_uid }
    }

    /// The tenant `ns` belongs to: the Tenant whose UID it records, if that Tenant asks
    /// for a namespace of this name. The `landlord.dev/tenant` label plays no part.
    fn tenant_of(&self, ns: &Namespace) -> Option<&str> {
        let uid = ownership::recorded_uid(ns.metadata.annotations.as_ref())?;
        let (tenant, names) = self.by_uid.get(uid)?;
        names.contains(&ns.name_any()).then_some(tenant.as_str())
    }
}

/// The tenant namespaces and their policies, as the analyzer takes them, the forged
/// labels by tenant, and a fingerprint that changes whenever any of them does.
fn snapshot(stores: &Stores) -> Snapshot {
    let mut hasher = DefaultHasher::new();
    let membership = Membership::of(stores);
    let mut forged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut namespaces: Vec<NamespaceInfo> = Vec::new();
    for ns in stores.namespaces.state() {
        match membership.tenant_of(&ns) {
            Some(tenant) => namespaces.push(NamespaceInfo {
                name: ns.name_any(),
                tenant: tenant.to_owned(),
                labels: ns.labels().clone(),
            }),
            None => {
                if let Some(claimed) = ns.labels().get(TENANT_LABEL) {
                    forged
                        .entry(claimed.clone())
                        .or_default()
                        .push(ns.name_any());
                }
            }
        }
    }
    namespaces.sort_by(|a, b| a.name.cmp(&b.name));
    for names in forged.values_mut() {
        names.sort();
    }
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
    forged.hash(&mut hasher);
    for p in &policies {
        (p.namespace(), p.name_any(), p.resource_version()).hash(&mut hasher);
    }
    Snapshot {
        namespaces,
        policies,
        forged,
        fingerprint: hasher.finish(),
    }
}

struct Snapshot {
    namespaces: Vec<NamespaceInfo>,
    policies: Vec<NetworkPolicy>,
    forged: BTreeMap<String, Vec<String>>,
    fingerprint: u64,
}

/// Every tenant's verdict: the analyzer's, with the forged labels beside it.
fn combine(
    isolation: BTreeMap<String, TenantIsolation>,
    mut forged: BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Verdict> {
    let mut all: BTreeMap<String, Verdict> = isolation
        .into_iter()
        .map(|(tenant, isolation)| {
            let forged = forged.remove(&tenant).unwrap_or_default();
            (
                tenant,
                Verdict {
                    isolation: Some(isolation),
                    forged,
                },
            )
        })
        .collect();
    for (tenant, forged) in forged {
        all.insert(
            tenant,
            Verdict {
                isolation: None,
                forged,
            },
        );
    }
    all
}

/// Runs until `stop` turns true.
pub async fn keep_analyzing(
    stores: Stores,
    config: AnalysisConfig,
    verdicts: Arc<RwLock<BTreeMap<String, Verdict>>>,
    trigger: UnboundedSender<ObjectRef<Tenant>>,
    mut stop: watch::Receiver<bool>,
) {
    if stores.ready().await.is_err() {
        return;
    }
    debug!("caches ready: analyzing isolation");
    let mut last = None;
    loop {
        let Snapshot {
            namespaces,
            policies,
            forged,
            fingerprint,
        } = snapshot(&stores);
        if last != Some(fingerprint) {
            last = Some(fingerprint);
            let config = config.clone();
            // The analysis is CPU-bound: keep it off the reconcilers' threads.
            let Ok(isolation) =
                tokio::task::spawn_blocking(move || analyze(&namespaces, &policies, &config)).await
            else {
                warn!("the isolation analysis panicked; retrying on the next change");
                last = None;
                continue;
            };
            let fresh = combine(isolation, forged);
            let changed: Vec<String> = {
                let mut current = verdicts.write().unwrap_or_else(PoisonError::into_inner);
                // A tenant whose verdict went away (its last forged namespace was
                // deleted) changed too.
                let changed = fresh
                    .iter()
                    .filter(|(tenant, verdict)| current.get(*tenant) != Some(verdict))
                    .map(|(tenant, _)| tenant.clone())
                    .chain(current.keys().filter(|t| !fresh.contains_key(*t)).cloned())
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
