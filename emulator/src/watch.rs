//! Watches: a stream of `{"type", "object"}` lines from a resourceVersion, with bookmarks,
//! `timeoutSeconds`, `sendInitialEvents`, selector transitions and 410 for history that is
//! no longer retained.
//!
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes>,
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks>,
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists>.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::cluster::{ListOptions, to_view};
use crate::error::ApiError;
use crate::meta;
use crate::negotiation::{self, Conversion};
use crate::resources::ResourceType;
use crate::server::{Body, RequestContext};
use crate::store::{Change, EventType};
use crate::table;

struct Filter {
    rt: Arc<ResourceType>,
    version: String,
    namespace: Option<String>,
    opts: ListOptions,
}

impl Filter {
    fn view(&self, obj: &Value) -> Option<Value> {
        if self
            .namespace
            .as_deref()
            .is_some_and(|ns| meta::namespace(obj) != ns)
        {
            return None;
        }
        let v = to_view(&self.rt, &self.version, obj);
        (self.opts.labels.matches(&v) && self.opts.fields.matches(&v)).then_some(v)
    }

    /// The event a watcher with this filter sees for a change (objects moving in or out
    /// of the selection appear as ADDED or DELETED).
    fn translate(&self, c: &Change) -> Option<(EventType, Value)> {
        if c.storage != self.rt.storage {
            return None;
        }
        let now = self.view(&c.object);
        let before = c.previous.as_ref().and_then(|p| self.view(p)).is_some();
        match (c.kind, now) {
            (EventType::Added, Some(v)) => Some((EventType::Added, v)),
            (EventType::Modified, Some(v)) if before => Some((EventType::Modified, v)),
            (EventType::Modified, Some(v)) => Some((EventType::Added, v)),
            (EventType::Modified, None) if before => Some((
                EventType::Deleted,
                to_view(&self.rt, &self.version, &c.object),
            )),
            (EventType::Deleted, Some(v)) => Some((EventType::Deleted, v)),
            _ => None,
        }
    }
}

fn line(kind: &str, object: &Value) -> Bytes {
    let mut b = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

fn gone_line(e: &ApiError) -> Bytes {
    line("ERROR", &e.to_status())
}

/// How event objects are converted (the `Fixup` of kube-apiserver's `WatchServer`).
enum Convert {
    None,
    Table(Arc<ResourceType>, String, table::IncludeObject),
    Metadata(String),
    /// A single object cannot become a list: the real server fails to encode the first
    /// event and ends the watch.
    MetadataList,
}

struct Output {
    tx: mpsc::Sender<Bytes>,
    convert: Convert,
    headers_sent: bool,
}

impl Output {
    /// Sends an event; false when the watch is over.
    async fn event(&mut self, kind: EventType, obj: &Value) -> bool {
        let obj = match &self.convert {
            Convert::Table(rt, version, include) => {
                let mut t = table::table(
                    rt,
                    version,
                    std::slice::from_ref(obj),
                    meta::resource_version(obj),
                    None,
                    *include,
                );
                if self.headers_sent {
                    t["columnDefinitions"] = json!([]);
                }
                self.headers_sent = true;
                t
            }
            Convert::Metadata(version) => negotiation::partial(obj, version),
            Convert::MetadataList => return false,
            Convert::None => obj.clone(),
        };
        self.tx.send(line(kind.as_str(), &obj)).await.is_ok()
    }

    /// Sends a bookmark, converted like the other events (except into Tables).
    async fn bookmark(&mut self, b: Value) -> bool {
        match &self.convert {
            Convert::Metadata(version) => {
                // PartialObjectMetadata is a Go struct: a zero creationTimestamp is null.
                let mut obj = negotiation::partial(&b, version);
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.entry("creationTimestamp").or_insert(Value::Null);
                }
                self.tx.send(line("BOOKMARK", &obj)).await.is_ok()
            }
            Convert::MetadataList => false,
            Convert::None | Convert::Table(..) => self.tx.send(line("BOOKMARK", &b)).await.is_ok(),
        }
    }

    async fn raw(&self, b: Bytes) -> bool {
        self.tx.send(b).await.is_ok()
    }
}

/// A bookmark: an object of the kind with only its resourceVersion (and the
/// initial-events-end annotation). A built-in kind's empty Go object also shows
/// `creationTimestamp: null`; a custom resource's unstructured one does not.
fn bookmark(rt: &ResourceType, version: &str, rv: u64, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if !rt.is_crd() {
        metadata["creationTimestamp"] = Value::Null;
    }
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": rt.kind, "apiVersion": rt.api_version(version), "metadata": metadata})
}

