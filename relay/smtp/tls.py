"""TLS contexts: TLS 1.2+ only, and for TLS 1.2 only ECDHE with AES-GCM or AES-CBC-SHA256/384.

The TLS 1.2 list is the MSSanté client profile (Référentiel #2) plus its
ECDSA twins; TLS 1.3 suites are all AEAD and left to OpenSSL.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import serialization

TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-RSA-AES128-SHA256",
    ]
)


def _harden(context: ssl.SSLContext) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    return context


def server_context(
    certificate: Path, key: Path, client_anchors: Iterable[x509.Certificate] = ()
) -> ssl.SSLContext:
    """A listener's context; with anchors, a client certificate is requested (not required).

    The certificate is only requested: whether a peer without one may go on
    is a policy decision taken at MAIL FROM, with a precise reply.
    """
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    context.load_cert_chain(certificate, key)
    anchors = _pem(client_anchors)
    if anchors:
        context.load_verify_locations(cadata=anchors)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def client_context(anchors: Iterable[x509.Certificate] | None, check_hostname: bool) -> ssl.SSLContext:
    """Outgoing delivery: verified against the given anchors (None: the system store)."""
    context = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    if anchors is None:
        context.load_default_certs()
    else:
        pem = _pem(anchors)
        if pem:
            context.load_verify_locations(cadata=pem)
    context.check_hostname = check_hostname
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _pem(certs: Iterable[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
