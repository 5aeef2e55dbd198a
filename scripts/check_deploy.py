"""Checks the files of deploy/ that no running server of the test can check.

- deploy/k8s: every resource against the Kubernetes API's schemas (kubernetes-validate,
  strict: unknown fields are errors); ServiceMonitors (a CRD the schemas lack) field by field;
  then what a schema cannot see: Services select pods, probes and the shutdown grace period
  fit inferd, the downward API feeds OTEL_RESOURCE_ATTRIBUTES, kustomizations name files that
  exist, the gateway's config has one upstream per replica.
- deploy/docker-compose.yaml: parsed with PyYAML (no docker needed); images pinned, mounted
  files present, dependencies defined.
- deploy/otel-collector.yaml: no collector can be installed from PyPI or Debian that reads
  this format, so it is parsed and every pipeline must name defined components of known types,
  every defined component must be used, connectors must join two pipelines, and the sampling
  policies the operations guide promises must be there.
- deploy/grafana/provisioning: the data source uids the dashboards and links use exist.

Usage: python check_deploy.py REPOSITORY_ROOT. Prints one line per check; exits 1 naming
every problem found.
"""

import json
import re
import sys
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.30.0"
# inferd's own shutdown bounds after --shutdown-timeout (README, "Exposing inferd"): closing
# connections, stopping the engines, flushing telemetry.
SHUTDOWN_AFTER_DRAIN_S = 2 + 5 + 5
# Component types of the OpenTelemetry Collector contrib distribution that the config may use.
COLLECTOR_TYPES = {
    "receivers": {"otlp", "prometheus", "hostmetrics"},
    "processors": {"memory_limiter", "batch", "tail_sampling", "resource", "attributes",
                   "filter", "transform", "k8sattributes", "resourcedetection"},
    "exporters": {"otlp", "otlphttp", "prometheus", "prometheusremotewrite", "debug"},
    "connectors": {"spanmetrics", "servicegraph", "forward"},
    "extensions": {"health_check", "pprof", "zpages"},
}

problems: list[str] = []


def problem(where: str, what: str) -> None:
    problems.append(f"{where}: {what}")


def ok(what: str) -> None:
    print(f"ok: {what}")


