"""Shared material for the encryption, DKIM and MDN tests: a small PKI at fixed dates, keys, runners."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from relay import devpki
from relay.core.smime_decrypt import DecryptionKey
from relay.keys import decrypt as keys_decrypt
from tests.keys.keys_support import sample_message

NOW = dt.datetime(2026, 6, 1, 9, 30, tzinfo=dt.timezone.utc)
SENDER = "secretariat.cardio@hopital-test.mssante.fr"
RECIPIENT = "martin@medecin.mssante.fr"

MESSAGE = sample_message(SENDER, RECIPIENT)


@dataclass(frozen=True)
class CryptPki:
    root: devpki.Issued
    ca: devpki.Issued
    sender: devpki.Issued  # signs
    recipient: devpki.Issued  # decrypts (keyEncipherment)
    other: devpki.Issued  # a second recipient
    files: Path  # PEM files of the above, for openssl


def software_decryption_key(issued: devpki.Issued) -> DecryptionKey:
    assert isinstance(issued.key, rsa.RSAPrivateKey)
    return keys_decrypt.software_decryption_key(issued.key, issued.cert)


@pytest.fixture(scope="session")
def crypt_pki(tmp_path_factory: pytest.TempPathFactory) -> CryptPki:
    root = devpki.make_ca("IGC-SANTE TEST ROOT")
    ca = devpki.make_ca("IGC-SANTE TEST ORGANISATIONS", root)
    org = devpki.organisation_subject("hopital-test.mssante.fr", "1750000001", "CH DE TEST")
    sender = devpki.make_leaf(ca, org, emails=[SENDER])
    doctor = devpki.practitioner_subject("899700367917", "MARTIN", "PAUL")
    recipient = devpki.make_leaf(ca, doctor, emails=[RECIPIENT], key_usage="encrypt")
    other = devpki.make_leaf(ca, doctor, emails=["autre@medecin.mssante.fr"], key_usage="encrypt")
    files = tmp_path_factory.mktemp("crypt-pki")
    for name, issued in (("sender", sender), ("recipient", recipient), ("other", other)):
        (files / f"{name}.pem").write_bytes(issued.cert_pem)
        (files / f"{name}.key").write_bytes(issued.key_pem)
    (files / "ca.pem").write_bytes(devpki.pem_bundle([root.cert, ca.cert]))
    return CryptPki(root, ca, sender, recipient, other, files)


def break_mac(message: bytes, mask: int = 0x01, *, eol: bytes = b"\r\n") -> bytes:
    """The S/MIME envelope with `mask` flipped in the last byte of its DER (the MAC / GCM tag),
    base64 lines rewritten with `eol`; the body follows the first blank line (eol eol)."""
    head, _, body = message.partition(eol + eol)
    der = bytearray(base64.b64decode(body))
    der[-1] ^= mask
    return head + eol + eol + base64.encodebytes(bytes(der)).replace(b"\n", eol)


def openssl(*args: str, data: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, timeout=60)
