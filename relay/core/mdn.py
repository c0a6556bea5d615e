"""Message disposition notifications (RFC 8098) as MSSanté uses them: the acknowledgement
that a message was processed, or could not be (`processed/error` with `Error: code^label`).

Two pure pieces: the rule deciding whether an MDN is due, and the builder of
the `multipart/report; report-type=disposition-notification` message. The
MDN travels with the null reverse-path (`MAIL FROM:<>`, RFC 8098 §2.1), so
nothing answers it in turn; sending it that way is the caller's part.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from email.utils import format_datetime

from .address import parse_address_list
from .errors import Rejection
from .headers import HeaderBlock
from .mimetree import parse_content_type

_CRLF = "\r\n"
DISPOSITION_PROCESSED = "automatic-action/MDN-sent-automatically; processed"
DISPOSITION_ERROR = "automatic-action/MDN-sent-automatically; processed/error"
# Field values go verbatim into header fields: printable US-ASCII only, so no
# value can end a field early or smuggle in another one.
_FIELD_TEXT = re.compile(r"[\x20-\x7e]+")


# --- the rule ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MdnDecision:
    send: bool
    recipients: tuple[str, ...]  # the Disposition-Notification-To addresses, when send
    reason: str  # why (not), for the audit


def mdn_decision(headers: HeaderBlock, envelope_sender: str, policy_allows: bool) -> MdnDecision:
    """Whether to acknowledge a message: only when it asks (Disposition-Notification-To),
    the local domain's policy says so, and it is not itself a report or a bounce."""
    if envelope_sender in ("", "<>"):
        return _no("null reverse-path: a notification or a bounce")
    if _is_report(headers):
        return _no("the message is a report (MDN or DSN)")
    if _auto_replied(headers):
        return _no("the message is an automatic reply")
    requested = headers.get("Disposition-Notification-To")
    if requested is None:
        return _no("no Disposition-Notification-To")
    if not policy_allows:
        return _no("the local policy sends no MDN")
    try:
        recipients = tuple(dict.fromkeys(m.address for m in parse_address_list(requested)))
    except Rejection:
        return _no("unreadable Disposition-Notification-To")
    if not recipients:
        return _no("empty Disposition-Notification-To")
    return MdnDecision(True, recipients, "requested")


def _no(reason: str) -> MdnDecision:
    return MdnDecision(False, (), reason)


def _is_report(headers: HeaderBlock) -> bool:
    value = headers.get("Content-Type")
    if value is None:
        return False
    try:
        content_type = parse_content_type(value)
    except Rejection:
        return False  # not readable as a report; the other rules decide
    return content_type.mime_type in (
        "multipart/report", "message/disposition-notification", "message/delivery-status"
    )


def _auto_replied(headers: HeaderBlock) -> bool:
    # RFC 3834 §5: never auto-answer an automatic reply (loops between two auto-responders).
    value = (headers.get("Auto-Submitted") or "no").split(";", 1)[0].strip().lower()
    return value == "auto-replied"


# --- the builder ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MdnError:
    """An MSSanté processing error, carried as `Error: code^label`."""

    code: str
    label: str

    def field_value(self) -> str:
        return f"{self.code}^{self.label}"


@dataclass(frozen=True, slots=True)
class MdnReport:
    reporting_ua: str  # e.g. "relay.hopital-test.mssante.fr; relay"
    from_address: str  # the mailbox the MDN is from (the final recipient, or the service's)
    to: tuple[str, ...]  # the Disposition-Notification-To addresses
    final_recipient: str  # the mailbox the message was delivered to
    original_recipient: str | None  # from the envelope (ORCPT), when known
    original_message_id: str | None  # the original Message-ID, with its angle brackets
    message_id: str  # of the MDN itself, with angle brackets
    date: dt.datetime
    error: MdnError | None = None  # None: processed


def build_mdn(report: MdnReport) -> bytes:
    """The MDN message, CRLF line endings, 7-bit."""
    _check(report)
    machine = _machine_part(report)
    human = _human_part(report)
    boundary = "----=_relay_mdn_" + hashlib.sha256((report.message_id + machine).encode()).hexdigest()[:24]
    header = [
        f"From: <{report.from_address}>",
        "To: " + ", ".join(f"<{address}>" for address in report.to),
        "Subject: " + ("Disposition notification: processed with error" if report.error else "Disposition notification: processed"),
        f"Date: {format_datetime(report.date)}",
        f"Message-ID: {report.message_id}",
        *([f"In-Reply-To: {report.original_message_id}", f"References: {report.original_message_id}"]
          if report.original_message_id else []),
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=disposition-notification;{_CRLF} boundary="{boundary}"',
    ]
    parts = [
        "Content-Type: text/plain; charset=us-ascii" + _CRLF + "Content-Transfer-Encoding: 7bit" + _CRLF + _CRLF + human,
        "Content-Type: message/disposition-notification" + _CRLF + _CRLF + machine,
    ]
    body = "".join(f"--{boundary}{_CRLF}{part}{_CRLF}" for part in parts) + f"--{boundary}--{_CRLF}"
    return (_CRLF.join(header) + _CRLF + _CRLF + body).encode("ascii")


def _machine_part(report: MdnReport) -> str:
    fields = [f"Reporting-UA: {report.reporting_ua}"]
    if report.original_recipient:
        fields.append(f"Original-Recipient: rfc822;{report.original_recipient}")
    fields.append(f"Final-Recipient: rfc822;{report.final_recipient}")
    if report.original_message_id:
        fields.append(f"Original-Message-ID: {report.original_message_id}")
    fields.append(f"Disposition: {DISPOSITION_ERROR if report.error else DISPOSITION_PROCESSED}")
    if report.error:
        fields.append(f"Error: {report.error.field_value()}")
    return _CRLF.join(fields) + _CRLF


def _human_part(report: MdnReport) -> str:
    # No original subject or content here: the report may be read by people the message was not for.
    about = f"The message {report.original_message_id}" if report.original_message_id else "The message"
    if report.error:
        outcome = f"could not be processed for {report.final_recipient} (error {report.error.code})."
    else:
        outcome = f"was processed for {report.final_recipient}."
    return f"{about} {outcome}{_CRLF}This is an automatic notification; the message may not have been read yet.{_CRLF}"


def _check(report: MdnReport) -> None:
    if report.date.tzinfo is None:
        raise ValueError("the MDN date must be timezone-aware")
    if not report.to:
        raise ValueError("an MDN needs at least one recipient")
    values = [report.reporting_ua, report.from_address, *report.to, report.final_recipient, report.message_id]
    values += [v for v in (report.original_recipient, report.original_message_id) if v is not None]
    if report.error:
        values += [report.error.code, report.error.label]
        if "^" in report.error.code:
            raise ValueError("an MDN error code cannot contain '^'")
    for value in values:
        if not _FIELD_TEXT.fullmatch(value):
            raise ValueError("MDN field values are printable US-ASCII on one line")
