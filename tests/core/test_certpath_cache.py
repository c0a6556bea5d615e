"""The per-bundle path cache: reused inside its time window, recomputed outside it, never shared."""

from __future__ import annotations

import datetime as dt

from relay.core import certpath
from relay.core.bundle import RevocationMode
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from tests.pki import CRL_NEXT_UPDATE, CRL_THIS_UPDATE, LEAF_NOT_AFTER, NOW

DAY = dt.timedelta(days=1)


def reason_at(leaf, bundle, now) -> Reason:
    try:
        certpath.validate_signer(leaf.cert, [leaf.cert], bundle, now)
    except Rejection as refusal:
        return refusal.reason
    return Reason.OK


def test_warm_lookup_returns_the_cached_chain(pki):
    leaf, bundle = pki.practitioner(), pki.bundle()
    first = certpath.validate_signer(leaf.cert, [leaf.cert], bundle, NOW)
    again = certpath.validate_signer(leaf.cert, [leaf.cert], bundle, NOW + DAY)
    assert again is first


def test_other_presented_certificates_are_a_different_entry(pki):
    leaf, bundle = pki.practitioner(), pki.bundle()
    first = certpath.validate_signer(leaf.cert, [leaf.cert], bundle, NOW)
    other = certpath.validate_signer(leaf.cert, [leaf.cert, pki.personnes.cert], bundle, NOW)
    assert other == first and other is not first


def test_leaving_the_crl_window_recomputes(pki):
    leaf, bundle = pki.practitioner(), pki.bundle()
    assert reason_at(leaf, bundle, NOW) is Reason.OK
    assert reason_at(leaf, bundle, CRL_NEXT_UPDATE + DAY) is Reason.REVOCATION_UNKNOWN
    assert reason_at(leaf, bundle, CRL_THIS_UPDATE - DAY) is Reason.REVOCATION_UNKNOWN
    assert reason_at(leaf, bundle, NOW) is Reason.OK


def test_leaving_the_validity_window_recomputes(pki):
    leaf = pki.practitioner()
    bundle = pki.bundle(revocation=RevocationMode.SOFT)
    assert reason_at(leaf, bundle, NOW) is Reason.OK
    assert reason_at(leaf, bundle, LEAF_NOT_AFTER + DAY) is Reason.CERTIFICATE_EXPIRED


def test_a_future_revocation_date_closes_the_window(pki):
    leaf = pki.practitioner()
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, [(leaf.cert.serial_number, NOW + DAY)]))
    bundle = pki.bundle(crls=crls)
    assert reason_at(leaf, bundle, NOW) is Reason.OK
    assert reason_at(leaf, bundle, NOW + 2 * DAY) is Reason.CERTIFICATE_REVOKED


def test_a_crl_issued_later_closes_the_window_in_soft_mode(pki):
    leaf = pki.practitioner()
    later = pki.crl(pki.personnes, [leaf.cert.serial_number], this_update=NOW + DAY, next_update=NOW + 10 * DAY)
    bundle = pki.bundle(crls=(later,), revocation=RevocationMode.SOFT)
    assert reason_at(leaf, bundle, NOW) is Reason.OK  # no usable CRL yet: soft passes
    assert reason_at(leaf, bundle, NOW + 2 * DAY) is Reason.CERTIFICATE_REVOKED


def test_cached_refusals_after_the_path_are_replayed(pki):
    leaf, bundle = pki.practitioner(key_usage=None), pki.bundle()
    assert reason_at(leaf, bundle, NOW) is Reason.KEY_USAGE
    assert reason_at(leaf, bundle, NOW + DAY) is Reason.KEY_USAGE


def test_results_are_never_shared_between_bundles(pki):
    leaf = pki.practitioner()
    assert reason_at(leaf, pki.bundle(), NOW) is Reason.OK
    assert reason_at(leaf, pki.bundle(anchors=(pki.direct_root.cert,)), NOW) is Reason.UNTRUSTED_ISSUER
    assert reason_at(leaf, pki.bundle(required_policies=frozenset({"1.2.3.4"})), NOW) is Reason.POLICY_MISMATCH


def test_the_cache_is_bounded_and_drops_its_oldest_entry(pki, monkeypatch):
    monkeypatch.setattr(certpath, "_MAX_CACHED_PATHS", 2)
    bundle = pki.bundle()
    leaves = [pki.practitioner() for _ in range(3)]
    chains = [certpath.validate_signer(leaf.cert, [], bundle, NOW) for leaf in leaves]
    assert certpath.validate_signer(leaves[2].cert, [], bundle, NOW) is chains[2]
    assert certpath.validate_signer(leaves[1].cert, [], bundle, NOW) is chains[1]
    refreshed = certpath.validate_signer(leaves[0].cert, [], bundle, NOW)
    assert refreshed == chains[0] and refreshed is not chains[0]
