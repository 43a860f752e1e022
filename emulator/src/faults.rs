//! Fault injection: rules that fail or delay requests matching a verb and resource.

use std::sync::Mutex;
use std::time::Duration;

/// What a matching request gets.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultAction {
    /// Answer with this HTTP status code and message (as a `Status`).
    Fail { code: u16, message: String },
    /// Wait this long before handling the request.
    Delay(Duration),
}

/// A rule: requests whose verb and resource match (None matches any) get `action`,
/// `times` times (or always).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub verb: Option<String>,
    pub resource: Option<String>,
    pub action: FaultAction,
    pub times: Option<u32>,
}

impl FaultRule {
    /// Fails matching requests with `code` (e.g. 500, 503, 429).
    pub fn fail(verb: Option<&str>, resource: Option<&str>, code: u16) -> Self {
        Self {
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            action: FaultAction::Fail {
                code,
                message: format!("injected fault ({code})"),
            },
            times: None,
        }
    }

    /// Delays matching requests.
    pub fn delay(verb: Option<&str>, resource: Option<&str>, delay: Duration) -> Self {
        Self {
            verb: verb.map(str::to_string),
            resource: resource.map(str::to_string),
            action: FaultAction::Delay(delay),
            times: None,
        }
    }

    /// Applies the rule only to the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, verb: &str, resource: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

/// The active rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    pub fn add(&self, rule: FaultRule) {
        if let Ok(mut r) = self.rules.lock() {
            r.push(rule);
        }
    }

    pub fn clear(&self) {
        if let Ok(mut r) = self.rules.lock() {
            r.clear();
        }
    }

    /// The actions for a request, consuming one use of limited rules.
    pub fn take(&self, verb: &str, resource: &str) -> Vec<FaultAction> {
        let Ok(mut rules) = self.rules.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r in rules.iter_mut().filter(|r| r.matches(verb, resource)) {
            if let Some(n) = r.times.as_mut() {
                if *n == 0 {
                    continue;
                }
                *n -= 1;
            }
            out.push(r.action.clone());
        }
        rules.retain(|r| r.times != Some(0));
        out
    }
}
