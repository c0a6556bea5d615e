"""Writes the demo PKI the example configuration points to (certs/demo/).

An IGC-Santé-like hierarchy: a root, one CA for people (signature
certificates), one for structures (organisation and server certificates),
their CRLs, and leaves with keys for the demo hospital and its remote peer.
Idempotent: only absent files are created, so existing keys and the
certificates issued from them stay valid across runs.

    python3 -m relay.demopki certs/demo
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from cryptography.x509.oid import ExtendedKeyUsageOID

from .devpki import (
    Issued, crl_pem, load_issued, make_ca, make_crl, make_leaf, organisation_subject, practitioner_subject,
)
from .trust.atomic import atomic_write

LOCAL_DOMAIN = "hopital-demo.mssante.fr"
PEER_DOMAIN = "clinique-peer.mssante.fr"
CRL_BASE = "http://127.0.0.1:8089/crl"  # `relay crl refresh` demo: serve certs/demo/ there

_TLS_EKU = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)

# name -> (issuer name or None, how to make it from its issuer)
_SPECS: dict[str, tuple[str | None, Callable[[Issued | None], Issued]]] = {
    "igc-root": (None, lambda _: make_ca("Demo IGC-Sante Racine")),
    "igc-personnes": ("igc-root", lambda ca: make_ca("Demo IGC-Sante Personnes", ca, path_length=0, crl_url=f"{CRL_BASE}/igc-root.crl")),
    "igc-structures": ("igc-root", lambda ca: make_ca("Demo IGC-Sante Structures", ca, path_length=0, crl_url=f"{CRL_BASE}/igc-root.crl")),
    "dr-martin": ("igc-personnes", lambda ca: make_leaf(
        ca, practitioner_subject("810000000001", "MARTIN", "Claire"),
        emails=[f"claire.martin@{LOCAL_DOMAIN}"], crl_url=f"{CRL_BASE}/igc-personnes.crl")),
    "dr-durand": ("igc-personnes", lambda ca: make_leaf(
        ca, practitioner_subject("810000000002", "DURAND", "Paul"),
        emails=[f"paul.durand@{PEER_DOMAIN}"], crl_url=f"{CRL_BASE}/igc-personnes.crl")),
    "hopital-demo-org": ("igc-structures", lambda ca: make_leaf(
        ca, organisation_subject(f"secretariat.{LOCAL_DOMAIN}", "1750000001", "HOPITAL DEMO"),
        emails=[f"secretariat@{LOCAL_DOMAIN}"], dns_names=[LOCAL_DOMAIN], crl_url=f"{CRL_BASE}/igc-structures.crl")),
    "mx-hopital-demo": ("igc-structures", lambda ca: make_leaf(
        ca, organisation_subject(f"mx.{LOCAL_DOMAIN}", "1750000001", "HOPITAL DEMO"),
        dns_names=[f"mx.{LOCAL_DOMAIN}", "localhost"], key_usage="both", eku=_TLS_EKU, crl_url=f"{CRL_BASE}/igc-structures.crl")),
    "mx-clinique-peer": ("igc-structures", lambda ca: make_leaf(
        ca, organisation_subject(f"mx.{PEER_DOMAIN}", "1750000002", "CLINIQUE PEER"),
        dns_names=[f"mx.{PEER_DOMAIN}", "localhost"], key_usage="both", eku=_TLS_EKU, crl_url=f"{CRL_BASE}/igc-structures.crl")),
}
_CAS = ("igc-root", "igc-personnes", "igc-structures")


def write_demo_pki(folder: Path) -> list[Path]:
    """Create what is absent under `folder`; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    issued: dict[str, Issued] = {}
    for name, (issuer, make) in _SPECS.items():
        issued[name] = _ensure(folder, name, lambda: make(issued[issuer] if issuer else None), written)
    for name in _CAS:
        path = folder / f"{name}.crl"
        if not path.exists():
            atomic_write(path, crl_pem(make_crl(issued[name])))
            written.append(path)
    chain = folder / "igc-chain.pem"
    if not chain.exists():
        atomic_write(chain, b"".join(issued[name].cert_pem for name in _CAS))
        written.append(chain)
    return written


def _ensure(folder: Path, name: str, make: Callable[[], Issued], written: list[Path]) -> Issued:
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}.key"
    if cert_path.exists() and key_path.exists():
        return load_issued(folder, name)
    made = make()
    atomic_write(key_path, made.key_pem)  # created 0600 (mkstemp)
    atomic_write(cert_path, made.cert_pem)
    written += [cert_path, key_path]
    return made


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "certs/demo")
    for path in write_demo_pki(folder):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
