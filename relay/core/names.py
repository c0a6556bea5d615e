"""Distinguished names rendered for people: RFC 4514 with the short names health PKIs use."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

# cryptography prints these as dotted OIDs; IGC-Santé subjects are read as
# "CN=899700367917+SN=DUPONT+GN=JEAN,T=Médecin,C=FR".
_SHORT_NAMES = {
    NameOID.SURNAME: "SN",
    NameOID.GIVEN_NAME: "GN",
    NameOID.TITLE: "T",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.EMAIL_ADDRESS: "emailAddress",
}


def display_name(name: x509.Name) -> str:
    return name.rfc4514_string(_SHORT_NAMES)
