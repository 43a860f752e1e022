//! Request counters by verb and resource, so tests and benchmarks can count API calls.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Counts requests by `(verb, resource)`; `resource` includes a subresource
/// (`tenants/status`), verbs are the API verbs (`get`, `list`, `watch`, `create`, `update`,
/// `patch`, `delete`, `deletecollection`).
#[derive(Debug, Default)]
pub struct RequestCounter {
    counts: Mutex<BTreeMap<(String, String), u64>>,
}

impl RequestCounter {
    pub fn record(&self, verb: &str, resource: &str) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((verb.to_string(), resource.to_string()))
                .or_default() += 1;
        }
    }

    pub fn get(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .lock()
            .ok()
            .and_then(|c| c.get(&(verb.to_string(), resource.to_string())).copied())
            .unwrap_or(0)
    }

    pub fn snapshot(&self) -> BTreeMap<(String, String), u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut c) = self.counts.lock() {
            c.clear();
        }
    }
}
