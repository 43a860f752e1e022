//! Conformance of the emulator with documented Kubernetes API behaviour, one test per
//! behaviour, each citing the documentation it checks. Clients are kube-rs clients against
//! an in-process emulator.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Client, ResourceExt};
use kube_emulator::{Emulator, EmulatorHandle, FaultRule};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn start() -> Result<(EmulatorHandle, Client), Box<dyn std::error::Error>> {
    let e = Emulator::start().await?;
    let c = e.client()?;
    Ok((e, c))
}

fn api_error(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => (0, String::new(), other.to_string()),
    }
}

/// A raw HTTP request: (status, headers, body).
async fn raw(
    e: &EmulatorHandle,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String, String), Box<dyn std::error::Error>> {
    let mut s = tokio::net::TcpStream::connect(e.addr()).await?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n",
        e.addr(),
        e.admin_token(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).unwrap_or("0").parse()?;
    // Chunked bodies: keep the JSON lines only.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.lines()
            .filter(|l| l.starts_with('{'))
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        body.to_string()
    };
    Ok((code, head.to_string(), body))
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": "v"}}),
    )
    .unwrap()
}

const TENANT_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.dev"},
  "spec": {"group": "example.dev", "scope": "Namespaced",
    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"], "categories": ["example"]},
    "versions": [{"name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}},
      "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
          "size": {"type": "integer", "minimum": 1, "default": 1},
          "color": {"type": "string", "enum": ["red", "blue"]}}},
        "status": {"type": "object", "properties": {"phase": {"type": "string"}}}}}}}]}}"#;

async fn install_crd(client: &Client) -> Result<Api<DynamicObject>, Box<dyn std::error::Error>> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &serde_json::from_str(TENANT_CRD)?)
        .await?;
    let gvk = GroupVersionKind::gvk("example.dev", "v1", "Widget");
    Ok(Api::namespaced_with(
        client.clone(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    ))
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})).unwrap()
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions
// "resource versions ... changes whenever the object changes"; uid and creationTimestamp
// are set by the server (https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#uids).
#[tokio::test]
async fn create_sets_system_metadata_and_resource_versions_increase() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let a = api
        .create(&PostParams::default(), &cm("a", json!({})))
        .await?;
    let b = api
        .create(&PostParams::default(), &cm("b", json!({})))
        .await?;
    assert_eq!(a.uid().map(|u| u.len()), Some(36));
    assert!(a.creation_timestamp().is_some());
    let rv = |o: &ConfigMap| {
        o.resource_version()
            .unwrap_or_default()
            .parse::<u64>()
            .unwrap_or(0)
    };
    assert!(rv(&b) > rv(&a));
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#generated-values
// generateName: the server appends a random suffix.
#[tokio::test]
async fn generate_name_appends_a_random_suffix() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let mut o: ConfigMap = serde_json::from_value(json!({"metadata": {"generateName": "gen-"}}))?;
    o.metadata.name = None;
    let created = api.create(&PostParams::default(), &o).await?;
    let name = created.name_any();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#conflicts and
// https://github.com/kubernetes/community/blob/master/contributors/devel/sig-architecture/api-conventions.md#concurrency-control-and-consistency
#[tokio::test]
async fn stale_resource_version_gets_409_conflict() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let first = api
        .create(&PostParams::default(), &cm("acme", json!({})))
        .await?;
    let mut newer = first.clone();
    newer.data = Some([("k".to_string(), "2".to_string())].into());
    api.replace("acme", &PostParams::default(), &newer).await?;
    let mut stale = first;
    stale.data = Some([("k".to_string(), "3".to_string())].into());
    let err = api
        .replace("acme", &PostParams::default(), &stale)
        .await
        .err()
        .map(api_error);
    assert_eq!(
        err,
        Some((409, "Conflict".into(), "Operation cannot be fulfilled on configmaps \"acme\": the object has been modified; please apply your changes to the latest version and try again".into()))
    );
    Ok(())
}

// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource
// "PUT requests to the /status subresource ... ignore changes to anything except the status
// stanza"; "PUT/POST/PATCH requests to the custom resource ignore changes to the status
// stanza"; "metadata.generation is incremented on all changes except changes to .metadata or .status".
#[tokio::test]
async fn status_subresource_and_generation() -> TestResult {
    let (_e, c) = start().await?;
    let api = install_crd(&c).await?;
    let mut w = widget("w1", json!({"size": 2}));
    w.data["status"] = json!({"phase": "ignored"});
    let created = api.create(&PostParams::default(), &w).await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );
    let mut s = created.clone();
    s.data["status"] = json!({"phase": "Ready"});
    s.data["spec"]["size"] = json!(9);
    let after_status = api.replace_status("w1", &PostParams::default(), &s).await?;
    assert_eq!(after_status.data["status"]["phase"], "Ready");
    assert_eq!(
        after_status.data["spec"]["size"], 2,
        "/status does not change spec"
    );
    assert_eq!(after_status.metadata.generation, Some(1));
    let mut m = after_status.clone();
    m.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
    let after_meta = api.replace("w1", &PostParams::default(), &m).await?;
    assert_eq!(
        after_meta.metadata.generation,
        Some(1),
        "metadata changes keep generation"
    );
    let mut sp = after_meta.clone();
    sp.data["spec"]["size"] = json!(3);
    sp.data["status"] = json!({"phase": "Changed"});
    let after_spec = api.replace("w1", &PostParams::default(), &sp).await?;
    assert_eq!(after_spec.metadata.generation, Some(2));
    assert_eq!(
        after_spec.data["status"]["phase"], "Ready",
        "main endpoint ignores status"
    );
    Ok(())
}

// https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/#how-finalizers-work
// Deleting an object with finalizers sets deletionTimestamp; it is removed when the last
// finalizer goes. No new finalizers can be added while deleting.
#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let mut o = cm("held", json!({}));
    o.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    api.create(&PostParams::default(), &o).await?;
    api.delete("held", &DeleteParams::default()).await?;
    let mut marked = api.get("held").await?;
    assert!(marked.metadata.deletion_timestamp.is_some());
    assert_eq!(marked.metadata.deletion_grace_period_seconds, Some(0));
    let mut more = marked.clone();
    more.metadata.finalizers = Some(vec!["example.dev/hold".into(), "example.dev/new".into()]);
    let (code, _, msg) = api
        .replace("held", &PostParams::default(), &more)
        .await
        .err()
        .map(api_error)
        .unwrap_or_default();
    assert_eq!(code, 422);
    assert!(
        msg.contains("no new finalizers can be added if the object is being deleted"),
        "{msg}"
    );
    marked.metadata.finalizers = None;
    api.replace("held", &PostParams::default(), &marked).await?;
    assert_eq!(api.get_opt("held").await?.map(|o| o.name_any()), None);
    Ok(())
}

// https://kubernetes.io/docs/tasks/administer-cluster/namespaces/#deleting-a-namespace and
// https://kubernetes.io/docs/concepts/overview/working-with-objects/namespaces/ : a deleted
// namespace is Terminating until its contents are gone; nothing new may be created in it.
#[tokio::test]
async fn namespace_lifecycle() -> TestResult {
    let (_e, c) = start().await?;
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}}))?,
    )
    .await?;
    let ns = nss.get("team").await?;
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    assert_eq!(
        ns.spec.and_then(|s| s.finalizers),
        Some(vec!["kubernetes".to_string()])
    );
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "team");
    let mut held = cm("held", json!({}));
    held.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    cms.create(&PostParams::default(), &held).await?;
    cms.create(&PostParams::default(), &cm("plain", json!({})))
        .await?;
    nss.delete("team", &DeleteParams::default()).await?;
    let terminating = nss.get("team").await?;
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    assert!(
        cms.get_opt("plain").await?.is_none(),
        "contents are deleted"
    );
    let err = cms
        .create(&PostParams::default(), &cm("late", json!({})))
        .await
        .err()
        .map(api_error);
    assert_eq!(err, Some((403, "Forbidden".into(), "configmaps \"late\" is forbidden: unable to create new content in namespace team because it is being terminated".into())));
    let mut h = cms.get("held").await?;
    h.metadata.finalizers = None;
    cms.replace("held", &PostParams::default(), &h).await?;
    assert!(
        nss.get_opt("team").await?.is_none(),
        "the namespace goes once empty"
    );
    Ok(())
}

fn owned_cm(name: &str, owner: &Namespace, block: bool) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "Namespace", "name": owner.name_any(),
        "uid": owner.uid().unwrap_or_default(), "blockOwnerDeletion": block}]}}))
    .unwrap()
}

async fn owner_ns(c: &Client, name: &str) -> Result<Namespace, Box<dyn std::error::Error>> {
    let nss: Api<Namespace> = Api::all(c.clone());
    let mut ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
    ns.metadata.finalizers = Some(vec!["example.dev/keep".into()]);
    Ok(nss.create(&PostParams::default(), &ns).await?)
}

// https://kubernetes.io/docs/concepts/architecture/garbage-collection/#background-deletion
// Background cascading deletion; cluster-scoped owners may own namespaced dependents
// (https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/).
#[tokio::test]
async fn background_deletion_removes_dependents_of_a_cluster_scoped_owner() -> TestResult {
    let (_e, c) = start().await?;
    let nss: Api<Namespace> = Api::all(c.clone());
    let owner = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner-bg"}}))?,
        )
        .await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    cms.create(&PostParams::default(), &owned_cm("dep-bg", &owner, false))
        .await?;
    nss.delete("owner-bg", &DeleteParams::background()).await?;
    assert!(cms.get_opt("dep-bg").await?.is_none());
    Ok(())
}

// https://kubernetes.io/docs/concepts/architecture/garbage-collection/#foreground-deletion
// The owner gets deletionTimestamp and the foregroundDeletion finalizer and stays until
// dependents with blockOwnerDeletion=true are gone.
#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() -> TestResult {
    let (_e, c) = start().await?;
    let owner = owner_ns(&c, "owner-fg").await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let mut dep = owned_cm("dep-fg", &owner, true);
    dep.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    cms.create(&PostParams::default(), &dep).await?;
    let nss: Api<Namespace> = Api::all(c.clone());
    nss.delete("owner-fg", &DeleteParams::foreground()).await?;
    let o = nss.get("owner-fg").await?;
    assert!(o.finalizers().contains(&"foregroundDeletion".to_string()));
    let mut d = cms.get("dep-fg").await?;
    assert!(
        d.metadata.deletion_timestamp.is_some(),
        "dependent is being deleted"
    );
    d.metadata.finalizers = None;
    cms.replace("dep-fg", &PostParams::default(), &d).await?;
    let o = nss.get("owner-fg").await?;
    assert!(!o.finalizers().contains(&"foregroundDeletion".to_string()));
    Ok(())
}

// https://kubernetes.io/docs/concepts/architecture/garbage-collection/#orphaned-dependents
#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() -> TestResult {
    let (_e, c) = start().await?;
    let nss: Api<Namespace> = Api::all(c.clone());
    let owner = nss
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner-or"}}))?,
        )
        .await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    cms.create(&PostParams::default(), &owned_cm("dep-or", &owner, false))
        .await?;
    nss.delete("owner-or", &DeleteParams::orphan()).await?;
    let d = cms.get("dep-or").await?;
    assert!(d.metadata.owner_references.unwrap_or_default().is_empty());
    Ok(())
}

// https://kubernetes.io/docs/concepts/overview/working-with-objects/owners-dependents/
// "if the owner ... does not exist, the dependent is deleted" (an absent owner uid).
#[tokio::test]
async fn dependents_of_a_missing_owner_are_collected() -> TestResult {
    let (_e, c) = start().await?;
    let cms: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let ghost: Namespace = serde_json::from_value(
        json!({"metadata": {"name": "ghost", "uid": "00000000-0000-4000-8000-000000000000"}}),
    )?;
    cms.create(&PostParams::default(), &owned_cm("orphaned", &ghost, false))
        .await?;
    assert!(cms.get_opt("orphaned").await?.is_none());
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#dry-run
#[tokio::test]
async fn dry_run_does_not_persist() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let o = api.create(&pp, &cm("dry", json!({}))).await?;
    assert_eq!(o.name_any(), "dry");
    assert!(api.get_opt("dry").await?.is_none());
    Ok(())
}

