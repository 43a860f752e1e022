//! The HTTP/1.1 server: connection handling, routing of Kubernetes API paths, and the
//! request handlers for reads and writes.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::apply::{ApplyError, Writer, decode_apply_body, manager_or_user_agent};
use crate::auth::{self, Authenticator, UserInfo, unauthorized_status};
use crate::builtin;
use crate::cluster::{
    Cluster, DeleteOptions, FieldValidation, ListOptions, Propagation, WriteOptions, to_view,
};
use crate::decode;
use crate::discovery;
use crate::error::{ApiError, ApiResult, FieldCause, GroupResource};
use crate::faults::{FaultAction, FaultHit, Faults};
use crate::meta;
use crate::metrics::RequestCounter;
use crate::negotiation::{self, Conversion, Encoding, Negotiated};
use crate::openapi;
use crate::options;
use crate::patch::{PatchError, PatchType, apply_patch};
use crate::rbac::{self, RequestAttributes};
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::table::{self, IncludeObject};

pub type Body = BoxBody<Bytes, Infallible>;

/// The largest request body accepted (the real server's limit).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// State shared by all connections.
pub struct Shared {
    pub cluster: Mutex<Cluster>,
    pub requests: RequestCounter,
    pub faults: Faults,
    /// Bearer tokens and their users.
    pub authenticator: RwLock<Authenticator>,
    /// Authenticate every request and authorize it by the stored RBAC objects.
    pub rbac: bool,
    /// Bumped to end every open watch.
    pub drop_watches: watch::Sender<u64>,
    /// Set to stop the server.
    pub shutdown: watch::Sender<bool>,
    pub address: String,
    pub bookmark_interval: Duration,
    /// The WatchList feature gate: watches may ask for `sendInitialEvents`.
    pub watch_list: bool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.cluster.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until shutdown, over TLS when given an acceptor, otherwise plain.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, tls: Option<TlsAcceptor>) {
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let shared = shared.clone();
        let mut stop = shared.shutdown.subscribe();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                return serve_connection(stream, shared, stop).await;
            };
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                },
                _ = stop.changed() => return,
            };
            serve_connection(stream, shared, stop).await
        });
    }
}

/// Serves HTTP/1.1 on one connection, plain or TLS, until it closes or the server stops.
async fn serve_connection<S>(stream: S, shared: Arc<Shared>, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(shared, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc);
    tokio::select! {
        _ = conn => {}
        _ = stop.changed() => {}
    }
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A JSON reply with optional warnings.
pub fn json_response(
    code: u16,
    body: &Value,
    content_type: &str,
    warnings: &[String],
) -> Response<Body> {
    encoded_response(code, body, Encoding::Json, content_type, warnings)
}

/// A reply in `encoding` (served as `content_type`) with optional warnings.
fn encoded_response(
    code: u16,
    body: &Value,
    encoding: Encoding,
    content_type: &str,
    warnings: &[String],
) -> Response<Body> {
    let mut r = Response::new(full(encoding.encode(body)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append("Warning", v);
        }
    }
    r
}

fn ok_json(code: u16, body: &Value) -> Response<Body> {
    json_response(code, body, "application/json", &[])
}

/// The aggregated discovery document of `/api` (`core`) or `/apis`, in the version the
/// client's `Accept` asked for (`content_type`).
fn aggregated_discovery(shared: &Shared, core: bool, content_type: &str) -> Response<Body> {
    let version = content_type
        .split(';')
        .find_map(|p| p.strip_prefix("v="))
        .unwrap_or("v2");
    let doc = discovery::aggregated(
        &shared.lock().registry,
        core,
        &format!("apidiscovery.k8s.io/{version}"),
    );
    json_response(200, &doc, content_type, &[])
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    ok_json(e.code, &e.to_status())
}

/// An error in the encoding the client's `Accept` asks for (errors are never converted).
pub fn negotiated_error(accept: &str, e: &ApiError) -> Response<Body> {
    let encoding = negotiation::error_encoding(accept);
    encoded_response(
        e.code,
        &e.to_status(),
        encoding,
        encoding.content_type(),
        &[],
    )
}

/// A parsed resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiV2,
    OpenApiV3Index,
    OpenApiV3(String, String),
    Resource(ResourcePath),
    /// `/emulator/compact`: not Kubernetes; forgets the change history (410 for older
    /// resourceVersions), so any client can provoke a relist.
    Compact,
    NotFound,
}

