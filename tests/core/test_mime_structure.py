"""Strict MIME reading and signature location over hand-built byte fixtures."""

from __future__ import annotations

import base64
import hashlib

import pytest

from relay.core.errors import Rejection
from relay.core.limits import DEFAULT_LIMITS, MessageLimits
from relay.core.mime import Mailbox, check_signed_content, locate_signature
from relay.core.reasons import Reason

# Any bytes will do where the module does not look inside the signature.
SIGNATURE = bytes(range(256)) * 3
SENDER = Mailbox("jean.dupont", "hopital.mssante.fr")

CONTENT = b"Content-Type: text/plain; charset=utf-8\r\n\r\nCompte rendu\r\nligne 2\r\n"


def b64_lines(data: bytes, width: int = 64, eol: bytes = b"\r\n") -> bytes:
    text = base64.b64encode(data)
    return b"".join(text[i : i + width] + eol for i in range(0, len(text), width))


def detached(
    content: bytes = CONTENT,
    *,
    boundary: bytes = b"----=_sig_1",
    content_type: bytes | None = None,
    signature_type: bytes = b"application/pkcs7-signature",
    signature_body: bytes | None = None,
    headers: bytes = b"From: Jean Dupont <jean.dupont@hopital.mssante.fr>\r\nTo: dest@clinique.mssante.fr\r\nSubject: CR\r\n",
    preamble: bytes = b"This is an S/MIME signed message\r\n",
    epilogue: bytes = b"",
    close: bool = True,
) -> bytes:
    if content_type is None:
        content_type = (
            b'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="' + boundary + b'"'
        )
    body = signature_body if signature_body is not None else b64_lines(SIGNATURE)
    message = (
        headers
        + b"MIME-Version: 1.0\r\nContent-Type: " + content_type + b"\r\n\r\n"
        + preamble
        + b"--" + boundary + b"\r\n"
        + content
        + b"\r\n--" + boundary + b"\r\n"
        + b"Content-Type: " + signature_type + b'; name="smime.p7s"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n"
        + b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n'
        + body
    )
    if close:
        message += b"\r\n--" + boundary + b"--\r\n" + epilogue
    return message


def opaque(
    *,
    content_type: bytes = b'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"',
    encoding: bytes = b"base64",
    body: bytes | None = None,
    der: bytes = SIGNATURE,
) -> bytes:
    return (
        b"From: jean.dupont@hopital.mssante.fr\r\nMIME-Version: 1.0\r\n"
        + b"Content-Type: " + content_type + b"\r\n"
        + b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n"
        + (body if body is not None else b64_lines(der))
    )


def rejected(raw: bytes, limits: MessageLimits = DEFAULT_LIMITS) -> Rejection:
    with pytest.raises(Rejection) as caught:
        locate_signature(raw, limits)
    return caught.value


def content_rejected(content: bytes, sender: Mailbox = SENDER, limits: MessageLimits = DEFAULT_LIMITS) -> Rejection:
    with pytest.raises(Rejection) as caught:
        check_signed_content(content, sender, limits)
    return caught.value


# --- accepted forms -------------------------------------------------------


def test_detached_returns_sender_signature_and_exact_first_part() -> None:
    signed = locate_signature(detached(), DEFAULT_LIMITS)
    assert signed.sender == Mailbox("jean.dupont", "hopital.mssante.fr", "Jean Dupont")
    assert signed.signature == SIGNATURE
    assert signed.detached_content == CONTENT
    assert hashlib.sha256(signed.detached_content).digest() == hashlib.sha256(CONTENT).digest()


def test_the_crlf_before_the_delimiter_belongs_to_the_delimiter() -> None:
    # The content ends with its own CRLF; the next CRLF is the delimiter's.
    content = b"Content-Type: text/plain\r\n\r\nbody\r\n\r\n"
    assert locate_signature(detached(content), DEFAULT_LIMITS).detached_content == content


