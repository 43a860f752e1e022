//! Reading the header of an age file (format v1, <https://c2sp.org/age>) from its first
//! bytes, without any key: what erasure uses to check, with a ranged GET of a few KiB per
//! object, that a backup is encrypted to exactly one X25519 recipient.
//!
//! ```text
//! age-encryption.org/v1
//! -> X25519 <ephemeral share, base64 without padding>
//! <wrapped file key, base64, lines of 64 columns, the last one shorter>
//! --- <header MAC, base64>
//! <payload nonce and payload: binary>
//! ```
//!
//! Files written by the Rust age implementation (Landlord's) also carry one "grease"
//! stanza with a random `...-grease` type and body ([`Stanza::is_grease`]); the Go `age`
//! CLI writes none. [`Header::single_x25519`] is the erasure check: exactly one X25519
//! stanza, and nothing else but grease.
//!
//! The parser is strict where the format is (canonical unpadded base64, body lines of
//! exactly 64 columns but the last, no empty stanza type) and reads nothing past the
//! MAC line, so the payload never matters. It checks structure only: the MAC can only be
//! verified with the file key, that is with the identity.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use thiserror::Error;

/// The first line of every age v1 file.
pub const VERSION_LINE: &str = "age-encryption.org/v1";
/// The first line of an ASCII-armored age file (`age --armor`).
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
/// Stanza type of the native X25519 recipient.
pub const X25519_TAG: &str = "X25519";
/// How the types of grease stanzas end ([`Stanza::is_grease`]).
pub const GREASE_SUFFIX: &str = "-grease";
/// How many bytes of an object are enough for the header of a file Landlord writes (one
/// X25519 stanza: under 200 bytes); also a sensible ranged GET for other files.
pub const HEADER_READ_BYTES: usize = 4096;
/// Length of a stanza body line, except the last.
const COLUMNS: usize = 64;
/// Length of an X25519 ephemeral share.
const SHARE_BYTES: usize = 32;
/// Length of the header MAC (HMAC-SHA-256).
const MAC_BYTES: usize = 32;

/// One recipient stanza of an age header.
#[derive(Clone, PartialEq, Eq)]
pub enum Stanza {
    /// The native X25519 recipient type: one argument, the sender's ephemeral share.
    X25519 {
        /// The ephemeral X25519 public key of this file's sender (not secret: it is
        /// different in every file and says nothing about the recipient).
        ephemeral_share: [u8; SHARE_BYTES],
        /// Length in bytes of the wrapped file key (32 for a well-formed stanza).
        body_len: usize,
    },
    /// Any other type (`scrypt`, `ssh-ed25519`, a plugin's...).
    Other {
        /// The stanza type, e.g. `scrypt`.
        kind: String,
        /// Its arguments.
        args: Vec<String>,
        /// Length in bytes of its body.
        body_len: usize,
    },
}

impl Stanza {
    /// Whether this is a grease stanza: one whose type ends in `-grease`, which the Rust
    /// age implementation (the `age` crate, `rage`) adds to every file it writes to keep
    /// parsers honest about unknown stanzas. Its body is random, it wraps nothing, and no
    /// age identity handles its type.
    pub fn is_grease(&self) -> bool {
        matches!(self, Stanza::Other { kind, .. } if kind.ends_with(GREASE_SUFFIX))
    }

    /// The stanza type as it appears in the file.
    pub fn kind(&self) -> &str {
        match self {
            Stanza::X25519 { .. } => X25519_TAG,
            Stanza::Other { kind, .. } => kind,
        }
    }
}

impl fmt::Debug for Stanza {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stanza::X25519 {
                ephemeral_share,
                body_len,
            } => f
                .debug_struct("X25519")
                .field("ephemeral_share", &STANDARD_NO_PAD.encode(ephemeral_share))
                .field("body_len", body_len)
                .finish(),
            Stanza::Other {
                kind,
                args,
                body_len,
            } => f
                .debug_struct("Other")
                .field("kind", kind)
                .field("args", args)
                .field("body_len", body_len)
                .finish(),
        }
    }
}

/// The parsed header of an age v1 file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The recipient stanzas, in file order.
    pub stanzas: Vec<Stanza>,
    /// The header MAC (not verified: that needs the file key).
    pub mac: [u8; MAC_BYTES],
    /// Length of the header in bytes, up to and including the MAC line's newline: the
    /// payload (its 16-byte nonce first) starts here.
    pub len: usize,
}

