"""Messages as each engine's mail client sends them (tests/engines.py) are located exactly.

OpenSSL, gpgsm (KMail/Mutt layout), NSS cmsutil (Thunderbird layout) and
python cryptography sign; the located content must be what the signature's
messageDigest covers, and the signed content must pass the strict reading.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Callable

import pytest
from asn1crypto import cms as asn1_cms
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from relay import devpki
from relay.core import smime_sign
from relay.core.limits import DEFAULT_LIMITS
from relay.core.mime import check_signed_content, locate_signature
from tests import engines

SENDER = "jean.dupont@medecin.mssante.fr"


@pytest.fixture(scope="module")
def signer() -> engines.SigningKey:
    root = devpki.make_ca("IGC-SANTE TEST ROOT")
    leaf = devpki.make_leaf(root, devpki.practitioner_subject("810000000001", "DUPONT", "Jean"), emails=[SENDER])
    return engines.SigningKey(leaf, (), root.cert)


def digest_and_content(der: bytes) -> tuple[bytes, bytes | None]:
    signed_data = asn1_cms.ContentInfo.load(der)["content"]
    attributes = signed_data["signer_infos"][0]["signed_attrs"]
    digest = next(a["values"][0].native for a in attributes if a["type"].native == "message_digest")
    return digest, signed_data["encap_content_info"]["content"].native


Engine = Callable[[bytes, engines.SigningKey], bytes]
ENGINES: dict[str, Engine] = {
    "openssl-detached": lambda m, s: engines.sign_openssl(m, s),
    "openssl-opaque": lambda m, s: engines.sign_openssl(m, s, opaque=True),
    "gpgsm": lambda m, s: engines.sign_gpgsm(m, s),
    "nss": lambda m, s: engines.sign_nss(m, s),
    # cryptography's S/MIME encoding is multipart/signed even when asked not to detach.
    "cryptography": lambda m, s: engines.sign_cryptography(m, s),
}


def multipart_message() -> bytes:
    outer, _ = engines.split_message(engines.text_message(f"Dr Jean Dupont <{SENDER}>"))
    return outer + (
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="cr"\r\n\r\n'
        b"--cr\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBonjour,\r\n\r\nci-joint le compte rendu.\r\n"
        b'--cr\r\nContent-Type: application/pdf; name="cr.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n'
        b"--cr--\r\n"
    )


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize("make", [lambda: engines.text_message(f"Dr Jean Dupont <{SENDER}>"), multipart_message], ids=["text", "multipart"])
def test_engine_output_is_located_exactly(name: str, make: Callable[[], bytes], signer: engines.SigningKey) -> None:
    signed_message = ENGINES[name](make(), signer)
    signed = locate_signature(signed_message, DEFAULT_LIMITS)
    assert signed.sender.address == SENDER
    digest, encapsulated = digest_and_content(signed.signature)
    content = signed.detached_content if signed.detached_content is not None else encapsulated
    assert content is not None
    assert (signed.detached_content is None) == name.endswith("opaque")
    assert hashlib.sha256(content).digest() == digest
    check_signed_content(content, signed.sender, DEFAULT_LIMITS)
    # LF-only on disk reads the same (RFC 8551 canonicalisation).
    assert locate_signature(signed_message.replace(b"\r\n", b"\n"), DEFAULT_LIMITS) == signed


@pytest.mark.parametrize("make", [lambda: engines.text_message(f"Dr Jean Dupont <{SENDER}>"), multipart_message], ids=["text", "multipart"])
def test_the_relays_own_signatures_are_located_exactly(make: Callable[[], bytes], signer: engines.SigningKey) -> None:
    private_key = signer.issued.key
    assert isinstance(private_key, rsa.RSAPrivateKey)
    key = smime_sign.SigningKey(
        signer.issued.cert, (), smime_sign.SignatureScheme.RSA_PKCS1V15,
        lambda data: private_key.sign(data, padding.PKCS1v15(), hashes.SHA256()),
    )
    signed_message = smime_sign.sign_message(make(), key, dt.datetime(2026, 6, 1, tzinfo=dt.timezone.utc))
    signed = locate_signature(signed_message, DEFAULT_LIMITS)
    assert signed.detached_content is not None
    assert hashlib.sha256(signed.detached_content).digest() == digest_and_content(signed.signature)[0]
    check_signed_content(signed.detached_content, signed.sender, DEFAULT_LIMITS)