// https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors and
// https://kubernetes.io/docs/concepts/overview/working-with-objects/field-selectors/
#[tokio::test]
async fn list_with_label_and_field_selectors() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    api.create(
        &PostParams::default(),
        &cm("web", json!({"app": "web", "tier": "front"})),
    )
    .await?;
    api.create(&PostParams::default(), &cm("db", json!({"app": "db"})))
        .await?;
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items.iter().map(|o| o.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app in (web,db),!tier"))
                .await?
        ),
        vec!["db"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().labels("app!=db,tier"))
                .await?
        ),
        vec!["web"]
    );
    assert_eq!(
        names(
            api.list(&ListParams::default().fields("metadata.name=web"))
                .await?
        ),
        vec!["web"]
    );
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#retrieving-large-results-sets-in-chunks
// limit/continue; an expired continue token is 410 Gone.
#[tokio::test]
async fn paging_with_limit_and_continue_and_410_when_expired() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    for i in 0..5 {
        api.create(&PostParams::default(), &cm(&format!("p{i}"), json!({})))
            .await?;
    }
    let first = api.list(&ListParams::default().limit(2)).await?;
    assert_eq!(first.items.len(), 2);
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    let token = first.metadata.continue_.clone().unwrap_or_default();
    api.create(&PostParams::default(), &cm("later", json!({})))
        .await?;
    let second = api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await?;
    assert_eq!(
        second
            .items
            .iter()
            .map(|o| o.name_any())
            .collect::<Vec<_>>(),
        vec!["p2", "p3", "p4"],
        "pages are a consistent snapshot"
    );
    e.compact();
    let err = api
        .list(&ListParams::default().limit(2).continue_token(&token))
        .await
        .err()
        .map(api_error);
    assert_eq!(err.map(|e| e.0), Some(410));
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes
// Watch from a resourceVersion sees later changes; 410 Gone when that version is no longer retained.
#[tokio::test]
async fn watch_from_resource_version_and_410_after_compaction() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let a = api
        .create(&PostParams::default(), &cm("w", json!({})))
        .await?;
    let rv = a.resource_version().unwrap_or_default();
    api.delete("w", &DeleteParams::default()).await?;
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await?
        .boxed();
    match stream.try_next().await? {
        Some(WatchEvent::Deleted(o)) => assert_eq!(o.name_any(), "w"),
        other => panic!("expected DELETED, got {other:?}"),
    }
    e.compact();
    let mut stream = api
        .watch(&WatchParams::default().timeout(5), &rv)
        .await?
        .boxed();
    match stream.try_next().await? {
        Some(WatchEvent::Error(s)) => assert_eq!(s.code, 410),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#watch-bookmarks
#[tokio::test]
async fn watch_bookmarks_carry_the_current_resource_version() -> TestResult {
    let e = Emulator::builder()
        .bookmark_interval(Duration::from_millis(100))
        .serve()
        .await?;
    let api: Api<ConfigMap> = Api::default_namespaced(e.client()?);
    let mut stream = api
        .watch(
            &WatchParams {
                bookmarks: true,
                ..WatchParams::default().timeout(5)
            },
            "0",
        )
        .await?
        .boxed();
    // Bookmarks come once the resource has changed since the watch began.
    let created = api
        .create(&PostParams::default(), &cm("b", json!({})))
        .await?;
    loop {
        match stream.try_next().await? {
            Some(WatchEvent::Bookmark(b)) => {
                assert_eq!(
                    Some(b.metadata.resource_version),
                    created.resource_version()
                );
                break;
            }
            Some(_) => continue,
            None => panic!("watch ended without a bookmark"),
        }
    }
    Ok(())
}

// Bookmark timing of the real watch cache (`cacheWatcher.nextBookmarkTime` in
// k8s.io/apiserver/pkg/storage/cacher: "right before the watcher timeout - for now we
// simply set it 2s before the deadline", and "roughly every minute"; a bookmark is only
// sent past the watch's starting resourceVersion), as seen on kube-apiserver v1.33: a
// quiet resource gets no bookmark at all; after a change, one 2 s before the timeout. The
// bookmark of a built-in kind shows `creationTimestamp: null`, as its Go object does.
#[tokio::test]
async fn bookmarks_come_before_the_timeout_and_only_after_changes() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let rv = e.resource_version();
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=4&resourceVersion={rv}"
    );
    let (code, _, quiet) = raw(&e, "GET", &path, &[], "").await?;
    assert_eq!(
        (code, quiet.as_str()),
        (200, ""),
        "a quiet resource gets no bookmark"
    );

    let started = std::time::Instant::now();
    let watch = raw(&e, "GET", &path, &[], "");
    let create = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.create(&PostParams::default(), &cm("t", json!({})))
            .await
    };
    let ((code, _, body), created) =
        tokio::try_join!(watch, async { create.await.map_err(Into::into) })?;
    assert_eq!(code, 200);
    let events: Vec<Value> = body
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(events.len(), 2, "{body}");
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(
        events[1],
        json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1",
               "metadata": {"resourceVersion": created.resource_version(), "creationTimestamp": null}}})
    );
    assert!(started.elapsed() >= Duration::from_secs(4));
    Ok(())
}

// 410 Gone from outside the test process: `POST /emulator/compact` (an emulator endpoint,
// not a Kubernetes one; administrators only in RBAC mode) forgets the change history as
// etcd compaction does, so a client's relist path can be driven by any client
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses).
#[tokio::test]
async fn the_compact_endpoint_makes_old_resource_versions_gone() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let a = api
        .create(&PostParams::default(), &cm("g", json!({})))
        .await?;
    let rv = a.resource_version().unwrap_or_default();
    api.create(&PostParams::default(), &cm("h", json!({})))
        .await?;
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&resourceVersion={rv}"
    );
    let (_, _, before) = raw(&e, "GET", &path, &[], "").await?;
    assert!(before.contains("\"ADDED\""), "{before}");
    let (code, _, body) = raw(&e, "GET", "/emulator/compact", &[], "").await?;
    assert_eq!(code, 405, "{body}");
    let (code, _, body) = raw(&e, "POST", "/emulator/compact", &[], "").await?;
    assert_eq!(code, 200, "{body}");
    let (_, _, after) = raw(&e, "GET", &path, &[], "").await?;
    let event: Value = serde_json::from_str(&after)?;
    assert_eq!(event["type"], "ERROR");
    assert_eq!(event["object"]["code"], 410);
    let (code, _, body) = raw(
        &e,
        "GET",
        &format!(
            "/api/v1/namespaces/default/configmaps?resourceVersion={rv}&resourceVersionMatch=Exact"
        ),
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 410, "{body}");

    let secured = Emulator::builder().rbac(true).serve().await?;
    let alice = secured.client_as("alice", &[])?;
    let (code, _) = send_json(&alice, "POST", "/emulator/compact", json!({})).await?;
    assert_eq!(code, 403);
    let (code, _) = send_json(&secured.client()?, "POST", "/emulator/compact", json!({})).await?;
    assert_eq!(code, 200);
    Ok(())
}

// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#create-a-customresourcedefinition
// A new CRD becomes Established and its resource is served; deleting the CRD deletes its objects.
#[tokio::test]
async fn crd_serves_its_resource_and_deleting_it_deletes_objects() -> TestResult {
    let (e, c) = start().await?;
    let api = install_crd(&c).await?;
    let crds: Api<CustomResourceDefinition> = Api::all(c.clone());
    let crd = crds.get("widgets.example.dev").await?;
    let conds = crd.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "NamesAccepted" && c.status == "True")
    );
    let w = api
        .create(&PostParams::default(), &widget("w", json!({})))
        .await?;
    assert_eq!(w.data["spec"]["size"], 1, "schema defaults apply");
    crds.delete("widgets.example.dev", &DeleteParams::default())
        .await?;
    assert!(crds.get_opt("widgets.example.dev").await?.is_none());
    let (code, _, _) = raw(
        &e,
        "GET",
        "/apis/example.dev/v1/namespaces/default/widgets",
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 404, "the resource is no longer served");
    Ok(())
}

// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation
// Invalid custom resources are refused with 422 naming the field.
#[tokio::test]
async fn invalid_custom_resources_get_422_with_causes() -> TestResult {
    let (_e, c) = start().await?;
    let api = install_crd(&c).await?;
    let err = api
        .create(
            &PostParams::default(),
            &widget("bad", json!({"size": 0, "color": "green"})),
        )
        .await
        .err()
        .map(api_error);
    let (code, reason, msg) = err.unwrap_or_default();
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        msg.contains("spec.size") && msg.contains("spec.color"),
        "{msg}"
    );
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#receiving-resources-as-tables and
// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#additional-printer-columns
#[tokio::test]
async fn tables_use_printer_columns() -> TestResult {
    let (e, c) = start().await?;
    let api = install_crd(&c).await?;
    api.create(&PostParams::default(), &widget("t", json!({"size": 7})))
        .await?;
    let (code, _, body) = raw(
        &e,
        "GET",
        "/apis/example.dev/v1/namespaces/default/widgets",
        &[("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    let t: Value = serde_json::from_str(&body)?;
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["columnDefinitions"][1]["name"], "Size");
    assert_eq!(t["rows"][0]["cells"], json!(["t", 7]));
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#setting-the-field-validation-level
// Strict refuses unknown fields (400), the default (Warn) stores and warns.
#[tokio::test]
async fn field_validation_strict_and_warn() -> TestResult {
    let (e, _c) = start().await?;
    let body = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fv"},"data":{"a":"b"},"bogus":1}"#;
    let (code, _, msg) = raw(
        &e,
        "POST",
        "/api/v1/namespaces/default/configmaps?fieldValidation=Strict",
        &[("Content-Type", "application/json")],
        body,
    )
    .await?;
    assert_eq!(code, 400);
    assert!(
        msg.contains(r#"strict decoding error: unknown field \"bogus\""#),
        "{msg}"
    );
    let (code, head, _) = raw(
        &e,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Content-Type", "application/json")],
        body,
    )
    .await?;
    assert_eq!(code, 201);
    assert!(
        head.to_ascii_lowercase()
            .contains(r#"warning: 299 - "unknown field \"bogus\"""#),
        "{head}"
    );
    Ok(())
}

// https://kubernetes.io/docs/concepts/configuration/secret/#restriction-names-data
// stringData is merged into data on write and never returned.
#[tokio::test]
async fn secret_string_data_is_merged_into_data() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<Secret> = Api::default_namespaced(c);
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}}),
    )?;
    let created = api.create(&PostParams::default(), &s).await?;
    assert!(created.string_data.is_none());
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    let data = created.data.unwrap_or_default();
    assert_eq!(
        data.get("password").map(|b| b.0.clone()),
        Some(b"hunter2".to_vec())
    );
    Ok(())
}

// https://kubernetes.io/docs/concepts/overview/kubernetes-api/#discovery-api
// (aggregated discovery is served for the apidiscovery.k8s.io/v2 Accept type).
#[tokio::test]
async fn discovery_plain_and_aggregated() -> TestResult {
    let (e, _c) = start().await?;
    let (_, _, v) = raw(&e, "GET", "/version", &[], "").await?;
    let v: Value = serde_json::from_str(&v)?;
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str()),
        (Some("1"), Some("33"))
    );
    let (code, head, body) = raw(
        &e,
        "GET",
        "/apis",
        &[(
            "Accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    assert!(head.contains("as=APIGroupDiscoveryList"));
    let d: Value = serde_json::from_str(&body)?;
    assert_eq!(d["kind"], "APIGroupDiscoveryList");
    let (_, _, plain) = raw(&e, "GET", "/api/v1", &[], "").await?;
    assert!(plain.contains("\"shortNames\":[\"cm\"]"));
    Ok(())
}

// Fault injection and request counting (emulator features, see emulator/README.md).
#[tokio::test]
async fn faults_and_request_counters() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    // 500: kube-rs retries 503 by itself.
    e.inject_fault(FaultRule::fail(Some("create"), Some("configmaps"), 500).times(1));
    let err = api
        .create(&PostParams::default(), &cm("f", json!({})))
        .await
        .err()
        .map(api_error);
    assert_eq!(err.map(|e| e.0), Some(500));
    api.create(&PostParams::default(), &cm("f", json!({})))
        .await?;
    assert_eq!(e.request_count("create", "configmaps"), 2);
    Ok(())
}

#[tokio::test]
async fn a_hang_for_one_user_holds_only_its_requests_until_removed() -> TestResult {
    let (e, admin) = start().await?;
    let admin_cms: Api<ConfigMap> = Api::default_namespaced(admin);
    let alice_cms: Api<ConfigMap> = Api::default_namespaced(e.client_as("alice", &[])?);
    admin_cms
        .create(&PostParams::default(), &cm("h", json!({})))
        .await?;
    let hang =
        e.inject_fault(FaultRule::hang(Some("update"), Some("configmaps")).for_user("alice"));
    let current = admin_cms.get("h").await?;
    let held = tokio::spawn({
        let alice_cms = alice_cms.clone();
        let mut changed = current.clone();
        changed.data = Some([("by".to_string(), "alice".to_string())].into());
        async move {
            alice_cms
                .replace("h", &PostParams::default(), &changed)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!held.is_finished(), "alice's update is held");
    assert!(alice_cms.get("h").await.is_ok(), "her reads are not");
    let mut by_admin = current.clone();
    by_admin.data = Some([("by".to_string(), "admin".to_string())].into());
    admin_cms
        .replace("h", &PostParams::default(), &by_admin)
        .await?;
    let hits = e.fault_hits(hang);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (
            hits[0].verb.as_str(),
            hits[0].user.as_str(),
            hits[0].name.as_deref()
        ),
        ("update", "alice", Some("h"))
    );
    // Released, it is handled as usual: its resourceVersion is stale now.
    e.remove_fault(hang);
    let answer = tokio::time::timeout(Duration::from_secs(10), held).await??;
    assert_eq!(answer.err().map(api_error).map(|e| e.0), Some(409));
    let data = admin_cms.get("h").await?.data.unwrap_or_default();
    assert_eq!(data.get("by").map(String::as_str), Some("admin"));
    Ok(())
}

// https://kubernetes.io/docs/reference/access-authn-authz/rbac/ and
// https://kubernetes.io/docs/reference/access-authn-authz/authentication/#static-token-file
#[tokio::test]
async fn rbac_mode_authenticates_and_authorizes() -> TestResult {
    let e = Emulator::builder().rbac(true).serve().await?;
    let admin = e.client()?;
    let alice = e.client_as("alice", &[])?;
    let alice_cms: Api<ConfigMap> = Api::default_namespaced(alice.clone());
    let err = alice_cms
        .list(&ListParams::default())
        .await
        .err()
        .map(api_error);
    assert_eq!(err.map(|e| e.0), Some(403));
    let roles: Api<Role> = Api::default_namespaced(admin.clone());
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}))?,
        )
        .await?;
    let rbs: Api<RoleBinding> = Api::default_namespaced(admin);
    rbs.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "alice-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}))?).await?;
    alice_cms.list(&ListParams::default()).await?;
    let err = alice_cms
        .create(&PostParams::default(), &cm("no", json!({})))
        .await
        .err()
        .map(api_error);
    assert_eq!(err.map(|e| e.0), Some(403));
    let (code, _, _) = {
        let mut s = tokio::net::TcpStream::connect(e.addr()).await?;
        s.write_all(
            format!(
                "GET /api/v1/namespaces HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                e.addr()
            )
            .as_bytes(),
        )
        .await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        (
            out.split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .parse::<u16>()?,
            (),
            (),
        )
    };
    assert_eq!(code, 401);
    Ok(())
}

