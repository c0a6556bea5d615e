"""A small issuing authority for demos and tests, in the IGC-Santé and Direct layouts.

Never used for real trust: keys are generated in memory, dates are chosen by
the caller so that tests are reproducible.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IGC_SANTE_TEST_POLICY = "1.2.250.1.213.1.7.2.1.1.1.1"
DEFAULT_NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)
DEFAULT_NOT_AFTER = dt.datetime(2035, 1, 1, tzinfo=dt.timezone.utc)

_B = TypeVar("_B", x509.CertificateBuilder, x509.CertificateRevocationListBuilder)
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_key(kind: str = "rsa2048") -> PrivateKey:
    """kind: rsa1024, rsa2048, rsa3072, rsa4096, p256, p384, ed25519."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def pkcs12(self, password: bytes | None, chain: Sequence[x509.Certificate] = ()) -> bytes:
        enc = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            b"relay", self.key, self.cert, list(chain) or None, enc
        )


def load_issued(folder: Path, name: str) -> Issued:
    """The certificate `name`.pem and its unencrypted key `name`.key from `folder`."""
    cert = x509.load_pem_x509_certificate((folder / f"{name}.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / f"{name}.key").read_bytes(), password=None)
    return Issued(cert, key)  # type: ignore[arg-type]


def pem_bundle(certs: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([x509.RelativeDistinguishedName([x509.NameAttribute(o, v)]) for o, v in pairs])


def _sign_hash(hash_name: str) -> hashes.HashAlgorithm | None:
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(), "sha1": hashes.SHA1(), "md5": hashes.MD5()}[hash_name]


def _builder(
    subject: x509.Name,
    issuer: Issued | None,
    key: PrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial: int | None,
) -> x509.CertificateBuilder:
    issuer_name = issuer.cert.subject if issuer else subject
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    signer_key = issuer.key if issuer else key
    b = b.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False
    )
    return b


def _finish(b: x509.CertificateBuilder, issuer: Issued | None, key: PrivateKey, hash_name: str) -> x509.Certificate:
    signer_key = issuer.key if issuer else key
    algorithm = None if isinstance(signer_key, ed25519.Ed25519PrivateKey) else _sign_hash(hash_name)
    return b.sign(signer_key, algorithm)


def make_ca(
    common_name: str,
    issuer: Issued | None = None,
    *,
    key_kind: str = "rsa2048",
    organisation: str = "ASIP-SANTE",
    not_before: dt.datetime = DEFAULT_NOT_BEFORE,
    not_after: dt.datetime = DEFAULT_NOT_AFTER,
    path_length: int | None = None,
    crl_url: str | None = None,
    hash_name: str = "sha256",
    ca: bool = True,
    key_usage: x509.KeyUsage | None | str = "ca",
    policies: Sequence[str] = (),
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """A root (no issuer) or an intermediate CA.

    key_usage "ca" gives keyCertSign + cRLSign when ca is true; None leaves the
    extension out. extensions: extra (extension, critical) pairs, for profiles
    the defaults do not cover (unknown critical extensions, EKU on a CA...).
    """
    key = new_key(key_kind)
    subject = _name(
        (NameOID.COUNTRY_NAME, "FR"),
        (NameOID.ORGANIZATION_NAME, organisation),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "IGC-SANTE TEST"),
        (NameOID.COMMON_NAME, common_name),
    )
    b = _builder(subject, issuer, key, not_before, not_after, None)
    b = b.add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
    if key_usage == "ca":
        key_usage = x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
            encipher_only=False, decipher_only=False,
        )
    if isinstance(key_usage, x509.KeyUsage):
        b = b.add_extension(key_usage, critical=True)
    if policies:
        b = b.add_extension(_policies(policies), critical=False)
    if crl_url and issuer:
        b = b.add_extension(_crl_dp(crl_url), critical=False)
    b = _add_all(b, extensions)
    return Issued(_finish(b, issuer, key, hash_name), key)


def _policies(oids: Sequence[str]) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in oids])


def _add_all(b: _B, extensions: Sequence[tuple[x509.ExtensionType, bool]]) -> _B:
    for extension, critical in extensions:
        b = b.add_extension(extension, critical=critical)
    return b


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints(
        [x509.DistributionPoint([x509.UniformResourceIdentifier(url)], None, None, None)]
    )


