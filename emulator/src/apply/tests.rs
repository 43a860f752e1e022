//! Server-side apply and managedFields rules. Unless noted, each test cites
//! https://kubernetes.io/docs/reference/using-api/server-side-apply/ (section in the comment).

use super::*;
use serde_json::json;

const T0: &str = "2025-01-01T00:00:00Z";
const T1: &str = "2025-01-01T00:01:00Z";
const T2: &str = "2025-01-01T00:02:00Z";

fn crd_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": {
                "replicas": {"type": "integer"},
                "image": {"type": "string"},
                "hosts": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}}}
            }},
            "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
        }
    })
}

fn widget(spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "ns"}, "spec": spec})
}

fn writer<'a>(manager: &'a str, time: &'a str) -> Writer<'a> {
    Writer {
        manager,
        subresource: None,
        time,
    }
}

fn entries(object: &Value) -> Vec<Value> {
    object["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'o>(object: &'o Value, manager: &str) -> &'o Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["manager"] == manager))
        .unwrap_or_else(|| panic!("no entry for {manager} in {object}"))
}

/// Stores a created object as the apiserver would (system fields added after tracking).
fn created(fm: &FieldManager<'_>, object: &Value, manager: &str) -> Value {
    let mut stored = fm.update(None, object, &writer(manager, T0));
    stored["metadata"]["uid"] = json!("u-1");
    stored["metadata"]["resourceVersion"] = json!("1");
    stored
}

// "Field management": an apply records an entry with manager, operation Apply,
// apiVersion, time, fieldsType FieldsV1 and the fields set by the configuration; the
// object's identity (apiVersion, kind, name, namespace) is not recorded.
#[test]
fn apply_records_an_apply_entry() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let config = widget(json!({"replicas": 2}));
    let object = fm
        .apply(None, &config, &writer("landlord", T0), false)
        .unwrap();
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(
        entries(&object),
        vec![json!({
            "manager": "landlord", "operation": "Apply", "apiVersion": "example.com/v1",
            "time": T0, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}}
        })]
    );
}

// "Conflicts": a field the configuration sets to another value, owned by another
// manager, is a 409 whose message and causes name the manager and field.
#[test]
fn conflict_with_another_manager() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = created(
        &fm,
        &widget(json!({"replicas": 1})),
        "kubectl-client-side-apply",
    );
    let err = fm
        .apply(
            Some(&live),
            &widget(json!({"replicas": 3})),
            &writer("landlord", T1),
            false,
        )
        .unwrap_err();
    assert_eq!(err.code(), 409);
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using example.com/v1: .spec.replicas"
    );
    let status = err.to_status();
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"]["causes"],
        json!([{"reason": "FieldManagerConflict",
                "message": "conflict with \"kubectl-client-side-apply\" using example.com/v1",
                "field": ".spec.replicas"}])
    );
}

// "Conflicts": several conflicts are listed per manager.
#[test]
fn several_conflicts_are_listed_per_manager() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = created(&fm, &widget(json!({"replicas": 1, "image": "a"})), "editor");
    let err = fm
        .apply(
            Some(&live),
            &widget(json!({"replicas": 2, "image": "b"})),
            &writer("landlord", T1),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"editor\" using example.com/v1:\n- .spec.image\n- .spec.replicas"
    );
}

// "Conflicts" (overwrite the value, become the sole manager: force): with force the
// applier takes the field and the other manager loses it.
#[test]
fn force_takes_ownership() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = created(&fm, &widget(json!({"replicas": 1, "image": "a"})), "editor");
    let object = fm
        .apply(
            Some(&live),
            &widget(json!({"replicas": 3})),
            &writer("landlord", T1),
            true,
        )
        .unwrap();
    assert_eq!(object["spec"], json!({"replicas": 3, "image": "a"}));
    assert_eq!(
        entry(&object, "landlord")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // The creator also owns spec itself: it was added by its write.
    assert_eq!(
        entry(&object, "editor")["fieldsV1"],
        json!({"f:spec": {".": {}, "f:image": {}}})
    );
}