// A kube-rs Controller with a finalizer, end to end: it adds its finalizer, and on deletion
// does its cleanup and removes it, after which the object is gone
// (https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/).
#[tokio::test]
async fn kube_runtime_controller_with_a_finalizer() -> TestResult {
    use kube::runtime::controller::{Action, Controller};
    use std::sync::Arc;
    const FINALIZER: &str = "example.dev/cleanup";
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let cleaned = Arc::new(tokio::sync::Notify::new());
    let ctx = Arc::new((api.clone(), cleaned.clone()));
    async fn reconcile(
        o: Arc<ConfigMap>,
        ctx: Arc<(Api<ConfigMap>, Arc<tokio::sync::Notify>)>,
    ) -> Result<Action, kube::Error> {
        let (api, cleaned) = &*ctx;
        let mut o = (*o).clone();
        let has = o.finalizers().iter().any(|f| f == FINALIZER);
        if o.metadata.deletion_timestamp.is_some() {
            if has {
                o.metadata.finalizers = Some(
                    o.finalizers()
                        .iter()
                        .filter(|f| *f != FINALIZER)
                        .cloned()
                        .collect(),
                );
                api.replace(&o.name_any(), &PostParams::default(), &o)
                    .await?;
                cleaned.notify_one();
            }
        } else if !has {
            o.finalizers_mut().push(FINALIZER.to_string());
            api.replace(&o.name_any(), &PostParams::default(), &o)
                .await?;
        }
        Ok(Action::await_change())
    }
    fn error_policy(
        _: Arc<ConfigMap>,
        _: &kube::Error,
        _: Arc<(Api<ConfigMap>, Arc<tokio::sync::Notify>)>,
    ) -> Action {
        Action::requeue(Duration::from_millis(100))
    }
    let controller = tokio::spawn(
        Controller::new(api.clone(), kube::runtime::watcher::Config::default())
            .run(reconcile, error_policy, ctx)
            .for_each(|_| async {}),
    );
    api.create(&PostParams::default(), &cm("managed", json!({})))
        .await?;
    let mut has_finalizer = false;
    for _ in 0..50 {
        if api
            .get("managed")
            .await?
            .finalizers()
            .iter()
            .any(|f| f == FINALIZER)
        {
            has_finalizer = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(has_finalizer, "the controller added its finalizer");
    api.delete("managed", &DeleteParams::default()).await?;
    tokio::time::timeout(Duration::from_secs(5), cleaned.notified()).await?;
    for _ in 0..50 {
        if api.get_opt("managed").await?.is_none() {
            controller.abort();
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("object still present after its finalizer was removed");
}

// ---------------------------------------------------------------------------------------
// PATCH and server-side apply
// ---------------------------------------------------------------------------------------

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Patch, PatchParams};

/// A PATCH through kube-rs with a raw body of the given type.
async fn patch_raw(
    e: &EmulatorHandle,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let (code, _, body) = raw(e, "PATCH", path, &[("Content-Type", content_type)], body).await?;
    Ok((code, serde_json::from_str(&body)?))
}

fn managers(o: &impl ResourceExt) -> Vec<(String, String, String)> {
    o.managed_fields()
        .iter()
        .map(|m| {
            (
                m.manager.clone().unwrap_or_default(),
                m.operation.clone().unwrap_or_default(),
                m.subresource.clone().unwrap_or_default(),
            )
        })
        .collect()
}

// https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/#use-a-json-merge-patch-to-update-a-deployment
// (RFC 7386: objects merge, `null` deletes a key, lists are replaced).
#[tokio::test]
async fn merge_patch_merges_maps_and_deletes_nulls() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    api.create(&PostParams::default(), &cm("m", json!({"a": "1"})))
        .await?;
    let patched = api
        .patch(
            "m",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"labels": {"b": "2"}}, "data": {"k": null, "n": "x"}}),
            ),
        )
        .await?;
    assert_eq!(
        patched.labels().get("a").map(String::as_str),
        Some("1"),
        "existing label kept"
    );
    assert_eq!(patched.labels().get("b").map(String::as_str), Some("2"));
    let data = patched.data.unwrap_or_default();
    assert!(!data.contains_key("k"), "null deleted the key");
    assert_eq!(data.get("n").map(String::as_str), Some("x"));
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply (JSON
// patch, RFC 6902); a failing `test` operation refuses the whole patch with 422 (RFC 6902
// section 5: "the entire patch document SHALL NOT be deemed successful").
#[tokio::test]
async fn json_patch_applies_operations_and_a_failing_test_is_422() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    api.create(&PostParams::default(), &cm("j", json!({})))
        .await?;
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/k", "value": "v"},
        {"op": "add", "path": "/data/n", "value": "x"},
        {"op": "remove", "path": "/data/k"},
    ]))?;
    let patched = api
        .patch("j", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await?;
    assert_eq!(
        patched.data,
        Some([("n".to_string(), "x".to_string())].into())
    );
    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/data/n", "value": "not-x"},
        {"op": "add", "path": "/data/z", "value": "z"},
    ]))?;
    let err = api
        .patch("j", &PatchParams::default(), &Patch::Json::<()>(failing))
        .await
        .unwrap_err();
    let (code, reason, _) = api_error(err);
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(
        !api.get("j")
            .await?
            .data
            .unwrap_or_default()
            .contains_key("z")
    );
    Ok(())
}

// https://kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch/#notes-on-the-strategic-merge-patch
// lists with patchStrategy merge (ObjectMeta.finalizers) are merged, not replaced; and
// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#advanced-topics
// custom resources do not support strategic merge patch (415).
#[tokio::test]
async fn strategic_merge_patch_merges_finalizers_and_is_415_on_custom_resources() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c.clone());
    let mut o = cm("s", json!({"a": "1"}));
    o.metadata.finalizers = Some(vec!["example.dev/one".into()]);
    api.create(&PostParams::default(), &o).await?;
    let patched = api
        .patch(
            "s",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"metadata": {"finalizers": ["example.dev/two"], "labels": {"b": "2"}}}),
            ),
        )
        .await?;
    // The patch's items first, then the server's (strategicpatch's normalizeElementOrder).
    assert_eq!(
        patched.finalizers(),
        &["example.dev/two".to_string(), "example.dev/one".to_string()]
    );
    assert_eq!(patched.labels().len(), 2);
    let widgets = install_crd(&c).await?;
    widgets
        .create(&PostParams::default(), &widget("w", json!({"size": 2})))
        .await?;
    let err = widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap_err();
    let (code, reason, message) = api_error(err);
    assert_eq!((code, reason.as_str()), (415, "UnsupportedMediaType"));
    assert!(
        !message.contains("strategic-merge-patch"),
        "the accepted types exclude strategic merge patch: {message}"
    );
    // An unknown content type is 415 on built-ins too.
    let (code, _) = patch_raw(
        &e,
        "/api/v1/namespaces/default/configmaps/s",
        "application/json",
        "{}",
    )
    .await?;
    assert_eq!(code, 415);
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#patch-and-apply : a patch
// carrying metadata.resourceVersion is a precondition; a stale one is 409 Conflict
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions).
// A patch of an object that does not exist is 404.
#[tokio::test]
async fn patch_with_a_stale_resource_version_is_409_and_missing_objects_404() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let created = api
        .create(&PostParams::default(), &cm("rv", json!({})))
        .await?;
    let stale = created.resource_version().unwrap_or_default();
    api.patch(
        "rv",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await?;
    let err = api
        .patch(
            "rv",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": stale}, "data": {"k": "3"}})),
        )
        .await
        .unwrap_err();
    let (code, reason, _) = api_error(err);
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert_eq!(
        api.get("rv").await?.data.unwrap_or_default().get("k"),
        Some(&"2".to_string())
    );
    let current = api.get("rv").await?.resource_version();
    let ok = api
        .patch(
            "rv",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": current}, "data": {"k": "4"}})),
        )
        .await?;
    assert_eq!(ok.data.unwrap_or_default().get("k"), Some(&"4".to_string()));
    let err = api
        .patch(
            "absent",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "1"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 404);
    Ok(())
}

