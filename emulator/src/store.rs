//! Object storage: one global, monotonic resourceVersion, a bounded history of changes
//! for watches and paged lists, and a broadcast of every change.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::GroupResource;
use crate::meta;

/// Namespace ("" for cluster-scoped) and name.
pub type ObjKey = (String, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as retained in history and sent to watchers.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub storage: GroupResource,
    pub kind: EventType,
    /// The new object; for deletions, the last state with the deletion's resourceVersion.
    pub object: Arc<Value>,
    /// The object before the change (for reconstructing earlier list snapshots).
    pub previous: Option<Arc<Value>>,
}

/// Asked for a resourceVersion older than the retained history.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("too old resource version: {requested} ({oldest})")]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

pub struct Store {
    rv: u64,
    objects: HashMap<GroupResource, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes at or below this resourceVersion are no longer retained.
    compacted: u64,
    tx: broadcast::Sender<Arc<Change>>,
    /// owner uid -> dependents that reference it.
    dependents: HashMap<String, BTreeSet<(GroupResource, ObjKey)>>,
}

fn key_of(obj: &Value) -> ObjKey {
    (
        meta::namespace(obj).to_string(),
        meta::name(obj).to_string(),
    )
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(1 << 16);
        Self {
            rv: 1,
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_limit,
            compacted: 1,
            tx,
            dependents: HashMap::new(),
        }
    }

    pub fn current_rv(&self) -> u64 {
        self.rv
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.tx.subscribe()
    }

    pub fn get(&self, storage: &GroupResource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.objects
            .get(storage)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
    }

    /// Objects of a resource in key order, optionally within one namespace.
    pub fn list<'a>(
        &'a self,
        storage: &GroupResource,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = &'a Arc<Value>> + 'a> {
        let Some(map) = self.objects.get(storage) else {
            return Box::new(std::iter::empty());
        };
        match ns {
            Some(ns) => Box::new(
                map.range((ns.to_string(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, v)| v),
            ),
            None => Box::new(map.values()),
        }
    }

    pub fn count(&self, storage: &GroupResource) -> usize {
        self.objects.get(storage).map_or(0, BTreeMap::len)
    }

    /// Every stored resource that has objects in namespace `ns`, with those objects' keys.
    pub fn in_namespace(&self, ns: &str) -> Vec<(GroupResource, ObjKey)> {
        let mut out = Vec::new();
        for (gr, map) in &self.objects {
            for ((n, name), _) in map
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
            {
                out.push((gr.clone(), (n.clone(), name.clone())));
            }
        }
        out.sort();
        out
    }

    pub fn dependents_of(&self, owner_uid: &str) -> Vec<(GroupResource, ObjKey)> {
        self.dependents
            .get(owner_uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn index(&mut self, storage: &GroupResource, obj: &Value, add: bool) {
        let key = key_of(obj);
        for r in meta::owner_references(obj) {
            if add {
                self.dependents
                    .entry(r.uid)
                    .or_default()
                    .insert((storage.clone(), key.clone()));
            } else if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(&(storage.clone(), key.clone()));
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
        }
    }

    fn record(&mut self, change: Change) {
        let change = Arc::new(change);
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(change);
    }

    fn stamp(&mut self, mut obj: Value) -> Value {
        self.rv += 1;
        meta::metadata_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        obj
    }

    /// Stores a new object, assigning its resourceVersion.
    pub fn insert(&mut self, storage: &GroupResource, obj: Value) -> Arc<Value> {
        let obj = Arc::new(self.stamp(obj));
        self.index(storage, &obj, true);
        self.objects
            .entry(storage.clone())
            .or_default()
            .insert(key_of(&obj), obj.clone());
        self.record(Change {
            rv: self.rv,
            storage: storage.clone(),
            kind: EventType::Added,
            object: obj.clone(),
            previous: None,
        });
        obj
    }

    /// Replaces a stored object, assigning a new resourceVersion.
    pub fn replace(&mut self, storage: &GroupResource, obj: Value) -> Arc<Value> {
        let obj = Arc::new(self.stamp(obj));
        let previous = self
            .objects
            .entry(storage.clone())
            .or_default()
            .insert(key_of(&obj), obj.clone());
        if let Some(p) = &previous {
            self.index(storage, p, false);
        }
        self.index(storage, &obj, true);
        self.record(Change {
            rv: self.rv,
            storage: storage.clone(),
            kind: EventType::Modified,
            object: obj.clone(),
            previous,
        });
        obj
    }

    /// Removes an object; returns its last state (with the deletion's resourceVersion).
    pub fn remove(&mut self, storage: &GroupResource, ns: &str, name: &str) -> Option<Arc<Value>> {
        let previous = self
            .objects
            .get_mut(storage)?
            .remove(&(ns.to_string(), name.to_string()))?;
        self.index(storage, &previous, false);
        let last = Arc::new(self.stamp((*previous).clone()));
        self.record(Change {
            rv: self.rv,
            storage: storage.clone(),
            kind: EventType::Deleted,
            object: last.clone(),
            previous: Some(previous),
        });
        Some(last)
    }

    /// Changes after `rv` (exclusive), or [`TooOld`] if some were compacted away.
    pub fn changes_since(&self, rv: u64) -> Result<Vec<Arc<Change>>, TooOld> {
        if rv < self.compacted {
            return Err(TooOld {
                requested: rv,
                oldest: self.compacted + 1,
            });
        }
        Ok(self.history.iter().filter(|c| c.rv > rv).cloned().collect())
    }

    /// Forgets all retained history (as etcd compaction does): older resourceVersions get 410.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// The objects of a resource as they were at `rv`, in key order.
    pub fn snapshot_at(
        &self,
        storage: &GroupResource,
        ns: Option<&str>,
        rv: u64,
    ) -> Result<BTreeMap<ObjKey, Arc<Value>>, TooOld> {
        let changes = self.changes_since(rv)?;
        let mut snap: BTreeMap<ObjKey, Arc<Value>> = self
            .list(storage, ns)
            .map(|o| (key_of(o), o.clone()))
            .collect();
        for c in changes.iter().rev() {
            if &c.storage != storage || ns.is_some_and(|n| meta::namespace(&c.object) != n) {
                continue;
            }
            let key = key_of(&c.object);
            match &c.previous {
                Some(p) => snap.insert(key, p.clone()),
                None => snap.remove(&key),
            };
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, v: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "ns"}, "data": {"v": v}})
    }

    #[test]
    fn resource_versions_are_monotonic_and_snapshots_rewind() {
        let gr = GroupResource::new("", "configmaps");
        let mut s = Store::new(100);
        let a = s.insert(&gr, cm("a", "1"));
        let at = s.current_rv();
        s.replace(&gr, cm("a", "2"));
        s.insert(&gr, cm("b", "1"));
        assert!(
            meta::resource_version(&a)
                .parse::<u64>()
                .is_ok_and(|rv| rv < s.current_rv())
        );
        let snap = s.snapshot_at(&gr, None, at).unwrap();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap.values().next().unwrap()["data"]["v"], "1");
        s.compact();
        assert!(s.changes_since(at).is_err());
    }
}
