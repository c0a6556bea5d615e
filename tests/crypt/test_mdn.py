"""MDN (RFC 8098): the structure parsed back with the standard library, and the rule's cases."""

from __future__ import annotations

import datetime as dt
import email
import email.policy

import pytest

from crypt_support import MESSAGE
from relay.core.headers import read_header_block
from relay.core.limits import DEFAULT_LIMITS
from relay.core.mdn import MdnError, MdnReport, build_mdn, mdn_decision
from relay.core.mime import read_headers

WHEN = dt.datetime(2026, 6, 1, 9, 45, tzinfo=dt.timezone.utc)
REQUESTING = MESSAGE.replace(
    b"X-MSS-CODECDA", b"Disposition-Notification-To: Secretariat <secretariat.cardio@hopital-test.mssante.fr>\r\nX-MSS-CODECDA"
)


def report(error: MdnError | None = None, original_recipient: str | None = "martin@medecin.mssante.fr") -> MdnReport:
    return MdnReport(
        reporting_ua="relay.medecin.mssante.fr; relay",
        from_address="martin@medecin.mssante.fr",
        to=("secretariat.cardio@hopital-test.mssante.fr",),
        final_recipient="martin@medecin.mssante.fr",
        original_recipient=original_recipient,
        original_message_id="<cr-0001@hopital-test.mssante.fr>",
        message_id="<mdn-0001@medecin.mssante.fr>",
        date=WHEN,
        error=error,
    )


def parse(raw: bytes) -> email.message.Message:
    return email.message_from_bytes(raw, policy=email.policy.compat32)


def machine_fields(message: email.message.Message) -> dict[str, str]:
    human, machine = message.get_payload()
    assert human.get_content_type() == "text/plain"
    assert machine.get_content_type() == "message/disposition-notification"
    # The stdlib does not parse this type's body; its fields are one header block.
    body = machine.get_payload()
    if isinstance(body, list):
        return {k: v for block in body for k, v in block.items()}
    fields = email.message_from_string(body, policy=email.policy.compat32)
    return dict(fields.items())


def test_processed_mdn_structure():
    raw = build_mdn(report())
    assert raw.isascii() and b"\n" not in raw.replace(b"\r\n", b"")
    message = parse(raw)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "disposition-notification"
    assert message["To"] == "<secretariat.cardio@hopital-test.mssante.fr>"
    assert message["In-Reply-To"] == "<cr-0001@hopital-test.mssante.fr>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["Date"] == "Mon, 01 Jun 2026 09:45:00 +0000"
    fields = machine_fields(message)
    assert fields == {
        "Reporting-UA": "relay.medecin.mssante.fr; relay",
        "Original-Recipient": "rfc822;martin@medecin.mssante.fr",
        "Final-Recipient": "rfc822;martin@medecin.mssante.fr",
        "Original-Message-ID": "<cr-0001@hopital-test.mssante.fr>",
        "Disposition": "automatic-action/MDN-sent-automatically; processed",
    }
    # the relay's own strict reader accepts it, and the rule never answers it
    headers = read_headers(raw)
    assert not mdn_decision(headers, "", True).send
    assert mdn_decision(headers, "martin@medecin.mssante.fr", True).reason == "the message is a report (MDN or DSN)"


def test_error_mdn_carries_code_and_label():
    message = parse(build_mdn(report(MdnError("INS-404", "Patient inconnu"), original_recipient=None)))
    assert message["Subject"] == "Disposition notification: processed with error"
    fields = machine_fields(message)
    assert fields["Disposition"] == "automatic-action/MDN-sent-automatically; processed/error"
    assert fields["Error"] == "INS-404^Patient inconnu"
    assert "Original-Recipient" not in fields
    human = message.get_payload()[0].get_payload()
    assert "error INS-404" in human and "Compte rendu" not in human


def test_mdn_is_deterministic_and_refuses_injection():
    assert build_mdn(report()) == build_mdn(report())
    for bad in (
        MdnError("E1", "line\r\nBcc: victim@example.test"),
        MdnError("E^1", "label"),
        MdnError("E1", "\u00e9tiquette"),
    ):
        with pytest.raises(ValueError):
            build_mdn(report(bad))
    with pytest.raises(ValueError, match="timezone-aware"):
        build_mdn(MdnReport(**{**_fields(report()), "date": WHEN.replace(tzinfo=None)}))
    with pytest.raises(ValueError, match="at least one recipient"):
        build_mdn(MdnReport(**{**_fields(report()), "to": ()}))


def _fields(value: MdnReport) -> dict:
    return {name: getattr(value, name) for name in MdnReport.__slots__}


def headers_of(raw: bytes):
    data = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return read_header_block(data, 0, len(data), DEFAULT_LIMITS)[0]


@pytest.mark.parametrize(
    "raw, sender, policy, send, reason",
    [
        (REQUESTING, "secretariat.cardio@hopital-test.mssante.fr", True, True, "requested"),
        (MESSAGE, "secretariat.cardio@hopital-test.mssante.fr", True, False, "no Disposition-Notification-To"),
        (REQUESTING, "secretariat.cardio@hopital-test.mssante.fr", False, False, "the local policy sends no MDN"),
        (REQUESTING, "", True, False, "null reverse-path: a notification or a bounce"),
        (REQUESTING, "<>", True, False, "null reverse-path: a notification or a bounce"),
        (
            REQUESTING.replace(b"Content-Type: text/plain; charset=utf-8",
                               b"Content-Type: multipart/report; report-type=delivery-status; boundary=x"),
            "mailer-daemon@hopital-test.mssante.fr", True, False, "the message is a report (MDN or DSN)",
        ),
        (
            REQUESTING.replace(b"X-MSS-CODECDA", b"Auto-Submitted: auto-replied\r\nX-MSS-CODECDA"),
            "secretariat.cardio@hopital-test.mssante.fr", True, False, "the message is an automatic reply",
        ),
        (
            REQUESTING.replace(b"Secretariat <secretariat.cardio@hopital-test.mssante.fr>", b"not an address <<"),
            "secretariat.cardio@hopital-test.mssante.fr", True, False, "unreadable Disposition-Notification-To",
        ),
    ],
    ids=["requested", "not-requested", "policy-off", "null-sender", "null-sender-brackets", "dsn", "auto-reply", "bad-dnt"],
)
def test_the_rule(raw, sender, policy, send, reason):
    decision = mdn_decision(headers_of(raw), sender, policy)
    assert (decision.send, decision.reason) == (send, reason)
    if send:
        assert decision.recipients == ("secretariat.cardio@hopital-test.mssante.fr",)
    else:
        assert decision.recipients == ()


def test_an_mdn_answering_a_requesting_message_is_never_answered():
    decision = mdn_decision(headers_of(REQUESTING), "secretariat.cardio@hopital-test.mssante.fr", True)
    mdn = build_mdn(MdnReport(**{**_fields(report()), "to": decision.recipients}))
    # even if the MDN came back with a sender and a request of its own
    looped = mdn.replace(b"Auto-Submitted: auto-replied\r\n", b"Disposition-Notification-To: <martin@medecin.mssante.fr>\r\n")
    assert not mdn_decision(headers_of(looped), "martin@medecin.mssante.fr", True).send
