"""Signer path validation: every reason certpath can give, in precedence order, and the path cache."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from relay import devpki
from relay.core import certpath
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from tests.pki import CA_NOT_BEFORE, IGC_SANTE_TEST_POLICY, LEAF_NOT_AFTER, LEAF_NOT_BEFORE, NOW, UTC


def refusal(signer, bundle, presented=(), now=NOW) -> Rejection:
    with pytest.raises(Rejection) as caught:
        certpath.validate_signer(signer.cert if hasattr(signer, "cert") else signer, presented, bundle, now)
    return caught.value


def test_practitioner_chain_is_returned_leaf_first(pki):
    leaf = pki.practitioner()
    chain = certpath.validate_signer(leaf.cert, [leaf.cert], pki.bundle(), NOW)
    assert chain == (leaf.cert, pki.personnes.cert, pki.root.cert)


def test_intermediate_presented_in_the_signature_is_used(pki):
    leaf = pki.practitioner()
    bundle = pki.bundle(intermediates=())
    assert refusal(leaf, bundle).reason is Reason.UNTRUSTED_ISSUER
    chain = certpath.validate_signer(leaf.cert, [leaf.cert, pki.personnes.cert], bundle, NOW)
    assert chain[1] == pki.personnes.cert


def test_direct_leaf_without_policy_validates_in_the_direct_bundle(pki):
    leaf = pki.direct()
    assert certpath.validate_signer(leaf.cert, [], pki.direct_bundle(), NOW)[-1] == pki.direct_root.cert


def test_leaf_without_san_or_eku_is_not_refused_by_tls_rules(pki):
    leaf = pki.practitioner(email=None, eku=None)
    assert len(certpath.validate_signer(leaf.cert, [], pki.bundle(), NOW)) == 3


def test_leaf_from_another_hierarchy_is_untrusted(pki):
    refused = refusal(pki.direct(), pki.bundle())
    assert refused.reason is Reason.UNTRUSTED_ISSUER
    assert "Direct Test HISP CA" in refused.detail


def test_forged_issuer_with_the_same_name_is_untrusted(pki):
    impostor = devpki.make_ca("AC IGC-SANTE TEST PERSONNES", devpki.make_ca("AC RACINE IGC-SANTE TEST"))
    forged = pki.leaf(impostor, devpki.practitioner_subject("810001234567", "X", "Y"))
    assert refusal(forged, pki.bundle(), [impostor.cert]).reason is Reason.UNTRUSTED_ISSUER


def test_issuer_without_ca_flag_is_untrusted(pki):
    not_ca = devpki.make_ca("NOT A CA", pki.root, ca=False, key_usage=None, not_before=CA_NOT_BEFORE)
    leaf = pki.leaf(not_ca, devpki.direct_subject("A"))
    refused = refusal(leaf, pki.bundle(), [not_ca.cert])
    assert refused.reason is Reason.UNTRUSTED_ISSUER
    assert "basicConstraints" in refused.detail


def test_issuer_without_key_cert_sign_is_untrusted(pki):
    usage = x509.KeyUsage(True, False, False, False, False, False, True, False, False)
    no_sign = devpki.make_ca("NO KEYCERTSIGN", pki.root, key_usage=usage, not_before=CA_NOT_BEFORE)
    leaf = pki.leaf(no_sign, devpki.direct_subject("A"))
    refused = refusal(leaf, pki.bundle(), [no_sign.cert])
    assert refused.reason is Reason.UNTRUSTED_ISSUER
    assert "keyCertSign" in refused.detail


def test_path_length_constraint_is_enforced(pki):
    # personnes has pathLen 0: no CA may sit below it.
    sub = devpki.make_ca("SOUS-AC", pki.personnes, not_before=CA_NOT_BEFORE)
    leaf = pki.leaf(sub, devpki.direct_subject("A"))
    refused = refusal(leaf, pki.bundle(), [sub.cert])
    assert refused.reason is Reason.UNTRUSTED_ISSUER
    assert "path length" in refused.detail


def test_sha1_signed_intermediate_is_weak_even_when_also_expired(pki, tmp_path):
    sha1_ca = pki.sha1_ca(tmp_path)
    leaf = pki.leaf(sha1_ca, devpki.direct_subject("A"))
    refused = refusal(leaf, pki.bundle(), [sha1_ca.cert])
    assert refused.reason is Reason.WEAK_ALGORITHM
    assert "SHA1" in refused.detail and "AC SHA1 TEST" in refused.detail
    assert refusal(leaf, pki.bundle(), [sha1_ca.cert], now=dt.datetime(2040, 1, 1, tzinfo=UTC)).reason is Reason.WEAK_ALGORITHM


def test_sha1_self_signature_of_the_anchor_does_not_count(pki, tmp_path):
    sha1_root = pki.sha1_ca(tmp_path, common_name="AC SHA1 ROOT", self_signed=True)
    leaf = pki.leaf(sha1_root, devpki.direct_subject("A"))
    bundle = pki.bundle(anchors=(sha1_root.cert,), intermediates=(), crls=(pki.crl(sha1_root),))
    assert certpath.validate_signer(leaf.cert, [], bundle, NOW) == (leaf.cert, sha1_root.cert)


def test_rsa_1024_leaf_is_weak_and_outranks_an_untrusted_issuer(pki):
    small = pki.practitioner(key_kind="rsa1024")
    refused = refusal(small, pki.bundle())
    assert (refused.reason, "1024-bit" in refused.detail) == (Reason.WEAK_ALGORITHM, True)
    assert refusal(small, pki.direct_bundle()).reason is Reason.WEAK_ALGORITHM


def test_expired_and_not_yet_valid_leaf_are_distinct(pki):
    leaf = pki.practitioner()
    late = LEAF_NOT_AFTER + dt.timedelta(days=1)
    early = LEAF_NOT_BEFORE - dt.timedelta(days=1)
    # CRLs current at each instant, so that only validity can be at fault.
    expired = refusal(leaf, pki.bundle(crls=_crls_at(pki, late)), now=late)
    not_yet = refusal(leaf, pki.bundle(crls=_crls_at(pki, early)), now=early)
    assert (expired.reason, not_yet.reason) == (Reason.CERTIFICATE_EXPIRED, Reason.CERTIFICATE_NOT_YET_VALID)
    assert "signer certificate" in expired.detail and "2028-01-01" in expired.detail


def test_expired_intermediate_is_named(pki):
    short = devpki.make_ca("AC COURTE", pki.root, not_before=CA_NOT_BEFORE, not_after=dt.datetime(2026, 1, 1, tzinfo=UTC))
    leaf = pki.leaf(short, devpki.direct_subject("A"), not_before=dt.datetime(2025, 1, 1, tzinfo=UTC))
    refused = refusal(leaf, pki.bundle(), [short.cert])
    assert refused.reason is Reason.CERTIFICATE_EXPIRED
    assert "AC COURTE" in refused.detail


def test_expired_anchor_is_reported_as_expired(pki):
    old_root = devpki.make_ca("AC RACINE ANCIENNE", not_before=CA_NOT_BEFORE, not_after=dt.datetime(2026, 3, 1, tzinfo=UTC))
    leaf = pki.leaf(old_root, devpki.direct_subject("A"))
    refused = refusal(leaf, pki.bundle(anchors=(old_root.cert,), crls=()))
    assert refused.reason is Reason.CERTIFICATE_EXPIRED
    assert "AC RACINE ANCIENNE" in refused.detail


def test_untrusted_outranks_expired(pki):
    leaf = pki.direct()
    late = LEAF_NOT_AFTER + dt.timedelta(days=1)
    assert refusal(leaf, pki.bundle(), now=late).reason is Reason.UNTRUSTED_ISSUER


def test_missing_key_usage_is_refused(pki):
    refused = refusal(pki.practitioner(key_usage=None), pki.bundle())
    assert (refused.reason, "no keyUsage" in refused.detail) == (Reason.KEY_USAGE, True)


def test_encryption_only_key_usage_is_refused(pki):
    assert refusal(pki.practitioner(key_usage="encrypt"), pki.bundle()).reason is Reason.KEY_USAGE


def test_non_repudiation_alone_is_enough(pki):
    usage = x509.KeyUsage(False, True, False, False, False, False, False, False, False)
    assert certpath.validate_signer(pki.practitioner(key_usage=usage).cert, [], pki.bundle(), NOW)


def test_eku_without_email_protection_is_refused(pki):
    leaf = pki.practitioner(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    refused = refusal(leaf, pki.bundle())
    assert refused.reason is Reason.KEY_USAGE
    assert ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string in refused.detail


def test_any_extended_key_usage_is_accepted(pki):
    leaf = pki.practitioner(eku=(ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,))
    assert certpath.validate_signer(leaf.cert, [], pki.bundle(), NOW)


def test_revocation_outranks_key_usage(pki):
    leaf = pki.practitioner(key_usage=None)
    crls = (pki.crl(pki.root), pki.crl(pki.personnes, [leaf.cert.serial_number]))
    assert refusal(leaf, pki.bundle(crls=crls)).reason is Reason.CERTIFICATE_REVOKED


def test_required_policy_must_be_asserted(pki):
    bundle = pki.bundle(required_policies=frozenset({"1.2.250.1.213.1.1.1"}))
    refused = refusal(pki.practitioner(), bundle)
    assert refused.reason is Reason.POLICY_MISMATCH
    assert IGC_SANTE_TEST_POLICY in refused.detail
    assert refusal(pki.practitioner(policies=()), bundle).reason is Reason.POLICY_MISMATCH


def test_one_of_several_required_policies_is_enough(pki):
    bundle = pki.bundle(required_policies=frozenset({"1.2.250.1.213.1.1.1", IGC_SANTE_TEST_POLICY}))
    assert certpath.validate_signer(pki.practitioner().cert, [], bundle, NOW)


def test_key_usage_outranks_policy(pki):
    bundle = pki.bundle(required_policies=frozenset({"1.2.250.1.213.1.1.1"}))
    assert refusal(pki.practitioner(key_usage=None, policies=()), bundle).reason is Reason.KEY_USAGE


def test_naive_time_is_taken_as_utc(pki):
    assert certpath.validate_signer(pki.practitioner().cert, [], pki.bundle(), NOW.replace(tzinfo=None))


def _crls_at(pki, when: dt.datetime) -> tuple[x509.CertificateRevocationList, ...]:
    window = dict(this_update=when - dt.timedelta(days=1), next_update=when + dt.timedelta(days=1))
    return tuple(pki.crl(ca, **window) for ca in (pki.root, pki.personnes, pki.structures))


def test_many_same_named_certificates_are_refused(pki):
    # Self-issued CAs without key identifiers all link to each other by name: a maze for path search.
    keys = [devpki.new_key("p256") for _ in range(40)]
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "AC LABYRINTHE")])
    maze = [_bare_ca(name, key, signer) for key, signer in zip(keys, keys[1:] + keys[:1])]
    leaf = devpki.make_leaf(devpki.Issued(maze[0], keys[0]), devpki.direct_subject("A"))
    assert refusal(leaf, pki.bundle(), maze).reason is Reason.UNTRUSTED_ISSUER


def test_unknown_critical_extension_in_the_leaf_is_refused(pki):
    odd = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.7"), b"\x05\x00")
    refused = refusal(pki.practitioner(extensions=[(odd, True)]), pki.bundle())
    assert refused.reason is Reason.UNTRUSTED_ISSUER
    assert "1.3.6.1.4.1.99999.7" in refused.detail


def _bare_ca(name: x509.Name, key, signer) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(CA_NOT_BEFORE)
        .not_valid_after(LEAF_NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


def test_sha1_signed_signer_certificate_is_weak(pki, tmp_path):
    sha1_signed = pki.sha1_ca(tmp_path)
    refused = refusal(sha1_signed, pki.bundle())
    assert (refused.reason, refused.detail) == (Reason.WEAK_ALGORITHM, "signer certificate is signed with SHA1")


@pytest.mark.parametrize("weak_one", ["intermediate", "anchor"])
def test_rsa_1024_ca_key_in_the_path_is_weak(pki, weak_one):
    root = devpki.make_ca("AC RACINE 1024", key_kind="rsa1024" if weak_one == "anchor" else "rsa2048", not_before=CA_NOT_BEFORE)
    inter = devpki.make_ca("AC 1024", root, key_kind="rsa1024" if weak_one == "intermediate" else "rsa2048", not_before=CA_NOT_BEFORE)
    leaf = pki.leaf(inter, devpki.direct_subject("A"))
    refused = refusal(leaf, pki.bundle(anchors=(root.cert,), crls=()), [inter.cert])
    assert refused.reason is Reason.WEAK_ALGORITHM
    assert "1024-bit RSA key" in refused.detail


def test_rfc822_name_constraints_of_a_ca_are_enforced(pki):
    constraints = x509.NameConstraints([x509.RFC822Name(".mssante.fr")], None)
    ca = devpki.make_ca("AC CONTRAINTE", pki.root, not_before=CA_NOT_BEFORE, extensions=[(constraints, True)])
    bundle = pki.bundle(crls=(pki.crl(pki.root), pki.crl(ca)))
    inside = pki.leaf(ca, devpki.direct_subject("A"), emails=["a@hopital.mssante.fr"])
    outside = pki.leaf(ca, devpki.direct_subject("A"), emails=["a@ailleurs.example"])
    assert certpath.validate_signer(inside.cert, [ca.cert], bundle, NOW)[1] == ca.cert
    refused = refusal(outside, bundle, [ca.cert])
    assert refused.reason is Reason.UNTRUSTED_ISSUER and "name constraint" in refused.detail


def test_duplicated_extension_in_the_leaf_is_refused_not_raised(pki):
    malformed = pki.with_duplicate_extension(pki.practitioner().cert, pki.personnes)
    refused = refusal(malformed, pki.bundle())
    assert refused.reason is Reason.UNTRUSTED_ISSUER
    assert "duplicate extension" in refused.detail
