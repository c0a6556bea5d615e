"""Differential check: certpath and `openssl verify` agree on the same certificates, CRLs and time.

openssl runs as a real process with full CRL checking (-crl_check_all, the
equivalent of the hard revocation mode) and the S/MIME signing purpose.
Its error codes are mapped to our reasons; both must give the same answer.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from relay import devpki
from relay.core import certpath
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from tests.pki import CA_NOT_BEFORE, CRL_NEXT_UPDATE, LEAF_NOT_AFTER, LEAF_NOT_BEFORE, NOW

DAY = dt.timedelta(days=1)

# openssl verify error numbers (X509_V_ERR_*) and the reason relay gives for each.
OPENSSL_REASONS = {
    3: Reason.REVOCATION_UNKNOWN,  # unable to get certificate CRL
    8: Reason.REVOCATION_UNKNOWN,  # CRL signature failure
    9: Reason.CERTIFICATE_NOT_YET_VALID,
    10: Reason.CERTIFICATE_EXPIRED,
    12: Reason.REVOCATION_UNKNOWN,  # CRL has expired
    20: Reason.UNTRUSTED_ISSUER,  # unable to get local issuer certificate
    23: Reason.CERTIFICATE_REVOKED,
    25: Reason.UNTRUSTED_ISSUER,  # path length constraint exceeded
    26: Reason.KEY_USAGE,  # unsupported certificate purpose
}


def ours(leaf: x509.Certificate, presented, bundle, now: dt.datetime) -> Reason:
    try:
        certpath.validate_signer(leaf, presented, bundle, now)
    except Rejection as refusal:
        return refusal.reason
    return Reason.OK


def openssl(tmp_path: Path, leaf: x509.Certificate, presented, bundle, now: dt.datetime) -> Reason:
    (tmp_path / "anchors.pem").write_bytes(devpki.pem_bundle(bundle.anchors))
    (tmp_path / "untrusted.pem").write_bytes(devpki.pem_bundle([*presented, *bundle.intermediates]))
    (tmp_path / "crls.pem").write_bytes(b"".join(devpki.crl_pem(crl) for crl in bundle.crls))
    (tmp_path / "leaf.pem").write_bytes(devpki.pem_bundle([leaf]))
    command = ["openssl", "verify", "-CAfile", "anchors.pem", "-attime", str(int(now.timestamp())),
               "-purpose", "smimesign", "-crl_check_all", "-CRLfile", "crls.pem", "-verbose"]
    if presented or bundle.intermediates:
        command += ["-untrusted", "untrusted.pem"]
    done = subprocess.run([*command, "leaf.pem"], cwd=tmp_path, capture_output=True, text=True)
    if done.returncode == 0:
        return Reason.OK
    error = next(line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error "))
    return OPENSSL_REASONS[int(error.split()[1])]


def _scenarios(pki) -> dict[str, tuple]:
    leaf = pki.practitioner()
    revoked_crls = (pki.crl(pki.root), pki.crl(pki.personnes, [leaf.cert.serial_number]))
    deep = devpki.make_ca("SOUS-AC", pki.personnes, not_before=CA_NOT_BEFORE)
    deep_leaf = pki.leaf(deep, devpki.direct_subject("A"))
    client_only = pki.practitioner(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    stale_at = CRL_NEXT_UPDATE + DAY
    return {
        "valid": (leaf, [], pki.bundle(), NOW),
        "intermediate-presented": (leaf, [pki.personnes.cert], pki.bundle(intermediates=()), NOW),
        "untrusted": (pki.direct(), [], pki.bundle(), NOW),
        "expired": (leaf, [], pki.bundle(crls=_crls_around(pki, LEAF_NOT_AFTER + DAY)), LEAF_NOT_AFTER + DAY),
        "not-yet-valid": (leaf, [], pki.bundle(crls=_crls_around(pki, LEAF_NOT_BEFORE - DAY)), LEAF_NOT_BEFORE - DAY),
        "revoked-leaf": (leaf, [], pki.bundle(crls=revoked_crls), NOW),
        "revoked-intermediate": (leaf, [], pki.bundle(crls=(pki.crl(pki.root, [pki.personnes.cert.serial_number]), pki.crl(pki.personnes))), NOW),
        "no-crl": (leaf, [], pki.bundle(crls=(pki.crl(pki.root),)), NOW),
        "stale-crl": (leaf, [], pki.bundle(), stale_at),
        "bad-crl-signature": (leaf, [], pki.bundle(crls=(pki.crl(pki.root), pki.crl(pki.personnes, signer=pki.structures))), NOW),
        "path-length": (deep_leaf, [deep.cert], pki.bundle(crls=(*pki.empty_crls, pki.crl(deep))), NOW),
        "client-auth-only": (client_only, [], pki.bundle(), NOW),
    }


SCENARIOS = ["valid", "intermediate-presented", "untrusted", "expired", "not-yet-valid", "revoked-leaf",
             "revoked-intermediate", "no-crl", "stale-crl", "bad-crl-signature", "path-length", "client-auth-only"]


@pytest.fixture(scope="module")
def scenarios(pki) -> dict[str, tuple]:
    return _scenarios(pki)


@pytest.mark.parametrize("name", SCENARIOS)
def test_certpath_agrees_with_openssl_verify(scenarios, name, tmp_path):
    leaf, presented, bundle, now = scenarios[name]
    assert ours(leaf.cert, presented, bundle, now) == openssl(tmp_path, leaf.cert, presented, bundle, now)


def test_scenarios_cover_distinct_answers(scenarios):
    assert sorted(scenarios) == sorted(SCENARIOS)
    answers = {ours(leaf.cert, presented, bundle, now) for leaf, presented, bundle, now in scenarios.values()}
    assert answers == {Reason.OK, Reason.UNTRUSTED_ISSUER, Reason.CERTIFICATE_EXPIRED, Reason.CERTIFICATE_NOT_YET_VALID,
                       Reason.CERTIFICATE_REVOKED, Reason.REVOCATION_UNKNOWN, Reason.KEY_USAGE}


def _crls_around(pki, when: dt.datetime) -> tuple[x509.CertificateRevocationList, ...]:
    return tuple(pki.crl(ca, this_update=when - DAY, next_update=when + DAY) for ca in (pki.root, pki.personnes, pki.structures))
