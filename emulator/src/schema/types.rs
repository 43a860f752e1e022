//! Field errors as the Kubernetes API server words them.
//!
//! The wording follows `k8s.io/apimachinery/pkg/util/validation/field` (Kubernetes 1.33):
//! `<field>: <type text>[: <bad value>][: <detail>]`, where the bad value is printed the way
//! Go prints it there (`%q` for strings, `%v` for numbers and booleans, JSON otherwise).

use std::fmt;

use serde_json::Value;

/// The machine-readable kind of a field error (`StatusCause.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FieldErrorKind {
    /// `FieldValueInvalid`: the value is malformed (pattern, bounds, CEL rule...).
    Invalid,
    /// `FieldValueRequired`: a required value is missing.
    Required,
    /// `FieldValueNotSupported`: the value is not one of the enumerated values.
    NotSupported,
    /// `FieldValueTooLong`: a string is longer than `maxLength`.
    TooLong,
    /// `FieldValueTooMany`: a list or map has more entries than allowed.
    TooMany,
    /// `FieldValueDuplicate`: an entry of a `set`/`map` list is not unique.
    Duplicate,
    /// `FieldValueForbidden`: the value is not permitted (CEL `reason: FieldValueForbidden`...).
    Forbidden,
    /// `FieldValueTypeInvalid`: the value does not have the schema's type or format.
    TypeInvalid,
}

impl FieldErrorKind {
    /// The `StatusCause.reason` string of this kind.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Invalid => "FieldValueInvalid",
            Self::Required => "FieldValueRequired",
            Self::NotSupported => "FieldValueNotSupported",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// One validation failure of one field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// What kind of failure this is.
    pub kind: FieldErrorKind,
    /// The field path as the API server prints it: `spec.owners[0].kind`, `metadata.name`,
    /// `<nil>` for failures not tied to a field.
    pub field: String,
    /// The text after `"<field>: "`, e.g. `Required value` or
    /// `Unsupported value: "Foo": supported values: "Erase", "Retain"`.
    pub message: String,
}

/// The field path the API server prints for errors without a field (`field.Path` nil).
pub(crate) const NIL_FIELD: &str = "<nil>";

impl FieldError {
    /// The `StatusCause.reason` of this error, e.g. `FieldValueInvalid`.
    pub fn reason(&self) -> &'static str {
        self.kind.reason()
    }

    fn new(kind: FieldErrorKind, field: &str, message: String) -> Self {
        Self {
            kind,
            field: field.to_owned(),
            message,
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub(crate) fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self::new(
            FieldErrorKind::Invalid,
            field,
            with_detail(format!("Invalid value: {}", go_value(value)), detail),
        )
    }

    /// `Invalid value: <value>: <detail>` with reason `FieldValueTypeInvalid`.
    pub(crate) fn type_invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self::new(
            FieldErrorKind::TypeInvalid,
            field,
            with_detail(format!("Invalid value: {}", go_value(value)), detail),
        )
    }

    /// `Required value[: <detail>]`.
    pub(crate) fn required(field: &str, detail: &str) -> Self {
        Self::new(
            FieldErrorKind::Required,
            field,
            with_detail("Required value".to_owned(), detail),
        )
    }

    /// `Forbidden[: <detail>]`.
    pub(crate) fn forbidden(field: &str, detail: &str) -> Self {
        Self::new(
            FieldErrorKind::Forbidden,
            field,
            with_detail("Forbidden".to_owned(), detail),
        )
    }

    /// `Duplicate value: <value>`.
    pub(crate) fn duplicate(field: &str, value: &Value) -> Self {
        Self::new(
            FieldErrorKind::Duplicate,
            field,
            format!("Duplicate value: {}", go_value(value)),
        )
    }

    /// `Unsupported value: <value>: supported values: "a", "b"`.
    pub(crate) fn not_supported(field: &str, value: &Value, supported: &[String]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            with_detail(format!("Unsupported value: {}", go_value(value)), &detail),
        )
    }

    /// `Too long: may not be more than <max> bytes` (the value itself is omitted).
    pub(crate) fn too_long(field: &str, max: u64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::new(
            FieldErrorKind::TooLong,
            field,
            format!("Too long: may not be more than {max} {unit}"),
        )
    }

    /// `Too many: <actual>: must have at most <max> items`.
    pub(crate) fn too_many(field: &str, actual: u64, max: u64) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        Self::new(
            FieldErrorKind::TooMany,
            field,
            format!("Too many: {actual}: must have at most {max} {unit}"),
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn with_detail(mut head: String, detail: &str) -> String {
    if !detail.is_empty() {
        head.push_str(": ");
        head.push_str(detail);
    }
    head
}

/// A JSON value printed as `field.Error` prints a bad value: strings quoted like Go's `%q`,
/// numbers and booleans like `%v`, `null` and composite values as JSON.
pub(crate) fn go_value(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Number(n) => go_number(n),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_owned(),
        Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}

pub(crate) fn go_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        n.to_string()
    } else {
        go_float(n.as_f64().unwrap_or_default())
    }
}

/// Go's `%v` for a `float64` (`strconv.FormatFloat(f, 'g', -1, 64)`): the shortest digits,
/// in exponent form (`1e+06`, `1.5e-07`) when the decimal exponent is below -4 or at least 6.
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 {
        return "0".to_owned();
    }
    if !f.is_finite() {
        return if f.is_nan() {
            "NaN".to_owned()
        } else if f > 0.0 {
            "+Inf".to_owned()
        } else {
            "-Inf".to_owned()
        };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits: "-1.5e-7", "1e21".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        // Plain decimal notation, shortest digits.
        format!("{f}")
    }
}

/// Go's `strconv.Quote`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
