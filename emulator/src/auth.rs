//! Authentication, as kube-apiserver does it with a static token file.
//!
//! - The token file format is kube-apiserver's `--token-auth-file`: CSV records
//!   `token,user,uid,"group1,group2"` (the groups column is optional), see
//!   <https://kubernetes.io/docs/reference/access-authn-authz/authentication/#static-token-file>.
//! - A request carries `Authorization: Bearer <token>`; every user authenticated this way
//!   also gets the group `system:authenticated`
//!   (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#users-in-kubernetes>).
//!
//! Differences from kube-apiserver, all deliberate:
//! - lines whose first non-blank character is `#` are comments, and blank lines are skipped;
//! - a duplicate or empty token is an error (kube-apiserver logs a warning and keeps the last);
//! - empty group names (`""` or `"a,,b"`) are dropped;
//! - the emulator issues no ServiceAccount tokens, so a token-file user *named* like a
//!   ServiceAccount (`system:serviceaccount:<ns>:<name>`) is given the groups a real
//!   ServiceAccount token carries (`system:serviceaccounts`, `system:serviceaccounts:<ns>`),
//!   which lets tests run the operator as its ServiceAccount.
//!
//! Anonymous requests (no bearer token) are authenticated as `system:anonymous` in the
//! group `system:unauthenticated` only on the public-info paths [`ANONYMOUS_PATHS`] and
//! then authorized like any request (the bootstrap ClusterRoleBinding
//! `system:public-info-viewer` allows them); elsewhere they are refused with 401. This is
//! kube-apiserver with the structured authentication configuration's anonymous
//! authenticator limited to those paths
//! (<https://kubernetes.io/docs/reference/access-authn-authz/authentication/#anonymous-authenticator-configuration>);
//! it keeps `/version` readable without credentials, which kubectl version dispatchers
//! need before they pick a kubectl.
//!
//! Tokens never appear in errors or `Debug` output.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde_json::{Value, json};

/// The group every authenticated user belongs to.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// The user of an anonymous request.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// The group of an anonymous request.
pub const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// The paths on which a request without credentials is anonymous rather than refused (the
/// non-resource URLs of the bootstrap ClusterRole `system:public-info-viewer`), matched
/// exactly like the anonymous authenticator's `conditions[].path`.
pub const ANONYMOUS_PATHS: [&str; 5] = ["/healthz", "/livez", "/readyz", "/version", "/version/"];

/// Whether a request without credentials to `path` is authenticated as anonymous.
pub fn anonymous_allowed(path: &str) -> bool {
    ANONYMOUS_PATHS.contains(&path)
}

/// The group every ServiceAccount belongs to.
pub const SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// The prefix of ServiceAccount user names.
const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// Who made a request, as the authorizer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    /// The user an anonymous request is authenticated as: `system:anonymous` in
    /// `system:unauthenticated`.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS_USER.to_string(),
            uid: String::new(),
            groups: vec![UNAUTHENTICATED_GROUP.to_string()],
        }
    }

    /// The user a ServiceAccount token authenticates as: `system:serviceaccount:<ns>:<name>`,
    /// in the groups `system:serviceaccounts`, `system:serviceaccounts:<ns>` and
    /// `system:authenticated`.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            name: format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"),
            uid: String::new(),
            groups: Vec::new(),
        }
        .authenticated()
    }

    /// `(namespace, name)` when this user is a ServiceAccount.
    pub fn service_account_parts(&self) -> Option<(&str, &str)> {
        split_service_account_username(&self.name)
    }

    /// This user as the authenticator hands it out: ServiceAccount groups for a
    /// ServiceAccount name, and `system:authenticated`, each added once.
    fn authenticated(mut self) -> Self {
        let mut extra = Vec::new();
        if let Some((namespace, _)) = self.service_account_parts() {
            extra.push(SERVICE_ACCOUNTS_GROUP.to_owned());
            extra.push(format!("{SERVICE_ACCOUNTS_GROUP}:{namespace}"));
        }
        extra.push(AUTHENTICATED_GROUP.to_owned());
        for group in extra {
            if !self.groups.contains(&group) {
                self.groups.push(group);
            }
        }
        self
    }
}