// Patches go through the same admission as updates: CRD schema validation (422) and
// status-subresource rules (the main endpoint ignores status)
// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#validation,
// https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#status-subresource);
// generation increments on spec changes only; dryRun does not persist.
#[tokio::test]
async fn patches_of_custom_resources_are_validated_like_updates() -> TestResult {
    let (_e, c) = start().await?;
    let widgets = install_crd(&c).await?;
    widgets
        .create(&PostParams::default(), &widget("v", json!({"size": 2})))
        .await?;
    let err = widgets
        .patch(
            "v",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "green"}})),
        )
        .await
        .unwrap_err();
    let (code, reason, message) = api_error(err);
    assert_eq!((code, reason.as_str()), (422, "Invalid"), "{message}");
    assert!(message.contains("spec.color"), "{message}");
    let patched = widgets
        .patch(
            "v",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 5}, "status": {"phase": "Ignored"}})),
        )
        .await?;
    assert_eq!(patched.data["spec"]["size"], 5);
    assert!(patched.data.get("status").is_none());
    assert_eq!(patched.metadata.generation, Some(2));
    let status = widgets
        .patch_status(
            "v",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}, "status": {"phase": "Ready"}})),
        )
        .await?;
    assert_eq!(status.data["status"]["phase"], "Ready");
    assert_eq!(
        status.data["spec"]["size"], 5,
        "/status does not write spec"
    );
    assert_eq!(status.metadata.generation, Some(2));
    let dry = widgets
        .patch(
            "v",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"size": 7}})),
        )
        .await?;
    assert_eq!(dry.data["spec"]["size"], 7);
    assert_eq!(widgets.get("v").await?.data["spec"]["size"], 5);
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management :
// every write records its manager in managedFields (`Update` operations for create,
// update and non-apply patches; the manager is `fieldManager` or derived from the
// User-Agent), and writes through /status carry `subresource: status`.
#[tokio::test]
async fn every_write_records_its_field_manager() -> TestResult {
    let (_e, c) = start().await?;
    let widgets = install_crd(&c).await?;
    let created = widgets
        .create(
            &PostParams {
                field_manager: Some("creator".into()),
                ..Default::default()
            },
            &widget("m", json!({"size": 2})),
        )
        .await?;
    assert_eq!(
        managers(&created),
        vec![("creator".into(), "Update".into(), String::new())]
    );
    let fields = created.managed_fields()[0]
        .fields_v1
        .as_ref()
        .map(|f| f.0.clone())
        .unwrap_or_default();
    assert_eq!(fields["f:spec"]["f:size"], json!({}));
    let patched = widgets
        .patch(
            "m",
            &PatchParams {
                field_manager: Some("patcher".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await?;
    let fields_of = |o: &DynamicObject, manager: &str| -> Value {
        o.managed_fields()
            .iter()
            .find(|m| m.manager.as_deref() == Some(manager) && m.subresource.is_none())
            .and_then(|m| m.fields_v1.as_ref())
            .map(|f| f.0.clone())
            .unwrap_or_default()
    };
    let mut names = managers(&patched);
    names.sort();
    assert_eq!(
        names,
        vec![
            ("creator".into(), "Update".into(), String::new()),
            ("patcher".into(), "Update".into(), String::new())
        ]
    );
    assert_eq!(
        fields_of(&patched, "patcher")["f:spec"]["f:size"],
        json!({})
    );
    assert!(
        fields_of(&patched, "creator")["f:spec"]
            .get("f:size")
            .is_none(),
        "spec.size moved from the creator to the patcher"
    );
    let status = widgets
        .patch_status(
            "m",
            &PatchParams {
                field_manager: Some("controller".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"status": {"phase": "Ready"}})),
        )
        .await?;
    assert!(
        managers(&status).contains(&("controller".into(), "Update".into(), "status".into())),
        "{:?}",
        managers(&status)
    );
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/server-side-apply/ : apply creates the
// object when it does not exist (201); a manager that changes a field another manager
// owns gets 409 Conflict unless it forces
// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts); a field a
// manager applied before and no longer applies is removed
// (https://kubernetes.io/docs/reference/using-api/server-side-apply/#field-management,
// "removed from the object if no other field manager owns it"); `fieldManager` is
// required (422).
#[tokio::test]
async fn server_side_apply_creates_conflicts_forces_and_removes() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let path = "/api/v1/namespaces/default/configmaps/ssa";
    let apply = |manager: &str, force: bool| {
        format!(
            "{path}?fieldManager={manager}{}",
            if force { "&force=true" } else { "" }
        )
    };
    let yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: '1'\n  b: '2'\n";
    let (code, _, body) = raw(
        &e,
        "PATCH",
        &apply("alice", false),
        &[("Content-Type", "application/apply-patch+yaml")],
        yaml,
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    let o = api.get("ssa").await?;
    assert_eq!(
        managers(&o),
        vec![("alice".into(), "Apply".into(), String::new())]
    );
    // Bob applies a different value for `a`: conflict with alice.
    let bob = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ssa"},"data":{"a":"9","c":"3"}}"#;
    let (code, _, body) = raw(
        &e,
        "PATCH",
        &apply("bob", false),
        &[("Content-Type", "application/apply-patch+yaml")],
        bob,
    )
    .await?;
    assert_eq!(code, 409, "{body}");
    let status: Value = serde_json::from_str(&body)?;
    assert_eq!(status["reason"], "Conflict");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("conflict with \"alice\"") && m.contains(".data.a")),
        "{status}"
    );
    assert_eq!(api.get("ssa").await?.data.unwrap_or_default()["a"], "1");
    // Forced: bob takes `a` over.
    let (code, _, body) = raw(
        &e,
        "PATCH",
        &apply("bob", true),
        &[("Content-Type", "application/apply-patch+yaml")],
        bob,
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let o = api.get("ssa").await?;
    let data = o.data.clone().unwrap_or_default();
    assert_eq!((data["a"].as_str(), data["c"].as_str()), ("9", "3"));
    // Alice stops applying `b` (she owns it alone) and `a` (bob owns it now).
    let (code, _, body) = raw(
        &e,
        "PATCH",
        &apply("alice", false),
        &[("Content-Type", "application/apply-patch+yaml")],
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  d: '4'\n",
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let data = api.get("ssa").await?.data.unwrap_or_default();
    assert!(!data.contains_key("b"), "b was removed: {data:?}");
    assert_eq!(
        data.get("a").map(String::as_str),
        Some("9"),
        "bob's a stays"
    );
    assert_eq!(data.get("d").map(String::as_str), Some("4"));
    // No fieldManager: 422.
    let (code, _, body) = raw(
        &e,
        "PATCH",
        path,
        &[("Content-Type", "application/apply-patch+yaml")],
        yaml,
    )
    .await?;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("fieldManager"), "{body}");
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/server-side-apply/#using-server-side-apply-in-a-controller
// A controller applies with `force` as its own manager (what Landlord does for
// Namespaces, NetworkPolicies and its custom resources), and applies its status through
// /status (`Api::patch_status` with `Patch::Apply`).
#[tokio::test]
async fn kube_rs_server_side_apply_of_namespaces_network_policies_and_custom_resources()
-> TestResult {
    let (_e, c) = start().await?;
    let pp = PatchParams::apply("landlord").force();
    let namespaces: Api<Namespace> = Api::all(c.clone());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "tenant-a", "labels": {"app.kubernetes.io/managed-by": "landlord"}}}))?;
    let created = namespaces
        .patch("tenant-a", &pp, &Patch::Apply(&ns))
        .await?;
    assert_eq!(
        created
            .labels()
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("landlord")
    );
    assert_eq!(
        managers(&created),
        vec![("landlord".into(), "Apply".into(), String::new())]
    );
    let again = namespaces
        .patch("tenant-a", &pp, &Patch::Apply(&ns))
        .await?;
    assert_eq!(
        again.resource_version(),
        created.resource_version(),
        "an unchanged apply is a no-op"
    );

    let policies: Api<NetworkPolicy> = Api::namespaced(c.clone(), "tenant-a");
    let policy = |ports: Value| -> Result<NetworkPolicy, serde_json::Error> {
        serde_json::from_value(json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "isolate", "namespace": "tenant-a"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"],
                     "ingress": [{"from": [{"podSelector": {}}], "ports": ports}]}}))
    };
    let np = policies
        .patch(
            "isolate",
            &pp,
            &Patch::Apply(&policy(json!([{"port": 5432}]))?),
        )
        .await?;
    assert_eq!(np.metadata.generation, Some(1));
    let np = policies
        .patch(
            "isolate",
            &pp,
            &Patch::Apply(&policy(json!([{"port": 6432}]))?),
        )
        .await?;
    let ingress = np.spec.and_then(|s| s.ingress).unwrap_or_default();
    let ports = ingress[0].ports.clone().unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(np.metadata.generation, Some(2));

    let widgets = install_crd(&c).await?;
    let w = json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                   "metadata": {"name": "applied"}, "spec": {"color": "red"}});
    let applied = widgets.patch("applied", &pp, &Patch::Apply(&w)).await?;
    assert_eq!(
        applied.data["spec"]["size"], 1,
        "defaulted by the CRD schema"
    );
    let invalid = json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                         "metadata": {"name": "applied"}, "spec": {"color": "green"}});
    let err = widgets
        .patch("applied", &pp, &Patch::Apply(&invalid))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 422);
    let status = json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                        "metadata": {"name": "applied"}, "status": {"phase": "Ready"}});
    let with_status = widgets
        .patch_status("applied", &pp, &Patch::Apply(&status))
        .await?;
    assert_eq!(with_status.data["status"]["phase"], "Ready");
    assert_eq!(with_status.data["spec"]["color"], "red", "spec untouched");
    assert_eq!(
        managers(&with_status),
        vec![
            ("landlord".into(), "Apply".into(), String::new()),
            ("landlord".into(), "Apply".into(), "status".into())
        ]
    );
    // Apply through /status does not create.
    let err = widgets
        .patch_status(
            "nothing",
            &pp,
            &Patch::Apply(&json!({"apiVersion": "example.dev/v1", "kind": "Widget",
                                  "metadata": {"name": "nothing"}, "status": {"phase": "x"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_error(err).0, 404);
    Ok(())
}

// kube-runtime's `finalizer()` helper adds and removes its finalizer with JSON patches
// guarded by `test` operations
// (https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/).
#[tokio::test]
async fn kube_runtime_finalizer_helper_end_to_end() -> TestResult {
    use kube::runtime::controller::Action;
    use kube::runtime::finalizer::{Event, finalizer};
    use std::sync::Arc;
    const FINALIZER: &str = "landlord.dev/erasure";
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    api.create(&PostParams::default(), &cm("fin", json!({})))
        .await?;
    let cleaned = std::sync::atomic::AtomicBool::new(false);
    let step = |o: ConfigMap| {
        let api = api.clone();
        let cleaned = &cleaned;
        async move {
            finalizer(&api, FINALIZER, Arc::new(o), |event| async move {
                if let Event::Cleanup(_) = event {
                    cleaned.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Ok::<_, std::io::Error>(Action::await_change())
            })
            .await
        }
    };
    step(api.get("fin").await?).await?;
    assert_eq!(api.get("fin").await?.finalizers(), &[FINALIZER.to_string()]);
    // Applying again finds the finalizer and reconciles.
    step(api.get("fin").await?).await?;
    api.delete("fin", &DeleteParams::default()).await?;
    let deleting = api.get("fin").await?;
    assert!(deleting.metadata.deletion_timestamp.is_some());
    step(deleting).await?;
    assert!(cleaned.load(std::sync::atomic::Ordering::SeqCst));
    assert!(
        api.get_opt("fin").await?.is_none(),
        "gone once the finalizer is removed"
    );
    Ok(())
}

const AS_METADATA: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
const AS_METADATA_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

// https://kubernetes.io/docs/reference/using-api/api-concepts/#alternate-representations-of-resources
// and `transformObject`/`asPartialObjectMetadata(List)` in
// k8s.io/apiserver/pkg/endpoints/handlers/response.go: `as=PartialObjectMetadata` answers a
// get (and a watch's events) with the object's metadata only, `as=PartialObjectMetadataList`
// a list with its items' metadata, kind and apiVersion `meta.k8s.io/v1`; the bodies below
// are those kube-apiserver v1.33 sends (items carry their kind, the list keeps its
// resourceVersion and continue token).
#[tokio::test]
async fn metadata_only_get_list_and_watch_with_kube_rs() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c.clone());
    for name in ["m1", "m2"] {
        api.create(&PostParams::default(), &cm(name, json!({"a": "b"})))
            .await?;
    }

    let (code, head, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps/m1",
        &[("Accept", AS_METADATA)],
        "",
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    let got: Value = serde_json::from_str(&body)?;
    let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["apiVersion", "kind", "metadata"], "{got}");
    assert_eq!(got["kind"], "PartialObjectMetadata");
    assert_eq!(got["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(got["metadata"]["name"], "m1");
    assert_eq!(got["metadata"]["labels"]["a"], "b");
    assert!(got["metadata"]["managedFields"].is_array());

    let (code, _, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps?limit=1",
        &[("Accept", AS_METADATA_LIST)],
        "",
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body)?;
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert_eq!(list["apiVersion"], "meta.k8s.io/v1");
    assert!(list["metadata"]["continue"].is_string(), "{list}");
    assert!(list["metadata"]["resourceVersion"].is_string(), "{list}");
    assert_eq!(
        list["items"],
        json!([{"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": got["metadata"].clone()}])
    );

    // kube-rs's metadata API, as the operator uses it.
    let m = api.get_metadata("m2").await?;
    assert_eq!(
        m.types.as_ref().map(|t| t.kind.as_str()),
        Some("PartialObjectMetadata")
    );
    assert_eq!(m.metadata.name.as_deref(), Some("m2"));
    let listed = api.list_metadata(&ListParams::default()).await?;
    assert_eq!(listed.items.len(), 2);
    assert_eq!(
        listed.types.kind, "PartialObjectMetadataList",
        "{:?}",
        listed.types
    );
    let mut stream = api
        .watch_metadata(
            &WatchParams::default().timeout(5),
            &listed.metadata.resource_version.unwrap_or_default(),
        )
        .await?
        .boxed();
    api.create(&PostParams::default(), &cm("m3", json!({"c": "d"})))
        .await?;
    match stream.try_next().await? {
        Some(WatchEvent::Added(o)) => {
            assert_eq!(o.metadata.name.as_deref(), Some("m3"));
            assert_eq!(
                o.types.as_ref().map(|t| t.api_version.as_str()),
                Some("meta.k8s.io/v1")
            );
        }
        other => panic!("expected ADDED, got {other:?}"),
    }

    // The raw watch line: metadata only, bookmarks too.
    let (code, _, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1&allowWatchBookmarks=true&fieldSelector=metadata.name%3Dm3",
        &[("Accept", AS_METADATA)],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    let event: Value = serde_json::from_str(body.lines().next().unwrap_or(""))?;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(
        event["object"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["apiVersion", "kind", "metadata"]
    );
    assert_eq!(event["object"]["kind"], "PartialObjectMetadata");
    Ok(())
}

// Asking for the wrong shape, as kube-apiserver v1.33 answers it (response.go:
// `newNotAcceptableError`; the Go types are the API server's internal ones): a list as
// PartialObjectMetadata and an object as PartialObjectMetadataList are 406, except that the
// custom resource handler's unstructured object gives its 500 "content is not a list"; a
// watch as PartialObjectMetadataList ends at its first event (the real server cannot
// encode it).
#[tokio::test]
async fn metadata_only_requests_of_the_wrong_shape() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c.clone());
    api.create(&PostParams::default(), &cm("s", json!({})))
        .await?;
    let widgets = install_crd(&c).await?;
    widgets
        .create(&PostParams::default(), &widget("w", json!({"size": 2})))
        .await?;
    let cases = [
        (
            "/api/v1/namespaces/default/configmaps",
            AS_METADATA,
            406,
            "you requested PartialObjectMetadata, but the requested object is a list (*core.ConfigMapList)",
        ),
        (
            "/api/v1/namespaces/default/configmaps/s",
            AS_METADATA_LIST,
            406,
            "you requested PartialObjectMetadataList, but the requested object is not a list (*core.ConfigMap)",
        ),
        (
            "/apis/example.dev/v1/namespaces/default/widgets",
            AS_METADATA,
            406,
            "you requested PartialObjectMetadata, but the requested object is a list (*unstructured.UnstructuredList)",
        ),
        (
            "/apis/example.dev/v1/namespaces/default/widgets/w",
            AS_METADATA_LIST,
            500,
            "content is not a list",
        ),
    ];
    for (path, accept, want_code, want_message) in cases {
        let (code, _, body) = raw(&e, "GET", path, &[("Accept", accept)], "").await?;
        let status: Value = serde_json::from_str(&body)?;
        assert_eq!(
            (code, status["message"].as_str()),
            (want_code, Some(want_message)),
            "{path}"
        );
        assert_eq!(status["code"], want_code);
    }
    // The custom resource handler's 500 has no reason.
    let (_, _, body) = raw(&e, "GET", cases[3].0, &[("Accept", AS_METADATA_LIST)], "").await?;
    assert!(
        serde_json::from_str::<Value>(&body)?
            .get("reason")
            .is_none(),
        "{body}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(
            &raw(&e, "GET", cases[0].0, &[("Accept", AS_METADATA)], "")
                .await?
                .2
        )?["reason"],
        "NotAcceptable"
    );

    let (code, _, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=5",
        &[("Accept", AS_METADATA_LIST)],
        "",
    )
    .await?;
    assert_eq!((code, body.as_str()), (200, ""));
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#alternate-representations-of-resources
// and k8s.io/apiserver/pkg/endpoints/handlers/negotiation/negotiate.go: an Accept the
// server cannot serve is 406 with the media types it serves; kube-apiserver v1.33's
// messages, word for word (built-in kinds go through go-restful's route selection first,
// custom resources only through the API server's negotiation; a watch needs a streaming
// type, and an error is written in YAML when YAML was asked for).
#[tokio::test]
async fn unacceptable_media_types_are_406() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c.clone());
    api.create(&PostParams::default(), &cm("n", json!({})))
        .await?;
    let widgets = install_crd(&c).await?;
    widgets
        .create(&PostParams::default(), &widget("w", json!({"size": 2})))
        .await?;
    let served = "only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf";
    let restful = "406: Not Acceptable\n\nAvailable representations: application/json, application/yaml, application/vnd.kubernetes.protobuf";
    let cases = [
        (
            "/api/v1/namespaces/default/configmaps/n",
            "text/html",
            restful.to_string(),
        ),
        (
            "/api/v1/namespaces/default/configmaps/n",
            "application/*",
            restful.to_string(),
        ),
        (
            "/api/v1/namespaces/default/configmaps",
            "text/html",
            format!(
                "{restful}, application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch"
            ),
        ),
        (
            "/api/v1/namespaces/default/configmaps/n",
            "application/json;as=Foo;g=meta.k8s.io;v=v1",
            served.to_string(),
        ),
        (
            "/api/v1/namespaces/default/configmaps/n",
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v2",
            served.to_string(),
        ),
        (
            "/apis/example.dev/v1/namespaces/default/widgets/w",
            "text/html",
            served.to_string(),
        ),
        // Tables are JSON or YAML only.
        (
            "/apis/example.dev/v1/namespaces/default/widgets/w",
            "application/vnd.kubernetes.protobuf;as=Table;g=meta.k8s.io;v=v1",
            served.to_string(),
        ),
        // The 406 comes before the lookup.
        (
            "/api/v1/namespaces/default/configmaps/missing",
            "application/json;as=Foo;g=meta.k8s.io;v=v1",
            served.to_string(),
        ),
    ];
    for (path, accept, message) in &cases {
        let (code, _, body) = raw(&e, "GET", path, &[("Accept", accept)], "").await?;
        let status: Value = serde_json::from_str(&body)?;
        assert_eq!(
            (code, status["message"].as_str()),
            (406, Some(message.as_str())),
            "{path} {accept}"
        );
        assert_eq!(status["reason"], "NotAcceptable");
    }
    // A CRD's objects accept `application/*` (no go-restful route in front of them).
    let (code, _, _) = raw(
        &e,
        "GET",
        "/apis/example.dev/v1/namespaces/default/widgets/w",
        &[("Accept", "application/*")],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    let (code, head, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1",
        &[("Accept", "application/yaml")],
        "",
    )
    .await?;
    assert_eq!(code, 406);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/yaml"),
        "{head}"
    );
    let status: Value = serde_saphyr::from_str(&body)?;
    assert_eq!(
        status["message"],
        "only the following media types are accepted: application/json;stream=watch, application/vnd.kubernetes.protobuf;stream=watch"
    );
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#alternate-representations-of-resources
// "application/yaml" is served for every read and write, errors included; the YAML is
// what the JSON would be (sigs.k8s.io/yaml's JSONToYAML: keys sorted, strings YAML 1.1
// would misread quoted).
#[tokio::test]
async fn yaml_responses_when_asked() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "y", "annotations": {"x": "y"}}, "data": {"n": "123", "b": "true"}}))?,
    )
    .await?;
    let json_body = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps/y",
        &[],
        "",
    )
    .await?
    .2;
    let (code, head, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps/y",
        &[("Accept", "application/yaml")],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/yaml"),
        "{head}"
    );
    assert!(body.starts_with("apiVersion: v1\ndata:\n"), "{body}");
    let from_yaml: Value = serde_saphyr::from_str(&body)?;
    assert_eq!(from_yaml, serde_json::from_str::<Value>(&json_body)?);
    // Lists, metadata-only lists and errors in YAML.
    let (code, _, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps",
        &[(
            "Accept",
            "application/yaml;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        )],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    let list: Value = serde_saphyr::from_str(&body)?;
    assert_eq!(list["kind"], "PartialObjectMetadataList");
    assert!(
        list["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["metadata"]["name"] == "y"))
    );
    let (code, head, body) = raw(
        &e,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/none",
        &[("Accept", "application/yaml")],
        "",
    )
    .await?;
    assert_eq!(code, 404);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/yaml"),
        "{head}"
    );
    let status: Value = serde_saphyr::from_str(&body)?;
    assert_eq!(status["message"], "configmaps \"none\" not found");
    Ok(())
}

// kubectl asks for Tables on every read (`kubectl get`), and a Table can be asked for on a
// write too (transformObject converts any response object): the create answer and a
// deletecollection list become Tables.
#[tokio::test]
async fn tables_for_every_response_object() -> TestResult {
    let (e, _c) = start().await?;
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let (code, _, body) = raw(
        &e,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        &[("Accept", table), ("Content-Type", "application/json")],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t1"},"data":{"a":"b"}}"#,
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    let t: Value = serde_json::from_str(&body)?;
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"][0]["cells"][0], "t1");
    let (code, _, body) = raw(
        &e,
        "DELETE",
        "/api/v1/namespaces/default/configmaps",
        &[("Accept", table)],
        "",
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let t: Value = serde_json::from_str(&body)?;
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "t1");
    // A Status stays a Status.
    let (code, _, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps/t1",
        &[("Accept", table)],
        "",
    )
    .await?;
    assert_eq!(code, 404);
    assert_eq!(serde_json::from_str::<Value>(&body)?["kind"], "Status");
    Ok(())
}

// k8s.io/apiserver/pkg/registry/generic/registry/store.go (`Update`): a PUT without
// `metadata.resourceVersion` is unconditional only where the strategy's
// `AllowUnconditionalUpdate` says so (ConfigMaps); custom resources, Leases and CRDs
// answer 422, with the resource as the kind, as kube-apiserver v1.33 does
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions).
#[tokio::test]
async fn put_without_resource_version_is_422_where_the_strategy_requires_one() -> TestResult {
    let (_e, c) = start().await?;
    let widgets = install_crd(&c).await?;
    widgets
        .create(&PostParams::default(), &widget("u", json!({"size": 2})))
        .await?;
    let err = widgets
        .replace(
            "u",
            &PostParams::default(),
            &widget("u", json!({"size": 3})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("expected a Status, got {err:?}")
    };
    assert_eq!(
        (status.code, status.reason.as_str(), status.message.as_str()),
        (
            422,
            "Invalid",
            "widgets.example.dev \"u\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        )
    );
    let details = status.details.expect("details");
    assert_eq!(
        (details.kind.as_str(), details.group.as_str()),
        ("widgets", "example.dev")
    );
    assert_eq!(details.causes[0].field, "metadata.resourceVersion");
    assert_eq!(details.causes[0].reason, "FieldValueInvalid");
    assert_eq!(
        details.causes[0].message,
        "Invalid value: 0x0: must be specified for an update"
    );
    // Nothing was written: the stored object is unchanged, and a PUT with its
    // resourceVersion goes through.
    let live = widgets.get("u").await?;
    assert_eq!(live.data["spec"]["size"], 2);
    let mut next = widget("u", json!({"size": 3}));
    next.metadata.resource_version = live.metadata.resource_version.clone();
    widgets.replace("u", &PostParams::default(), &next).await?;

    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::default_namespaced(c.clone());
    let lease = serde_json::from_value(json!({"metadata": {"name": "l"}}))?;
    leases.create(&PostParams::default(), &lease).await?;
    let (code, _, message) = api_error(
        leases
            .replace("l", &PostParams::default(), &lease)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            422,
            "leases.coordination.k8s.io \"l\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        )
    );

    // ConfigMaps update unconditionally.
    let cms: Api<ConfigMap> = Api::default_namespaced(c);
    cms.create(&PostParams::default(), &cm("u", json!({})))
        .await?;
    let replaced = cms
        .replace("u", &PostParams::default(), &cm("u", json!({"x": "y"})))
        .await?;
    assert_eq!(replaced.labels().get("x").map(String::as_str), Some("y"));
    Ok(())
}

// https://kubernetes.io/docs/concepts/overview/working-with-objects/finalizers/ and
// k8s.io/apiserver/pkg/registry/generic/registry/store.go (`Update` returns
// `errEmptiedFinalizers`, then `deleteWithoutFinalizers`): the update that removes the last
// finalizer of a deleting object is not written; the stored object is deleted, so a watcher
// sees one DELETED event whose object still lists the finalizer (at a new resourceVersion),
// and the writer gets back the object it sent. Observed so on kube-apiserver v1.33.
#[tokio::test]
async fn removing_the_last_finalizer_is_one_deleted_event() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    let mut o = cm("fin", json!({}));
    o.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    api.create(&PostParams::default(), &o).await?;
    api.delete("fin", &DeleteParams::default()).await?;
    let mut marked = api.get("fin").await?;
    let marked_rv = marked.resource_version().unwrap_or_default();
    let mut stream = api
        .watch(&WatchParams::default().timeout(2), &marked_rv)
        .await?
        .boxed();
    marked.metadata.finalizers = None;
    let answer = api.replace("fin", &PostParams::default(), &marked).await?;
    assert_eq!(answer.resource_version(), Some(marked_rv.clone()));
    assert_eq!(answer.metadata.finalizers, None);
    let mut events = Vec::new();
    while let Some(ev) = stream.try_next().await? {
        events.push(ev);
    }
    match events.as_slice() {
        [WatchEvent::Deleted(d)] => {
            assert_eq!(
                d.metadata.finalizers,
                Some(vec!["example.dev/hold".to_string()])
            );
            let rv: u64 = d.resource_version().unwrap_or_default().parse()?;
            assert!(rv > marked_rv.parse::<u64>()?, "{rv}");
        }
        other => panic!("expected one DELETED event, got {other:?}"),
    }
    assert!(api.get_opt("fin").await?.is_none());
    Ok(())
}

// https://kubernetes.io/docs/reference/using-api/api-concepts/#collections: a built-in
// list (`ConfigMapList`) names its kind once; its items carry no kind or apiVersion (typed
// lists are encoded without their items' TypeMeta), a custom resource list's items do, and
// a deletecollection answer is a list like any other — as kube-apiserver v1.33 answers.
#[tokio::test]
async fn items_of_built_in_lists_carry_no_kind() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c.clone());
    api.create(&PostParams::default(), &cm("i", json!({})))
        .await?;
    let widgets = install_crd(&c).await?;
    widgets
        .create(&PostParams::default(), &widget("w", json!({"size": 2})))
        .await?;
    let list: Value = serde_json::from_str(
        &raw(&e, "GET", "/api/v1/namespaces/default/configmaps", &[], "")
            .await?
            .2,
    )?;
    assert_eq!(
        (&list["kind"], &list["apiVersion"]),
        (&json!("ConfigMapList"), &json!("v1"))
    );
    let item = list["items"]
        .as_array()
        .and_then(|i| i.first())
        .cloned()
        .unwrap_or_default();
    assert_eq!(item["metadata"]["name"], "i");
    assert!(
        item.get("kind").is_none() && item.get("apiVersion").is_none(),
        "{item}"
    );
    // kube-rs reads such lists.
    assert_eq!(api.list(&ListParams::default()).await?.items.len(), 1);
    let list: Value = serde_json::from_str(
        &raw(
            &e,
            "GET",
            "/apis/example.dev/v1/namespaces/default/widgets",
            &[],
            "",
        )
        .await?
        .2,
    )?;
    assert_eq!(list["items"][0]["kind"], "Widget");
    assert_eq!(list["items"][0]["apiVersion"], "example.dev/v1");
    let (code, _, body) = raw(
        &e,
        "DELETE",
        "/api/v1/namespaces/default/configmaps",
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    let deleted: Value = serde_json::from_str(&body)?;
    assert_eq!(deleted["kind"], "ConfigMapList");
    assert!(deleted["items"][0].get("kind").is_none(), "{deleted}");
    Ok(())
}

/// A raw JSON request through a kube-rs client (TLS, its own credentials).
async fn send_json(
    client: &Client,
    method: &str,
    path: &str,
    body: Value,
) -> Result<(u16, Value), Box<dyn std::error::Error>> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)?;
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((code, serde_json::from_slice(&bytes)?))
}

