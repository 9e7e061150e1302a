#!/usr/bin/env python3
"""Checks `helm template` output of charts/tern-operator (read from standard input).

Usage: helm template ... | check_rendered.py CHART_DIR RELEASE_NAMESPACE [VALUES_FILE]

Asserts, against the chart's values.yaml merged with VALUES_FILE:
- RBAC: no wildcard anywhere, no nonResourceURLs, and exactly the rules the operator needs
  (every resource it touches, with exactly the expected verbs, nothing else); a ClusterRole
  when watching all namespaces, otherwise a Role + RoleBinding per watched namespace and no
  cluster-wide grant; the Lease Role only in the release namespace, limited to its Lease.
- Deployment: `run` with the cluster name and namespaces, /healthz probes on the metrics port,
  non-root read-only security context, the bound ServiceAccount.
- CRDs: when crds.manage, every CRD of the chart's files/crds/ templated unchanged, with
  helm.sh/resource-policy: keep.
"""
import copy
import os
import sys

import yaml

GROUP = "tern.dev"
KINDS = ["natsclusters", "superclusters", "leafnodes"]
OWNED_VERBS = {"get", "list", "watch", "create", "patch", "delete"}
# (apiGroup, resource) -> verbs: the complete grant in each managed namespace.
EXPECTED = {
    **{(GROUP, kind): {"get", "list", "watch", "patch", "update"} for kind in KINDS},
    # SuperClusters create (and remove) the NatsClusters of their template members.
    (GROUP, "natsclusters"): {"get", "list", "watch", "create", "patch", "update", "delete"},
    **{(GROUP, kind + "/status"): {"get", "patch", "update"} for kind in KINDS},
    **{(GROUP, kind + "/finalizers"): {"update"} for kind in KINDS},
    ("", "configmaps"): OWNED_VERBS,
    ("", "services"): OWNED_VERBS,
    ("", "serviceaccounts"): OWNED_VERBS,
    ("apps", "statefulsets"): OWNED_VERBS,
    ("policy", "poddisruptionbudgets"): OWNED_VERBS,
    ("", "pods"): {"get", "list", "watch"},
    ("", "pods/eviction"): {"create"},
    ("", "secrets"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}

errors = []


def check(condition, message):
    if not condition:
        errors.append(message)
    return condition


def merge(base, override):
    result = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def grants(role):
    """(apiGroup, resource) -> verbs of a role's rules without resourceNames."""
    table = {}
    where = f"{role['kind']} {role['metadata'].get('namespace', '')}/{role['metadata']['name']}"
    for rule in role.get("rules") or []:
        check("nonResourceURLs" not in rule, f"{where}: nonResourceURLs granted")
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            for item in rule.get(field) or []:
                check("*" not in item, f"{where}: wildcard {item!r} in {field}")
        if rule.get("resourceNames"):
            continue
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                table.setdefault((group, resource), set()).update(rule.get("verbs") or [])
    return where, table


def check_rules(role):
    where, table = grants(role)
    for key, verbs in sorted(EXPECTED.items()):
        granted = table.get(key, set())
        check(granted >= verbs, f"{where}: {key} misses verbs {sorted(verbs - granted)}")
    for key, verbs in sorted(table.items()):
        extra = verbs - EXPECTED.get(key, set())
        check(not extra, f"{where}: {key} grants more than needed: {sorted(extra)}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    chart, release_namespace = sys.argv[1], sys.argv[2]
    with open(os.path.join(chart, "values.yaml")) as file:
        values = yaml.safe_load(file)
    if len(sys.argv) == 4:
        with open(sys.argv[3]) as file:
            values = merge(values, yaml.safe_load(file))
    documents = [d for d in yaml.safe_load_all(sys.stdin) if d]
    by_kind = {}
    for document in documents:
        by_kind.setdefault(document["kind"], []).append(document)
    watched = sorted(set(values["watchNamespaces"] or []))

    # RBAC
    cluster_roles = by_kind.get("ClusterRole", [])
    roles = by_kind.get("Role", [])
    lease_roles = [r for r in roles if r["metadata"]["name"].endswith("-leader-election")]
    namespace_roles = [r for r in roles if r not in lease_roles]
    if not watched:
        check(len(cluster_roles) == 1, f"all namespaces: want 1 ClusterRole, got {len(cluster_roles)}")
        check(len(by_kind.get("ClusterRoleBinding", [])) == 1, "all namespaces: want 1 ClusterRoleBinding")
        check(not namespace_roles, "all namespaces: unexpected namespaced Roles")
    else:
        check(not cluster_roles and "ClusterRoleBinding" not in by_kind,
              "watched namespaces: nothing cluster-wide may be granted")
        got = sorted(r["metadata"]["namespace"] for r in namespace_roles)
        check(got == watched, f"Roles in {got}, want one in each of {watched}")
        bound = sorted(b["metadata"]["namespace"] for b in by_kind.get("RoleBinding", [])
                       if not b["metadata"]["name"].endswith("-leader-election"))
        check(bound == watched, f"RoleBindings in {bound}, want one in each of {watched}")
    for role in cluster_roles + namespace_roles:
        check_rules(role)

    lease = values["leaderElection"]["leaseName"]
    if check(len(lease_roles) == 1, "want exactly one leader-election Role"):
        role = lease_roles[0]
        grants(role)  # wildcard checks
        check(role["metadata"]["namespace"] == release_namespace,
              "the leader-election Role belongs in the release namespace")
        rules = role["rules"]
        check(all(r["apiGroups"] == ["coordination.k8s.io"] and r["resources"] == ["leases"] for r in rules),
              "the leader-election Role may grant leases only")
        unnamed = [v for r in rules if not r.get("resourceNames") for v in r["verbs"]]
        named = {v for r in rules if r.get("resourceNames") == [lease] for v in r["verbs"]}
        check(unnamed == ["create"], f"leases: only create may be unnamed, got {unnamed}")
        check(named == {"get", "watch", "update", "patch"}, f"lease {lease}: verbs {sorted(named)}")

    service_account = values["serviceAccount"]["name"] or None
    for binding in by_kind.get("RoleBinding", []) + by_kind.get("ClusterRoleBinding", []):
        subjects = binding["subjects"]
        check(len(subjects) == 1 and subjects[0]["kind"] == "ServiceAccount"
              and subjects[0]["namespace"] == release_namespace,
              f"{binding['kind']} {binding['metadata']['name']}: must bind only the operator's ServiceAccount")
        service_account = service_account or subjects[0]["name"]

    # Deployment
    deployments = by_kind.get("Deployment", [])
    if check(len(deployments) == 1, f"want 1 Deployment, got {len(deployments)}"):
        deployment = deployments[0]
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        args = container["args"]
        check(spec["replicas"] == values["replicas"], "replicas differ from values")
        check(args[0] == "run", f"the operator must run `tern-operator run`, got {args}")
        name = values["kubernetesClusterName"]
        if name:
            check(f"--kubernetes-cluster-name={name}" in args, f"--kubernetes-cluster-name={name} missing")
        else:
            check(not any(a.startswith("--kubernetes-cluster-name") for a in args), "unexpected cluster name")
        got = sorted(a.split("=", 1)[1] for a in args if a.startswith("--namespace="))
        check(got == watched, f"--namespace flags {got}, want {watched}")
        port = values["metrics"]["port"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        check(ports.get("http-metrics") == port, f"metrics port {ports}, want {port}")
        check(f"--http-address=0.0.0.0:{port}" in args, "--http-address does not match the metrics port")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = (container.get(probe) or {}).get("httpGet", {})
            check(get.get("path") == "/healthz" and get.get("port") == "http-metrics",
                  f"{probe} must GET /healthz on the metrics port")
        security = container["securityContext"]
        check(security.get("readOnlyRootFilesystem") is True, "root filesystem must be read-only")
        check(security.get("allowPrivilegeEscalation") is False, "privilege escalation must be off")
        check(pod["securityContext"].get("runAsNonRoot") is True, "pod must run as non-root")
        check(pod["serviceAccountName"] == service_account,
              f"pod runs as {pod['serviceAccountName']}, RBAC binds {service_account}")
        for key in ("nodeSelector", "tolerations"):
            check(pod.get(key) == (values[key] or None), f"{key} differs from values")
        if values["affinity"]:
            check(pod.get("affinity") == values["affinity"], "affinity differs from values")

    # CRDs
    crds = {c["metadata"]["name"]: c for c in by_kind.get("CustomResourceDefinition", [])}
    crd_dir = os.path.join(chart, "files", "crds")
    shipped = {}
    for file_name in sorted(os.listdir(crd_dir)):
        if file_name.endswith(".yaml"):
            with open(os.path.join(crd_dir, file_name)) as file:
                crd = yaml.safe_load(file)
            shipped[crd["metadata"]["name"]] = crd
    check(len(shipped) == 3, f"the chart's files/crds/ holds {sorted(shipped)}, want 3 CRDs")
    if values["crds"]["manage"]:
        check(sorted(crds) == sorted(shipped), f"templated CRDs {sorted(crds)}, want {sorted(shipped)}")
        for name, crd in crds.items():
            annotations = crd["metadata"].get("annotations") or {}
            if values["crds"]["keep"]:
                check(annotations.get("helm.sh/resource-policy") == "keep", f"CRD {name}: keep annotation missing")
            check(crd["spec"] == shipped.get(name, {}).get("spec"), f"CRD {name}: templated spec differs from crds/")
    else:
        check(not crds, "crds.manage=false must template no CRD")

    kinds = ", ".join(f"{kind} x{len(items)}" for kind, items in sorted(by_kind.items()))
    if errors:
        for error in errors:
            print(f"check_rendered: {error}", file=sys.stderr)
        sys.exit(1)
    print(f"check_rendered: ok ({kinds})")


main()
