//! User impersonation (`Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid`,
//! `Impersonate-Extra-*`), as kube-apiserver's impersonation filter does it
//! (k8s.io/apiserver/pkg/endpoints/filters/impersonation.go): each impersonated attribute
//! needs the `impersonate` verb on `users`, `serviceaccounts` (for
//! `system:serviceaccount:<ns>:<name>`), `groups`, `uids` or `userextras/<key>`; the request
//! then runs as the impersonated user, with `system:authenticated` added.
//! <https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation>.

use hyper::HeaderMap;

use crate::auth::{AUTHENTICATED_GROUP, UserInfo};
use crate::rbac::{self, RbacSnapshot, RequestAttributes};

const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
const ANONYMOUS: &str = "system:anonymous";

/// One impersonated attribute (the filter's `ObjectReference`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requested {
    User(String),
    ServiceAccount { namespace: String, name: String },
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

impl Requested {
    /// The reference as Go's `%v` prints an `ObjectReference` (Kind Namespace Name UID
    /// APIVersion ResourceVersion FieldPath).
    fn go_value(&self) -> String {
        let (kind, ns, name, api_version, field_path) = match self {
            Self::User(n) => ("User", "", n.as_str(), "", ""),
            Self::ServiceAccount { namespace, name } => {
                ("ServiceAccount", namespace.as_str(), name.as_str(), "", "")
            }
            Self::Group(n) => ("Group", "", n.as_str(), "", ""),
            Self::Extra { key, value } => (
                "UserExtra",
                "",
                value.as_str(),
                "authentication.k8s.io/v1",
                key.as_str(),
            ),
            Self::Uid(u) => ("UID", "", u.as_str(), "authentication.k8s.io/v1", ""),
        };
        format!("{{{kind} {ns} {name}  {api_version}  {field_path}}}")
    }

    /// What the caller must be allowed to `impersonate`.
    fn attributes(&self, caller: &UserInfo) -> RequestAttributes {
        let (group, resource) = match self {
            Self::User(_) => ("", "users"),
            Self::ServiceAccount { .. } => ("", "serviceaccounts"),
            Self::Group(_) => ("", "groups"),
            Self::Extra { .. } => ("authentication.k8s.io", "userextras"),
            Self::Uid(_) => ("authentication.k8s.io", "uids"),
        };
        let mut a = RequestAttributes::resource(caller.clone(), "impersonate", group, resource);
        match self {
            Self::User(n) | Self::Group(n) | Self::Uid(n) => a.name = Some(n.clone()),
            Self::ServiceAccount { namespace, name } => {
                a.namespace = Some(namespace.clone());
                a.name = Some(name.clone());
            }
            Self::Extra { key, value } => {
                a.name = Some(value.clone());
                a.subresource = Some(key.clone());
            }
        }
        a
    }
}

/// Why a request cannot impersonate.
#[derive(Debug)]
pub enum Refused {
    /// 500, plain text (the filter's `InternalError`): groups, extras or a uid without a user.
    WithoutUser(String),
    /// 403: the caller may not impersonate this attribute.
    Forbidden(Box<RequestAttributes>, String),
}

fn percent_unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn requested(headers: &HeaderMap) -> Vec<Requested> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect()
    };
    let mut out = Vec::new();
    if let Some(user) = values("impersonate-user").into_iter().next()
        && !user.is_empty()
    {
        let sa = user
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains(':'));
        out.push(match sa {
            Some((ns, name)) => Requested::ServiceAccount {
                namespace: ns.to_string(),
                name: name.to_string(),
            },
            None => Requested::User(user),
        });
    }
    for g in values("impersonate-group") {
        out.push(Requested::Group(g));
    }
    let mut extra_names: Vec<&str> = headers
        .keys()
        .map(|k| k.as_str())
        .filter(|k| k.starts_with("impersonate-extra-"))
        .collect();
    extra_names.sort_unstable();
    extra_names.dedup();
    for name in extra_names {
        let key = percent_unescape(&name["impersonate-extra-".len()..]);
        for value in values(name) {
            out.push(Requested::Extra {
                key: key.clone(),
                value,
            });
        }
    }
    if let Some(uid) = values("impersonate-uid").into_iter().next()
        && !uid.is_empty()
    {
        out.push(Requested::Uid(uid));
    }
    out
}

