"""Reading fields of certificates and CRLs that may be malformed.

`cryptography` parses extensions lazily: a duplicated or badly encoded
extension surfaces only when `.extensions` is first read, as one of
UNREADABLE. The verification steps catch exactly these and turn them into
their own reason, so that an odd certificate never escapes as an exception.
"""

from __future__ import annotations

from typing import TypeVar

from cryptography import x509

UNREADABLE: tuple[type[Exception], ...] = (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType)

_E = TypeVar("_E", bound=x509.ExtensionType)


def extension_value(holder: x509.Certificate | x509.CertificateRevocationList, kind: type[_E]) -> _E | None:
    """The value of the holder's extension of this kind, None when absent; raises one of UNREADABLE."""
    try:
        return holder.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def key_identifier(cert: x509.Certificate) -> bytes | None:
    """The subjectKeyIdentifier, None when absent or unreadable."""
    try:
        ski = extension_value(cert, x509.SubjectKeyIdentifier)
    except UNREADABLE:
        return None
    return ski.digest if ski is not None else None


def authority_key_identifier(holder: x509.Certificate | x509.CertificateRevocationList) -> bytes | None:
    """The keyIdentifier of the authorityKeyIdentifier, None when absent or unreadable."""
    try:
        aki = extension_value(holder, x509.AuthorityKeyIdentifier)
    except UNREADABLE:
        return None
    return aki.key_identifier if aki is not None else None
