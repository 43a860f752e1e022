//! Ownership by UID: how Landlord recognises what it created for a Tenant.
//!
//! Names and labels can be reused or forged: a Tenant deleted with `deletionPolicy:
//! Retain` leaves namespaces, a database and a Secret named after it, and anyone who can
//! create a namespace can label it `landlord.dev/tenant=<t>`. What Landlord creates for a
//! tenant therefore records the Tenant's **UID** at creation time (the annotation
//! [`TENANT_UID_ANNOTATION`] on Kubernetes objects, the `COMMENT` of the role and database
//! in PostgreSQL), and every claim, adoption or cleanup goes through [`claim`]:
//!
//! - the recorded UID is this Tenant's: it is this Tenant's;
//! - the recorded UID is another Tenant's: it is what an earlier Tenant of the same name
//!   left behind ([`Claim::Retained`]), never touched, unless the Tenant opts in with the
//!   annotation [`ADOPT_ANNOTATION`] naming exactly that UID ([`Claim::Adopt`]);
//! - nothing is recorded: Landlord did not create it ([`Claim::Foreign`]).
//!
//! Labels stay, for people and `kubectl` selectors, and as watch triggers; they decide
//! nothing.

use std::fmt;

/// Annotation on everything Landlord creates for a tenant: the Tenant's UID.
pub const TENANT_UID_ANNOTATION: &str = "landlord.dev/tenant-uid";

/// Annotation a user sets on a new Tenant to take over what an earlier Tenant of the same
/// name retained (`deletionPolicy: Retain`): the earlier Tenant's UID, exactly. Without
/// it a new Tenant never inherits the old one's namespaces, database or credentials.
pub const ADOPT_ANNOTATION: &str = "landlord.dev/adopt-retained-from";

/// Whose an existing object is, as far as a Tenant is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Created for this Tenant (its UID is recorded).
    Ours,
    /// Left by an earlier Tenant of the same name whose UID the Tenant's
    /// [`ADOPT_ANNOTATION`] names: to be taken over, re-recorded with the new UID.
    Adopt {
        /// The earlier Tenant's UID.
        from: String,
    },
    /// Left by another Tenant (an earlier one of the same name, typically retained):
    /// never touched without the opt-in.
    Retained {
        /// The UID recorded on it.
        uid: String,
    },
    /// Not created by Landlord for any Tenant (no UID recorded).
    Foreign,
}

impl Claim {
    /// Whether the Tenant may use (and write) the object.
    pub fn is_usable(&self) -> bool {
        matches!(self, Claim::Ours | Claim::Adopt { .. })
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Ours => f.write_str("created for this Tenant"),
            Claim::Adopt { from } => write!(f, "retained by the earlier Tenant {from}, adopted"),
            Claim::Retained { uid } => write!(
                f,
                "retained by an earlier Tenant with UID {uid}; to take it over, annotate this Tenant {ADOPT_ANNOTATION}={uid}"
            ),
            Claim::Foreign => f.write_str("not created by Landlord"),
        }
    }
}

/// Whose an object is that records `recorded` (its [`TENANT_UID_ANNOTATION`], or the UID
/// in a database comment), for the Tenant with `tenant_uid` whose [`ADOPT_ANNOTATION`] is
/// `adopt_from`. Empty strings count as absent.
pub fn claim(tenant_uid: &str, adopt_from: Option<&str>, recorded: Option<&str>) -> Claim {
    let recorded = recorded.map(str::trim).filter(|u| !u.is_empty());
    match recorded {
        None => Claim::Foreign,
        Some(uid) if !tenant_uid.is_empty() && uid == tenant_uid => Claim::Ours,
        Some(uid) if adopt_from.map(str::trim) == Some(uid) => Claim::Adopt {
            from: uid.to_owned(),
        },
        Some(uid) => Claim::Retained {
            uid: uid.to_owned(),
        },
    }
}

/// The UID recorded in an object's annotations.
pub fn recorded_uid(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
) -> Option<&str> {
    annotations?.get(TENANT_UID_ANNOTATION).map(String::as_str)
}

/// The Tenant's opt-in to adopt retained data, if it set one.
pub fn adopt_from(tenant: &crate::api::Tenant) -> Option<&str> {
    tenant
        .metadata
        .annotations
        .as_ref()?
        .get(ADOPT_ANNOTATION)
        .map(String::as_str)
        .filter(|u| !u.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_recorded_uid_decides() {
        assert_eq!(claim("u1", None, Some("u1")), Claim::Ours);
        assert_eq!(
            claim("u1", None, Some("u0")),
            Claim::Retained { uid: "u0".into() }
        );
        assert_eq!(claim("u1", None, None), Claim::Foreign);
        assert_eq!(claim("u1", None, Some("  ")), Claim::Foreign);
    }

    #[test]
    fn adoption_needs_the_exact_uid() {
        assert_eq!(
            claim("u1", Some("u0"), Some("u0")),
            Claim::Adopt { from: "u0".into() }
        );
        assert_eq!(
            claim("u1", Some("u9"), Some("u0")),
            Claim::Retained { uid: "u0".into() }
        );
        // The opt-in never makes a foreign object adoptable.
        assert_eq!(claim("u1", Some("u0"), None), Claim::Foreign);
        // Nor does naming its own UID change anything.
        assert_eq!(claim("u1", Some("u1"), Some("u1")), Claim::Ours);
    }

    #[test]
    fn a_tenant_without_uid_owns_nothing() {
        assert_eq!(
            claim("", None, Some("")),
            Claim::Foreign,
            "an empty recorded UID is absent"
        );
        assert_eq!(
            claim("", None, Some("u0")),
            Claim::Retained { uid: "u0".into() }
        );
    }

    #[test]
    fn the_retained_message_says_how_to_adopt() {
        let message = Claim::Retained { uid: "u0".into() }.to_string();
        assert!(
            message.contains("landlord.dev/adopt-retained-from=u0"),
            "{message}"
        );
    }
}
