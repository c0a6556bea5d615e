"""`relay demo --once`: the README's run command, end to end on a copy of the example configuration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay.demo import scenario

ROOT = Path(__file__).resolve().parents[2]


def test_demo_delivers_the_signed_message_and_refuses_the_tampered_one(tmp_path):
    shutil.copytree(ROOT / "config", tmp_path / "config")
    result = subprocess.run(
        [sys.executable, "-m", "relay", "demo", "--once", "--config", "config/relay.toml",
         "--certs", "certs/demo", "--work", "var/demo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "relay answered: 250 2.0.0" in out
    assert "relay answered: 550 5.7.7 signature-invalid" in out
    delivered = sorted((tmp_path / "var/demo").glob("mailbox-*/*.eml"))
    assert len(delivered) == 1
    message = delivered[0].read_bytes()
    assert b"smime=pass smime.signer=claire.martin@hopital-demo.mssante.fr" in message
    assert b"Compte rendu" in message
    assert "swaks --server 127.0.0.1" in out
    audit = (tmp_path / "var/audit.log").read_text()
    assert "Compte rendu" not in audit  # neither the subject nor the body reaches the audit


def test_demo_without_configuration_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "relay", "demo", "--once", "--config", "missing.toml"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().endswith("missing.toml: no such file (run from the project root or give --config)")
    assert "Traceback" not in result.stderr


def test_a_relay_that_never_reports_listening_is_stopped_with_an_error_naming_the_log(monkeypatch):
    started: list[subprocess.Popen] = []

    class Recorded(subprocess.Popen):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(scenario.subprocess, "Popen", Recorded)
    silent = [sys.executable, "-c", "import time; time.sleep(600)"]
    said: list[str] = []
    with pytest.raises(RuntimeError) as raised:
        with scenario.relay_process(silent, "the audit log var/audit.log", said.append, ready_timeout=0.5):
            pytest.fail("a relay that never printed its ready line was used")
    assert str(raised.value) == (
        "relay serve did not report listening within 0.5 s and was stopped; read the audit log var/audit.log"
    )
    assert said == []
    assert len(started) == 1 and started[0].returncode is not None  # stopped and reaped, not left running


def test_a_relay_that_exits_before_listening_names_the_log():
    failing = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(RuntimeError, match=r"^relay serve exited \(3\) before listening; read the audit log x.log$"):
        with scenario.relay_process(failing, "the audit log x.log", print, ready_timeout=60):
            pytest.fail("a relay that exited was used")


def test_lines_before_the_ready_line_are_shown_and_the_output_keeps_flowing(capfd):
    # A warning first, the ready line, then far more than a pipe holds: the relay must never block on it.
    chatty = [sys.executable, "-c", (
        "import json, sys\n"
        "print(json.dumps({'level': 'warning', 'event': 'early'}), flush=True)\n"
        "print(json.dumps({'ready': {'loopback': ['127.0.0.1', 2525]}}), flush=True)\n"
        "for i in range(20000): print('x' * 100)\n"
        "sys.stdout.flush()\n"
        "print('done', file=sys.stderr, flush=True)\n"
    )]
    said: list[str] = []
    with scenario.relay_process(chatty, "the audit log x.log", said.append, ready_timeout=60) as process:
        assert process.wait(timeout=60) == 0  # wrote 2 MB to its standard output and ended
    assert said == ["relay serve is listening: loopback 127.0.0.1:2525"]
    out, err = capfd.readouterr()
    assert out.startswith('{"level": "warning", "event": "early"}\n')
    assert "done" in err