fn route(path: &str) -> Route {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    match parts.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["api", v] => Route::GroupVersion(String::new(), v.to_string()),
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion(g.to_string(), v.to_string()),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["emulator", "compact"] => Route::Compact,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", "api", v] => Route::OpenApiV3(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let mut rest = rest;
    let mut namespace = None;
    if rest.first() == Some(&"namespaces") && rest.len() > 1 {
        namespace = Some(rest[1].to_string());
        if rest.len() > 2 && rest[2] != "status" && rest[2] != "finalize" {
            rest = &rest[2..];
        }
    }
    let (resource, name, subresource) = match rest {
        [r] => (r, None, None),
        [r, n] => (r, Some(n.to_string()), None),
        [r, n, s] => (r, Some(n.to_string()), Some(s.to_string())),
        _ => return Route::NotFound,
    };
    // `/api/v1/namespaces/foo` names the namespace itself.
    if *resource == "namespaces" && group.is_empty() {
        return Route::Resource(ResourcePath {
            group: String::new(),
            version: version.to_string(),
            namespace: None,
            resource: "namespaces".into(),
            name,
            subresource,
        });
    }
    Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        resource: resource.to_string(),
        name,
        subresource,
    })
}

/// The API verb of a request.
pub fn verb(method: &Method, path: &ResourcePath, query: &HashMap<String, String>) -> &'static str {
    let watch = query
        .get("watch")
        .is_some_and(|w| crate::options::go_bool(w) == Some(true));
    match (method.as_str(), path.name.is_some()) {
        ("GET" | "HEAD", true) => "get",
        ("GET" | "HEAD", false) if watch => "watch",
        ("GET" | "HEAD", false) => "list",
        ("POST", _) => "create",
        // No route updates or patches a collection (405; the custom resource handler
        // answers a PATCH without a name itself, below).
        ("PUT" | "PATCH", false) => "collection-write",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn query_map(uri: &hyper::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn header(req: &Request<Incoming>, name: hyper::header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Who makes a request, and what the authorizer saw (RBAC mode only).
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: UserInfo,
    pub attributes: Option<RequestAttributes>,
}

/// Authentication and authorization, as kube-apiserver does them in RBAC mode: 401 for an
/// unknown token, or a missing one outside the anonymous public-info paths (see
/// [`crate::auth`]), 403 for a request the user's roles do not allow.
fn authorize(shared: &Shared, req: &Request<Incoming>) -> Result<Caller, Box<Response<Body>>> {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let authenticated = shared
        .authenticator
        .read()
        .map_err(|_| {
            Box::new(error_response(&ApiError::internal(
                "authenticator unavailable",
            )))
        })?
        .authenticate(header);
    if !shared.rbac {
        let user = authenticated.ok().flatten().unwrap_or(UserInfo {
            name: crate::handle::ADMIN_USER.to_string(),
            uid: String::new(),
            groups: vec![rbac::PRIVILEGED_GROUP.to_string()],
        });
        let user = impersonated(req, &user, None)?.unwrap_or(user);
        return Ok(Caller {
            user,
            attributes: None,
        });
    }
    let user = match authenticated {
        Ok(Some(user)) => user,
        Ok(None) if auth::anonymous_allowed(req.uri().path()) => UserInfo::anonymous(),
        Ok(None) | Err(_) => return Err(Box::new(ok_json(401, &unauthorized_status()))),
    };
    let info = rbac::parse_request(req.method().as_str(), req.uri().path(), req.uri().query())
        .map_err(|e| Box::new(error_response(&ApiError::bad_request(e.to_string()))))?;
    let snapshot = shared.lock().rbac_snapshot();
    let user = impersonated(req, &user, Some(&snapshot))?.unwrap_or(user);
    let attributes = RequestAttributes::from_request(user.clone(), &info);
    let decision = rbac::authorize(&attributes, &snapshot);
    if !decision.is_allowed() {
        return Err(Box::new(ok_json(
            403,
            &rbac::forbidden_status(&attributes, decision.reason()),
        )));
    }
    Ok(Caller {
        user,
        attributes: Some(attributes),
    })
}

/// The user a request impersonates, if any, or the filter's refusal (500 in plain text for
/// groups without a user, 403 for what the caller may not impersonate).
fn impersonated(
    req: &Request<Incoming>,
    caller: &UserInfo,
    rbac: Option<&rbac::RbacSnapshot>,
) -> Result<Option<UserInfo>, Box<Response<Body>>> {
    match crate::impersonation::impersonate(req.headers(), caller, rbac) {
        Ok(user) => Ok(user),
        Err(crate::impersonation::Refused::Forbidden(attrs, reason)) => Err(Box::new(ok_json(
            403,
            &rbac::forbidden_status(&attrs, &reason),
        ))),
        Err(crate::impersonation::Refused::WithoutUser(message)) => {
            let uri = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let mut r = Response::new(full(format!("Internal Server Error: {uri:?}: {message}\n")));
            *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r.headers_mut().insert(
                "X-Content-Type-Options",
                HeaderValue::from_static("nosniff"),
            );
            Err(Box::new(r))
        }
    }
}

/// Every answer carries an `Audit-Id`, as kube-apiserver's (a fresh UUID per request).
async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let mut response = handle_request(shared, req).await;
    if let Ok(id) = HeaderValue::from_str(&meta::new_uid()) {
        response.headers_mut().insert("Audit-Id", id);
    }
    response
}

async fn handle_request(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let caller = match authorize(&shared, &req) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let query = query_map(req.uri());
    let route = route(req.uri().path());
    let accept = header(&req, ACCEPT).to_string();
    match route {
        Route::Version => ok_json(200, &discovery::version()),
        Route::Health => {
            let mut r = Response::new(full("ok"));
            r.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            r
        }
        Route::Api => match discovery::aggregated_media_type(&accept) {
            Some(ct) => aggregated_discovery(&shared, true, ct),
            None => ok_json(200, &discovery::api_versions(&shared.address)),
        },
        Route::Apis => match discovery::aggregated_media_type(&accept) {
            Some(ct) => aggregated_discovery(&shared, false, ct),
            None => ok_json(200, &discovery::group_list(&shared.lock().registry)),
        },
        Route::Group(g) => match discovery::group(&shared.lock().registry, &g) {
            Some(doc) => ok_json(200, &doc),
            None => error_response(&ApiError::path_not_found()),
        },
        Route::GroupVersion(g, v) => {
            match discovery::resource_list(&shared.lock().registry, &g, &v) {
                Some(doc) => ok_json(200, &doc),
                None => error_response(&ApiError::path_not_found()),
            }
        }
        Route::OpenApiV2 => {
            if !accept.is_empty() && !accept.contains("json") && !accept.contains("*/*") {
                return error_response(&ApiError::not_acceptable());
            }
            ok_json(200, &openapi::v2_document(&shared.lock().registry))
        }
        Route::OpenApiV3Index => ok_json(200, &openapi::v3_index(&shared.lock().registry)),
        Route::OpenApiV3(g, v) => match openapi::v3_document(&shared.lock().registry, &g, &v) {
            Some(doc) => {
                let mut r = ok_json(200, &doc);
                r.headers_mut().insert(
                    "Cache-Control",
                    HeaderValue::from_static("no-cache, private"),
                );
                r
            }
            None => error_response(&ApiError::path_not_found()),
        },
        Route::NotFound => error_response(&ApiError::path_not_found()),
        Route::Compact if req.method() == Method::POST => {
            let mut c = shared.lock();
            c.store.compact();
            let rv = c.store.current_rv();
            drop(c);
            ok_json(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "message": format!("history compacted at resourceVersion {rv}")}),
            )
        }
        Route::Compact => error_response(&ApiError::method_not_allowed()),
        Route::Resource(path) => resource_request(shared, req, path, query, accept, caller).await,
    }
}