// "Conflicts": "if the value is the same ... no conflict, both managers share
// ownership" (apply with the same value becomes a co-owner).
#[test]
fn same_value_is_shared() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = fm
        .apply(
            None,
            &widget(json!({"replicas": 2})),
            &writer("a", T0),
            false,
        )
        .unwrap();
    let object = fm
        .apply(
            Some(&live),
            &widget(json!({"replicas": 2})),
            &writer("b", T1),
            false,
        )
        .unwrap();
    assert_eq!(
        entry(&object, "a")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    assert_eq!(
        entry(&object, "b")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // Now changing it is a conflict for either of them.
    let err = fm
        .apply(
            Some(&object),
            &widget(json!({"replicas": 5})),
            &writer("b", T2),
            false,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"
    );
}

// "Merge strategy": "fields that the manager applied before and no longer applies are
// removed ... if no other manager owns them".
#[test]
fn fields_no_longer_applied_are_removed() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = fm
        .apply(
            None,
            &widget(json!({"replicas": 2, "image": "x", "hosts": ["a", "b"], "ports": [{"name": "http", "port": 80}, {"name": "grpc", "port": 90}]})),
            &writer("landlord", T0),
            false,
        )
        .unwrap();
    let object = fm
        .apply(
            Some(&live),
            &widget(
                json!({"replicas": 2, "hosts": ["a"], "ports": [{"name": "http", "port": 80}]}),
            ),
            &writer("landlord", T1),
            false,
        )
        .unwrap();
    assert_eq!(
        object["spec"],
        json!({"replicas": 2, "hosts": ["a"], "ports": [{"name": "http", "port": 80}]})
    );
    assert_eq!(object["metadata"]["name"], "w");
}

// "Merge strategy": a field no longer applied stays when another manager owns it.
#[test]
fn fields_owned_by_others_stay() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = fm
        .apply(
            None,
            &widget(json!({"image": "x"})),
            &writer("a", T0),
            false,
        )
        .unwrap();
    let live = fm
        .apply(
            Some(&live),
            &widget(json!({"image": "x"})),
            &writer("b", T0),
            false,
        )
        .unwrap();
    let mut without_spec = widget(json!({}));
    without_spec.as_object_mut().unwrap().remove("spec");
    let object = fm
        .apply(Some(&live), &without_spec, &writer("a", T1), false)
        .unwrap();
    assert_eq!(object["spec"]["image"], "x");
    assert!(
        object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["manager"] != "a" || e["fieldsV1"].get("f:spec").is_none())
    );
}

// "Merge strategy" for built-in kinds: containers are a map list keyed by name; an
// applier only touches its own containers, other items stay; ports key on
// containerPort+protocol (protocol defaulted to TCP).
#[test]
fn builtin_lists_merge_by_key() {
    let job = |containers: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
               "spec": {"template": {"spec": {"containers": containers}}}})
    };
    let live = apply(
        None,
        &job(json!([{"name": "app", "image": "a", "ports": [{"containerPort": 80}]}])),
        "landlord",
        false,
        None,
        T0,
    )
    .unwrap();
    assert_eq!(
        entry(&live, "landlord")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"],
        json!({"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {},
            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}})
    );
    let live = apply(
        Some(&live),
        &job(json!([{"name": "sidecar", "image": "s"}])),
        "mesh",
        false,
        None,
        T1,
    )
    .unwrap();
    let names: Vec<&str> = live["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "sidecar"]);
    // The first applier drops its container: only the sidecar remains.
    let live = apply(Some(&live), &job(json!([])), "landlord", false, None, T2).unwrap();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"],
        json!([{"name": "sidecar", "image": "s"}])
    );
}

// "Field management": "Apply" entries are listed before "Update" entries;
// non-apply writes record operation Update with the writer's apiVersion.
#[test]
fn updates_own_what_they_change() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = fm
        .apply(
            None,
            &widget(json!({"replicas": 1, "image": "a"})),
            &writer("landlord", T0),
            false,
        )
        .unwrap();
    let mut edited = live.clone();
    edited["spec"]["image"] = json!("b");
    let stored = fm.update(Some(&live), &edited, &writer("kubectl-edit", T1));
    let listed = entries(&stored);
    let managers: Vec<(&str, &str)> = listed
        .iter()
        .map(|e| {
            (
                e["manager"].as_str().unwrap(),
                e["operation"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        managers,
        [("landlord", "Apply"), ("kubectl-edit", "Update")]
    );
    assert_eq!(
        entry(&stored, "kubectl-edit"),
        &json!({"manager": "kubectl-edit", "operation": "Update", "apiVersion": "example.com/v1",
                "time": T1, "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:image": {}}}})
    );
    assert_eq!(
        entry(&stored, "landlord")["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // A write that changes nothing records nothing new.
    let again = fm.update(Some(&stored), &stored, &writer("other", T2));
    assert_eq!(entries(&again), entries(&stored));
}

// "Field management": creation through create/update gives the creator an Update entry
// for every field it set (labels as a map with "." for the map itself).
#[test]
fn create_tracks_every_field() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "v"}});
    let stored = track_update(None, &cm, "kubectl-create", None, T0);
    assert_eq!(
        entry(&stored, "kubectl-create")["fieldsV1"],
        json!({"f:data": {".": {}, "f:k": {}}, "f:metadata": {"f:labels": {".": {}, "f:a": {}}}})
    );
}

