"""Genuine output of real signing engines (openssl cms, gpgsm), saved as files, is read right.

Each engine signs at test time with a certificate from relay.devpki; the
bytes located by the module are then checked against the signature itself
(the messageDigest attribute, and the engine's own verification).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from relay import devpki
from relay.core.errors import Rejection
from relay.core.limits import DEFAULT_LIMITS
from relay.core.mime import Mailbox, check_signed_content, locate_signature
from relay.core.reasons import Reason

SENDER = "jean.dupont@hopital.mssante.fr"
CONTENT_LF = (
    b"Content-Type: multipart/mixed; boundary=\"inner\"\n\n"
    b"--inner\nContent-Type: text/plain; charset=utf-8\n\nCompte rendu\nligne 2\n"
    b"--inner\nContent-Type: application/pdf; name=cr.pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK\n"
    b"--inner--\n"
)
CONTENT_CRLF = CONTENT_LF.replace(b"\n", b"\r\n")


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: Path
    cert: Path
    key: Path
    issued: devpki.Issued


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("engines")
    ca = devpki.make_ca("Test AC IGC-Sante")
    leaf = devpki.make_leaf(ca, devpki.practitioner_subject("899700367917", "DUPONT", "Jean"), emails=[SENDER])
    paths = Pki(directory, directory / "ca.pem", directory / "leaf.pem", directory / "leaf.key", leaf)
    paths.ca.write_bytes(ca.cert_pem)
    paths.cert.write_bytes(leaf.cert_pem)
    paths.key.write_bytes(leaf.key_pem)
    return paths


def signed_digest(der: bytes) -> bytes:
    signed_data = asn1_cms.ContentInfo.load(der)["content"]
    attributes = signed_data["signer_infos"][0]["signed_attrs"]
    return next(a["values"][0].native for a in attributes if a["type"].native == "message_digest")


def econtent(der: bytes) -> bytes:
    return asn1_cms.ContentInfo.load(der)["content"]["encap_content_info"]["content"].native


def run(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, env=env, timeout=60)


# --- openssl cms -sign ------------------------------------------------------------

OPENSSL_MODES = [(), ("-crlfeol",), ("-binary",), ("-crlfeol", "-binary")]


def openssl_sign(pki: Pki, content: bytes, *options: str) -> bytes:
    source = pki.directory / "content.txt"
    source.write_bytes(content)
    result = run(
        "openssl", "cms", "-sign", "-in", str(source), "-signer", str(pki.cert), "-inkey", str(pki.key),
        "-from", f"Jean Dupont <{SENDER}>", "-to", "dest@clinique.mssante.fr", "-subject", "CR", *options,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def openssl_verifies(pki: Pki, der: bytes, content: bytes) -> bool:
    (pki.directory / "sig.der").write_bytes(der)
    (pki.directory / "content.bin").write_bytes(content)
    result = run(
        "openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(pki.directory / "sig.der"),
        "-content", str(pki.directory / "content.bin"), "-CAfile", str(pki.ca), "-purpose", "any", "-out", os.devnull,
    )
    return result.returncode == 0


@pytest.mark.parametrize("options", OPENSSL_MODES, ids=lambda o: " ".join(o) or "default")
@pytest.mark.parametrize("content", [CONTENT_LF, CONTENT_CRLF], ids=["lf-input", "crlf-input"])
def test_openssl_detached_output_is_located_exactly(pki: Pki, content: bytes, options: tuple[str, ...]) -> None:
    raw = openssl_sign(pki, content, *options)
    signed = locate_signature(raw, DEFAULT_LIMITS)
    assert signed.sender == Mailbox("jean.dupont", "hopital.mssante.fr", "Jean Dupont")
    assert signed.detached_content is not None
    check_signed_content(signed.detached_content, signed.sender, DEFAULT_LIMITS)
    matches = hashlib.sha256(signed.detached_content).digest() == signed_digest(signed.signature)
    if "-binary" in options and b"\r" not in raw:
        # -binary signs LF lines as given and writes an LF-only file: RFC 8551
        # canonicalisation makes it CRLF, so it cannot match (openssl's own
        # text-mode verification refuses it too).
        assert not matches
        assert signed.detached_content == CONTENT_CRLF
    else:
        assert matches
        assert openssl_verifies(pki, signed.signature, signed.detached_content)


@pytest.mark.parametrize("options", OPENSSL_MODES, ids=lambda o: " ".join(o) or "default")
@pytest.mark.parametrize("content", [CONTENT_LF, CONTENT_CRLF], ids=["lf-input", "crlf-input"])
def test_openssl_opaque_output_is_located(pki: Pki, content: bytes, options: tuple[str, ...]) -> None:
    raw = openssl_sign(pki, content, "-nodetach", *options)
    signed = locate_signature(raw, DEFAULT_LIMITS)
    assert signed.detached_content is None
    assert signed.sender.address == SENDER
    inner = econtent(signed.signature)
    assert inner.replace(b"\r\n", b"\n") == CONTENT_LF
    check_signed_content(inner, signed.sender, DEFAULT_LIMITS)


def test_openssl_output_with_a_tampered_boundary_line_is_refused(pki: Pki) -> None:
    raw = openssl_sign(pki, CONTENT_CRLF)
    match = re.search(rb'boundary="([^"]+)"', raw)
    assert match is not None
    delimiter = b"--" + match.group(1)
    # One delimiter line of the LF frame now ends its preceding line with CRLF.
    tampered = raw.replace(b"\n" + delimiter + b"\n", b"\r\n" + delimiter + b"\n", 1)
    assert tampered != raw
    with pytest.raises(Rejection) as caught:
        locate_signature(tampered, DEFAULT_LIMITS)
    assert caught.value.reason is Reason.MALFORMED


def test_opaque_smime_type_missing_is_read_as_signed_data(pki: Pki) -> None:
    raw = openssl_sign(pki, CONTENT_CRLF, "-nodetach").replace(b" smime-type=signed-data;", b"")
    assert b"smime-type" not in raw
    assert locate_signature(raw, DEFAULT_LIMITS).detached_content is None


def test_enveloped_data_without_smime_type_is_unsigned(pki: Pki) -> None:
    source = pki.directory / "plain.txt"
    source.write_bytes(CONTENT_CRLF)
    result = run("openssl", "cms", "-encrypt", "-in", str(source), "-from", SENDER, "-aes256", str(pki.cert))
    assert result.returncode == 0, result.stderr
    assert b"smime-type=enveloped-data" in result.stdout
    with pytest.raises(Rejection) as typed:
        locate_signature(result.stdout, DEFAULT_LIMITS)
    assert typed.value.reason is Reason.UNSIGNED
    untyped = result.stdout.replace(b" smime-type=enveloped-data;", b"")
    with pytest.raises(Rejection) as caught:
        locate_signature(untyped, DEFAULT_LIMITS)
    assert caught.value.reason is Reason.UNSIGNED
    assert "encrypted" in caught.value.detail


# --- gpgsm --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gpgsm_env(pki: Pki) -> Iterator[dict[str, str]]:
    home = pki.directory / "gnupg"
    home.mkdir(mode=0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    env = {**os.environ, "GNUPGHOME": str(home)}
    # gpgsm reads only legacy PKCS#12 encryption.
    p12 = pki.directory / "leaf.p12"
    exported = run(
        "openssl", "pkcs12", "-export", "-legacy", "-in", str(pki.cert), "-inkey", str(pki.key),
        "-passout", "pass:x", "-out", str(p12),
    )
    assert exported.returncode == 0, exported.stderr
    for args in (["--import", str(pki.ca)], ["--pinentry-mode", "loopback", "--passphrase-fd", "0", "--import", str(p12)]):
        imported = run("gpgsm", "--batch", *args, stdin=b"x\n", env=env)
        assert imported.returncode == 0, imported.stderr
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    (home / "trustlist.txt").write_text(f"{ca.fingerprint(hashes.SHA1()).hex().upper()} S relax\n")
    yield env
    run("gpgconf", "--kill", "gpg-agent", env=env)


def gpgsm_sign_file(env: dict[str, str], directory: Path, content: bytes, *mode: str) -> bytes:
    source = directory / "gpgsm-content"
    source.write_bytes(content)
    result = run(
        "gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0", "--disable-policy-checks",
        "--disable-crl-checks", "--base64", *mode, "-o", "-", str(source),
        stdin=b"x\n", env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def wrap_opaque(base64_lines: bytes, eol: bytes) -> bytes:
    """How a mail client wraps gpgsm's output: its headers, gpgsm's base64 lines (LF) untouched."""
    head = (
        f"From: Jean Dupont <{SENDER}>\nTo: dest@clinique.mssante.fr\nSubject: CR\nMIME-Version: 1.0\n"
        "Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\n"
        "Content-Transfer-Encoding: base64\n\n"
    ).encode()
    return head.replace(b"\n", eol) + base64_lines


@pytest.mark.parametrize("content", [CONTENT_LF, CONTENT_CRLF], ids=["lf-input", "crlf-input"])
def test_gpgsm_opaque_signature_is_located(pki: Pki, gpgsm_env: dict[str, str], content: bytes) -> None:
    output = gpgsm_sign_file(gpgsm_env, pki.directory, content, "--sign")
    assert b"\r" not in output  # gpgsm writes base64 lines with LF
    for eol in (b"\n", b"\r\n"):  # a client writing its headers either way
        signed = locate_signature(wrap_opaque(output, eol), DEFAULT_LIMITS)
        assert econtent(signed.signature) == content  # gpgsm signs the input byte for byte
        check_signed_content(econtent(signed.signature), signed.sender, DEFAULT_LIMITS)


def test_gpgsm_detached_signature_verifies_over_the_located_bytes(pki: Pki, gpgsm_env: dict[str, str]) -> None:
    signature = gpgsm_sign_file(gpgsm_env, pki.directory, CONTENT_CRLF, "--detach-sign")
    raw = (
        f"From: {SENDER}\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="gb"\r\n\r\n'
    ).encode() + b"--gb\r\n" + CONTENT_CRLF + b"\r\n--gb\r\n" + (
        b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    ) + signature + b"\r\n--gb--\r\n"
    signed = locate_signature(raw, DEFAULT_LIMITS)
    assert signed.detached_content == CONTENT_CRLF
    (pki.directory / "g.p7s").write_bytes(signed.signature)
    (pki.directory / "g.content").write_bytes(signed.detached_content)
    verified = run(
        "gpgsm", "--batch", "--disable-crl-checks", "--disable-policy-checks", "--verify",
        str(pki.directory / "g.p7s"), str(pki.directory / "g.content"), env=gpgsm_env,
    )
    assert verified.returncode == 0, verified.stderr
    assert b"Good signature" in verified.stderr