async fn resource_request(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    path: ResourcePath,
    query: HashMap<String, String>,
    accept: String,
    caller: Caller,
) -> Response<Body> {
    let verb = verb(req.method(), &path, &query);
    let counted = match &path.subresource {
        Some(s) => format!("{}/{}", path.resource, s),
        None => path.resource.clone(),
    };
    shared.requests.record(verb, &counted);
    let request = FaultHit {
        at: std::time::Instant::now(),
        verb: verb.to_string(),
        resource: counted.clone(),
        namespace: path.namespace.clone(),
        name: path.name.clone(),
        user: caller.user.name.clone(),
    };
    for (id, action) in shared.faults.take(&request) {
        match action {
            FaultAction::Delay(d) => tokio::time::sleep(d).await,
            FaultAction::Hang => shared.faults.released(id).await,
            FaultAction::Pass => {}
            FaultAction::Fail { code, message } => {
                let reason = match code {
                    429 => "TooManyRequests",
                    500 => "InternalError",
                    503 => "ServiceUnavailable",
                    504 => "Timeout",
                    409 => "Conflict",
                    _ => "Unknown",
                };
                return error_response(&ApiError::new(code, reason, message));
            }
        }
    }
    let Some(rt) = shared
        .lock()
        .resolve(&path.group, &path.version, &path.resource)
    else {
        return error_response(&ApiError::path_not_found());
    };
    if path.namespace.is_some() && !rt.namespaced {
        return error_response(&ApiError::path_not_found());
    }
    if let Some(s) = &path.subresource
        && !rt.subresources.contains(s)
    {
        return error_response(&ApiError::path_not_found());
    }
    if verb == "collection-write" && req.method() == Method::PATCH && rt.is_crd() {
        return error_response(&ApiError::bad_request("name must be provided"));
    }
    if !rt.has_verb(verb) {
        return error_response(&ApiError::method_not_allowed());
    }
    let collection_get = if path.name.is_none() && matches!(verb, "list" | "watch") {
        negotiation::Request::CollectionGet
    } else {
        negotiation::Request::Other
    };
    let media = match negotiation::negotiate(&rt, &accept, collection_get, verb == "watch") {
        Ok(m) => m,
        Err(e) => return negotiated_error(&accept, &e),
    };
    let content_type = header(&req, CONTENT_TYPE).to_string();
    let user_agent = header(&req, USER_AGENT).to_string();
    let body = if matches!(
        verb,
        "create" | "update" | "patch" | "delete" | "deletecollection"
    ) {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return error_response(&ApiError::new(
                    413,
                    "RequestEntityTooLarge",
                    "the request body is too large",
                ));
            }
        }
    } else {
        Bytes::new()
    };
    let ctx = RequestContext {
        verb,
        shared: shared.clone(),
        rt,
        path,
        query,
        accept,
        media,
        content_type,
        user_agent,
        caller,
    };
    let result = match verb {
        "get" => ctx.get(),
        "list" => ctx.list(),
        "watch" => return crate::watch::watch(ctx).await,
        "create" => ctx.create(&body),
        "update" => ctx.update(&body),
        "patch" => ctx.patch(&body),
        "delete" => ctx.delete(&body),
        "deletecollection" => ctx.delete_collection(&body),
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok(r) => r,
        Err(e) => ctx.error(&e),
    }
}

