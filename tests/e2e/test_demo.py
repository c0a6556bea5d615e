"""`relay demo --once`: the README's run command, end to end on a copy of the example configuration."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

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
