"""[service] processes = 2: a supervisor and two service processes sharing the listener, the spool and the audit file."""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from relay.smtp.config import ConfigError, load_service_config
from tests.smtp.helpers import ROOT, Relay, Sink, basic_spec, free_port, make_pki, message, read_ready, service_toml, stop, write_spec, write_trust_dir, wait_until


@pytest.fixture
def tls_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _two_process_relay(tmp_path: Path, tls_pki, sink_port: int) -> Relay:
    """A relay of two service processes on a loopback listener, delivering to the sink."""
    write_spec(tmp_path / "spec.json", basic_spec(tls_pki, sink_port))
    return Relay(_two_processes(service_toml(tmp_path, tls_pki, listeners=("loopback",))), tmp_path / "spec.json").start()


def _two_processes(config: Path) -> Path:
    config.write_text(config.read_text().replace("[service]\n", "[service]\nprocesses = 2\n", 1))
    return config


def _submit(port: int, subject: str) -> str:
    sender, rcpts = "alice@hospital.test", ["bob@hospital.test"]
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        code, text = client.data(message(sender, rcpts, subject=subject)) if _envelope(client, sender, rcpts) else (0, b"")
    assert code == 250, text
    return text.decode().split("queued as ")[1]


def _envelope(client: smtplib.SMTP, sender: str, rcpts: list[str]) -> bool:
    client.ehlo("client.test")
    client.mail(sender)
    return all(client.rcpt(r)[0] == 250 for r in rcpts)


