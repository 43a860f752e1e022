//! RFC 8785 JSON Canonicalization Scheme (JCS): the one byte string a JSON value signs as.
//!
//! - object members sorted by their names' UTF-16 code units (not by UTF-8 bytes or code
//!   points: U+1F600 sorts before U+FB33);
//! - strings escaped as ECMAScript's `JSON.stringify` does: `"` and `\` and the control
//!   characters below U+0020 only (`\b \t \n \f \r`, the others as lower-case `\u00xx`),
//!   everything else as its UTF-8;
//! - no whitespace;
//! - numbers as ECMAScript's `Number.prototype.toString`.
//!
//! Receipts hold integers only (sizes, counts), so numbers are limited to the integers
//! that an IEEE 754 double holds exactly and that every JCS implementation agrees on:
//! `-(2^53 - 1) ..= 2^53 - 1` (ECMAScript's safe integers, the domain Python's `rfc8785`
//! accepts). Such an integer prints as its decimal digits, as `Number.prototype.toString`
//! prints it; a number with a fraction, or an integer outside that range, is refused with
//! an [`Error`] rather than printed in a way another implementation might not reproduce.

use serde_json::Value;

/// The largest integer JCS output here holds: 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A value that has no canonical form here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{path}: {number} is not an integer; receipts hold integers only")]
    NotAnInteger { path: String, number: String },
    #[error("{path}: {number} is outside -(2^53-1)..=2^53-1, which JCS cannot represent exactly")]
    OutOfRange { path: String, number: String },
}

/// The RFC 8785 canonical form of `value`, as UTF-8 bytes.
pub fn canonicalize(value: &Value) -> Result<Vec<u8>, Error> {
    let mut out = String::new();
    let mut path = String::from("$");
    write_value(&mut out, value, &mut path)?;
    Ok(out.into_bytes())
}

fn write_value(out: &mut String, value: &Value, path: &mut String) -> Result<(), Error> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number, path)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                write_value(out, item, path)?;
                path.truncate(len);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, (name, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, name);
                out.push(':');
                let len = path.len();
                path.push('.');
                path.push_str(name);
                write_value(out, member, path)?;
                path.truncate(len);
            }
            out.push('}');
        }
    }
    Ok(())
}