def test_content_without_trailing_line_break_is_kept_as_is() -> None:
    content = b"Content-Type: text/plain\r\n\r\nno final break"
    assert locate_signature(detached(content), DEFAULT_LIMITS).detached_content == content


@pytest.mark.parametrize(
    "content_type, signature_type",
    [
        (b'multipart/signed; protocol="application/pkcs7-signature"; micalg="sha-256"; boundary="b1"', b"application/pkcs7-signature"),
        (b"multipart/signed; protocol=\"application/x-pkcs7-signature\"; micalg=sha1; boundary=b1", b"application/x-pkcs7-signature"),
        (b'Multipart/Signed; Protocol="Application/PKCS7-Signature"; MICALG=SHA-256; Boundary="b1"', b"Application/Pkcs7-Signature"),
        (b'multipart/signed;\r\n\tboundary="b1";\r\n protocol="application/pkcs7-signature" (comment);\r\n micalg=sha-256', b"application/pkcs7-signature"),
        (b"multipart/signed; micalg=sha-256; boundary=b1; protocol=\"application/pkcs7-signature\"", b"application/pkcs7-signature"),
    ],
)
def test_multipart_signed_parameter_spellings(content_type: bytes, signature_type: bytes) -> None:
    signed = locate_signature(
        detached(boundary=b"b1", content_type=content_type, signature_type=signature_type), DEFAULT_LIMITS
    )
    assert signed.signature == SIGNATURE
    assert signed.detached_content == CONTENT


@pytest.mark.parametrize(
    "content_type",
    [
        b'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"',
        b'application/x-pkcs7-mime; smime-type="signed-data"; name=smime.p7m',
        b"Application/PKCS7-MIME; SMIME-Type=Signed-Data",
    ],
)
def test_opaque_forms(content_type: bytes) -> None:
    signed = locate_signature(opaque(content_type=content_type), DEFAULT_LIMITS)
    assert signed.signature == SIGNATURE
    assert signed.detached_content is None
    assert signed.sender.address == "jean.dupont@hopital.mssante.fr"


def test_preamble_and_epilogue_are_allowed() -> None:
    raw = detached(preamble=b"preamble line\r\n\r\n", epilogue=b"epilogue\r\n")
    assert locate_signature(raw, DEFAULT_LIMITS).detached_content == CONTENT


def test_transport_padding_after_delimiters_is_allowed() -> None:
    raw = detached().replace(b"--" + b"----=_sig_1" + b"\r\n", b"--" + b"----=_sig_1" + b" \t\r\n")
    assert locate_signature(raw, DEFAULT_LIMITS).detached_content == CONTENT


# --- unsigned ---------------------------------------------------------------


def test_plain_text_is_unsigned() -> None:
    raw = b"From: a@b.fr\r\nSubject: x\r\n\r\nhello\r\n"
    assert rejected(raw).reason is Reason.UNSIGNED


def test_signed_part_nested_in_unsigned_multipart_is_unsigned() -> None:
    inner = detached(headers=b"")
    inner_headers, inner_body = inner.split(b"\r\n\r\n", 1)
    raw = (
        b"From: jean.dupont@hopital.mssante.fr\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
        b"--outer\r\nContent-Type: text/plain\r\n\r\nunsigned addition\r\n"
        b"--outer\r\n" + inner_headers + b"\r\n\r\n" + inner_body + b"\r\n--outer--\r\n"
    )
    refusal = rejected(raw)
    assert refusal.reason is Reason.UNSIGNED
    assert "nested" in refusal.detail


@pytest.mark.parametrize("kind", [b"enveloped-data", b"authEnveloped-data", b'"Enveloped-Data"'])
def test_encrypted_is_unsigned_and_says_so(kind: bytes) -> None:
    refusal = rejected(opaque(content_type=b"application/pkcs7-mime; smime-type=" + kind))
    assert refusal.reason is Reason.UNSIGNED
    assert "encrypted" in refusal.detail


