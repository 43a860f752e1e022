//! Events are stored once and served as both `v1` and `events.k8s.io/v1`, as in the real
//! server; these are the field conversions between the two.

use serde_json::{Map, Value};

/// `(core v1 field, events.k8s.io/v1 field)`.
const FIELDS: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("related", "related"),
    ("message", "note"),
    ("reason", "reason"),
    ("type", "type"),
    ("action", "action"),
    ("reportingComponent", "reportingController"),
    ("reportingInstance", "reportingInstance"),
    ("eventTime", "eventTime"),
    ("series", "series"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn convert(obj: &Value, api_version: &str, to_events: bool) -> Value {
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    out.insert("kind".into(), Value::String("Event".into()));
    if let Some(m) = obj.get("metadata") {
        out.insert("metadata".into(), m.clone());
    }
    for (core, events) in FIELDS {
        let (from, to) = if to_events {
            (core, events)
        } else {
            (events, core)
        };
        if let Some(v) = obj.get(*from).filter(|v| !v.is_null()) {
            out.insert((*to).to_string(), v.clone());
        }
    }
    Value::Object(out)
}

/// A stored (core v1) Event as `events.k8s.io/v1`.
pub fn to_events_v1(obj: &Value) -> Value {
    convert(obj, "events.k8s.io/v1", true)
}

/// An `events.k8s.io/v1` Event in its stored (core v1) form.
pub fn to_core_v1(obj: &Value) -> Value {
    convert(obj, "v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let e = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Tenant", "name": "acme"}, "note": "hello", "reason": "Ready",
            "reportingController": "landlord", "deprecatedCount": 2});
        let core = to_core_v1(&e);
        assert_eq!(core["involvedObject"]["name"], "acme");
        assert_eq!(core["message"], "hello");
        assert_eq!(to_events_v1(&core), e);
    }
}
