"""CMS SignedData verification against signatures made by real engines: openssl and cryptography."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.serialization import pkcs7

from relay import devpki
from relay.core.cms import verify_signed_data
from relay.core.errors import Rejection
from relay.core.reasons import Reason

CONTENT = (
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + "Compte rendu de consultation, résultats joints.\r\n".encode() * 40
)


class Pki:
    def __init__(self) -> None:
        self.root = devpki.make_ca("IGC-SANTE TEST ROOT")
        self.ca = devpki.make_ca("IGC-SANTE TEST PERSONNES", self.root)
        self.keys: dict[str, devpki.Issued] = {}

    def leaf(self, kind: str) -> devpki.Issued:
        if kind not in self.keys:
            key = ec.generate_private_key(ec.SECP256K1()) if kind == "k256" else devpki.new_key(kind)
            subject = devpki.practitioner_subject("899700367917", "DUPONT", "Jean")
            self.keys[kind] = devpki.make_leaf(self.ca, subject, emails=["jean.dupont@test.mssante.fr"], key=key)
        return self.keys[kind]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def openssl_sign(tmp_path: Path, signer: devpki.Issued, content: bytes, *options: str) -> bytes:
    (tmp_path / "signer.pem").write_bytes(signer.cert_pem)
    (tmp_path / "signer.key").write_bytes(signer.key_pem)
    (tmp_path / "content").write_bytes(content)
    subprocess.run(
        ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-in", str(tmp_path / "content"),
         "-signer", str(tmp_path / "signer.pem"), "-inkey", str(tmp_path / "signer.key"),
         "-out", str(tmp_path / "sig.der"), *options],
        check=True, capture_output=True,
    )
    return (tmp_path / "sig.der").read_bytes()


def rejection(der: bytes, detached: bytes | None) -> Rejection:
    with pytest.raises(Rejection) as caught:
        verify_signed_data(der, detached)
    return caught.value


@pytest.mark.parametrize(
    ("kind", "options", "digest", "scheme"),
    [
        ("rsa2048", (), "sha256", "rsassa_pkcs1v15"),
        ("rsa2048", ("-md", "sha384"), "sha384", "rsassa_pkcs1v15"),
        ("rsa3072", ("-md", "sha512"), "sha512", "rsassa_pkcs1v15"),
        ("rsa2048", ("-keyopt", "rsa_padding_mode:pss"), "sha256", "rsassa_pss"),
        ("rsa2048", ("-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:0"), "sha256", "rsassa_pss"),
        ("rsa2048", ("-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:20"), "sha256", "rsassa_pss"),
        ("rsa2048", ("-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:max"), "sha256", "rsassa_pss"),
        ("rsa2048", ("-md", "sha512", "-keyopt", "rsa_padding_mode:pss", "-keyopt", "rsa_pss_saltlen:64"), "sha512", "rsassa_pss"),
        ("p256", (), "sha256", "ecdsa"),
        ("p384", ("-md", "sha384"), "sha384", "ecdsa"),
        ("rsa2048", ("-keyid",), "sha256", "rsassa_pkcs1v15"),
        ("p256", ("-keyid",), "sha256", "ecdsa"),
    ],
)
def test_openssl_detached_signatures_verify(pki: Pki, tmp_path: Path, kind: str, options: tuple[str, ...], digest: str, scheme: str) -> None:
    signer = pki.leaf(kind)
    der = openssl_sign(tmp_path, signer, CONTENT, "-certfile", str(_write_ca(tmp_path, pki)), *options)
    data = verify_signed_data(der, CONTENT)
    assert data.content is CONTENT
    [found] = data.signers
    assert found.certificate == signer.cert
    assert (found.digest_algorithm, found.signature_algorithm) == (digest, scheme)
    assert found.signing_time is not None  # openssl adds signingTime by default
    assert set(data.certificates) == {signer.cert, pki.ca.cert}  # a SET OF: openssl sorts it
    assert rejection(der, CONTENT.replace(b"joints", b"joint!")).reason is Reason.SIGNATURE_INVALID


def _write_ca(tmp_path: Path, pki: Pki) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(pki.ca.cert_pem)
    return path


@pytest.mark.parametrize("options", [("-nodetach",), ("-nodetach", "-stream"), ("-nodetach", "-noattr")])
def test_openssl_opaque_signatures_return_the_econtent(pki: Pki, tmp_path: Path, options: tuple[str, ...]) -> None:
    content = CONTENT * 50  # large enough for -stream to cut the eContent into several chunks
    der = openssl_sign(tmp_path, pki.leaf("rsa2048"), content, *options)
    assert content not in der or "-stream" not in options  # streamed: chunked, not contiguous
    assert verify_signed_data(der, None).content == content


def test_streamed_econtent_is_indefinite_length_ber(pki: Pki, tmp_path: Path) -> None:
    der = openssl_sign(tmp_path, pki.leaf("rsa2048"), CONTENT * 50, "-nodetach", "-stream")
    assert der[1] == 0x80  # indefinite-length outer ContentInfo
    assert verify_signed_data(der, None).content == CONTENT * 50


def test_signature_without_attributes_covers_the_content(pki: Pki, tmp_path: Path) -> None:
    der = openssl_sign(tmp_path, pki.leaf("p256"), CONTENT, "-noattr")
    [found] = verify_signed_data(der, CONTENT).signers
    assert found.signing_time is None
    assert rejection(der, CONTENT + b"\r\n").reason is Reason.SIGNATURE_INVALID


@pytest.mark.parametrize(
    ("kind", "options", "weakness"),
    [
        ("rsa2048", ("-md", "sha1"), "sha1 digest"),
        ("rsa2048", ("-md", "md5"), "md5 digest"),
        ("rsa1024", (), "RSA key of 1024 bits"),
        ("rsa1024", ("-md", "sha1"), "sha1 digest"),
        ("k256", (), "elliptic curve secp256k1"),
        ("rsa2048", ("-keyopt", "rsa_padding_mode:pss", "-md", "sha1"), "sha1 digest"),
    ],
)
def test_weak_algorithms_are_refused_once_verified(pki: Pki, tmp_path: Path, kind: str, options: tuple[str, ...], weakness: str) -> None:
    der = openssl_sign(tmp_path, pki.leaf(kind), CONTENT, *options)
    refusal = rejection(der, CONTENT)
    assert refusal.reason is Reason.WEAK_ALGORITHM
    assert weakness in refusal.detail
    # A weak signature that does not verify is reported as invalid, not weak.
    assert rejection(der, CONTENT[:-1]).reason is Reason.SIGNATURE_INVALID


def test_signer_certificate_absent_from_the_set(pki: Pki, tmp_path: Path) -> None:
    der = openssl_sign(tmp_path, pki.leaf("rsa2048"), CONTENT, "-nocerts")
    refusal = rejection(der, CONTENT)
    assert refusal.reason is Reason.SIGNER_UNKNOWN
    assert "serial" in refusal.detail


def test_ski_signer_absent_from_the_set(pki: Pki, tmp_path: Path) -> None:
    der = openssl_sign(tmp_path, pki.leaf("rsa2048"), CONTENT, "-nocerts", "-keyid")
    refusal = rejection(der, CONTENT)
    assert refusal.reason is Reason.SIGNER_UNKNOWN
    assert "subjectKeyIdentifier" in refusal.detail


def _builder(signer: devpki.Issued, content: bytes, **kwargs: object) -> pkcs7.PKCS7SignatureBuilder:
    return pkcs7.PKCS7SignatureBuilder().set_data(content).add_signer(signer.cert, signer.key, hashes.SHA256(), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("detached", [True, False])
@pytest.mark.parametrize("kind", ["rsa2048", "p384"])
def test_cryptography_pkcs7_builder_signatures_verify(pki: Pki, kind: str, detached: bool) -> None:
    signer = pki.leaf(kind)
    options = [pkcs7.PKCS7Options.Binary] + ([pkcs7.PKCS7Options.DetachedSignature] if detached else [])
    der = _builder(signer, CONTENT).sign(serialization.Encoding.DER, options)
    data = verify_signed_data(der, CONTENT if detached else None)
    assert data.content == CONTENT
    assert data.signers[0].certificate == signer.cert
    if not detached:
        assert rejection(der, CONTENT).reason is Reason.MALFORMED  # eContent beside detached content


def test_cryptography_pkcs7_builder_pss(pki: Pki) -> None:
    signer = pki.leaf("rsa2048")
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    der = _builder(signer, CONTENT, rsa_padding=pss).sign(
        serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.DetachedSignature]
    )
    assert verify_signed_data(der, CONTENT).signers[0].signature_algorithm == "rsassa_pss"


@pytest.mark.parametrize(
    ("kind", "scheme", "expected"),
    [("rsa2048", "rsa-pkcs1v15", "rsassa_pkcs1v15"), ("rsa2048", "rsa-pss", "rsassa_pss"), ("p256", "ecdsa", "ecdsa")],
)
def test_the_relays_own_signatures_verify(pki: Pki, kind: str, scheme: str, expected: str) -> None:
    import datetime as dt

    from relay.core import smime_sign

    signer = pki.leaf(kind)

    def sign(data: bytes) -> bytes:
        if expected == "ecdsa":
            return signer.key.sign(data, ec.ECDSA(hashes.SHA256()))  # type: ignore[call-arg,union-attr]
        pad = padding.PKCS1v15() if expected == "rsassa_pkcs1v15" else padding.PSS(padding.MGF1(hashes.SHA256()), 32)
        return signer.key.sign(data, pad, hashes.SHA256())  # type: ignore[call-arg,union-attr]

    when = dt.datetime(2026, 5, 4, 3, 2, 1, tzinfo=dt.timezone.utc)
    key = smime_sign.SigningKey(signer.cert, (pki.ca.cert,), smime_sign.SignatureScheme(scheme), sign)
    data = verify_signed_data(smime_sign.build_signed_data(CONTENT, key, when), CONTENT)
    assert (data.signers[0].certificate, data.signers[0].signature_algorithm, data.signers[0].signing_time) == (signer.cert, expected, when)
    assert set(data.certificates) == {signer.cert, pki.ca.cert}
