"""The relay's SMTP decisions as pure functions: recipients, senders, header checks, policy.

No I/O: everything arrives as bytes, a Snapshot, a Verdict or plain values,
and the answer is a typed Decision (None when the step passes).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import re
from dataclasses import dataclass
from typing import Sequence

from ..core.address import ATEXT, DOT_ATOM
from ..core.limits import MessageLimits
from ..core.pickled import by_fields
from ..core.reasons import Reason
from ..core.snapshot import MessagePolicy, Snapshot, normalise_address
from ..core.verdict import Verdict
from ..core.verify import verify_message
from ..trust.dn import DnError, normalise_dn
from .replies import Refusal


@by_fields
@dataclass(frozen=True, slots=True)
class Refused:
    code: Reason | Refusal
    detail: str


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def same_address(a: str, b: str) -> bool:
    return normalise_address(a) == normalise_address(b)


# -- RCPT ------------------------------------------------------------------


def check_recipient(snapshot: Snapshot, address: str, may_relay: bool) -> Refused | None:
    """No open relay: only known domains, and only local ones for peers that may not relay."""
    route = snapshot.route(address)
    domain = domain_of(address)
    if not route.known:
        return Refused(Refusal.RELAY_DENIED, f"domain {domain} is not served by this relay")
    if not route.local and not may_relay:
        return Refused(Refusal.RELAY_DENIED, f"relaying to {domain} is not allowed for this client")
    if route.local and _has_mailboxes(snapshot, domain) and snapshot.mailbox(address) is None:
        return Refused(Refusal.UNKNOWN_MAILBOX, "no such mailbox in the directory")
    return None


def _has_mailboxes(snapshot: Snapshot, domain: str) -> bool:
    # Only domains whose directory is loaded can tell an unknown mailbox.
    return domain in _mailbox_domains(snapshot)


@functools.lru_cache(maxsize=2)  # the current snapshot and the one being replaced
def _mailbox_domains(snapshot: Snapshot) -> frozenset[str]:
    return frozenset(domain_of(address) for address in snapshot.mailboxes)


# -- MAIL ------------------------------------------------------------------


def check_submitter(user: str, mail_from: str) -> Refused | None:
    if not same_address(user, mail_from):
        return Refused(Refusal.SENDER_NOT_OWNED, f"authenticated as {user}, not {mail_from}")
    return None


def check_peer_operator(snapshot: Snapshot, mail_from: str, operator_dn: str, subject: str) -> Refused | None:
    """MX peers: the sender's domain must list the peer certificate's subject among its operators.

    `operator_dn`: the subject in the trust directory's canonical form
    (relay.trust.dn, as the snapshot's operator DNs are); `subject`: as shown.
    """
    if not mail_from:
        return None  # a DSN (<>) carries no domain to check; its content is verified like any other
    rule = snapshot.domains.get(domain_of(mail_from))
    if rule is None:
        return Refused(Refusal.SENDER_DOMAIN_UNKNOWN, f"sender domain {domain_of(mail_from)} is not in the trust directory")
    if operator_dn not in rule.operator_dns:
        return Refused(Refusal.OPERATOR_NOT_LISTED, f"{subject} is not an operator of {rule.name}")
    return None


def canonical_dn(dn: str) -> str:
    """The trust directory's canonical form of an RFC 4514 DN (attribute names, case, blanks, RDN order)."""
    try:
        return normalise_dn(dn)
    except DnError:
        return dn.strip().casefold()  # not a DN: equal only to the same text


# -- DATA: raw checks --------------------------------------------------------

def check_line_endings(data: bytes) -> Refused | None:
    """SMTP smuggling: every line ends in CRLF; a bare CR or LF could hide a second message downstream."""
    # Counting runs at memory speed, where a regular expression takes seconds on 50 MB.
    crlf = data.count(b"\r\n")
    if data.count(b"\r") != crlf:
        return Refused(Refusal.BARE_LINE_ENDING, "bare CR in the data")
    if data.count(b"\n") != crlf:
        return Refused(Refusal.BARE_LINE_ENDING, "bare LF in the data")
    return None


@dataclass(frozen=True, slots=True)
class Headers:
    """The root header fields the relay needs, read leniently (strict MIME is the core's job)."""

    from_: tuple[str, ...]
    sender: tuple[str, ...]
    recipients: tuple[str, ...]  # To and Cc
    received_count: int
    message_id: str | None


def header_block(data: bytes) -> bytes:
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 2]