fn write_number(out: &mut String, number: &serde_json::Number, path: &str) -> Result<(), Error> {
    let out_of_range = || Error::OutOfRange {
        path: path.to_owned(),
        number: number.to_string(),
    };
    if let Some(n) = number.as_u64() {
        if n > MAX_SAFE_INTEGER {
            return Err(out_of_range());
        }
        out.push_str(&n.to_string());
    } else if let Some(n) = number.as_i64() {
        if n.unsigned_abs() > MAX_SAFE_INTEGER {
            return Err(out_of_range());
        }
        out.push_str(&n.to_string());
    } else {
        // A double: printed only when it is an integer in range, which
        // Number.prototype.toString prints as its plain decimal digits (and -0 as "0").
        let f = number.as_f64().unwrap_or(f64::NAN);
        if !f.is_finite() || f.fract() != 0.0 {
            return Err(Error::NotAnInteger {
                path: path.to_owned(),
                number: number.to_string(),
            });
        }
        if f.abs() > MAX_SAFE_INTEGER as f64 {
            return Err(out_of_range());
        }
        // Exact: |f| < 2^53 is an integer an i64 holds.
        let n = f as i64;
        out.push_str(&n.to_string());
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn jcs(text: &str) -> String {
        let value: Value = serde_json::from_str(text).expect("JSON");
        String::from_utf8(canonicalize(&value).expect("canonical")).expect("UTF-8")
    }

    /// RFC 8785 section 3.2.2, without the `numbers` member (fractions are refused here,
    /// see `fractions_and_large_integers_are_refused`).
    #[test]
    fn rfc_8785_example_string_and_literals() {
        let input = r#"{
            "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
            "literals": [null, true, false]
        }"#;
        assert_eq!(
            jcs(input),
            r#"{"literals":[null,true,false],"string":"€$\u000f\nA'B\"\\\\\"/"}"#
        );
    }

    /// RFC 8785 section 3.2.3: sorting by UTF-16 code units, and the UTF-8 of 3.2.4.
    #[test]
    fn rfc_8785_example_sorting() {
        let input = r#"{
            "\u20ac": "Euro Sign",
            "\r": "Carriage Return",
            "\ufb33": "Hebrew Letter Dalet With Dagesh",
            "1": "One",
            "\ud83d\ude00": "Emoji: Grinning Face",
            "\u0080": "Control",
            "\u00f6": "Latin Small Letter O With Diaeresis"
        }"#;
        let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
            \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
            \"\u{1f600}\":\"Emoji: Grinning Face\",\"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
        assert_eq!(jcs(input), expected);
        // Section 3.2.4 gives the same output as bytes: the first and last few.
        let bytes = canonicalize(&serde_json::from_str(input).expect("JSON")).expect("JCS");
        assert_eq!(
            &bytes[..8],
            &[0x7b, 0x22, 0x5c, 0x72, 0x22, 0x3a, 0x22, 0x43]
        );
        let tail = [0x67, 0x65, 0x73, 0x68, 0x22, 0x7d];
        assert_eq!(&bytes[bytes.len() - tail.len()..], &tail);
        // Code point order would put U+FB33 before U+1F600; UTF-16 order does not.
        let emoji = expected.find('\u{1f600}').expect("emoji");
        let dalet = expected.find('\u{fb33}').expect("dalet");
        assert!(emoji < dalet);
    }

    #[test]
    fn nested_objects_are_sorted_and_whitespace_goes() {
        assert_eq!(
            jcs(r#" { "b" : [ 1 , { "z" : 0 , "a" : -7 } ] , "a" : { } , "c" : [ ] } "#),
            r#"{"a":{},"b":[1,{"a":-7,"z":0}],"c":[]}"#
        );
    }

    #[test]
    fn control_characters_use_the_short_forms_or_lower_case_hex() {
        let value = json!("\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f}\u{2028}é/");
        assert_eq!(
            String::from_utf8(canonicalize(&value).expect("JCS")).expect("UTF-8"),
            "\"\\u0000\\u0001\\b\\t\\n\\u000b\\f\\r\\u001f\u{7f}\u{2028}é/\""
        );
    }

    /// Integers as Number.prototype.toString prints them: RFC 8785 appendix B's integer
    /// cases, and the edges of the safe range.
    #[test]
    fn integers_print_as_ecmascript_does() {
        assert_eq!(jcs("0"), "0");
        assert_eq!(jcs("-0"), "0");
        assert_eq!(jcs("1"), "1");
        assert_eq!(jcs("-1"), "-1");
        assert_eq!(jcs("9007199254740991"), "9007199254740991");
        assert_eq!(jcs("-9007199254740991"), "-9007199254740991");
        // Written as doubles that hold integers: printed as the integer.
        assert_eq!(jcs("1.0"), "1");
        assert_eq!(jcs("1E3"), "1000");
        assert_eq!(jcs("-0.0"), "0");
    }

    #[test]
    fn fractions_and_large_integers_are_refused() {
        let refused = |text: &str| {
            let value: Value = serde_json::from_str(text).expect("JSON");
            canonicalize(&value).expect_err(text)
        };
        assert!(matches!(
            refused(r#"{"numbers":[333333333.33333329, 1E30, 4.50, 2e-3]}"#),
            Error::NotAnInteger { path, .. } if path == "$.numbers[0]"
        ));
        assert!(matches!(refused("4.5"), Error::NotAnInteger { .. }));
        assert!(matches!(
            refused("9007199254740992"),
            Error::OutOfRange { .. }
        ));
        assert!(matches!(
            refused("-9007199254740992"),
            Error::OutOfRange { .. }
        ));
        assert!(matches!(
            refused("18446744073709551615"),
            Error::OutOfRange { .. }
        ));
        assert!(matches!(refused("1e30"), Error::OutOfRange { .. }));
        let message = refused(r#"{"a":{"b":[0,0.5]}}"#).to_string();
        assert!(message.contains("$.a.b[1]"), "{message}");
    }
}
