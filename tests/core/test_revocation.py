"""Revocation by CRL: which CRLs are usable, and what each revocation mode makes of their absence."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from relay import devpki
from relay.core import certpath, revocation
from relay.core.bundle import RevocationMode
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from tests.pki import CRL_NEXT_UPDATE, CRL_THIS_UPDATE, NOW

DAY = dt.timedelta(days=1)


def verdict(pki, leaf, crls, mode=RevocationMode.HARD, now=NOW) -> Reason:
    try:
        certpath.validate_signer(leaf.cert, [], pki.bundle(crls=crls, revocation=mode), now)
    except Rejection as refusal:
        return refusal.reason
    return Reason.OK


def detail(pki, leaf, crls, mode=RevocationMode.HARD, now=NOW) -> str:
    with pytest.raises(Rejection) as caught:
        certpath.validate_signer(leaf.cert, [], pki.bundle(crls=crls, revocation=mode), now)
    return caught.value.detail


@pytest.fixture(scope="module")
def leaf(pki):
    return pki.practitioner()


def test_fresh_empty_crls_pass(pki, leaf):
    assert verdict(pki, leaf, pki.empty_crls) is Reason.OK


def test_revoked_leaf_is_refused(pki, leaf):
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, [leaf.cert.serial_number]))
    assert verdict(pki, leaf, crls) is Reason.CERTIFICATE_REVOKED
    assert "signer certificate" in detail(pki, leaf, crls)


def test_revoked_intermediate_is_refused(pki, leaf):
    crls = (pki.crl(pki.root, [pki.personnes.cert.serial_number]), pki.crl(pki.personnes))
    assert verdict(pki, leaf, crls) is Reason.CERTIFICATE_REVOKED
    assert "AC IGC-SANTE TEST PERSONNES" in detail(pki, leaf, crls)


def test_revocation_dated_after_now_does_not_count_yet(pki, leaf):
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, [(leaf.cert.serial_number, NOW + DAY)]))
    assert verdict(pki, leaf, crls) is Reason.OK
    assert verdict(pki, leaf, crls, now=NOW + 2 * DAY) is Reason.CERTIFICATE_REVOKED


def test_revocation_outranks_unknown_elsewhere_in_the_path(pki, leaf):
    # No CRL for the root's certificates, but the leaf is revoked: revoked wins.
    crls = (pki.crl(pki.personnes, [leaf.cert.serial_number]),)
    assert verdict(pki, leaf, crls) is Reason.CERTIFICATE_REVOKED


def test_crl_with_a_bad_signature_is_unusable(pki, leaf):
    forged = pki.crl(pki.personnes, signer=pki.structures)
    crls = (pki.crl(pki.root), forged)
    assert verdict(pki, leaf, crls) is Reason.REVOCATION_UNKNOWN
    assert "signature" in detail(pki, leaf, crls)
    # A forged CRL listing the leaf does not revoke it either.
    forged_revoking = pki.crl(pki.personnes, [leaf.cert.serial_number], signer=pki.structures)
    assert verdict(pki, leaf, (pki.crl(pki.root), forged_revoking), RevocationMode.SOFT) is Reason.OK


def test_stale_crl_is_unusable(pki, leaf):
    assert verdict(pki, leaf, pki.empty_crls, now=CRL_NEXT_UPDATE + DAY) is Reason.REVOCATION_UNKNOWN
    assert "stale" in detail(pki, leaf, pki.empty_crls, now=CRL_NEXT_UPDATE + DAY)


def test_crl_from_the_future_is_unusable(pki, leaf):
    assert verdict(pki, leaf, pki.empty_crls, now=CRL_THIS_UPDATE - DAY) is Reason.REVOCATION_UNKNOWN


def test_latest_usable_crl_decides(pki, leaf):
    older = pki.crl(pki.personnes, [leaf.cert.serial_number], this_update=NOW - 3 * DAY, crl_number=1)
    newer = pki.crl(pki.personnes, this_update=NOW - DAY, crl_number=2)
    assert verdict(pki, leaf, (pki.crl(pki.root), older, newer)) is Reason.OK
    assert verdict(pki, leaf, (pki.crl(pki.root), newer, older)) is Reason.OK


@pytest.mark.parametrize(
    "extension, critical",
    [
        (x509.DeltaCRLIndicator(1), True),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00"), True),
        (x509.IssuingDistributionPoint(None, None, False, False, None, True, False), True),
        (x509.IssuingDistributionPoint(None, None, False, False, frozenset({x509.ReasonFlags.key_compromise}), False, False), True),
        (x509.IssuingDistributionPoint(None, None, False, True, None, False, False), True),
    ],
    ids=["delta", "unknown-critical", "indirect", "reason-partitioned", "ca-certs-only"],
)
def test_unsupported_crls_are_unusable(pki, leaf, extension, critical):
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, [leaf.cert.serial_number], extensions=[(extension, critical)]))
    assert verdict(pki, leaf, crls) is Reason.REVOCATION_UNKNOWN
    assert verdict(pki, leaf, crls, RevocationMode.SOFT) is Reason.OK


def test_unknown_non_critical_extension_is_ignored(pki, leaf):
    extension = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, [leaf.cert.serial_number], extensions=[(extension, False)]))
    assert verdict(pki, leaf, crls) is Reason.CERTIFICATE_REVOKED


def test_user_certs_only_crl_covers_the_leaf_not_the_intermediate(pki, leaf):
    users_only = x509.IssuingDistributionPoint(None, None, True, False, None, False, False)
    crls = (pki.crl(pki.root, extensions=[(users_only, True)]), pki.crl(pki.personnes, extensions=[(users_only, True)]))
    # The root's CRL only speaks of end entities, so nothing covers the intermediate.
    assert verdict(pki, leaf, crls) is Reason.REVOCATION_UNKNOWN
    assert "AC IGC-SANTE TEST PERSONNES" in detail(pki, leaf, crls)


def test_crl_of_a_namesake_ca_is_not_used(pki, leaf):
    namesake = devpki.make_ca("AC IGC-SANTE TEST PERSONNES", pki.root)
    crls = (pki.crl(pki.root), pki.crl(namesake, [leaf.cert.serial_number]))
    assert revocation.crls_for(pki.personnes.cert, pki.bundle(crls=crls)) == ()
    assert verdict(pki, leaf, crls) is Reason.REVOCATION_UNKNOWN
    assert verdict(pki, leaf, crls, RevocationMode.WHERE_AVAILABLE) is Reason.OK


@pytest.mark.parametrize(
    "mode, expected",
    [(RevocationMode.HARD, Reason.REVOCATION_UNKNOWN), (RevocationMode.SOFT, Reason.OK), (RevocationMode.WHERE_AVAILABLE, Reason.OK)],
)
def test_no_crl_at_all(pki, leaf, mode, expected):
    assert verdict(pki, leaf, (), mode) is expected


@pytest.mark.parametrize(
    "mode, expected",
    [
        (RevocationMode.HARD, Reason.REVOCATION_UNKNOWN),
        (RevocationMode.SOFT, Reason.OK),
        (RevocationMode.WHERE_AVAILABLE, Reason.REVOCATION_UNKNOWN),
    ],
)
def test_stale_crl_for_the_issuer(pki, leaf, mode, expected):
    # The root's CRL is absent (where-available: unchecked); the intermediate's is stale.
    stale = pki.crl(pki.personnes, this_update=NOW - 30 * DAY, next_update=NOW - 20 * DAY)
    assert verdict(pki, leaf, (stale,), mode) is expected


@pytest.mark.parametrize("mode", list(RevocationMode))
def test_every_mode_refuses_a_revoked_certificate(pki, leaf, mode):
    assert verdict(pki, leaf, (pki.crl(pki.personnes, [leaf.cert.serial_number]),), mode) is Reason.CERTIFICATE_REVOKED


def test_crls_are_indexed_once_per_bundle(pki):
    bundle = pki.bundle()
    assert revocation.crls_for(pki.personnes.cert, bundle) == (pki.empty_crls[1],)
    index = bundle.cache[("revocation", "crls-by-issuer")]
    assert set(index) == {pki.root.cert.subject, pki.personnes.cert.subject, pki.structures.cert.subject}
    assert revocation.crls_for(pki.direct_ca.cert, bundle) == ()


def _entry(serial: int, extension: x509.ExtensionType, critical: bool) -> x509.RevokedCertificate:
    return (
        x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(CRL_THIS_UPDATE)
        .add_extension(extension, critical=critical).build()
    )


@pytest.mark.parametrize(
    "extension, critical, expected",
    [
        (x509.CRLReason(x509.ReasonFlags.key_compromise), False, Reason.CERTIFICATE_REVOKED),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"), b"\x05\x00"), False, Reason.CERTIFICATE_REVOKED),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.2"), b"\x05\x00"), True, Reason.REVOCATION_UNKNOWN),
        (x509.CertificateIssuer([x509.DirectoryName(x509.Name([]))]), True, Reason.REVOCATION_UNKNOWN),
    ],
    ids=["reason-code", "unknown-non-critical", "unknown-critical", "certificate-issuer"],
)
def test_entry_extensions(pki, leaf, extension, critical, expected):
    # The odd entry is another certificate's: it decides whether the whole CRL can be trusted.
    entries = [leaf.cert.serial_number, _entry(77, extension, critical)]
    assert verdict(pki, leaf, (pki.crl(pki.root), pki.crl(pki.personnes, entries))) is expected


def test_large_crl_is_looked_up_by_serial(pki, leaf):
    many = [*range(1, 20_000), (leaf.cert.serial_number, CRL_THIS_UPDATE)]
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, many))
    assert verdict(pki, leaf, crls) is Reason.CERTIFICATE_REVOKED
    assert verdict(pki, pki.practitioner(serial=20_000), crls) is Reason.OK