fn policy_bindings_gr() -> GroupResource {
    GroupResource::new(
        "admissionregistration.k8s.io",
        "validatingadmissionpolicybindings",
    )
}

/// The `Status` of a refused patch.
fn patch_error(e: &PatchError) -> ApiError {
    ApiError::from_status(&e.to_status())
}

/// Everything a resource handler needs.
pub struct RequestContext {
    pub verb: &'static str,
    pub shared: Arc<Shared>,
    pub rt: Arc<ResourceType>,
    pub path: ResourcePath,
    pub query: HashMap<String, String>,
    pub accept: String,
    /// What the `Accept` asked for: the encoding and conversion of responses.
    pub media: Negotiated,
    pub content_type: String,
    /// The `User-Agent` header: the default field manager of writes.
    pub user_agent: String,
    pub caller: Caller,
}

impl RequestContext {
    pub fn ns(&self) -> &str {
        self.path.namespace.as_deref().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or("")
    }

    pub fn version(&self) -> &str {
        &self.path.version
    }

    fn q(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    /// The options kind of a write (`CreateOptions`...), which names its invalid options.
    fn options_kind(&self) -> &'static str {
        match self.verb {
            "create" => "CreateOptions",
            "update" => "UpdateOptions",
            "patch" => "PatchOptions",
            _ => "DeleteOptions",
        }
    }

    fn dry_run(&self) -> ApiResult<bool> {
        options::dry_run(self.options_kind(), self.q("dryRun"))
    }

    fn write_options(&self) -> ApiResult<WriteOptions> {
        Ok(WriteOptions {
            dry_run: self.dry_run()?,
            subresource: self.path.subresource.clone(),
            field_validation: FieldValidation::parse(
                self.options_kind(),
                self.q("fieldValidation"),
            )?,
            field_manager: Some(manager_or_user_agent(
                self.q("fieldManager"),
                &self.user_agent,
            )),
        })
    }

