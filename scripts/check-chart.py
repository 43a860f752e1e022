#!/usr/bin/env python3
"""Offline checks of the Helm chart charts/landlord.

Run from the repository root:

    .venv/bin/python scripts/check-chart.py [--require-crds] [-v]

Needs the Python packages helm-python-sdk (the Helm library itself, so no helm binary)
and kubernetes-validate (Kubernetes JSON schemas bundled in the package). Nothing is
fetched from the network.

For the chart's defaults and every charts/landlord/ci/*.yaml values file it:
  - lints the chart (strict: warnings fail) for Kubernetes 1.33;
  - renders it and validates every object against the Kubernetes 1.33 schemas in
    strict mode (unknown fields are errors); custom resources (ServiceMonitor) have no
    bundled schema and are skipped with a note;
  - asserts the RBAC has no "*" and grants exactly the permissions listed below;
  - asserts the Deployment's hardening, probes, resources and arguments;
  - asserts the rendering follows the values (replicas, optional objects, labels,
    resources, tolerations, NetworkPolicy rules, ...) and that objects refer to each
    other consistently (selectors, ports, ServiceAccount, roleRefs).
For every tests/chart/invalid-values/*.yaml it asserts that values.schema.json refuses
the file and that the message contains each `# expect:` string of the file.
It also checks that values.yaml documents every value and the README lists it, and,
when crds/ holds CRDs, that they are the six landlord.dev kinds and that the example
Tenant in NOTES.txt fits the Tenant schema.

It prints one line per check and ends with "N passed, M failed"; the exit status is 1
when anything failed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

try:
    import helm_python as helm
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as err:  # pragma: no cover - environment problem
    sys.exit(
        f"check-chart: missing Python package ({err}); "
        "install helm-python-sdk and kubernetes-validate into .venv"
    )

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "landlord"
INVALID_VALUES = ROOT / "tests" / "chart" / "invalid-values"

KUBE_VERSION = "1.33.0"
RELEASE = "landlord"
NAMESPACE = "landlord-system"

GROUP = "landlord.dev"
LANDLORD_KINDS = {
    "Tenant": "tenants",
    "DatabaseServer": "databaseservers",
    "BackupStorage": "backupstorages",
    "TenantBackup": "tenantbackups",
    "TenantRestore": "tenantrestores",
    "ErasureReceipt": "erasurereceipts",
}

# Every permission the chart grants, as (apiGroup, resource, verb, resourceName or
# None). When a capability needs more, add its tuples here in the same change as the
# template: the diff of this list is what a reviewer reads.
EXPECTED_CLUSTER_PERMISSIONS = {
    # /readyz lists each kind.
    *((GROUP, plural, "list", None) for plural in LANDLORD_KINDS.values()),
    # The Tenant controller.
    (GROUP, "tenants", "get", None),
    (GROUP, "tenants", "watch", None),
    (GROUP, "tenants", "patch", None),
    (GROUP, "tenants/status", "patch", None),
    # The DatabaseServer controller.
    (GROUP, "databaseservers", "get", None),
    (GROUP, "databaseservers", "watch", None),
    (GROUP, "databaseservers", "patch", None),
    (GROUP, "databaseservers/status", "patch", None),
    # The BackupStorage controller.
    (GROUP, "backupstorages", "get", None),
    (GROUP, "backupstorages", "watch", None),
    (GROUP, "backupstorages", "patch", None),
    (GROUP, "backupstorages/status", "patch", None),
    # TenantBackup controller and schedules: create scheduled backups, finalizer and
    # status, retention deletes.
    *((GROUP, "tenantbackups", verb, None) for verb in ("get", "watch", "create", "patch", "delete")),
    (GROUP, "tenantbackups/status", "patch", None),
    # TenantRestore controller.
    (GROUP, "tenantrestores", "get", None),
    (GROUP, "tenantrestores", "watch", None),
    (GROUP, "tenantrestores/status", "patch", None),
    # Erasure: issues the tenant's ErasureReceipt (never updates or deletes one).
    (GROUP, "erasurereceipts", "get", None),
    (GROUP, "erasurereceipts", "create", None),
    # Admin, storage credentials and CA Secrets (get, operator namespace only, enforced by
    # the operator); tenant credentials Secrets (get, create, patch). No list or watch.
    *(("", "secrets", verb, None) for verb in ("get", "create", "patch")),
    *(("", "namespaces", verb, None) for verb in ("get", "list", "watch", "create", "patch", "delete")),
    *((group, resource, verb, None)
      for group, resource in (("", "resourcequotas"), ("", "limitranges"),
                              ("networking.k8s.io", "networkpolicies"),
                              ("rbac.authorization.k8s.io", "rolebindings"))
      for verb in ("list", "watch", "create", "patch", "delete")),
    ("rbac.authorization.k8s.io", "clusterroles", "bind", "admin"),
    ("events.k8s.io", "events", "create", None),
    ("events.k8s.io", "events", "patch", None),
}


def expected_lease_permissions(lease_name: str) -> set[tuple[str, str, str, str | None]]:
    return {
        ("coordination.k8s.io", "leases", "create", None),
        ("coordination.k8s.io", "leases", "get", lease_name),
        ("coordination.k8s.io", "leases", "update", lease_name),
        ("", "secrets", "list", None),
        ("", "secrets", "watch", None),
        # Erasure destroys the tenant's key Secret, which lives in this namespace only.
        ("", "secrets", "delete", None),
        # The receipt signing key's published public keys: created once, then read and
        # updated (a key added at rotation) by name.
        ("", "configmaps", "create", None),
        ("", "configmaps", "get", "landlord-receipt-public-keys"),
        ("", "configmaps", "update", "landlord-receipt-public-keys"),
    }


CLUSTER_SCOPED_KINDS = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


class CheckFailed(Exception):
    """A failed assertion; the message says what was expected and what was found."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


