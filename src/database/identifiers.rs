//! Tenant names to PostgreSQL identifiers, and quoting for SQL text.
//!
//! Pure functions: no I/O. Every identifier Landlord puts into SQL goes through
//! [`quote_ident`], every string literal through [`quote_literal`], whatever its origin.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// PostgreSQL's identifier limit (`NAMEDATALEN - 1`), in bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// Prefix of every identifier derived directly from a tenant name.
const PREFIX: &str = "tenant_";
/// Prefix of identifiers that carry a hash. The plain form `tenant_<label>` never has a
/// second `_` at this position, because a DNS label starts with a letter or digit, so the
/// two forms can never produce the same identifier.
const HASHED_PREFIX: &str = "tenant__";
/// Hex digits of SHA-256 kept in hashed identifiers (64 bits).
const HASH_HEX_DIGITS: usize = 16;
/// Longest tenant name that maps to the plain form (`tenant_` + 56 = 63 bytes).
const MAX_PLAIN_NAME_LEN: usize = MAX_IDENTIFIER_BYTES - PREFIX.len();

/// The PostgreSQL names of one tenant's database and role. Both are at most 63 bytes,
/// non-empty and free of NUL, so PostgreSQL never truncates them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantIdentifiers {
    tenant: String,
    database: String,
    role: String,
}

/// A database or role name PostgreSQL cannot store as given.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{value:?} is not a usable PostgreSQL identifier: {why}")]
pub struct InvalidIdentifier {
    /// The rejected name.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl TenantIdentifiers {
    /// The identifiers of the tenant called `name`: database and role both
    /// [`tenant_identifier`]`(name)`.
    pub fn for_tenant(name: &str) -> Self {
        let identifier = tenant_identifier(name);
        TenantIdentifiers {
            tenant: name.to_owned(),
            database: identifier.clone(),
            role: identifier,
        }
    }

    /// Explicit names, e.g. a restore's target database. Any characters are allowed (they
    /// are always quoted), but not an empty name, a NUL, or more than 63 bytes.
    pub fn new(tenant: &str, database: &str, role: &str) -> Result<Self, InvalidIdentifier> {
        for value in [database, role] {
            let why = if value.is_empty() {
                Some("it is empty")
            } else if value.contains('\0') {
                Some("it contains a NUL character")
            } else if value.len() > MAX_IDENTIFIER_BYTES {
                Some("it is longer than 63 bytes")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(InvalidIdentifier {
                    value: value.to_owned(),
                    why,
                });
            }
        }
        Ok(TenantIdentifiers {
            tenant: tenant.to_owned(),
            database: database.to_owned(),
            role: role.to_owned(),
        })
    }

    /// The Tenant's name, as given.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Name of the tenant's database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Name of the role that owns the database and that the tenant logs in as.
    pub fn role(&self) -> &str {
        &self.role
    }
}

/// Maps a tenant name to the identifier used for both its database and its role.
///
/// A DNS-1123 label of at most 56 characters (every valid Tenant name) becomes
/// `tenant_<name>` with `-` replaced by `_`; since labels contain no `_`, that is
/// one-to-one. Anything else — longer names, upper case, quotes, semicolons, unicode —
/// becomes `tenant__<readable part>_<16 hex digits of SHA-256 of the full name>`: at most
/// 63 bytes of `[a-z0-9_]`, distinct from every plain form (second `_` at position 7) and
/// from other hashed forms unless 64-bit hash prefixes collide.
pub fn tenant_identifier(name: &str) -> String {
    if is_plain_label(name) {
        return format!("{PREFIX}{}", name.replace('-', "_"));
    }
    let digest = Sha256::digest(name.as_bytes());
    let mut hash = String::with_capacity(HASH_HEX_DIGITS);
    for byte in digest.iter().take(HASH_HEX_DIGITS / 2) {
        // Writing to a String cannot fail.
        let _ = write!(hash, "{byte:02x}");
    }
    let room = MAX_IDENTIFIER_BYTES - HASHED_PREFIX.len() - 1 - HASH_HEX_DIGITS;
    let mut readable = String::with_capacity(room);
    for c in name.chars() {
        if readable.len() == room {
            break;
        }
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            readable.push(c);
        } else if !readable.is_empty() && !readable.ends_with('_') {
            readable.push('_');
        }
    }
    let readable = readable.trim_end_matches('_');
    if readable.is_empty() {
        format!("{HASHED_PREFIX}{hash}")
    } else {
        format!("{HASHED_PREFIX}{readable}_{hash}")
    }
}

/// Whether `name` is a DNS-1123 label short enough for the plain form.
fn is_plain_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            bytes.len() <= MAX_PLAIN_NAME_LEN
                && alnum(first)
                && alnum(last)
                && bytes.iter().all(|b| alnum(b) || *b == b'-')
        }
        _ => false,
    }
}

