//! Validation of built-in kinds beyond names and required fields, worded as
//! kube-apiserver v1.33 words it: object sizes (k8s.io/kubernetes/pkg/apis/core/validation:
//! `ValidateConfigMap`, `ValidateSecret`), Secret types' required keys, NetworkPolicy ports
//! and CIDRs (pkg/apis/networking/validation), CronJob schedules (robfig/cron's standard
//! parser, as the CronJob validation uses it), events.k8s.io event types, and resource
//! quantities (apimachinery's `ParseQuantity`, a decode error: 400).

use base64::Engine;
use serde_json::{Value, json};

use crate::error::FieldCause;

/// ConfigMaps and Secrets hold at most 1 MiB (`MaxSecretSize`).
const MAX_SIZE: usize = 1024 * 1024;

fn too_long(field: &str) -> FieldCause {
    FieldCause::too_long(field, MAX_SIZE)
}

/// A ConfigMap's values (data, and binaryData decoded) total at most 1 MiB.
pub fn config_map(obj: &Value, causes: &mut Vec<FieldCause>) {
    let strings: usize = obj
        .get("data")
        .and_then(Value::as_object)
        .map(|m| m.values().filter_map(Value::as_str).map(str::len).sum())
        .unwrap_or(0);
    let binary: usize = decoded_sizes(obj.get("binaryData"));
    if strings + binary > MAX_SIZE {
        causes.push(too_long("[]"));
    }
}