impl Header {
    /// The ephemeral share of the X25519 stanza, when the file has exactly one X25519
    /// stanza (with a 32-byte body) and every other stanza is grease ([`Stanza::is_grease`]):
    /// the file can be opened by one X25519 identity and nothing else.
    pub fn single_x25519(&self) -> Option<&[u8; SHARE_BYTES]> {
        let mut found = None;
        for stanza in &self.stanzas {
            match stanza {
                Stanza::X25519 {
                    ephemeral_share,
                    body_len: 32,
                } if found.is_none() => found = Some(ephemeral_share),
                other if other.is_grease() => {}
                _ => return None,
            }
        }
        found
    }

    /// How many X25519 stanzas the header has.
    pub fn x25519_count(&self) -> usize {
        self.stanzas
            .iter()
            .filter(|s| matches!(s, Stanza::X25519 { .. }))
            .count()
    }
}

/// Why bytes are not (the start of) an age v1 header.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum HeaderError {
    /// The bytes end before the header does: read more of the file (or it is truncated).
    #[error("the age header is longer than the {0} bytes read")]
    Truncated(usize),
    /// Not an age v1 file at all.
    #[error("not an age v1 file: {0}")]
    NotAge(&'static str),
    /// An age file whose header breaks the format.
    #[error("malformed age header at line {line}: {detail}")]
    Malformed {
        /// 1-based line number in the header.
        line: usize,
        /// What is wrong.
        detail: &'static str,
    },
}

/// Parses the header of an age v1 file from its first bytes (at least the whole header,
/// e.g. [`HEADER_READ_BYTES`]; anything after the header is ignored).
pub fn parse_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    let mut lines = Lines {
        bytes,
        pos: 0,
        n: 0,
    };
    let first = lines.next_line()?;
    if first != VERSION_LINE.as_bytes() {
        return Err(if first.starts_with(ARMOR_BEGIN.as_bytes()) {
            HeaderError::NotAge("ASCII-armored files are not supported")
        } else if first.starts_with(b"age-encryption.org/") {
            HeaderError::NotAge("unsupported age format version")
        } else {
            HeaderError::NotAge("the first line is not age-encryption.org/v1")
        });
    }
    let mut stanzas = Vec::new();
    loop {
        let line = lines.next_line()?;
        let n = lines.n;
        if let Some(mac) = line.strip_prefix(b"--- ") {
            let mac: [u8; MAC_BYTES] =
                decode(mac)
                    .and_then(|m| m.try_into().ok())
                    .ok_or(HeaderError::Malformed {
                        line: n,
                        detail: "the MAC is not 32 bytes of canonical base64",
                    })?;
            if stanzas.is_empty() {
                return Err(HeaderError::Malformed {
                    line: n,
                    detail: "the header has no recipient stanza",
                });
            }
            return Ok(Header {
                stanzas,
                mac,
                len: lines.pos,
            });
        }
        let Some(rest) = line.strip_prefix(b"-> ") else {
            return Err(HeaderError::Malformed {
                line: n,
                detail: "expected a stanza (\"-> \") or the MAC line (\"--- \")",
            });
        };
        let args: Vec<&[u8]> = rest.split(|b| *b == b' ').collect();
        if args.iter().any(|a| a.is_empty() || !a.iter().all(is_vchar)) {
            return Err(HeaderError::Malformed {
                line: n,
                detail: "a stanza argument is empty or not printable ASCII",
            });
        }
        let body_len = read_body(&mut lines)?;
        let args: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        stanzas.push(stanza(args, body_len, n)?);
    }
}

fn stanza(mut args: Vec<String>, body_len: usize, line: usize) -> Result<Stanza, HeaderError> {
    if args[0] != X25519_TAG {
        let kind = args.remove(0);
        return Ok(Stanza::Other {
            kind,
            args,
            body_len,
        });
    }
    let share = match args.as_slice() {
        [_, share] => decode(share.as_bytes()),
        _ => None,
    };
    let ephemeral_share = share
        .and_then(|s| <[u8; SHARE_BYTES]>::try_from(s).ok())
        .ok_or(HeaderError::Malformed {
            line,
            detail: "an X25519 stanza takes one argument, a 32-byte share in base64",
        })?;
    Ok(Stanza::X25519 {
        ephemeral_share,
        body_len,
    })
}