    /// The list options of a list, watch or deletecollection, validated as the real
    /// server validates them (see [`options`]).
    pub fn list_options(&self) -> ApiResult<ListOptions> {
        let watch = self.verb == "watch";
        options::check_list(&self.query, watch, self.shared.watch_list)?;
        let limit = options::int(&self.query, "limit")?;
        options::int(&self.query, "timeoutSeconds")?;
        let rv = options::resource_version(self.q("resourceVersion").unwrap_or(""), watch)?;
        let (exact_rv, min_rv) = match self.q("resourceVersionMatch") {
            Some("Exact") => (rv, None),
            _ => (None, rv),
        };
        Ok(ListOptions {
            labels: LabelSelector::parse(self.q("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.q("fieldSelector").unwrap_or(""), &self.rt.kind)?,
            limit: limit.filter(|l| *l > 0).map(|l| l as usize),
            min_rv,
            continue_token: self
                .q("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            exact_rv,
        })
    }

    pub fn include_object(&self) -> IncludeObject {
        IncludeObject::parse(self.q("includeObject"))
    }

    /// An error in the encoding the request negotiated.
    pub fn error(&self, e: &ApiError) -> Response<Body> {
        negotiated_error(&self.accept, e)
    }

    /// `obj` converted as the `Accept` asked (`transformObject`): a `Status` as it is,
    /// otherwise PartialObjectMetadata(List) or a Table.
    pub fn convert(&self, obj: Value) -> ApiResult<Value> {
        if obj.get("kind").and_then(Value::as_str) == Some("Status") {
            return Ok(obj);
        }
        match &self.media.conversion {
            Conversion::None => Ok(obj),
            Conversion::Metadata(v) => negotiation::as_partial(&self.rt, &obj, v),
            Conversion::MetadataList(v) => negotiation::as_partial_list(&self.rt, &obj, v),
            Conversion::Table(_) if negotiation::is_list(&obj) => {
                let items = obj["items"].as_array().cloned().unwrap_or_default();
                Ok(table::table(
                    &self.rt,
                    self.version(),
                    &items,
                    obj.pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                    obj.pointer("/metadata/continue").and_then(Value::as_str),
                    self.include_object(),
                ))
            }
            Conversion::Table(_) => Ok(table::table(
                &self.rt,
                self.version(),
                std::slice::from_ref(&obj),
                meta::resource_version(&obj),
                None,
                self.include_object(),
            )),
        }
    }

    /// The items of a list response: those of built-in lists carry no `kind` or
    /// `apiVersion` (typed lists are encoded without their items' TypeMeta), custom
    /// resources' do. Conversions (Tables of whole objects) keep them.
    fn list_items(&self, mut items: Vec<Value>) -> Vec<Value> {
        if self.rt.is_crd() || self.media.conversion != Conversion::None {
            return items;
        }
        for item in &mut items {
            if let Some(o) = item.as_object_mut() {
                o.remove("kind");
                o.remove("apiVersion");
            }
        }
        items
    }

    fn reply(&self, code: u16, obj: &Value, warnings: &[String]) -> Response<Body> {
        self.reply_owned(code, obj.clone(), warnings)
    }

    /// `obj`, converted and encoded as negotiated (an error if it cannot be converted).
    fn reply_owned(&self, code: u16, obj: Value, warnings: &[String]) -> Response<Body> {
        match self.convert(obj) {
            Ok(v) => encoded_response(
                code,
                &v,
                self.media.encoding,
                self.media.encoding.content_type(),
                warnings,
            ),
            Err(e) => self.error(&e),
        }
    }

    fn get(&self) -> ApiResult<Response<Body>> {
        let c = self.shared.lock();
        let stored = c.get(&self.rt, self.ns(), self.name())?;
        let v = to_view(&self.rt, self.version(), &stored);
        drop(c);
        Ok(self.reply(200, &v, &[]))
    }

    fn list(&self) -> ApiResult<Response<Body>> {
        let opts = self.list_options()?;
        let ns = self.path.namespace.as_deref();
        let page = self
            .shared
            .lock()
            .list(&self.rt, self.version(), ns, &opts)?;
        let mut metadata = json!({ "resourceVersion": page.resource_version });
        if let Some(c) = &page.continue_token {
            metadata["continue"] = json!(c);
        }
        if let Some(r) = page.remaining {
            metadata["remainingItemCount"] = json!(r);
        }
        Ok(self.reply_owned(
            200,
            json!({
                "kind": self.rt.list_kind,
                "apiVersion": self.rt.api_version(self.version()),
                "metadata": metadata,
                "items": self.list_items(page.items),
            }),
            &[],
        ))
    }

    /// Decodes a body into an object of this resource, with the unknown/duplicate field
    /// warnings that `fieldValidation` asks for.
    fn decode_object(&self, body: &[u8], opts: &WriteOptions) -> ApiResult<(Value, Vec<String>)> {
        let parsed = decode::body(body, &self.content_type)?;
        self.admit_object(parsed.value, &parsed.duplicates, opts, body)
    }

    /// Checks that `obj` is an object of this resource and decodes it through its type:
    /// unknown fields are dropped and, with the `duplicates` of the body, warned about or
    /// refused as `fieldValidation` asks. `body` is quoted when the kind is missing.
    fn admit_object(
        &self,
        obj: Value,
        duplicates: &[String],
        opts: &WriteOptions,
        body: &[u8],
    ) -> ApiResult<(Value, Vec<String>)> {
        let want_av = self.rt.api_version(self.version());
        let mut obj = obj;
        // A built-in kind's decoder defaults the group, version and kind a body leaves out
        // from the URL (the real server's `DecoderToVersion` with the endpoint's GVK);
        // custom resources must name theirs.
        if !self.rt.is_crd()
            && let Some(m) = obj.as_object_mut()
        {
            for (key, value) in [("kind", &self.rt.kind), ("apiVersion", &want_av)] {
                if m.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
                    m.insert(key.to_string(), json!(value));
                }
            }
        }
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if kind.is_empty() {
            return Err(ApiError::bad_request(format!(
                "Object 'Kind' is missing in '{}'",
                String::from_utf8_lossy(body)
            )));
        }
        if av != want_av {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )));
        }
        if kind != self.rt.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                self.rt.kind
            )));
        }
        let (obj, unknown) = if self.rt.is_crd() {
            (obj, Vec::new())
        } else {
            let d = builtin::decode(&self.rt, self.version(), obj)?;
            (d.object, d.unknown_fields)
        };
        let problems = unknown
            .iter()
            .map(|p| crate::cluster::unknown_field(p))
            .chain(
                duplicates
                    .iter()
                    .map(|p| crate::cluster::duplicate_field(p)),
            )
            .collect();
        let warnings = opts
            .field_validation
            .check(&self.rt.kind, self.version(), problems)?;
        Ok((obj, warnings))
    }

    fn create(&self, body: &[u8]) -> ApiResult<Response<Body>> {
        let opts = self.write_options()?;
        let (obj, mut warnings) = self.decode_object(body, &opts)?;
        if matches!(
            self.rt.group.as_str(),
            "authorization.k8s.io" | "authentication.k8s.io"
        ) {
            return Ok(self.reply(201, &self.review(obj)?, &warnings));
        }
        let mut c = self.shared.lock();
        self.check_rbac_write(&mut c, &obj, None)?;
        let written = self.write(&mut c, obj, None, &opts)?;
        drop(c);
        warnings.extend(written.warnings);
        Ok(self.reply(201, &written.object, &warnings))
    }

    /// Whether any ValidatingAdmissionPolicyBinding exists (only then are policies run).
    fn has_bindings(c: &Cluster) -> bool {
        c.store.list(&policy_bindings_gr(), None).next().is_some()
    }

    /// Runs the ValidatingAdmissionPolicies on this request: its warnings, or the denial.
    fn admit_policies(
        &self,
        c: &Cluster,
        operation: &str,
        object: Option<&Value>,
        old: Option<&Value>,
        dry_run: bool,
    ) -> ApiResult<Vec<String>> {
        let bindings: Vec<Value> = c
            .store
            .list(&policy_bindings_gr(), None)
            .map(|o| (**o).clone())
            .collect();
        let policies: Vec<Value> = c
            .store
            .list(
                &GroupResource::new(
                    "admissionregistration.k8s.io",
                    "validatingadmissionpolicies",
                ),
                None,
            )
            .map(|o| (**o).clone())
            .collect();
        let namespace_object = if self.rt.namespaced {
            c.store
                .get(&crate::cluster::namespaces_gr(), "", self.ns())
                .map(|n| (**n).clone())
        } else {
            None
        };
        let name = object
            .or(old)
            .map(meta::name)
            .filter(|n| !n.is_empty())
            .unwrap_or(self.name());
        crate::policy::admit(
            &policies,
            &bindings,
            &crate::policy::Attributes {
                operation,
                rt: &self.rt,
                version: self.version(),
                subresource: self.path.subresource.as_deref(),
                namespace: self.ns(),
                name,
                object,
                old_object: old,
                user: &self.caller.user,
                dry_run,
                namespace_object: namespace_object.as_ref(),
            },
        )
    }

    /// Creates (`live` none) or updates `obj`, after the ValidatingAdmissionPolicies have
    /// admitted the object the write would store (validating admission runs after the
    /// object's own validation, so they see it defaulted and validated: a dry run first).
    fn write(
        &self,
        c: &mut Cluster,
        obj: Value,
        live: Option<&Value>,
        opts: &WriteOptions,
    ) -> ApiResult<crate::cluster::Written> {
        let (rt, version, ns, name) = (&self.rt, self.version(), self.ns(), self.name());
        let policy_warnings = if Self::has_bindings(c) {
            let dry = WriteOptions {
                dry_run: true,
                ..opts.clone()
            };
            let would = match live {
                None => c.create(rt, version, ns, obj.clone(), &dry)?,
                Some(_) => c.update(rt, version, ns, name, obj.clone(), &dry)?,
            };
            let old = live.map(|o| to_view(rt, version, o));
            let operation = if live.is_some() { "UPDATE" } else { "CREATE" };
            self.admit_policies(
                c,
                operation,
                Some(&would.object),
                old.as_ref(),
                opts.dry_run,
            )?
        } else {
            Vec::new()
        };
        let mut written = match live {
            None => c.create(rt, version, ns, obj, opts)?,
            Some(_) => c.update(rt, version, ns, name, obj, opts)?,
        };
        written.warnings.extend(policy_warnings);
        Ok(written)
    }

    fn update(&self, body: &[u8]) -> ApiResult<Response<Body>> {
        let opts = self.write_options()?;
        let (obj, mut warnings) = self.decode_object(body, &opts)?;
        let mut c = self.shared.lock();
        let old = c.get(&self.rt, self.ns(), self.name())?;
        // The generic registry's `Update` (k8s.io/apiserver/pkg/registry/generic/registry/
        // store.go): without a resourceVersion, an update is unconditional only where the
        // strategy allows it; otherwise 422, with the resource as the "kind".
        if meta::resource_version(&obj).is_empty() && !self.rt.allows_unconditional_update() {
            return Err(ApiError::invalid(
                &self.rt.plural,
                &self.rt.group,
                self.name(),
                &[FieldCause::worded(
                    "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                )],
            ));
        }
        self.check_rbac_write(&mut c, &obj, Some(&old))?;
        let written = self.write(&mut c, obj, Some(&old), &opts)?;
        drop(c);
        warnings.extend(written.warnings);
        Ok(self.reply(200, &written.object, &warnings))
    }

    /// PATCH, as `k8s.io/apiserver/pkg/endpoints/handlers/patch.go` does it: the patch is
    /// applied to the live object, and the result takes the path of an update (or, for a
    /// server-side apply of an object that does not exist, of a create), under one lock
    /// so that nothing changes the object in between.
    /// <https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply>
    fn patch(&self, body: &[u8]) -> ApiResult<Response<Body>> {
        let kind = self.rt.patch_kind(self.version());
        let patch_type = PatchType::from_content_type(&self.content_type)
            .filter(|t| kind.supported_patch_types().contains(t))
            .ok_or_else(|| patch_error(&PatchError::unsupported_media_type(&kind)))?;
        if !matches!(self.path.subresource.as_deref(), None | Some("status")) {
            return Err(ApiError::method_not_allowed());
        }
        self.check_patch_options(patch_type)?;
        let mut opts = self.write_options()?;
        let mut c = self.shared.lock();
        let live = c
            .store
            .get(&self.rt.storage, self.ns(), self.name())
            .map(|stored| to_view(&self.rt, self.version(), stored));
        if patch_type == PatchType::Apply {
            let config =
                decode_apply_body(body).map_err(|e| ApiError::from_status(&e.to_status()))?;
            let config = self.named_like_the_url(config)?;
            let time = meta::now_rfc3339();
            let writer = Writer {
                manager: self.q("fieldManager").unwrap_or(""),
                subresource: self.path.subresource.as_deref(),
                time: &time,
            };
            let force = self
                .q("force")
                .is_some_and(|f| crate::options::go_bool(f) == Some(true));
            let applied = self
                .rt
                .field_manager(self.version())
                .apply(live.as_ref(), &config, &writer, force)
                .map_err(|e| ApiError::from_status(&e.to_status()))?;
            // The apply already recorded the manager's fields.
            opts.field_manager = None;
            let (obj, mut warnings) = self.admit_object(applied, &[], &opts, body)?;
            self.check_rbac_write(&mut c, &obj, live.as_ref())?;
            let (code, written) = match &live {
                // Apply creates (`forceAllowCreate`), but not through a subresource.
                None if self.path.subresource.is_none() => {
                    (201, self.write(&mut c, obj, None, &opts)?)
                }
                None => {
                    return Err(ApiError::not_found(&self.rt.group_resource(), self.name()));
                }
                Some(l) => (200, self.write(&mut c, obj, Some(l), &opts)?),
            };
            drop(c);
            warnings.extend(written.warnings);
            return Ok(self.reply(code, &written.object, &warnings));
        }
        let Some(live) = live else {
            return Err(ApiError::not_found(&self.rt.group_resource(), self.name()));
        };
        let patched = apply_patch(&kind, &live, body, patch_type).map_err(|e| patch_error(&e))?;
        let duplicates = match patch_type {
            PatchType::Merge | PatchType::Strategic => {
                decode::json(body).map(|b| b.duplicates).unwrap_or_default()
            }
            PatchType::Json | PatchType::Apply => Vec::new(),
        };
        let (obj, mut warnings) = self.admit_object(patched, &duplicates, &opts, body)?;
        self.check_rbac_write(&mut c, &obj, Some(&live))?;
        let written = self.write(&mut c, obj, Some(&live), &opts)?;
        drop(c);
        warnings.extend(written.warnings);
        Ok(self.reply(200, &written.object, &warnings))
    }

    /// `ValidatePatchOptions`: `force` only for apply, `fieldManager` required for apply.
    fn check_patch_options(&self, patch_type: PatchType) -> ApiResult<()> {
        if patch_type == PatchType::Apply {
            if self.q("fieldManager").is_none_or(str::is_empty) {
                return Err(ApiError::from_status(
                    &ApplyError::FieldManagerRequired.to_status(),
                ));
            }
        } else if self.q("force").is_some() {
            return Err(ApiError::invalid(
                "PatchOptions",
                "meta.k8s.io",
                "",
                &[FieldCause::forbidden(
                    "force",
                    "may not be specified for non-apply patch",
                )],
            ));
        }
        Ok(())
    }

    /// An apply configuration with the URL's name when it has none; a different name is
    /// refused, as for an update.
    fn named_like_the_url(&self, mut config: Value) -> ApiResult<Value> {
        if !config.is_object() {
            return Ok(config);
        }
        let m = meta::metadata_mut(&mut config);
        match m.get("name").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("name".into(), json!(self.name()));
            }
            Some(n) if n != self.name() => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({})",
                    self.name()
                )));
            }
            Some(_) => {}
        }
        Ok(config)
    }

    /// SelfSubjectAccessReview / SelfSubjectRulesReview / SubjectAccessReview /
    /// SelfSubjectReview: answered (for the caller, or the user a SubjectAccessReview
    /// names), never stored.
    fn review(&self, obj: Value) -> ApiResult<Value> {
        let user = &self.caller.user;
        if self.rt.kind == "SelfSubjectReview" {
            return Ok(crate::reviews::self_subject_review(user));
        }
        if !self.shared.rbac {
            if self.rt.kind == "SubjectAccessReview" {
                // Validated as with RBAC, then allowed (AlwaysAllow).
                let snapshot = self.shared.lock().rbac_snapshot();
                rbac::subject_access_review(&obj, &snapshot)
                    .map_err(|e| ApiError::from_status(&e.status()))?;
            }
            return Ok(crate::reviews::review(&self.rt, obj));
        }
        let snapshot = self.shared.lock().rbac_snapshot();
        let answer = match self.rt.kind.as_str() {
            "SelfSubjectAccessReview" => rbac::self_subject_access_review(user, &obj, &snapshot),
            "SubjectAccessReview" => rbac::subject_access_review(&obj, &snapshot),
            _ => rbac::self_subject_rules_review(user, &obj, &snapshot),
        };
        answer.map_err(|e| ApiError::from_status(&e.status()))
    }

    /// RBAC's escalation prevention for writes of Roles, ClusterRoles and bindings.
    fn check_rbac_write(
        &self,
        cluster: &mut Cluster,
        obj: &Value,
        old: Option<&Value>,
    ) -> ApiResult<()> {
        let Some(attrs) = &self.caller.attributes else {
            return Ok(());
        };
        let snapshot = cluster.rbac_snapshot();
        rbac::check_rbac_write(attrs, obj, old, &snapshot)
            .map_err(|e| ApiError::from_status(&e.status()))
    }

    fn delete_options(&self, body: &[u8]) -> ApiResult<DeleteOptions> {
        let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
            json!({})
        } else {
            decode::body(body, &self.content_type)?.value
        };
        options::int(&self.query, "gracePeriodSeconds")?;
        let policy_text = b
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .or(self.q("propagationPolicy"));
        let policy = policy_text.map(Propagation::parse).transpose()?;
        let dry_run = self.dry_run()?
            || meta::string_list(b.get("dryRun"))
                .iter()
                .any(|d| d == "All");
        let orphan = b.get("orphanDependents").and_then(Value::as_bool).or(self
            .q("orphanDependents")
            .and_then(|o| o.parse::<bool>().ok()));
        // ValidateDeleteOptions: the two ways of choosing a policy exclude each other.
        if let (Some(_), Some(p)) = (orphan, policy_text) {
            return Err(options::invalid(
                "DeleteOptions",
                &[FieldCause::invalid(
                    "propagationPolicy",
                    json!(p),
                    "orphanDependents and deletionPropagation cannot be both set",
                )],
            ));
        }
        let pre = |k: &str| {
            b.pointer(&format!("/preconditions/{k}"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Ok(DeleteOptions {
            dry_run,
            propagation: policy,
            orphan_dependents: orphan,
            precondition_uid: pre("uid"),
            precondition_rv: pre("resourceVersion"),
        })
    }

    fn delete(&self, body: &[u8]) -> ApiResult<Response<Body>> {
        let opts = self.delete_options(body)?;
        let mut c = self.shared.lock();
        let mut warnings = Vec::new();
        if Self::has_bindings(&c) {
            let old = to_view(
                &self.rt,
                self.version(),
                &*c.get(&self.rt, self.ns(), self.name())?,
            );
            warnings = self.admit_policies(&c, "DELETE", None, Some(&old), opts.dry_run)?;
        }
        let d = c.delete(&self.rt, self.version(), self.ns(), self.name(), &opts)?;
        drop(c);
        if self.rt.group == "batch"
            && self.rt.kind == "Job"
            && opts.propagation.is_none()
            && opts.orphan_dependents.is_none()
        {
            warnings.push("child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove them or set propagationPolicy=Orphan to suppress this warning".to_string());
        }
        if !d.removed {
            let code = if opts.orphan_dependents == Some(false) {
                202
            } else {
                200
            };
            return Ok(self.reply_owned(code, d.object, &warnings));
        }
        if self.rt.returns_deleted_object {
            return Ok(self.reply_owned(200, d.object, &warnings));
        }
        let mut details =
            json!({"name": self.name(), "kind": self.rt.plural, "uid": meta::uid(&d.object)});
        if !self.rt.group.is_empty() {
            details["group"] = json!(self.rt.group);
        }
        Ok(self.reply_owned(
            200,
            json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "details": details,
            }),
            &warnings,
        ))
    }

    fn delete_collection(&self, body: &[u8]) -> ApiResult<Response<Body>> {
        let opts = self.delete_options(body)?;
        let list = self.list_options()?;
        let ns = self.path.namespace.as_deref();
        let mut c = self.shared.lock();
        let items = c.delete_collection(&self.rt, self.version(), ns, &list, &opts)?;
        let rv = c.store.current_rv().to_string();
        drop(c);
        Ok(self.reply_owned(
            200,
            json!({
                "kind": self.rt.list_kind,
                "apiVersion": self.rt.api_version(self.version()),
                "metadata": {"resourceVersion": rv},
                "items": self.list_items(items),
            }),
            &[],
        ))
    }
}
