//! From an HTTP request to what is authorized, as `k8s.io/apiserver/pkg/endpoints/request`
//! `RequestInfoFactory.NewRequestInfo` does it; see
//! <https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb>.

/// What an HTTP request asks for. For a non-resource request only `path` and `verb` (the
/// lower-case HTTP method) are set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// `/api/v1/namespaces/x/pods` style, percent-decoded.
    pub path: String,
    pub is_resource_request: bool,
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub subresource: Option<String>,
    pub name: Option<String>,
    /// The path segments from the resource on: `[resource, name, subresource, ...]`.
    pub parts: Vec<String>,
}

/// A request path the API server cannot interpret (it answers 500 in that case, 400 for
/// a path that is not valid percent-encoding).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestInfoError {
    #[error("unable to determine kind and namespace from url {0}")]
    MissingResourceAfterVerb(String),
    #[error("invalid percent-encoding in {0}")]
    BadEncoding(String),
}

/// Verbs that may appear as a path segment before the resource (`/api/v1/watch/pods`).
const SPECIAL_VERBS: [&str; 2] = ["proxy", "watch"];
/// Subresources of a namespace itself (`/api/v1/namespaces/x/status`).
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// Works out verb, group, version, namespace, resource, subresource and name of a request.
///
/// - `GET`/`HEAD` on an object is `get`, on a collection `list`, or `watch` with
///   `?watch=true` (any value but `0`/`false`) or the `/watch/` path prefix;
/// - `POST` is `create`, `PUT` `update`, `PATCH` `patch`, `DELETE` on an object `delete`
///   and on a collection `deletecollection`;
/// - a list or watch with the field selector `metadata.name=<n>` is about the object `n`
///   (so that `resourceNames` can authorize it);
/// - paths outside `/api/<version>/...` and `/apis/<group>/<version>/...` are non-resource
///   requests whose verb is the lower-case method.
pub fn parse_request(
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Result<RequestInfo, RequestInfoError> {
    let path = percent_decode(path, false)
        .ok_or_else(|| RequestInfoError::BadEncoding(path.to_owned()))?;
    let mut info = RequestInfo {
        path: path.clone(),
        verb: method.to_ascii_lowercase(),
        ..RequestInfo::default()
    };
    let trimmed = path.trim_matches('/');
    let segments: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    // /api/<version>/<resource>... or /apis/<group>/<version>/<resource>...
    let (prefix, group, version, mut rest) = match segments.as_slice() {
        ["api", version, rest @ ..] if !rest.is_empty() => ("api", "", *version, rest),
        ["apis", group, version, rest @ ..] if !rest.is_empty() => ("apis", *group, *version, rest),
        _ => return Ok(info),
    };
    info.api_prefix = prefix.to_owned();
    info.api_group = group.to_owned();
    info.api_version = version.to_owned();
    info.is_resource_request = true;

    if let [verb, after_verb @ ..] = rest
        && SPECIAL_VERBS.contains(verb)
    {
        if after_verb.is_empty() {
            return Err(RequestInfoError::MissingResourceAfterVerb(path));
        }
        info.verb = (*verb).to_owned();
        rest = after_verb;
    } else {
        info.verb = match method.to_ascii_uppercase().as_str() {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }

    if let ["namespaces", namespace, more @ ..] = rest {
        info.namespace = Some((*namespace).to_owned());
        // /namespaces/<ns>/<resource>/... unless it is the namespace's own subresource
        if more
            .first()
            .is_some_and(|next| !NAMESPACE_SUBRESOURCES.contains(next))
        {
            rest = more;
        }
    }
    info.parts = rest.iter().map(|p| (*p).to_owned()).collect();
    let mut parts = rest.iter().map(|p| (*p).to_owned());
    info.resource = parts.next().unwrap_or_default();
    info.name = parts.next();
    // proxy requests carry a path after the name, not a subresource
    info.subresource = parts.next().filter(|_| info.verb != "proxy");

    if info.name.is_none() && info.verb == "get" {
        let params = parse_query(query.unwrap_or(""));
        let watch = params
            .iter()
            .find(|(key, _)| key == "watch")
            .is_some_and(|(_, value)| value != "0" && !value.eq_ignore_ascii_case("false"));
        info.verb = if watch { "watch" } else { "list" }.to_owned();
        let field_selector = params.iter().find(|(key, _)| key == "fieldSelector");
        if let Some((_, selector)) = field_selector
            && let Some(name) = exact_field_match(selector, "metadata.name")
            && is_valid_path_segment_name(&name)
        {
            info.name = Some(name);
        }
    }
    if info.name.is_none() && info.verb == "delete" {
        info.verb = "deletecollection".to_owned();
    }
    Ok(info)
}

/// `path.IsValidPathSegmentName`.
fn is_valid_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// The value a field selector requires `field` to equal (`field=v` or `field==v`), as
/// `fields.ParseSelector(s).RequiresExactMatch(field)`; `None` when the selector does not
/// parse or does not pin the field.
fn exact_field_match(selector: &str, field: &str) -> Option<String> {
    let mut terms = split_unescaped(selector, ',');
    terms.sort_unstable();
    let mut found = None;
    for term in terms.into_iter().filter(|t| !t.is_empty()) {
        let (lhs, op, rhs) = split_term(&term)?;
        let value = unescape_field_value(rhs)?;
        if found.is_none() && lhs == field && op != "!=" {
            found = Some(value);
        }
    }
    found
}

/// Splits on `sep` where it is not escaped by a backslash (escapes are kept).
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

/// `lhs op rhs` at the first position where `!=`, `==` or `=` starts.
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let remaining = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = remaining.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`: `\\`, `\,` and `\=` are escapes; bare `,` or `=` and any other
/// escape are errors.
fn unescape_field_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return None;
            }
            out.push(c);
            escaped = false;
        } else {
            match c {
                '\\' => escaped = true,
                ',' | '=' => return None,
                c => out.push(c),
            }
        }
    }
    (!escaped).then_some(out)
}

/// Decodes `application/x-www-form-urlencoded` pairs; undecodable pairs are skipped.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(key, true)?, percent_decode(value, true)?))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space in query strings).
fn percent_decode(s: &str, plus_is_space: bool) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: &str, target: &str) -> RequestInfo {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        parse_request(method, path, query).expect("parsable request")
    }

    /// (verb, group, resource, subresource, namespace, name)
    fn summary(i: &RequestInfo) -> (String, String, String, String, String, String) {
        (
            i.verb.clone(),
            i.api_group.clone(),
            i.resource.clone(),
            i.subresource.clone().unwrap_or_default(),
            i.namespace.clone().unwrap_or_default(),
            i.name.clone().unwrap_or_default(),
        )
    }

    fn expect(method: &str, target: &str, want: [&str; 6]) {
        let got = info(method, target);
        assert!(got.is_resource_request, "{method} {target}");
        let want = (
            want[0].to_owned(),
            want[1].to_owned(),
            want[2].to_owned(),
            want[3].to_owned(),
            want[4].to_owned(),
            want[5].to_owned(),
        );
        assert_eq!(summary(&got), want, "{method} {target}");
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb
    // "POST create; GET, HEAD get (for individual resources), list (for collections,
    // including full object content), watch (for watching an individual resource or
    // collection of resources); PUT update; PATCH patch; DELETE delete (for individual
    // resources), deletecollection (for collections)".
    #[test]
    fn verbs_from_http_methods() {
        let tenants = "/apis/landlord.dev/v1alpha1/tenants";
        expect(
            "GET",
            tenants,
            ["list", "landlord.dev", "tenants", "", "", ""],
        );
        expect(
            "GET",
            &format!("{tenants}/acme"),
            ["get", "landlord.dev", "tenants", "", "", "acme"],
        );
        expect(
            "HEAD",
            &format!("{tenants}/acme"),
            ["get", "landlord.dev", "tenants", "", "", "acme"],
        );
        expect(
            "POST",
            tenants,
            ["create", "landlord.dev", "tenants", "", "", ""],
        );
        expect(
            "PUT",
            &format!("{tenants}/acme"),
            ["update", "landlord.dev", "tenants", "", "", "acme"],
        );
        expect(
            "PATCH",
            &format!("{tenants}/acme"),
            ["patch", "landlord.dev", "tenants", "", "", "acme"],
        );
        expect(
            "DELETE",
            &format!("{tenants}/acme"),
            ["delete", "landlord.dev", "tenants", "", "", "acme"],
        );
        expect(
            "DELETE",
            tenants,
            ["deletecollection", "landlord.dev", "tenants", "", "", ""],
        );
    }

    // Same page: "watch (for watching an individual resource or collection of resources)";
    // clients ask with ?watch=true (the /watch/ prefix is the deprecated form).
    #[test]
    fn watches() {
        expect(
            "GET",
            "/api/v1/namespaces/a/configmaps?watch=true&resourceVersion=5",
            ["watch", "", "configmaps", "", "a", ""],
        );
        expect(
            "GET",
            "/api/v1/namespaces/a/configmaps?watch=1",
            ["watch", "", "configmaps", "", "a", ""],
        );
        expect(
            "GET",
            "/api/v1/namespaces/a/configmaps?watch=false",
            ["list", "", "configmaps", "", "a", ""],
        );
        expect(
            "GET",
            "/api/v1/namespaces/a/configmaps?watch=0",
            ["list", "", "configmaps", "", "a", ""],
        );
        expect(
            "GET",
            "/api/v1/watch/namespaces/a/configmaps",
            ["watch", "", "configmaps", "", "a", ""],
        );
        expect(
            "GET",
            "/api/v1/watch/namespaces/a/configmaps/c",
            ["watch", "", "configmaps", "", "a", "c"],
        );
        for path in ["/api/v1/watch", "/apis/apps/v1/watch"] {
            assert!(
                matches!(
                    parse_request("GET", path, None),
                    Err(RequestInfoError::MissingResourceAfterVerb(_))
                ),
                "{path}"
            );
        }
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources
    // "If you restrict list or watch by resourceName, clients must include a metadata.name
    // field selector in their list or watch request that matches the specified
    // resourceName in order to be authorized."
    #[test]
    fn list_with_metadata_name_field_selector_names_the_object() {
        let base = "/apis/landlord.dev/v1alpha1/tenants";
        expect(
            "GET",
            &format!("{base}?fieldSelector=metadata.name%3Dacme"),
            ["list", "landlord.dev", "tenants", "", "", "acme"],
        );
        expect(
            "GET",
            &format!("{base}?fieldSelector=metadata.name%3D%3Dacme&watch=true"),
            ["watch", "landlord.dev", "tenants", "", "", "acme"],
        );
        expect(
            "GET",
            &format!("{base}?fieldSelector=metadata.namespace%3Dx,metadata.name%3Dacme"),
            ["list", "landlord.dev", "tenants", "", "", "acme"],
        );
        // not an exact match, unparsable, or not a valid name: no name
        expect(
            "GET",
            &format!("{base}?fieldSelector=metadata.name!%3Dacme"),
            ["list", "landlord.dev", "tenants", "", "", ""],
        );
        expect(
            "GET",
            &format!("{base}?fieldSelector=metadata.name"),
            ["list", "landlord.dev", "tenants", "", "", ""],
        );
        expect(
            "GET",
            &format!("{base}?fieldSelector=metadata.name%3D.."),
            ["list", "landlord.dev", "tenants", "", "", ""],
        );
        expect(
            "GET",
            &format!("{base}?fieldSelector=metadata.name%3Da%5Cq"),
            ["list", "landlord.dev", "tenants", "", "", ""],
        );
    }

    #[test]
    fn subresources_and_namespaces() {
        expect(
            "PATCH",
            "/apis/landlord.dev/v1alpha1/tenants/acme/status",
            ["patch", "landlord.dev", "tenants", "status", "", "acme"],
        );
        expect(
            "GET",
            "/api/v1/namespaces/team/secrets/s",
            ["get", "", "secrets", "", "team", "s"],
        );
        // a namespace is itself in its namespace, and has subresources
        expect(
            "GET",
            "/api/v1/namespaces/team",
            ["get", "", "namespaces", "", "team", "team"],
        );
        expect(
            "PUT",
            "/api/v1/namespaces/team/finalize",
            ["update", "", "namespaces", "finalize", "team", "team"],
        );
        expect(
            "PUT",
            "/api/v1/namespaces/team/status",
            ["update", "", "namespaces", "status", "team", "team"],
        );
        expect(
            "GET",
            "/api/v1/namespaces",
            ["list", "", "namespaces", "", "", ""],
        );
        expect(
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/t/rolebindings",
            [
                "create",
                "rbac.authorization.k8s.io",
                "rolebindings",
                "",
                "t",
                "",
            ],
        );
        let proxied = info("GET", "/api/v1/namespaces/a/pods/p/proxy/x/y");
        assert_eq!(proxied.subresource.as_deref(), Some("proxy"));
        assert_eq!(proxied.parts, ["pods", "p", "proxy", "x", "y"]);
        assert_eq!(proxied.api_version, "v1");
        assert_eq!(proxied.api_prefix, "api");
    }

    // https://kubernetes.io/docs/reference/access-authn-authz/authorization/#request-verbs
    // non-resource requests use the lower-case HTTP method as the verb.
    #[test]
    fn non_resource_requests() {
        for (method, path) in [
            ("GET", "/version"),
            ("GET", "/apis"),
            ("GET", "/api"),
            ("GET", "/api/v1"),
            ("GET", "/apis/landlord.dev"),
            ("GET", "/apis/landlord.dev/v1alpha1"),
            ("GET", "/openapi/v3"),
            ("GET", "/openapi/v3/apis/landlord.dev/v1alpha1"),
            ("GET", "/healthz"),
            ("POST", "/logs"),
            ("GET", "/"),
        ] {
            let got = info(method, path);
            assert!(!got.is_resource_request, "{path}");
            assert_eq!(got.verb, method.to_ascii_lowercase(), "{path}");
            assert_eq!(got.path, path);
        }
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(
            info("GET", "/api/v1/namespaces/a/configmaps/x%2Ey")
                .name
                .as_deref(),
            Some("x.y")
        );
        assert!(matches!(
            parse_request("GET", "/api/v1/namespaces/a/configmaps/%zz", None),
            Err(RequestInfoError::BadEncoding(_))
        ));
    }
}
