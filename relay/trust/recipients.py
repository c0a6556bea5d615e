"""[recipients]: the encryption certificates of the people and systems the relay writes to.

    [recipients]
    directory = "recipients"    # *.pem files, relative to the trust directory

Each PEM file holds one recipient certificate (its issuing intermediates may
follow it) and is indexed by the rfc822Name addresses of its subjectAltName.
A certificate is usable only if it is valid now, has an RSA key (key
transport), a keyUsage with keyEncipherment, and a path to an anchor of the
signer bundles the directory trusts for its address's domain: the relay
never encrypts to a key nobody vouches for. Anything else is an error that
names the file; an expired or not yet valid certificate is a warning and is
left out, so that the domain's policy decides what happens to its mail.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import verification

from ..core.certpath import verify_chain
from ..core.snapshot import Snapshot, normalise_address
from ..core.x509read import UNREADABLE, extension_value
from .problems import Problems
from .sources import Sources


def read_recipients(
    directory: Path, snapshot: Snapshot, sources: Sources, problems: Problems, now: dt.datetime
) -> dict[str, x509.Certificate]:
    """{address: certificate} for every usable certificate of the directory."""
    if not directory.is_dir():
        problems.error(str(directory), "the [recipients] directory does not exist")
        return {}
    found: dict[str, x509.Certificate] = {}
    origin: dict[str, Path] = {}
    for path in sorted(directory.glob("*.pem")):
        for address, cert in _read_one(path, snapshot, sources, problems, now):
            if address in found:
                problems.error(str(path), f"{address} already has an encryption certificate in {origin[address].name}")
                continue
            found[address], origin[address] = cert, path
    return found


def _read_one(
    path: Path, snapshot: Snapshot, sources: Sources, problems: Problems, now: dt.datetime
) -> Iterable[tuple[str, x509.Certificate]]:
    try:
        certs = x509.load_pem_x509_certificates(sources.read(path))
    except OSError as error:
        problems.error(str(path), error.strerror or str(error))
        return ()
    except ValueError:
        problems.error(str(path), "not a PEM certificate")
        return ()
    leaf, presented = certs[0], certs[1:]
    try:  # cryptography reads extensions on first use: an odd one fails here, not later
        why, addresses = _unusable(leaf), _addresses(leaf)
    except UNREADABLE as error:
        problems.error(str(path), f"unreadable certificate extension ({error})")
        return ()
    if why:
        problems.error(str(path), why)
        return ()
    if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
        problems.warn(str(path), f"outside its validity ({leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}): not used")
        return ()
    if not addresses:
        problems.error(str(path), "no rfc822Name in subjectAltName: no address to encrypt for")
        return ()
    usable = []
    for address in addresses:
        why = _untrusted(leaf, presented, address, snapshot, now)
        if why:
            problems.error(str(path), why)
        else:
            usable.append((address, leaf))
    return usable


def _unusable(cert: x509.Certificate) -> str | None:
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        return "not an RSA key: only RSA key transport is supported"
    usage = extension_value(cert, x509.KeyUsage)
    if usage is None:
        return "no keyUsage: keyEncipherment is required"
    if not usage.key_encipherment:
        return "keyUsage lacks keyEncipherment"
    return None


def _addresses(cert: x509.Certificate) -> list[str]:
    names = extension_value(cert, x509.SubjectAlternativeName)
    if names is None:
        return []
    return sorted({normalise_address(a) for a in names.get_values_for_type(x509.RFC822Name)})


def _untrusted(leaf: x509.Certificate, presented: list[x509.Certificate], address: str, snapshot: Snapshot, now: dt.datetime) -> str | None:
    route = snapshot.route(address)
    if not route.known:
        return f"{address}: no domain rule for its domain"
    bundles = snapshot.signer_bundles(address)
    for bundle in bundles:
        try:
            verify_chain(leaf, presented, bundle, now)
            return None
        except verification.VerificationError:
            continue
    names = ", ".join(b.name for b in bundles) or "none"
    return f"{address}: no path to an anchor of its domain's signer bundles ({names})"
