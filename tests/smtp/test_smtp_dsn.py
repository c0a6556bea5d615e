import datetime as dt
from email import message_from_bytes

from relay.queue.dsn import build_dsn, needs_dsn
from relay.queue.spool import Envelope, RecipientState


def test_dsn_is_a_delivery_status_report_without_the_body():
    env = Envelope("0123456789abcdef", "alice@hospital.test", (RecipientState("carol@peer.test", "failed", "550 5.1.1 no such user"),), 0.0, 0.0)
    raw = build_dsn(env, env.recipients, b"Subject: secret\r\nFrom: alice@hospital.test\r\n\r\n", "relay.test", dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    msg = message_from_bytes(raw)
    assert msg.get_content_type() == "multipart/report" and msg.get_param("report-type") == "delivery-status"
    human, status, headers = msg.get_payload()
    assert status.get_content_type() == "message/delivery-status"
    assert "Status: 5.1.1" in status.as_string() and "Final-Recipient: rfc822; carol@peer.test" in status.as_string()
    assert headers.get_content_type() == "text/rfc822-headers"
    assert msg["To"] == "<alice@hospital.test>" and msg["Auto-Submitted"] == "auto-replied"
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_never_a_dsn_for_a_dsn_or_the_null_sender():
    base = Envelope("0123456789abcdef", "alice@hospital.test", (), 0.0, 0.0)
    assert needs_dsn(base)
    assert not needs_dsn(Envelope("0123456789abcdef", "", (), 0.0, 0.0))
    assert not needs_dsn(Envelope("0123456789abcdef", "alice@hospital.test", (), 0.0, 0.0, is_dsn=True))
