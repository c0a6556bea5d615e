"""The shared test PKI: IGC-Santé-style and Direct-style hierarchies with fixed dates.

Use it through the session-scoped `pki` fixture (tests/conftest.py); one
instance is built per test session because RSA key generation dominates the
cost of certificate tests.

Fixed timeline (all UTC):

    NOW            2026-06-01 12:00   every "valid" fixture is valid at NOW
    roots          2024-01-01 .. 2044-01-01
    intermediates  2024-01-01 .. 2036-01-01
    leaves         LEAF_NOT_BEFORE 2025-01-01 .. LEAF_NOT_AFTER 2028-01-01
    CRLs           CRL_THIS_UPDATE 2026-05-28 .. CRL_NEXT_UPDATE 2026-06-11

Hierarchies (RSA-2048, SHA-256, keyCertSign/cRLSign on CAs):

    pki.root        "AC RACINE IGC-SANTE TEST"          self-signed anchor
    pki.personnes   "AC IGC-SANTE TEST PERSONNES"        root -> practitioner leaves
    pki.structures  "AC IGC-SANTE TEST STRUCTURES"       root -> organisation leaves
    pki.direct_root "Direct Test Root"                   self-signed anchor
    pki.direct_ca   "Direct Test HISP CA"                direct_root -> Direct leaves

Leaves (each call issues a new certificate; they share one RSA-2048 key
unless `key=` or `key_kind=` is given):

    pki.practitioner(...)   CN=<8+RPPS>+SN+GN, T=<title>, C=FR; rfc822Name SAN;
                            KU digitalSignature+nonRepudiation; EKU emailProtection;
                            policy IGC_SANTE_TEST_POLICY
    pki.organisation(...)   CN, OU=<1+FINESS or 3+SIRET>, O, ST, C=FR
    pki.direct(...)         Direct layout, address in the rfc822Name SAN, no policy
    pki.leaf(issuer, subject, ...)  anything else (all devpki.make_leaf options)

Revocation and bundles:

    pki.crl(issuer, revoked=(serial or (serial, date), ...), ...)  a CRL at the fixed dates
    pki.bundle(...)          the IGC-Santé bundle: anchor root, both intermediates,
                             a fresh empty CRL per CA unless crls= is given
    pki.direct_bundle(...)   the Direct bundle, require_professional=False

Weak material that `cryptography` refuses to produce:

    pki.sha1_ca(tmp_path, issuer)   a CA certificate signed with SHA-1 (by issuer, or
                                    self_signed=True) by the openssl CLI under faketime
    pki.with_duplicate_extension(cert, issuer)  cert re-signed with an extension repeated
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

from cryptography import x509
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import NameOID

from relay import devpki
from relay.core.bundle import Bundle, RevocationMode
from relay.devpki import Issued

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CA_NOT_BEFORE = dt.datetime(2024, 1, 1, tzinfo=UTC)
ROOT_NOT_AFTER = dt.datetime(2044, 1, 1, tzinfo=UTC)
CA_NOT_AFTER = dt.datetime(2036, 1, 1, tzinfo=UTC)
LEAF_NOT_BEFORE = dt.datetime(2025, 1, 1, tzinfo=UTC)
LEAF_NOT_AFTER = dt.datetime(2028, 1, 1, tzinfo=UTC)
CRL_THIS_UPDATE = dt.datetime(2026, 5, 28, tzinfo=UTC)
CRL_NEXT_UPDATE = dt.datetime(2026, 6, 11, tzinfo=UTC)

IGC_SANTE_TEST_POLICY = devpki.IGC_SANTE_TEST_POLICY
RPPS_ID = "810001234567"  # "8" + an 11-digit RPPS number
ADELI_ID = "0751234567"  # "0" + a 9-digit ADELI number
FINESS_ID = "1750000016"  # "1" + a 9-character FINESS number
SIRET_ID = "312345678900017"  # "3" + a 14-digit SIRET number


class HealthPki:
    """Factory for the fixed hierarchies above; see the module docstring."""

    def __init__(self) -> None:
        self.root = devpki.make_ca(
            "AC RACINE IGC-SANTE TEST", not_before=CA_NOT_BEFORE, not_after=ROOT_NOT_AFTER
        )
        self.personnes = devpki.make_ca(
            "AC IGC-SANTE TEST PERSONNES", self.root, not_before=CA_NOT_BEFORE, not_after=CA_NOT_AFTER, path_length=0
        )
        self.structures = devpki.make_ca(
            "AC IGC-SANTE TEST STRUCTURES", self.root, not_before=CA_NOT_BEFORE, not_after=CA_NOT_AFTER, path_length=0
        )
        self.direct_root = devpki.make_ca(
            "Direct Test Root", organisation="Direct Test Trust Anchor", not_before=CA_NOT_BEFORE, not_after=ROOT_NOT_AFTER
        )
        self.direct_ca = devpki.make_ca(
            "Direct Test HISP CA", self.direct_root, organisation="Direct Test Trust Anchor",
            not_before=CA_NOT_BEFORE, not_after=CA_NOT_AFTER,
        )

    @cached_property
    def leaf_key(self) -> devpki.PrivateKey:
        """The RSA-2048 key shared by leaves (they never issue anything, so sharing is harmless)."""
        return devpki.new_key("rsa2048")

    # Leaves

    def leaf(self, issuer: Issued, subject: x509.Name, **options: Any) -> Issued:
        """devpki.make_leaf at the fixed leaf dates, with the shared key unless told otherwise."""
        options.setdefault("not_before", LEAF_NOT_BEFORE)
        options.setdefault("not_after", LEAF_NOT_AFTER)
        if "key_kind" not in options:
            options.setdefault("key", self.leaf_key)
        return devpki.make_leaf(issuer, subject, **options)

    def practitioner(
        self,
        national_id: str = RPPS_ID,
        email: str | None = "jean.dupont@hopital-test.mssante.fr",
        *,
        surname: str = "DUPONT",
        given_name: str = "JEAN",
        title: str = "Médecin",
        **options: Any,
    ) -> Issued:
        options.setdefault("emails", [email] if email else [])
        subject = devpki.practitioner_subject(national_id, surname, given_name, title)
        return self.leaf(self.personnes, subject, **options)

    def organisation(
        self,
        structure_id: str = FINESS_ID,
        dns_name: str | None = "hopital-test.mssante.fr",
        *,
        name: str = "SERVICE DES URGENCES",
        legal_name: str = "CENTRE HOSPITALIER TEST",
        **options: Any,
    ) -> Issued:
        options.setdefault("dns_names", [dns_name] if dns_name else [])
        subject = devpki.organisation_subject(name, structure_id, legal_name)
        return self.leaf(self.structures, subject, **options)

    def direct(self, email: str = "drsmith@direct.example.org", common_name: str = "Dr John Smith", **options: Any) -> Issued:
        options.setdefault("emails", [email])
        options.setdefault("policies", ())
        return self.leaf(self.direct_ca, devpki.direct_subject(common_name), **options)

    # Revocation and bundles

    def crl(
        self, issuer: Issued, revoked: Iterable[int | tuple[int, dt.datetime] | x509.RevokedCertificate] = (), **options: Any
    ) -> x509.CertificateRevocationList:
        options.setdefault("this_update", CRL_THIS_UPDATE)
        options.setdefault("next_update", CRL_NEXT_UPDATE)
        return devpki.make_crl(issuer, revoked, **options)

    @cached_property
    def empty_crls(self) -> tuple[x509.CertificateRevocationList, ...]:
        """One fresh, empty CRL for each IGC-Santé CA (root, personnes, structures)."""
        return tuple(self.crl(ca) for ca in (self.root, self.personnes, self.structures))

    def bundle(self, *, crls: Sequence[x509.CertificateRevocationList] | None = None, **options: Any) -> Bundle:
        """The IGC-Santé bundle; every Bundle field can be overridden by keyword."""
        options.setdefault("name", "igc-sante-test")
        options.setdefault("anchors", (self.root.cert,))
        options.setdefault("intermediates", (self.personnes.cert, self.structures.cert))
        options.setdefault("revocation", RevocationMode.HARD)
        return Bundle(crls=tuple(self.empty_crls if crls is None else crls), **options)

    def direct_bundle(self, *, crls: Sequence[x509.CertificateRevocationList] = (), **options: Any) -> Bundle:
        """The Direct bundle: no professional identifier required, CRLs where available."""
        options.setdefault("name", "direct-test")
        options.setdefault("anchors", (self.direct_root.cert,))
        options.setdefault("intermediates", (self.direct_ca.cert,))
        options.setdefault("require_professional", False)
        options.setdefault("revocation", RevocationMode.WHERE_AVAILABLE)
        return Bundle(crls=tuple(crls), **options)

    # Weak material

    def sha1_ca(
        self, tmp_path: Path, issuer: Issued | None = None, common_name: str = "AC SHA1 TEST", *, self_signed: bool = False
    ) -> Issued:
        """A CA certificate signed with SHA-1 by the openssl CLI: by `issuer` (default root), or by itself.

        `cryptography` refuses to sign with SHA-1, so `openssl x509 -req -sha1`
        (or `openssl req -x509 -sha1` when self-signed) issues it, under
        faketime so that it is valid from CA_NOT_BEFORE for 10 years.
        """
        key = devpki.new_key("rsa2048")
        (tmp_path / "ca.key").write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        (tmp_path / "ca.cnf").write_text(
            "[req]\ndistinguished_name=dn\nprompt=no\n[dn]\nC=FR\nO=ASIP-SANTE\n"
            f"CN={common_name}\n[ca]\nbasicConstraints=critical,CA:TRUE\n"
            "keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
        )
        common = ["-sha1", "-days", "3652", "-out", "ca.pem"]
        if self_signed:
            command = ["req", "-x509", "-new", "-key", "ca.key", "-config", "ca.cnf", "-extensions", "ca",
                       "-set_serial", "4241", *common]
        else:
            issuer = issuer or self.root
            (tmp_path / "issuer.pem").write_bytes(issuer.cert_pem)
            (tmp_path / "issuer.key").write_bytes(issuer.key_pem)
            self._openssl(tmp_path, ["req", "-new", "-key", "ca.key", "-config", "ca.cnf", "-out", "ca.csr"])
            command = ["x509", "-req", "-in", "ca.csr", "-CA", "issuer.pem", "-CAkey", "issuer.key",
                       "-set_serial", "4242", "-extfile", "ca.cnf", "-extensions", "ca", *common]
        self._openssl(tmp_path, command)
        return Issued(x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes()), key)

    @staticmethod
    def with_duplicate_extension(cert: x509.Certificate, issuer: Issued, extension: str = "subject_alt_name") -> x509.Certificate:
        """`cert` re-signed by `issuer` with one extension repeated: a malformed certificate
        that `cryptography` only notices when its extensions are read."""
        original = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
        tbs = original["tbs_certificate"]
        extensions = list(tbs["extensions"])
        repeated = next(e for e in extensions if e["extn_id"].native == extension)
        tbs["extensions"] = asn1_x509.Extensions([*extensions, asn1_x509.Extension.load(repeated.dump())])
        tbs_der = tbs.dump(force=True)
        signature = issuer.key.sign(tbs_der, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg, union-attr]
        rebuilt = asn1_x509.Certificate({
            "tbs_certificate": asn1_x509.TbsCertificate.load(tbs_der),
            "signature_algorithm": original["signature_algorithm"],
            "signature_value": signature,
        })
        return x509.load_der_x509_certificate(rebuilt.dump())

    @staticmethod
    def _openssl(cwd: Path, arguments: list[str]) -> None:
        when = CA_NOT_BEFORE.strftime("%Y-%m-%d %H:%M:%S")
        subprocess.run(["faketime", when, "openssl", *arguments], cwd=cwd, check=True, capture_output=True,
                       env={**os.environ, "TZ": "UTC"})


def subject_with_email(common_name: str, email: str) -> x509.Name:
    """A subject carrying the address only as emailAddress (no SAN): the legacy layout."""
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.EMAIL_ADDRESS, email),
    ])

