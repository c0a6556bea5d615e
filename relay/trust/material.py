"""Reading certificates and CRLs from PEM or DER files."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509


class MaterialError(ValueError):
    """A certificate or CRL file that cannot be used; the message names the file."""


_CERT_BEGIN = b"-----BEGIN CERTIFICATE-----"
_CRL_BEGIN = b"-----BEGIN X509 CRL-----"


def read_certificates(path: Path) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM file (one or many) or the one of a DER file."""
    return parse_certificates(_read(path), path)


def parse_certificates(data: bytes, path: Path | str) -> tuple[x509.Certificate, ...]:
    try:
        if _CERT_BEGIN in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError as error:
        raise MaterialError(f"{path}: not a PEM or DER certificate ({error})") from None


def read_crls(path: Path) -> tuple[x509.CertificateRevocationList, ...]:
    """Every CRL of a PEM file (one or many) or the one of a DER file."""
    return parse_crls(_read(path), path)


def parse_crls(data: bytes, path: Path | str) -> tuple[x509.CertificateRevocationList, ...]:
    try:
        if _CRL_BEGIN in data:
            return tuple(_pem_blocks_as_crls(data))
        return (x509.load_der_x509_crl(data),)
    except ValueError as error:
        raise MaterialError(f"{path}: not a PEM or DER CRL ({error})") from None


def _pem_blocks_as_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    end = b"-----END X509 CRL-----"
    crls = []
    for chunk in data.split(_CRL_BEGIN)[1:]:
        body, sep, _ = chunk.partition(end)
        if not sep:
            raise ValueError("unterminated PEM block")
        crls.append(x509.load_pem_x509_crl(_CRL_BEGIN + body + end + b"\n"))
    return crls


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise MaterialError(f"{path}: {error.strerror or error}") from None


def crl_signer(
    crl: x509.CertificateRevocationList, cas: tuple[x509.Certificate, ...]
) -> x509.Certificate | None:
    """The CA among `cas` that issued and signed this CRL, if any."""
    for ca in cas:
        if ca.subject == crl.issuer and crl.is_signature_valid(ca.public_key()):
            return ca
    return None


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
