//! Fault injection: rules that fail, delay or hold requests matching a verb, resource and
//! user, and a record of the requests each rule matched, so a test can confirm that its
//! faults fired (and when).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this HTTP status code and message (as a `Status`).
    Fail { code: u16, message: String },
    /// Wait this long before handling the request.
    Delay(Duration),
    /// Hold the request, unanswered and unapplied, until the rule is removed
    /// ([`Faults::remove`] or [`Faults::clear`]); it is then handled as usual, as by a
    /// server that was stuck. A client that gave up meanwhile never sees the answer, but
    /// a write still takes effect if its preconditions (resourceVersion) still hold.
    Hang,
    /// Let the request through unchanged: the rule only records what it matched.
    Pass,
}

/// A rule: requests whose verb, resource and user match (None matches any) get `action`,
/// `times` times (or always).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub verb: Option<String>,
    pub resource: Option<String>,
    /// The authenticated user name of the request (`kubernetes-admin` for the admin client).
    pub user: Option<String>,
    pub action: FaultAction,
    pub times: Option<u32>,
}

impl FaultRule {
    fn new(verb: Option<&str>, resource: Option<&str>, action: FaultAction) -> Self {
        Self {
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            user: None,
            action,
            times: None,
        }
    }

    /// Fails matching requests with `code` (e.g. 500, 503, 429).
    pub fn fail(verb: Option<&str>, resource: Option<&str>, code: u16) -> Self {
        Self::new(
            verb,
            resource,
            FaultAction::Fail {
                code,
                message: format!("injected fault ({code})"),
            },
        )
    }

    /// Delays matching requests.
    pub fn delay(verb: Option<&str>, resource: Option<&str>, delay: Duration) -> Self {
        Self::new(verb, resource, FaultAction::Delay(delay))
    }

    /// Holds matching requests until the rule is removed (see [`FaultAction::Hang`]).
    pub fn hang(verb: Option<&str>, resource: Option<&str>) -> Self {
        Self::new(verb, resource, FaultAction::Hang)
    }

    /// Only records matching requests (see [`FaultAction::Pass`]).
    pub fn observe(verb: Option<&str>, resource: Option<&str>) -> Self {
        Self::new(verb, resource, FaultAction::Pass)
    }

    /// Applies the rule only to requests of this user.
    pub fn for_user(mut self, user: &str) -> Self {
        self.user = Some(user.to_string());
        self
    }

    /// Applies the rule only to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, request: &FaultHit) -> bool {
        self.verb.as_deref().is_none_or(|v| v == request.verb)
            && self
                .resource
                .as_deref()
                .is_none_or(|r| r == request.resource)
            && self.user.as_deref().is_none_or(|u| u == request.user)
    }
}

/// Identifies an injected rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FaultId(u64);

/// A request that a rule matched, as it arrived (before the rule acted on it).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultHit {
    /// When the request arrived.
    pub at: Instant,
    pub verb: String,
    /// The resource, with its subresource (`tenants/status`).
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub user: String,
}

#[derive(Debug, Default)]
struct State {
    next: u64,
    rules: Vec<(FaultId, FaultRule)>,
    hits: BTreeMap<FaultId, Vec<FaultHit>>,
}

/// The active rules, and what each matched.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
    /// Woken whenever rules are removed, for the requests that [`FaultAction::Hang`] holds.
    removed: Notify,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) -> FaultId {
        let Ok(mut s) = self.state.lock() else {
            return FaultId(u64::MAX);
        };
        let id = FaultId(s.next);
        s.next += 1;
        s.rules.push((id, rule));
        s.hits.insert(id, Vec::new());
        id
    }

    /// Removes one rule and releases the requests it holds; what it matched stays readable.
    pub fn remove(&self, id: FaultId) {
        if let Ok(mut s) = self.state.lock() {
            s.rules.retain(|(i, _)| *i != id);
        }
        self.removed.notify_waiters();
    }

    /// Removes every rule and releases every held request.
    pub fn clear(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.rules.clear();
        }
        self.removed.notify_waiters();
    }

    /// The requests the rule matched so far, in order of arrival.
    pub fn hits(&self, id: FaultId) -> Vec<FaultHit> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.hits.get(&id).cloned())
            .unwrap_or_default()
    }

    fn active(&self, id: FaultId) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| s.rules.iter().any(|(i, _)| *i == id))
    }

    /// The actions for a request, recording it as a hit of every matching rule and
    /// consuming one use of limited rules.
    pub fn take(&self, request: &FaultHit) -> Vec<(FaultId, FaultAction)> {
        let Ok(mut s) = self.state.lock() else {
            return Vec::new();
        };
        let State { rules, hits, .. } = &mut *s;
        let mut out = Vec::new();
        for (id, r) in rules.iter_mut().filter(|(_, r)| r.matches(request)) {
            if let Some(n) = r.times.as_mut() {
                if *n == 0 {
                    continue;
                }
                *n -= 1;
            }
            hits.entry(*id).or_default().push(request.clone());
            out.push((*id, r.action.clone()));
        }
        rules.retain(|(_, r)| r.times != Some(0));
        out
    }

    /// Completes once the rule `id` is no longer active (at once if it is not).
    pub async fn released(&self, id: FaultId) {
        loop {
            // Registered before the check: a removal in between still wakes it.
            let removed = self.removed.notified();
            if !self.active(id) {
                return;
            }
            removed.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(verb: &str, resource: &str, user: &str) -> FaultHit {
        FaultHit {
            at: Instant::now(),
            verb: verb.to_string(),
            resource: resource.to_string(),
            namespace: Some("default".to_string()),
            name: Some("x".to_string()),
            user: user.to_string(),
        }
    }

    #[test]
    fn a_rule_for_one_user_spares_the_others_and_records_what_it_matched() {
        let faults = Faults::default();
        let id = faults.add(FaultRule::hang(Some("update"), Some("leases")).for_user("a"));
        assert!(faults.take(&request("update", "leases", "b")).is_empty());
        assert!(faults.take(&request("get", "leases", "a")).is_empty());
        assert_eq!(
            faults.take(&request("update", "leases", "a")),
            vec![(id, FaultAction::Hang)]
        );
        let hits = faults.hits(id);
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (hits[0].verb.as_str(), hits[0].user.as_str()),
            ("update", "a")
        );
    }

    #[test]
    fn a_limited_rule_is_used_up() {
        let faults = Faults::default();
        let id = faults.add(FaultRule::fail(Some("create"), None, 500).times(1));
        assert_eq!(faults.take(&request("create", "pods", "a")).len(), 1);
        assert!(faults.take(&request("create", "pods", "a")).is_empty());
        assert_eq!(faults.hits(id).len(), 1, "a spent rule keeps its record");
    }

    #[tokio::test]
    async fn a_held_request_is_released_when_its_rule_is_removed() {
        let faults = std::sync::Arc::new(Faults::default());
        let id = faults.add(FaultRule::hang(None, None));
        let other = faults.add(FaultRule::observe(None, None));
        let held = tokio::spawn({
            let faults = faults.clone();
            async move { faults.released(id).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        faults.remove(other);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !held.is_finished(),
            "removing another rule releases nothing"
        );
        faults.remove(id);
        tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .expect("released")
            .expect("task");
    }
}