/// Reads a stanza body (lines of 64 columns, ended by a shorter one) and returns its
/// decoded length.
fn read_body(lines: &mut Lines<'_>) -> Result<usize, HeaderError> {
    let mut len = 0;
    loop {
        let line = lines.next_line()?;
        let decoded = decode(line).ok_or(HeaderError::Malformed {
            line: lines.n,
            detail: "a stanza body line is not canonical base64",
        })?;
        len += decoded.len();
        if line.len() > COLUMNS {
            return Err(HeaderError::Malformed {
                line: lines.n,
                detail: "a stanza body line is longer than 64 columns",
            });
        }
        if line.len() < COLUMNS {
            return Ok(len);
        }
    }
}

fn decode(b64: &[u8]) -> Option<Vec<u8>> {
    let decoded = STANDARD_NO_PAD.decode(b64).ok()?;
    // Only the canonical encoding: no trailing bits set.
    (STANDARD_NO_PAD.encode(&decoded).as_bytes() == b64).then_some(decoded)
}

fn is_vchar(b: &u8) -> bool {
    (0x21..=0x7e).contains(b)
}

/// The newline-terminated lines of the header.
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    n: usize,
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Result<&'a [u8], HeaderError> {
        let rest = &self.bytes[self.pos..];
        let end = rest
            .iter()
            .position(|b| *b == b'\n')
            .ok_or(HeaderError::Truncated(self.bytes.len()))?;
        self.pos += end + 1;
        self.n += 1;
        Ok(&rest[..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARE: &str = "TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc";
    const BODY: &str = "EmECAEcKN+n/Vs9SbWiV+Hu0r+E8R77DdWYyd83nw7U";
    const MAC: &str = "Vn+54jqiiUCE+WZcEVY3f1sqHjlu/z1LCQ/T7Xm7qI0";

    fn x25519_file() -> String {
        format!("{VERSION_LINE}\n-> X25519 {SHARE}\n{BODY}\n--- {MAC}\n\u{1}\u{2}payload")
    }

    #[test]
    fn one_x25519_stanza() {
        let file = x25519_file();
        let header = parse_header(file.as_bytes()).expect("parses");
        assert_eq!(header.stanzas.len(), 1);
        let share = header.single_x25519().expect("one X25519 stanza");
        assert_eq!(STANDARD_NO_PAD.encode(share), SHARE);
        assert_eq!(header.stanzas[0].kind(), "X25519");
        assert_eq!(header.len, file.find('\u{1}').expect("payload"));
        assert_eq!(STANDARD_NO_PAD.encode(header.mac), MAC);
    }

    #[test]
    fn several_and_other_stanzas_are_listed() {
        let file = format!(
            "{VERSION_LINE}\n-> X25519 {SHARE}\n{BODY}\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 18\n{BODY}\n-> X25519 {SHARE}\n{BODY}\n--- {MAC}\n"
        );
        let header = parse_header(file.as_bytes()).expect("parses");
        let kinds: Vec<&str> = header.stanzas.iter().map(Stanza::kind).collect();
        assert_eq!(kinds, ["X25519", "scrypt", "X25519"]);
        assert_eq!(header.single_x25519(), None);
        assert_eq!(
            header.stanzas[1],
            Stanza::Other {
                kind: "scrypt".into(),
                args: vec!["c2FsdHNhbHRzYWx0c2FsdA".into(), "18".into()],
                body_len: 32,
            }
        );
        let grease = format!(
            "{VERSION_LINE}\n-> X25519 {SHARE}\n{BODY}\n-> )j{{-grease 4d5a\n{BODY}\n--- {MAC}\n"
        );
        let header = parse_header(grease.as_bytes()).expect("parses");
        assert!(header.stanzas[1].is_grease());
        assert!(header.single_x25519().is_some(), "grease does not count");
        assert_eq!(header.x25519_count(), 1);
        let two = format!(
            "{VERSION_LINE}\n-> X25519 {SHARE}\n{BODY}\n-> X25519 {SHARE}\n{BODY}\n--- {MAC}\n"
        );
        let header = parse_header(two.as_bytes()).expect("parses");
        assert_eq!(header.x25519_count(), 2);
        assert_eq!(header.single_x25519(), None);
        let only_scrypt =
            format!("{VERSION_LINE}\n-> scrypt c2FsdHNhbHRzYWx0c2FsdA 18\n{BODY}\n--- {MAC}\n");
        let header = parse_header(only_scrypt.as_bytes()).expect("parses");
        assert_eq!(header.single_x25519(), None);
    }

    #[test]
    fn multi_line_bodies() {
        let long = STANDARD_NO_PAD.encode([7u8; 100]);
        let wrapped: Vec<&str> = long
            .as_bytes()
            .chunks(COLUMNS)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        assert_eq!(wrapped.len(), 3);
        let body = wrapped.join("\n");
        let file = format!(
            "{VERSION_LINE}\n-> ssh-rsa abc\n{body}\n-> X25519 {SHARE}\n{BODY}\n--- {MAC}\n"
        );
        // Lines longer than 64 columns are not age.
        let unwrapped = format!("{VERSION_LINE}\n-> ssh-rsa abc\n{long}\n--- {MAC}\n");
        assert!(matches!(
            parse_header(unwrapped.as_bytes()),
            Err(HeaderError::Malformed { line: 3, .. })
        ));
        let header = parse_header(file.as_bytes()).expect("parses");
        assert_eq!(
            header.stanzas[0],
            Stanza::Other {
                kind: "ssh-rsa".into(),
                args: vec!["abc".into()],
                body_len: 100
            }
        );
        // A body of exactly 48 bytes is one full line and an empty one.
        let full = STANDARD_NO_PAD.encode([1u8; 48]);
        let file = format!("{VERSION_LINE}\n-> X25519 {SHARE}\n{full}\n\n--- {MAC}\n");
        let header = parse_header(file.as_bytes()).expect("parses");
        assert_eq!(
            header.single_x25519(),
            None,
            "a 48-byte body is not 32 bytes"
        );
    }

    #[test]
    fn truncated_input_asks_for_more() {
        let file = x25519_file();
        let mac_line = file.find("---").expect("mac");
        for cut in [0, 10, 30, mac_line, mac_line + 10] {
            assert_eq!(
                parse_header(&file.as_bytes()[..cut]),
                Err(HeaderError::Truncated(cut)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn not_age_or_malformed() {
        let cases: Vec<(String, &str)> = vec![
            ("PGDMP\u{1}\u{2}\n".into(), "not an age v1 file"),
            (
                "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n".into(),
                "ASCII-armored",
            ),
            ("age-encryption.org/v2\n".into(), "unsupported age format"),
            (
                format!("{VERSION_LINE}\n--- {MAC}\n"),
                "no recipient stanza",
            ),
            (
                format!("{VERSION_LINE}\n-> X25519\n{BODY}\n--- {MAC}\n"),
                "one argument",
            ),
            (
                format!("{VERSION_LINE}\n-> X25519 {SHARE} extra\n{BODY}\n--- {MAC}\n"),
                "one argument",
            ),
            (
                format!("{VERSION_LINE}\n-> X25519 {SHARE}=\n{BODY}\n--- {MAC}\n"),
                "one argument",
            ),
            (
                format!("{VERSION_LINE}\n->  X25519 {SHARE}\n{BODY}\n--- {MAC}\n"),
                "empty",
            ),
            (
                format!("{VERSION_LINE}\n-> X25519 {SHARE}\n{BODY}=\n--- {MAC}\n"),
                "canonical base64",
            ),
            (
                format!("{VERSION_LINE}\n-> X25519 {SHARE}\n{BODY}\n--- short\n"),
                "MAC",
            ),
            (
                format!("{VERSION_LINE}\nX25519 {SHARE}\n{BODY}\n--- {MAC}\n"),
                "expected a stanza",
            ),
            (
                // Non-canonical: the last character carries set padding bits.
                format!(
                    "{VERSION_LINE}\n-> X25519 {}D\n{BODY}\n--- {MAC}\n",
                    &SHARE[..42]
                ),
                "one argument",
            ),
        ];
        for (file, expected) in cases {
            let err = parse_header(file.as_bytes()).expect_err(&file);
            assert!(err.to_string().contains(expected), "{file:?}: {err}");
        }
    }
}
