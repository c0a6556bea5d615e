"""Acknowledgements: a message delivered to the hospital system that asks for an MDN gets a
`processed` MDN from the null sender, queued and delivered to the requester's relay (a second
sink process) like any message, DKIM-signed for the hospital's domain; reports and messages
that do not ask get none.
"""

from __future__ import annotations

import smtplib

import pytest
from cryptography.hazmat.primitives import serialization

from relay import devpki
from relay.dkim import DkimStatus, dns_record, load_key, static_resolver, verify_dkim
from tests.e2e.crypto_support import append, delivered
from tests.smtp.helpers import Relay, Sink, make_pki, message, service_toml, write_spec

HOSPITAL = "hospital.test"
STAFF = f"cardiologie@{HOSPITAL}"
DOCTOR = "dr.martin@peer.test"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("mdn")
    tls = make_pki(d / "tls")
    hospital_system, peer = Sink(d / "hospital", 0).start(), Sink(d / "peer", 0).start()

    def hop(sink: Sink) -> dict:
        return {"host": "127.0.0.1", "port": sink.port, "tls": "none"}

    unsigned = {"require_signature": False}
    spec = {
        "bundles": [{"name": "smime", "purpose": "smime", "anchors": [str(tls.path("root.pem"))]}],
        "domains": [
            {"name": HOSPITAL, "local": True, "next_hop": hop(hospital_system), "policy": {**unsigned, "send_mdn": True}},
            {"name": "quiet.test", "local": True, "next_hop": hop(hospital_system), "policy": unsigned},
            {"name": "peer.test", "local": False, "next_hop": hop(peer), "policy": unsigned},
        ],
    }
    write_spec(d / "spec.json", spec)
    (d / "dkim.pem").write_bytes(
        devpki.new_key("rsa2048").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    config = service_toml(d, tls, listeners=("loopback",))
    append(config, f'[dkim."{HOSPITAL}"]\nselector = "mdn"\nkey_file = "dkim.pem"\n[mdn]\nreporting_ua = "mx.{HOSPITAL}; relay"\n')
    relay = Relay(config, d / "spec.json").start()
    yield type("Env", (), {"relay": relay, "hospital": hospital_system, "peer": peer, "dkim": load_key(HOSPITAL, "mdn", d / "dkim.pem")})
    relay.stop()
    hospital_system.stop()
    peer.stop()


def _send(env, data: bytes, recipient: str = STAFF) -> str:
    with smtplib.SMTP("127.0.0.1", env.relay.ports["loopback"], timeout=30) as client:
        client.ehlo("mx.peer.test")
        client.mail(DOCTOR)
        client.rcpt(recipient)
        code, text = client.data(data)
    assert code == 250, text
    return text.decode().split("queued as ")[1]


def test_a_delivered_message_that_asks_gets_a_processed_mdn(env):
    data = message(DOCTOR, [STAFF], subject="marker-mdn-asked", extra=f"Disposition-Notification-To: <{DOCTOR}>\r\n")
    queue_id = _send(env, data)
    env.hospital.wait_for_marker("marker-mdn-asked")
    mdn_event = env.relay.wait_event("mdn", mdn_for=queue_id)
    envelope, mdn = delivered(env.peer.wait_for_marker(mdn_event["queue_id"]))
    assert envelope == {"from": "<>", "to": [DOCTOR]}  # the null reverse-path: nothing answers an MDN
    assert b"Content-Type: multipart/report; report-type=disposition-notification;" in mdn
    assert b"Disposition: automatic-action/MDN-sent-automatically; processed\r\n" in mdn
    assert f"Final-Recipient: rfc822;{STAFF}".encode() in mdn
    original_id = data.split(b"Message-ID: ")[1].split(b"\r\n")[0]
    assert b"Original-Message-ID: " + original_id in mdn
    assert b"marker-mdn-asked" not in mdn  # the subject stays with the message, never in the report
    assert f"Reporting-UA: mx.{HOSPITAL}; relay".encode() in mdn
    results = verify_dkim(mdn, static_resolver({f"mdn._domainkey.{HOSPITAL}": dns_record(env.dkim)}))
    assert [(r.status, r.domain) for r in results] == [(DkimStatus.PASS, HOSPITAL)]
    # The MDN itself was delivered and left the queue, with no acknowledgement of its own.
    env.relay.wait_event("removed", queue_id=mdn_event["queue_id"])
    assert not env.relay.events("mdn", mdn_for=mdn_event["queue_id"])


def _no_mdn_after_delivery(env, queue_id: str) -> None:
    # The MDN would be spooled before the message leaves the queue: once removed, the decision is made.
    removed = env.relay.wait_event("removed", queue_id=queue_id)
    assert removed["delivered"]
    assert not env.relay.events("mdn", mdn_for=queue_id)


def test_no_mdn_when_the_message_does_not_ask(env):
    queue_id = _send(env, message(DOCTOR, [STAFF], subject="marker-mdn-not-asked"))
    _no_mdn_after_delivery(env, queue_id)


def test_no_mdn_for_a_report(env):
    report = message(
        DOCTOR, [STAFF], subject="marker-mdn-report",
        extra=f"Disposition-Notification-To: <{DOCTOR}>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\r\n',
        body="--r\r\nContent-Type: text/plain\r\n\r\nprocessed\r\n--r--\r\n",
    )
    queue_id = _send(env, report)
    _no_mdn_after_delivery(env, queue_id)
    assert "report" in env.relay.wait_event("mdn-skipped", mdn_for=queue_id)["why"]


def test_no_mdn_where_the_local_policy_does_not_send_them(env):
    recipient = "accueil@quiet.test"
    data = message(DOCTOR, [recipient], subject="marker-mdn-quiet", extra=f"Disposition-Notification-To: <{DOCTOR}>\r\n")
    queue_id = _send(env, data, recipient)
    _no_mdn_after_delivery(env, queue_id)