/// Splits `system:serviceaccount:<ns>:<name>` into `(ns, name)`, as
/// `k8s.io/apiserver/pkg/authentication/serviceaccount.SplitUsername` does.
fn split_service_account_username(username: &str) -> Option<(&str, &str)> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    if namespace.is_empty() || name.is_empty() || name.contains(':') {
        return None;
    }
    Some((namespace, name))
}

/// A syntax error in a static token file. Carries the 1-based line number, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token file line {line}: {problem}")]
pub struct TokenFileError {
    pub line: usize,
    pub problem: TokenFileProblem,
}

/// What is wrong with a token file line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenFileProblem {
    #[error("must have at least 3 columns (token, user name, user uid), found {0}")]
    TooFewColumns(usize),
    #[error("the token is empty")]
    EmptyToken,
    #[error("the token is already defined on line {0}")]
    DuplicateToken(usize),
    #[error("bare \" in a non-quoted field")]
    BareQuote,
    #[error("extraneous or missing \" in a quoted field")]
    BadQuotedField,
}

/// Why a request could not be authenticated (the server answers 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A bearer token was presented and matches no known token.
    #[error("invalid bearer token")]
    InvalidBearerToken,
}

/// Maps bearer tokens to users.
#[derive(Clone, Default)]
pub struct Authenticator {
    tokens: HashMap<String, UserInfo>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.tokens.values().map(|u| u.name.as_str()).collect();
        users.sort_unstable();
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .field("users", &users)
            .finish()
    }
}

impl Authenticator {
    /// An authenticator that knows no token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the content of a kube-apiserver static token file.
    pub fn from_token_file(content: &str) -> Result<Self, TokenFileError> {
        let mut tokens = HashMap::new();
        let mut defined_on: HashMap<String, usize> = HashMap::new();
        for (index, raw_line) in content.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw_line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let fields =
                split_csv_line(raw_line).map_err(|problem| TokenFileError { line, problem })?;
            let [token, name, uid, rest @ ..] = fields.as_slice() else {
                return Err(TokenFileError {
                    line,
                    problem: TokenFileProblem::TooFewColumns(fields.len()),
                });
            };
            if token.is_empty() {
                return Err(TokenFileError {
                    line,
                    problem: TokenFileProblem::EmptyToken,
                });
            }
            let groups = rest
                .first()
                .map(|groups| {
                    groups
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            match defined_on.entry(token.clone()) {
                Entry::Occupied(first) => {
                    return Err(TokenFileError {
                        line,
                        problem: TokenFileProblem::DuplicateToken(*first.get()),
                    });
                }
                Entry::Vacant(slot) => {
                    slot.insert(line);
                }
            }
            tokens.insert(
                token.clone(),
                UserInfo {
                    name: name.clone(),
                    uid: uid.clone(),
                    groups,
                },
            );
        }
        Ok(Self { tokens })
    }

    /// Adds (or replaces) a token, e.g. for a test client running as a given user.
    /// The user's groups get the same additions as a token-file user's.
    pub fn insert(&mut self, token: impl Into<String>, user: UserInfo) {
        self.tokens.insert(token.into(), user);
    }

    /// Authenticates a request from its `Authorization` header.
    ///
    /// `Ok(None)`: no bearer token (no header, another scheme, or an empty token), i.e. an
    /// anonymous request: the caller treats it as [`UserInfo::anonymous`] on the paths
    /// where [`anonymous_allowed`], and answers 401 with [`unauthorized_status`]
    /// elsewhere. `Err`: an unknown token, 401 on every path (the anonymous authenticator
    /// is not consulted after a failed one).
    /// The header is read like kube-apiserver's bearer token authenticator
    /// (`k8s.io/apiserver/pkg/authentication/request/bearertoken`): trimmed, split on
    /// spaces, scheme `bearer` in any case.
    pub fn authenticate(
        &self,
        authorization_header: Option<&str>,
    ) -> Result<Option<UserInfo>, AuthError> {
        let Some(header) = authorization_header else {
            return Ok(None);
        };
        let mut parts = header.trim().splitn(3, ' ');
        let (Some(scheme), Some(token)) = (parts.next(), parts.next()) else {
            return Ok(None);
        };
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Ok(None);
        }
        match self.tokens.get(token) {
            Some(user) => Ok(Some(user.clone().authenticated())),
            None => Err(AuthError::InvalidBearerToken),
        }
    }
}

