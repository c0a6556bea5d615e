"""Sign messages with real S/MIME engines, as mail clients would send them.

Each `sign_*` function takes a message (headers and body, CRLF line endings)
and a signer (a `relay.devpki.Issued` and the certificates above it), and
returns the signed message exactly as it would travel: the engine signs the
MIME entity made of the message's Content-* headers and body, and the other
header fields (From, To, Subject, Date...) stay outside the signature, as
Thunderbird, KMail or Outlook place them.

Engines: the OpenSSL CLI (`openssl cms`), GnuPG (`gpgsm`), NSS (`cmsutil`,
the engine of Thunderbird) and python `cryptography` (PKCS7SignatureBuilder).
All temporary state (key files, GnuPG home, NSS database) lives in a private
directory removed after each call.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Iterator, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from relay.core.bundle import Bundle, RevocationMode
from relay.devpki import (
    Issued,
    direct_subject,
    make_ca,
    make_crl,
    make_leaf,
    pem_bundle,
    practitioner_subject,
)

CRLF = b"\r\n"
_CONTENT_HEADERS = (b"content-", b"mime-version")
_MICALG = {"sha1": "sha-1", "sha256": "sha-256", "sha384": "sha-384", "sha512": "sha-512"}
_HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@dataclass(frozen=True)
class SigningKey:
    """A signer, the CA certificates sent with its signatures (intermediates
    first) and the root above them, which gpgsm and NSS need to know before
    they agree to sign."""

    issued: Issued
    chain: tuple[x509.Certificate, ...] = field(default=())
    anchor: x509.Certificate | None = None

    @property
    def ca_certificates(self) -> tuple[x509.Certificate, ...]:
        return self.chain + ((self.anchor,) if self.anchor is not None else ())


# --------------------------------------------------------------------------
# Messages: split into the outer header block and the entity that is signed.


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """(outer header lines, MIME entity to sign), both CRLF-terminated.

    The entity keeps the Content-* fields (a text/plain one is supplied when
    the message has none); every other field stays in the outer block.
    """
    head, sep, body = message.partition(CRLF + CRLF)
    if not sep:
        raise ValueError("message has no header/body separator (CRLF CRLF)")
    outer: list[bytes] = []
    inner: list[bytes] = []
    for field_ in _unfolded_fields(head + CRLF):
        name = field_.split(b":", 1)[0].strip().lower()
        if name == b"mime-version":
            continue  # the wrapper supplies its own
        (inner if name.startswith(_CONTENT_HEADERS) else outer).append(field_)
    if not inner:
        inner.append(b"Content-Type: text/plain; charset=utf-8\r\n")
    return b"".join(outer), b"".join(inner) + CRLF + body


def _unfolded_fields(head: bytes) -> Iterator[bytes]:
    """Header fields with their continuation lines kept attached (still folded)."""
    current = b""
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and current:
            current += line
            continue
        if current:
            yield current
        current = line
    if current:
        yield current


def text_message(
    sender: str,
    recipient: str = "secretariat@clinique.mssante.fr",
    subject: str = "Compte rendu",
    body: bytes = b"Bonjour,\r\n\r\nveuillez trouver le compte rendu.\r\n",
    extra_headers: Sequence[str] = (),
) -> bytes:
    """A small plain-text message with CRLF line endings."""
    lines = [
        f"From: {sender}",
        f"To: {recipient}",
        f"Subject: {subject}",
        "Date: Mon, 02 Jun 2025 10:00:00 +0200",
        "Message-ID: <interop-1@hopital.mssante.fr>",
        *extra_headers,
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _boundary(seed: bytes) -> str:
    # Deterministic, so that a given message always signs to the same layout.
    return "----=_Part_" + hashlib.sha256(seed).hexdigest()[:24]


def base64_lines(der: bytes, eol: bytes = CRLF) -> bytes:
    encoded = base64.b64encode(der)
    return b"".join(encoded[i : i + 76] + eol for i in range(0, len(encoded), 76))


def wrap_detached(outer: bytes, entity: bytes, signature_der: bytes, micalg: str) -> bytes:
    """multipart/signed as a mail client assembles it around a detached signature."""
    boundary = _boundary(entity + signature_der)
    return b"".join(
        [
            outer,
            b"MIME-Version: 1.0\r\n",
            (
                f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";'
                f'\r\n micalg={micalg}; boundary="{boundary}"\r\n'
            ).encode(),
            CRLF,
            b"This is a cryptographically signed message in MIME format.\r\n",
            CRLF,
            f"--{boundary}\r\n".encode(),
            entity,
            f"\r\n--{boundary}\r\n".encode(),
            b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n',
            b"Content-Transfer-Encoding: base64\r\n",
            b'Content-Disposition: attachment; filename="smime.p7s"\r\n',
            b"Content-Description: S/MIME Cryptographic Signature\r\n",
            CRLF,
            base64_lines(signature_der),
            CRLF,
            f"--{boundary}--\r\n".encode(),
        ]
    )


def wrap_opaque(outer: bytes, signature_der: bytes) -> bytes:
    """application/pkcs7-mime signed-data: the entity travels inside the signature."""
    return b"".join(
        [
            outer,
            b"MIME-Version: 1.0\r\n",
            b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n',
            b"Content-Transfer-Encoding: base64\r\n",
            b'Content-Disposition: attachment; filename="smime.p7m"\r\n',
            CRLF,
            base64_lines(signature_der),
        ]
    )


def _prepend_outer(outer: bytes, produced: bytes) -> bytes:
    return outer + produced


# --------------------------------------------------------------------------
# Running the engines.


def _run(argv: Sequence[str], *, stdin: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    result = subprocess.run(
        list(argv), input=stdin, capture_output=True, env=env, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace').strip()}"
        )
    return result.stdout


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    # Short path under /tmp: gpg-agent's socket path must fit in sun_path.
    path = Path(tempfile.mkdtemp(prefix="eng", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _write_signer(where: Path, signer: SigningKey) -> tuple[Path, Path, Path | None]:
    cert = where / "signer.pem"
    key = where / "signer.key"
    cert.write_bytes(signer.issued.cert_pem)
    key.write_bytes(signer.issued.key_pem)
    key.chmod(0o600)
    chain = None
    if signer.chain:
        chain = where / "chain.pem"
        chain.write_bytes(pem_bundle(signer.chain))
    return cert, key, chain


def sign_openssl(
    message: bytes,
    signer: SigningKey,
    *,
    md: str = "sha256",
    opaque: bool = False,
    pss_saltlen: int | None = None,
    keyid: bool = False,
    nocerts: bool = False,
    as_written: bool = False,
) -> bytes:
    """`openssl cms -sign`: its own S/MIME output (multipart/signed or, opaque, pkcs7-mime).

    By default the output is CRLF throughout, as a mail client submits it.
    `as_written` keeps the file exactly as `openssl cms -sign` (text mode)
    writes it: LF headers and base64 lines around a CRLF-canonical signed
    part, under outer header lines ending in LF.
    """
    outer, entity = split_message(message)
    with _workdir() as where:
        cert, key, chain = _write_signer(where, signer)
        (where / "entity").write_bytes(entity)
        argv = ["openssl", "cms", "-sign", "-in", str(where / "entity"), "-outform", "SMIME"]
        argv += [] if as_written else ["-binary", "-crlfeol"]
        argv += ["-signer", str(cert), "-inkey", str(key), "-md", md]
        if chain and not nocerts:
            argv += ["-certfile", str(chain)]
        if opaque:
            argv.append("-nodetach")
        if pss_saltlen is not None:
            argv += ["-keyopt", "rsa_padding_mode:pss", "-keyopt", f"rsa_pss_saltlen:{pss_saltlen}"]
        if keyid:
            argv.append("-keyid")
        if nocerts:
            argv.append("-nocerts")
        produced = _run(argv)
    if as_written:
        return outer.replace(CRLF, b"\n") + produced
    return _prepend_outer(outer, _crlf(produced))


def _crlf(text: bytes) -> bytes:
    # openssl writes its base64 lines with bare LF even under -crlfeol; a
    # mail client hands the MTA CRLF throughout.
    return text.replace(CRLF, b"\n").replace(b"\n", CRLF)


def sign_openssl_der(
    entity: bytes, *signers: SigningKey, md: str = "sha256", detached: bool = True, keyid: bool = False
) -> bytes:
    """The bare DER SignedData openssl makes over exact bytes, one SignerInfo per
    signer (for building layouts no client would send)."""
    with _workdir() as where:
        (where / "entity").write_bytes(entity)
        argv = ["openssl", "cms", "-sign", "-binary", "-in", str(where / "entity"), "-outform", "DER", "-md", md]
        for number, signer in enumerate(signers):
            place = where / str(number)
            place.mkdir()
            cert, key, chain = _write_signer(place, signer)
            argv += ["-signer", str(cert), "-inkey", str(key)]
            if chain:
                argv += ["-certfile", str(chain)]
        if not detached:
            argv.append("-nodetach")
        if keyid:
            argv.append("-keyid")
        return _run(argv)


def sign_gpgsm(message: bytes, signer: SigningKey, *, armor: bool = False, md: str = "sha256") -> bytes:
    """`gpgsm --sign --detach` in a throw-away GnuPG home, wrapped as KMail/Mutt do."""
    with GpgsmHome(signer) as home:
        return home.sign(message, armor=armor, md=md)


class GpgsmHome:
    """A GnuPG home holding one signer, for signing several messages: importing
    the key and starting gpg-agent are the slow part, so keep it while needed.

    The CA certificates are imported as certificates and the key through a
    PKCS#12 (RSA keys only: gpgsm 2.2 cannot import an EC key from PKCS#12).
    """

    def __init__(self, signer: SigningKey) -> None:
        self.signer = signer
        self.home = Path(tempfile.mkdtemp(prefix="eng", dir="/tmp"))  # short: the agent socket lives here
        self.env = {**os.environ, "GNUPGHOME": str(self.home)}
        try:
            _gpgsm_home(self.home, self.env, signer)
        except BaseException:
            self.close()
            raise

    def sign(self, message: bytes, *, armor: bool = False, md: str = "sha256") -> bytes:
        """`armor` asks gpgsm for PEM output, which the client strips to base64."""
        return _gpgsm_sign(self.home, self.env, message, self.signer, armor, md)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"], capture_output=True, check=False)
        shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> GpgsmHome:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# The PKCS#12 password, which the agent then also protects the key with.
_GPGSM_PASSWORD = b"interop"
_GPGSM = ["gpgsm", "--batch", "--pinentry-mode", "loopback", "--passphrase-fd", "0"]


def _gpgsm_home(home: Path, env: dict[str, str], signer: SigningKey) -> None:
    home.chmod(0o700)
    (home / "gpg-agent.conf").write_text("allow-loopback-pinentry\n")
    # No CRL fetching and no policy file: the signer is trusted by fiat here.
    # include-certs -2: every certificate of the chain but the root, as Thunderbird does.
    (home / "gpgsm.conf").write_text("disable-crl-checks\ndisable-policy-checks\ninclude-certs -2\n")
    if signer.ca_certificates:
        (home / "chain.pem").write_bytes(pem_bundle(signer.ca_certificates))
        _run([*_GPGSM, "--import", str(home / "chain.pem")], stdin=_GPGSM_PASSWORD + b"\n", env=env)
    _gpgsm_import_key(home, env, signer)
    _trust_roots(home, signer.ca_certificates)


def _gpgsm_import_key(home: Path, env: dict[str, str], signer: SigningKey, attempts: int = 5) -> None:
    # gpgsm 2.2 now and then misreads the decrypted key bag of a valid
    # PKCS#12 ("data error at shrouded_key_bag.decrypted-text"); a new
    # serialisation (fresh salt and IV) reads fine, so try a few.
    for attempt in range(attempts):
        (home / "signer.p12").write_bytes(_legacy_pkcs12(signer, _GPGSM_PASSWORD))
        try:
            _run([*_GPGSM, "--import", str(home / "signer.p12")], stdin=_GPGSM_PASSWORD + b"\n", env=env)
            return
        except RuntimeError:
            if attempt == attempts - 1:
                raise


def _gpgsm_sign(
    home: Path, env: dict[str, str], message: bytes, signer: SigningKey, armor: bool, md: str
) -> bytes:
    outer, entity = split_message(message)
    (home / "entity").write_bytes(entity)
    fingerprint = signer.issued.cert.fingerprint(hashes.SHA1()).hex().upper()
    argv = [*_GPGSM, "--sign", "--detach", "--local-user", fingerprint, "--digest-algo", md.upper()]
    argv += ["--armor"] if armor else []
    produced = _run([*argv, str(home / "entity")], stdin=_GPGSM_PASSWORD + b"\n", env=env)
    if armor:
        produced = base64.b64decode(b"".join(l for l in produced.splitlines() if not l.startswith(b"-----")))
    return wrap_detached(outer, entity, produced, _MICALG[md])


def _legacy_pkcs12(signer: SigningKey, password: bytes) -> bytes:
    # gpgsm 2.2 reads only the PKCS#12 PBES1 (3DES / SHA-1) encryption.
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(password)
    )
    return pkcs12.serialize_key_and_certificates(
        b"relay", signer.issued.key, signer.issued.cert, list(signer.chain) or None, encryption
    )


def _trust_roots(home: Path, chain: Sequence[x509.Certificate]) -> None:
    roots = [c for c in chain if c.issuer == c.subject]
    lines = []
    for root in roots:
        digest = root.fingerprint(hashes.SHA1()).hex().upper()
        lines.append(":".join(digest[i : i + 2] for i in range(0, len(digest), 2)) + " S relax\n")
    (home / "trustlist.txt").write_text("".join(lines))


def sign_nss(message: bytes, signer: SigningKey, *, md: str = "SHA256") -> bytes:
    """NSS `cmsutil -S -T -G -P -Y NONE` (Thunderbird's engine), wrapped as Thunderbird does."""
    outer, entity = split_message(message)
    with _workdir() as where:
        db = f"sql:{where}"
        _run(["certutil", "-N", "-d", db, "--empty-password"])
        p12 = where / "signer.p12"
        p12.write_bytes(signer.issued.pkcs12(b"interop", signer.chain))
        _run(["pk12util", "-i", str(p12), "-d", db, "-W", "interop", "-K", ""])
        for number, ca in enumerate(signer.ca_certificates):
            (where / f"ca{number}.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
            trust = "CT,C,C" if ca.issuer == ca.subject else ",,"
            _run(["certutil", "-A", "-d", db, "-n", f"ca{number}", "-t", trust, "-a", "-i", str(where / f"ca{number}.pem")])
        (where / "entity").write_bytes(entity)
        argv = ["cmsutil", "-S", "-d", db, "-N", "relay", "-T", "-G", "-P", "-Y", "NONE", "-H", md]
        der = _run([*argv, "-i", str(where / "entity")])
    return wrap_detached(outer, entity, der, _MICALG[md.lower()])


def sign_cryptography(
    message: bytes,
    signer: SigningKey,
    *,
    md: str = "sha256",
    opaque: bool = False,
    pss: bool = False,
    embedded_in_multipart: bool = False,
) -> bytes:
    """python `cryptography` PKCS7SignatureBuilder.

    Detached: its own S/MIME encoding (multipart/signed). Opaque: its DER,
    wrapped as application/pkcs7-mime, because its S/MIME encoding of a
    non-detached signature is a multipart/signed whose signature carries the
    content a second time (`embedded_in_multipart` produces that layout).
    """
    outer, entity = split_message(message)
    builder = pkcs7.PKCS7SignatureBuilder().set_data(entity)
    rsa_padding = padding.PSS(padding.MGF1(_HASHES[md]()), padding.PSS.DIGEST_LENGTH) if pss else None
    builder = builder.add_signer(signer.issued.cert, signer.issued.key, _HASHES[md](), rsa_padding=rsa_padding)
    for ca in signer.chain:
        builder = builder.add_certificate(ca)
    options = [pkcs7.PKCS7Options.Binary]
    if opaque:
        return wrap_opaque(outer, builder.sign(serialization.Encoding.DER, options))
    if not embedded_in_multipart:
        options.append(pkcs7.PKCS7Options.DetachedSignature)
    produced = builder.sign(serialization.Encoding.SMIME, options)
    return _prepend_outer(outer, _crlf(produced))


# --------------------------------------------------------------------------
# Sanity: does OpenSSL itself accept what the engines produced?


def openssl_verifies(signed: bytes, trusted: Sequence[x509.Certificate], *, at: int | None = None) -> bool:
    """`openssl cms -verify` with anchors and intermediates in -CAfile (OpenSSL 3.0
    does not build chains from -certfile); `at` is a Unix time for -attime."""
    with _workdir() as where:
        (where / "msg").write_bytes(signed)
        (where / "ca.pem").write_bytes(pem_bundle(trusted))
        argv = ["openssl", "cms", "-verify", "-in", str(where / "msg"), "-CAfile", str(where / "ca.pem")]
        argv += ["-purpose", "any", "-out", os.devnull]
        if at is not None:
            argv += ["-attime", str(at)]
        result = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        return result.returncode == 0


# --------------------------------------------------------------------------
# A test PKI in the IGC-Santé layout: root -> intermediate -> signers.

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DEFAULT_START = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
ONE_DAY = dt.timedelta(days=1)
DOCTOR = "jean.dupont@medecin.mssante.fr"
DOCTOR_ID = "810001234567"


@dataclass(frozen=True)
class Pki:
    root: Issued
    intermediate: Issued
    signers: Mapping[str, SigningKey]  # by name, see build_pki
    crls: tuple[x509.CertificateRevocationList, ...]  # root's (for the intermediate) and the intermediate's
    foreign_root: Issued  # an anchor nobody trusts

    @property
    def trusted(self) -> tuple[x509.Certificate, ...]:
        return (self.root.cert, self.intermediate.cert)


def build_pki() -> Pki:
    """Every signer the interoperability tests need; names say what is odd about them.

    All valid 2025-01-01 .. 2035-01-01 unless named otherwise; "revoked" is on
    the intermediate's CRL.
    """
    root = make_ca("IGC-SANTE TEST ROOT")
    inter = make_ca("IGC-SANTE TEST PERSONNES", root)
    foreign_root = make_ca("ELSEWHERE ROOT", organisation="Elsewhere")
    foreign_inter = make_ca("ELSEWHERE PERSONNES", foreign_root, organisation="Elsewhere")
    chain = (inter.cert,)

    def doctor(national_id: str = DOCTOR_ID, email: str = DOCTOR, **options: object) -> Issued:
        issuer = options.pop("issuer", inter)
        subject = practitioner_subject(national_id, "DUPONT", "Jean")
        return make_leaf(issuer, subject, emails=[email], **options)  # type: ignore[arg-type]

    revoked = doctor(serial=0x5EED)
    signers = {
        "rsa": doctor(),
        "p256": doctor(key_kind="p256"),
        "p384": doctor(key_kind="p384"),
        "rsa1024": doctor(key_kind="rsa1024"),
        "expired": doctor(not_after=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)),
        "not-yet-valid": doctor(not_before=dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)),
        "revoked": revoked,
        "encrypt-only": doctor(key_usage="encrypt"),
        "no-policy": doctor(policies=()),
        "foreign": doctor(issuer=foreign_inter),
        "direct": make_leaf(inter, direct_subject("Jean Dupont"), emails=[DOCTOR]),
    }
    keys = {
        name: SigningKey(issued, (foreign_inter.cert,), foreign_root.cert)
        if name == "foreign"
        else SigningKey(issued, chain, root.cert)
        for name, issued in signers.items()
    }
    crls = (make_crl(root), make_crl(inter, [revoked.cert.serial_number]))
    return Pki(root, inter, MappingProxyType(keys), crls, foreign_root)


def bundle_for(pki: Pki, **options: object) -> Bundle:
    """The IGC-Santé signer bundle over this PKI, hard revocation, overridable."""
    settings: dict[str, object] = {
        "name": "igc-sante-test",
        "anchors": (pki.root.cert,),
        "intermediates": (pki.intermediate.cert,),
        "crls": pki.crls,
        "revocation": RevocationMode.HARD,
    }
    settings.update(options)
    return Bundle(**settings)  # type: ignore[arg-type]
