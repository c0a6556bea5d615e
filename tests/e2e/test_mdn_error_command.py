"""`relay mdn error`: a hospital system's integration failure becomes a processed/error MDN in the spool."""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from relay.cli.main import main
from relay.demopki import write_demo_pki
from relay.queue.spool import Spool
from relay.smtp.config import load_service_config
from tests.smtp.helpers import ROOT

LOCAL = "claire.martin@hopital-demo.mssante.fr"
REQUESTER = "paul.durand@clinique-peer.mssante.fr"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "config", tmp_path / "config")
    write_demo_pki(tmp_path / "certs" / "demo")
    config = tmp_path / "config" / "relay.toml"
    Spool(load_service_config(config).queue.directory).prepare()  # as relay serve leaves it
    return config


def mdn_error(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", "mdn", "--config", str(config), "error", *extra],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )


def test_an_integration_failure_is_spooled_as_a_processed_error_mdn(example: Path) -> None:
    result = mdn_error(example, "--message-id", "<cr-2026-0042@clinique-peer.mssante.fr>", "--recipient", LOCAL,
                       "--to", REQUESTER, "--code", "2", "--label", "Document CDA non integre")
    assert result.returncode == 0, result.stderr
    spool = Spool(load_service_config(example).queue.directory)
    [queue_id] = spool.ids()
    assert result.stdout.startswith(f"queued {queue_id}: processed/error MDN to {REQUESTER}")
    envelope = spool.envelope(queue_id)
    assert envelope.mail_from == "" and envelope.is_dsn
    assert [r.address for r in envelope.recipients] == [REQUESTER]
    report = email.message_from_bytes(spool.message(queue_id))
    assert report.get_content_type() == "multipart/report"
    assert report["In-Reply-To"] == "<cr-2026-0042@clinique-peer.mssante.fr>"
    notification = report.get_payload()[1]
    assert notification.get_content_type() == "message/disposition-notification"
    fields = notification.get_payload()[0]  # the stdlib reads the field block as one message
    assert fields["Disposition"] == "automatic-action/MDN-sent-automatically; processed/error"
    assert fields["Error"] == "2^Document CDA non integre"
    assert fields["Final-Recipient"] == f"rfc822;{LOCAL}"


@pytest.mark.parametrize(
    "recipient, to, expected",
    [
        ("someone@elsewhere.example", REQUESTER, "someone@elsewhere.example is not a mailbox of a local domain"),
        (LOCAL, "x@outside.example", "x@outside.example: its domain is not in the trust directory"),
    ],
)
def test_no_open_relay_through_the_mdn_door(example: Path, recipient: str, to: str, expected: str) -> None:
    result = mdn_error(example, "--message-id", "<a@b>", "--recipient", recipient, "--to", to, "--code", "2", "--label", "x")
    assert result.returncode == 2
    assert result.stderr.strip() == f"relay mdn: {expected}"
    assert Spool(load_service_config(example).queue.directory).ids() == []


def test_a_trust_directory_that_does_not_load_is_reported_as_other_commands_do(example: Path) -> None:
    domains = example.parent / "trust" / "domains.toml"
    domains.write_text(domains.read_text() + "\n[broken\n")
    result = mdn_error(example, "--message-id", "<a@b>", "--recipient", LOCAL, "--to", REQUESTER, "--code", "2", "--label", "x")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"relay mdn: {example} is not valid:\n") and "domains.toml" in result.stderr


def test_a_label_that_is_not_printable_ascii_is_refused(example: Path) -> None:
    result = mdn_error(example, "--message-id", "<a@b>", "--recipient", LOCAL, "--to", REQUESTER,
                       "--code", "2", "--label", "Document non int\u00e9gr\u00e9")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("relay mdn: ")


_OPENED: list[Path] | None = None  # while set, every file the process opens is recorded


def _record_open(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(Path(os.fsdecode(args[0])).resolve())


sys.addaudithook(_record_open)  # audit hooks cannot be removed: this one is idle unless _OPENED is set


def test_relay_toml_is_read_once(example: Path, capsys, monkeypatch) -> None:
    opened: list[Path] = []
    monkeypatch.setattr(sys.modules[__name__], "_OPENED", opened)
    status = main(["mdn", "--config", str(example), "error", "--message-id", "<a@b>", "--recipient", LOCAL,
                   "--to", REQUESTER, "--code", "2", "--label", "x"])
    assert status == 0, capsys.readouterr().err
    assert opened.count(example.resolve()) == 1
