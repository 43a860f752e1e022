//! What can go wrong with a tenant key, in categories a controller can act on. No
//! variant holds key material: the fields are names, UIDs, HTTP codes and messages that
//! went through [`scrub`].

use thiserror::Error;

/// A failure of a key provider. `location` names where the key lives (e.g. `Secret
/// landlord/landlord-key-acme-1a2b3c4d`), never what it holds.
#[derive(Debug, Error)]
pub enum KeyError {
    /// The Tenant cannot have a key: no UID yet (not stored by the API server) or a name
    /// that is not a DNS-1123 label.
    #[error("Tenant {tenant:?} cannot have a key: {detail}")]
    InvalidTenant {
        /// The Tenant's name.
        tenant: String,
        /// What is wrong.
        detail: String,
    },
    /// The tenant has no key (not created yet, or destroyed).
    #[error("Tenant {tenant} has no key: {location} does not exist")]
    Missing {
        /// The Tenant's name.
        tenant: String,
        /// Where the key would be.
        location: String,
    },
    /// The operator is not allowed to read, create or delete the key (HTTP 401/403).
    #[error("the operator may not {verb} {location}: {detail}")]
    Forbidden {
        /// `get`, `create` or `delete`.
        verb: &'static str,
        /// Where the key is.
        location: String,
        /// The API server's message.
        detail: String,
    },
    /// The key exists but cannot be used: a missing or unparsable identity or recipient,
    /// or an identity, recipient and key id that do not belong together.
    #[error("{location} is not a valid key for Tenant {tenant}: {detail}")]
    Invalid {
        /// The Tenant's name.
        tenant: String,
        /// Where the key is.
        location: String,
        /// What is wrong (never the value).
        detail: String,
    },
    /// Something of the key's name exists that was not created for this Tenant: it
    /// records another Tenant's UID, or none. Landlord neither uses, overwrites nor
    /// deletes it.
    #[error(
        "{location} {}, not the UID {uid} of Tenant {tenant}: Landlord neither uses, overwrites nor deletes it",
        recorded.as_ref().map_or_else(|| "records no Tenant UID".to_owned(), |r| format!("records the Tenant UID {r}"))
    )]
    Conflict {
        /// The Tenant's name.
        tenant: String,
        /// The Tenant's UID.
        uid: String,
        /// Where the key is.
        location: String,
        /// The UID it records, if any.
        recorded: Option<String>,
    },
    /// The key is being deleted (it has a deletion timestamp): it is neither used nor
    /// counted as gone.
    #[error("{location} is being deleted (finalizers: {finalizers:?})")]
    BeingDeleted {
        /// Where the key is.
        location: String,
        /// What still holds it.
        finalizers: Vec<String>,
    },
    /// Any other failure of the API: unreachable, timeouts, 5xx, unexpected answers.
    #[error("the Kubernetes API failed to {verb} {location}{}: {detail}", code.map(|c| format!(" (HTTP {c})")).unwrap_or_default())]
    Api {
        /// `get`, `create` or `delete`.
        verb: &'static str,
        /// Where the key is.
        location: String,
        /// The HTTP status code, when there was an answer.
        code: Option<u16>,
        /// What failed.
        detail: String,
    },
}

impl KeyError {
    /// CamelCase reason for conditions and events.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyError::InvalidTenant { .. } => "InvalidTenant",
            KeyError::Missing { .. } => "KeyMissing",
            KeyError::Forbidden { .. } => "KeyForbidden",
            KeyError::Invalid { .. } => "KeyInvalid",
            KeyError::Conflict { .. } => "KeyConflict",
            KeyError::BeingDeleted { .. } => "KeyBeingDeleted",
            KeyError::Api { .. } => "KeyAPIError",
        }
    }

    /// snake_case category for metric labels and back-off decisions.
    pub fn category(&self) -> &'static str {
        match self {
            KeyError::InvalidTenant { .. } => "key_tenant_invalid",
            KeyError::Missing { .. } => "key_missing",
            KeyError::Forbidden { .. } => "key_forbidden",
            KeyError::Invalid { .. } => "key_invalid",
            KeyError::Conflict { .. } => "key_conflict",
            KeyError::BeingDeleted { .. } => "key_being_deleted",
            KeyError::Api { .. } => "key_api_error",
        }
    }

    /// Classifies an error of the Kubernetes client for `verb` on `location`. Every
    /// string in `secrets` is redacted from the message, and so is anything that looks
    /// like an age identity (see [`scrub`]).
    pub(crate) fn from_kube(
        err: &kube::Error,
        verb: &'static str,
        location: &str,
        secrets: &[&str],
    ) -> KeyError {
        let location = location.to_owned();
        match err {
            kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
                KeyError::Forbidden {
                    verb,
                    location,
                    detail: scrub(&status.message, secrets),
                }
            }
            kube::Error::Api(status) => KeyError::Api {
                verb,
                location,
                code: Some(status.code),
                detail: scrub(&status.message, secrets),
            },
            // serde's messages quote the values they could not read: never repeat them.
            kube::Error::SerdeError(e) => KeyError::Api {
                verb,
                location,
                code: None,
                detail: format!(
                    "the answer could not be read (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            },
            other => KeyError::Api {
                verb,
                location,
                code: None,
                detail: scrub(&other.to_string(), secrets),
            },
        }
    }
}