// What valid clients send that the real server accepts (kube-apiserver v1.33 answers
// below): a built-in object without apiVersion/kind takes them from the URL (the decoder's
// default GVK; kopf posts its Events so), custom resources must name their kind
// ("Object 'Kind' is missing"); a binding subject without apiGroup is defaulted
// (`SetDefaults_Subject`, k8s.io/kubernetes/pkg/apis/rbac/v1/defaults.go).
#[tokio::test]
async fn built_in_bodies_without_type_and_subjects_without_api_group() -> TestResult {
    let (_e, c) = start().await?;
    let (code, created) = send_json(
        &c,
        "POST",
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "bare"}, "data": {"a": "b"}}),
    )
    .await?;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        (&created["kind"], &created["apiVersion"]),
        (&json!("ConfigMap"), &json!("v1"))
    );
    let (code, event) = send_json(
        &c,
        "POST",
        "/api/v1/namespaces/default/events",
        json!({"metadata": {"name": "kopf-like"}, "involvedObject": {"kind": "ConfigMap", "name": "bare", "namespace": "default"},
               "reason": "Logging", "message": "hello", "type": "Normal"}),
    )
    .await?;
    assert_eq!((code, &event["kind"]), (201, &json!("Event")), "{event}");
    let (code, bound) = send_json(
        &c,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        json!({"metadata": {"name": "rb"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]}),
    )
    .await?;
    assert_eq!(code, 201, "{bound}");
    assert_eq!(
        bound["subjects"],
        json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice"},
               {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
               {"kind": "ServiceAccount", "name": "default", "namespace": "default"}])
    );
    install_crd(&c).await?;
    let (code, status) = send_json(
        &c,
        "POST",
        "/apis/example.dev/v1/namespaces/default/widgets",
        json!({"metadata": {"name": "bare"}}),
    )
    .await?;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.contains("Object 'Kind' is missing")),
        "{status}"
    );
    Ok(())
}

