"""DKIM verification of inbound mail and its Authentication-Results (RFC 8601) wording.

Every signature of the message is judged on its own. Beyond what dkimpy
checks, a signature whose l= tag covers less than the whole body fails:
whatever follows the signed length could have been added by anyone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Sequence

import dkim
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError

from .resolver import DkimLookupFailed, TxtResolver

MAX_SIGNATURES = 8  # more than this is a denial of service attempt, not mail
_LOG = logging.getLogger("relay.dkim")
_LOG.addHandler(logging.NullHandler())  # dkimpy's chatter goes to configured handlers only
# What dkimpy raises, beyond its own exceptions, on signatures it cannot read.
_UNREADABLE = (dkim.DKIMException, InvalidCanonicalizationPolicyError, ValueError, TypeError, KeyError, IndexError, UnicodeError)


class DkimStatus(StrEnum):
    """RFC 8601 §2.7.1 result values."""

    PASS = "pass"
    FAIL = "fail"
    NONE = "none"
    PERMERROR = "permerror"
    TEMPERROR = "temperror"


@dataclass(frozen=True, slots=True)
class DkimResult:
    status: DkimStatus
    domain: str | None = None  # d= of the signature
    selector: str | None = None  # s= of the signature
    reason: str = ""  # short, fixed wording; never message content

    def method_result(self) -> str:
        """`dkim=pass header.d=example.org header.s=sel` (plus a reason when it did not pass)."""
        parts = [f"dkim={self.status}"]
        if self.reason and self.status is not DkimStatus.PASS:
            parts.append(f'reason="{self.reason}"')
        # d= and s= come from the signature as sent: only well-formed names go
        # into the header, so a crafted tag cannot fold in fields of its own.
        if self.domain and _NAME.fullmatch(self.domain):
            parts.append(f"header.d={self.domain}")
        if self.selector and _NAME.fullmatch(self.selector):
            parts.append(f"header.s={self.selector}")
        return " ".join(parts)


_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?")


NO_SIGNATURE = (DkimResult(DkimStatus.NONE),)
_SIGNATURE_FIELD = re.compile(rb"(?:^|\n)dkim-signature[ \t]*:", re.IGNORECASE)


def has_signature(message: bytes) -> bool:
    """Whether the header block holds a DKIM-Signature field: a scan of the header alone.

    Most mail carries none, and parsing the whole message for nothing cost
    more than a millisecond. The block ends where dkimpy's does, at the
    first empty line in either line-ending convention.
    """
    end = message.find(b"\n\r\n")
    end = len(message) if end < 0 else end
    # Within the CRLF header only: searching a whole CRLF body for LF LF is slow.
    bare = message.find(b"\n\n", 0, end)
    head = message[: (end if bare < 0 else bare) + 1]
    # A plain search first: case-insensitive regular expressions scan slowly.
    return b"dkim-signature" in head.lower() and _SIGNATURE_FIELD.search(head) is not None


def verify_dkim(message: bytes, resolver: TxtResolver) -> tuple[DkimResult, ...]:
    """One result per DKIM-Signature field (top first), or a single `none` when there is none."""
    if not has_signature(message):
        return NO_SIGNATURE
    try:
        verifier = dkim.DKIM(message, logger=_LOG)
    except _UNREADABLE:
        return (DkimResult(DkimStatus.PERMERROR, reason="unreadable message"),)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    if count == 0:
        return NO_SIGNATURE
    # One parsed message for every signature: dkimpy sets its per-signature state anew for each index.
    return tuple(_verify_one(verifier, index, resolver) for index in range(min(count, MAX_SIGNATURES)))


def _verify_one(verifier: dkim.DKIM, index: int, resolver: TxtResolver) -> DkimResult:
    try:
        tags = verifier.verify_headerprep(index)[0]
    except _UNREADABLE:
        return DkimResult(DkimStatus.PERMERROR, reason="malformed signature")
    domain, selector = _text(tags.get(b"d")), _text(tags.get(b"s"))
    try:
        if _partial_body(verifier, tags):
            return DkimResult(DkimStatus.FAIL, domain, selector, "l= does not cover the whole body")
        record = resolver(tags[b"s"] + b"._domainkey." + tags[b"d"] + b".")
        if record is None:
            return DkimResult(DkimStatus.PERMERROR, domain, selector, "no key for signature")
        valid = verifier.verify(index, dnsfunc=lambda name, timeout=5: record)
    except DkimLookupFailed:
        return DkimResult(DkimStatus.TEMPERROR, domain, selector, "key lookup failed")
    except dkim.ValidationError:
        # The tags were validated above, so what remains is dkimpy's body hash check.
        return DkimResult(DkimStatus.FAIL, domain, selector, "body hash did not verify")
    except _UNREADABLE:
        return DkimResult(DkimStatus.PERMERROR, domain, selector, "unusable signature or key")
    if valid:
        return DkimResult(DkimStatus.PASS, domain, selector)
    return DkimResult(DkimStatus.FAIL, domain, selector, "signature did not verify")


def _partial_body(verifier: dkim.DKIM, tags: dict[bytes, bytes]) -> bool:
    if b"l" not in tags:
        return False
    policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    return int(tags[b"l"]) < len(policy.canonicalize_body(verifier.body))


def _text(value: bytes | None) -> str | None:
    return value.decode("ascii", "replace") if value is not None else None


def authentication_results(authserv_id: str, results: Sequence[DkimResult]) -> str:
    """The body of an Authentication-Results field: `authserv-id; dkim=...; dkim=...`."""
    return "; ".join([authserv_id, *(result.method_result() for result in results)])
