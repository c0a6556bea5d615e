"""Signed mail through the relay: `openssl cms -sign` messages judged by the core in worker processes.

Also the service's life: SIGHUP swaps the trust snapshot (workers follow the
new version), SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
from pathlib import Path

import pytest

from relay import devpki
from tests.e2e.crypto_support import crlf
from tests.smtp.helpers import Relay, Sink, basic_spec, make_pki, service_toml, wait_until, write_spec

SIGNER = "alice@hospital.test"


def _sign(pki, d: Path, leaf, subject: str, body: str = "Compte rendu.") -> bytes:
    (d / "signer.pem").write_bytes(leaf.cert_pem)
    (d / "signer.key").write_bytes(leaf.key_pem)
    (d / "ca.pem").write_bytes(pki.personnes.cert_pem)
    (d / "part.txt").write_bytes(f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n".encode())
    signed = subprocess.run(
        ["openssl", "cms", "-sign", "-in", str(d / "part.txt"), "-signer", str(d / "signer.pem"), "-inkey", str(d / "signer.key"),
         "-certfile", str(d / "ca.pem"), "-from", SIGNER, "-to", "bob@hospital.test", "-subject", subject, "-crlfeol", "-binary"],
        capture_output=True, check=True,
    ).stdout
    # openssl folds the base64 signature with bare LF; on the wire every line ends in CRLF.
    return crlf(signed)


@pytest.fixture(scope="module")
def env(tmp_path_factory, pki):
    d = tmp_path_factory.mktemp("signed")
    tls = make_pki(d / "tls")
    (d / "root.pem").write_bytes(pki.root.cert_pem)
    (d / "personnes.pem").write_bytes(pki.personnes.cert_pem)
    revoked = pki.practitioner(email=SIGNER, serial=4242)
    (d / "crl.pem").write_bytes(devpki.crl_pem(devpki.make_crl(pki.personnes, [4242])))
    sink = Sink(d / "sink", 0).start()
    spec = basic_spec(tls, sink.port, require_signature=True)
    spec["bundles"][1] = {
        "name": "smime", "anchors": [str(d / "root.pem")], "intermediates": [str(d / "personnes.pem")], "crls": [str(d / "crl.pem")],
    }
    write_spec(d / "spec.json", spec)
    relay = Relay(service_toml(d, tls, listeners=("loopback",), workers=2), d / "spec.json").start()
    yield type("Env", (), {"relay": relay, "sink": sink, "dir": d, "pki": pki, "revoked": revoked, "spec": spec})
    relay.stop()
    sink.stop()


def _send(env, data: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", env.relay.ports["loopback"], timeout=30) as client:
        client.ehlo("client.test")
        client.mail(SIGNER)
        client.rcpt("bob@hospital.test")
        return client.data(data)


def test_signed_message_passes_with_authentication_results(env, tmp_path):
    code, text = _send(env, _sign(env.pki, tmp_path, env.pki.practitioner(email=SIGNER), "marker-signed"))
    assert code == 250, text
    delivered = env.sink.wait_for_marker("marker-signed")
    assert f"smime=pass smime.signer={SIGNER}".encode() in delivered
    queue_id = text.decode().split("queued as ")[1]
    done = env.relay.wait_event("done", queue_id=queue_id)
    assert done["code"] == "ok" and done["signer_national_id"] == "810001234567" and len(done["signer_fingerprint"]) == 64


def test_revoked_signer_is_refused_with_its_reason(env, tmp_path):
    code, text = _send(env, _sign(env.pki, tmp_path, env.revoked, "marker-revoked"))
    assert code == 550 and text.startswith(b"5.7.1 certificate-revoked:"), text


def test_altered_content_is_refused(env, tmp_path):
    data = _sign(env.pki, tmp_path, env.pki.practitioner(email=SIGNER), "marker-altered").replace(b"Compte rendu.", b"Compte rendu!")
    code, text = _send(env, data)
    assert code == 550 and text.startswith(b"5.7.7 signature-invalid:"), text


def test_signer_of_another_address_is_refused(env, tmp_path):
    code, text = _send(env, _sign(env.pki, tmp_path, env.pki.practitioner(email="mallory@hospital.test"), "marker-other"))
    assert code == 550 and text.startswith(b"5.7.1 address-mismatch:"), text


def test_sighup_reloads_the_trust_snapshot(env, tmp_path):
    leaf = env.pki.practitioner(email=SIGNER)
    before = env.relay.events("started")[0]["snapshot"]
    spec = json.loads(json.dumps(env.spec))
    spec["bundles"][1]["anchors"] = [str(env.dir / "tls" / "root.pem")]  # the signer's root is no longer trusted
    write_spec(env.dir / "spec.json", spec)
    try:
        env.relay.proc.send_signal(signal.SIGHUP)
        reloaded = env.relay.wait_event("reloaded")
        assert reloaded["snapshot"] != before
        code, text = _send(env, _sign(env.pki, tmp_path, leaf, "marker-after-reload"))
        assert code == 550 and text.startswith(b"5.7.1 untrusted-issuer:"), text
    finally:
        write_spec(env.dir / "spec.json", env.spec)
        env.relay.proc.send_signal(signal.SIGHUP)
        env.relay.wait_event("reloaded", snapshot=before)
    code, _ = _send(env, _sign(env.pki, tmp_path, leaf, "marker-restored"))
    assert code == 250


def test_bad_reload_keeps_the_snapshot_in_force(env, tmp_path):
    (env.dir / "spec.json").write_text("{ not json")
    try:
        env.relay.proc.send_signal(signal.SIGHUP)
        failed = env.relay.wait_event("reload-failed")
        assert failed["error"] == "JSONDecodeError"
        code, _ = _send(env, _sign(env.pki, tmp_path, env.pki.practitioner(email=SIGNER), "marker-kept"))
        assert code == 250
    finally:
        write_spec(env.dir / "spec.json", env.spec)


def _children(pid: int) -> list[int]:
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def test_a_killed_worker_costs_at_most_a_temporary_failure(env, tmp_path):
    leaf = env.pki.practitioner(email=SIGNER)
    assert _send(env, _sign(env.pki, tmp_path, leaf, "marker-before-kill"))[0] == 250
    workers = _children(env.relay.proc.pid)
    assert workers
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    codes = [_send(env, _sign(env.pki, tmp_path, leaf, f"marker-after-kill-{n}"))[0] for n in range(3)]
    # A message handed to a dead worker before its death was seen fails temporarily; fresh workers take the rest.
    assert set(codes) <= {250, 451} and codes[-1] == 250, codes
    # Fresh processes in place of the killed ones (a worker that never answered is replaced after a pause).
    wait_until(lambda: len(_children(env.relay.proc.pid)) == len(workers))
    assert not set(_children(env.relay.proc.pid)) & set(workers)


def test_sigterm_stops_cleanly(tmp_path):
    tls = make_pki(tmp_path / "tls")
    write_spec(tmp_path / "spec.json", basic_spec(tls, 9))
    relay = Relay(service_toml(tmp_path, tls, listeners=("loopback",)), tmp_path / "spec.json").start()
    idle = smtplib.SMTP("127.0.0.1", relay.ports["loopback"], timeout=10)
    idle.ehlo("client.test")
    relay.proc.send_signal(signal.SIGTERM)
    assert relay.proc.wait(20) == 0
    assert idle.getreply()[0] == 421  # the idle session was told, not cut
    assert [e["event"] for e in relay.audit_lines][-2:] == ["stopping", "stopped"]
