"""Property: identity reading and binding never fail on odd subjects and alternative names."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from cryptography import x509
from cryptography.x509.oid import NameOID

from relay.core import identity
from relay.core.errors import Rejection
from relay.core.reasons import Reason

_OIDS = [NameOID.COMMON_NAME, NameOID.SURNAME, NameOID.GIVEN_NAME, NameOID.TITLE, NameOID.SERIAL_NUMBER,
         NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.EMAIL_ADDRESS, NameOID.ORGANIZATION_NAME]
_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
_attribute = st.builds(lambda oid, value: x509.NameAttribute(oid, value), st.sampled_from(_OIDS), _text)
_rdn = st.lists(_attribute, min_size=1, max_size=3, unique_by=lambda a: (a.oid, a.value)).map(x509.RelativeDistinguishedName)
_names = st.lists(_rdn, max_size=4).map(x509.Name)
_ascii = st.text(alphabet="abcAB.-@_9", min_size=1, max_size=15)
_addresses = st.lists(_ascii, max_size=2)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=_names, emails=_addresses, dns_names=_addresses, sender=_ascii)
def test_odd_certificates_give_identities_or_address_mismatch(pki, subject, emails, dns_names, sender):
    try:
        leaf = pki.leaf(pki.personnes, subject, emails=emails, dns_names=dns_names)
    except ValueError:
        return  # cryptography refuses to encode it (e.g. an rfc822Name with a display name): nothing to read
    who = identity.read_identity(leaf.cert)
    assert len(who.fingerprint_sha256) == 64
    try:
        identity.check_address_binding(leaf.cert, sender, pki.bundle(allow_org_certs=True, allow_subject_email=True))
    except Rejection as refusal:
        assert refusal.reason is Reason.ADDRESS_MISMATCH
    try:
        identity.check_professional(who, pki.bundle())
    except Rejection as refusal:
        assert refusal.reason is Reason.NOT_PROFESSIONAL and who.national_id is None
