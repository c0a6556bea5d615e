"""Signer certificate path, validity, revocation, usage and policies.

Path building and signature, name and CA-constraint checks are done by
`cryptography.x509.verification` (the client verifier). Its default policies
are the Web PKI's: the leaf must carry EKU clientAuth, a CA must carry
keyUsage and may not carry an EKU without clientAuth. For S/MIME the
extension policies are replaced:
  - end entity: any extension set (no SAN or EKU demanded; unknown critical
    extensions are still refused); the S/MIME usage rules are checked here
    afterwards so that they rank below validity and revocation;
  - CA: basicConstraints required (the verifier itself demands cA asserted
    and enforces pathLenConstraint and name constraints, rfc822Name ones
    included), keyUsage required with keyCertSign; any EKU tolerated.
The verifier keeps refusing SHA-1/MD5 signatures, Ed25519 and RSA issuer keys
below 2048 bits (the leaf's own key is checked here), and checks the validity
of every certificate, the anchor's included; it never checks the anchor's
self-signature.

The verifier only says "no" without saying why, so a refusal at `now` is
explained afterwards (never decided: acceptance only ever comes from the
verifier):
  1. candidate paths are followed from the leaf by issuer name (and key
     identifier) through the presented certificates and the bundle's
     intermediates to an anchor;
  2. none reaches an anchor -> untrusted-issuer; every one holds a
     SHA-1/MD5-signed certificate below the anchor or a short RSA key ->
     weak-algorithm;
  3. otherwise the verifier is asked again at the instant of each candidate's
     common validity period nearest to `now`; if it then accepts, the first
     certificate of that chain which is outside its validity at `now` gives
     certificate-expired or certificate-not-yet-valid;
  4. still refused -> untrusted-issuer with the verifier's explanation.

Results are cached per bundle (bundle.cache), keyed by the signer and the
presented certificates, together with the window of time in which they hold:
the path's common validity period intersected with the window in which the
revocation answer stays the same. A lookup at a `now` outside the window
recomputes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import revocation
from .algorithms import MIN_RSA_BITS, WEAK_HASHES
from .bundle import Bundle
from .errors import Rejection
from .names import display_name
from .reasons import Reason
from .timewindow import TimeWindow, as_utc
from .x509read import UNREADABLE, authority_key_identifier, extension_value, key_identifier

Chain = tuple[x509.Certificate, ...]

_MAX_DEPTH = 8  # certificates between leaf and anchor, as the verifier's default
_MAX_CANDIDATES = 16  # explanation effort bounds, against crafted certificate sets
_MAX_LINKS = 512
_MAX_CACHED_PATHS = 10_000  # about 10 KB each (the certificates they hold)
_PATHS_KEY = ("certpath", "paths")
_VERIFY_KEY = ("certpath", "store")
_SIGNING_EKUS = frozenset({ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE})


def _require_key_cert_sign(policy: verification.Policy, cert: x509.Certificate, usage: x509.KeyUsage) -> None:
    if not usage.key_cert_sign:
        raise ValueError("keyUsage of a CA certificate lacks keyCertSign")


_CA_POLICY = (
    verification.ExtensionPolicy.permit_all()
    .require_present(x509.BasicConstraints, verification.Criticality.AGNOSTIC, None)
    .require_present(x509.KeyUsage, verification.Criticality.AGNOSTIC, _require_key_cert_sign)
)
_EE_POLICY = verification.ExtensionPolicy.permit_all()


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A cached answer: the chain, or the refusal decided once a path was found."""

    window: TimeWindow
    chain: Chain = ()
    refusal: tuple[Reason, str] | None = None

    def replay(self) -> Chain:
        if self.refusal is not None:
            raise Rejection(*self.refusal)
        return self.chain


def validate_signer(
    signer: x509.Certificate,
    presented: Sequence[x509.Certificate],
    bundle: Bundle,
    now: dt.datetime,
) -> tuple[x509.Certificate, ...]:
    """The validated chain, leaf first; or raise Rejection in precedence order:
    weak-algorithm, untrusted-issuer, certificate-expired / -not-yet-valid,
    certificate-revoked / revocation-unknown, key-usage, policy-mismatch."""
    now = as_utc(now)
    paths = bundle.cache.setdefault(_PATHS_KEY, {})
    # Certificates hash and compare by their DER encoding, so this key
    # identifies exactly what a set of fingerprints would, at less cost.
    key = (signer, tuple(presented))
    cached: _Outcome | None = paths.get(key)
    if cached is not None and now in cached.window:
        return cached.replay()
    outcome = _evaluate(signer, presented, bundle, now)
    paths.pop(key, None)
    if len(paths) >= _MAX_CACHED_PATHS:
        del paths[next(iter(paths))]  # the oldest entry: dicts keep insertion order
    paths[key] = outcome
    return outcome.replay()