def test_pgp_multipart_signed_is_unsigned() -> None:
    content_type = b'multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256; boundary="b1"'
    raw = detached(boundary=b"b1", content_type=content_type, signature_type=b"application/pgp-signature")
    assert rejected(raw).reason is Reason.UNSIGNED


def test_certs_only_is_unsigned() -> None:
    assert rejected(opaque(content_type=b"application/pkcs7-mime; smime-type=certs-only")).reason is Reason.UNSIGNED


# --- malformed signed structures ---------------------------------------------


def test_missing_close_delimiter_is_malformed() -> None:
    refusal = rejected(detached(close=False))
    assert refusal.reason is Reason.MALFORMED
    assert "close delimiter" in refusal.detail


def test_three_parts_is_malformed() -> None:
    raw = detached().replace(b"\r\n--" + b"----=_sig_1--", b"\r\n------=_sig_1\r\n\r\nextra\r\n------=_sig_1--")
    refusal = rejected(raw)
    assert refusal.reason is Reason.MALFORMED
    assert "3 parts" in refusal.detail


def test_one_part_is_malformed() -> None:
    raw = (
        b"From: a@b.fr\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=b\r\n\r\n'
        b"--b\r\n" + CONTENT + b"\r\n--b--\r\n"
    )
    assert "1 parts" in rejected(raw).detail


@pytest.mark.parametrize(
    "body",
    [
        b"not base64 at all!\r\n",
        b"QUJD\r\nR===\r\n",  # bad padding
        b"QUJDRA==QUJD\r\n",  # data after the padding
        b"QUJD RA==\r\n",  # white space inside
        b"\r\n",  # empty
    ],
)
def test_bad_base64_signature_is_malformed(body: bytes) -> None:
    assert rejected(detached(signature_body=body)).reason is Reason.MALFORMED
    assert rejected(opaque(body=body)).reason is Reason.MALFORMED


def test_signature_part_must_be_base64() -> None:
    raw = detached().replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: 7bit")
    assert "not base64" in rejected(raw).detail
    assert "not base64" in rejected(opaque(encoding=b"quoted-printable")).detail


def test_missing_protocol_or_micalg_is_malformed() -> None:
    no_protocol = b"multipart/signed; micalg=sha-256; boundary=b1"
    no_micalg = b'multipart/signed; protocol="application/pkcs7-signature"; boundary=b1'
    assert "protocol" in rejected(detached(boundary=b"b1", content_type=no_protocol)).detail
    assert "micalg" in rejected(detached(boundary=b"b1", content_type=no_micalg)).detail


def test_signature_part_type_must_match_protocol() -> None:
    raw = detached(signature_type=b"application/x-pkcs7-signature")
    assert rejected(raw).reason is Reason.MALFORMED


def test_signed_message_needs_mime_version_1_0() -> None:
    raw = detached().replace(b"MIME-Version: 1.0\r\n", b"")
    assert "MIME-Version" in rejected(raw).detail
    assert "MIME-Version" in rejected(raw.replace(b"To:", b"MIME-Version: 2.0\r\nTo:")).detail
    with_comment = raw.replace(b"To:", b"MIME-Version: (produced by x) 1.0 (y)\r\nTo:")
    assert locate_signature(with_comment, DEFAULT_LIMITS).detached_content == CONTENT


def test_unknown_smime_type_is_malformed() -> None:
    assert rejected(opaque(content_type=b"application/pkcs7-mime; smime-type=bogus")).reason is Reason.MALFORMED


def test_line_that_extends_the_boundary_is_malformed() -> None:
    # "--b1x" is neither a delimiter nor allowed inside a part (RFC 2046 §5.1.1).
    content = b"Content-Type: text/plain\r\n\r\n--b1x\r\n"
    assert "not a delimiter" in rejected(detached(content, boundary=b"b1")).detail


def test_boundary_after_close_delimiter_is_malformed() -> None:
    raw = detached(epilogue=b"--" + b"----=_sig_1\r\nsmuggled\r\n")
    assert rejected(raw).reason is Reason.MALFORMED


