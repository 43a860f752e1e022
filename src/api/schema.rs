//! Schema fragments that schemars cannot derive: Kubernetes quantities, label maps and the
//! shared patterns for names. Used through `#[schemars(schema_with = ...)]` and
//! `#[schemars(regex(pattern = ...))]` in the kinds.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A DNS-1123 label: what Kubernetes requires of namespace names.
pub const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// A DNS-1123 subdomain: what Kubernetes requires of most object names.
pub const DNS1123_SUBDOMAIN: &str =
    "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
/// A key of a Secret's or ConfigMap's data.
pub const SECRET_KEY: &str = "^[-._a-zA-Z0-9]+$";
/// A non-negative Kubernetes quantity (`500m`, `2Gi`, `10`): the serialized form of
/// `resource.Quantity` without a sign, so negative values are refused.
pub const NON_NEGATIVE_QUANTITY: &str = "^\\+?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$";
/// A standard five-field cron expression (minute hour day-of-month month day-of-week) with
/// numbers, names, ranges, lists and steps, or one of the `@hourly`-style macros.
pub const CRON: &str = concat!(
    "^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|",
    "((\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*)",
    "( ((\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\\*|\\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*)){4})$"
);

/// A non-negative Kubernetes resource quantity such as `500m`, `2Gi` or `10`.
///
/// Written in YAML as a string or an integer, like Kubernetes' own quantities; stored as
/// its string form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(pub String);

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum IntOrString {
            Int(i64),
            String(String),
        }
        Ok(match IntOrString::deserialize(deserializer)? {
            IntOrString::Int(i) => Quantity(i.to_string()),
            IntOrString::String(s) => Quantity(s),
        })
    }
}

impl JsonSchema for Quantity {
    fn schema_name() -> Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A non-negative quantity, e.g. `500m`, `2Gi` or `10`.",
            "x-kubernetes-int-or-string": true,
            // Value validations apply by type: `minimum` to integers, `pattern` to strings.
            "minimum": 0,
            "pattern": NON_NEGATIVE_QUANTITY
        })
    }
}

/// Schema of a label or annotation map: string values, keys that Kubernetes accepts.
pub fn label_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        // Values by pattern, not by a CEL rule over every entry: kube-apiserver estimates
        // the cost of `self.all(k, self[k]...)` over the map beyond its budget.
        "additionalProperties": {
            "type": "string",
            "maxLength": 63,
            "pattern": "^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$"
        },
        "maxProperties": 64,
        "x-kubernetes-validations": [{
            "rule": "self.all(k, k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))",
            "message": "keys must be valid label keys: an optional DNS subdomain prefix and '/', then at most 63 alphanumerics, '-', '_' or '.'"
        }]
    })
}

/// Schema of an annotation map: any string values, at most 256 KiB in total as Kubernetes
/// enforces on the namespace itself.
pub fn annotation_map(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {"type": "string"},
        "maxProperties": 64
    })
}

/// Schema of an RFC 3339 timestamp.
pub fn timestamp(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "format": "date-time"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    fn re(pattern: &str) -> Regex {
        Regex::new(pattern).expect("pattern compiles")
    }

    #[test]
    fn cron_accepts_standard_expressions_and_macros() {
        let cron = re(CRON);
        for ok in [
            "0 3 * * *",
            "*/15 * * * *",
            "0 0 1,15 * MON-FRI",
            "30 2 * JAN-MAR 0",
            "@daily",
            "@hourly",
        ] {
            assert!(cron.is_match(ok), "{ok} should be accepted");
        }
    }

    #[test]
    fn cron_refuses_malformed_expressions() {
        let cron = re(CRON);
        for bad in [
            "",
            "every day",
            "0 3 * *",
            "0 3 * * * *",
            "@sometimes",
            "0  3 * * *",
            "0 3 * * *;",
        ] {
            assert!(!cron.is_match(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn quantity_refuses_negative_values() {
        let quantity = re(NON_NEGATIVE_QUANTITY);
        for ok in ["1", "500m", "2Gi", "0.5", "1e3", "+4"] {
            assert!(quantity.is_match(ok), "{ok} should be accepted");
        }
        for bad in ["-1", "-500m", "2GiB", "ten", ""] {
            assert!(!quantity.is_match(bad), "{bad:?} should be refused");
        }
    }

    #[test]
    fn quantity_reads_integers_and_strings() {
        let q: Quantity = serde_json::from_str("10").expect("integer quantity");
        assert_eq!(q, Quantity("10".into()));
        let q: Quantity = serde_json::from_str("\"2Gi\"").expect("string quantity");
        assert_eq!(serde_json::to_string(&q).expect("serializes"), "\"2Gi\"");
    }
}