def _workers(relay: Relay) -> dict[int, int]:
    """{slot: pid} as the supervisor announced them."""
    return {int(slot): pid for slot, pid in relay.wait_event("supervising")["workers"].items()}


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for whoever adopted it counts as exited)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_both_processes_accept_and_each_message_is_delivered_once(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start()
    relay = _two_process_relay(tmp_path, tls_pki, sink.port)
    count = 24
    try:
        workers = _workers(relay)
        assert sorted(workers) == [0, 1] and len(set(workers.values())) == 2 and relay.proc.pid not in workers.values()
        with ThreadPoolExecutor(max_workers=8) as pool:
            ids = list(pool.map(lambda n: _submit(relay.ports["loopback"], f"marker-{n:03d}"), range(count)))
        assert len(set(ids)) == count
        wait_until(lambda: len(relay.events("removed")) >= count, timeout=30)
        delivered = sink.wait_for(count)
    finally:
        relay.stop()
        sink.stop()
    queued = relay.events("queued")
    assert {e["worker"] for e in queued} == {0, 1}  # the kernel spread the sessions over both processes
    assert sorted(e["queue_id"] for e in queued) == sorted(ids)
    assert len(sink.messages()) == count == len(delivered)
    for n in range(count):
        assert sum(f"marker-{n:03d}".encode() in m for m in delivered) == 1
    removed = relay.events("removed")
    assert sorted(e["queue_id"] for e in removed) == sorted(ids)
    assert len([e for e in relay.events("attempt") if e["status"] == "delivered"]) == count


def test_a_process_killed_after_250_leaves_its_message_to_the_other(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", free_port())  # down for now: the message stays queued
    relay = _two_process_relay(tmp_path, tls_pki, sink.port)
    try:
        workers = _workers(relay)
        queue_id = _submit(relay.ports["loopback"], "marker-kill")
        slot = relay.wait_event("queued", queue_id=queue_id)["worker"]
        relay.wait_event("deferred", queue_id=queue_id)  # tried, not delivered
        os.kill(workers[slot], signal.SIGKILL)
        exited = relay.wait_event("worker-exited", worker=slot)
        assert exited["pid"] == workers[slot] and exited["exit"] == -signal.SIGKILL and exited["restart"] is True
        sink.start()
        removed = relay.wait_event("removed", queue_id=queue_id)
        assert removed["delivered"] == ["bob@hospital.test"]
        restarted = relay.wait_event("worker-started", worker=slot)
        assert restarted["pid"] != workers[slot]
        # The restarted process serves too: a second message goes through.
        second = _submit(relay.ports["loopback"], "marker-after")
        relay.wait_event("removed", queue_id=second)
    finally:
        relay.stop()
        sink.stop()
    delivered = sink.messages()
    assert sum(b"marker-kill" in m for m in delivered) == 1
    assert len(delivered) == 2
    assert [e["queue_id"] for e in relay.events("removed")].count(queue_id) == 1


def test_sighup_reloads_every_process_and_sigterm_stops_them_all(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start()
    relay = _two_process_relay(tmp_path, tls_pki, sink.port)
    try:
        workers = _workers(relay)
        relay.proc.send_signal(signal.SIGHUP)
        reloads = lambda: [e for e in relay.audit_lines if e["event"] in ("reloaded", "reload-unchanged")]  # noqa: E731
        wait_until(lambda: len(reloads()) >= 2, timeout=30)
        assert sorted(e["worker"] for e in reloads()) == [0, 1]
        relay.proc.send_signal(signal.SIGTERM)
        assert relay.proc.wait(30) == 0
    finally:
        relay.stop()
        sink.stop()
    assert all(_gone(pid) for pid in workers.values())
    stopped = relay.events("stopped")
    assert sorted(e.get("worker", -1) for e in stopped) == [-1, 0, 1]  # both processes, then the supervisor
    assert not [e for e in relay.audit_lines if e["event"] == "worker-started"]  # a stop is not a crash


def test_the_processes_stop_when_the_supervisor_is_killed(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start()
    relay = _two_process_relay(tmp_path, tls_pki, sink.port)
    try:
        workers = _workers(relay)
        relay.kill()  # SIGKILL: no signal is forwarded
        wait_until(lambda: sorted(e.get("worker", -1) for e in relay.events("stopped")) == [0, 1], timeout=30)
        wait_until(lambda: all(_gone(pid) for pid in workers.values()), timeout=30)
    finally:
        relay.stop()
        sink.stop()


def test_a_second_relay_on_the_same_port_is_refused(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start()
    write_spec(tmp_path / "spec.json", basic_spec(tls_pki, sink.port))
    (tmp_path / "one").mkdir()
    first = Relay(_two_processes(service_toml(tmp_path / "one", tls_pki, listeners=("loopback",))), tmp_path / "spec.json").start()
    try:
        port = first.ports["loopback"]
        (tmp_path / "two").mkdir()
        second = _two_processes(service_toml(tmp_path / "two", tls_pki, listeners=("loopback",)))
        second.write_text(second.read_text().replace("port = 0", f"port = {port}"))
        result = subprocess.run([sys.executable, "-m", "relay", "serve", "--config", str(second)], capture_output=True, text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 2 and "in use" in result.stderr, result.stderr
        assert not (tmp_path / "two" / "spool").exists()  # refused before touching any spool
        assert _rcpt(port, "bob@hospital.test") == 250  # the first one still serves
    finally:
        first.stop()
        sink.stop()


def _rcpt(port: int, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("client.test")
        client.mail("a@hospital.test")
        return client.rcpt(address)[0]


def test_relay_reload_signals_the_supervisor_and_reaches_every_process(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start()
    write_trust_dir(tmp_path, tls_pki, sink.port, ("hospital.test",))
    config = _two_processes(service_toml(tmp_path, tls_pki, listeners=("loopback",)))
    config.write_text('trust_dir = "trust"\npid_file = "relay.pid"\n' + config.read_text())
    proc = subprocess.Popen([sys.executable, "-m", "relay", "serve", "--config", str(config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    relay = Relay(config, tmp_path / "unused.json", proc=proc)
    try:
        port = read_ready(proc)["loopback"][1]
        assert (tmp_path / "relay.pid").read_text().strip() == str(proc.pid)
        assert _rcpt(port, "x@clinic.test") == 550
        write_trust_dir(tmp_path, tls_pki, sink.port, ("hospital.test", "clinic.test"))
        reload = subprocess.run([sys.executable, "-m", "relay", "reload", "--config", str(config)], capture_output=True, text=True, cwd=ROOT, timeout=30)
        assert reload.returncode == 0, reload.stderr
        wait_until(lambda: len(relay.events("reloaded")) >= 2, timeout=30)
        assert sorted(e["worker"] for e in relay.events("reloaded")) == [0, 1]
        assert [_rcpt(port, "x@clinic.test") for _ in range(8)] == [250] * 8  # whichever process answers
    finally:
        stop(proc)
        sink.stop()
    assert proc.returncode == 0
    assert not (tmp_path / "relay.pid").exists()


def test_relay_serve_reports_a_process_that_cannot_start(tmp_path, tls_pki):
    config = _two_processes(service_toml(tmp_path, tls_pki, listeners=("loopback",)))
    config.write_text('trust_dir = "trust"\n' + config.read_text())
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "domains.toml").write_text('[domain."hospital.test"]\nlocal = "yes"\n')
    result = subprocess.run([sys.executable, "-m", "relay", "serve", "--config", str(config)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 2
    assert "error: service process 0: " in result.stderr and "local" in result.stderr
    assert "exited before it was ready" in result.stderr


def test_processes_is_read_and_excludes_metrics(tmp_path, tls_pki):
    config = service_toml(tmp_path, tls_pki, listeners=("loopback",))
    assert load_service_config(config).processes == 1
    assert load_service_config(_two_processes(config)).processes == 2
    with pytest.raises(ConfigError, match=r"\[service\] processes: .*metrics"):
        load_service_config(_two_processes(service_toml(tmp_path, tls_pki, listeners=("loopback",), metrics=True)))
    config.write_text(config.read_text().replace("processes = 2", "processes = 0"))
    with pytest.raises(ConfigError, match=r"\[service\] processes"):
        load_service_config(config)