// https://kubernetes.io/docs/reference/access-authn-authz/authorization/#checking-api-access
// (SubjectAccessReview: may the named user do it?) and
// https://kubernetes.io/docs/reference/access-authn-authz/authentication/#self-subject-review
// (`kubectl auth whoami`): served, answered from the stored RBAC objects and the caller's
// identity, never stored; a SubjectAccessReview without user or group is 422 with the real
// message.
#[tokio::test]
async fn subject_access_review_and_self_subject_review() -> TestResult {
    let e = Emulator::builder().rbac(true).serve().await?;
    let admin = e.client()?;
    let roles: Api<Role> = Api::default_namespaced(admin.clone());
    roles
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}))?,
        )
        .await?;
    let rbs: Api<RoleBinding> = Api::default_namespaced(admin.clone());
    rbs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "alice-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "User", "name": "alice"}]}))?,
    )
    .await?;
    let review = |user: &str, verb: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": user, "groups": ["team-a"],
                        "resourceAttributes": {"namespace": "default", "verb": verb, "resource": "configmaps"}}})
    };
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let (code, yes) = send_json(&admin, "POST", path, review("alice", "get")).await?;
    assert_eq!(code, 201, "{yes}");
    assert_eq!(yes["status"]["allowed"], true, "{yes}");
    assert_eq!(yes["spec"]["user"], "alice");
    let (_, no) = send_json(&admin, "POST", path, review("alice", "delete")).await?;
    assert_eq!(no["status"]["allowed"], false, "{no}");
    let (_, bob) = send_json(&admin, "POST", path, review("bob", "get")).await?;
    assert_eq!(bob["status"]["allowed"], false, "{bob}");
    let (code, invalid) = send_json(
        &admin,
        "POST",
        path,
        json!({"spec": {"resourceAttributes": {"verb": "get", "resource": "configmaps"}}}),
    )
    .await?;
    assert_eq!(code, 422);
    assert_eq!(
        invalid["message"],
        ".authorization.k8s.io \"\" is invalid: spec.user: Invalid value: \"\": at least one of user or group must be specified"
    );
    // Alice may not ask about others (RBAC on subjectaccessreviews).
    let alice = e.client_as("alice", &["team-a"])?;
    let (code, _) = send_json(&alice, "POST", path, review("alice", "get")).await?;
    assert_eq!(code, 403);

    let (code, me) = send_json(
        &alice,
        "POST",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await?;
    assert_eq!(code, 201, "{me}");
    assert_eq!(me["kind"], "SelfSubjectReview");
    assert_eq!(me["status"]["userInfo"]["username"], "alice");
    let groups = me["status"]["userInfo"]["groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        groups.contains(&json!("team-a")) && groups.contains(&json!("system:authenticated")),
        "{me}"
    );
    assert!(me["metadata"]["creationTimestamp"].is_string(), "{me}");
    Ok(())
}

// The NamespaceLifecycle admission plugin
// (https://kubernetes.io/docs/reference/access-authn-authz/admission-controllers/#namespacelifecycle,
// "prevents deletion of three system reserved namespaces default, kube-system,
// kube-public"): 403 with the real message, dry runs included; kube-node-lease may go.
#[tokio::test]
async fn system_namespaces_cannot_be_deleted() -> TestResult {
    let (_e, c) = start().await?;
    let api: Api<Namespace> = Api::all(c);
    for name in ["default", "kube-system", "kube-public"] {
        for dp in [DeleteParams::default(), DeleteParams::default().dry_run()] {
            let (code, reason, message) = api_error(api.delete(name, &dp).await.unwrap_err());
            assert_eq!(
                (code, reason.as_str(), message),
                (
                    403,
                    "Forbidden",
                    format!(
                        "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
                    )
                )
            );
        }
        assert!(api.get(name).await?.metadata.deletion_timestamp.is_none());
    }
    api.delete("kube-node-lease", &DeleteParams::default())
        .await?;
    Ok(())
}

// Loose query parameters, answered word for word as kube-apiserver v1.33 answers them:
// `ValidateListOptions`/`validateWatchOptions` (k8s.io/apimachinery/pkg/apis/meta/
// internalversion/validation), the dryRun/fieldValidation/propagation checks of
// k8s.io/apimachinery/pkg/apis/meta/v1/validation, the watch cache's 504 for a list at a
// resourceVersion it has not reached, and Go's `strconv` errors for malformed numbers
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#semantics-for-get-and-list,
// https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists: the
// WatchList feature gate is off by default in v1.33).
#[tokio::test]
async fn loose_query_parameters_are_answered_as_the_real_server() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    api.create(&PostParams::default(), &cm("q", json!({})))
        .await?;
    let cms = "/api/v1/namespaces/default/configmaps";
    let current: u64 = api
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default()
        .parse()?;
    let future = current + 1000;
    let list_invalid = |m: &str| format!("ListOptions.meta.k8s.io \"\" is invalid: {m}");
    let cases: Vec<(&str, String, &str, u16, String)> = vec![
        ("GET", format!("{cms}?resourceVersionMatch=NotOlderThan"), "", 422,
         list_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")),
        ("GET", format!("{cms}?resourceVersionMatch=Bogus&resourceVersion=1"), "", 422,
         list_invalid("resourceVersionMatch: Unsupported value: \"Bogus\": supported values: \"Exact\", \"NotOlderThan\", \"\"")),
        ("GET", format!("{cms}?resourceVersionMatch=Exact&resourceVersion=0"), "", 422,
         list_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")),
        ("GET", format!("{cms}?resourceVersionMatch=Exact&resourceVersion=1&continue=abc"), "", 422,
         list_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided")),
        ("GET", format!("{cms}?sendInitialEvents=true"), "", 422,
         list_invalid("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list")),
        ("GET", format!("{cms}?resourceVersion=abc"), "", 400,
         "invalid resource version: resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax".into()),
        ("GET", format!("{cms}?resourceVersion={future}"), "", 504,
         format!("Timeout: Too large resource version: {future}, current: {current}")),
        ("GET", format!("{cms}?resourceVersion={future}&resourceVersionMatch=Exact"), "", 500,
         "etcdserver: mvcc: required revision is a future revision".into()),
        ("GET", format!("{cms}?timeoutSeconds=x"), "", 400, "strconv.ParseInt: parsing \"x\": invalid syntax".into()),
        ("GET", format!("{cms}?limit=x"), "", 400, "strconv.ParseInt: parsing \"x\": invalid syntax".into()),
        ("GET", format!("{cms}?watch=1&resourceVersionMatch=NotOlderThan"), "", 422,
         list_invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided")),
        ("GET", format!("{cms}?watch=1&sendInitialEvents=true"), "", 422,
         list_invalid("[resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan, sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled]")),
        ("GET", format!("{cms}?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"), "", 422,
         list_invalid("sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")),
        ("GET", format!("{cms}?watch=1&resourceVersion=abc"), "", 500,
         "resourceVersion: Invalid value: \"abc\": strconv.ParseUint: parsing \"abc\": invalid syntax".into()),
        ("GET", format!("{cms}?watch=1&timeoutSeconds=x"), "", 400, "strconv.ParseInt: parsing \"x\": invalid syntax".into()),
        ("POST", format!("{cms}?dryRun=Bogus"), r#"{"metadata":{"name":"d"}}"#, 422,
         "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\"".into()),
        ("POST", format!("{cms}?dryRun="), r#"{"metadata":{"name":"d"}}"#, 422,
         "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"\"}: supported values: \"All\"".into()),
        ("PUT", format!("{cms}/q?dryRun=Bogus"), r#"{"metadata":{"name":"q"}}"#, 422,
         "UpdateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\"".into()),
        ("DELETE", format!("{cms}/q?dryRun=Bogus"), "", 422,
         "DeleteOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Bogus\"}: supported values: \"All\"".into()),
        ("POST", format!("{cms}?fieldValidation=Bogus"), r#"{"metadata":{"name":"d"}}"#, 422,
         "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\"".into()),
        ("DELETE", format!("{cms}/q?orphanDependents=true&propagationPolicy=Background"), "", 422,
         "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \"Background\": orphanDependents and deletionPropagation cannot be both set".into()),
        ("DELETE", format!("{cms}/q"), r#"{"orphanDependents":true,"propagationPolicy":"Foreground"}"#, 422,
         "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Invalid value: \"Foreground\": orphanDependents and deletionPropagation cannot be both set".into()),
        ("DELETE", format!("{cms}/q?propagationPolicy=Bogus"), "", 422,
         "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Bogus\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\"".into()),
        ("DELETE", format!("{cms}/q?gracePeriodSeconds=x"), "", 400, "strconv.ParseInt: parsing \"x\": invalid syntax".into()),
    ];
    for (method, path, body, code, message) in &cases {
        let (got, _, text) = raw(
            &e,
            method,
            path,
            &[("Content-Type", "application/json")],
            body,
        )
        .await?;
        let status: Value =
            serde_json::from_str(&text).map_err(|err| format!("{path}: {err}: {text}"))?;
        assert_eq!(
            (got, status["message"].as_str()),
            (*code, Some(message.as_str())),
            "{method} {path}"
        );
    }
    // The 422s name their options kind and group, without a name.
    let (_, _, text) = raw(
        &e,
        "POST",
        &format!("{cms}?dryRun=Bogus"),
        &[("Content-Type", "application/json")],
        r#"{"metadata":{"name":"d"}}"#,
    )
    .await?;
    let status: Value = serde_json::from_str(&text)?;
    assert_eq!(
        status["details"],
        json!({"group": "meta.k8s.io", "kind": "CreateOptions", "causes": [
        {"reason": "FieldValueNotSupported", "message": "Unsupported value: []string{\"Bogus\"}: supported values: \"All\"", "field": "dryRun"}]})
    );
    // The object survived all of it; a negative limit lists everything, a negative
    // timeout ends a watch at once; orphanDependents=x is ignored.
    let (code, _, text) = raw(&e, "GET", &format!("{cms}?limit=-1"), &[], "").await?;
    assert_eq!(code, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&text)?["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let started = std::time::Instant::now();
    let (code, _, text) = raw(
        &e,
        "GET",
        &format!("{cms}?watch=1&timeoutSeconds=-5&resourceVersion={current}"),
        &[],
        "",
    )
    .await?;
    assert_eq!((code, text.as_str()), (200, ""));
    assert!(started.elapsed() < Duration::from_secs(2));
    let (code, _, _) = raw(
        &e,
        "DELETE",
        &format!("{cms}/q?orphanDependents=x"),
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 200);
    Ok(())
}

// With the WatchList feature gate on (`Emulator::builder().watch_list(true)`, as
// `--feature-gates=WatchList=true`), streaming lists are served: initial events, then a
// bookmark annotated `k8s.io/initial-events-end`
// (https://kubernetes.io/docs/reference/using-api/api-concepts/#streaming-lists).
#[tokio::test]
async fn streaming_lists_with_the_watch_list_gate() -> TestResult {
    let e = Emulator::builder().watch_list(true).serve().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(e.client()?);
    api.create(&PostParams::default(), &cm("s", json!({})))
        .await?;
    let (code, _, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=1",
        &[],
        "",
    )
    .await?;
    assert_eq!(code, 200, "{body}");
    let events: Vec<Value> = body
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(events[0]["type"], "ADDED");
    assert_eq!(events[1]["type"], "BOOKMARK");
    assert_eq!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    Ok(())
}

// Defaulting of built-in kinds (https://kubernetes.io/docs/reference/using-api/api-concepts/#defaulting,
// `SetDefaults_*` in k8s.io/kubernetes/pkg/apis/{networking,core,batch}/v1/defaults.go and
// the Job strategy's generateSelector): the objects below are what kube-apiserver v1.33
// answered to the same creates.
#[tokio::test]
async fn built_in_kinds_are_defaulted_as_the_real_server_does() -> TestResult {
    let (_e, c) = start().await?;
    let post = |path: &'static str, body: Value| {
        let c = c.clone();
        async move { send_json(&c, "POST", path, body).await }
    };
    let (code, np) = post(
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np2"},
               "spec": {"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}], "egress": [{"ports": [{"port": 53}]}]}}),
    )
    .await?;
    assert_eq!(code, 201, "{np}");
    assert_eq!(
        np["spec"],
        json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "TCP", "port": 80}]}],
               "egress": [{"ports": [{"protocol": "TCP", "port": 53}]}], "policyTypes": ["Ingress", "Egress"]})
    );
    let (_, np) = post(
        "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np3"},
               "spec": {"podSelector": {}, "egress": []}}),
    )
    .await?;
    assert_eq!(
        np["spec"],
        json!({"podSelector": {}, "policyTypes": ["Ingress"]})
    );
    let (_, lr) = post(
        "/api/v1/namespaces/default/limitranges",
        json!({"metadata": {"name": "lr2"}, "spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"cpu": "100m"}}]}}),
    )
    .await?;
    assert_eq!(
        lr["spec"],
        json!({"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"cpu": "100m"}, "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2"}}]})
    );
    let pod_spec = json!({"containers": [{"name": "c", "image": "i", "resources": {}, "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File", "imagePullPolicy": "Always"}], "restartPolicy": "Never", "terminationGracePeriodSeconds": 30,
        "dnsPolicy": "ClusterFirst", "securityContext": {}, "schedulerName": "default-scheduler"});
    let (code, cj) = post(
        "/apis/batch/v1/namespaces/default/cronjobs",
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"schedule": "* * * * *",
               "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}}),
    )
    .await?;
    assert_eq!(code, 201, "{cj}");
    assert_eq!(
        cj["spec"],
        json!({"schedule": "* * * * *", "concurrencyPolicy": "Allow", "suspend": false,
               "jobTemplate": {"spec": {"template": {"spec": pod_spec}}},
               "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1})
    );
    let (code, job) = post(
        "/apis/batch/v1/namespaces/default/jobs",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j2", "labels": {"own": "x"}}, "spec": {"parallelism": 2,
               "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"restartPolicy": "Never",
                 "volumes": [{"name": "s", "secret": {"secretName": "x"}}, {"name": "c", "configMap": {"name": "y"}}, {"name": "e", "emptyDir": {}}],
                 "containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80}],
                   "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                   "livenessProbe": {"httpGet": {"path": "/", "port": 80}}, "readinessProbe": {"exec": {"command": ["true"]}}}],
                 "initContainers": [{"name": "i", "image": "x@sha256:abcd"}]}}}}),
    )
    .await?;
    assert_eq!(code, 201, "{job}");
    let uid = job["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(job["metadata"]["labels"], json!({"own": "x"}));
    let probe = |handler: Value| {
        let mut p = handler;
        p["timeoutSeconds"] = json!(1);
        p["periodSeconds"] = json!(10);
        p["successThreshold"] = json!(1);
        p["failureThreshold"] = json!(3);
        p
    };
    assert_eq!(
        job["spec"],
        json!({"parallelism": 2, "backoffLimit": 6,
               "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}, "manualSelector": false,
               "template": {"metadata": {"labels": {"app": "a", "batch.kubernetes.io/controller-uid": uid,
                   "batch.kubernetes.io/job-name": "j2", "controller-uid": uid, "job-name": "j2"}},
                 "spec": {"volumes": [{"name": "s", "secret": {"secretName": "x", "defaultMode": 420}},
                                      {"name": "c", "configMap": {"name": "y", "defaultMode": 420}}, {"name": "e", "emptyDir": {}}],
                   "initContainers": [{"name": "i", "image": "x@sha256:abcd", "resources": {}, "terminationMessagePath": "/dev/termination-log",
                     "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                   "containers": [{"name": "c", "image": "busybox:1.36", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                     "env": [{"name": "N", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}], "resources": {},
                     "livenessProbe": probe(json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}})),
                     "readinessProbe": probe(json!({"exec": {"command": ["true"]}})),
                     "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent"}],
                   "restartPolicy": "Never", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "securityContext": {},
                   "schedulerName": "default-scheduler"}},
               "completionMode": "NonIndexed", "suspend": false, "podReplacementPolicy": "TerminatingOrFailed"})
    );
    // A Job without labels takes its template's (the generated ones included).
    let (_, j1) = post(
        "/apis/batch/v1/namespaces/default/jobs",
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j1"},
               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}),
    )
    .await?;
    assert_eq!(j1["metadata"]["labels"]["job-name"], "j1");
    assert_eq!(
        (&j1["spec"]["completions"], &j1["spec"]["parallelism"]),
        (&json!(1), &json!(1))
    );
    Ok(())
}

