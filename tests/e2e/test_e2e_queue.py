"""Durability and delivery: crash after 250, next hop down then up, permanent failures and DSNs, the queue command."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys

import pytest

from relay import devpki
from relay.queue.spool import Envelope, RecipientState, new_queue_id
from tests.smtp.helpers import ROOT, Relay, Sink, basic_spec, free_port, make_pki, message, service_toml, write_spec, wait_until


@pytest.fixture
def tls_pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _loopback_relay(tmp_path, tls_pki, spec: dict) -> Relay:
    """The relay with a loopback listener, routing by `spec`."""
    write_spec(tmp_path / "spec.json", spec)
    return Relay(service_toml(tmp_path, tls_pki, listeners=("loopback",)), tmp_path / "spec.json").start()


def _submit(relay: Relay, sender: str, rcpts: list[str], subject: str) -> str:
    with smtplib.SMTP("127.0.0.1", relay.ports["loopback"], timeout=10) as client:
        client.ehlo("client.test")
        client.mail(sender)
        for r in rcpts:
            assert client.rcpt(r)[0] == 250
        code, text = client.data(message(sender, rcpts, subject=subject))
    assert code == 250, text
    return text.decode().split("queued as ")[1]


def _queue_cli(config, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "relay", "queue", "--config", str(config), *args], capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_kill_9_after_250_then_restart_delivers(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", free_port())  # down for now: the message stays queued
    write_spec(tmp_path / "spec.json", basic_spec(tls_pki, sink.port))
    config = service_toml(tmp_path, tls_pki, listeners=("loopback",))
    relay = Relay(config, tmp_path / "spec.json").start()
    try:
        queue_id = _submit(relay, "alice@hospital.test", ["bob@hospital.test"], "marker-crash")
        relay.kill()
        listed = _queue_cli(config, "list")
        assert listed.returncode == 0 and listed.stdout.startswith(queue_id), listed
        shown = _queue_cli(config, "--message", "show", queue_id)
        assert shown.stdout.startswith("Received: ") and "marker-crash" in shown.stdout, shown
        sink.start()
        relay.start()
        delivered = sink.wait_for_marker("marker-crash")
        assert f"id {queue_id}".encode() in delivered
        relay.wait_event("removed", queue_id=queue_id)
        assert _queue_cli(config, "list").stdout == ""
    finally:
        relay.stop()
        sink.stop()
    assert len(sink.messages()) == 1


def test_next_hop_down_then_up_is_retried(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", free_port())
    relay = _loopback_relay(tmp_path, tls_pki, basic_spec(tls_pki, sink.port))
    try:
        queue_id = _submit(relay, "alice@hospital.test", ["bob@hospital.test"], "marker-retry")
        deferred = relay.wait_event("deferred", queue_id=queue_id)
        assert deferred["attempts"] == 1 and deferred["retry_in"] == pytest.approx(0.3)
        attempt = relay.wait_event("attempt", queue_id=queue_id)
        assert attempt["status"] == "pending" and attempt["reply"].startswith("4.4.1 cannot reach")
        sink.start()
        sink.wait_for_marker("marker-retry")
        removed = relay.wait_event("removed", queue_id=queue_id)
        assert removed["delivered"] == ["bob@hospital.test"]
    finally:
        relay.stop()
        sink.stop()


def _split_spec(tls_pki, good_port: int, bad_port: int) -> dict:
    spec = basic_spec(tls_pki, good_port)
    spec["domains"][1]["next_hop"] = {"host": "127.0.0.1", "port": bad_port}  # peer.test rejects
    return spec


def test_permanent_failure_returns_a_dsn_to_the_sender(tmp_path, tls_pki):
    good, bad = Sink(tmp_path / "good", 0).start(), Sink(tmp_path / "bad", 0).start("reject")
    relay = _loopback_relay(tmp_path, tls_pki, _split_spec(tls_pki, good.port, bad.port))
    try:
        queue_id = _submit(relay, "alice@hospital.test", ["bob@hospital.test", "carol@peer.test"], "marker-dsn")
        good.wait_for_marker("marker-dsn")  # bob's copy
        dsn = good.wait_for_marker("multipart/report")
        head, _, body = dsn.partition(b"\n")
        assert json.loads(head) == {"from": "<>", "to": ["alice@hospital.test"]}  # the null reverse-path
        assert b"report-type=delivery-status" in body and b"Content-Type: message/delivery-status" in body
        assert b"Final-Recipient: rfc822; carol@peer.test\r\nAction: failed\r\nStatus: 5.7.1\r\n" in body
        assert b"Diagnostic-Code: smtp; 550 5.7.1 refused by policy" in body
        assert b"Subject: marker-dsn" in body  # the original header block, not its body
        assert b"Hello." not in body
        removed = relay.wait_event("removed", queue_id=queue_id)
        assert removed["failed"] == ["carol@peer.test"] and removed["delivered"] == ["bob@hospital.test"]
    finally:
        relay.stop()
        good.stop()
        bad.stop()


def test_no_dsn_for_a_dsn(tmp_path, tls_pki):
    bad = Sink(tmp_path / "bad", 0).start("reject")
    relay = _loopback_relay(tmp_path, tls_pki, _split_spec(tls_pki, bad.port, bad.port))
    try:
        _submit(relay, "alice@hospital.test", ["carol@peer.test"], "marker-double")
        dsn = relay.wait_event("dsn")
        relay.wait_event("removed", queue_id=dsn["queue_id"], failed=["alice@hospital.test"])
        assert len(relay.events("dsn")) == 1
        assert list((tmp_path / "spool" / "queue").iterdir()) == []
    finally:
        relay.stop()
        bad.stop()


def test_temporary_failures_expire_into_a_dsn(tmp_path, tls_pki):
    good, slow = Sink(tmp_path / "good", 0).start(), Sink(tmp_path / "slow", 0).start("tempfail")
    write_spec(tmp_path / "spec.json", _split_spec(tls_pki, good.port, slow.port))
    config = service_toml(tmp_path, tls_pki, listeners=("loopback",), delivery={"first_retry": 0.2, "give_up_after": 1.0})
    relay = Relay(config, tmp_path / "spec.json").start()
    try:
        queue_id = _submit(relay, "alice@hospital.test", ["carol@peer.test"], "marker-expire")
        dsn = good.wait_for_marker("multipart/report")
        assert b"Status: 5.4.7" in dsn and b"4.4.7 delivery time expired; last error: 451 4.3.0 try again later" in dsn
        assert len(relay.events("deferred", queue_id=queue_id)) >= 2
    finally:
        relay.stop()
        good.stop()
        slow.stop()


def test_queue_command_while_the_service_runs(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", free_port())
    write_spec(tmp_path / "spec.json", basic_spec(tls_pki, sink.port))
    config = service_toml(tmp_path, tls_pki, listeners=("loopback",), delivery={"first_retry": 3600})
    relay = Relay(config, tmp_path / "spec.json").start()
    try:
        first = _submit(relay, "alice@hospital.test", ["bob@hospital.test"], "marker-q1")
        second = _submit(relay, "alice@hospital.test", ["dan@hospital.test"], "marker-q2")
        third = _submit(relay, "alice@hospital.test", ["eve@hospital.test"], "marker-q3")
        for queue_id in (first, second, third):
            relay.wait_event("deferred", queue_id=queue_id)
        shown = _queue_cli(config, "show", first)
        assert shown.returncode == 0 and "pending   <bob@hospital.test> 4.4.1 cannot reach" in shown.stdout
        as_json = json.loads(_queue_cli(config, "--json", "show", second).stdout)
        assert as_json["recipients"][0]["address"] == "dan@hospital.test" and as_json["attempts"] == 1
        assert _queue_cli(config, "delete", second).returncode == 0
        bounced = _queue_cli(config, "bounce", third)
        assert bounced.returncode == 0 and "DSN" in bounced.stdout
        assert _queue_cli(config, "show", "0123456789abcdef").returncode == 2
        assert _queue_cli(config, "show", "../../etc/passwd").returncode == 2
        for misuse, why in (
            (("--message", "delete", first), "--message goes with show alone"),
            (("--message", "--json", "show", first), "--message goes with show alone"),
            (("--json", "retry", first), "--json goes with list and show, not retry"),
            (("list", first), "list takes no queue id"),
        ):
            refused = _queue_cli(config, *misuse)
            assert refused.returncode == 2 and why in refused.stderr, (misuse, refused)
        assert _queue_cli(config, "show", first).returncode == 0  # refused options changed nothing
        sink.start()
        assert _queue_cli(config, "retry", first).stdout.strip() == f"{first}: due now"
        sink.wait_for_marker("marker-q1")
        assert _queue_cli(config, "retry").returncode == 0  # all: the DSN, queued while the sink was down
        dsn = sink.wait_for_marker("multipart/report")  # the bounce of the third, to alice
        assert b"returned to sender by the administrator" in dsn
        wait_until(lambda: _queue_cli(config, "list").stdout == "")
        assert not any(b"marker-q2" in m for m in sink.messages())
    finally:
        relay.stop()
        sink.stop()


def test_sessions_to_a_next_hop_are_reused(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start()
    relay = _loopback_relay(tmp_path, tls_pki, basic_spec(tls_pki, sink.port))
    try:
        for n in range(3):
            queue_id = _submit(relay, "alice@hospital.test", ["bob@hospital.test"], f"marker-reuse-{n}")
            relay.wait_event("removed", queue_id=queue_id)
        assert len(sink.messages()) == 3
        assert len((sink.directory / "sessions.log").read_text().splitlines()) == 1
    finally:
        relay.stop()
        sink.stop()


@pytest.mark.parametrize("mode", ["idle-close", "drop-reused"])
def test_a_session_the_next_hop_closed_costs_a_new_connection_not_a_deferral(tmp_path, tls_pki, mode):
    """idle-close: the close is seen before the session would be reused; drop-reused: only when MAIL
    is sent on it, and the attempt goes on over a new connection."""
    sink = Sink(tmp_path / "sink", 0).start(mode=mode)
    relay = _loopback_relay(tmp_path, tls_pki, basic_spec(tls_pki, sink.port))
    closed = sink.directory / "closed.log"
    try:
        queue_ids = []
        for n in range(3):
            queue_ids.append(_submit(relay, "alice@hospital.test", ["bob@hospital.test"], f"marker-{mode}-{n}"))
            relay.wait_event("removed", queue_id=queue_ids[-1])
            if mode == "idle-close":
                wait_until(lambda: closed.exists() and len(closed.read_text().splitlines()) == n + 1)
        attempts = [(e["queue_id"], e["status"]) for e in relay.events("attempt")]
        assert attempts == [(q, "delivered") for q in queue_ids]
        assert relay.events("deferred") == []
        assert len(sink.messages()) == 3
        assert len((sink.directory / "sessions.log").read_text().splitlines()) == 3  # one session each
    finally:
        relay.stop()
        sink.stop()


@pytest.mark.parametrize("pinned_dn, delivered", [(None, True), ("CN=someone.else,O=Other,C=FR", False)])
def test_delivery_over_verified_starttls(tmp_path, tls_pki, pinned_dn, delivered):
    sink = Sink(tmp_path / "sink", 0).start(tls=tls_pki.directory)
    spec = basic_spec(tls_pki, sink.port, sink_tls="starttls")
    if pinned_dn:
        for domain in spec["domains"]:
            domain["next_hop"]["verify_dn"] = pinned_dn
    relay = _loopback_relay(tmp_path, tls_pki, spec)
    try:
        queue_id = _submit(relay, "alice@hospital.test", ["bob@hospital.test"], "marker-tls-hop")
        if delivered:
            sink.wait_for_marker("marker-tls-hop")
            assert "tls=True" in (sink.directory / "sessions.log").read_text()
        else:
            attempt = relay.wait_event("attempt", queue_id=queue_id)
            assert attempt["status"] == "pending" and "is not CN=someone.else" in attempt["reply"]
            assert sink.messages() == []
    finally:
        relay.stop()
        sink.stop()


def test_a_next_hop_with_a_revoked_certificate_gets_nothing(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start(tls=tls_pki.directory)
    crl = tmp_path / "tls.crl.pem"
    crl.write_bytes(devpki.crl_pem(devpki.make_crl(tls_pki.root, [tls_pki.server.cert.serial_number])))
    spec = basic_spec(tls_pki, sink.port, sink_tls="starttls")
    spec["bundles"][0]["crls"] = [str(crl)]  # the "tls" bundle, the next hop's verify_bundle
    relay = _loopback_relay(tmp_path, tls_pki, spec)
    try:
        queue_id = _submit(relay, "alice@hospital.test", ["bob@hospital.test"], "marker-revoked-hop")
        attempt = relay.wait_event("attempt", queue_id=queue_id)
        assert attempt["status"] == "pending"
        assert attempt["reply"].startswith("4.7.5 smtp://127.0.0.1:") and "certificate-revoked: " in attempt["reply"]
        assert sink.messages() == []
    finally:
        relay.stop()
        sink.stop()


def test_delivery_over_implicit_tls(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", 0).start("implicit", tls=tls_pki.directory)
    relay = _loopback_relay(tmp_path, tls_pki, basic_spec(tls_pki, sink.port, sink_tls="tls"))
    try:
        _submit(relay, "alice@hospital.test", ["bob@hospital.test"], "marker-implicit-hop")
        sink.wait_for_marker("marker-implicit-hop")
        # The sink speaks only TLS, so delivery proves it; and no STARTTLS was needed (aiosmtpd notes only that).
        assert "tls=False" in (sink.directory / "sessions.log").read_text()
    finally:
        relay.stop()
        sink.stop()


def test_sessions_per_next_hop_are_capped(tmp_path, tls_pki):
    sink = Sink(tmp_path / "sink", free_port())  # down while the queue fills
    write_spec(tmp_path / "spec.json", basic_spec(tls_pki, sink.port))
    config = service_toml(tmp_path, tls_pki, listeners=("loopback",), delivery={"max_per_destination": 2, "first_retry": 3600})
    relay = Relay(config, tmp_path / "spec.json").start()
    try:
        ids = [_submit(relay, "alice@hospital.test", ["bob@hospital.test"], f"marker-cap-{n}") for n in range(8)]
        for queue_id in ids:
            relay.wait_event("deferred", queue_id=queue_id)
        sink.start()
        assert _queue_cli(config, "retry").returncode == 0  # all due at once
        sink.wait_for(8)
        assert len((sink.directory / "sessions.log").read_text().splitlines()) <= 2
    finally:
        relay.stop()
        sink.stop()


def test_a_spool_of_the_two_file_layout_is_delivered_after_an_upgrade(tmp_path, tls_pki):
    """Messages queued by a version that wrote ID.eml and ID.json are converted at start and delivered."""
    queue = tmp_path / "spool" / "queue"
    queue.mkdir(parents=True)
    queue_id = new_queue_id()
    envelope = Envelope(queue_id, "alice@hospital.test", (RecipientState("bob@hospital.test"),), 1.0, 0.0, attempts=1)
    (queue / f"{queue_id}.eml").write_bytes(message("alice@hospital.test", ["bob@hospital.test"], subject="marker-upgrade"))
    (queue / f"{queue_id}.json").write_bytes(envelope.to_json())
    sink = Sink(tmp_path / "sink", free_port()).start()
    relay = _loopback_relay(tmp_path, tls_pki, basic_spec(tls_pki, sink.port))
    try:
        sink.wait_for_marker("marker-upgrade")
        removed = relay.wait_event("removed", queue_id=queue_id)
        assert removed["delivered"] == ["bob@hospital.test"]
    finally:
        relay.stop()
        sink.stop()
    assert list(queue.iterdir()) == []
