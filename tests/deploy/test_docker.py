"""The container image recipe, the compose demo and the entry point script.

The entry point runs for real here (SoftHSM2 token initialisation, demo
set-up, exec of the command); building and starting the image needs a
Docker engine and runs only where one answers.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from relay.smtp.config import ListenerKind, ListenerTls, parse_service_config

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
ENTRYPOINT = DOCKER / "entrypoint.sh"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, current = [], ""
    for line in (DOCKER / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            joined.append(current.strip())
            current = ""
    return [(text.split(" ", 1)[0].upper(), text.split(" ", 1)[1]) for text in joined]


def test_image_is_multi_stage_on_python_slim_bookworm():
    bases = [args.split()[0] for op, args in _instructions() if op == "FROM"]
    assert len(bases) >= 2
    assert set(bases) == {"python:3.11-slim-bookworm"}


def test_image_runs_as_the_relay_user_with_a_healthcheck():
    ops = _instructions()
    final = ops[max(i for i, (op, _) in enumerate(ops) if op == "FROM"):]
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] == "relay"
    health = [args for op, args in final if op == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]
    assert any(op == "RUN" and "softhsm2" in args for op, args in final)
    assert not any(op == "RUN" and "gcc" in args for op, args in final)  # the compiler stays in the build stage


def test_no_secret_is_baked_into_the_image():
    for op, args in _instructions():
        if op in ("ENV", "ARG"):
            assert not any(word in args.upper() for word in ("PIN=", "PASSWORD", "SECRET", "TOKEN=")), args
        if op == "COPY":
            assert not any(part.endswith((".key", ".pin", ".p12")) for part in args.split()), args
    ignored = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    assert "**" in ignored and "config/**/*.key" in ignored


def test_compose_hardens_the_relay_and_keeps_secrets_out():
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    relay = compose["services"]["relay"]
    assert relay["read_only"] is True
    assert relay["cap_drop"] == ["ALL"] and relay["cap_add"] == ["NET_BIND_SERVICE"]
    assert "no-new-privileges:true" in relay["security_opt"]
    assert relay["user"].split(":")[0] != "0"
    assert set(relay["secrets"]) == {"token_pin", "token_so_pin"}
    assert all(not k.endswith("PIN") for k in relay["environment"])  # files named, never values
    assert {s["file"] for s in compose["secrets"].values()} <= {"./secrets/token.pin", "./secrets/token-so.pin"}
    assert "secrets/" in (DOCKER / ".gitignore").read_text().split()
    hospital = compose["services"]["hospital"]
    # Plain SMTP next hops must be loopback: the hospital shares the relay's network namespace.
    assert hospital["network_mode"] == "service:relay"
    assert "127.0.0.1:2526" in hospital["command"]


def test_demo_service_config_is_accepted_by_the_service_reader():
    path = DOCKER / "relay-demo.toml"
    config = parse_service_config(tomllib.loads(path.read_text()), path)
    kinds = {listener.name: (listener.kind, listener.tls, listener.port) for listener in config.listeners}
    assert kinds["mx"] == (ListenerKind.MX, ListenerTls.STARTTLS, 25)
    assert kinds["submission"] == (ListenerKind.SUBMISSION, ListenerTls.IMPLICIT, 465)
    compose = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())
    published = {int(p.split(":")[1]) for p in compose["services"]["relay"]["ports"]}
    assert published == {port for _, _, port in kinds.values() if port != 2525}


# -- the entry point, run for real ------------------------------------------


def _home(tmp_path: Path) -> Path:
    """What the image holds under /opt/relay, for the script's copies."""
    home = tmp_path / "opt-relay"
    (home / "deploy").mkdir(parents=True)
    shutil.copytree(ROOT / "config", home / "config")
    shutil.copy(DOCKER / "relay-demo.toml", home / "deploy" / "relay-demo.toml")
    return home


