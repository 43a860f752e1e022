//! The string `format`s the API server checks on custom resources.
//!
//! The API server validates these formats (apiextensions-apiserver's supported formats, each
//! implemented by kube-openapi's `strfmt`) and ignores any other `format`:
//! <https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#format>.
//! `isbn`, `isbn10`, `isbn13` and `creditcard` are accepted without checking here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// `Some(valid)` for a format the API server checks, `None` for a format it ignores.
pub(crate) fn check(format: &str, s: &str) -> Option<bool> {
    let valid = match format {
        "uri" => is_uri(s),
        "email" => is_email(s),
        "hostname" => is_hostname(s),
        "ipv4" => Ipv4Addr::from_str(s).is_ok(),
        "ipv6" => s.contains(':') && Ipv6Addr::from_str(s).is_ok(),
        "cidr" => is_cidr(s),
        "mac" => is_mac(s),
        "uuid" => is_uuid(s, None),
        "uuid3" => is_uuid(s, Some('3')),
        "uuid4" => is_uuid(s, Some('4')),
        "uuid5" => is_uuid(s, Some('5')),
        "byte" => is_base64(s),
        "date" => jiff::civil::Date::strptime("%Y-%m-%d", s).is_ok(),
        "date-time" | "datetime" => jiff::Timestamp::from_str(s).is_ok(),
        "duration" => is_duration(s),
        "bsonobjectid" => s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "hexcolor" => {
            let hex = s.strip_prefix('#').unwrap_or(s);
            matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit())
        }
        "rgbcolor" => is_rgb(s),
        "ssn" => is_ssn(s),
        "password" | "isbn" | "isbn10" | "isbn13" | "creditcard" => true,
        _ => return None,
    };
    Some(valid)
}

/// Go's `url.ParseRequestURI`: an absolute URI, or an absolute path.
fn is_uri(s: &str) -> bool {
    if s.starts_with('/') {
        return !s.contains(char::is_whitespace);
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !s.contains(char::is_whitespace)
}

fn is_email(s: &str) -> bool {
    let address = match (s.find('<'), s.strip_suffix('>')) {
        (Some(start), Some(inner)) => &inner[start + 1..],
        _ => s,
    };
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !address.contains(char::is_whitespace)
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

fn is_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

fn is_cidr(s: &str) -> bool {
    let Some((ip, prefix)) = s.split_once('/') else {
        return false;
    };
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    match IpAddr::from_str(ip) {
        Ok(IpAddr::V4(_)) => prefix <= 32,
        Ok(IpAddr::V6(_)) => prefix <= 128,
        Err(_) => false,
    }
}

/// Go's `net.ParseMAC`: 6, 8 or 20 hexadecimal octets separated by `:` or `-`, or groups of
/// four digits separated by `.`.
fn is_mac(s: &str) -> bool {
    let groups = |sep: char, width: usize| {
        let parts: Vec<&str> = s.split(sep).collect();
        matches!(parts.len() * width / 2, 6 | 8 | 20)
            && parts
                .iter()
                .all(|p| p.len() == width && p.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    groups(':', 2) || groups('-', 2) || groups('.', 4)
}

fn is_uuid(s: &str, version: Option<char>) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let shape = parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, len)| p.len() == len && p.bytes().all(|b| b.is_ascii_hexdigit()));
    let versioned = match version {
        None => true,
        Some(v) => {
            parts.get(2).and_then(|p| p.chars().next()) == Some(v)
                && parts
                    .get(3)
                    .and_then(|p| p.chars().next())
                    .is_some_and(|c| "89abAB".contains(c))
        }
    };
    shape && versioned
}

/// Standard base64 with padding (Go's `base64.StdEncoding`).
fn is_base64(s: &str) -> bool {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return false;
    }
    let body = s.trim_end_matches('=');
    s.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// Go's `time.ParseDuration` syntax (`1h30m`, `1.5s`, `-2m`), or strfmt's long form
/// (`3 days`, `2w`).
fn is_duration(s: &str) -> bool {
    const GO_UNITS: [&str; 7] = ["ns", "us", "µs", "ms", "s", "m", "h"];
    const LONG_UNITS: [&str; 30] = [
        "ns",
        "us",
        "µs",
        "ms",
        "s",
        "m",
        "h",
        "d",
        "w",
        "nanosecond",
        "nanoseconds",
        "microsecond",
        "microseconds",
        "millisecond",
        "milliseconds",
        "sec",
        "secs",
        "second",
        "seconds",
        "min",
        "mins",
        "minute",
        "minutes",
        "hr",
        "hour",
        "hours",
        "day",
        "days",
        "wk",
        "weeks",
    ];
    let go_style = {
        let rest = s.strip_prefix(['-', '+']).unwrap_or(s);
        rest == "0" || (!rest.is_empty() && units_sequence(rest, &GO_UNITS, true, false))
    };
    go_style || (!s.is_empty() && units_sequence(s, &LONG_UNITS, false, true))
}

/// `s` is a non-empty sequence of `<number><unit>` groups.
fn units_sequence(s: &str, units: &[&str], fractions: bool, spaces: bool) -> bool {
    let mut rest = s;
    while !rest.is_empty() {
        if spaces {
            rest = rest.trim_start();
        }
        let digits = rest
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_digit() || (fractions && c == '.')))
            .map_or(rest.len(), |(i, _)| i);
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        if spaces {
            rest = rest.trim_start();
        }
        let unit_len = rest
            .char_indices()
            .find(|&(_, c)| !c.is_alphabetic())
            .map_or(rest.len(), |(i, _)| i);
        if !units.contains(&&rest[..unit_len]) {
            return false;
        }
        rest = &rest[unit_len..];
    }
    true
}

