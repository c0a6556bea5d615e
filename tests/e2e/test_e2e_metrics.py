"""The metrics endpoint of a running `relay serve`: counters move by exactly what was sent; readiness follows the spool.

One relay process with verification workers; messages go in with smtplib
(signed with `openssl cms`, tampered, unsigned, and one while the spool is
made unwritable); /metrics is scraped with urllib and read with
prometheus_client's own parser.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import smtplib
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay import devpki
from tests.e2e.test_e2e_signed import SIGNER, _sign
from tests.smtp.helpers import Relay, Sink, basic_spec, make_pki, message, service_toml, write_spec


@pytest.fixture(scope="module")
def env(tmp_path_factory, pki):
    d = tmp_path_factory.mktemp("metrics")
    tls = make_pki(d / "tls")
    (d / "root.pem").write_bytes(pki.root.cert_pem)
    (d / "personnes.pem").write_bytes(pki.personnes.cert_pem)
    crl = devpki.make_crl(pki.personnes, [4242])
    (d / "crl.pem").write_bytes(devpki.crl_pem(crl))
    sink = Sink(d / "sink", 0).start()
    spec = basic_spec(tls, sink.port, require_signature=True)
    spec["bundles"][1] = {
        "name": "smime", "anchors": [str(d / "root.pem")], "intermediates": [str(d / "personnes.pem")], "crls": [str(d / "crl.pem")],
    }
    write_spec(d / "spec.json", spec)
    relay = Relay(service_toml(d, tls, listeners=("loopback", "submission"), workers=1, metrics=True), d / "spec.json").start()
    yield type("Env", (), {"relay": relay, "sink": sink, "dir": d, "pki": pki, "crl": crl})
    relay.stop()
    sink.stop()


def _get(env, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{env.relay.ports['metrics']}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _scrape(env) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from /metrics, through prometheus_client's parser."""
    status, text = _get(env, "/metrics")
    assert status == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _moved(before: dict, after: dict) -> dict:
    """The counter samples that changed, by how much."""
    return {key: after[key] - before.get(key, 0.0) for key in after if after[key] != before.get(key, 0.0) and key[0].endswith("_total")}


def _send(env, data: bytes, sender: str = SIGNER) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", env.relay.ports["loopback"], timeout=30) as client:
        client.ehlo("client.test")
        client.mail(sender)
        client.rcpt("bob@hospital.test")
        return client.data(data)


def _messages(outcome: str, reason: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("relay_messages_total", (("outcome", outcome), ("reason", reason)))


def test_counters_move_by_exactly_what_was_sent(env, tmp_path):
    before = _scrape(env)
    code, text = _send(env, _sign(env.pki, tmp_path, env.pki.practitioner(email=SIGNER), "m-good"))
    assert code == 250, text
    tampered = _sign(env.pki, tmp_path, env.pki.practitioner(email=SIGNER), "m-bad").replace(b"Compte rendu.", b"Compte rendu!")
    assert _send(env, tampered)[0] == 550
    assert _send(env, message("carol@hospital.test", ["bob@hospital.test"]), sender="carol@hospital.test")[0] == 550
    env.relay.wait_event("removed", queue_id=text.decode().split("queued as ")[1])  # audited after the attempt is counted
    after = _scrape(env)
    assert _moved(before, after) == {
        _messages("accepted", "ok"): 1.0,
        _messages("refused", "signature-invalid"): 1.0,
        _messages("refused", "unsigned"): 1.0,
        ("relay_delivery_attempts_total", (("result", "delivered"),)): 1.0,
    }
    # Each of the three got a verdict from a worker, and each verification was timed.
    verified = after[("relay_verification_seconds_count", ())] - before.get(("relay_verification_seconds_count", ()), 0.0)
    assert verified == 3
    assert after[("relay_queue_messages", ())] == 0 and after[("relay_queue_oldest_message_age_seconds", ())] == 0


def test_crl_and_trust_gauges_describe_the_snapshot_in_force(env):
    scraped = _scrape(env)
    issuer = env.crl.issuer.rfc4514_string()
    assert scraped[("relay_bundle_crls", (("bundle", "smime"),))] == 1
    assert scraped[("relay_bundle_crls", (("bundle", "tls"),))] == 0
    age = scraped[("relay_crl_age_seconds", (("bundle", "smime"), ("issuer", issuer)))]
    expected = dt.datetime.now(dt.timezone.utc).timestamp() - env.crl.last_update_utc.timestamp()
    assert abs(age - expected) < 60
    assert [key for key in scraped if key[0] == "relay_trust_snapshot_info"]


def test_tls_handshakes_are_counted_by_listener_and_version(env):
    before = _scrape(env)
    with smtplib.SMTP("127.0.0.1", env.relay.ports["submission"], timeout=30) as client:
        client.starttls()
        version = client.sock.version()
        client.noop()
    after = _scrape(env)
    assert _moved(before, after) == {("relay_tls_handshakes_total", (("listener", "submission"), ("version", version))): 1.0}


def test_health_and_readiness_follow_the_spool(env):
    assert _get(env, "/healthz") == (200, "alive\n")
    assert _get(env, "/readyz") == (200, "ready\n")
    before = _scrape(env)
    with _unwritable(env.dir / "spool" / "tmp"):
        assert _get(env, "/readyz") == (503, "not ready: spool-writable\n")
        assert _get(env, "/healthz")[0] == 200  # alive, only not ready
        code, text = _send(env, _sign(env.pki, env.dir, env.pki.practitioner(email=SIGNER), "m-nospool"))
        assert code == 451 and text.startswith(b"4.3.0 storage-error"), text
    assert _get(env, "/readyz") == (200, "ready\n")
    assert _moved(before, _scrape(env)) == {_messages("refused", "storage-error"): 1.0}


def test_junk_requests_get_4xx_and_the_endpoint_goes_on(env):
    assert _get(env, "/nothing")[0] == 404
    request = urllib.request.Request(f"http://127.0.0.1:{env.relay.ports['metrics']}/metrics", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    assert _get(env, "/healthz")[0] == 200


@contextlib.contextmanager
def _unwritable(directory: Path) -> Iterator[None]:
    """No file can be created in `directory`: immutable for root (chattr), read-only for anyone else."""
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.fail("chattr (e2fsprogs) is needed to make a directory unwritable for root")
        subprocess.run(["chattr", "+i", str(directory)], check=True, capture_output=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True, capture_output=True)
    else:
        mode = directory.stat().st_mode
        directory.chmod(0o500)
        try:
            yield
        finally:
            directory.chmod(mode)