@pytest.mark.parametrize("boundary", [b'"a\\"b"', '"é"'.encode(), b'"ends with space "', b'""', b'"' + b"x" * 71 + b'"'])
def test_invalid_boundary_parameter_is_malformed(boundary: bytes) -> None:
    content_type = b'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=' + boundary
    assert "boundary" in rejected(detached(content_type=content_type)).detail


def test_repeated_parameter_is_malformed() -> None:
    content_type = b'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary=b1; boundary=b2'
    assert "repeated" in rejected(detached(boundary=b"b1", content_type=content_type)).detail
    assert rejected(detached(boundary=b"b1", content_type=content_type.replace(b"; boundary=b2", b"; BOUNDARY=\"b2\""))).reason is Reason.MALFORMED


def test_base64_encoded_multipart_is_malformed() -> None:
    raw = detached().replace(b"MIME-Version: 1.0\r\n", b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n")
    assert rejected(raw).reason is Reason.MALFORMED


def test_adjacent_delimiters_sharing_one_line_break_are_malformed() -> None:
    raw = detached(content=b"").replace(b"--" + b"----=_sig_1\r\n\r\n--", b"--" + b"----=_sig_1\r\n--")
    assert rejected(raw).reason is Reason.MALFORMED


# --- headers of the root ------------------------------------------------------


def test_two_from_fields_are_malformed() -> None:
    raw = b"From: attacker@evil.fr\r\n" + detached()
    refusal = rejected(raw)
    assert refusal.reason is Reason.MALFORMED
    assert "duplicate From" in refusal.detail


@pytest.mark.parametrize(
    "from_value",
    [
        b"a@b.fr, c@d.fr",
        b"team: a@b.fr;",
        b"",
        b"a@b.fr garbage",
        b"admin@hospital.fr <attacker@evil.fr>",
        b"<attacker@evil.fr> trailing",
    ],
)
def test_from_that_is_not_one_mailbox_is_malformed(from_value: bytes) -> None:
    raw = detached(headers=b"From: " + from_value + b"\r\n")
    assert rejected(raw).reason is Reason.MALFORMED


def test_quoted_address_looking_display_name_is_legal() -> None:
    raw = detached(headers=b'From: "admin@hospital.fr" <attacker@evil.fr>\r\n')
    sender = locate_signature(raw, DEFAULT_LIMITS).sender
    assert sender.address == "attacker@evil.fr"
    assert sender.display_name == "admin@hospital.fr"


def test_missing_from_is_malformed() -> None:
    assert "no From" in rejected(detached(headers=b"To: x@y.fr\r\n")).detail


# --- line breaks ----------------------------------------------------------------


def test_lf_only_message_is_canonicalised_as_a_whole() -> None:
    lf = detached().replace(b"\r\n", b"\n")
    signed = locate_signature(lf, DEFAULT_LIMITS)
    assert signed.detached_content == CONTENT  # CRLF again
    assert signed.signature == SIGNATURE


def test_bare_cr_is_malformed() -> None:
    raw = detached().replace(b"Subject: CR\r\n", b"Subject: C\rR\r\n")
    assert "bare CR" in rejected(raw).detail


def test_bare_lf_inside_a_crlf_header_block_is_malformed() -> None:
    # A CRLF-only reader sees one Subject; a lenient one would see a second From.
    raw = detached().replace(b"Subject: CR\r\n", b"Subject: CR\nFrom: attacker@evil.fr\r\n")
    refusal = rejected(raw)
    assert refusal.reason is Reason.MALFORMED
    assert "header block" in refusal.detail


def test_bare_lf_delimiter_in_crlf_multipart_is_malformed() -> None:
    content = b"Content-Type: text/plain\r\n\r\nline\n--b1\r\n"
    assert rejected(detached(content, boundary=b"b1")).reason is Reason.MALFORMED


def test_lf_structure_with_crlf_signed_part_is_accepted() -> None:
    # What `openssl cms -sign` writes by default: its own lines with LF, the
    # canonical (CRLF) content in between.
    lf_frame = detached(content=b"@@CONTENT@@").replace(b"\r\n", b"\n")
    raw = lf_frame.replace(b"@@CONTENT@@", CONTENT)
    assert locate_signature(raw, DEFAULT_LIMITS).detached_content == CONTENT


def test_lf_root_header_block_over_a_crlf_structure_is_malformed() -> None:
    # Each region is uniform, but a CRLF-only reader would take the whole LF
    # header block for one line and find other fields further down.
    head, rest = detached().split(b"\r\n\r\n", 1)
    raw = head.replace(b"\r\n", b"\n") + b"\n\n" + rest
    refusal = rejected(raw)
    assert refusal.reason is Reason.MALFORMED
    assert "structure" in refusal.detail


def test_signed_content_mixing_conventions_between_its_entities_is_malformed() -> None:
    content = (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--m\r\nContent-Type: text/plain\n\nheader block in LF, every region uniform\r\n"
        b"--m--\r\n"
    )
    assert "signed content" in rejected(detached(content)).detail
    assert "signed content" in content_rejected(content).detail


def test_unsigned_message_with_a_mixed_body_is_malformed() -> None:
    assert "body" in rejected(b"From: a@b.fr\r\nSubject: x\r\n\r\nline one\r\nline two\n").detail
    assert rejected(b"From: a@b.fr\r\nSubject: x\r\n\r\nline one\r\nline two\r\n").reason is Reason.UNSIGNED


def test_mixed_text_body_is_malformed() -> None:
    content = b"Content-Type: text/plain\r\n\r\nline one\r\nline two\n"
    assert content_rejected(content).reason is Reason.MALFORMED
    assert rejected(detached(content)).reason is Reason.MALFORMED


# --- limits ------------------------------------------------------------------------


def nested_multiparts(depth: int) -> bytes:
    """depth nested multipart/mixed entities around one text part, as signed content."""
    body = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for level in range(depth):
        boundary = b"n%d" % level
        body = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
            b"--" + boundary + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n"
        )
    return body