def check_header_limits(data: bytes, limits: MessageLimits, max_received: int) -> Refused | None:
    block = header_block(data)
    if len(block) > limits.max_header_bytes:
        return Refused(Refusal.HEADER_TOO_BIG, f"header block over {limits.max_header_bytes} bytes")
    names = [line.split(b":", 1)[0].strip().lower() for line in block.split(b"\r\n") if line and line[:1] not in b" \t"]
    if len(names) > limits.max_header_count:
        return Refused(Refusal.HEADER_TOO_BIG, f"more than {limits.max_header_count} header fields")
    received = names.count(b"received")
    if received > max_received:
        return Refused(Refusal.MAIL_LOOP, f"{received} Received: fields, loop suspected")
    return None


# What the stdlib's feedparser (email.feedparser.headerRE) takes for a header line; the first
# other line (the blank separator, or a body line) ends the header block.
_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_WANTED = frozenset({b"from", b"sender", b"to", b"cc", b"received", b"message-id"})


def read_headers(data: bytes) -> Headers:
    """The fields as email's compat32 parser and email.utils.getaddresses read them, in one pass.

    For CRLF data (judge refuses anything else first). Kept exactly equal to
    the stdlib's reading (a property test compares them): the envelope
    check must see the addresses every other mail system sees.
    """
    fields = _root_fields(data)

    def addresses(*names: bytes) -> tuple[str, ...]:
        return _addresses([value for name in names for value in fields.get(name, ())])

    message_ids = fields.get(b"message-id")
    message_id = message_ids[0] if message_ids else None
    return Headers(
        from_=addresses(b"from"),
        sender=addresses(b"sender"),
        recipients=addresses(b"to", b"cc"),
        received_count=len(fields.get(b"received", ())),
        # An identifier for the audit trail: printable ASCII only, bounded.
        message_id=re.sub(r"[^!-~]", "?", message_id.strip())[:200] if message_id else None,
    )


def _root_fields(data: bytes) -> dict[bytes, list[str]]:
    """Lowercased name -> values of the fields the relay reads, as compat32 gives them: the value
    after the colon without leading blanks, folds kept, non-ASCII bytes as U+FFFD."""
    fields: dict[bytes, list[str]] = {}
    current: list[bytes] | None = None  # the lines of the wanted field being read
    for line in header_block(data).split(b"\r\n"):
        if not _HEADER_LINE.match(line):
            break
        if line[0] in b" \t":  # a fold: part of the field above, if that was a field
            if current is not None:
                current.append(line)
            continue
        _keep(fields, current)
        current = None
        name, _, value = line.partition(b":")  # an mbox "From " line has a blank in its "name": never wanted
        if name and name.lower() in _WANTED:
            current = [name.lower(), value.lstrip(b" \t")]
    _keep(fields, current)
    return fields


def _keep(fields: dict[bytes, list[str]], field: list[bytes] | None) -> None:
    if field is not None:
        fields.setdefault(field[0], []).append(b"\r\n".join(field[1:]).decode("ascii", "replace"))


_ADDR_SPEC = rf"{DOT_ATOM}@{DOT_ATOM}"
_BLANK = r"[ \t\r\n]*"
# One mailbox with nothing but atoms around it: what getaddresses returns for it is the addr-spec.
# Every piece is unambiguous (atoms, blanks and dots never overlap): linear time on any input.
_SIMPLE_MAILBOX = re.compile(
    rf"{_BLANK}(?:(?:{ATEXT}(?:[ \t\r\n]+{ATEXT})*{_BLANK})?<({_ADDR_SPEC})>|({_ADDR_SPEC})){_BLANK}"
)


def _addresses(values: list[str]) -> tuple[str, ...]:
    simple = [_SIMPLE_MAILBOX.fullmatch(value) for value in values]
    if all(simple):
        return tuple(m.group(1) or m.group(2) for m in simple if m)
    return tuple(addr for _, addr in email.utils.getaddresses(values) if addr)


def check_envelope(headers: Headers, mail_from: str, rcpts: list[str], policy: MessagePolicy) -> Refused | None:
    """Envelope tampering: MAIL FROM is the From or Sender, every RCPT TO is in To or Cc."""
    if not policy.envelope_check or not mail_from:
        return None
    if not any(same_address(mail_from, a) for a in headers.from_ + headers.sender):
        return Refused(Refusal.ENVELOPE_MISMATCH, "MAIL FROM is neither the From nor the Sender mailbox")
    listed = {normalise_address(a) for a in headers.recipients}
    for rcpt in rcpts:
        if normalise_address(rcpt) not in listed:
            return Refused(Refusal.ENVELOPE_MISMATCH, f"recipient {rcpt} is not in To or Cc")
    return None


def check_author(headers: Headers, user: str) -> Refused | None:
    """An authenticated submitter writes as themselves: the From mailbox is theirs."""
    if not any(same_address(user, a) for a in headers.from_):
        return Refused(Refusal.SENDER_NOT_OWNED, f"authenticated as {user}, From is another mailbox")
    return None


