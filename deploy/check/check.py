#!/usr/bin/env python3
"""The deploy check (make deploy-check, part of make test), offline: no cluster, no network.

1. Renders every kustomization (base and each overlay) with kubectl kustomize.
2. Validates every rendered object: core objects against the Kubernetes API's JSON schemas
   (kubernetes-validate, strict: an unknown field is an error, as `kubectl apply` refuses it);
   custom resources (CloudNativePG Cluster and ScheduledBackup, Barman Cloud ObjectStore,
   ServiceMonitor, PrometheusRule) against the openAPIV3Schema of their CRDs, vendored in
   deploy/check/crds/ (strict in the same way). An object of any other kind fails the check.
3. Checks what a platform team expects of the lrt-cds pods in every rendering (security context,
   probes, resources, graceful shutdown, spread), that every pod template rendered meets Pod
   Security "restricted" (which the namespace enforces), and that no Secret is rendered.
4. Proves the validator catches mistakes: a copy of the base with an unknown container field
   (imagePullPolicyy) and one with an unknown CloudNativePG field must both be refused.
5. Alerts: the PrometheusRule's rules through `promtool check rules` and the unit tests of
   deploy/check/alerts.test.yaml through `promtool test rules`.
6. Metric names: every lrt_* metric queried by the alerts and the Grafana dashboard is one the
   service emits (metrics::counter!/gauge!/histogram! in services/).
7. The Grafana dashboard parses as JSON; the collector's configuration references only
   components it defines and runs both PHI processors in every pipeline.
8. The image: hadolint finds nothing in deploy/container/Dockerfile (at any severity), and the
   image's numeric USER is the runAsUser of the manifests.

Usage: check.py --kubectl PATH --promtool PATH --hadolint PATH   (run by make deploy-check through tools.sh)
"""

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jsonschema
import yaml
from kubernetes_validate import utils as kv

ROOT = Path(__file__).resolve().parents[2]
KUSTOMIZE_ROOT = ROOT / "deploy/kubernetes"
RENDERINGS = ["base", "overlays/production", "overlays/demo"]
CRD_DIR = ROOT / "deploy/check/crds"
K8S_VERSION = "1.37"
# Gauges another change of issue 11 is adding; alerts and panels may name them before they exist.
# Series Prometheus itself makes or the histogram exporter derives.
PROMETHEUS_OWN = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


class CheckFailed(Exception):
    pass


