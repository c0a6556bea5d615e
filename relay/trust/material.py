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
    data = _read(path)
    try:
        if _CERT_BEGIN in data:
            return tuple(x509.load_pem_x509_certificates(data))
        return (x509.load_der_x509_certificate(data),)
    except ValueError as error:
        raise MaterialError(f"{path}: not a PEM or DER certificate ({error})") from None


def read_crls(path: Path) -> tuple[x509.CertificateRevocationList, ...]:
    """Every CRL of a PEM file (one or many) or the one of a DER file."""
    data = _read(path)
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
