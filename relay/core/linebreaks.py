"""Line breaks of a message as received, and the limits on its lines.

RFC 5322 lines end with CRLF. A file whose lines all end with a bare LF (no
CR anywhere: the usual form on disk) is canonicalised to CRLF as a whole
(RFC 8551 §3.1.1) before anything else looks at it.

A file that mixes both conventions is what the engines really write, so a
blanket refusal would refuse genuine signatures. Measured with OpenSSL 3.0
and gpgsm 2.2.40 on LF-only and CRLF inputs:
- ``openssl cms -sign`` (detached, the default text mode) writes its own
  headers, preamble and delimiter lines with LF but the signed first part
  canonicalised with CRLF, and the base64 signature lines with LF;
- ``-crlfeol`` writes headers and delimiter lines with CRLF and the base64
  lines (of the signature part, or of the whole opaque body) with LF;
- ``-binary`` copies the content as given: an LF-only input gives an LF-only
  file, which canonicalisation turns into CRLF, so that the signature no
  longer verifies, exactly as ``openssl cms -verify`` without ``-binary``
  also refuses it (RFC 8551 requires canonical content before signing);
- opaque output (``-nodetach``) is base64 lines with LF under LF headers;
- ``gpgsm --sign`` writes no MIME at all, only base64 lines with LF (its
  signed content is the input byte for byte); a mail client wraps it.

So a mixture is allowed only where the engines put one, and nowhere a
reader could split the message differently because of it:
- every region (one header block with the blank line ending it, the
  delimiter lines of one multipart, a preamble or epilogue, one non-base64
  body) ends all its lines the same way; that is where a reader that only
  knows CRLF and one that also knows LF would disagree (a hidden header
  field, a delimiter one of them does not see);
- in a signed message, the structure around the signed content (root
  header block, preamble, delimiter lines, signature part header, epilogue)
  uses one convention throughout, and the signed content one throughout,
  possibly the other (mime.py checks these two);
- base64 bodies, where a line break carries no meaning, may use either.
A bare CR is refused everywhere: no engine writes one and some readers take
it for a line break.
"""

from __future__ import annotations

import re

from .errors import Rejection
from .limits import MessageLimits
from .reasons import Reason

CR, LF = 13, 10
# Each scan starts from a literal byte, which the regular expression engine
# finds with its tight prefix loop: about one pass of the message apiece.
_BARE_CR = re.compile(rb"\r(?!\n)")
_BARE_LF = re.compile(rb"\n(?<!\r\n)")


def prepare(raw: bytes, limits: MessageLimits, crlf_checked: bool = False) -> bytes:
    """The message with LF-only files canonicalised, after the whole-message checks.

    crlf_checked: the caller has already found that every line break is CRLF
    (the SMTP edge refuses anything else), so the scan for a bare CR is skipped.
    """
    if len(raw) > limits.max_message_bytes:
        raise Rejection(Reason.MALFORMED, f"message larger than {limits.max_message_bytes} bytes (max_message_bytes)")
    if b"\x00" in raw:
        raise Rejection(Reason.MALFORMED, "NUL byte in message")
    if crlf_checked:
        data = raw
    elif b"\r" not in raw:
        data = raw.replace(b"\n", b"\r\n")
    elif _BARE_CR.search(raw):
        raise Rejection(Reason.MALFORMED, "bare CR in message")
    else:
        data = raw
    if not lines_fit(data, limits.max_line_bytes):
        raise Rejection(Reason.MALFORMED, f"line longer than {limits.max_line_bytes} bytes (max_line_bytes)")
    return data


def lines_fit(data: bytes, max_line_bytes: int) -> bool:
    """Whether no line is longer than max_line_bytes, its line break included.

    From the start of a line, the last LF among the next longest + 1 bytes
    ends the lines that all fit; no LF there means the line is too long. One
    memrchr call thus covers about a line's worth of allowed bytes, however
    short the lines are, and never makes a per-line object.
    """
    longest = max_line_bytes - 1  # bytes before the LF, its CR included
    pos, end = 0, len(data)
    rfind = data.rfind
    while end - pos > longest:  # what is left could be a line too long
        last = rfind(b"\n", pos, pos + longest + 1)
        if last < 0:
            return False
        pos = last + 1
    return True


def mixes_conventions(data: bytes) -> bool:
    """Whether some lines of a prepared message end with CRLF and others with a bare LF.

    Most messages do not, and then no body needs checking region by region.
    A prepared message has no bare CR, so a CR and a bare LF are the mixture.
    """
    return b"\r" in data and _BARE_LF.search(data) is not None


def check_uniform(data: bytes, start: int, end: int, region: str) -> None:
    """Refuse a region whose lines do not all end the same way (see the module note)."""
    carriage_returns = data.count(b"\r", start, end)
    if carriage_returns and carriage_returns != data.count(b"\n", start, end):
        raise Rejection(Reason.MALFORMED, f"{region} mixes CRLF and bare LF line breaks")


def break_before(data: bytes, index: int) -> bytes:
    """The line break ending just before index (index is just after an LF)."""
    return b"\r\n" if index >= 2 and data[index - 2] == CR else b"\n"