def render(kubectl, path):
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise CheckFailed(f"kubectl kustomize {path}: {out.stderr.strip()}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


# --- custom resources: CRD openAPIV3Schema -> strict JSON Schema --------------------------------


def strict_schema(node):
    """openAPIV3Schema as the API server applies it: unknown fields are refused where the schema
    lists properties and neither preserves unknown fields nor allows additional properties."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_schema(v) for k, v in node.items()}
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def load_crd_validators():
    validators = {}
    for f in sorted(CRD_DIR.glob("*.json")):
        group, kind, version = f.stem.split("_")
        schema = strict_schema(json.loads(f.read_text()))
        # metadata is the API server's (ObjectMeta); its own check is not the CRD's.
        schema.setdefault("properties", {})["metadata"] = {"type": "object"}
        validators[(f"{group}/{version}", kind.lower())] = jsonschema.Draft7Validator(schema)
    return validators


def validate_object(doc, crds):
    """Returns (kind of check, list of error strings)."""
    api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
    name = f"{kind}/{doc.get('metadata', {}).get('name', '?')}"
    crd = crds.get((api, kind.lower()))
    if crd is not None:
        errors = [
            f"{name}: {'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in crd.iter_errors(doc)
        ]
        return "crd", errors
    try:
        kv.validate(doc, K8S_VERSION, strict=True)
        return "core", []
    except kv.SchemaNotFoundError:
        return "unknown", [f"{name}: {api} {kind} is neither a core kind of Kubernetes {K8S_VERSION} nor a vendored CRD"]
    except kv.ValidationError as e:
        path = ".".join(str(p) for p in e.absolute_path) or "(root)"
        return "core", [f"{name}: {path}: {e.message}"]


# --- what the platform team expects of the service's pods -----------------------------------------


def check_service_pods(docs, where):
    problems = []
    deps = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "lrt-cds"]
    if len(deps) != 1:
        return [f"{where}: expected one Deployment lrt-cds, found {len(deps)}"]
    spec = deps[0]["spec"]["template"]["spec"]
    c = next((c for c in spec["containers"] if c["name"] == "lrt"), None)
    if c is None:
        return [f"{where}: no container lrt"]
    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    want = {
        "runAsNonRoot": psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot", True) is True,
        "numeric runAsUser": isinstance(psc.get("runAsUser", csc.get("runAsUser")), int),
        "seccomp RuntimeDefault": psc.get("seccompProfile", {}).get("type") == "RuntimeDefault",
        "readOnlyRootFilesystem": csc.get("readOnlyRootFilesystem") is True,
        "allowPrivilegeEscalation false": csc.get("allowPrivilegeEscalation") is False,
        "capabilities drop ALL": csc.get("capabilities", {}).get("drop") == ["ALL"],
        "cpu and memory requests": {"cpu", "memory"} <= set(c.get("resources", {}).get("requests", {})),
        "memory limit": "memory" in c.get("resources", {}).get("limits", {}),
        "startupProbe /health/live": c.get("startupProbe", {}).get("httpGet", {}).get("path") == "/health/live",
        "readinessProbe /health/ready": c.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/health/ready",
        "livenessProbe /health/live": c.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/health/live",
        "preStop": "preStop" in c.get("lifecycle", {}),
        "terminationGracePeriodSeconds > preStop + 10 s request timeout": spec.get("terminationGracePeriodSeconds", 30)
        > c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0) + 10,
        "topologySpreadConstraints": bool(spec.get("topologySpreadConstraints")),
        "no service account token": spec.get("automountServiceAccountToken") is False,
        "DATABASE_URL from the CloudNativePG app Secret": any(
            e.get("valueFrom", {}).get("secretKeyRef", {}).get("key") == "uri" for e in c.get("env", [])
        ),
    }
    problems += [f"{where}: Deployment lrt-cds: missing {k}" for k, ok in want.items() if not ok]
    for d in docs:
        if d["kind"] == "Secret":
            problems.append(f"{where}: Secret/{d['metadata']['name']} is rendered from the repository: secrets are created on the cluster, never committed")
        if d["kind"] == "ConfigMap":
            for k, v in (d.get("data") or {}).items():
                if re.search(r"(?i)(password|secret|token)\s*=\s*\"[^\"/]", v or ""):
                    problems.append(f"{where}: ConfigMap/{d['metadata']['name']} {k} seems to hold a secret value")
    return problems


def check_restricted(docs, where):
    """Pod Security "restricted" (the namespace enforces it) for every pod template rendered here:
    what the admission controller would refuse, found before a cluster does."""
    problems = []
    for d in docs:
        tpl = d.get("spec", {}).get("template", {}).get("spec") if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job") else None
        if tpl is None:
            continue
        psc = tpl.get("securityContext", {})
        for c in tpl.get("initContainers", []) + tpl.get("containers", []):
            csc = c.get("securityContext", {})
            name = f"{where}: {d['kind']}/{d['metadata']['name']} container {c['name']}"
            if csc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation must be false")
            if "ALL" not in csc.get("capabilities", {}).get("drop", []):
                problems.append(f"{name}: capabilities must drop ALL")
            if not csc.get("runAsNonRoot", psc.get("runAsNonRoot", False)):
                problems.append(f"{name}: runAsNonRoot must be true")
            if csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type") not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{name}: seccompProfile must be RuntimeDefault")
            if csc.get("privileged"):
                problems.append(f"{name}: privileged")
        for v in tpl.get("volumes", []):
            if "hostPath" in v:
                problems.append(f"{where}: {d['kind']}/{d['metadata']['name']}: hostPath volume {v['name']}")
    return problems


# --- metric names -------------------------------------------------------------------------------


def emitted_metrics():
    names = set()
    pattern = re.compile(r"metrics::(?:counter|gauge|histogram)!\(\s*\"([a-z_:][a-z0-9_:]*)\"")
    for f in (ROOT / "services").rglob("*.rs"):
        names.update(pattern.findall(f.read_text(errors="replace")))
    return names


def metric_names_in(expr):
    # Strip label matchers and strings first: label values are not metric names.
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r'"[^"]*"', "", expr)
    return set(re.findall(r"\b(lrt_[a-z0-9_]+|up)\b", expr))


def base_name(name, emitted):
    if name in emitted:
        return name
    for s in HISTOGRAM_SUFFIXES:
        if name.endswith(s) and name[: -len(s)] in emitted:
            return name[: -len(s)]
    return name


def check_metric_names(exprs, what, emitted):
    unknown = set()
    for expr in exprs:
        for n in metric_names_in(expr):
            b = base_name(n, emitted)
            if b not in emitted and b not in PROMETHEUS_OWN:
                unknown.add(b)
    if unknown:
        raise CheckFailed(f"{what} query metrics the service does not emit: {', '.join(sorted(unknown))}")


def dashboard_exprs(dashboard):
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
            walk(p.get("panels", []))

    walk(dashboard.get("panels", []))
    return exprs


# --- the collector -------------------------------------------------------------------------------


def check_collector(docs):
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("lrt-otel-collector-config"))
    cfg = yaml.safe_load(cm["data"]["config.yaml"])
    service = cfg["service"]
    problems = []
    for pname, p in service["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            for comp in p.get(section, []):
                if comp not in (cfg.get(section) or {}):
                    problems.append(f"collector pipeline {pname}: {section[:-1]} {comp} is not defined")
        for phi in ("attributes/phi", "transform/phi"):
            if phi not in p.get("processors", []):
                problems.append(f"collector pipeline {pname} does not run {phi}")
        if p.get("processors", [None])[0] != "memory_limiter":
            problems.append(f"collector pipeline {pname}: memory_limiter must come first")
    for ext in service.get("extensions", []):
        if ext not in (cfg.get("extensions") or {}):
            problems.append(f"collector extension {ext} is not defined")
    http = cfg["receivers"]["otlp"]["protocols"].get("http", {})
    if not http.get("endpoint", "").endswith(":4318"):
        problems.append("collector: the OTLP receiver must listen for HTTP on 4318")
    return problems, len(service["pipelines"])


# --- main ----------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--hadolint", required=True)
    args = ap.parse_args()
    started = time.monotonic()
    crds = load_crd_validators()
    problems = []
    counts = {"core": 0, "crd": 0}
    kinds_seen = set()
    rendered = {}
    pipelines = []

    for r in RENDERINGS:
        docs = render(args.kubectl, KUSTOMIZE_ROOT / r)
        rendered[r] = docs
        for d in docs:
            check, errors = validate_object(d, crds)
            problems += [f"{r}: {e}" for e in errors]
            counts[check] = counts.get(check, 0) + 1
            kinds_seen.add(d["kind"] if check == "core" else f"{d['kind']} (CRD)")
        problems += check_service_pods(docs, r)
        problems += check_restricted(docs, r)
        collector_problems, n = check_collector(docs)
        problems += [f"{r}: {p}" for p in collector_problems]
        pipelines.append(f"{r} {n}")

    # The validator must catch what `kubectl apply` would refuse.
    base = rendered["base"]
    broken_dep = copy.deepcopy(next(d for d in base if d["kind"] == "Deployment" and d["metadata"]["name"] == "lrt-cds"))
    broken_dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    _, errs = validate_object(broken_dep, crds)
    if not any("imagePullPolicyy" in e for e in errs):
        problems.append("the validator accepted a Deployment with containers[0].imagePullPolicyy: it does not catch unknown fields")
    broken_cluster = copy.deepcopy(next(d for d in base if d["kind"] == "Cluster"))
    broken_cluster["spec"]["instancess"] = 3
    _, errs = validate_object(broken_cluster, crds)
    if not any("instancess" in e for e in errs):
        problems.append("the validator accepted a CloudNativePG Cluster with spec.instancess: it does not catch unknown fields")
    wrong_type = copy.deepcopy(broken_dep)
    del wrong_type["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"]
    wrong_type["spec"]["replicas"] = "three"
    _, errs = validate_object(wrong_type, crds)
    if not errs:
        problems.append("the validator accepted a Deployment with replicas: \"three\"")
    # ... and a kustomization that does not build.
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "kustomization.yaml").write_text("resources: [missing.yaml]\n")
        try:
            render(args.kubectl, tmp)
            problems.append("kubectl kustomize accepted a kustomization naming a missing file")
        except CheckFailed:
            pass

    # Alerts: promtool's syntax check and the rules' unit tests, on the PrometheusRule as rendered.
    emitted = emitted_metrics()
    rule = next(d for d in base if d["kind"] == "PrometheusRule")
    groups = rule["spec"]["groups"]
    n_rules = sum(len(g["rules"]) for g in groups)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "lrt-cds.rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        tests = (ROOT / "deploy/check/alerts.test.yaml").read_text()
        Path(tmp, "alerts.test.yaml").write_text(tests)
        for cmd in (["check", "rules", "lrt-cds.rules.yaml"], ["test", "rules", "alerts.test.yaml"]):
            out = subprocess.run([args.promtool, *cmd], cwd=tmp, capture_output=True, text=True)
            if out.returncode != 0:
                problems.append(f"promtool {' '.join(cmd)}:\n{out.stdout}{out.stderr}")
    n_tests = len(yaml.safe_load(tests)["tests"])
    rule_exprs = [r["expr"] for g in groups for r in g["rules"]]
    dashboard = json.loads((KUSTOMIZE_ROOT / "base/grafana-dashboard.json").read_text())
    dash_exprs = dashboard_exprs(dashboard)
    try:
        check_metric_names(rule_exprs, "PrometheusRule lrt-cds", emitted)
        check_metric_names(dash_exprs, "the Grafana dashboard", emitted)
    except CheckFailed as e:
        problems.append(str(e))
    if len(dash_exprs) < 5:
        problems.append(f"the Grafana dashboard has only {len(dash_exprs)} queries")

    # The image.
    dockerfile = ROOT / "deploy/container/Dockerfile"
    out = subprocess.run([args.hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        problems.append(f"hadolint {dockerfile.relative_to(ROOT)}:\n{out.stdout}{out.stderr}")
    users = re.findall(r"^USER\s+(\d+)(?::\d+)?\s*$", dockerfile.read_text(), re.M)
    run_as = {
        d["spec"]["template"]["spec"]["securityContext"].get("runAsUser")
        for docs in rendered.values() for d in docs
        if d["kind"] == "Deployment" and d["metadata"]["name"] == "lrt-cds"
    }
    if not users or {int(users[-1])} != run_as:
        problems.append(f"the image's USER {users[-1:] or 'missing'} is not the manifests' runAsUser {sorted(run_as)} (a numeric user is required)")

    if problems:
        print("deploy-check FAILED:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    print(f"deploy-check: rendered {len(RENDERINGS)} kustomizations ({', '.join(RENDERINGS)}) with kubectl kustomize")
    print(f"deploy-check: {counts['core']} core objects valid against the Kubernetes {K8S_VERSION} API schemas (strict), "
          f"{counts['crd']} custom resources valid against their vendored CRD schemas (strict)")
    print(f"deploy-check: kinds: {', '.join(sorted(kinds_seen))}")
    print("deploy-check: the lrt-cds pods have the security context, probes, resources, preStop and spread; every pod template meets Pod Security \"restricted\"; no Secret rendered")
    print("deploy-check: refused as expected: containers[0].imagePullPolicyy, Cluster spec.instancess, replicas \"three\", a missing kustomize resource")
    print(f"deploy-check: {n_rules} alert rules pass promtool check rules; {n_tests} promtool unit tests pass")
    print(f"deploy-check: {len(dash_exprs)} dashboard queries and {len(rule_exprs)} alert expressions name only emitted metrics")
    print(f"deploy-check: collector configuration (pipelines: {', '.join(pipelines)}): every component defined, memory_limiter first, both PHI processors in each pipeline")
    print(f"deploy-check: deploy/container/Dockerfile: hadolint clean; USER {users[-1]} = the manifests' runAsUser (the image is not built here)")
    print(f"deploy-check: done in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CheckFailed as e:
        print(f"deploy-check FAILED: {e}", file=sys.stderr)
        sys.exit(1)