fn decoded_sizes(map: Option<&Value>) -> usize {
    map.and_then(Value::as_object)
        .map(|m| {
            m.values()
                .filter_map(Value::as_str)
                .map(|v| {
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_or(v.len(), |b| b.len())
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A Secret's data totals at most 1 MiB; typed Secrets carry their keys.
pub fn secret(obj: &Value, causes: &mut Vec<FieldCause>) {
    if decoded_sizes(obj.get("data")) > MAX_SIZE {
        causes.push(too_long("data"));
    }
    let required: &[&str] = match obj.get("type").and_then(Value::as_str).unwrap_or("") {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        _ => &[],
    };
    let data = obj.get("data").and_then(Value::as_object);
    for key in required {
        if data.is_none_or(|d| !d.contains_key(*key)) {
            causes.push(FieldCause::required(&format!("data[{key}]"), ""));
        }
    }
}

/// `ValidateNetworkPolicyPort` and the ipBlock CIDRs of every peer.
pub fn network_policy(obj: &Value, causes: &mut Vec<FieldCause>) {
    for (direction, peers) in [("ingress", "from"), ("egress", "to")] {
        let rules = obj
            .pointer(&format!("/spec/{direction}"))
            .and_then(Value::as_array);
        for (i, rule) in rules.into_iter().flatten().enumerate() {
            let base = format!("spec.{direction}[{i}]");
            let ports = rule.get("ports").and_then(Value::as_array);
            for (j, port) in ports.into_iter().flatten().enumerate() {
                network_policy_port(port, &format!("{base}.ports[{j}]"), causes);
            }
            let peer_list = rule.get(peers).and_then(Value::as_array);
            for (j, peer) in peer_list.into_iter().flatten().enumerate() {
                let Some(block) = peer.get("ipBlock") else {
                    continue;
                };
                let path = format!("{base}.{peers}[{j}].ipBlock");
                let cidr = block.get("cidr").and_then(Value::as_str).unwrap_or("");
                if cidr.is_empty() {
                    causes.push(FieldCause::required(&format!("{path}.cidr"), ""));
                } else if !is_cidr(cidr) {
                    causes.push(invalid_cidr(&format!("{path}.cidr"), cidr));
                }
                let except = block.get("except").and_then(Value::as_array);
                for (k, e) in except.into_iter().flatten().enumerate() {
                    let e = e.as_str().unwrap_or("");
                    if !is_cidr(e) {
                        causes.push(invalid_cidr(&format!("{path}.except[{k}]"), e));
                    }
                }
            }
        }
    }
}

fn invalid_cidr(field: &str, value: &str) -> FieldCause {
    FieldCause::invalid(
        field,
        json!(value),
        "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
    )
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, bits)) = s.split_once('/') else {
        return false;
    };
    let Ok(bits) = bits.parse::<u8>() else {
        return false;
    };
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(_)) => bits <= 32,
        Ok(std::net::IpAddr::V6(_)) => bits <= 128,
        Err(_) => false,
    }
}

const PORT_RANGE: &str = "must be between 1 and 65535, inclusive";

fn network_policy_port(port: &Value, path: &str, causes: &mut Vec<FieldCause>) {
    if let Some(p) = port.get("protocol").and_then(Value::as_str)
        && !matches!(p, "TCP" | "UDP" | "SCTP")
    {
        causes.push(FieldCause::not_supported(
            &format!("{path}.protocol"),
            json!(p),
            &["TCP", "UDP", "SCTP"],
        ));
    }
    let end = port.get("endPort").and_then(Value::as_i64);
    match port.get("port") {
        Some(Value::Number(n)) => {
            let n = n.as_i64().unwrap_or(0);
            if !(1..=65535).contains(&n) {
                causes.push(FieldCause::invalid(
                    &format!("{path}.port"),
                    json!(n),
                    PORT_RANGE,
                ));
            }
            if let Some(e) = end {
                if e < n {
                    causes.push(FieldCause::invalid(
                        &format!("{path}.endPort"),
                        json!(n),
                        "must be greater than or equal to `port`",
                    ));
                }
                if !(1..=65535).contains(&e) {
                    causes.push(FieldCause::invalid(
                        &format!("{path}.endPort"),
                        json!(e),
                        PORT_RANGE,
                    ));
                }
            }
        }
        Some(Value::String(name)) => {
            for detail in service_name(name) {
                causes.push(FieldCause::invalid(
                    &format!("{path}.port"),
                    json!(name),
                    detail,
                ));
            }
            if let Some(e) = end {
                causes.push(FieldCause::invalid(
                    &format!("{path}.endPort"),
                    json!(e),
                    "may not be specified when `port` is non-numeric",
                ));
            }
        }
        _ => {
            if let Some(e) = end {
                causes.push(FieldCause::invalid(
                    &format!("{path}.endPort"),
                    json!(e),
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

/// `IsValidPortName` (an IANA service name).
fn service_name(name: &str) -> Vec<&'static str> {
    let mut errs = Vec::new();
    if name.len() > 15 {
        errs.push("must be no more than 15 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        errs.push("must not contain consecutive hyphens");
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        errs.push("must not begin or end with a hyphen");
    }
    errs
}

/// An events.k8s.io Event's type is Normal or Warning (`ValidateEventCreate`).
pub fn event_type(obj: &Value, causes: &mut Vec<FieldCause>) {
    let t = obj.get("type").and_then(Value::as_str).unwrap_or("");
    if t != "Normal" && t != "Warning" {
        causes.push(FieldCause::invalid(
            "type",
            json!(""),
            &format!("has invalid value: {t}"),
        ));
    }
}

/// A CronJob's schedule as robfig/cron's standard parser reads it (five fields or a
/// descriptor), plus the CronJob validation's refusal of time zones in it.
pub fn cron_schedule(obj: &Value, causes: &mut Vec<FieldCause>) {
    let Some(schedule) = obj.pointer("/spec/schedule").and_then(Value::as_str) else {
        return;
    };
    if schedule.is_empty() {
        return;
    }
    let result = if schedule.contains("TZ") {
        Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_string())
    } else {
        parse_cron(schedule)
    };
    if let Err(detail) = result {
        causes.push(FieldCause::invalid(
            "spec.schedule",
            json!(schedule),
            &detail,
        ));
    }
}

fn parse_cron(spec: &str) -> Result<(), String> {
    if let Some(descriptor) = spec.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => Ok(()),
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    const MONTHS: &[&str] = &[
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let bounds: [(u32, u32, &[&str], u32); 5] = [
        (0, 59, &[], 0),
        (0, 23, &[], 0),
        (1, 31, &[], 0),
        (1, 12, MONTHS, 1),
        (0, 6, DAYS, 0),
    ];
    for (field, (min, max, names, first)) in fields.iter().zip(bounds) {
        for range in field.split(',') {
            cron_range(range, min, max, names, first)?;
        }
    }
    Ok(())
}

/// One `a-b/step` range of a cron field (robfig/cron's `getRange`).
fn cron_range(expr: &str, min: u32, max: u32, names: &[&str], first: u32) -> Result<(), String> {
    let number = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + first);
        }
        s.parse::<u32>().map_err(|_| {
            format!("failed to parse int from {s}: strconv.Atoi: parsing {s:?}: invalid syntax")
        })
    };
    let (range, step) = match expr.split('/').collect::<Vec<_>>().as_slice() {
        [r] => (*r, None),
        [r, s] => (*r, Some(*s)),
        _ => return Err(format!("too many slashes: {expr}")),
    };
    let (start, end) = match range.split('-').collect::<Vec<_>>().as_slice() {
        ["*" | "?"] => (min, max),
        [a] => {
            let a = number(a)?;
            (a, if step.is_some() { max } else { a })
        }
        [a, b] => (number(a)?, number(b)?),
        _ => return Err(format!("too many hyphens: {expr}")),
    };
    if let Some(s) = step {
        let s = number(s)?;
        if s == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
    }
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({min}): {expr}"
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({max}): {expr}"
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    Ok(())
}

/// The decode error of a malformed quantity (`ParseQuantity`), or `None` when `q` parses.
pub fn quantity_error(q: &str) -> Option<&'static str> {
    const FORMAT: &str = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
    const SUFFIX: &str = "unable to parse quantity's suffix";
    let s = q.strip_prefix(['+', '-']).unwrap_or(q);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let dots = number.matches('.').count();
    if number.is_empty() || number == "." || dots > 1 {
        return Some(FORMAT);
    }
    let valid_suffix = match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        e if e.starts_with(['e', 'E']) => {
            let exp = e[1..].strip_prefix(['+', '-']).unwrap_or(&e[1..]);
            !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    };
    if valid_suffix {
        return None;
    }
    // Characters outside the format's suffix class are a format error, the rest a bad suffix.
    if suffix
        .chars()
        .all(|c| "eEinumkKMGTP+-0123456789".contains(c))
    {
        Some(SUFFIX)
    } else {
        Some(FORMAT)
    }
}

/// The first malformed quantity of a built-in object, where its type holds quantities
/// (quota `hard`, LimitRange limits, container resources of pod templates).
pub fn first_bad_quantity(kind: &str, obj: &Value) -> Option<&'static str> {
    let mut maps: Vec<&Value> = Vec::new();
    match kind {
        "ResourceQuota" => maps.extend(obj.pointer("/spec/hard")),
        "LimitRange" => {
            let limits = obj.pointer("/spec/limits").and_then(Value::as_array);
            for l in limits.into_iter().flatten() {
                for k in [
                    "max",
                    "min",
                    "default",
                    "defaultRequest",
                    "maxLimitRequestRatio",
                ] {
                    maps.extend(l.get(k));
                }
            }
        }
        "Job" | "CronJob" => {
            let spec = if kind == "Job" {
                obj.pointer("/spec/template/spec")
            } else {
                obj.pointer("/spec/jobTemplate/spec/template/spec")
            };
            for key in ["containers", "initContainers"] {
                let containers = spec.and_then(|s| s.get(key)).and_then(Value::as_array);
                for c in containers.into_iter().flatten() {
                    maps.extend(c.pointer("/resources/limits"));
                    maps.extend(c.pointer("/resources/requests"));
                }
            }
        }
        _ => {}
    }
    maps.iter()
        .filter_map(|m| m.as_object())
        .flat_map(|m| m.values())
        .filter_map(Value::as_str)
        .find_map(quantity_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["1", "100m", "1.5Gi", "2e3", "+5", "0.1", "1E-2", "10Ki"] {
            assert_eq!(quantity_error(ok), None, "{ok}");
        }
        assert!(quantity_error("lots").is_some_and(|e| e.starts_with("quantities must match")));
        assert_eq!(
            quantity_error("5Zi"),
            Some(
                "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            )
        );
        assert_eq!(
            quantity_error("5Kii"),
            Some("unable to parse quantity's suffix")
        );
    }

    #[test]
    fn cron_schedules_as_robfig_parses_them() {
        assert_eq!(parse_cron("*/5 * * * *"), Ok(()));
        assert_eq!(parse_cron("0 9 * jan-mar mon-fri"), Ok(()));
        assert_eq!(parse_cron("@hourly"), Ok(()));
        assert_eq!(
            parse_cron("every minute"),
            Err("expected exactly 5 fields, found 2: [every minute]".into())
        );
        assert_eq!(
            parse_cron("60 * * * *"),
            Err("end of range (60) above maximum (59): 60".into())
        );
    }
}