fn is_rgb(s: &str) -> bool {
    let Some(inner) = s.strip_prefix("rgb(").and_then(|r| r.strip_suffix(')')) else {
        return false;
    };
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 3
                && p.bytes().all(|b| b.is_ascii_digit())
                && !(p.len() > 1 && p.starts_with('0'))
                && p.parse::<u16>().is_ok_and(|n| n <= 255)
        })
}

fn is_ssn(s: &str) -> bool {
    let digits: String = s.chars().filter(|c| *c != '-' && *c != ' ').collect();
    digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 11
}

#[cfg(test)]
mod tests {
    use super::check;

    // https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#format
    // lists the formats the API server validates; other formats are ignored.
    #[test]
    fn validated_formats_accept_good_and_refuse_bad_values() {
        let cases = [
            ("uri", "https://example.com/x", "not a uri"),
            ("email", "ops@example.com", "ops.example.com"),
            ("hostname", "db-1.example.com", "-bad-.example"),
            ("ipv4", "10.0.0.1", "10.0.0.256"),
            ("ipv6", "fd00::1", "10.0.0.1"),
            ("cidr", "10.0.0.0/8", "10.0.0.0/33"),
            ("mac", "00:1a:2b:3c:4d:5e", "00:1a:2b"),
            ("uuid", "123e4567-e89b-12d3-a456-426614174000", "123e4567"),
            (
                "uuid4",
                "123e4567-e89b-42d3-a456-426614174000",
                "123e4567-e89b-12d3-a456-426614174000",
            ),
            ("byte", "aGVsbG8=", "aGVsbG8"),
            ("date", "2024-02-29", "2023-02-29"),
            ("date-time", "2024-01-02T03:04:05Z", "2024-01-02"),
            ("duration", "1h30m", "soon"),
            ("duration", "3 days", "3 fortnights"),
            ("hexcolor", "#a0b1c2", "#xyz"),
            ("rgbcolor", "rgb(0, 128, 255)", "rgb(256,0,0)"),
            ("bsonobjectid", "507f1f77bcf86cd799439011", "507f"),
            ("ssn", "123-45-6789", "123-45-678"),
        ];
        for (format, good, bad) in cases {
            assert_eq!(check(format, good), Some(true), "{format}: {good}");
            assert_eq!(check(format, bad), Some(false), "{format}: {bad}");
        }
    }

    #[test]
    fn unknown_and_numeric_formats_are_not_checked() {
        assert_eq!(check("int32", "x"), None);
        assert_eq!(check("k8s-custom", "x"), None);
    }
}