def _evaluate(signer: x509.Certificate, presented: Sequence[x509.Certificate], bundle: Bundle, now: dt.datetime) -> _Outcome:
    """Decide at `now`; refusals before a path is found are raised, later ones returned for caching."""
    chain = _build_path(signer, presented, bundle, now)
    window = _validity(chain)
    try:
        window &= revocation.check_path(chain, bundle, now)
        check_usage(chain[0])
        check_policies(chain[0], bundle)
    except Rejection as refusal:
        if refusal.reason in (Reason.CERTIFICATE_REVOKED, Reason.REVOCATION_UNKNOWN):
            # These hold only while the same CRLs are usable; rare enough not to cache.
            raise
        return _Outcome(window, refusal=(refusal.reason, refusal.detail))
    return _Outcome(window, chain=chain)


def _build_path(signer: x509.Certificate, presented: Sequence[x509.Certificate], bundle: Bundle, now: dt.datetime) -> Chain:
    weakness = _weakness(signer, is_anchor=False)
    if weakness:
        raise Rejection(Reason.WEAK_ALGORITHM, f"signer certificate {weakness}")
    pool = _pool(presented, bundle)
    try:
        return _verify(signer, pool, bundle, now)
    except verification.VerificationError as error:
        refusal = str(error)
    try:
        explanation = _explain(signer, pool, bundle, now, refusal)
    except UNREADABLE as error:  # a certificate too odd to even follow by name
        explanation = Rejection(Reason.UNTRUSTED_ISSUER, f"unusable certificate in the path ({error})")
    raise explanation


def _verify(signer: x509.Certificate, pool: list[x509.Certificate], bundle: Bundle, at: dt.datetime) -> Chain:
    verifier = (
        verification.PolicyBuilder()
        .store(_store(bundle))
        .time(at)
        .max_chain_depth(_MAX_DEPTH)
        .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        .build_client_verifier()
    )
    return tuple(verifier.verify(signer, pool).chain)


def verify_chain(leaf: x509.Certificate, presented: Sequence[x509.Certificate], bundle: Bundle, at: dt.datetime) -> Chain:
    """A path from leaf to one of the bundle's anchors, with no end-entity usage requirement
    (the caller checks the usage it needs); cryptography's VerificationError when none."""
    return _verify(leaf, _pool(presented, bundle), bundle, as_utc(at))


def _store(bundle: Bundle) -> verification.Store:
    store = bundle.cache.get(_VERIFY_KEY)
    if store is None:
        store = verification.Store(list(bundle.anchors))
        bundle.cache[_VERIFY_KEY] = store
    return store


def _pool(presented: Sequence[x509.Certificate], bundle: Bundle) -> list[x509.Certificate]:
    return list(dict.fromkeys((*presented, *bundle.intermediates)))


# Explaining a refusal


def _explain(
    signer: x509.Certificate, pool: list[x509.Certificate], bundle: Bundle, now: dt.datetime, refusal: str
) -> Rejection:
    """The reason the verifier refused `signer` at `now` (see the module docstring)."""
    candidates = _candidate_paths(signer, pool, bundle.anchors)
    if not candidates:
        return Rejection(
            Reason.UNTRUSTED_ISSUER,
            f"no path from issuer {display_name(signer.issuer)} to an anchor of bundle {bundle.name}",
        )
    weak = [_path_weakness(path) for path in candidates]
    if all(weak):
        return Rejection(Reason.WEAK_ALGORITHM, str(weak[0]))
    for path, weakness in zip(candidates, weak):
        validity = None if weakness else _explain_validity(signer, pool, bundle, now, path)
        if validity is not None:
            return validity
    return Rejection(Reason.UNTRUSTED_ISSUER, f"path to bundle {bundle.name} refused: {refusal}")


def _candidate_paths(
    leaf: x509.Certificate, pool: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate]
) -> list[Chain]:
    """Paths leaf -> anchor linked by issuer name and key identifier only: no signature or constraint is checked.

    The search is bounded (paths found, links followed) so that a crafted set
    of same-named certificates costs little.
    """
    by_subject: dict[x509.Name, list[x509.Certificate]] = {}
    for cert in (*pool, *anchors):
        by_subject.setdefault(cert.subject, []).append(cert)
    anchor_set = set(anchors)
    found: list[Chain] = []
    budget = [_MAX_LINKS]

    def walk(path: Chain) -> None:
        for issuer in by_subject.get(path[-1].issuer, ()):
            budget[0] -= 1
            if budget[0] < 0 or len(found) >= _MAX_CANDIDATES:
                return
            if issuer in path or not _key_ids_agree(path[-1], issuer):
                continue
            if issuer in anchor_set:
                found.append((*path, issuer))
            elif len(path) <= _MAX_DEPTH:
                walk((*path, issuer))

    walk((leaf,))
    return found


