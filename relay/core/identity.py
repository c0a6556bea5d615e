"""Who the signer is (IGC-Santé / Direct profiles) and whether the sender address is theirs.

IGC-Santé practitioner certificates carry the national identifier as the CN
of one multi-valued RDN CN+SN+GN ("8"+RPPS or "0"+ADELI), the profession in
title, no OU; organisation certificates carry the structure identifier in OU
("1"+FINESS or "3"+SIRET). Direct certificates carry the address in an
rfc822Name SAN and usually no identifier at all.

Professional requirement: a bundle that requires a professional identifier
is satisfied by a national identifier; an organisation certificate (no
national identifier) satisfies it with its structure identifier, but only in
a bundle that allows organisation certificates, since only those bundles
accept mail signed on behalf of a structure.
"""

from __future__ import annotations

import functools
import re
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from .bundle import Bundle
from .errors import Rejection
from .names import display_name
from .reasons import Reason
from .verdict import SignerIdentity
from .x509read import UNREADABLE, extension_value

# "8" + 11-digit RPPS, or "0" + 9-character ADELI (département, which may be 2A/2B in Corsica, then 7 digits).
_NATIONAL_ID = re.compile(r"8\d{11}|0(?:\d{2}|2[AB])\d{7}")
# "1" + 9-character FINESS (Corsican ones start 2A/2B), or "3" + 14-digit SIRET.
_STRUCTURE_ID = re.compile(r"1[0-9AB]{2}\d{7}|3\d{14}")


@functools.lru_cache(maxsize=4096)
def read_identity(cert: x509.Certificate) -> SignerIdentity:
    """What the certificate says about its holder; odd certificates give empty fields, never an error.

    Memoised: the answer depends on the certificate's bytes alone (certificates
    hash and compare by their encoding), and the same signers sign most mail.
    """
    subject = _rdns(cert)
    return SignerIdentity(
        subject=_subject_text(cert),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        email=next(iter(_san_values(cert, x509.RFC822Name)), None) or _attribute(subject, NameOID.EMAIL_ADDRESS),
        national_id=_national_id(subject),
        profession=_attribute(subject, NameOID.TITLE),
        organisation_id=_organisation_id(subject),
    )


def check_address_binding(cert: x509.Certificate, sender: str, bundle: Bundle) -> None:
    """Raise Rejection(address-mismatch) unless the certificate binds the sender address.

    An rfc822Name SAN binds its own address (local part exact, domain without
    regard to case); a dNSName SAN binds every address of its domain when the
    bundle allows organisation certificates; the subject emailAddress binds
    when the bundle allows it (legacy certificates without SAN).
    """
    emails = _san_values(cert, x509.RFC822Name)
    if any(_same_address(email, sender) for email in emails):
        return
    domain = sender.rpartition("@")[2]
    dns_names = _san_values(cert, x509.DNSName)
    if bundle.allow_org_certs and any(_same_domain(name, domain) for name in dns_names):
        return
    subject_email = _attribute(_rdns(cert), NameOID.EMAIL_ADDRESS)
    if bundle.allow_subject_email and subject_email and _same_address(subject_email, sender):
        return
    raise Rejection(Reason.ADDRESS_MISMATCH, f"sender {sender} is not bound: {_bindings(emails, dns_names, subject_email, bundle)}")


def check_professional(who: SignerIdentity, bundle: Bundle) -> None:
    """Raise Rejection(not-professional) when the bundle requires an identifier and there is none."""
    if not bundle.require_professional or who.national_id:
        return
    if bundle.allow_org_certs and who.organisation_id:
        return
    wanted = "a national identifier (RPPS/ADELI)"
    if bundle.allow_org_certs:
        wanted += " or a structure identifier (FINESS/SIRET)"
    raise Rejection(Reason.NOT_PROFESSIONAL, f"signer certificate carries no {wanted}")


# Reading names and alternative names, tolerant of odd certificates


def _rdns(cert: x509.Certificate) -> tuple[x509.RelativeDistinguishedName, ...]:
    try:
        return tuple(cert.subject.rdns)
    except UNREADABLE:
        return ()


def _subject_text(cert: x509.Certificate) -> str:
    try:
        return display_name(cert.subject)
    except UNREADABLE:
        return ""


def _values(rdns: Iterable[x509.RelativeDistinguishedName], oid: x509.ObjectIdentifier) -> list[str]:
    return [attr.value for rdn in rdns for attr in rdn if attr.oid == oid and isinstance(attr.value, str)]


def _attribute(rdns: Iterable[x509.RelativeDistinguishedName], oid: x509.ObjectIdentifier) -> str | None:
    values = _values(rdns, oid)
    return (values[0].strip() or None) if values else None


def _national_id(rdns: tuple[x509.RelativeDistinguishedName, ...]) -> str | None:
    """The CN of the multi-valued CN+SN+GN RDN when shaped as RPPS/ADELI, else the subject serialNumber."""
    for rdn in rdns:
        oids = {attr.oid for attr in rdn}
        if NameOID.COMMON_NAME in oids and oids & {NameOID.SURNAME, NameOID.GIVEN_NAME}:
            for value in _values([rdn], NameOID.COMMON_NAME):
                if _NATIONAL_ID.fullmatch(value.strip()):
                    return value.strip()
    return _attribute(rdns, NameOID.SERIAL_NUMBER)


def _organisation_id(rdns: tuple[x509.RelativeDistinguishedName, ...]) -> str | None:
    for value in _values(rdns, NameOID.ORGANIZATIONAL_UNIT_NAME):
        if _STRUCTURE_ID.fullmatch(value.strip()):
            return value.strip()
    return None


def _san_values(cert: x509.Certificate, kind: type[x509.GeneralName]) -> list[str]:
    try:
        names = extension_value(cert, x509.SubjectAlternativeName)
    except UNREADABLE:
        return []
    values = names.get_values_for_type(kind) if names is not None else []  # type: ignore[arg-type]
    return [value for value in values if isinstance(value, str)]


def _same_address(bound: str, sender: str) -> bool:
    local, at, domain = bound.strip().rpartition("@")
    sender_local, _, sender_domain = sender.rpartition("@")
    return bool(at) and local == sender_local and _same_domain(domain, sender_domain)


def _same_domain(a: str, b: str) -> bool:
    return a.rstrip(".").lower() == b.rstrip(".").lower() != ""


def _bindings(emails: list[str], dns_names: list[str], subject_email: str | None, bundle: Bundle) -> str:
    parts = [f"rfc822Name {e}" for e in emails]
    parts += [f"dNSName {d}" + ("" if bundle.allow_org_certs else " (organisation certificates not allowed)") for d in dns_names]
    if subject_email:
        parts.append(f"subject emailAddress {subject_email}" + ("" if bundle.allow_subject_email else " (not allowed)"))
    return "certificate binds " + ", ".join(parts) if parts else "certificate binds no address"