class Results:
    def __init__(self, verbose: bool) -> None:
        self.passed = 0
        self.failed = 0
        self.verbose = verbose

    def run(self, name: str, check: Callable[[], None]) -> bool:
        try:
            check()
        except CheckFailed as err:
            self.failed += 1
            print(f"FAIL {name}: {err}")
            return False
        except Exception as err:  # noqa: BLE001 - a crashing check is a failed check
            self.failed += 1
            print(f"FAIL {name}: {type(err).__name__}: {err}")
            if self.verbose:
                traceback.print_exc()
            return False
        self.passed += 1
        print(f"ok   {name}")
        return True

    def note(self, message: str) -> None:
        print(f"note {message}")


# ---------------------------------------------------------------------------------
# Rendering helpers


def load_values(path: Path) -> dict[str, Any]:
    """Parse a values file the way `helm -f` does."""
    values = helm.values_from_yaml(path.read_text())
    return values or {}


def render(chart: Any, values: dict[str, Any]) -> dict[str, str]:
    return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def parse_objects(manifests: dict[str, str]) -> list[dict[str, Any]]:
    objects = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            require(isinstance(doc, dict), f"{template}: a document is not a mapping")
            doc.setdefault("__template__", template)
            objects.append(doc)
    return objects


def strip(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k != "__template__"}


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") == kind]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objects, kind)
    require(len(found) == 1, f"expected exactly one {kind}, found {len(found)}")
    return found[0]


def get(obj: Any, *path: Any, default: Any = None) -> Any:
    for key in path:
        if isinstance(obj, dict) and key in obj:
            obj = obj[key]
        elif isinstance(obj, list) and isinstance(key, int) and -len(obj) <= key < len(obj):
            obj = obj[key]
        else:
            return default
    return obj


def name_of(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind')}/{get(obj, 'metadata', 'name')}"


# ---------------------------------------------------------------------------------
# Checks on one rendering


def check_object_basics(objects: list[dict[str, Any]]) -> None:
    seen = set()
    for obj in objects:
        for field in ("apiVersion", "kind"):
            require(field in obj, f"{obj['__template__']}: object without {field}")
        name = get(obj, "metadata", "name")
        require(bool(name), f"{obj['__template__']}: {obj['kind']} without metadata.name")
        namespace = get(obj, "metadata", "namespace")
        if obj["kind"] in CLUSTER_SCOPED_KINDS:
            require(namespace is None, f"{name_of(obj)} is cluster-scoped but has a namespace")
        else:
            require(
                namespace == NAMESPACE,
                f"{name_of(obj)} has namespace {namespace!r}, expected the release namespace",
            )
        key = (obj["kind"], namespace, name)
        require(key not in seen, f"{name_of(obj)} is rendered twice")
        seen.add(key)


BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "autoscaling"}


def is_built_in(api_version: str) -> bool:
    group = api_version.rpartition("/")[0]
    return group in BUILT_IN_GROUPS or group.endswith(".k8s.io")