def test_nesting_up_to_the_limit_is_accepted_and_one_more_is_malformed() -> None:
    # The signed content already sits one level inside the message.
    check_signed_content(nested_multiparts(99), SENDER, DEFAULT_LIMITS)
    refusal = content_rejected(nested_multiparts(100))
    assert refusal.reason is Reason.MALFORMED
    assert "max_mime_depth" in refusal.detail


def test_depth_101_in_an_unsigned_message_is_malformed_not_a_crash() -> None:
    raw = b"From: a@b.fr\r\nMIME-Version: 1.0\r\n" + nested_multiparts(101)
    assert "max_mime_depth" in rejected(raw).detail


def test_depth_is_a_limit_setting() -> None:
    check_signed_content(nested_multiparts(3), SENDER, MessageLimits(max_mime_depth=4))
    assert "max_mime_depth" in content_rejected(nested_multiparts(4), limits=MessageLimits(max_mime_depth=4)).detail


def many_parts(count: int) -> bytes:
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(count))
    return b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + parts + b"--p--\r\n"


def test_ten_thousand_parts_is_malformed() -> None:
    refusal = content_rejected(many_parts(10_000))
    assert refusal.reason is Reason.MALFORMED
    assert "max_parts" in refusal.detail
    check_signed_content(many_parts(1000), SENDER, DEFAULT_LIMITS)


def test_huge_header_block_is_malformed() -> None:
    many = b"".join(b"X-Filler-%d: value\r\n" % i for i in range(20_000))
    refusal = rejected(many + detached())
    assert refusal.reason is Reason.MALFORMED
    assert "max_header" in refusal.detail


def test_header_field_count_limit() -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(1001))
    assert "max_header_count" in rejected(fields + detached()).detail


def test_header_block_size_limit() -> None:
    folded = b"X-Long: " + b"\r\n x" * 100_000 + b"\r\n"
    assert "max_header_bytes" in rejected(folded + detached()).detail


