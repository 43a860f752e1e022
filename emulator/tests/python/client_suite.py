"""The official Python Kubernetes client (a client the project does not otherwise use)
against the emulator: create, get, list, patch, server-side apply, watch and delete for
the kinds Landlord uses, and the errors such a client relies on. Each check names what
a real v1.33 API server does; the script exits non-zero at the first difference.

Usage: python client_suite.py KUBECONFIG
"""

import sys
import threading

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

CHECKS = 0


def check(condition, what):
    global CHECKS
    if not condition:
        print(f"FAILED: {what}", file=sys.stderr)
        sys.exit(1)
    CHECKS += 1


def status_of(call):
    try:
        call()
    except ApiException as e:
        return e.status
    return 200


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    api = client.ApiClient()
    core = client.CoreV1Api(api)
    net = client.NetworkingV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    events = client.EventsV1Api(api)
    ext = client.ApiextensionsV1Api(api)
    custom = client.CustomObjectsApi(api)
    dyn = dynamic.DynamicClient(api)

    # Namespaces: create, get, patch, 409 on a second create, 404 on a missing one.
    ns = "py-tenant"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={"team": "a"})))
    got = core.read_namespace(ns)
    check(got.metadata.labels.get("kubernetes.io/metadata.name") == ns,
          "a namespace gets the kubernetes.io/metadata.name label")
    core.patch_namespace(ns, {"metadata": {"labels": {"team": "b"}}})
    check(core.read_namespace(ns).metadata.labels["team"] == "b", "a merge patch changes a label")
    check(status_of(lambda: core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))) == 409, "a second create is 409")
    check(status_of(lambda: core.read_namespace("py-missing")) == 404, "a missing namespace is 404")
    check(status_of(lambda: core.delete_namespace("default")) == 403, "default cannot be deleted (403)")

    # ConfigMaps: watch while creating, patching and deleting.
    seen = []
    started = threading.Event()

    def watch_configmaps():
        w = watch.Watch()
        started.set()
        for event in w.stream(core.list_namespaced_config_map, ns, timeout_seconds=5):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()

    watcher = threading.Thread(target=watch_configmaps)
    watcher.start()
    started.wait()
    import time
    time.sleep(0.5)
    core.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"}))
    core.patch_namespaced_config_map("settings", ns, {"data": {"b": "2"}})
    got = core.read_namespaced_config_map("settings", ns)
    check(got.data == {"a": "1", "b": "2"}, "a strategic merge patch adds a key")
    got.data["c"] = "3"
    core.replace_namespaced_config_map("settings", ns, got)
    stale = got
    stale.data["d"] = "4"
    check(status_of(lambda: core.replace_namespaced_config_map("settings", ns, stale)) == 409,
          "a replace with a stale resourceVersion is 409")
    core.delete_namespaced_config_map("settings", ns)
    watcher.join(timeout=10)
    check([t for t, _ in seen] == ["ADDED", "MODIFIED", "MODIFIED", "DELETED"],
          f"the watch saw ADDED, MODIFIED, MODIFIED, DELETED (saw {seen})")

    # Server-side apply through the dynamic client, twice: the second is a no-op.
    cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "applied", "namespace": ns}, "data": {"k": "v"}}
    first = cms.server_side_apply(body=body, namespace=ns, field_manager="python-suite")
    second = cms.server_side_apply(body=body, namespace=ns, field_manager="python-suite")
    check(first.metadata.resourceVersion == second.metadata.resourceVersion,
          "applying the same configuration again changes nothing")
    managers = [m.manager for m in second.metadata.managedFields]
    check("python-suite" in managers, "the applier is recorded in managedFields")

    # Secrets: data round-trips base64.
    core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds"), string_data={"password": "p@ss"}))
    import base64
    secret = core.read_namespaced_secret("creds", ns)
    check(base64.b64decode(secret.data["password"]) == b"p@ss", "stringData becomes base64 data")

    # NetworkPolicy: policyTypes and port protocol are defaulted.
    net.create_namespaced_network_policy(ns, client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="allow-web"),
        spec=client.V1NetworkPolicySpec(
            pod_selector=client.V1LabelSelector(),
            ingress=[client.V1NetworkPolicyIngressRule(ports=[client.V1NetworkPolicyPort(port=443)])])))
    policy = net.read_namespaced_network_policy("allow-web", ns)
    check(policy.spec.policy_types == ["Ingress"], "policyTypes defaults to [Ingress]")
    check(policy.spec.ingress[0].ports[0].protocol == "TCP", "a port's protocol defaults to TCP")

    # Quota and limits.
    core.create_namespaced_resource_quota(ns, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="quota"), spec=client.V1ResourceQuotaSpec(hard={"pods": "10"})))
    check(core.read_namespaced_resource_quota("quota", ns).spec.hard == {"pods": "10"}, "a quota round-trips")
    check(status_of(lambda: core.create_namespaced_resource_quota(ns, client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="bad"), spec=client.V1ResourceQuotaSpec(hard={"pods": "lots"})))) in (400, 422),
        "a malformed quantity is refused")

    # RoleBinding: a subject without apiGroup is defaulted.
    rbac.create_namespaced_role_binding(ns, {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "owners"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "Group", "name": "acme-admins"}]})
    binding = rbac.read_namespaced_role_binding("owners", ns)
    check(binding.subjects[0].api_group == "rbac.authorization.k8s.io", "a Group subject's apiGroup is defaulted")

    # events.k8s.io Events.
    events.create_namespaced_event(ns, {
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "py-event"}, "eventTime": "2026-12-01T00:00:00.000000Z",
        "reportingController": "python-suite", "reportingInstance": "one",
        "action": "Test", "reason": "Tested", "type": "Normal", "note": "hello",
        "regarding": {"kind": "Namespace", "name": ns, "apiVersion": "v1"}})
    check(events.read_namespaced_event("py-event", ns).reason == "Tested", "an Event round-trips")

    # A custom resource: CRD, Established, create, merge patch, list, delete.
    ext.create_custom_resource_definition({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}})
    for _ in range(50):
        crd = ext.read_custom_resource_definition("widgets.example.com")
        if any(c.type == "Established" and c.status == "True" for c in (crd.status.conditions or [])):
            break
        time.sleep(0.1)
    else:
        check(False, "the CRD becomes Established")
    custom.create_cluster_custom_object("example.com", "v1", "widgets", {
        "apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": 1}})
    custom.patch_cluster_custom_object("example.com", "v1", "widgets", "w1", {"spec": {"size": 2}})
    listed = custom.list_cluster_custom_object("example.com", "v1", "widgets")
    check([i["spec"]["size"] for i in listed["items"]] == [2], "a merge patch of a custom object is listed")
    custom.delete_cluster_custom_object("example.com", "v1", "widgets", "w1")
    check(status_of(lambda: custom.get_cluster_custom_object("example.com", "v1", "widgets", "w1")) == 404,
          "a deleted custom object is 404")

    # Deleting the namespace empties it.
    core.delete_namespace(ns)
    for _ in range(50):
        if status_of(lambda: core.read_namespace(ns)) == 404:
            break
        time.sleep(0.1)
    else:
        check(False, "a deleted namespace goes away")
    print(f"ok: {CHECKS} checks")


if __name__ == "__main__":
    main(sys.argv[1])