/// The user a request acts as: `caller`, or the user it impersonates (checked against
/// `rbac` when given; without RBAC every impersonation is allowed, as AlwaysAllow does).
/// `None` when the request impersonates nobody.
pub fn impersonate(
    headers: &HeaderMap,
    caller: &UserInfo,
    rbac: Option<&RbacSnapshot>,
) -> Result<Option<UserInfo>, Refused> {
    let requests = requested(headers);
    if requests.is_empty() {
        return Ok(None);
    }
    let has_user = requests
        .iter()
        .any(|r| matches!(r, Requested::User(_) | Requested::ServiceAccount { .. }));
    if !has_user {
        let list: Vec<String> = requests.iter().map(Requested::go_value).collect();
        return Err(Refused::WithoutUser(format!(
            "requested [{}] without impersonating a user",
            list.join(" ")
        )));
    }
    let groups_given = requests.iter().any(|r| matches!(r, Requested::Group(_)));
    let mut name = String::new();
    let mut uid = String::new();
    let mut groups = Vec::new();
    for r in &requests {
        if let Some(snapshot) = rbac {
            let attrs = r.attributes(caller);
            let decision = rbac::authorize(&attrs, snapshot);
            if !decision.is_allowed() {
                return Err(Refused::Forbidden(
                    Box::new(attrs),
                    decision.reason().to_string(),
                ));
            }
        }
        match r {
            Requested::User(n) => name = n.clone(),
            Requested::ServiceAccount {
                namespace,
                name: sa,
            } => {
                name = format!("system:serviceaccount:{namespace}:{sa}");
                if !groups_given {
                    groups = vec![
                        "system:serviceaccounts".to_string(),
                        format!("system:serviceaccounts:{namespace}"),
                    ];
                }
            }
            Requested::Group(g) => groups.push(g.clone()),
            Requested::Uid(u) => uid = u.clone(),
            Requested::Extra { .. } => {}
        }
    }
    if name != ANONYMOUS {
        if !groups
            .iter()
            .any(|g| g == AUTHENTICATED_GROUP || g == UNAUTHENTICATED_GROUP)
        {
            groups.push(AUTHENTICATED_GROUP.to_string());
        }
    } else if !groups.iter().any(|g| g == UNAUTHENTICATED_GROUP) {
        groups.push(UNAUTHENTICATED_GROUP.to_string());
    }
    Ok(Some(UserInfo { name, uid, groups }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn admin() -> UserInfo {
        UserInfo {
            name: "admin".into(),
            uid: String::new(),
            groups: vec!["system:masters".into()],
        }
    }

    #[test]
    fn groups_without_a_user_are_refused_as_the_filter_words_it() {
        let Err(Refused::WithoutUser(m)) =
            impersonate(&headers(&[("impersonate-group", "g1")]), &admin(), None)
        else {
            panic!("refused")
        };
        assert_eq!(
            m,
            "requested [{Group  g1    }] without impersonating a user"
        );
        let Err(Refused::WithoutUser(m)) =
            impersonate(&headers(&[("impersonate-uid", "123")]), &admin(), None)
        else {
            panic!("refused")
        };
        assert_eq!(
            m,
            "requested [{UID  123  authentication.k8s.io/v1  }] without impersonating a user"
        );
    }

    #[test]
    fn service_accounts_get_their_groups() {
        let user = impersonate(
            &headers(&[("impersonate-user", "system:serviceaccount:ns1:sa")]),
            &admin(),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns1:sa");
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:ns1",
                "system:authenticated"
            ]
        );
    }
}
