"""The root header block as the SMTP layer reads it (read_headers)."""

from __future__ import annotations

import pytest

from relay.core.errors import Rejection
from relay.core.limits import DEFAULT_LIMITS, MessageLimits
from relay.core.mime import read_headers
from relay.core.reasons import Reason

MESSAGE = (
    b"From: Jean Dupont <jean.dupont@hopital.mssante.fr>\r\n"
    b"To: a@b.fr,\r\n\tc@d.fr\r\n"
    b"Subject: Compte\r\n rendu  \r\n"
    b"Received: from a\r\n"
    b"Received: from b\r\n"
    b"X-MSS-INS: 1234\r\n"
    b"\r\n"
    b"Body: not a header\r\n"
)


def refused(raw: bytes, limits: MessageLimits = DEFAULT_LIMITS) -> Rejection:
    with pytest.raises(Rejection) as caught:
        read_headers(raw, limits)
    assert caught.value.reason is Reason.MALFORMED
    return caught.value


def test_fields_are_unfolded_and_looked_up_case_insensitively() -> None:
    headers = read_headers(MESSAGE)
    assert headers.get("from") == "Jean Dupont <jean.dupont@hopital.mssante.fr>"
    assert headers.get("TO") == "a@b.fr,\tc@d.fr"
    assert headers.get("Subject") == "Compte rendu"
    assert headers.get_all("received") == ("from a", "from b")
    assert headers.count("Received") == 2
    assert headers.count("Body") == 0
    assert headers.get("Cc") is None
    assert headers.get_all("Cc") == ()
    assert headers.get("x-mss-ins") == "1234"
    assert [name for name, _ in headers.fields][:2] == ["From", "To"]


def test_lf_only_headers_are_read_the_same() -> None:
    assert read_headers(MESSAGE.replace(b"\r\n", b"\n")) == read_headers(MESSAGE)


def test_headers_without_body() -> None:
    assert read_headers(b"From: a@b.fr\r\nSubject: x\r\n").get("subject") == "x"
    assert read_headers(b"From: a@b.fr").get("from") == "a@b.fr"


def test_utf8_header_values_are_text() -> None:
    assert read_headers("Subject: Résultats\r\n\r\n".encode()).get("subject") == "Résultats"


@pytest.mark.parametrize(
    "raw, detail",
    [
        (b"From: a@b.fr\r\nNo colon here\r\n\r\n", "without a colon"),
        (b"From: a@b.fr\r\nBad Name: x\r\n\r\n", "field name"),
        (b"From: a@b.fr\r\n: empty name\r\n\r\n", "field name"),
        (b"From: a@b.fr\r\nX-\xc3\xa9: x\r\n\r\n", "field name"),
        (b"From: a@b.fr\r\nX-\xe9: x\r\n\r\n", "UTF-8"),
        (b" From: a@b.fr\r\n\r\n", "continuation"),
        (b"From: a@b.fr\r\nSubject: x\r\n   \r\n more\r\n\r\n", "white space only"),
        (b"From: a@b.fr\r\nSubject: a\x00b\r\n\r\n", "NUL"),
        (b"From: a@b.fr\r\nSubject: a\x07b\r\n\r\n", "control character"),
        (b"From: a@b.fr\r\nSubject: \xff\xfe\r\n\r\n", "UTF-8"),
        (b"From: a@b.fr\r\nSubject: x\r\nsubject: y\r\n\r\n", "duplicate Subject"),
        (b"From: a@b.fr\r\nMessage-Id: <1@x>\r\nMESSAGE-ID: <2@x>\r\n\r\n", "duplicate Message-ID"),
        (b"From: a@b.fr\r\nFrom: c@d.fr\r\n\r\n", "duplicate From"),
        (b"From: a@b.fr\r\nSubject: x\nTo: c@d.fr\r\n\r\n", "mixes"),
        (b"From: a@b.fr\r\n\nbody\r\n", "mixes"),
        (b"From: a@b.fr\r\nSubject: \rx\r\n\r\n", "bare CR"),
    ],
)
def test_malformed_header_blocks(raw: bytes, detail: str) -> None:
    assert detail in refused(raw).detail


@pytest.mark.parametrize(
    "name",
    [
        "Date", "From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Message-ID", "In-Reply-To",
        "References", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
        "Content-ID", "Content-Description", "Content-Disposition",
    ],
)
def test_every_at_most_once_field(name: str) -> None:
    raw = f"{name}: one\r\n{name.upper()}: two\r\n\r\n".encode()
    assert f"duplicate {name}" in refused(raw).detail


def test_repeatable_fields_may_repeat() -> None:
    raw = b"Received: a\r\nReceived: b\r\nComments: c\r\nComments: d\r\nKeywords: e\r\nKeywords: f\r\n\r\n"
    assert read_headers(raw).count("comments") == 2


def test_header_limits() -> None:
    fields = b"".join(b"X-%d: v\r\n" % i for i in range(11))
    assert "max_header_count" in refused(fields + b"\r\n", MessageLimits(max_header_count=10)).detail
    assert read_headers(fields + b"\r\n", MessageLimits(max_header_count=11)).count("X-3") == 1
    assert "max_header_bytes" in refused(fields + b"\r\nbody", MessageLimits(max_header_bytes=50)).detail
    assert "max_line_bytes" in refused(b"X: " + b"y" * 2000 + b"\r\n\r\n").detail
