"""Revocation of a validated path by CRL: the subset of RFC 5280 §6.3 relay supports.

A CRL of the bundle is *usable* for a certificate when
  - its issuer name is the certificate's issuer and, when it carries an
    authorityKeyIdentifier, that equals the issuer certificate's
    subjectKeyIdentifier (two CAs may share a name, never a key);
  - its signature verifies with the issuer's public key, by a hash that is
    not SHA-1/MD5;
  - it is a complete, direct CRL: no deltaCRLIndicator, no indirect or
    reason-partitioned issuingDistributionPoint (nor one whose scope excludes
    the certificate), no critical CRL or entry extension we do not
    understand;
  - thisUpdate <= now <= nextUpdate (without nextUpdate it is never fresh).
The most recently issued usable CRL decides. The bundle's revocation mode says
what happens when none is usable.

Every check runs against `now`; `check_path` also returns the window around
`now` within which its answer stays the same (no CRL of the path's issuers
turns usable or unusable, no listed revocation date is reached), so that a
validated path can be cached for exactly that long.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import CRLEntryExtensionOID, ExtensionOID

from .algorithms import WEAK_HASHES
from .bundle import Bundle, RevocationMode
from .errors import Rejection
from .names import display_name
from .reasons import Reason
from .timewindow import ALWAYS, TICK, TimeWindow
from .x509read import UNREADABLE, authority_key_identifier, extension_value, key_identifier

_INDEX_KEY = ("revocation", "crls-by-issuer")
_STATIC_KEY = "revocation.static"
_ENTRIES_KEY = "revocation.entries"

# Critical CRL extensions we process; any other critical one makes the CRL unusable.
_UNDERSTOOD_CRL_EXTENSIONS = frozenset(
    {ExtensionOID.CRL_NUMBER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER, ExtensionOID.ISSUING_DISTRIBUTION_POINT}
)
_UNDERSTOOD_ENTRY_EXTENSIONS = frozenset({CRLEntryExtensionOID.CRL_REASON, CRLEntryExtensionOID.INVALIDITY_DATE})


def check_path(chain: Sequence[x509.Certificate], bundle: Bundle, now: dt.datetime) -> TimeWindow:
    """Check every certificate of `chain` (leaf first, anchor last) below the anchor.

    Raises CERTIFICATE_REVOKED when one is revoked at `now` (wherever it sits
    in the path, a revocation outranks missing information), else
    REVOCATION_UNKNOWN when the mode demands a CRL that is not usable.
    """
    window = ALWAYS
    unknown: Rejection | None = None
    for position, (cert, issuer) in enumerate(zip(chain, chain[1:])):
        try:
            window &= _check_one(cert, issuer, position, bundle, now)
        except Rejection as refusal:
            if refusal.reason is Reason.CERTIFICATE_REVOKED:
                raise
            unknown = unknown or refusal
    if unknown is not None:
        raise unknown
    return window


def crls_for(issuer: x509.Certificate, bundle: Bundle) -> tuple[x509.CertificateRevocationList, ...]:
    """The bundle's CRLs issued under this issuer's name and key, in O(1) of the bundle size."""
    by_name = _index(bundle).get(issuer.subject, ())
    if not by_name:
        return ()
    ski = key_identifier(issuer)
    return tuple(crl for crl in by_name if authority_key_identifier(crl) in (None, ski))


def _check_one(
    cert: x509.Certificate, issuer: x509.Certificate, position: int, bundle: Bundle, now: dt.datetime
) -> TimeWindow:
    window = ALWAYS
    usable: list[x509.CertificateRevocationList] = []
    problems: list[str] = []
    candidates = crls_for(issuer, bundle)
    for crl in candidates:
        problem = _static_problem(crl, issuer, bundle) or _scope_problem(crl, cert)
        if problem:
            problems.append(problem)
            continue
        fresh, bounds = _freshness(crl, now)
        window &= bounds
        if fresh:
            usable.append(crl)
        else:
            problems.append(_staleness(crl, now))
    who = _describe(cert, position)
    if not usable:
        if bundle.revocation is RevocationMode.HARD or (
            bundle.revocation is RevocationMode.WHERE_AVAILABLE and candidates
        ):
            found = "; ".join(problems) if problems else "none in the bundle"
            raise Rejection(Reason.REVOCATION_UNKNOWN, f"no usable CRL for {who} from {_name(issuer)} ({found})")
        return window
    crl = max(usable, key=_recency)
    revoked_at = _entries(crl, bundle).revoked.get(cert.serial_number)
    if revoked_at is None:
        return window
    if revoked_at > now:  # listed ahead of time: still good until that date
        return window & TimeWindow.until(revoked_at - TICK)
    raise Rejection(Reason.CERTIFICATE_REVOKED, f"{who} revoked on {revoked_at.isoformat()} per CRL of {_name(issuer)}")


def _index(bundle: Bundle) -> dict[x509.Name, tuple[x509.CertificateRevocationList, ...]]:
    index = bundle.cache.get(_INDEX_KEY)
    if index is None:
        grouped: dict[x509.Name, list[x509.CertificateRevocationList]] = {}
        for crl in bundle.crls:
            try:
                grouped.setdefault(crl.issuer, []).append(crl)
            except UNREADABLE:  # an issuer name we cannot read matches no certificate
                continue
        index = {name: tuple(crls) for name, crls in grouped.items()}
        bundle.cache[_INDEX_KEY] = index
    return index


def _static_problem(crl: x509.CertificateRevocationList, issuer: x509.Certificate, bundle: Bundle) -> str | None:
    """Why the CRL can never be used, independently of time; memoised per bundle.

    The CRL object lives in bundle.crls as long as the bundle lives, so its
    id() is a stable key there.
    """
    key = (_STATIC_KEY, id(crl), issuer)
    if key not in bundle.cache:
        bundle.cache[key] = _inspect(crl, issuer, bundle)
    return bundle.cache[key]


def _inspect(crl: x509.CertificateRevocationList, issuer: x509.Certificate, bundle: Bundle) -> str | None:
    try:
        extensions = crl.extensions
    except UNREADABLE as error:
        return f"unreadable CRL extensions ({error})"
    if any(e.oid == ExtensionOID.DELTA_CRL_INDICATOR for e in extensions):
        return "delta CRL (unsupported)"
    unknown = [e.oid.dotted_string for e in extensions if e.critical and e.oid not in _UNDERSTOOD_CRL_EXTENSIONS]
    if unknown:
        return f"unknown critical CRL extension {', '.join(unknown)}"
    idp = _issuing_distribution_point(crl)
    if idp is not None and (idp.indirect_crl or idp.only_some_reasons or idp.only_contains_attribute_certs):
        return "indirect or partitioned CRL (unsupported)"
    entry_problem = _entries(crl, bundle).problem
    if entry_problem:
        return entry_problem
    if isinstance(_signature_hash(crl), WEAK_HASHES):
        return "CRL signed with a weak hash"
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        valid = False
    return None if valid else "CRL signature does not verify with the issuer's key"


@dataclass(frozen=True)
class _Entries:
    problem: str | None  # why the entries make the CRL unusable, if they do
    revoked: Mapping[int, dt.datetime]  # serial number -> revocation date


def _entries(crl: x509.CertificateRevocationList, bundle: Bundle) -> _Entries:
    """The CRL's entries read once per bundle, indexed by serial (the CRL's own lookup is linear)."""
    key = (_ENTRIES_KEY, id(crl))
    entries = bundle.cache.get(key)
    if entries is None:
        entries = _read_entries(crl)
        bundle.cache[key] = entries
    return entries


def _read_entries(crl: x509.CertificateRevocationList) -> _Entries:
    revoked: dict[int, dt.datetime] = {}
    problem: str | None = None
    try:
        for entry in crl:
            revoked[entry.serial_number] = entry.revocation_date_utc
            problem = problem or _entry_problem(entry)
    except UNREADABLE as error:
        problem = f"unreadable CRL entry ({error})"
    return _Entries(problem, MappingProxyType(revoked))


def _entry_problem(entry: x509.RevokedCertificate) -> str | None:
    for extension in entry.extensions:
        if extension.oid == CRLEntryExtensionOID.CERTIFICATE_ISSUER:
            return "indirect CRL entries (unsupported)"
        if extension.critical and extension.oid not in _UNDERSTOOD_ENTRY_EXTENSIONS:
            return f"unknown critical CRL entry extension {extension.oid.dotted_string}"
    return None


def _scope_problem(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> str | None:
    """A CRL limited to user or CA certificates says nothing about the other kind."""
    idp = _issuing_distribution_point(crl)
    if idp is None:
        return None
    is_ca = _is_ca(cert)
    if idp.only_contains_user_certs and is_ca:
        return "CRL covers end-entity certificates only"
    if idp.only_contains_ca_certs and not is_ca:
        return "CRL covers CA certificates only"
    return None


def _freshness(crl: x509.CertificateRevocationList, now: dt.datetime) -> tuple[bool, TimeWindow]:
    """Whether the CRL is current at `now`, and the window around `now` where that stays true."""
    this_update, next_update = crl.last_update_utc, crl.next_update_utc
    if next_update is None:
        return False, ALWAYS
    if now < this_update:
        return False, TimeWindow.until(this_update - TICK)
    if now > next_update:
        return False, TimeWindow.since(next_update + TICK)
    return True, TimeWindow(this_update, next_update)


def _staleness(crl: x509.CertificateRevocationList, now: dt.datetime) -> str:
    if crl.next_update_utc is None:
        return "CRL without nextUpdate"
    if now < crl.last_update_utc:
        return f"CRL issued in the future ({crl.last_update_utc.isoformat()})"
    return f"CRL stale since {crl.next_update_utc.isoformat()}"


def _recency(crl: x509.CertificateRevocationList) -> tuple[dt.datetime, int]:
    number = extension_value(crl, x509.CRLNumber)
    return crl.last_update_utc, number.crl_number if number is not None else -1


def _issuing_distribution_point(crl: x509.CertificateRevocationList) -> x509.IssuingDistributionPoint | None:
    return extension_value(crl, x509.IssuingDistributionPoint)


def _is_ca(cert: x509.Certificate) -> bool:
    constraints = extension_value(cert, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def _signature_hash(crl: x509.CertificateRevocationList) -> hashes.HashAlgorithm | None:
    try:
        return crl.signature_hash_algorithm
    except Exception:  # unsupported algorithm: the signature check will say so
        return None


def _describe(cert: x509.Certificate, position: int) -> str:
    if position == 0:
        return f"the signer certificate (serial {cert.serial_number:#x})"
    return f"CA certificate {_name(cert)}"


def _name(cert: x509.Certificate) -> str:
    return display_name(cert.subject)