def _key_usage(signing: bool, encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing, content_commitment=signing, key_encipherment=encipherment,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )


def make_leaf(
    issuer: Issued,
    subject: x509.Name,
    *,
    emails: Sequence[str] = (),
    dns_names: Sequence[str] = (),
    key_kind: str = "rsa2048",
    not_before: dt.datetime = DEFAULT_NOT_BEFORE,
    not_after: dt.datetime = DEFAULT_NOT_AFTER,
    key_usage: x509.KeyUsage | None | str = "sign",
    eku: Sequence[x509.ObjectIdentifier] | None = (ExtendedKeyUsageOID.EMAIL_PROTECTION,),
    policies: Sequence[str] = (IGC_SANTE_TEST_POLICY,),
    crl_url: str | None = None,
    hash_name: str = "sha256",
    serial: int | None = None,
    key: PrivateKey | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """An end-entity certificate; key_usage "sign", "encrypt", "both", None (absent) or explicit.

    key: reuse an existing key (key generation dominates test time);
    extensions: extra (extension, critical) pairs.
    """
    key = key or new_key(key_kind)
    b = _builder(subject, issuer, key, not_before, not_after, serial)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    if isinstance(key_usage, str):
        key_usage = _key_usage(key_usage in ("sign", "both"), key_usage in ("encrypt", "both"))
    if key_usage is not None:
        b = b.add_extension(key_usage, critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    sans: list[x509.GeneralName] = [x509.RFC822Name(e) for e in emails]
    sans += [x509.DNSName(d) for d in dns_names]
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if policies:
        b = b.add_extension(_policies(policies), critical=False)
    if crl_url:
        b = b.add_extension(_crl_dp(crl_url), critical=False)
    b = _add_all(b, extensions)
    return Issued(_finish(b, issuer, key, hash_name), key)


def practitioner_subject(national_id: str, surname: str, given_name: str, title: str = "Médecin") -> x509.Name:
    """IGC-Santé layout: one multi-valued RDN CN+SN+GN, then title and country."""
    return x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.COUNTRY_NAME, "FR")]),
            x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.TITLE, title)]),
            x509.RelativeDistinguishedName(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, national_id),
                    x509.NameAttribute(NameOID.SURNAME, surname),
                    x509.NameAttribute(NameOID.GIVEN_NAME, given_name),
                ]
            ),
        ]
    )


def organisation_subject(name: str, structure_id: str, legal_name: str, departement: str = "Paris (75)") -> x509.Name:
    """IGC-Santé organisation / server layout: CN, OU=<1+FINESS or 3+SIRET>, O, ST, C."""
    return _name(
        (NameOID.COUNTRY_NAME, "FR"),
        (NameOID.STATE_OR_PROVINCE_NAME, departement),
        (NameOID.ORGANIZATION_NAME, legal_name),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, structure_id),
        (NameOID.COMMON_NAME, name),
    )


def direct_subject(common_name: str) -> x509.Name:
    """Direct (US) layout: a plain CN; the address goes in the SAN (make_leaf's `emails`), not the subject."""
    return _name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Direct HISP Test"), (NameOID.COMMON_NAME, common_name))


def make_crl(
    issuer: Issued,
    revoked_serials: Iterable[int | tuple[int, dt.datetime] | x509.RevokedCertificate] = (),
    *,
    this_update: dt.datetime = DEFAULT_NOT_BEFORE,
    next_update: dt.datetime = DEFAULT_NOT_AFTER,
    revocation_date: dt.datetime | None = None,
    crl_number: int = 1,
    hash_name: str = "sha256",
    signer: Issued | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.CertificateRevocationList:
    """A CRL for issuer's certificates; signer overrides who signs it (for bad-signature tests).

    revoked_serials: serial numbers, (serial, revocation date) pairs when
    entries need their own dates, or ready-made entries (with extensions); extensions: extra (extension, critical)
    pairs (delta indicator, issuing distribution point, unknown critical...).
    """
    b = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False)
    )
    b = _add_all(b, extensions)
    for item in revoked_serials:
        if not isinstance(item, x509.RevokedCertificate):
            serial, when = item if isinstance(item, tuple) else (item, revocation_date or this_update)
            item = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        b = b.add_revoked_certificate(item)
    key = (signer or issuer).key
    return b.sign(key, _sign_hash(hash_name))


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)