def test_line_length_limit() -> None:
    assert "max_line_bytes" in rejected(detached(headers=b"From: a@b.fr\r\nX-Long: " + b"a" * 1000 + b"\r\n")).detail
    locate_signature(detached(headers=b"From: a@b.fr\r\nX-Long: " + b"a" * 990 + b"\r\n"), DEFAULT_LIMITS)


def test_message_size_limit() -> None:
    assert "max_message_bytes" in rejected(detached(), MessageLimits(max_message_bytes=100)).detail


# --- signed content --------------------------------------------------------------


def test_duplicate_content_type_in_a_nested_entity_is_malformed() -> None:
    content = (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--m\r\nContent-Type: text/plain\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n"
        b"--m--\r\n"
    )
    refusal = content_rejected(content)
    assert refusal.reason is Reason.MALFORMED
    assert "duplicate Content-Type" in refusal.detail


def test_malformed_signed_content_is_refused_before_any_signature_check() -> None:
    content = (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\nContent-Disposition: inline\r\nContent-Disposition: attachment\r\n\r\nx\r\n"
        b"--m--\r\n"
    )
    refusal = rejected(detached(content))
    assert refusal.reason is Reason.MALFORMED
    assert "duplicate Content-Disposition" in refusal.detail


def test_unterminated_multipart_inside_signed_content_is_malformed() -> None:
    content = b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n--m\r\nContent-Type: text/plain\r\n\r\nx\r\n'
    assert "close delimiter" in rejected(detached(content)).detail
    assert "close delimiter" in content_rejected(content).detail


def direct_wrapper(inner_from: bytes) -> bytes:
    return (
        b"Content-Type: message/rfc822\r\n\r\n"
        b"From: " + inner_from + b"\r\nTo: dest@clinique.mssante.fr\r\nSubject: CR\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    )


def test_direct_wrapper_with_matching_inner_from() -> None:
    check_signed_content(direct_wrapper(b"Jean <jean.dupont@HOPITAL.mssante.fr>"), SENDER, DEFAULT_LIMITS)


def test_direct_wrapper_with_other_inner_from_is_an_address_mismatch() -> None:
    refusal = content_rejected(direct_wrapper(b"attacker@evil.fr"))
    assert refusal.reason is Reason.ADDRESS_MISMATCH


def test_local_part_case_matters() -> None:
    assert content_rejected(direct_wrapper(b"Jean.Dupont@hopital.mssante.fr")).reason is Reason.ADDRESS_MISMATCH


def test_opaque_content_that_is_a_whole_message_is_checked() -> None:
    whole = b"From: attacker@evil.fr\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    assert content_rejected(whole).reason is Reason.ADDRESS_MISMATCH
    check_signed_content(whole.replace(b"attacker@evil.fr", b"jean.dupont@hopital.mssante.fr"), SENDER, DEFAULT_LIMITS)


def test_forwarded_message_deeper_in_the_content_keeps_its_own_author() -> None:
    content = (
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--m\r\nContent-Type: message/rfc822\r\n\r\nFrom: someone@else.fr\r\n\r\nold\r\n"
        b"--m--\r\n"
    )
    check_signed_content(content, SENDER, DEFAULT_LIMITS)


def test_inner_from_with_two_mailboxes_is_malformed() -> None:
    assert content_rejected(direct_wrapper(b"jean.dupont@hopital.mssante.fr, x@y.fr")).reason is Reason.MALFORMED


def test_lf_only_content_is_read_after_canonicalisation() -> None:
    check_signed_content(direct_wrapper(b"jean.dupont@hopital.mssante.fr").replace(b"\r\n", b"\n"), SENDER, DEFAULT_LIMITS)


def test_malformed_content_header_is_malformed() -> None:
    assert content_rejected(b"Content-Type text/plain\r\n\r\nx\r\n").reason is Reason.MALFORMED
    assert content_rejected(b"Content-Type: text\r\n\r\nx\r\n").reason is Reason.MALFORMED