// handlers/patch.go managerOrUserAgent: without fieldManager the manager is the
// User-Agent's product name.
#[test]
fn manager_from_user_agent() {
    assert_eq!(
        manager_or_user_agent(None, "kubectl/v1.33.0 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
    assert_eq!(
        manager_or_user_agent(Some("landlord"), "kube-rs/1.0"),
        "landlord"
    );
    assert_eq!(manager_or_user_agent(Some(""), "operator/0.1"), "operator");
    assert_eq!(manager_or_user_agent(None, &"x".repeat(300)).len(), 128);
}

// "Clearing managedFields": a list with one empty entry clears the entries (the writer
// then owns what it changed); an empty list is ignored so that clients unaware of
// managedFields never strip them; a non-empty list sent by the client is used as given.
#[test]
fn managed_fields_sent_by_clients() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = fm
        .apply(
            None,
            &widget(json!({"replicas": 1})),
            &writer("landlord", T0),
            false,
        )
        .unwrap();

    let mut reset = live.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    let stored = fm.update(Some(&live), &reset, &writer("cleaner", T1));
    assert!(
        stored["metadata"].get("managedFields").is_none(),
        "{stored}"
    );

    let mut reset_and_change = live.clone();
    reset_and_change["metadata"]["managedFields"] = json!([{}]);
    reset_and_change["spec"]["image"] = json!("z");
    let stored = fm.update(Some(&live), &reset_and_change, &writer("cleaner", T1));
    assert_eq!(entries(&stored).len(), 1);
    assert_eq!(
        entry(&stored, "cleaner")["fieldsV1"],
        json!({"f:spec": {"f:image": {}}})
    );

    let mut emptied = live.clone();
    emptied["metadata"]["managedFields"] = json!([]);
    let stored = fm.update(Some(&live), &emptied, &writer("unaware", T1));
    assert_eq!(entries(&stored), entries(&live));

    let mut given = live.clone();
    given["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Update",
        "apiVersion": "example.com/v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    let stored = fm.update(Some(&live), &given, &writer("editor", T1));
    assert_eq!(entries(&stored), entries(&given));
}

// "Field management": managedFields itself is never a managed field; and an apply
// configuration may not carry it (the apiserver answers 400 "metadata.managedFields
// must be nil").
#[test]
fn managed_fields_are_not_tracked_nor_applied() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = fm
        .apply(
            None,
            &widget(json!({"replicas": 1})),
            &writer("landlord", T0),
            false,
        )
        .unwrap();
    let mut with_other_entries = live.clone();
    with_other_entries["metadata"]["managedFields"]
        .as_array_mut()
        .unwrap()
        .push(
            json!({"manager": "x", "operation": "Update", "apiVersion": "v1",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:image": {}}}}),
        );
    let stored = fm.update(Some(&live), &with_other_entries, &writer("writer", T1));
    assert!(
        stored["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["manager"] != "writer")
    );

    let mut config = widget(json!({"replicas": 1}));
    config["metadata"]["managedFields"] = json!([]);
    let err = fm
        .apply(Some(&live), &config, &writer("landlord", T1), false)
        .unwrap_err();
    assert_eq!(err.code(), 400);
    assert_eq!(err.to_string(), "metadata.managedFields must be nil");
}

// "Using server-side apply in a controller" / status subresource: apply through
// /status records subresource status and writes only status; through the main
// endpoint status is ignored.
#[test]
fn status_subresource() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let mut config = widget(json!({"replicas": 1}));
    config["status"] = json!({"phase": "Pending"});
    let live = fm
        .apply(None, &config, &writer("landlord", T0), false)
        .unwrap();
    assert!(live.get("status").is_none());

    let status_writer = Writer {
        manager: "landlord",
        subresource: Some("status"),
        time: T1,
    };
    let mut status_config = widget(json!({"replicas": 9}));
    status_config["status"] = json!({"phase": "Ready"});
    let object = fm
        .apply(Some(&live), &status_config, &status_writer, false)
        .unwrap();
    assert_eq!(object["status"]["phase"], "Ready");
    assert_eq!(object["spec"]["replicas"], 1);
    let status_entry = entries(&object)
        .into_iter()
        .find(|e| e["subresource"] == "status")
        .unwrap();
    assert_eq!(
        status_entry["fieldsV1"],
        json!({"f:status": {"f:phase": {}}})
    );
    assert_eq!(entries(&object).len(), 2);
}

// handlers/patch.go + validation.ValidatePatchOptions: apply requires fieldManager
// (422), and an apply of another apiVersion than the stored object's is a 400.
#[test]
fn apply_preconditions() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let err = fm
        .apply(None, &widget(json!({})), &writer("", T0), false)
        .unwrap_err();
    assert_eq!(err.code(), 422);
    assert_eq!(
        err.to_status()["details"]["causes"][0]["field"],
        "fieldManager"
    );
    let live = fm
        .apply(None, &widget(json!({})), &writer("a", T0), false)
        .unwrap();
    let mut other_version = widget(json!({}));
    other_version["apiVersion"] = json!("example.com/v2");
    let err = fm
        .apply(Some(&live), &other_version, &writer("a", T1), false)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Incorrect version specified in apply patch. Specified patch version: example.com/v2, expected: example.com/v1"
    );
    let dup = widget(json!({"ports": [{"name": "a"}, {"name": "a"}]}));
    let err = fm
        .apply(Some(&live), &dup, &writer("a", T1), false)
        .unwrap_err();
    assert_eq!(err.code(), 400);
    assert!(err.to_string().starts_with(
        "failed to create typed patch object (example.com/v1, Kind=Widget): .spec.ports: duplicate entries"
    ));
}

// "Field management": the time of an entry changes when the write changed the object;
// a no-op apply keeps it.
#[test]
fn noop_apply_keeps_the_time() {
    let schema = crd_schema();
    let fm = FieldManager::new(Schema::custom_resource(&schema), true);
    let live = fm
        .apply(
            None,
            &widget(json!({"replicas": 1})),
            &writer("a", T0),
            false,
        )
        .unwrap();
    let again = fm
        .apply(
            Some(&live),
            &widget(json!({"replicas": 1})),
            &writer("a", T1),
            false,
        )
        .unwrap();
    assert_eq!(entry(&again, "a")["time"], T0);
    assert_eq!(again, live);
    let changed = fm
        .apply(
            Some(&live),
            &widget(json!({"replicas": 2})),
            &writer("a", T2),
            false,
        )
        .unwrap();
    assert_eq!(entry(&changed, "a")["time"], T2);
}

// The body of application/apply-patch+yaml is YAML (or JSON); undecodable bodies are
// a 400 "error decoding YAML".
#[test]
fn apply_bodies_are_yaml() {
    let config = decode_apply_body(
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
    )
    .unwrap();
    assert_eq!(config["data"]["k"], "v");
    let err = decode_apply_body(b"a: [").unwrap_err();
    assert_eq!(err.code(), 400);
    assert!(err.to_string().starts_with("error decoding YAML: "));
}

// "Merge strategy": labels are a granular map; a label the applier dropped is removed,
// labels set by other writers and the object's identity stay.
#[test]
fn dropped_labels_are_removed() {
    let cm = |labels: Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "namespace": "ns", "labels": labels}, "data": {"k": "v"}})
    };
    let live = apply(
        None,
        &cm(json!({"a": "1", "b": "2"})),
        "landlord",
        false,
        None,
        T0,
    )
    .unwrap();
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["team"] = json!("x");
    let live = track_update(Some(&live), &labelled, "kubectl-label", None, T1);
    let object = apply(
        Some(&live),
        &cm(json!({"a": "1"})),
        "landlord",
        false,
        None,
        T2,
    )
    .unwrap();
    assert_eq!(object["metadata"]["labels"], json!({"a": "1", "team": "x"}));
    assert_eq!(object["metadata"]["name"], "c");
    assert_eq!(object["data"], json!({"k": "v"}));
    assert_eq!(
        entry(&object, "landlord")["fieldsV1"],
        json!({"f:data": {"f:k": {}}, "f:metadata": {"f:labels": {"f:a": {}}}})
    );
}