/// A raw JSON request with extra headers through a kube-rs client: (status, body text).
async fn send_with_headers(
    client: &Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Result<(u16, String), Box<dyn std::error::Error>> {
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let body = body
        .map(|b| serde_json::to_vec(&b))
        .transpose()?
        .unwrap_or_default();
    let response = client
        .send(request.body(body)?.map(kube::client::Body::from))
        .await?;
    let code = response.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&bytes).into_owned()))
}

// https://kubernetes.io/docs/reference/access-authn-authz/authentication/#user-impersonation
// and k8s.io/apiserver/pkg/endpoints/filters/impersonation.go: `Impersonate-User` (and
// `-Group`, `-Uid`) make the request run as that user, provided the caller may
// `impersonate` it; a tenant test can act as the tenant's owner. Messages as
// kube-apiserver v1.33 answers them.
#[tokio::test]
async fn impersonation_runs_requests_as_the_impersonated_user() -> TestResult {
    let e = Emulator::builder().rbac(true).serve().await?;
    let admin = e.client()?;
    let secrets = "/api/v1/namespaces/default/secrets";
    // The administrator impersonating a user without rights is that user.
    let (code, body) = send_with_headers(
        &admin,
        "GET",
        secrets,
        &[("Impersonate-User", "nobody")],
        None,
    )
    .await?;
    assert_eq!(code, 403, "{body}");
    let status: Value = serde_json::from_str(&body)?;
    assert_eq!(
        status["message"],
        "secrets is forbidden: User \"nobody\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\""
    );
    // Alice may not impersonate anyone...
    let alice = e.client_as("alice", &["team-a"])?;
    let (code, body) =
        send_with_headers(&alice, "GET", secrets, &[("Impersonate-User", "bob")], None).await?;
    assert_eq!(code, 403);
    let status: Value = serde_json::from_str(&body)?;
    assert_eq!(
        status["message"],
        "users \"bob\" is forbidden: User \"alice\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );
    assert_eq!(status["details"], json!({"name": "bob", "kind": "users"}));
    let (code, body) = send_with_headers(
        &alice,
        "GET",
        secrets,
        &[("Impersonate-User", "system:serviceaccount:default:sa1")],
        None,
    )
    .await?;
    assert_eq!(code, 403);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["message"],
        "serviceaccounts \"sa1\" is forbidden: User \"alice\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"default\""
    );
    // ...until a role lets her impersonate bob (and only bob).
    send_json(&admin, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", json!({
        "metadata": {"name": "impersonate-bob"},
        "rules": [{"apiGroups": [""], "resources": ["users"], "verbs": ["impersonate"], "resourceNames": ["bob"]}]})).await?;
    send_json(&admin, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", json!({
        "metadata": {"name": "alice-impersonates-bob"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "impersonate-bob"},
        "subjects": [{"kind": "User", "name": "alice"}]})).await?;
    let whoami = "/apis/authentication.k8s.io/v1/selfsubjectreviews";
    let (code, body) = send_with_headers(
        &alice,
        "POST",
        whoami,
        &[("Impersonate-User", "bob")],
        Some(json!({})),
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    let me: Value = serde_json::from_str(&body)?;
    assert_eq!(
        me["status"]["userInfo"],
        json!({"username": "bob", "groups": ["system:authenticated"]})
    );
    let (code, _) = send_with_headers(
        &alice,
        "POST",
        whoami,
        &[("Impersonate-User", "carol")],
        Some(json!({})),
    )
    .await?;
    assert_eq!(code, 403);
    let (code, body) = send_with_headers(
        &alice,
        "POST",
        whoami,
        &[("Impersonate-User", "bob"), ("Impersonate-Group", "admins")],
        Some(json!({})),
    )
    .await?;
    assert_eq!(code, 403, "groups need their own permission: {body}");
    assert!(
        body.contains("cannot impersonate resource \\\"groups\\\""),
        "{body}"
    );
    // Service accounts get their groups; groups without a user are the filter's 500.
    let (_, body) = send_with_headers(
        &admin,
        "POST",
        whoami,
        &[("Impersonate-User", "system:serviceaccount:ns1:sa")],
        Some(json!({})),
    )
    .await?;
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["status"]["userInfo"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:ns1",
            "system:authenticated"
        ])
    );
    let (code, body) =
        send_with_headers(&admin, "GET", secrets, &[("Impersonate-Group", "g1")], None).await?;
    assert_eq!(
        (code, body.as_str()),
        (
            500,
            "Internal Server Error: \"/api/v1/namespaces/default/secrets\": requested [{Group  g1    }] without impersonating a user\n"
        )
    );
    Ok(())
}

