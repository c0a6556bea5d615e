"""RFC 3464 delivery status notifications: multipart/report; report-type=delivery-status.

Pure: built from the spooled envelope, the original header block and a time.
The original body is not returned (RFC 3462 text/rfc822-headers), so a bounce
never carries patient data back through other hops.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import secrets

from .spool import Envelope, RecipientState


def needs_dsn(envelope: Envelope) -> bool:
    """Never a DSN for a DSN or for the null sender (RFC 3461 §6.2, RFC 5321 §4.5.5)."""
    return bool(envelope.mail_from) and not envelope.is_dsn


def build_dsn(
    envelope: Envelope,
    failed: tuple[RecipientState, ...],
    original_headers: bytes,
    reporting_host: str,
    now: dt.datetime,
) -> bytes:
    boundary = f"=_dsn_{secrets.token_hex(12)}"
    date = email.utils.format_datetime(now)
    message_id = f"<{envelope.queue_id}.dsn.{secrets.token_hex(4)}@{reporting_host}>"
    human = _human_part(failed, reporting_host)
    per_message = (
        f"Reporting-MTA: dns; {reporting_host}\r\n"
        f"X-Original-Queue-Id: {envelope.queue_id}\r\n"
        f"Arrival-Date: {email.utils.format_datetime(envelope.received)}\r\n"
    )
    per_recipient = "".join(
        f"\r\nFinal-Recipient: rfc822; {r.address}\r\n"
        f"Action: failed\r\n"
        f"Status: {_status(r.reply)}\r\n"
        f"Diagnostic-Code: smtp; {_one_line(r.reply) or 'delivery failed'}\r\n"
        for r in failed
    )
    parts = [
        f"From: Mail Delivery System <MAILER-DAEMON@{reporting_host}>\r\n",
        f"To: <{envelope.mail_from}>\r\n",
        "Subject: Undelivered Mail Returned to Sender\r\n",
        f"Date: {date}\r\n",
        f"Message-ID: {message_id}\r\n",
        "Auto-Submitted: auto-replied\r\n",
        "MIME-Version: 1.0\r\n",
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n',
        "\r\n",
        f"--{boundary}\r\n",
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        human,
        f"--{boundary}\r\n",
        "Content-Type: message/delivery-status\r\n\r\n",
        per_message,
        per_recipient,
        f"\r\n--{boundary}\r\n",
        "Content-Type: text/rfc822-headers\r\n\r\n",
    ]
    return "".join(parts).encode() + original_headers + f"\r\n--{boundary}--\r\n".encode()


def _human_part(failed: tuple[RecipientState, ...], host: str) -> str:
    lines = [f"This is the mail system at {host}.", "", "Your message could not be delivered to:", ""]
    lines += [f"  <{r.address}>: {_one_line(r.reply) or 'delivery failed'}" for r in failed]
    return "\r\n".join(lines) + "\r\n\r\n"


def _status(reply: str) -> str:
    """The enhanced status of the reply when it has one, else a generic permanent failure."""
    words = reply.split()
    for word in words[:3]:
        parts = word.split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts) and parts[0] in ("4", "5"):
            return "5." + ".".join(parts[1:])  # a DSN reports a final failure
    return "5.0.0"


def _one_line(text: str) -> str:
    return " ".join(text.replace("\r", " ").replace("\n", " ").split())[:500]
