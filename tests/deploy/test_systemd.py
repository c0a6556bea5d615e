"""The systemd units pass `systemd-analyze verify` and keep their hardening."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALLED_RELAY = "/opt/relay/.venv/bin/relay"


def _local_copy(tmp_path: Path) -> Path:
    """The units with ExecStart pointing at this checkout's relay (verify checks the binary exists)."""
    relay = Path(sys.executable).with_name("relay")
    if not relay.exists():
        relay = Path(shutil.which("relay") or "")
    assert relay.exists(), "the relay console script is installed beside the interpreter"
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(unit.read_text().replace(INSTALLED_RELAY, str(relay)))
    return tmp_path


def test_units_verify_without_warnings(tmp_path):
    units = sorted(str(p) for p in _local_copy(tmp_path).iterdir())
    result = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    ours = [line for line in result.stderr.splitlines() if str(tmp_path) in line]
    assert ours == []


def _service(name: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment]  # systemd keys are case-sensitive
    parser.read(UNITS / name)
    return parser["Service"]


@pytest.mark.parametrize(
    "key, value",
    [
        ("User", "relay"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "true"),
        ("PrivateTmp", "true"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("ReadWritePaths", "/var/spool/relay"),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
    ],
)
def test_service_hardening(key, value):
    assert _service("relay.service")[key] == value


def test_service_runs_relay_serve_on_etc_config():
    assert _service("relay.service")["ExecStart"] == f"{INSTALLED_RELAY} serve --config /etc/relay/relay.toml"


def test_reload_path_meets_relay_reload():
    """relay-crl-refresh runs `relay reload`, which signals the pid in pid_file: /run/relay is the service's to write."""
    service = _service("relay.service")
    assert service["RuntimeDirectory"] == "relay"
    refresh = _service("relay-crl-refresh.service")
    assert refresh["User"] == service["User"]  # only the same user may signal the service
    assert refresh["ExecStartPost"].endswith("relay reload --config /etc/relay/relay.toml")