def check_kubernetes_schemas(objects: list[dict[str, Any]], results: Results, label: str) -> None:
    for obj in objects:
        if not is_built_in(obj["apiVersion"]):
            results.note(f"[{label}] {name_of(obj)} ({obj['apiVersion']}) is a custom resource: "
                         "kubernetes-validate has no schema for it, skipped")
            continue

        def validate(obj: dict[str, Any] = obj) -> None:
            try:
                kubernetes_validate.validate(strip(obj), KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as err:
                path = ".".join(str(p) for p in err.path) or "(root)"
                raise CheckFailed(f"{path}: {err.message}") from None
            except kubernetes_validate.SchemaNotFoundError as err:
                raise CheckFailed(err.message) from None

        results.run(f"[{label}] {name_of(obj)} validates against Kubernetes {KUBE_VERSION} (strict)", validate)


def rbac_rules(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    rules = []
    for role in by_kind(objects, kind):
        rules.extend(role.get("rules") or [])
    return rules


def check_no_wildcards(objects: list[dict[str, Any]]) -> None:
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for index, rule in enumerate(role.get("rules") or []):
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                for item in rule.get(field) or []:
                    require(
                        "*" not in str(item),
                        f"{name_of(role)} rules[{index}].{field} contains a wildcard: {item!r}",
                    )
            require(
                not rule.get("nonResourceURLs"),
                f"{name_of(role)} rules[{index}] grants nonResourceURLs, which the operator never needs",
            )


def permissions(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, str | None]]:
    granted = set()
    for rule in rules:
        names = rule.get("resourceNames") or [None]
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    for resource_name in names:
                        granted.add((group, resource, verb, resource_name))
    return granted


def check_permissions(actual: set, expected: set, what: str) -> None:
    extra = sorted(actual - expected, key=str)
    missing = sorted(expected - actual, key=str)
    require(
        not extra and not missing,
        f"{what} differ from the expected list (update EXPECTED_* in this script together "
        f"with the template): extra {extra}, missing {missing}",
    )


def deployment_parts(objects: list[dict[str, Any]]) -> tuple[dict, dict, dict]:
    deployment = one(objects, "Deployment")
    pod = get(deployment, "spec", "template", "spec")
    containers = pod.get("containers") or []
    require(len(containers) == 1, f"expected one container, found {len(containers)}")
    return deployment, pod, containers[0]


def check_hardening(objects: list[dict[str, Any]]) -> None:
    _, pod, container = deployment_parts(objects)
    pod_sc = pod.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    expectations = [
        ("pod securityContext.runAsNonRoot", pod_sc.get("runAsNonRoot"), True),
        ("pod securityContext.runAsUser", pod_sc.get("runAsUser"), 65532),
        ("pod securityContext.runAsGroup", pod_sc.get("runAsGroup"), 65532),
        ("pod securityContext.seccompProfile.type", get(pod_sc, "seccompProfile", "type"), "RuntimeDefault"),
        ("container securityContext.runAsNonRoot", sc.get("runAsNonRoot"), True),
        ("container securityContext.runAsUser", sc.get("runAsUser"), 65532),
        ("container securityContext.runAsGroup", sc.get("runAsGroup"), 65532),
        ("container securityContext.readOnlyRootFilesystem", sc.get("readOnlyRootFilesystem"), True),
        ("container securityContext.allowPrivilegeEscalation", sc.get("allowPrivilegeEscalation"), False),
        ("container securityContext.privileged", sc.get("privileged"), False),
        ("container securityContext.capabilities.drop", get(sc, "capabilities", "drop"), ["ALL"]),
        ("container securityContext.capabilities.add", get(sc, "capabilities", "add"), None),
        ("container securityContext.seccompProfile.type", get(sc, "seccompProfile", "type"), "RuntimeDefault"),
        ("pod automountServiceAccountToken", pod.get("automountServiceAccountToken"), True),
        ("pod hostNetwork", pod.get("hostNetwork"), None),
        ("pod hostPID", pod.get("hostPID"), None),
        ("pod hostIPC", pod.get("hostIPC"), None),
    ]
    wrong = [f"{what} is {actual!r}, expected {expected!r}" for what, actual, expected in expectations
             if actual != expected]
    require(not wrong, "; ".join(wrong))
    require(isinstance(pod.get("terminationGracePeriodSeconds"), int),
            "pod terminationGracePeriodSeconds is not set")
    for section in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            require(get(container, "resources", section, resource) is not None,
                    f"container resources.{section}.{resource} is not set")


def check_probes_and_ports(objects: list[dict[str, Any]]) -> None:
    _, _, container = deployment_parts(objects)
    ports = {p.get("name"): p for p in container.get("ports") or []}
    require(set(ports) == {"http"}, f"container ports are {sorted(ports)}, expected only http")
    require(ports["http"].get("containerPort") == 8080, "port http is not 8080")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        http_get = get(container, probe, "httpGet") or {}
        require(http_get.get("path") == path and http_get.get("port") == "http",
                f"{probe} is {container.get(probe)!r}, expected httpGet {path} on port http")


def check_args_and_env(objects: list[dict[str, Any]], values: dict[str, Any]) -> None:
    _, _, container = deployment_parts(objects)
    args = [str(a) for a in container.get("args") or []]
    require(args[:1] == ["run"], f"args must start with the run subcommand, got {args[:1]}")
    expected = [
        "--listen-addr=0.0.0.0:8080",
        f"--log-format={values['logFormat']}",
        f"--log-level={values['logLevel']}",
        "--lease-namespace=$(POD_NAMESPACE)",
        f"--lease-name={values['leaderElection']['leaseName']}",
    ]
    missing = [a for a in expected if a not in args]
    require(not missing, f"args {args} lack {missing}")
    # With the operator's NetworkPolicy on, the operator is told its pods' labels (the
    # Deployment's selector) so its egress policies to database servers select them.
    pod_labels = [a for a in args if a.startswith("--pod-labels=")]
    if values["networkPolicy"]["enabled"]:
        deployment, _, _ = deployment_parts(objects)
        selector = get(deployment, "spec", "selector", "matchLabels") or {}
        given = dict(pair.split("=", 1) for pair in pod_labels[0].split("=", 1)[1].split(",")) \
            if len(pod_labels) == 1 else None
        require(given == selector,
                f"--pod-labels {pod_labels} must give exactly the Deployment's selector {selector}")
    else:
        require(not pod_labels, f"--pod-labels {pod_labels} without networkPolicy.enabled")
    extra_args = [str(a) for a in values.get("extraArgs") or []]
    if extra_args:
        require(args[-len(extra_args):] == extra_args,
                f"extraArgs {extra_args} are not appended at the end of {args}")
    env = {e["name"]: e for e in container.get("env") or []}
    for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        require(get(env, name, "valueFrom", "fieldRef", "fieldPath") == field,
                f"env {name} does not come from the downward API field {field}")
    for extra in values.get("extraEnv") or []:
        require(env.get(extra["name"]) == extra, f"extraEnv {extra['name']} is not rendered as given")


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_follows_values(objects: list[dict[str, Any]], values: dict[str, Any]) -> None:
    deployment, pod, container = deployment_parts(objects)
    replicas = values["replicaCount"]
    require(get(deployment, "spec", "replicas") == replicas,
            f"Deployment replicas {get(deployment, 'spec', 'replicas')} != replicaCount {replicas}")

    pdb = values["podDisruptionBudget"]
    want_pdb = pdb["enabled"] and (replicas > 1 or pdb["force"])
    present = {
        "PodDisruptionBudget": want_pdb,
        "ServiceMonitor": values["serviceMonitor"]["enabled"],
        "NetworkPolicy": values["networkPolicy"]["enabled"],
        "ServiceAccount": values["serviceAccount"]["create"],
        "ClusterRole": values["rbac"]["create"],
        "ClusterRoleBinding": values["rbac"]["create"],
        "Role": values["rbac"]["create"],
        "RoleBinding": values["rbac"]["create"],
        "ValidatingAdmissionPolicy": values["deletionProtection"]["enabled"],
        "ValidatingAdmissionPolicyBinding": values["deletionProtection"]["enabled"],
        "Service": True,
        "Deployment": True,
    }
    wrong = [f"{kind} {'missing' if want else 'rendered although not wanted'}"
             for kind, want in present.items() if bool(by_kind(objects, kind)) != bool(want)]
    require(not wrong, "; ".join(wrong))
    unexpected = {o["kind"] for o in objects} - set(present)
    require(not unexpected, f"unexpected kinds rendered: {sorted(unexpected)}")

    for obj in objects:
        labels = get(obj, "metadata", "labels") or {}
        for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
                    "app.kubernetes.io/managed-by", "app.kubernetes.io/part-of", "helm.sh/chart"):
            require(key in labels, f"{name_of(obj)} lacks the label {key}")
        for key, value in (values.get("commonLabels") or {}).items():
            require(labels.get(key) == value, f"{name_of(obj)} lacks commonLabels {key}={value}")
    pod_labels = get(deployment, "spec", "template", "metadata", "labels") or {}
    wanted_pod_labels = {**(values.get("commonLabels") or {}), **(values.get("podLabels") or {})}
    for key, value in wanted_pod_labels.items():
        require(pod_labels.get(key) == value, f"pod template lacks label {key}={value}")
    pod_annotations = get(deployment, "spec", "template", "metadata", "annotations") or {}
    require(pod_annotations == (values.get("podAnnotations") or {}),
            f"pod annotations {pod_annotations} != podAnnotations {values.get('podAnnotations')}")

    require(container.get("resources") == values["resources"],
            f"resources {container.get('resources')} != values {values['resources']}")
    for field, value_key in (("tolerations", "tolerations"), ("nodeSelector", "nodeSelector"),
                             ("affinity", "affinity")):
        require((pod.get(field) or None) == (values.get(value_key) or None),
                f"pod {field} {pod.get(field)!r} != values {values.get(value_key)!r}")
    require(pod.get("priorityClassName", "") == values["priorityClassName"], "priorityClassName not applied")
    require(pod.get("terminationGracePeriodSeconds") == values["terminationGracePeriodSeconds"],
            "terminationGracePeriodSeconds not applied")

    image = values["image"]
    tag = image["tag"] or CHART_APP_VERSION
    want_image = f"{image['repository']}:{tag}" + (f"@{image['digest']}" if image["digest"] else "")
    require(container.get("image") == want_image, f"image {container.get('image')} != {want_image}")
    require(container.get("imagePullPolicy") == image["pullPolicy"], "imagePullPolicy not applied")
    secrets = [s["name"] for s in pod.get("imagePullSecrets") or []]
    require(secrets == list(image["pullSecrets"]), f"imagePullSecrets {secrets} != {image['pullSecrets']}")

    constraints = pod.get("topologySpreadConstraints") or []
    require(len(constraints) == len(values["topologySpreadConstraints"]),
            "topologySpreadConstraints count differs from the values")
    for constraint in constraints:
        require(constraint.get("labelSelector"), f"topology spread constraint {constraint} has no labelSelector")