def _secret(path: Path, value: str) -> Path:
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "RELAY_HOME": str(_home(tmp_path)),
        "SOFTHSM2_CONF": str(tmp_path / "softhsm2.conf"),
        "RELAY_TOKEN_DIR": str(tmp_path / "tokens"),
    }
    env.update(extra)
    return env


def _run(env: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(ENTRYPOINT), *command], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def softhsm() -> None:
    if shutil.which("softhsm2-util") is None:
        pytest.skip("softhsm2 is not installed (Debian package softhsm2)")


def test_entrypoint_initialises_the_token_once_then_execs(tmp_path, softhsm):
    pin = _secret(tmp_path / "token.pin", "4711-demo")
    env = _env(
        tmp_path,
        RELAY_TOKEN_LABEL="relay-hospital",
        RELAY_TOKEN_PIN_FILE=str(pin),
        RELAY_TOKEN_SO_PIN_FILE=str(_secret(tmp_path / "so.pin", "so-0815")),
    )
    first = _run(env, "relay", "keys", "list", "--token", "relay-hospital", "--pin-file", str(pin))
    assert first.returncode == 0, first.stderr
    assert "initialised SoftHSM2 token relay-hospital" in first.stderr
    assert "4711-demo" not in first.stdout + first.stderr and "so-0815" not in first.stdout + first.stderr
    assert stat.S_IMODE((tmp_path / "softhsm2.conf").stat().st_mode) == 0o600

    again = _run(env, "relay", "keys", "list", "--token", "relay-hospital", "--pin-file", str(pin))
    assert again.returncode == 0, again.stderr
    assert "initialised" not in again.stderr  # the existing token is kept, with its keys

    wrong = _secret(tmp_path / "wrong.pin", "not-the-pin")
    refused = _run(env, "relay", "keys", "list", "--token", "relay-hospital", "--pin-file", str(wrong))
    assert refused.returncode != 0  # the token really holds the PIN from the secret file


def test_entrypoint_refuses_a_missing_pin_secret(tmp_path, softhsm):
    env = _env(tmp_path, RELAY_TOKEN_LABEL="relay-hospital", RELAY_TOKEN_PIN_FILE=str(tmp_path / "absent"))
    result = _run(env, "true")
    assert result.returncode == 64
    assert "RELAY_TOKEN_PIN_FILE must name a readable secret file" in result.stderr


def test_entrypoint_prepares_a_demo_that_relay_check_accepts(tmp_path):
    demo = tmp_path / "demo"
    env = _env(tmp_path, RELAY_DEMO="1", RELAY_DEMO_DIR=str(demo))
    result = _run(env, "relay", "route", "--config", str(demo / "relay.toml"), "claire.martin@hopital-demo.mssante.fr")
    assert result.returncode == 0, result.stderr
    assert ": OK (version" in result.stderr  # relay check ran before the command
    assert "rule:        domain hopital-demo.mssante.fr (local)" in result.stdout
    assert (demo / "certs" / "demo" / "mx-hopital-demo.pem").exists()
    again = _run(env, "true")  # a second start keeps the keys and configuration
    assert again.returncode == 0, again.stderr


# -- the image itself, where a Docker engine answers --------------------------


def _docker_engine() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker command"
    probe = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=30)
    return None if probe.returncode == 0 else "no Docker engine answers (`docker info` fails)"


def test_image_builds_and_runs_the_demo_check():
    why = _docker_engine()
    if why:
        pytest.skip(f"{why}: the image build and run smoke test needs one")
    tag = "relay-smoke-test:latest"
    build = subprocess.run(
        ["docker", "build", "-f", str(DOCKER / "Dockerfile"), "-t", tag, str(ROOT)],
        capture_output=True, text=True, timeout=1200,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        run = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--read-only", "--tmpfs", "/srv/relay-demo",
             "-e", "RELAY_DEMO=1", tag, "relay", "check", "--config", "/srv/relay-demo/relay.toml"],
            capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert ": OK (version" in run.stdout
        user = subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "id", "-u"], capture_output=True, text=True, timeout=120)
        assert user.stdout.strip() == "10001"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120)