def load_all(path: Path) -> list[dict]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def check_pod_template(where: str, kind_doc: dict) -> None:
    spec = kind_doc["spec"]["template"]["spec"]
    for container in spec["containers"]:
        env = env_of(container)
        probes = {
            "readinessProbe": "/ready",
            "livenessProbe": "/health",
        }
        for probe, path in probes.items():
            got = container.get(probe, {}).get("httpGet", {}).get("path")
            if got != path:
                problem(where, f"{container['name']}: {probe} must GET {path}, has {got}")
        attributes = env.get("OTEL_RESOURCE_ATTRIBUTES", {}).get("value", "")
        for key in ("service.instance.id", "k8s.pod.name"):
            if f"{key}=" not in attributes:
                problem(where, f"OTEL_RESOURCE_ATTRIBUTES lacks {key}")
        names = list(env)
        for ref in re.findall(r"\$\(([A-Z_]+)\)", attributes):
            source = env.get(ref, {}).get("valueFrom", {}).get("fieldRef")
            if source is None:
                problem(where, f"OTEL_RESOURCE_ATTRIBUTES uses $({ref}), not from the downward API")
            elif names.index(ref) > names.index("OTEL_RESOURCE_ATTRIBUTES"):
                problem(where, f"$({ref}) is defined after OTEL_RESOURCE_ATTRIBUTES, so not expanded")
        if env.get("INFERD_HOST", {}).get("value") != "0.0.0.0":
            problem(where, "INFERD_HOST must be 0.0.0.0 for the kubelet's probes to reach inferd")
        drain = int(env.get("INFERD_SHUTDOWN_TIMEOUT", {}).get("value", "20"))
        command = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
        pre_stop = int(command[1]) if command[:1] == ["sleep"] and len(command) == 2 else 0
        if pre_stop == 0:
            problem(where, "no preStop sleep: the pod would get SIGTERM while still in the endpoints")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        needed = pre_stop + drain + SHUTDOWN_AFTER_DRAIN_S
        if grace < needed:
            problem(where, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {drain} + {SHUTDOWN_AFTER_DRAIN_S}")
        requests = container.get("resources", {}).get("requests", {})
        if "memory" not in requests or "cpu" not in requests:
            problem(where, "resource requests for cpu and memory are required")


def check_servicemonitor(where: str, doc: dict, services: list[dict]) -> None:
    spec = doc.get("spec", {})
    allowed = {"jobLabel", "selector", "endpoints", "namespaceSelector"}
    for key in spec:
        if key not in allowed:
            problem(where, f"ServiceMonitor spec has unexpected field {key}")
    endpoints = spec.get("endpoints") or []
    if not endpoints:
        problem(where, "ServiceMonitor has no endpoints")
    selector = spec.get("selector", {})
    matched = [s for s in services if selects(selector, s["metadata"].get("labels", {}))]
    if not matched:
        problem(where, "ServiceMonitor selects no Service of this set")
    for service in matched:
        ports = {p.get("name") for p in service["spec"]["ports"]}
        for endpoint in endpoints:
            if endpoint.get("port") not in ports:
                problem(where, f"endpoint port {endpoint.get('port')} is not a port of {service['metadata']['name']}")
            if endpoint.get("path", "/metrics") != "/metrics":
                problem(where, "endpoint path must be /metrics")
        job_label = spec.get("jobLabel")
        if service["metadata"].get("labels", {}).get(job_label) != "inferd":
            problem(where, f"jobLabel {job_label} of {service['metadata']['name']} must be inferd (the alerts' job)")


def selects(selector: dict, labels: dict) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        if expression["operator"] == "In" and labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def check_k8s_set(root: Path, folder: Path) -> None:
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs: list[tuple[str, dict]] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        if not path.is_file():
            problem(str(folder), f"kustomization names {resource}, which does not exist")
            continue
        docs += [(str(path.relative_to(root)), d) for d in load_all(path)]
    listed = {folder / r for r in kustomization.get("resources", [])}
    for path in folder.glob("*.yaml"):
        if path.name != "kustomization.yaml" and path not in listed:
            problem(str(path.relative_to(root)), "not listed in kustomization.yaml")
    generated = {}
    for generator in kustomization.get("configMapGenerator", []):
        for entry in generator.get("files", []):
            key, _, file = entry.rpartition("=")
            if not (folder / file).is_file():
                problem(str(folder), f"configMapGenerator names {file}, which does not exist")
            generated.setdefault(generator["name"], {})[key or file] = folder / file

    services = [d for _, d in docs if d["kind"] == "Service"]
    workloads = [(w, d) for w, d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    for where, doc in docs:
        if doc["kind"] == "ServiceMonitor":
            check_servicemonitor(where, doc, services)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            problem(where, f"{doc['kind']}/{doc['metadata']['name']}: {e.message} at {'.'.join(map(str, e.path))}")
            continue
        ok(f"{where}: {doc['kind']}/{doc['metadata']['name']} valid against Kubernetes {KUBERNETES_VERSION} (strict)")
    for service in services:
        pods = [d for _, d in workloads if selects({"matchLabels": service["spec"]["selector"]},
                                                   d["spec"]["template"]["metadata"]["labels"])]
        if not pods:
            problem(str(folder), f"Service {service['metadata']['name']} selects no pod template")
    for where, doc in workloads:
        check_pod_template(where, doc)
        for volume in doc["spec"]["template"]["spec"].get("volumes", []):
            name = volume.get("configMap", {}).get("name")
            if name is not None and name not in generated:
                problem(where, f"volume uses ConfigMap {name}, which the kustomization does not make")
        if doc["kind"] == "StatefulSet":
            check_gateway_upstreams(root, where, doc, generated)


def check_gateway_upstreams(root: Path, where: str, statefulset: dict, generated: dict) -> None:
    name = statefulset["metadata"]["name"]
    for files in generated.values():
        for path in files.values():
            config = tomllib.loads(path.read_text())
            urls = [u["url"] for u in config.get("upstreams", [])]
            service = statefulset["spec"]["serviceName"]
            expected = [f"http://{name}-{i}.{service}:8080/v1" for i in range(statefulset["spec"]["replicas"])]
            if urls != expected:
                problem(str(path.relative_to(root)), f"upstreams {urls} are not the {len(expected)} replicas of {where}: {expected}")
            else:
                ok(f"{path.relative_to(root)}: one upstream per replica of {name}")


def check_compose(root: Path) -> None:
    path = root / "deploy/docker-compose.yaml"
    compose = yaml.safe_load(path.read_text())
    services = compose.get("services", {})
    for name in ("inferd", "otel-collector", "jaeger", "prometheus", "grafana"):
        if name not in services:
            problem("docker-compose.yaml", f"service {name} missing")
    for name, service in services.items():
        image = service.get("image", "")
        if "build" in service:
            dockerfile = root / "deploy" / service["build"].get("context", ".") / service["build"].get("dockerfile", "Dockerfile")
            if not dockerfile.resolve().is_file():
                problem("docker-compose.yaml", f"{name}: build names {dockerfile}, which does not exist")
        elif not re.fullmatch(r"[\w./-]+:v?\d+(\.\d+)+", image):
            problem("docker-compose.yaml", f"{name}: image {image!r} is not pinned to a version")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and not (root / "deploy" / source).exists():
                problem("docker-compose.yaml", f"{name}: mounts {source}, which does not exist")
        for dependency in service.get("depends_on", []):
            if dependency not in services:
                problem("docker-compose.yaml", f"{name}: depends on undefined service {dependency}")
    grace = services.get("inferd", {}).get("stop_grace_period", "10s")
    if int(grace.rstrip("s")) < 20 + SHUTDOWN_AFTER_DRAIN_S:
        problem("docker-compose.yaml", f"inferd's stop_grace_period {grace} is shorter than its shutdown")
    ok("deploy/docker-compose.yaml parsed; images pinned, mounts present, dependencies defined")


def check_collector(root: Path) -> None:
    where = "otel-collector.yaml"
    config = yaml.safe_load((root / "deploy/otel-collector.yaml").read_text())
    defined = {section: set((config.get(section) or {}).keys()) for section in COLLECTOR_TYPES}
    for section, names in defined.items():
        for name in names:
            kind = name.split("/")[0]
            if kind not in COLLECTOR_TYPES[section]:
                problem(where, f"{section}: unknown component type {kind}")
    service = config.get("service", {})
    for extension in service.get("extensions", []):
        if extension not in defined["extensions"]:
            problem(where, f"service uses undefined extension {extension}")
    used = {section: set() for section in COLLECTOR_TYPES}
    connector_roles: dict[str, set[str]] = {}
    pipelines = service.get("pipelines", {})
    for pipeline, spec in pipelines.items():
        signal = pipeline.split("/")[0]
        if signal not in ("traces", "metrics", "logs"):
            problem(where, f"pipeline {pipeline}: unknown signal {signal}")
        for role, section in (("receivers", "receivers"), ("processors", "processors"), ("exporters", "exporters")):
            names = spec.get(role, [])
            if role != "processors" and not names:
                problem(where, f"pipeline {pipeline} has no {role}")
            for name in names:
                if role != "processors" and name in defined["connectors"]:
                    connector_roles.setdefault(name, set()).add(role)
                    used["connectors"].add(name)
                elif name in defined[section]:
                    used[section].add(name)
                else:
                    problem(where, f"pipeline {pipeline} names undefined {role[:-1]} {name}")
        processors = spec.get("processors", [])
        if processors[:1] != ["memory_limiter"]:
            problem(where, f"pipeline {pipeline}: memory_limiter must come first")
        if "batch" not in processors:
            problem(where, f"pipeline {pipeline}: no batch processor")
    for section in ("receivers", "processors", "exporters", "connectors"):
        for name in defined[section] - used[section]:
            problem(where, f"{section[:-1]} {name} is defined but no pipeline uses it")
    for name, roles in connector_roles.items():
        if roles != {"receivers", "exporters"}:
            problem(where, f"connector {name} must be an exporter of one pipeline and a receiver of another")
    policies = {p["type"] for p in config["processors"]["tail_sampling"]["policies"]}
    for needed in ("status_code", "latency", "probabilistic"):
        if needed not in policies:
            problem(where, f"tail_sampling lacks a {needed} policy")
    exporters = {e.split("/")[0] for p in pipelines.values() for e in p.get("exporters", [])}
    if not {"otlp", "prometheus", "otlphttp"} <= exporters:
        problem(where, "traces, metrics and logs must reach Jaeger (otlp), Prometheus and Loki (otlphttp)")
    ok("deploy/otel-collector.yaml: every pipeline names defined components of known types "
       "(structure only: no installable collector reads this format)")


def check_grafana(root: Path) -> None:
    datasources = yaml.safe_load((root / "deploy/grafana/provisioning/datasources/datasources.yaml").read_text())
    uids = {d["uid"] for d in datasources["datasources"]}
    text = json.dumps(datasources)
    for uid in re.findall(r'"datasourceUid": "([^"]+)"', text):
        if uid not in uids:
            problem("datasources.yaml", f"links to undefined data source {uid}")
    prometheus = next(d for d in datasources["datasources"] if d["type"] == "prometheus")
    if not any(d.get("name") == "trace_id" for d in prometheus["jsonData"].get("exemplarTraceIdDestinations", [])):
        problem("datasources.yaml", "Prometheus has no exemplar trace_id destination")
    for dashboard in (root / "deploy/grafana/dashboards").glob("*.json"):
        used = set(re.findall(r'"uid": "([^"]+)"', dashboard.read_text()))
        board = json.loads(dashboard.read_text())
        for uid in used - uids - {board["uid"]}:
            problem(dashboard.name, f"uses undefined data source {uid}")
    ok("deploy/grafana: data source uids and links consistent")


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    for folder in sorted((root / "deploy/k8s").iterdir()):
        if folder.is_dir():
            check_k8s_set(root, folder)
    check_compose(root)
    check_collector(root)
    check_grafana(root)
    for p in problems:
        print(f"problem: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