/// What replaces redacted text.
pub const REDACTED: &str = "[redacted]";

/// `text` with every occurrence of each non-empty string in `secrets` replaced by
/// [`REDACTED`], and every whitespace- or quote-delimited word that contains
/// `AGE-SECRET-KEY-` (in any case) replaced too, whatever it came from.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret, REDACTED);
    }
    let upper = out.to_ascii_uppercase();
    if !upper.contains("AGE-SECRET-KEY-") {
        return out;
    }
    let is_boundary = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ',');
    let mut scrubbed = String::with_capacity(out.len());
    let mut word = String::new();
    let flush = |word: &mut String, scrubbed: &mut String| {
        if word.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
            scrubbed.push_str(REDACTED);
        } else {
            scrubbed.push_str(word);
        }
        word.clear();
    };
    for c in out.chars() {
        if is_boundary(c) {
            flush(&mut word, &mut scrubbed);
            scrubbed.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut scrubbed);
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_and_reasons_are_stable() {
        let location = "Secret landlord/landlord-key-acme-1a2b3c4d".to_owned();
        let cases = [
            (
                KeyError::InvalidTenant {
                    tenant: "acme".into(),
                    detail: "no UID".into(),
                },
                "InvalidTenant",
                "key_tenant_invalid",
            ),
            (
                KeyError::Missing {
                    tenant: "acme".into(),
                    location: location.clone(),
                },
                "KeyMissing",
                "key_missing",
            ),
            (
                KeyError::Forbidden {
                    verb: "get",
                    location: location.clone(),
                    detail: "no".into(),
                },
                "KeyForbidden",
                "key_forbidden",
            ),
            (
                KeyError::Invalid {
                    tenant: "acme".into(),
                    location: location.clone(),
                    detail: "x".into(),
                },
                "KeyInvalid",
                "key_invalid",
            ),
            (
                KeyError::Conflict {
                    tenant: "acme".into(),
                    uid: "u1".into(),
                    location: location.clone(),
                    recorded: Some("u0".into()),
                },
                "KeyConflict",
                "key_conflict",
            ),
            (
                KeyError::BeingDeleted {
                    location: location.clone(),
                    finalizers: vec![],
                },
                "KeyBeingDeleted",
                "key_being_deleted",
            ),
            (
                KeyError::Api {
                    verb: "create",
                    location,
                    code: Some(500),
                    detail: "boom".into(),
                },
                "KeyAPIError",
                "key_api_error",
            ),
        ];
        for (err, reason, category) in cases {
            assert_eq!(err.reason(), reason);
            assert_eq!(err.category(), category);
        }
    }

    #[test]
    fn conflict_messages_name_both_uids() {
        let err = KeyError::Conflict {
            tenant: "acme".into(),
            uid: "u1".into(),
            location: "Secret landlord/k".into(),
            recorded: Some("u0".into()),
        };
        assert_eq!(
            err.to_string(),
            "Secret landlord/k records the Tenant UID u0, not the UID u1 of Tenant acme: Landlord neither uses, overwrites nor deletes it"
        );
        let err = KeyError::Conflict {
            tenant: "acme".into(),
            uid: "u1".into(),
            location: "Secret landlord/k".into(),
            recorded: None,
        };
        assert!(err.to_string().contains("records no Tenant UID"), "{err}");
    }

    #[test]
    fn scrub_removes_identities_and_known_secrets() {
        let identity = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3HGQ7X";
        let text = format!(
            "Secret \"k\" is invalid: data[key.txt]: Invalid value: \"{identity}\", also {}, and x{}y",
            identity.to_lowercase(),
            "c2VjcmV0"
        );
        let scrubbed = scrub(&text, &["c2VjcmV0"]);
        assert!(
            !scrubbed.to_uppercase().contains("AGE-SECRET-KEY-"),
            "{scrubbed}"
        );
        assert!(!scrubbed.contains("c2VjcmV0"), "{scrubbed}");
        assert_eq!(
            scrubbed,
            "Secret \"k\" is invalid: data[key.txt]: Invalid value: \"[redacted]\", also [redacted], and x[redacted]y"
        );
        assert_eq!(scrub("nothing to hide", &["", "x y"]), "nothing to hide");
    }
}
