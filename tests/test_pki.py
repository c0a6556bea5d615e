"""The shared test PKI holds the shapes its docstring promises."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from tests.pki import CRL_NEXT_UPDATE, CRL_THIS_UPDATE, LEAF_NOT_AFTER, LEAF_NOT_BEFORE, NOW, RPPS_ID


def test_practitioner_leaf_is_issued_by_personnes_at_fixed_dates(pki):
    leaf = pki.practitioner()
    assert leaf.cert.issuer == pki.personnes.cert.subject
    assert (leaf.cert.not_valid_before_utc, leaf.cert.not_valid_after_utc) == (LEAF_NOT_BEFORE, LEAF_NOT_AFTER)
    assert LEAF_NOT_BEFORE < NOW < LEAF_NOT_AFTER
    cn = leaf.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == RPPS_ID


def test_bundle_holds_one_fresh_crl_per_ca(pki):
    bundle = pki.bundle()
    assert {crl.issuer for crl in bundle.crls} == {pki.root.cert.subject, pki.personnes.cert.subject, pki.structures.cert.subject}
    assert all(crl.last_update_utc == CRL_THIS_UPDATE and crl.next_update_utc == CRL_NEXT_UPDATE for crl in bundle.crls)


def test_sha1_ca_is_signed_with_sha1_at_fixed_dates(pki, tmp_path):
    ca = pki.sha1_ca(tmp_path)
    assert isinstance(ca.cert.signature_hash_algorithm, hashes.SHA1)
    assert ca.cert.issuer == pki.root.cert.subject
    assert ca.cert.not_valid_before_utc.year == 2024
    assert ca.cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