/// Splits one CSV record (RFC 4180 quoting, as Go's `encoding/csv` reads it; a quoted
/// field cannot span lines here).
fn split_csv_line(line: &str) -> Result<Vec<String>, TokenFileProblem> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                    None => return Err(TokenFileProblem::BadQuotedField),
                }
            }
            match chars.next() {
                Some(',') => fields.push(field),
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(_) => return Err(TokenFileProblem::BadQuotedField),
            }
        } else {
            loop {
                match chars.next() {
                    Some(',') => break,
                    Some('"') => return Err(TokenFileProblem::BareQuote),
                    Some(c) => field.push(c),
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                }
            }
            fields.push(field);
        }
    }
}

/// The body of a 401 answer, as kube-apiserver writes it
/// (`k8s.io/apiserver/pkg/endpoints/handlers/responsewriters`, `apierrors.NewUnauthorized`).
pub fn unauthorized_status() -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# emulator users
s3cr3t-admin,admin,uid-1,\"system:masters\"

operator-token,system:serviceaccount:landlord:landlord,uid-2
dev-token,alice,uid-3,\"dev,qa\"
";

    fn auth() -> Authenticator {
        Authenticator::from_token_file(FILE).expect("valid file")
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authentication/#static-token-file
    // "a csv file with a minimum of 3 columns: token, user name, user uid, followed by
    // optional group names"; "Authorization: Bearer <token>".
    #[test]
    fn token_file_user_with_groups_is_authenticated() {
        let user = auth()
            .authenticate(Some("Bearer dev-token"))
            .expect("known token")
            .expect("a user");
        assert_eq!(user.name, "alice");
        assert_eq!(user.uid, "uid-3");
        assert_eq!(user.groups, ["dev", "qa", "system:authenticated"]);
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authentication/#users-in-kubernetes
    // "The system:authenticated group is included in the list of groups for all
    // authenticated users."
    #[test]
    fn authenticated_group_is_added_once() {
        let mut auth = Authenticator::new();
        auth.insert(
            "t",
            UserInfo {
                name: "bob".into(),
                uid: String::new(),
                groups: vec!["system:authenticated".into()],
            },
        );
        let user = auth
            .authenticate(Some("Bearer t"))
            .expect("ok")
            .expect("user");
        assert_eq!(user.groups, ["system:authenticated"]);
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authentication/#service-account-tokens
    // "Service accounts authenticate with the username
    // system:serviceaccount:(NAMESPACE):(SERVICEACCOUNT), and are assigned to the groups
    // system:serviceaccounts and system:serviceaccounts:(NAMESPACE)."
    #[test]
    fn service_account_named_user_gets_service_account_groups() {
        let user = auth()
            .authenticate(Some("Bearer operator-token"))
            .expect("ok")
            .expect("user");
        assert_eq!(user.name, "system:serviceaccount:landlord:landlord");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:landlord",
                "system:authenticated"
            ]
        );
        assert_eq!(user.service_account_parts(), Some(("landlord", "landlord")));
        assert_eq!(
            UserInfo::service_account("landlord", "landlord").groups,
            user.groups
        );
    }

    #[test]
    fn malformed_service_account_names_are_plain_users() {
        for name in [
            "system:serviceaccount:ns",
            "system:serviceaccount::name",
            "system:serviceaccount:ns:",
            "system:serviceaccount:ns:a:b",
        ] {
            assert_eq!(split_service_account_username(name), None, "{name}");
        }
    }

    // kube-apiserver's bearer token authenticator: no header, another scheme or an empty
    // token authenticate nobody (anonymous); an unknown token is an authentication failure.
    #[test]
    fn missing_or_foreign_credentials_are_anonymous() {
        let auth = auth();
        for header in [
            None,
            Some(""),
            Some("Basic YWxpY2U6cHc="),
            Some("Bearer"),
            Some("Bearer "),
        ] {
            assert_eq!(auth.authenticate(header), Ok(None), "{header:?}");
        }
    }

    // The anonymous authenticator with conditions: only an exact path match makes a request
    // anonymous; the anonymous user is system:anonymous in system:unauthenticated
    // (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#anonymous-requests).
    #[test]
    fn anonymous_only_on_public_info_paths() {
        for path in ["/version", "/version/", "/healthz", "/livez", "/readyz"] {
            assert!(anonymous_allowed(path), "{path}");
        }
        for path in [
            "/",
            "/api",
            "/apis",
            "/healthz/ping",
            "/versions",
            "/api/v1/namespaces",
        ] {
            assert!(!anonymous_allowed(path), "{path}");
        }
        let anonymous = UserInfo::anonymous();
        assert_eq!(anonymous.name, "system:anonymous");
        assert_eq!(anonymous.groups, ["system:unauthenticated"]);
    }

    #[test]
    fn scheme_is_case_insensitive_and_unknown_token_fails() {
        let auth = auth();
        assert!(matches!(
            auth.authenticate(Some("bearer dev-token")),
            Ok(Some(_))
        ));
        assert!(matches!(
            auth.authenticate(Some("  BEARER dev-token  ")),
            Ok(Some(_))
        ));
        assert_eq!(
            auth.authenticate(Some("Bearer nope")),
            Err(AuthError::InvalidBearerToken)
        );
    }

    #[test]
    fn errors_carry_line_numbers_and_no_token() {
        let cases = [
            ("a,b\n", 1, TokenFileProblem::TooFewColumns(2)),
            (
                "# c\n\nsecret-x,u,1\nsecret-x,v,2\n",
                4,
                TokenFileProblem::DuplicateToken(3),
            ),
            (",u,1\n", 1, TokenFileProblem::EmptyToken),
            ("secret-y,u\"x,1\n", 1, TokenFileProblem::BareQuote),
            (
                "secret-z,u,1,\"g1,g2\n",
                1,
                TokenFileProblem::BadQuotedField,
            ),
            ("secret-w,u,1,\"g\"x\n", 1, TokenFileProblem::BadQuotedField),
        ];
        for (content, line, problem) in cases {
            let err = Authenticator::from_token_file(content).expect_err(content);
            assert_eq!(err, TokenFileError { line, problem }, "{content}");
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        assert_eq!(
            Authenticator::from_token_file("a,b\n")
                .expect_err("short")
                .to_string(),
            "token file line 1: must have at least 3 columns (token, user name, user uid), found 2"
        );
    }

    #[test]
    fn quoted_fields_and_escaped_quotes() {
        let auth = Authenticator::from_token_file("\"tok\",\"name \"\"q\"\"\",uid,\"a,b\",extra\n")
            .expect("valid");
        let user = auth
            .authenticate(Some("Bearer tok"))
            .expect("ok")
            .expect("user");
        assert_eq!(user.name, "name \"q\"");
        assert_eq!(user.groups, ["a", "b", "system:authenticated"]);
    }

    #[test]
    fn debug_output_hides_tokens() {
        let debug = format!("{:?}", auth());
        assert!(debug.contains("alice"), "{debug}");
        for token in ["s3cr3t-admin", "operator-token", "dev-token"] {
            assert!(!debug.contains(token), "{debug}");
        }
    }

    // k8s.io/apimachinery/pkg/api/errors.NewUnauthorized("Unauthorized"), written by the
    // authentication filter for a failed authentication.
    #[test]
    fn unauthorized_status_matches_kube_apiserver() {
        assert_eq!(
            unauthorized_status(),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Unauthorized",
                "reason": "Unauthorized",
                "code": 401
            })
        );
    }
}
