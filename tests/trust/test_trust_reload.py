"""Snapshots swap whole and only when valid; relay reload signals the service."""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import subprocess
import sys
import threading
import weakref
from pathlib import Path

import pytest

from relay.cli.main import main
from relay.core.verify import verify_message
from relay.demo.scenario import _signed_message as demo_signed_message
from relay.trust.holder import SnapshotHolder
from relay.trust.loader import load_snapshot


@pytest.fixture
def holder(example: Path) -> SnapshotHolder:
    return SnapshotHolder(lambda: load_snapshot(example))


def test_reload_swaps_a_new_version_and_old_holders_keep_theirs(example: Path, holder: SnapshotHolder) -> None:
    in_flight = holder.current
    domains = example.parent / "trust" / "domains.toml"
    domains.write_text(domains.read_text() + '\n[domain."nouveau.mssante.fr"]\nsigner_bundles = ["igc-sante-signers"]\n')
    result = holder.reload()
    assert result.swapped and holder.current is result.snapshot
    assert holder.current.version != in_flight.version
    assert holder.current.route("a@nouveau.mssante.fr").known
    assert not in_flight.route("a@nouveau.mssante.fr").known  # work started before keeps its trust


def test_a_replaced_snapshot_is_freed_by_reference_counting_alone(example: Path, demo_pki: Path) -> None:
    # Service processes set start-up objects, the first snapshot among them, aside from
    # the cyclic collector (relay.smtp.service.set_aside_long_lived): after a reload it
    # must go without that collector, so a snapshot, its caches filled, may hold no cycle.
    holder = SnapshotHolder(lambda: load_snapshot(example))
    first = weakref.ref(holder.current)
    verdict = verify_message(demo_signed_message(demo_pki), holder.current, dt.datetime.now(dt.timezone.utc))
    assert verdict.accepted  # the certificate path, revocation and store caches are filled
    domains = example.parent / "trust" / "domains.toml"
    domains.write_text(domains.read_text() + '\n[domain."nouveau.mssante.fr"]\nsigner_bundles = ["igc-sante-signers"]\n')
    gc.disable()
    try:
        assert holder.reload().swapped
        assert first() is None
    finally:
        gc.enable()


def test_unchanged_files_keep_the_same_snapshot(holder: SnapshotHolder) -> None:
    first = holder.current
    result = holder.reload()
    assert not result.swapped and holder.current is first and result.problems == ()


def test_a_broken_directory_does_not_replace_a_good_one(example: Path, holder: SnapshotHolder) -> None:
    good = holder.current
    bundles = example.parent / "trust" / "bundles.toml"
    bundles.write_text(bundles.read_text() + "\n[bundle.broken]\nanchors = ['absent.pem']\n")
    result = holder.reload()
    assert not result.swapped and holder.current is good
    assert any("absent.pem: No such file" in p for p in result.problems)


def test_reload_async_builds_off_the_event_loop(example: Path) -> None:
    loop_thread: list[int] = []
    build_thread: list[int] = []

    def build():
        build_thread.append(threading.get_ident())
        return load_snapshot(example)

    holder = SnapshotHolder(build)

    async def reload_from_loop():
        loop_thread.append(threading.get_ident())
        return await holder.reload_async()

    result = asyncio.run(reload_from_loop())
    assert result.snapshot is holder.current
    assert build_thread[-1] != loop_thread[0]


def test_relay_reload_sends_sighup_to_the_pid_in_the_pid_file(example: Path, tmp_path: Path, capsys) -> None:
    service = subprocess.Popen(
        [sys.executable, "-c", (
            "import signal, sys\n"
            "signal.signal(signal.SIGHUP, lambda *a: (print('reload', flush=True), sys.exit(0)))\n"
            "print('ready', flush=True)\n"
            "signal.pause()\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert service.stdout.readline() == "ready\n"
        pid_file = tmp_path / "relay.pid"
        pid_file.write_text(f"{service.pid}\n")
        example.write_text(f"pid_file = '{pid_file}'\n" + example.read_text())
        assert main(["reload", "--config", str(example)]) == 0
        assert f"sent SIGHUP to {service.pid}" in capsys.readouterr().out
        assert service.stdout.readline() == "reload\n"
        assert service.wait(timeout=10) == 0
    finally:
        if service.poll() is None:
            service.kill()
            service.wait()


def test_relay_reload_refuses_to_signal_for_a_broken_directory(example: Path, tmp_path: Path, capsys) -> None:
    pid_file = tmp_path / "relay.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # signalling would kill the test run
    example.write_text(f"colour = 'blue'\npid_file = '{pid_file}'\n" + example.read_text())
    assert main(["reload", "--config", str(example)]) == 1
    assert "not reloading" in capsys.readouterr().err


def test_relay_reload_without_pid_file_or_service(example: Path, tmp_path: Path, capsys) -> None:
    assert main(["reload", "--config", str(example)]) == 2
    assert "pid_file is not set" in capsys.readouterr().err
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    example.write_text("pid_file = 'relay.pid'\n" + example.read_text())
    (example.parent / "relay.pid").write_text(str(gone.pid))
    assert main(["reload", "--config", str(example)]) == 2
    assert f"no process {gone.pid}" in capsys.readouterr().err
