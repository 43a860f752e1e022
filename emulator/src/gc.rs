//! The garbage collector: ownerReferences, cascading deletion in the background and
//! foreground, and orphaning.
//!
//! <https://kubernetes.io/docs/concepts/architecture/garbage-collection/>,
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/>.

use serde_json::Value;

use crate::cluster::{Cluster, FOREGROUND_FINALIZER, ORPHAN_FINALIZER, Propagation};
use crate::error::GroupResource;
use crate::meta::{self, OwnerRef};
use crate::store::ObjKey;

enum Owner {
    /// Exists with the referenced uid; `waiting` if it is being deleted in the foreground.
    Present { waiting: bool },
    /// Missing, or replaced by an object with another uid.
    Absent,
    /// The reference cannot be resolved (unknown kind, namespaced owner of a cluster-scoped
    /// dependent): the collector leaves the dependent alone.
    Unresolvable,
}

impl Cluster {
    fn owner_state(&self, r: &OwnerRef, dependent_ns: &str) -> Owner {
        let Some(rt) = self.registry.by_kind(&r.api_version, &r.kind) else {
            return Owner::Unresolvable;
        };
        if rt.namespaced && dependent_ns.is_empty() {
            return Owner::Unresolvable;
        }
        let ns = if rt.namespaced { dependent_ns } else { "" };
        match self.store.get(&rt.storage, ns, &r.name) {
            Some(o) if meta::uid(o) == r.uid => Owner::Present {
                waiting: meta::is_deleting(o)
                    && meta::finalizers(o)
                        .iter()
                        .any(|f| f == FOREGROUND_FINALIZER),
            },
            _ => Owner::Absent,
        }
    }

    /// Dependents of `owner` that really reference it (namespaced owners only own objects
    /// in their own namespace).
    fn dependents(&self, owner: &Value) -> Vec<(GroupResource, ObjKey, Value)> {
        let owner_ns = meta::namespace(owner);
        self.store
            .dependents_of(meta::uid(owner))
            .into_iter()
            .filter(|(_, (ns, _))| owner_ns.is_empty() || ns == owner_ns)
            .filter_map(|(gr, key)| {
                let obj = self.store.get(&gr, &key.0, &key.1)?.as_ref().clone();
                Some((gr, key, obj))
            })
            .collect()
    }

    /// Re-evaluates one object for the garbage collector.
    pub(crate) fn gc_object(&mut self, storage: &GroupResource, key: &ObjKey) {
        let Some(obj) = self
            .store
            .get(storage, &key.0, &key.1)
            .map(|o| o.as_ref().clone())
        else {
            return;
        };
        if meta::is_deleting(&obj) {
            let finalizers = meta::finalizers(&obj);
            if finalizers.iter().any(|f| f == ORPHAN_FINALIZER) {
                self.orphan_dependents(storage, obj);
                return;
            }
            if finalizers.iter().any(|f| f == FOREGROUND_FINALIZER) {
                self.delete_dependents_in_foreground(storage, obj);
            }
            return;
        }
        let refs = meta::owner_references(&obj);
        if refs.is_empty() {
            return;
        }
        let states: Vec<Owner> = refs.iter().map(|r| self.owner_state(r, &key.0)).collect();
        if states.iter().any(|s| matches!(s, Owner::Unresolvable)) {
            return;
        }
        let solid = states
            .iter()
            .any(|s| matches!(s, Owner::Present { waiting: false }));
        let gone: Vec<String> = refs
            .iter()
            .zip(&states)
            .filter(|(_, s)| !matches!(s, Owner::Present { waiting: false }))
            .map(|(r, _)| r.uid.clone())
            .collect();
        if solid {
            if !gone.is_empty() {
                let mut updated = obj;
                meta::remove_owner_references(&mut updated, &gone);
                self.commit_stored(storage, updated);
            }
            return;
        }
        let waiting = states
            .iter()
            .any(|s| matches!(s, Owner::Present { waiting: true }));
        let has_dependents = !self.store.dependents_of(meta::uid(&obj)).is_empty();
        let policy = if waiting && has_dependents {
            Propagation::Foreground
        } else {
            Propagation::Background
        };
        if let Some(rt) = self.registry.get(storage).cloned() {
            let version = rt.preferred_version().to_string();
            self.delete_object(&rt, &version, &key.0, &key.1, Some(policy), false);
        }
    }

    /// Foreground deletion: dependents are deleted first; the owner goes once no dependent
    /// with `blockOwnerDeletion` remains.
    fn delete_dependents_in_foreground(&mut self, storage: &GroupResource, owner: Value) {
        let uid = meta::uid(&owner).to_string();
        for (gr, key, dep) in self.dependents(&owner) {
            if !meta::is_deleting(&dep) {
                self.gc_object(&gr, &key);
            }
        }
        // Dependents still present with blockOwnerDeletion hold the owner; their removal
        // re-queues it.
        let blocked = self.dependents(&owner).iter().any(|(_, _, dep)| {
            meta::owner_references(dep)
                .iter()
                .any(|r| r.uid == uid && r.block_owner_deletion)
        });
        if blocked {
            return;
        }
        let Some(current) = self
            .store
            .get(storage, meta::namespace(&owner), meta::name(&owner))
        else {
            return;
        };
        let mut updated = current.as_ref().clone();
        let mut f = meta::finalizers(&updated);
        f.retain(|x| x != FOREGROUND_FINALIZER);
        meta::set_finalizers(&mut updated, &f);
        self.commit_stored(storage, updated);
    }

    /// Orphan deletion: dependents lose their reference to the owner, then the owner goes.
    fn orphan_dependents(&mut self, storage: &GroupResource, owner: Value) {
        let uid = meta::uid(&owner).to_string();
        for (gr, _, mut dep) in self.dependents(&owner) {
            meta::remove_owner_references(&mut dep, std::slice::from_ref(&uid));
            self.commit_stored(&gr, dep);
        }
        let mut updated = owner;
        let mut f = meta::finalizers(&updated);
        f.retain(|x| x != ORPHAN_FINALIZER);
        meta::set_finalizers(&mut updated, &f);
        self.commit_stored(storage, updated);
    }
}
