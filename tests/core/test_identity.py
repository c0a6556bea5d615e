"""Signer identity (IGC-Santé and Direct layouts), address binding and the professional requirement."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from relay.core import identity
from relay.core.errors import Rejection
from relay.core.reasons import Reason
from relay.core.verdict import SignerIdentity
from tests.pki import ADELI_ID, FINESS_ID, RPPS_ID, SIRET_ID, subject_with_email

SENDER = "jean.dupont@hopital-test.mssante.fr"


def refused(call, *args) -> Rejection:
    with pytest.raises(Rejection) as caught:
        call(*args)
    return caught.value


# read_identity


def test_practitioner_identity(pki):
    leaf = pki.practitioner(title="Pharmacien")
    who = identity.read_identity(leaf.cert)
    assert who == SignerIdentity(
        subject=f"GN=JEAN+SN=DUPONT+CN={RPPS_ID},T=Pharmacien,C=FR",
        fingerprint_sha256=leaf.cert.fingerprint(hashes.SHA256()).hex(),
        email=SENDER,
        national_id=RPPS_ID,
        profession="Pharmacien",
        organisation_id=None,
    )
    assert len(who.fingerprint_sha256) == 64 and who.fingerprint_sha256 == who.fingerprint_sha256.lower()
    assert f"CN={RPPS_ID}" in who.subject


def test_adeli_identifier_is_read(pki):
    assert identity.read_identity(pki.practitioner(ADELI_ID).cert).national_id == ADELI_ID


def test_cn_that_is_not_an_identifier_is_ignored(pki):
    assert identity.read_identity(pki.practitioner("JEAN DUPONT").cert).national_id is None
    assert identity.read_identity(pki.practitioner("81234").cert).national_id is None


def test_plain_cn_shaped_like_an_identifier_is_not_taken(pki):
    # Only the CN of the multi-valued CN+SN+GN RDN is the IGC-Santé identifier.
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, RPPS_ID)])
    assert identity.read_identity(pki.leaf(pki.personnes, name).cert).national_id is None


def test_subject_serial_number_is_the_fallback_identifier(pki):
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, "Jean Dupont"),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, "810009999999"),
    ])
    assert identity.read_identity(pki.leaf(pki.personnes, name).cert).national_id == "810009999999"


@pytest.mark.parametrize("structure_id", [FINESS_ID, SIRET_ID, "12A0000016"])
def test_organisation_identity(pki, structure_id):
    who = identity.read_identity(pki.organisation(structure_id).cert)
    assert (who.organisation_id, who.national_id, who.email) == (structure_id, None, None)


def test_ou_that_is_not_a_structure_identifier_is_ignored(pki):
    assert identity.read_identity(pki.organisation("IGC-SANTE TEST").cert).organisation_id is None
    assert identity.read_identity(pki.organisation("31234").cert).organisation_id is None


def test_direct_identity_has_no_identifiers(pki):
    who = identity.read_identity(pki.direct().cert)
    assert (who.email, who.national_id, who.profession, who.organisation_id) == ("drsmith@direct.example.org", None, None, None)


def test_subject_email_is_read_when_there_is_no_san(pki):
    leaf = pki.leaf(pki.personnes, subject_with_email("Jean Dupont", "jean@legacy.example"))
    assert identity.read_identity(leaf.cert).email == "jean@legacy.example"


def test_first_rfc822_name_wins_over_subject_email(pki):
    leaf = pki.leaf(pki.personnes, subject_with_email("J", "old@legacy.example"), emails=["new@a.example", "b@a.example"])
    assert identity.read_identity(leaf.cert).email == "new@a.example"


def test_odd_certificates_do_not_raise(pki):
    empty = pki.leaf(pki.personnes, x509.Name([]), key_usage=None, eku=None, policies=())
    who = identity.read_identity(empty.cert)
    assert (who.subject, who.email, who.national_id, who.profession, who.organisation_id) == ("", None, None, None, None)
    # Attributes whose values are not text (a bytes-valued x500UniqueIdentifier) are skipped.
    bits = x509.Name([x509.NameAttribute(NameOID.X500_UNIQUE_IDENTIFIER, b"\x00\x01", x509.name._ASN1Type.BitString)])
    assert identity.read_identity(pki.leaf(pki.personnes, bits).cert).national_id is None


# check_address_binding


def test_rfc822_san_binds_its_address(pki):
    identity.check_address_binding(pki.practitioner().cert, SENDER, pki.bundle())


def test_domain_case_is_ignored_local_part_case_is_not(pki):
    leaf = pki.practitioner(email="Jean.Dupont@HOPITAL-TEST.MSSANTE.FR")
    identity.check_address_binding(leaf.cert, "Jean.Dupont@hopital-test.mssante.fr", pki.bundle())
    assert refused(identity.check_address_binding, leaf.cert, SENDER, pki.bundle()).reason is Reason.ADDRESS_MISMATCH


def test_any_of_several_rfc822_names_binds(pki):
    leaf = pki.practitioner(emails=["other@a.example", SENDER])
    identity.check_address_binding(leaf.cert, SENDER, pki.bundle())


def test_other_address_is_a_mismatch_naming_what_is_bound(pki):
    refusal = refused(identity.check_address_binding, pki.practitioner().cert, "someone.else@hopital-test.mssante.fr", pki.bundle())
    assert refusal.reason is Reason.ADDRESS_MISMATCH
    assert f"rfc822Name {SENDER}" in refusal.detail


def test_org_certificate_binds_its_domain_only_when_allowed(pki):
    org = pki.organisation().cert
    sender = "secretariat@hopital-test.mssante.fr"
    refusal = refused(identity.check_address_binding, org, sender, pki.bundle())
    assert refusal.reason is Reason.ADDRESS_MISMATCH
    assert "dNSName hopital-test.mssante.fr (organisation certificates not allowed)" in refusal.detail
    identity.check_address_binding(org, sender, pki.bundle(allow_org_certs=True))
    assert refused(identity.check_address_binding, org, "x@other.mssante.fr", pki.bundle(allow_org_certs=True)).reason is Reason.ADDRESS_MISMATCH


def test_subject_email_binds_only_when_allowed(pki):
    legacy = pki.leaf(pki.personnes, subject_with_email("Jean Dupont", SENDER)).cert
    refusal = refused(identity.check_address_binding, legacy, SENDER, pki.bundle())
    assert refusal.reason is Reason.ADDRESS_MISMATCH
    assert "subject emailAddress" in refusal.detail
    identity.check_address_binding(legacy, SENDER, pki.bundle(allow_subject_email=True))


def test_certificate_binding_nothing_says_so(pki):
    refusal = refused(identity.check_address_binding, pki.practitioner(email=None).cert, SENDER, pki.bundle())
    assert refusal.detail.endswith("certificate binds no address")


def test_domain_only_rfc822_name_binds_nothing(pki):
    leaf = pki.practitioner(emails=["hopital-test.mssante.fr"])
    assert refused(identity.check_address_binding, leaf.cert, SENDER, pki.bundle()).reason is Reason.ADDRESS_MISMATCH


# check_professional


def test_practitioner_is_professional(pki):
    identity.check_professional(identity.read_identity(pki.practitioner().cert), pki.bundle())


def test_missing_identifier_is_not_professional(pki):
    who = identity.read_identity(pki.practitioner("JEAN DUPONT").cert)
    refusal = refused(identity.check_professional, who, pki.bundle())
    assert refusal.reason is Reason.NOT_PROFESSIONAL and "RPPS" in refusal.detail


def test_organisation_satisfies_the_requirement_only_where_org_certs_are_allowed(pki):
    who = identity.read_identity(pki.organisation().cert)
    assert refused(identity.check_professional, who, pki.bundle()).reason is Reason.NOT_PROFESSIONAL
    identity.check_professional(who, pki.bundle(allow_org_certs=True))
    anonymous = identity.read_identity(pki.organisation("SERVICE").cert)
    refusal = refused(identity.check_professional, anonymous, pki.bundle(allow_org_certs=True))
    assert refusal.reason is Reason.NOT_PROFESSIONAL and "FINESS" in refusal.detail


def test_direct_signer_passes_when_no_identifier_is_required(pki):
    who = identity.read_identity(pki.direct().cert)
    assert refused(identity.check_professional, who, pki.bundle()).reason is Reason.NOT_PROFESSIONAL
    identity.check_professional(who, pki.direct_bundle())
    identity.check_professional(who, pki.bundle(require_professional=False))


def test_duplicated_extension_reads_as_no_alternative_name(pki):
    malformed = pki.with_duplicate_extension(pki.practitioner().cert, pki.personnes)
    who = identity.read_identity(malformed)
    assert (who.national_id, who.email) == (RPPS_ID, None)
    refusal = refused(identity.check_address_binding, malformed, SENDER, pki.bundle())
    assert refusal.reason is Reason.ADDRESS_MISMATCH