def _explain_validity(
    signer: x509.Certificate, pool: list[x509.Certificate], bundle: Bundle, now: dt.datetime, path: Chain
) -> Rejection | None:
    """Expired / not-yet-valid, when the verifier accepts the path's certificates at another instant."""
    window = _validity(path)
    if window.empty or now in window:
        return None
    try:
        chain = _verify(signer, pool, bundle, window.clamp(now))
    except verification.VerificationError:
        return None
    for position, cert in enumerate(chain):
        role = "signer certificate" if position == 0 else f"CA certificate {display_name(cert.subject)}"
        if now > cert.not_valid_after_utc:
            return Rejection(Reason.CERTIFICATE_EXPIRED, f"{role} expired on {cert.not_valid_after_utc.isoformat()}")
        if now < cert.not_valid_before_utc:
            return Rejection(
                Reason.CERTIFICATE_NOT_YET_VALID, f"{role} not valid before {cert.not_valid_before_utc.isoformat()}"
            )
    return None


def _validity(path: Sequence[x509.Certificate]) -> TimeWindow:
    return TimeWindow(
        max(cert.not_valid_before_utc for cert in path), min(cert.not_valid_after_utc for cert in path)
    )


def _path_weakness(path: Chain) -> str | None:
    for position, cert in enumerate(path):
        weakness = _weakness(cert, is_anchor=position == len(path) - 1)
        if weakness:
            return f"certificate {display_name(cert.subject)} {weakness}"
    return None


def _weakness(cert: x509.Certificate, *, is_anchor: bool) -> str | None:
    """What is weak about one certificate; an anchor's self-signature is not relied upon."""
    if not is_anchor:
        try:
            algorithm = cert.signature_hash_algorithm
        except Exception:  # unsupported algorithm: the verifier refuses it
            algorithm = None
        if isinstance(algorithm, WEAK_HASHES):
            return f"is signed with {algorithm.name.upper()}"
    try:
        key = cert.public_key()
    except Exception:  # unsupported key type: the verifier refuses it
        return None
    if isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) and key.key_size < MIN_RSA_BITS:
        return f"has a {key.key_size}-bit {'RSA' if isinstance(key, rsa.RSAPublicKey) else 'DSA'} key"
    return None


def _key_ids_agree(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    aki, ski = authority_key_identifier(cert), key_identifier(issuer)
    return aki is None or ski is None or aki == ski


# Usage and policies of the signer certificate


def check_usage(leaf: x509.Certificate) -> None:
    """keyUsage must allow signing (digitalSignature or nonRepudiation); an EKU must allow e-mail."""
    try:
        usage = extension_value(leaf, x509.KeyUsage)
        purposes = extension_value(leaf, x509.ExtendedKeyUsage)
    except UNREADABLE as error:
        raise Rejection(Reason.KEY_USAGE, f"unreadable usage extensions ({error})") from None
    if usage is None:
        raise Rejection(Reason.KEY_USAGE, "signer certificate has no keyUsage extension")
    if not (usage.digital_signature or usage.content_commitment):
        raise Rejection(Reason.KEY_USAGE, "keyUsage allows neither digitalSignature nor nonRepudiation")
    if purposes is not None and not _SIGNING_EKUS & set(purposes):
        names = ", ".join(oid.dotted_string for oid in purposes)
        raise Rejection(Reason.KEY_USAGE, f"extendedKeyUsage ({names}) excludes emailProtection")


def check_policies(leaf: x509.Certificate, bundle: Bundle) -> None:
    """When the bundle requires policies, the leaf must assert one of them (anyPolicy does not count)."""
    if not bundle.required_policies:
        return
    try:
        policies = extension_value(leaf, x509.CertificatePolicies)
    except UNREADABLE as error:
        raise Rejection(Reason.POLICY_MISMATCH, f"unreadable certificatePolicies ({error})") from None
    asserted = {info.policy_identifier.dotted_string for info in policies or ()}
    if not asserted & bundle.required_policies:
        raise Rejection(
            Reason.POLICY_MISMATCH,
            f"signer certificate asserts {', '.join(sorted(asserted)) or 'no policy'}; "
            f"bundle {bundle.name} requires one of {', '.join(sorted(bundle.required_policies))}",
        )