/// Quotes an identifier for SQL text: wrapped in double quotes, embedded double quotes
/// doubled (PostgreSQL's `quote_ident`, but always quoting).
pub fn quote_ident(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Quotes a string literal for SQL text: wrapped in single quotes, embedded single quotes
/// doubled, and — when the value holds a backslash — written as an escape string
/// `E'...'` with backslashes doubled, so the result means the same whatever
/// `standard_conforming_strings` is set to (PostgreSQL's `quote_literal`).
pub fn quote_literal(value: &str) -> String {
    let escaped = value.replace('\'', "''");
    if escaped.contains('\\') {
        format!("E'{}'", escaped.replace('\\', "\\\\"))
    } else {
        format!("'{escaped}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_valid(identifier: &str) {
        assert!(
            identifier.len() <= MAX_IDENTIFIER_BYTES,
            "{identifier} is longer than 63 bytes"
        );
        assert!(identifier.starts_with(PREFIX), "{identifier}");
        assert!(
            identifier
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{identifier} has characters outside [a-z0-9_]"
        );
    }

    #[test]
    fn valid_tenant_names_keep_their_readable_form() {
        assert_eq!(tenant_identifier("acme"), "tenant_acme");
        assert_eq!(tenant_identifier("acme-corp-2"), "tenant_acme_corp_2");
        let longest = "a".repeat(56);
        assert_eq!(tenant_identifier(&longest), format!("tenant_{longest}"));
        assert_eq!(tenant_identifier(&longest).len(), 63);
        let ids = TenantIdentifiers::for_tenant("acme");
        assert_eq!(ids.database(), "tenant_acme");
        assert_eq!(ids.role(), "tenant_acme");
        assert_eq!(ids.tenant(), "acme");
    }

    #[test]
    fn explicit_identifiers_must_fit_postgresql() {
        let hostile = "\"; DROP DATABASE x; --";
        let ids = TenantIdentifiers::new("t", hostile, hostile).unwrap();
        assert_eq!(ids.database(), hostile);
        let too_long = "é".repeat(32); // 64 bytes
        for bad in ["", "a\0b", too_long.as_str()] {
            assert!(TenantIdentifiers::new("t", bad, "r").is_err(), "{bad:?}");
            assert!(TenantIdentifiers::new("t", "d", bad).is_err(), "{bad:?}");
        }
        assert!(TenantIdentifiers::new("t", &"a".repeat(63), "r").is_ok());
    }

    #[test]
    fn dash_and_underscore_do_not_collide() {
        let dash = tenant_identifier("a-b");
        let underscore = tenant_identifier("a_b");
        assert_eq!(dash, "tenant_a_b");
        assert_ne!(dash, underscore);
        assert_valid(&underscore);
        assert!(underscore.starts_with("tenant__a_b_"), "{underscore}");
    }

    #[test]
    fn a_hashed_form_never_equals_a_plain_form() {
        // A label whose plain form looks like a hashed form of another name.
        let tricky_label = format!("-x_{}", "0".repeat(16));
        let hashed = tenant_identifier(&tricky_label);
        assert!(hashed.starts_with(HASHED_PREFIX));
        for label in ["x-0000000000000000", "x", "tenant", "0"] {
            assert!(!tenant_identifier(label).starts_with(HASHED_PREFIX));
        }
    }

    #[test]
    fn long_names_are_truncated_with_a_hash_and_stay_unique() {
        let base = "a".repeat(200);
        let other = format!("{}b", "a".repeat(199));
        let first = tenant_identifier(&base);
        let second = tenant_identifier(&other);
        assert_valid(&first);
        assert_valid(&second);
        assert_ne!(first, second);
        // 57 characters: one too long for the plain form.
        let just_too_long = "b".repeat(57);
        let id = tenant_identifier(&just_too_long);
        assert_valid(&id);
        assert!(id.starts_with(HASHED_PREFIX));
        assert_ne!(id, tenant_identifier(&"b".repeat(56)));
    }

    #[test]
    fn hostile_names_become_plain_identifiers() {
        let hostile = [
            "\"; DROP DATABASE x; --",
            "'; DROP ROLE postgres; --",
            "a\"b",
            "a;b",
            "ACME",
            "Ünïcødé-名前",
            "名前",
            "",
            "-",
            "a\\b",
            "a\0b",
            "tenant_acme",
        ];
        let mut seen = std::collections::BTreeSet::new();
        for name in hostile {
            let id = tenant_identifier(name);
            assert_valid(&id);
            assert!(seen.insert(id.clone()), "{name:?} collides: {id}");
        }
        assert!(seen.insert(tenant_identifier("acme")));
        assert!(
            tenant_identifier("\"; DROP DATABASE x; --").starts_with("tenant__drop_database_x_")
        );
    }

    #[test]
    fn identifiers_are_deterministic() {
        assert_eq!(
            tenant_identifier("Hello World"),
            tenant_identifier("Hello World")
        );
        assert_ne!(
            tenant_identifier("Hello World"),
            tenant_identifier("hello world")
        );
    }

    #[test]
    fn quote_ident_doubles_double_quotes() {
        assert_eq!(quote_ident("tenant_acme"), "\"tenant_acme\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(
            quote_ident("\"; DROP DATABASE x; --"),
            "\"\"\"; DROP DATABASE x; --\""
        );
        assert_eq!(quote_ident(""), "\"\"");
    }

    #[test]
    fn quote_literal_doubles_quotes_and_escapes_backslashes() {
        assert_eq!(quote_literal("plain"), "'plain'");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("'; DROP ROLE x; --"), "'''; DROP ROLE x; --'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_literal("\\'"), "E'\\\\'''");
        assert_eq!(quote_literal("名前"), "'名前'");
    }
}