def check_references(objects: list[dict[str, Any]], values: dict[str, Any]) -> None:
    deployment, pod, container = deployment_parts(objects)
    selector = get(deployment, "spec", "selector", "matchLabels") or {}
    pod_labels = get(deployment, "spec", "template", "metadata", "labels") or {}
    require(matches(selector, pod_labels), f"Deployment selector {selector} does not match its pod labels")

    service = one(objects, "Service")
    require(get(service, "spec", "selector") == selector,
            f"Service selector {get(service, 'spec', 'selector')} != Deployment selector {selector}")
    service_ports = get(service, "spec", "ports") or []
    require([p.get("targetPort") for p in service_ports] == ["http"], "Service must target the port named http")
    require(service_ports[0].get("port") == values["service"]["port"], "Service port is not service.port")
    require(service_ports[0].get("name") == "http", "Service port is not named http")

    for kind in ("PodDisruptionBudget",):
        for obj in by_kind(objects, kind):
            require(get(obj, "spec", "selector", "matchLabels") == selector,
                    f"{name_of(obj)} selector differs from the Deployment's")
    for constraint in pod.get("topologySpreadConstraints") or []:
        require(matches(get(constraint, "labelSelector", "matchLabels") or {}, pod_labels)
                or get(constraint, "labelSelector", "matchExpressions"),
                f"topology spread constraint {constraint} does not select the operator pods")

    for monitor in by_kind(objects, "ServiceMonitor"):
        require(matches(get(monitor, "spec", "selector", "matchLabels") or {}, get(service, "metadata", "labels")),
                "ServiceMonitor selector does not match the Service's labels")
        endpoints = get(monitor, "spec", "endpoints") or []
        require(endpoints and all(e.get("port") == "http" and e.get("path") == "/metrics" for e in endpoints),
                "ServiceMonitor must scrape /metrics on the Service port named http")
        require(get(monitor, "spec", "namespaceSelector", "matchNames") == [NAMESPACE],
                "ServiceMonitor must look in the release namespace")
        require(endpoints[0].get("interval") == values["serviceMonitor"]["interval"], "interval not applied")
        for key, value in values["serviceMonitor"]["labels"].items():
            require(get(monitor, "metadata", "labels", key) == value, f"ServiceMonitor lacks label {key}")

    sa_name = pod.get("serviceAccountName")
    require(bool(sa_name), "pod has no serviceAccountName")
    if values["serviceAccount"]["create"]:
        sa = one(objects, "ServiceAccount")
        require(get(sa, "metadata", "name") == sa_name, "the created ServiceAccount is not the pod's")
        require(sa.get("automountServiceAccountToken") is False,
                "the ServiceAccount must not automount its token into other pods")
        require((get(sa, "metadata", "annotations") or {}) == values["serviceAccount"]["annotations"],
                "serviceAccount.annotations not applied")
    else:
        require(sa_name == values["serviceAccount"]["name"], "pod does not use serviceAccount.name")

    roles = {("ClusterRole", get(r, "metadata", "name")) for r in by_kind(objects, "ClusterRole")}
    roles |= {("Role", get(r, "metadata", "name")) for r in by_kind(objects, "Role")}
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        ref = binding.get("roleRef") or {}
        require((ref.get("kind"), ref.get("name")) in roles,
                f"{name_of(binding)} refers to {ref.get('kind')}/{ref.get('name')}, which the chart does not render")
        require(binding.get("subjects") == [{"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}],
                f"{name_of(binding)} must bind exactly the operator's ServiceAccount")


def check_rbac(objects: list[dict[str, Any]], values: dict[str, Any]) -> None:
    check_no_wildcards(objects)
    if not values["rbac"]["create"]:
        return
    check_permissions(permissions(rbac_rules(objects, "ClusterRole")), EXPECTED_CLUSTER_PERMISSIONS,
                      "ClusterRole permissions")
    check_permissions(permissions(rbac_rules(objects, "Role")),
                      expected_lease_permissions(values["leaderElection"]["leaseName"]),
                      "leader-election Role permissions")


def check_network_policy(objects: list[dict[str, Any]], values: dict[str, Any]) -> None:
    if not values["networkPolicy"]["enabled"]:
        return
    deployment, _, _ = deployment_parts(objects)
    policy = one(objects, "NetworkPolicy")
    spec = policy["spec"]
    require(get(spec, "podSelector", "matchLabels") == get(deployment, "spec", "selector", "matchLabels"),
            "NetworkPolicy does not select the operator pods")
    require(sorted(spec.get("policyTypes") or []) == ["Egress", "Ingress"],
            "NetworkPolicy must restrict both Ingress and Egress")
    ingress = spec.get("ingress") or []
    require(len(ingress) == 1 and ingress[0].get("ports") == [{"protocol": "TCP", "port": "http"}],
            f"ingress must allow only TCP to the http port, got {ingress}")
    require((ingress[0].get("from") or []) == values["networkPolicy"]["ingress"]["from"],
            "ingress peers differ from networkPolicy.ingress.from")
    egress = spec.get("egress") or []
    extra = values["networkPolicy"]["extraEgress"]
    require(len(egress) == 2 + len(extra), f"expected {2 + len(extra)} egress rules, got {len(egress)}")
    dns, api = egress[0], egress[1]
    require(sorted((p["protocol"], p["port"]) for p in dns.get("ports") or []) == [("TCP", 53), ("UDP", 53)],
            "the DNS rule must allow exactly port 53 over UDP and TCP")
    dns_values = values["networkPolicy"]["dns"]
    require(dns.get("to") == [{"namespaceSelector": {"matchLabels": dns_values["namespaceSelector"]},
                               "podSelector": {"matchLabels": dns_values["podSelector"]}}],
            "the DNS rule does not follow networkPolicy.dns")
    api_values = values["networkPolicy"]["apiServer"]
    require([get(t, "ipBlock", "cidr") for t in api.get("to") or []] == api_values["cidrs"],
            "the API server rule does not follow networkPolicy.apiServer.cidrs")
    require([(p["protocol"], p["port"]) for p in api.get("ports") or []]
            == [("TCP", port) for port in api_values["ports"]],
            "the API server rule does not follow networkPolicy.apiServer.ports")
    for rule in egress[:2]:
        require(rule.get("to") and rule.get("ports"), f"egress rule {rule} is not restricted by peer and port")
    require(egress[2:] == extra, "networkPolicy.extraEgress is not appended as given")


def check_notes(manifests: dict[str, str], values: dict[str, Any]) -> None:
    notes = next((text for name, text in manifests.items() if name.endswith("NOTES.txt")), "")
    require(notes.strip() != "", "NOTES.txt renders empty")
    for needle in ("rollout status", "/readyz", "kind: Tenant", "helm uninstall", "CRD"):
        require(needle in notes, f"NOTES.txt does not mention {needle!r}")


# ---------------------------------------------------------------------------------
# Checks on the chart as a whole


def check_lint(values: dict[str, Any]) -> None:
    report = helm.lint(str(CHART), values, strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    problems = [f"[{m.get('severity')}] {m.get('path')}: {m.get('error', '').strip()}"
                for m in report.get("messages") or [] if (m.get("severity") or 0) >= 2]
    problems += [e.strip() for e in report.get("errors") or [] if e.strip() not in " ".join(problems)]
    require(not problems, "; ".join(problems))


def check_invalid_values_file(chart: Any, path: Path) -> None:
    expected = [line.split(":", 1)[1].strip() for line in path.read_text().splitlines()
                if line.startswith("# expect:")]
    require(expected, "the file has no '# expect: <text>' line naming the expected error")
    values = load_values(path)
    try:
        render(chart, values)
    except helm.HelmValuesError as err:
        message = str(err)
    else:
        raise CheckFailed("the values were accepted")
    missing = [text for text in expected if text not in message]
    require(not missing, f"the error does not mention {missing}: {message.strip()!r}")


def check_values_documented(chart: Any) -> None:
    """Every value in the schema has a default in values.yaml, and it or the block that
    holds it is preceded by a comment; the README's table lists each documented path."""
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    root = yaml.compose(text)
    readme = (CHART / "README.md").read_text()
    schema = chart.schema or {}
    problems = []

    def commented(key_node: Any) -> bool:
        index = key_node.start_mark.line - 1
        return index >= 0 and lines[index].strip().startswith("#")

    def walk(schema_node: dict, yaml_node: Any, prefix: str, documented: str | None) -> None:
        for key, sub_schema in (schema_node.get("properties") or {}).items():
            path = f"{prefix}{key}"
            if key == "global":
                continue
            if not isinstance(sub_schema, dict):
                continue
            pair = next(((k, v) for k, v in (yaml_node.value if yaml_node is not None else [])
                         if k.value == key), None)
            if pair is None:
                problems.append(f"{path} has no default in values.yaml")
                continue
            key_node, value_node = pair
            this_doc = documented or (path if commented(key_node) else None)
            if sub_schema.get("properties") and isinstance(value_node, yaml.MappingNode) and not commented(key_node):
                walk(sub_schema, value_node, f"{path}.", this_doc)
                continue
            if this_doc is None:
                problems.append(f"{path} has no comment in values.yaml")
            elif f"`{this_doc}`" not in readme:
                problems.append(f"{this_doc} is not in the README's values table")

    walk(schema, root, "", None)
    require(not problems, "; ".join(sorted(set(problems))))


def landlord_crds(chart: Any) -> list[dict[str, Any]]:
    crds = []
    for entry in chart.crds:
        for doc in yaml.safe_load_all(entry["data"]):
            if doc:
                doc["__template__"] = entry.get("filename") or entry.get("name")
                crds.append(doc)
    return crds


def check_crds(crds: list[dict[str, Any]]) -> None:
    kinds = {}
    for crd in crds:
        require(crd.get("kind") == "CustomResourceDefinition", f"{crd['__template__']} is not a CRD")
        try:
            kubernetes_validate.validate(strip(crd), KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            raise CheckFailed(f"{crd['__template__']}: {'.'.join(map(str, err.path))}: {err.message}") from None
        spec = crd["spec"]
        require(spec.get("group") == GROUP, f"{name_of(crd)} is not in group {GROUP}")
        require(spec.get("scope") == "Cluster", f"{name_of(crd)} is not cluster-scoped")
        kinds[get(spec, "names", "kind")] = get(spec, "names", "plural")
    require(kinds == LANDLORD_KINDS, f"crds/ defines {kinds}, expected {LANDLORD_KINDS}")


def check_notes_tenant(chart: Any, crds: list[dict[str, Any]]) -> None:
    notes = render(chart, {})
    text = next(t for n, t in notes.items() if n.endswith("NOTES.txt"))
    block = re.search(r"^( +)apiVersion: landlord\.dev/.*?(?=\n\s*\n)", text, re.S | re.M)
    require(block is not None, "NOTES.txt has no Tenant example")
    indent = len(block.group(1))
    tenant = yaml.safe_load("\n".join(line[indent:] for line in block.group(0).splitlines()))
    crd = next(c for c in crds if get(c, "spec", "names", "kind") == "Tenant")
    version = tenant["apiVersion"].split("/")[1]
    served = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    require(version in served, f"NOTES.txt uses {tenant['apiVersion']}, not served by the Tenant CRD")
    schema = get(served[version], "schema", "openAPIV3Schema") or {}
    # OpenAPI v3 structural schemas are close enough to JSON Schema for this purpose;
    # Kubernetes-only keywords (x-kubernetes-*, CEL rules) are ignored.
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors({**tenant, "metadata": {}}),
                    key=lambda e: list(e.path))
    require(not errors, "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors))


# ---------------------------------------------------------------------------------


CHART_APP_VERSION = ""

# The operator's integration tests run it under the emulator's RBAC with exactly these
# rules, so a permission the chart lacks fails a test.
RBAC_FIXTURE = ROOT / "tests" / "fixtures" / "chart-rbac.json"


# The deletion protection's tests install exactly the policy and binding the chart renders.
PROTECTION_FIXTURE = ROOT / "tests" / "fixtures" / "chart-deletion-protection.json"


def check_protection_fixture(objects: list[dict[str, Any]], update: bool) -> None:
    policies = by_kind(objects, "ValidatingAdmissionPolicy")
    bindings = by_kind(objects, "ValidatingAdmissionPolicyBinding")
    require(len(policies) == 1 and len(bindings) == 1, "one policy and one binding")
    policy, binding = policies[0], bindings[0]
    require(get(binding, "spec", "policyName") == get(policy, "metadata", "name"),
            "the binding names the policy")
    require(get(binding, "spec", "validationActions") == ["Deny"], "the binding denies")
    rules = get(policy, "spec", "matchConstraints", "resourceRules")
    require(rules == [{"apiGroups": ["landlord.dev"], "apiVersions": ["v1alpha1"],
                       "operations": ["DELETE"], "resources": ["tenants"]}],
            f"the policy matches only Tenant deletions: {rules}")
    strip = lambda o: {k: v for k, v in o.items() if k != "__template__"}
    text = json.dumps({"policy": strip(policy), "binding": strip(binding)},
                      indent=2, sort_keys=True) + "\n"
    if update:
        PROTECTION_FIXTURE.write_text(text)
    require(PROTECTION_FIXTURE.exists() and PROTECTION_FIXTURE.read_text() == text,
            f"{PROTECTION_FIXTURE.relative_to(ROOT)} differs from the chart's rendered policy: "
            "run `.venv/bin/python scripts/check-chart.py --update-fixtures`")


def check_rbac_fixture(objects: list[dict[str, Any]], update: bool) -> None:
    fixture = {
        "clusterRoleRules": rbac_rules(objects, "ClusterRole"),
        "leaseRoleRules": rbac_rules(objects, "Role"),
    }
    text = json.dumps(fixture, indent=2, sort_keys=True) + "\n"
    if update:
        RBAC_FIXTURE.parent.mkdir(parents=True, exist_ok=True)
        RBAC_FIXTURE.write_text(text)
    require(RBAC_FIXTURE.exists() and RBAC_FIXTURE.read_text() == text,
            f"{RBAC_FIXTURE.relative_to(ROOT)} differs from the chart's rendered RBAC: "
            "run `.venv/bin/python scripts/check-chart.py --update-fixtures`")


def main() -> int:
    global CHART_APP_VERSION
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--require-crds", action="store_true",
                        help="fail when charts/landlord/crds/ holds no CRDs")
    parser.add_argument("--update-fixtures", action="store_true",
                        help=f"rewrite {RBAC_FIXTURE.relative_to(ROOT)} from the rendered chart")
    parser.add_argument("-v", "--verbose", action="store_true", help="print tracebacks of crashing checks")
    args = parser.parse_args()
    results = Results(args.verbose)

    print(f"check-chart: {CHART.relative_to(ROOT)} with Helm {helm.helm_sdk_version()} "
          f"(helm-python-sdk {helm.__version__}), kubernetes-validate {kubernetes_validate.__version__}, "
          f"Kubernetes {KUBE_VERSION}")
    chart = helm.Chart.load(str(CHART))
    CHART_APP_VERSION = str(chart.metadata.get("appVersion", ""))

    results.run("Chart.yaml declares kubeVersion >=1.33.0-0 and apiVersion v2", lambda: require(
        chart.metadata.get("kubeVersion") == ">=1.33.0-0" and chart.metadata.get("apiVersion") == "v2",
        f"metadata is {chart.metadata}"))
    results.run("values.yaml documents every value and the README lists it", lambda: check_values_documented(chart))

    values_files = sorted((CHART / "ci").glob("*.yaml"))
    if not values_files:
        results.run("ci/ holds values files", lambda: require(False, "no charts/landlord/ci/*.yaml"))
    cases: list[tuple[str, dict[str, Any]]] = [("chart defaults", {})]
    for path in values_files:
        try:
            cases.append((f"ci/{path.name}", load_values(path)))
        except helm.HelmError as err:
            results.run(f"ci/{path.name} parses", lambda err=err: require(False, str(err)))

    for label, values in cases:
        results.run(f"[{label}] helm lint --strict", lambda values=values: check_lint(values))
        rendered: dict[str, Any] = {}

        def do_render(values: dict[str, Any] = values) -> None:
            rendered["manifests"] = render(chart, values)
            rendered["objects"] = parse_objects(rendered["manifests"])
            rendered["values"] = chart.merge_values(values)

        if not results.run(f"[{label}] renders", do_render):
            continue
        objects, merged, manifests = rendered["objects"], rendered["values"], rendered["manifests"]
        results.run(f"[{label}] objects are named, namespaced and unique", lambda: check_object_basics(objects))
        check_kubernetes_schemas(objects, results, label)
        results.run(f"[{label}] RBAC: no wildcards, exactly the expected permissions",
                    lambda: check_rbac(objects, merged))
        results.run(f"[{label}] Deployment is hardened", lambda: check_hardening(objects))
        results.run(f"[{label}] probes and ports", lambda: check_probes_and_ports(objects))
        results.run(f"[{label}] container args and env", lambda: check_args_and_env(objects, merged))
        results.run(f"[{label}] rendering follows the values", lambda: check_follows_values(objects, merged))
        results.run(f"[{label}] objects refer to each other consistently",
                    lambda: check_references(objects, merged))
        results.run(f"[{label}] NetworkPolicy", lambda: check_network_policy(objects, merged))
        results.run(f"[{label}] NOTES.txt", lambda: check_notes(manifests, merged))
        if label == "chart defaults":
            results.run(f"{RBAC_FIXTURE.relative_to(ROOT)} holds the chart's RBAC rules",
                        lambda: check_rbac_fixture(objects, args.update_fixtures))
            results.run(f"{PROTECTION_FIXTURE.relative_to(ROOT)} holds the chart's deletion protection",
                        lambda: check_protection_fixture(objects, args.update_fixtures))

    invalid_files = sorted(INVALID_VALUES.glob("*.yaml"))
    results.run("tests/chart/invalid-values holds examples", lambda: require(
        len(invalid_files) > 0, f"no files in {INVALID_VALUES.relative_to(ROOT)}"))
    for path in invalid_files:
        results.run(f"refused: {path.relative_to(ROOT)}", lambda path=path: check_invalid_values_file(chart, path))

    crds = landlord_crds(chart)
    if crds:
        results.run("crds/ holds the six landlord.dev CRDs, valid and cluster-scoped", lambda: check_crds(crds))
        results.run("the Tenant example in NOTES.txt fits the Tenant CRD schema",
                    lambda: check_notes_tenant(chart, crds))
    elif args.require_crds:
        results.run("crds/ holds the CRDs", lambda: require(False, "charts/landlord/crds/ holds no CRDs"))
    else:
        results.note("charts/landlord/crds/ holds no CRDs yet: CRD checks skipped "
                     "(pass --require-crds once the generated CRDs are in place)")

    print(f"{results.passed} passed, {results.failed} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