# -- Verdict and policy ------------------------------------------------------


@by_fields
@dataclass(frozen=True, slots=True)
class Accepted:
    signed: bool
    verdict: Verdict


def apply_policy(verdict: Verdict, policy: MessagePolicy, sender: str, user: str | None) -> Accepted | Refused:
    if verdict.accepted:
        return Accepted(True, verdict)
    if verdict.code is Reason.UNSIGNED:
        if not policy.require_signature:
            return Accepted(False, verdict)
        exempt = {normalise_address(a) for a in policy.unsigned_senders}
        if user is not None and normalise_address(sender) in exempt:
            return Accepted(False, verdict)
    return Refused(verdict.code, verdict.detail)


# -- The whole end-of-DATA judgement ------------------------------------------


@by_fields
@dataclass(frozen=True, slots=True)
class Transaction:
    """What the SMTP session knows about a message, as plain values."""

    sender: str  # "" for the null reverse-path
    recipients: tuple[str, ...]
    user: str | None  # the authenticated submitter


@by_fields
@dataclass(frozen=True, slots=True)
class Judgement:
    outcome: Accepted | Refused
    message_id: str | None
    verdict: Verdict | None  # None when refused before verification


def judge(
    data: bytes, tx: Transaction, snapshot: Snapshot, now: dt.datetime, limits: MessageLimits, max_received: int
) -> Judgement:
    """Every end-of-DATA check in order, the first refusal answering. CPU-bound: run off the event loop."""
    refused = check_line_endings(data) or check_header_limits(data, limits, max_received)
    if refused:
        return Judgement(refused, None, None)
    headers = read_headers(data)
    policy = snapshot.route(tx.sender).policy
    refused = (check_author(headers, tx.user) if tx.user else None) or check_envelope(
        headers, tx.sender, list(tx.recipients), policy
    )
    if refused:
        return Judgement(refused, headers.message_id, None)
    verdict = verify_message(data, snapshot, now, limits, crlf_checked=True)  # check_line_endings passed
    return Judgement(apply_policy(verdict, policy, tx.sender, tx.user), headers.message_id, verdict)


# -- Trace fields ------------------------------------------------------------


def received_field(
    helo: str | None, peer_ip: str, hostname: str, protocol: str, queue_id: str, now: dt.datetime
) -> bytes:
    helo_text = _token(helo or "unknown")
    date = email.utils.format_datetime(now)
    return f"Received: from {helo_text} ([{peer_ip}])\r\n\tby {hostname} with {protocol} id {queue_id};\r\n\t{date}\r\n".encode()


def authentication_results(hostname: str, accepted: Accepted, user: str | None = None, methods: Sequence[str] = ()) -> bytes:
    """RFC 8601 field: the RFC 7281 smime method, further method results (dkim=), and the
    submitter's SMTP AUTH identity."""
    signer = accepted.verdict.signer
    if accepted.signed and signer is not None:
        results = [f"smime=pass smime.signer={_quoted(signer.email or signer.subject)}"]
    else:
        results = ["smime=none"]
    results.extend(methods)
    if user is not None:
        results.append(f"auth=pass smtp.auth={_quoted(user)}")
    body = ";\r\n\t".join(results)
    return f"Authentication-Results: {hostname};\r\n\t{body}\r\n".encode()


def strip_forged_results(message: bytes, hostname: str) -> bytes:
    """The message without Authentication-Results fields that claim to be ours (RFC 8601 §5).

    Only fields of the top-level header block whose authserv-id is this
    relay's hostname go; downstream systems trust that id, so a sender must
    not be able to hand them a verdict of its own making. Everything else
    stays byte for byte.
    """
    head = header_block(message)
    rest = message[len(head) :]
    if b"authentication-results" not in head.lower():  # most mail: nothing to look at
        return message
    kept, dropping = [], False
    for line in head.splitlines(keepends=True):
        if line[:1] not in (b" ", b"\t"):
            dropping = _claims_our_results(line, hostname)
        if not dropping:
            kept.append(line)
    return b"".join(kept) + rest


def _claims_our_results(first_line: bytes, hostname: str) -> bool:
    name, colon, value = first_line.partition(b":")
    if not colon or name.strip().lower() != b"authentication-results":
        return False
    authserv_id = value.split(b";", 1)[0].strip()
    return authserv_id.lower() == hostname.lower().encode()


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.\-\[\]:_]", "?", text)[:255]


def _quoted(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9.\-_@+]+", text):
        return text
    clean = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
    return f'"{clean}"'
