"""Strict MIME reading of a message and location of its S/MIME signature.

A message is signed only when its root entity is the signed structure
(RFC 8551 §3.5): ``multipart/signed`` whose protocol is
``application/(x-)pkcs7-signature``, or ``application/(x-)pkcs7-mime`` with
``smime-type=signed-data``. A signature deeper in the tree signs only part of
what the recipient sees, so such a message is UNSIGNED. The first part of a
multipart/signed is handed on as the exact bytes received; there is no
second, more lenient reading of anything.

The pieces live beside this module: line breaks and whole-message limits
(linebreaks), header blocks (headers), the entity tree (mimetree), the
structured-field lexer (tokens) and mailboxes (address).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from asn1crypto import cms as asn1_cms

from .address import Mailbox, parse_address_list, parse_mailbox
from .errors import Rejection
from .headers import HeaderBlock, read_header_block
from .limits import DEFAULT_LIMITS, MessageLimits
from .linebreaks import check_uniform, mixes_conventions, prepare
from .mimetree import Entity, base64_body, check_body_line_breaks, read_entity, walk
from .reasons import Reason
from .tokens import MIME, Kind, lex

__all__ = [
    "HeaderBlock",
    "Mailbox",
    "SignedMessage",
    "check_content",
    "check_signed_content",
    "locate_signature",
    "parse_address_list",
    "parse_mailbox",
    "read_headers",
]

_SIGNATURE_TYPES = frozenset({"application/pkcs7-signature", "application/x-pkcs7-signature"})
_OPAQUE_TYPES = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_ENCRYPTED_KINDS = frozenset({"enveloped-data", "authenveloped-data"})
_OTHER_KINDS = frozenset({"compressed-data", "certs-only"})  # RFC 8551 §3.2.2, not signatures
_SIGNED_STRUCTURES = frozenset({"multipart/signed"}) | _OPAQUE_TYPES


@dataclass(frozen=True, slots=True)
class SignedMessage:
    sender: Mailbox  # the single mailbox of the root entity's From
    signature: bytes  # DER of the CMS ContentInfo
    detached_content: bytes | None  # exact bytes of the first part of multipart/signed, else None
    # The header blocks of the detached content that may name its author (see
    # check_signed_content), found while reading the whole message; None when
    # the content must be read on its own.
    content_authors: tuple[HeaderBlock, ...] | None = field(default=None, repr=False, compare=False)


def read_headers(raw: bytes, limits: MessageLimits = DEFAULT_LIMITS) -> HeaderBlock:
    """The root header block, checked as strictly as locate_signature checks it."""
    data = prepare(raw, limits)
    headers, _ = read_header_block(data, 0, len(data), limits)
    return headers


def locate_signature(raw: bytes, limits: MessageLimits, crlf_checked: bool = False) -> SignedMessage:
    """Parse strictly; return the root-level signature or raise Rejection(malformed|unsigned).

    crlf_checked: every line break of raw is known to be CRLF (see prepare).
    """
    data = prepare(raw, limits, crlf_checked)
    root = read_entity(data, 0, len(data), 0, limits)
    sender = _sender(root.headers)
    mime_type = root.content_type.mime_type
    # Whether the message mixes line-break conventions is a scan of it all,
    # asked only where bodies other than base64 are to be checked.
    if mime_type not in _SIGNED_STRUCTURES:
        raise _unsigned(data, root, limits, not crlf_checked and mixes_conventions(data))
    _check_mime_version(root.headers)
    if mime_type == "multipart/signed":
        return _detached(data, root, sender, limits, not crlf_checked and mixes_conventions(data))
    # The only body is base64, so a mixture needs no further check here.
    return SignedMessage(sender, _opaque(data, root), None)


def check_signed_content(content: bytes, sender: Mailbox, limits: MessageLimits) -> None:
    """Parse the signed content strictly; a From inside it must agree with the outer sender.

    The content's own header block, and for a message/rfc822 wrapper (Direct)
    the header block of the message inside, may carry a From; deeper messages
    are forwarded attachments whose author is someone else.
    """
    data = prepare(content, limits)
    if mixes_conventions(data):
        raise Rejection(Reason.MALFORMED, "signed content mixes CRLF and bare LF line breaks")
    root = read_entity(data, 0, len(data), 1, limits)  # inside the signed structure
    for entity in walk(data, root, limits):
        if _names_author(entity, root):
            _check_inner_from(entity.headers, sender)


def check_content(signed: SignedMessage, content: bytes, limits: MessageLimits) -> None:
    """check_signed_content(content, signed.sender, limits), for the content of signed's signature.

    The detached content was read with the rest of the message by
    locate_signature, under the same rules and limits, so only its authors
    are left to check; other content (encapsulated) is read now.
    """
    if signed.content_authors is not None and content == signed.detached_content:
        for headers in signed.content_authors:
            _check_inner_from(headers, signed.sender)
    else:
        check_signed_content(content, signed.sender, limits)


def _names_author(entity: Entity, content: Entity) -> bool:
    """Whether entity's header block may name the author of the signed content whose entity is content:
    the content's own, and for a message/rfc822 wrapper (Direct) the inner message's."""
    if entity is content:
        return True
    wrapped = content.content_type.mime_type == "message/rfc822"
    return wrapped and entity.depth == content.depth + 1 and entity.start == content.body_start


def _sender(headers: HeaderBlock) -> Mailbox:
    value = headers.get("From")
    if value is None:
        raise Rejection(Reason.MALFORMED, "no From field")
    return parse_mailbox(value)


def _check_mime_version(headers: HeaderBlock) -> None:
    # Without MIME-Version the Content-Type means nothing (RFC 2045 §4), yet a
    # mail reader may still show the parts: refuse the ambiguity.
    value = headers.get("MIME-Version")
    if value is None:
        raise Rejection(Reason.MALFORMED, "signed message without MIME-Version")
    if value != "1.0" and lex(value, MIME) != [(Kind.WORD, "1.0")]:  # comments allowed around it (RFC 2045 §4)
        raise Rejection(Reason.MALFORMED, "MIME-Version is not 1.0")


def _detached(data: bytes, root: Entity, sender: Mailbox, limits: MessageLimits, mixed: bool) -> SignedMessage:
    content_type = root.content_type
    protocol = content_type.param("protocol")
    if protocol is None:
        raise Rejection(Reason.MALFORMED, "multipart/signed without a protocol parameter")
    if protocol.lower() not in _SIGNATURE_TYPES:
        raise Rejection(Reason.UNSIGNED, "multipart/signed whose protocol is not S/MIME")
    if content_type.param("micalg") is None:
        raise Rejection(Reason.MALFORMED, "multipart/signed without a micalg parameter")
    # The whole tree is read now, signed content included, so that a malformed
    # message is called malformed before any signature is checked.
    entities = list(walk(data, root, limits))
    parts = [entity for entity in entities if entity.depth == 1]
    if len(parts) != 2:
        raise Rejection(Reason.MALFORMED, f"multipart/signed with {len(parts)} parts instead of 2")
    content, signature_part = parts
    # RFC 1847 §2.1: the second part's type is the protocol parameter.
    if signature_part.content_type.mime_type != protocol.lower():
        raise Rejection(Reason.MALFORMED, "signature part type differs from the multipart/signed protocol")
    if mixed:
        _check_line_breaks(data, content, signature_part)
    signature = base64_body(data, signature_part, "signature part")
    authors = tuple(entity.headers for entity in entities if _names_author(entity, content))
    return SignedMessage(sender, signature, data[content.start : content.end], _read_alike(data, content, authors))


def _read_alike(data: bytes, content: Entity, authors: tuple[HeaderBlock, ...]) -> tuple[HeaderBlock, ...] | None:
    """authors, when reading the content on its own would read the same bytes.

    On its own, content without any CR but with line breaks is canonicalised
    first, which lengthens its lines; such content (in a message that has CR
    elsewhere) is read again by check_signed_content.
    """
    if data.find(b"\r", content.start, content.end) < 0 and data.find(b"\n", content.start, content.end) >= 0:
        return None
    return authors


def _check_line_breaks(data: bytes, content: Entity, signature_part: Entity) -> None:
    """One convention for the structure around the signed content, one inside it (see linebreaks).

    The content as a whole covers its leaf bodies; the other body is base64.
    """
    structure = bytearray()
    for start, end in ((0, content.start), (content.end, signature_part.body_start), (signature_part.end, len(data))):
        structure += data[start:end]
    check_uniform(bytes(structure), 0, len(structure), "multipart/signed structure")
    check_uniform(data, content.start, content.end, "signed content")


def _opaque(data: bytes, root: Entity) -> bytes:
    smime_type = root.content_type.param("smime-type")
    kind = smime_type.lower() if smime_type is not None else None
    if kind in _ENCRYPTED_KINDS:
        raise Rejection(Reason.UNSIGNED, f"the message is encrypted ({kind}), not signed")
    if kind in _OTHER_KINDS:
        raise Rejection(Reason.UNSIGNED, f"smime-type {kind} is not a signature")
    if kind not in (None, "signed-data"):
        raise Rejection(Reason.MALFORMED, "unknown smime-type")
    der = base64_body(data, root, "S/MIME body")
    if kind is None:
        _check_untyped_is_signed(der)
    return der


def _check_untyped_is_signed(der: bytes) -> None:
    # Agents before RFC 5751 may omit smime-type. Such a body is read as
    # signed-data, but an envelope must still be called encrypted rather than
    # left to fail as a malformed signature, so peek at the ContentInfo type.
    try:
        content_type = asn1_cms.ContentInfo.load(der)["content_type"].native
    except (ValueError, TypeError, KeyError):
        raise Rejection(Reason.MALFORMED, "S/MIME body is not a CMS ContentInfo") from None
    if content_type in ("enveloped_data", "authenticated_enveloped_data", "signed_and_enveloped_data"):
        raise Rejection(Reason.UNSIGNED, "the message is encrypted (no smime-type), not signed")


def _unsigned(data: bytes, root: Entity, limits: MessageLimits, mixed: bool) -> Rejection:
    """Why a message whose root is not a signature is unsigned (after reading it all strictly)."""
    entities = list(walk(data, root, limits))
    if mixed:
        check_body_line_breaks(data, entities)
    if any(entity.content_type.mime_type in _SIGNED_STRUCTURES for entity in entities[1:]):
        return Rejection(Reason.UNSIGNED, "only a nested part is signed, not the message root")
    return Rejection(Reason.UNSIGNED, f"the root entity is {root.content_type.mime_type}, not an S/MIME signature")


def _check_inner_from(headers: HeaderBlock, sender: Mailbox) -> None:
    value = headers.get("From")
    if value is None:
        return
    inner = parse_mailbox(value)
    if not inner.same_address(sender):
        raise Rejection(
            Reason.ADDRESS_MISMATCH,
            f"signed content is from {inner.address}, the message from {sender.address}",
        )
