"""The Kubernetes manifests parse and keep the properties the deployment relies on."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from relay.smtp.config import ListenerKind, parse_service_config

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _documents() -> list[dict]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    return docs


def _one(kind: str, name: str | None = None) -> dict:
    found = [d for d in _documents() if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


@pytest.fixture(scope="module")
def pod() -> dict:
    return _one("StatefulSet", "relay")["spec"]["template"]["spec"]


def _relay(pod: dict) -> dict:
    return next(c for c in pod["containers"] if c["name"] == "relay")


def test_every_manifest_is_listed_by_the_kustomization():
    listed = set(_one("Kustomization")["resources"])
    assert listed == {p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml"}


def test_one_spool_volume_per_pod():
    statefulset = _one("StatefulSet", "relay")
    claims = statefulset["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["spool"]
    assert claims[0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    mounts = {m["name"]: m for m in _relay(statefulset["spec"]["template"]["spec"])["volumeMounts"]}
    assert mounts["spool"]["mountPath"] == "/var/spool/relay"
    assert statefulset["spec"]["serviceName"] == _one("Service", "relay")["metadata"]["name"]


def test_the_pod_runs_as_non_root_with_a_read_only_root(pod):
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod["automountServiceAccountToken"] is False
    for container in pod["initContainers"] + pod["containers"]:
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
        assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}, container["name"]
        assert "limits" in container["resources"] and "requests" in container["resources"], container["name"]
    assert _relay(pod)["securityContext"]["capabilities"]["add"] == ["NET_BIND_SERVICE"]


def test_writable_paths_are_volumes(pod):
    """With a read-only root, everything the relay writes must be a mounted volume."""
    mounts = {m["mountPath"]: m for m in _relay(pod)["volumeMounts"]}
    for path in ("/var/spool/relay", "/tmp", "/run/relay"):
        assert path in mounts and not mounts[path].get("readOnly", False)
    for path in ("/etc/relay/relay.toml", "/etc/relay/trust", "/etc/relay/tls"):
        assert mounts[path]["readOnly"] is True


def test_trust_directory_is_a_configmap_and_pin_a_0400_secret_file(pod):
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["trust"]["configMap"]["name"] == _one("ConfigMap", "relay-trust")["metadata"]["name"]
    pin = volumes["token-pin"]["secret"]
    assert pin["defaultMode"] == 0o400
    assert all(item.get("mode", pin["defaultMode"]) == 0o400 for item in pin.get("items", []))
    assert volumes["run"]["emptyDir"]["medium"] == "Memory"  # the PIN copy never touches a disk
    copy = next(c for c in pod["initContainers"] if c["name"] == "token-pin")
    assert copy["command"][:3] == ["install", "-m", "0400"]


def test_no_secret_material_in_the_manifests():
    for doc in _documents():
        assert doc["kind"] != "Secret", "secrets are created with kubectl, never committed"
        text = yaml.safe_dump(doc)
        assert "BEGIN PRIVATE KEY" not in text and "BEGIN RSA PRIVATE KEY" not in text


def test_probes_hit_health_endpoints(pod):
    relay = _relay(pod)
    ports = {p["name"]: p["containerPort"] for p in relay["ports"]}
    assert relay["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert relay["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert ports["metrics"] == 9325


def test_load_balancer_publishes_the_three_smtp_ports():
    service = _one("Service", "relay-smtp")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"  # client addresses reach the per-IP limits
    assert {(p["port"], p["protocol"]) for p in service["spec"]["ports"]} == {(25, "TCP"), (465, "TCP"), (587, "TCP")}
    assert 9325 not in {p["port"] for p in service["spec"]["ports"]}  # metrics stay inside the cluster
    assert _one("Service", "relay")["spec"]["clusterIP"] == "None"


def test_configmap_relay_toml_is_accepted_by_the_service_reader(pod):
    text = _one("ConfigMap", "relay-config")["data"]["relay.toml"]
    config = parse_service_config(tomllib.loads(text), Path("/etc/relay/relay.toml"))
    ports = {p["containerPort"] for p in _relay(pod)["ports"]}
    assert {listener.port for listener in config.listeners} <= ports
    assert {listener.kind for listener in config.listeners} == {ListenerKind.MX, ListenerKind.SUBMISSION}
    assert str(config.queue.directory) == "/var/spool/relay"
    assert config.listeners[0].certificate == Path("/etc/relay/tls/tls.crt")
    writable = {m["mountPath"] for m in _relay(pod)["volumeMounts"] if not m.get("readOnly")}
    assert config.pid_file is not None and str(config.pid_file.parent) in writable


def test_kustomize_renders_the_set():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the YAML checks above still ran")
    result = subprocess.run([kubectl, "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = list(yaml.safe_load_all(result.stdout))
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {"relay"}