// Invalid built-in objects are refused with kube-apiserver v1.33's status and words
// (k8s.io/kubernetes/pkg/apis/{core,networking,batch}/validation; quantities fail to decode,
// as apimachinery's `ParseQuantity`; CronJob schedules as robfig/cron's parser reads them;
// https://kubernetes.io/docs/concepts/configuration/configmap/#motivation: "the data stored
// in a ConfigMap cannot exceed 1 MiB"; https://kubernetes.io/docs/concepts/configuration/secret/#tls-secrets).
#[tokio::test]
async fn invalid_built_in_objects_are_refused_as_the_real_server() -> TestResult {
    let (_e, c) = start().await?;
    let cronjob = |schedule: &str| {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"}, "spec": {"schedule": schedule,
               "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}}})
    };
    let netpol = |spec: Value| json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "np"}, "spec": spec});
    let big = "x".repeat(1024 * 1024 + 1);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "big"}, "data": {"a": big}}),
            422,
            "ConfigMap \"big\" is invalid: []: Too long: may not be more than 1048576 bytes",
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "tls1"}, "type": "kubernetes.io/tls", "data": {}}),
            422,
            "Secret \"tls1\" is invalid: [data[tls.crt]: Required value, data[tls.key]: Required value]",
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "tls2"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "x"}}),
            422,
            "Secret \"tls2\" is invalid: data[tls.key]: Required value",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
            netpol(json!({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]})),
            422,
            "NetworkPolicy.networking.k8s.io \"np\" is invalid: spec.ingress[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
            netpol(
                json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
            ),
            422,
            "NetworkPolicy.networking.k8s.io \"np\" is invalid: spec.ingress[0].from[0].ipBlock.cidr: Invalid value: \"10.0.0.0/33\": must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
            netpol(
                json!({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP", "port": 80}, {"endPort": 90}, {"port": "http", "endPort": 90}]}]}),
            ),
            422,
            "NetworkPolicy.networking.k8s.io \"np\" is invalid: [spec.ingress[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\", spec.ingress[0].ports[1].endPort: Invalid value: 90: may not be specified when `port` is not specified, spec.ingress[0].ports[2].endPort: Invalid value: 90: may not be specified when `port` is non-numeric]",
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
            netpol(json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http-"}]}]})),
            422,
            "NetworkPolicy.networking.k8s.io \"np\" is invalid: spec.ingress[0].ports[0].port: Invalid value: \"http-\": must not begin or end with a hyphen",
        ),
        (
            "/api/v1/namespaces/default/resourcequotas",
            json!({"metadata": {"name": "rq"}, "spec": {"hard": {"cpu": "lots"}}}),
            400,
            "ResourceQuota in version \"v1\" cannot be handled as a ResourceQuota: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
        ),
        (
            "/api/v1/namespaces/default/resourcequotas",
            json!({"metadata": {"name": "rq"}, "spec": {"hard": {"cpu": "5Kii"}}}),
            400,
            "ResourceQuota in version \"v1\" cannot be handled as a ResourceQuota: unable to parse quantity's suffix",
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            cronjob("every minute"),
            422,
            "CronJob.batch \"cj\" is invalid: spec.schedule: Invalid value: \"every minute\": expected exactly 5 fields, found 2: [every minute]",
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            cronjob("60 * * * *"),
            422,
            "CronJob.batch \"cj\" is invalid: spec.schedule: Invalid value: \"60 * * * *\": end of range (60) above maximum (59): 60",
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            cronjob("0 0 * foo *"),
            422,
            "CronJob.batch \"cj\" is invalid: spec.schedule: Invalid value: \"0 0 * foo *\": failed to parse int from foo: strconv.Atoi: parsing \"foo\": invalid syntax",
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            cronjob("TZ=UTC 0 * * * *"),
            422,
            "CronJob.batch \"cj\" is invalid: spec.schedule: Invalid value: \"TZ=UTC 0 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        ),
        (
            "/apis/events.k8s.io/v1/namespaces/default/events",
            json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "ev"}, "eventTime": "2026-12-01T10:00:00.000000Z",
                "reportingController": "x/y", "reportingInstance": "i", "action": "A", "reason": "R", "type": "Bogus",
                "regarding": {"kind": "Pod", "name": "p", "namespace": "default"}}),
            422,
            "Event \"ev\" is invalid: type: Invalid value: \"\": has invalid value: Bogus",
        ),
    ];
    for (path, body, code, message) in cases {
        let (got, status) = send_json(&c, "POST", path, body).await?;
        assert_eq!(
            (got, status["message"].as_str()),
            (code, Some(message)),
            "{path}"
        );
    }
    // What is valid still goes in: exactly 1 MiB, a TLS Secret with its keys, a named port,
    // an IPv6 block, quantities, a descriptor.
    let ok: Vec<(&str, Value)> = vec![
        (
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "mib"}, "data": {"a": "x".repeat(1024 * 1024)}}),
        ),
        (
            "/api/v1/namespaces/default/secrets",
            json!({"metadata": {"name": "tls"}, "type": "kubernetes.io/tls", "stringData": {"tls.crt": "c", "tls.key": "k"}}),
        ),
        (
            "/apis/networking.k8s.io/v1/namespaces/default/networkpolicies",
            netpol(
                json!({"podSelector": {}, "ingress": [{"ports": [{"port": "http"}, {"port": 8000, "endPort": 8080}], "from": [{"ipBlock": {"cidr": "2001:db8::/64"}}]}]}),
            ),
        ),
        (
            "/api/v1/namespaces/default/resourcequotas",
            json!({"metadata": {"name": "rq"}, "spec": {"hard": {"cpu": "1500m", "memory": "2Gi", "pods": "1e3"}}}),
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            cronjob("@hourly"),
        ),
    ];
    for (path, body) in ok {
        let (code, answer) = send_json(&c, "POST", path, body).await?;
        assert_eq!(code, 201, "{path}: {answer}");
    }
    Ok(())
}

// Smaller differences, as kube-apiserver v1.33 answers: a body in a media type no
// serializer reads is 415; a PUT on a collection is 405 (no route), a PATCH of a custom
// resource collection the handler's 400; every answer carries an Audit-Id
// (https://kubernetes.io/docs/tasks/debug/debug-cluster/audit/: "Audit-Id ... a unique
// audit ID, generated for each request").
#[tokio::test]
async fn unknown_body_types_collection_writes_and_audit_ids() -> TestResult {
    let (e, c) = start().await?;
    install_crd(&c).await?;
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, head, body) =
        raw(&e, "POST", cms, &[("Content-Type", "text/plain")], "hello").await?;
    assert_eq!(code, 415);
    assert_eq!(
        serde_json::from_str::<Value>(&body)?["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"
    );
    let audit_id = |head: &str| {
        head.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("audit-id: ")
                .map(str::to_string)
        })
    };
    let first = audit_id(&head);
    assert_eq!(first.as_ref().map(String::len), Some(36), "{head}");
    let (code, head, body) = raw(
        &e,
        "PUT",
        cms,
        &[("Content-Type", "application/json")],
        "{}",
    )
    .await?;
    assert_eq!(code, 405, "{body}");
    assert_ne!(audit_id(&head), first);
    let (code, _, body) = raw(
        &e,
        "PATCH",
        "/apis/example.dev/v1/namespaces/default/widgets",
        &[("Content-Type", "application/merge-patch+json")],
        "{}",
    )
    .await?;
    assert_eq!(
        (
            code,
            serde_json::from_str::<Value>(&body)?["message"].as_str()
        ),
        (400, Some("name must be provided"))
    );
    Ok(())
}

// ValidatingAdmissionPolicy enforcement
// (https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/):
// the two policies the project's chart needs — labels under landlord.dev/ reserved to the
// operator (variables, messageExpression, request.userInfo) and protected objects that
// cannot be deleted (DELETE, oldObject, matchConditions, a Forbidden reason) — plus a Warn
// binding. Statuses, messages and the warning are those kube-apiserver v1.33 answered to
// the same policies and requests.
#[tokio::test]
async fn validating_admission_policies_deny_and_warn() -> TestResult {
    let e = Emulator::builder().rbac(true).serve().await?;
    let admin = e.client()?;
    install_crd(&admin).await?;
    let a = "/apis/admissionregistration.k8s.io/v1/";
    let create = |path: String, body: Value| {
        let admin = admin.clone();
        async move {
            let (code, answer) = send_json(&admin, "POST", &path, body).await?;
            assert_eq!(code, 201, "{answer}");
            Ok::<_, Box<dyn std::error::Error>>(())
        }
    };
    create(format!("{a}validatingadmissionpolicies"), json!({"metadata": {"name": "reserve-labels"}, "spec": {"failurePolicy": "Fail",
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["namespaces"]}]},
        "variables": [{"name": "reserved", "expression": "has(object.metadata.labels) ? object.metadata.labels.filter(k, k.startsWith('landlord.dev/')) : []"}],
        "validations": [{"expression": "size(variables.reserved) == 0 || request.userInfo.username == 'landlord'",
                         "messageExpression": "'labels ' + variables.reserved.join(', ') + ' are reserved to the operator'"}]}})).await?;
    create(
        format!("{a}validatingadmissionpolicybindings"),
        json!({"metadata": {"name": "reserve-labels"},
        "spec": {"policyName": "reserve-labels", "validationActions": ["Deny"]}}),
    )
    .await?;
    create(format!("{a}validatingadmissionpolicies"), json!({"metadata": {"name": "protect"}, "spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": ["example.dev"], "apiVersions": ["*"], "operations": ["DELETE"], "resources": ["widgets"]}]},
        "matchConditions": [{"name": "protected", "expression": "has(oldObject.metadata.labels) && 'protected' in oldObject.metadata.labels"}],
        "validations": [{"expression": "false", "message": "protected widgets cannot be deleted", "reason": "Forbidden"}]}})).await?;
    create(
        format!("{a}validatingadmissionpolicybindings"),
        json!({"metadata": {"name": "protect-b"},
        "spec": {"policyName": "protect", "validationActions": ["Deny"]}}),
    )
    .await?;
    create(format!("{a}validatingadmissionpolicies"), json!({"metadata": {"name": "warn-cm"}, "spec": {
        "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]},
        "validations": [{"expression": "has(object.data)"}]}})).await?;
    create(
        format!("{a}validatingadmissionpolicybindings"),
        json!({"metadata": {"name": "warn-cm-b"},
        "spec": {"policyName": "warn-cm", "validationActions": ["Warn"]}}),
    )
    .await?;

    // Reserved labels: refused for others (422, the real wording), allowed for the operator.
    let (code, status) = send_json(
        &admin,
        "POST",
        "/api/v1/namespaces",
        json!({"metadata": {"name": "vap-ns", "labels": {"landlord.dev/tenant": "x", "a": "b"}}}),
    )
    .await?;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "namespaces \"vap-ns\" is forbidden: ValidatingAdmissionPolicy 'reserve-labels' with binding 'reserve-labels' denied request: labels landlord.dev/tenant are reserved to the operator"
    );
    assert_eq!(
        status["details"],
        json!({"name": "vap-ns", "kind": "namespaces", "causes": [{"message":
        "ValidatingAdmissionPolicy 'reserve-labels' with binding 'reserve-labels' denied request: labels landlord.dev/tenant are reserved to the operator"}]})
    );
    let (code, _) = send_json(
        &admin,
        "POST",
        "/api/v1/namespaces",
        json!({"metadata": {"name": "plain-ns", "labels": {"a": "b"}}}),
    )
    .await?;
    assert_eq!(code, 201);
    let (code, body) = send_with_headers(
        &admin,
        "POST",
        "/api/v1/namespaces",
        &[
            ("Impersonate-User", "landlord"),
            ("Impersonate-Group", "system:masters"),
        ],
        Some(json!({"metadata": {"name": "tenant-ns", "labels": {"landlord.dev/tenant": "x"}}})),
    )
    .await?;
    assert_eq!(code, 201, "{body}");
    // ...and an update that adds one is refused too.
    let (code, _) = send_json(
        &admin,
        "PUT",
        "/api/v1/namespaces/plain-ns",
        json!({"metadata": {"name": "plain-ns", "labels": {"landlord.dev/owner": "me"}}}),
    )
    .await?;
    assert_eq!(code, 422);

    // Protected objects cannot be deleted (403 from the validation's reason); others can.
    let widgets = "/apis/example.dev/v1/namespaces/default/widgets";
    for (name, labels) in [("pw", json!({"protected": "yes"})), ("free", json!({}))] {
        create(widgets.to_string(), json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name, "labels": labels}})).await?;
    }
    let (code, status) = send_json(&admin, "DELETE", &format!("{widgets}/pw"), json!({})).await?;
    assert_eq!(code, 403, "{status}");
    assert_eq!(
        status["message"],
        "widgets.example.dev \"pw\" is forbidden: ValidatingAdmissionPolicy 'protect' with binding 'protect-b' denied request: protected widgets cannot be deleted"
    );
    assert_eq!(status["details"]["group"], "example.dev");
    let (code, _) = send_json(&admin, "DELETE", &format!("{widgets}/free"), json!({})).await?;
    assert_eq!(code, 200);

    // Warn: the write goes through, with the real warning.
    let (code, warnings, _) = post_with_warnings(
        &admin,
        "/api/v1/namespaces/default/configmaps",
        json!({"metadata": {"name": "nodata"}}),
    )
    .await?;
    assert_eq!(code, 201);
    assert_eq!(warnings, vec!["299 - \"Validation failed for ValidatingAdmissionPolicy 'warn-cm' with binding 'warn-cm-b': failed expression: has(object.data)\"".to_string()]);
    Ok(())
}

/// POSTs through a kube-rs client and returns the status and the `Warning` headers.
async fn post_with_warnings(
    client: &Client,
    path: &str,
    body: Value,
) -> Result<(u16, Vec<String>, String), Box<dyn std::error::Error>> {
    let request = hyper::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body)?)?;
    let response = client.send(request.map(kube::client::Body::from)).await?;
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await?
        .to_bytes();
    Ok((code, warnings, String::from_utf8_lossy(&bytes).into_owned()))
}

/// Query booleans are read as Go's `strconv.ParseBool` reads them (kube-apiserver's query
/// conversion): `watch=True`, as the official Python client sends it, is a watch, not a
/// list (k8s.io/apimachinery/pkg/conversion/queryparams, runtime.Convert_Slice_string_To_bool).
#[tokio::test]
async fn query_booleans_are_read_as_go_parses_them() -> TestResult {
    let (e, c) = start().await?;
    let api: Api<ConfigMap> = Api::default_namespaced(c);
    api.create(&PostParams::default(), &cm("b", json!({})))
        .await?;
    for spelling in ["True", "true", "1", "t", "TRUE"] {
        let (code, _, body) = raw(
            &e,
            "GET",
            &format!("/api/v1/namespaces/default/configmaps?watch={spelling}&timeoutSeconds=1"),
            &[],
            "",
        )
        .await?;
        assert_eq!(code, 200, "{spelling}");
        let first: serde_json::Value = serde_json::from_str(body.lines().next().unwrap_or("{}"))?;
        assert_eq!(
            first["type"], "ADDED",
            "watch={spelling} is a watch: {body}"
        );
    }
    let (_, _, body) = raw(
        &e,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=False",
        &[],
        "",
    )
    .await?;
    let list: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(list["kind"], "ConfigMapList", "watch=False is a list");
    Ok(())
}