/// Serves a watch request.
pub async fn watch(ctx: RequestContext) -> Response<Body> {
    let opts = match ctx.list_options() {
        Ok(o) => o,
        Err(e) => return ctx.error(&e),
    };
    let q = |k: &str| ctx.query.get(k).map(String::as_str);
    let bookmarks = q("allowWatchBookmarks") == Some("true");
    let send_initial = q("sendInitialEvents") == Some("true");
    // `timeoutSeconds` (checked by `list_options`): a negative one ends the watch at once.
    let timeout = match crate::options::int(&ctx.query, "timeoutSeconds") {
        Ok(Some(t)) if t < 0 => Some(0),
        Ok(Some(t)) if t > 0 => Some(t as u64),
        _ => None,
    };
    let rv_param = q("resourceVersion").unwrap_or("").to_string();
    let filter = Filter {
        rt: ctx.rt.clone(),
        version: ctx.version().to_string(),
        namespace: ctx.path.namespace.clone(),
        opts,
    };
    let requested_rv = if send_initial {
        None
    } else {
        match crate::options::resource_version(&rv_param, true) {
            Ok(rv) => rv,
            Err(e) => return ctx.error(&e),
        }
    };

    // Subscribe and read the starting point under one lock, so nothing falls between.
    let (mut rx, initial, start_rv, gone) = {
        let c = ctx.shared.lock();
        let rx = c.store.subscribe();
        let current = c.store.current_rv();
        match requested_rv {
            None => {
                let initial: Vec<(EventType, Value)> = c
                    .store
                    .list(&filter.rt.storage, filter.namespace.as_deref())
                    .filter_map(|o| filter.view(o))
                    .map(|v| (EventType::Added, v))
                    .collect();
                (rx, initial, current, None)
            }
            Some(rv) => match c.store.changes_since(rv) {
                Ok(changes) => {
                    let initial = changes
                        .iter()
                        .filter_map(|ch| filter.translate(ch))
                        .collect();
                    // A watch from a resourceVersion not reached yet sees only what
                    // comes after it.
                    (rx, initial, current.max(rv), None)
                }
                Err(too_old) => (
                    rx,
                    Vec::new(),
                    current,
                    Some(ApiError::gone(too_old.to_string())),
                ),
            },
        }
    };

    let (tx, body_rx) = mpsc::channel::<Bytes>(256);
    let convert = match &ctx.media.conversion {
        Conversion::None => Convert::None,
        Conversion::Table(_) => Convert::Table(
            ctx.rt.clone(),
            ctx.version().to_string(),
            ctx.include_object(),
        ),
        Conversion::Metadata(v) => Convert::Metadata(v.clone()),
        Conversion::MetadataList(_) => Convert::MetadataList,
    };
    let mut out = Output {
        tx,
        convert,
        headers_sent: false,
    };
    let mut drop_rx = ctx.shared.drop_watches.subscribe();
    let mut shutdown = ctx.shared.shutdown.subscribe();
    let bookmark_every = ctx.shared.bookmark_interval;
    tokio::spawn(async move {
        if let Some(e) = gone {
            out.raw(gone_line(&e)).await;
            return;
        }
        for (kind, obj) in &initial {
            if !out.event(*kind, obj).await {
                return;
            }
        }
        if send_initial
            && bookmarks
            && !out
                .bookmark(bookmark(&filter.rt, &filter.version, start_rv, true))
                .await
        {
            return;
        }
        // The resourceVersion of the last change of this resource: what bookmarks carry.
        // As the watch cache (`cacheWatcher.nextBookmarkTime`, k8s.io/apiserver/pkg/storage/
        // cacher), bookmarks come every `bookmark_every` (a minute by default) and once
        // 2 s before the timeout, and only when the resource has changed since the watch
        // began (a bookmark at the starting resourceVersion is never sent).
        let mut last_rv = start_rv;
        let lasts = Duration::from_secs(timeout.unwrap_or(u64::MAX / 4));
        let deadline = tokio::time::sleep(lasts);
        tokio::pin!(deadline);
        let pre_timeout = tokio::time::sleep(match timeout {
            Some(t) if t > 2 => Duration::from_secs(t - 2),
            _ => Duration::from_secs(u64::MAX / 4),
        });
        tokio::pin!(pre_timeout);
        let mut pre_timeout_sent = false;
        let mut ticker = tokio::time::interval(bookmark_every);
        ticker.tick().await;
        loop {
            tokio::select! {
                r = rx.recv() => match r {
                    Ok(change) => {
                        if change.rv <= start_rv {
                            continue;
                        }
                        if change.storage == filter.rt.storage {
                            last_rv = change.rv;
                        }
                        if let Some((kind, obj)) = filter.translate(&change)
                            && !out.event(kind, &obj).await
                        {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let e = ApiError::gone(format!("too old resource version: {last_rv} ({})", last_rv + 1));
                        out.raw(gone_line(&e)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = ticker.tick(), if bookmarks => {
                    if last_rv > start_rv
                        && !out.bookmark(bookmark(&filter.rt, &filter.version, last_rv, false)).await
                    {
                        return;
                    }
                }
                _ = &mut pre_timeout, if bookmarks && !pre_timeout_sent => {
                    pre_timeout_sent = true;
                    if last_rv > start_rv
                        && !out.bookmark(bookmark(&filter.rt, &filter.version, last_rv, false)).await
                    {
                        return;
                    }
                }
                _ = &mut deadline => return,
                _ = drop_rx.changed() => return,
                _ = shutdown.changed() => return,
                _ = out.tx.closed() => return,
            }
        }
    });

    let stream = futures::stream::unfold(body_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed());
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}
