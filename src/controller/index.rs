//! A secondary index of a reflector cache: the names of the objects that belong to each
//! tenant, kept from the same watch events that fill the cache.
//!
//! A reflector [`Store`](kube::runtime::reflector::Store) can only be scanned whole. The
//! Tenant controller asks "which TenantBackups are this tenant's?" on every reconcile;
//! with ten thousand tenants and their retained backups, a scan per reconcile would cost
//! the product of the two. The index answers from a map instead, and the cache stays the
//! one place objects are held: the index keeps names only, and a name it returns is
//! looked up in the cache (an object deleted in between is simply not found).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use kube::ResourceExt;
use kube::runtime::watcher::Event;

/// Object names by tenant name.
pub struct ByTenant<K> {
    tenant_of: fn(&K) -> String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    names: HashMap<String, BTreeSet<String>>,
    /// Filled during a relist, swapped in at its end (as the reflector does).
    relisting: Option<HashMap<String, BTreeSet<String>>>,
}

impl<K: ResourceExt> ByTenant<K> {
    /// An empty index; `tenant_of` says whose an object is.
    pub fn new(tenant_of: fn(&K) -> String) -> ByTenant<K> {
        ByTenant {
            tenant_of,
            state: Mutex::new(State::default()),
        }
    }

    /// Follows one watch event.
    pub fn apply(&self, event: &Event<K>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::Apply(object) => {
                let tenant = (self.tenant_of)(object);
                state
                    .names
                    .entry(tenant)
                    .or_default()
                    .insert(object.name_any());
            }
            Event::Delete(object) => {
                let tenant = (self.tenant_of)(object);
                if let Some(names) = state.names.get_mut(&tenant) {
                    names.remove(&object.name_any());
                    if names.is_empty() {
                        state.names.remove(&tenant);
                    }
                }
            }
            Event::Init => state.relisting = Some(HashMap::new()),
            Event::InitApply(object) => {
                let tenant = (self.tenant_of)(object);
                state
                    .relisting
                    .get_or_insert_with(HashMap::new)
                    .entry(tenant)
                    .or_default()
                    .insert(object.name_any());
            }
            Event::InitDone => {
                if let Some(fresh) = state.relisting.take() {
                    state.names = fresh;
                }
            }
        }
    }

    /// The names of `tenant`'s objects.
    pub fn names(&self, tenant: &str) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state
            .names
            .get(tenant)
            .map(|n| n.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn cm(name: &str, tenant: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                labels: Some([("t".to_owned(), tenant.to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn tenant(c: &ConfigMap) -> String {
        c.labels().get("t").cloned().unwrap_or_default()
    }

    #[test]
    fn follows_applies_deletes_and_relists() {
        let index = ByTenant::new(tenant);
        index.apply(&Event::Apply(cm("a1", "a")));
        index.apply(&Event::Apply(cm("a2", "a")));
        index.apply(&Event::Apply(cm("b1", "b")));
        assert_eq!(index.names("a"), ["a1", "a2"]);
        index.apply(&Event::Delete(cm("a1", "a")));
        assert_eq!(index.names("a"), ["a2"]);
        assert!(index.names("nobody").is_empty());
        // A relist replaces everything at its end, not before.
        index.apply(&Event::Init);
        index.apply(&Event::InitApply(cm("b2", "b")));
        assert_eq!(
            index.names("a"),
            ["a2"],
            "still the old state during the relist"
        );
        index.apply(&Event::InitDone);
        assert!(index.names("a").is_empty());
        assert_eq!(index.names("b"), ["b2"]);
    }
}
