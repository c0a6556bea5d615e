"""Verification throughput: how many signed messages one process verifies per second.

    python3 bench/verify.py [--seconds 3]

A leaf under a two-level chain (root -> intermediate -> leaf) signs a 20 KB
and a 2 MB message (detached multipart/signed, RSA-2048, SHA-256), and the
same 2 MB content as an opaque application/pkcs7-mime message; the trust
bundle holds the root, the intermediate and a CRL from each CA, hard
revocation. Caches are warmed first, then each case runs for a fixed time.
The per-stage breakdown times the core's module functions one by one on the
same message, so it shows where the time goes.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout, not an installed copy

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.serialization import pkcs7  # noqa: E402

from relay import devpki  # noqa: E402
from relay.core import certpath, cms, identity, mime  # noqa: E402
from relay.core.bundle import Bundle, RevocationMode  # noqa: E402
from relay.core.limits import DEFAULT_LIMITS  # noqa: E402
from relay.core.trustview import StaticTrust  # noqa: E402
from relay.core.verify import verify_message  # noqa: E402

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
SENDER = "jean.dupont@medecin.mssante.fr"


def build() -> tuple[devpki.Issued, devpki.Issued, Bundle]:
    root = devpki.make_ca("BENCH ROOT")
    inter = devpki.make_ca("BENCH PERSONNES", root)
    leaf = devpki.make_leaf(inter, devpki.practitioner_subject("810001234567", "DUPONT", "Jean"), emails=[SENDER])
    bundle = Bundle(
        name="bench",
        anchors=(root.cert,),
        intermediates=(inter.cert,),
        crls=(devpki.make_crl(root), devpki.make_crl(inter, [12345, 67890])),
        revocation=RevocationMode.HARD,
    )
    return leaf, inter, bundle


def signed_message(size: int, leaf: devpki.Issued, inter: devpki.Issued, detached: bool = True) -> bytes:
    """A signed message whose body is `size` bytes of text lines: multipart/signed, or opaque."""
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    body = (line * (size // len(line) + 1))[:size]
    body = body[: body.rfind(b"\r\n") + 2]
    entity = b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
    builder = pkcs7.PKCS7SignatureBuilder().set_data(entity).add_signer(leaf.cert, leaf.key, hashes.SHA256()).add_certificate(inter.cert)
    if detached:
        smime = builder.sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
        smime = smime.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    else:  # the SMIME encoding of cryptography is always multipart/signed
        smime = (
            b"MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n"
        ) + base64.encodebytes(builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])).replace(b"\n", b"\r\n")
    outer = f"From: Dr Jean Dupont <{SENDER}>\r\nTo: secretariat@clinique.mssante.fr\r\nSubject: bench\r\n"
    return outer.encode() + smime


def rate(work: Callable[[], object], seconds: float) -> tuple[float, float]:
    """Calls per wall-clock second and per CPU second of `work` over about
    `seconds`, after one warm-up call. On a shared machine the CPU figure is
    the steadier one: it ignores the time other processes held the cores."""
    work()
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    deadline = start + seconds
    while True:
        work()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return calls / (now - start), calls / max(time.process_time() - cpu_start, 1e-9)


def stages(raw: bytes, bundle: Bundle, seconds: float) -> list[tuple[str, float]]:
    """Microseconds per call of each core step, fed with the previous step's output."""
    signed = mime.locate_signature(raw, DEFAULT_LIMITS)
    data = cms.verify_signed_data(signed.signature, signed.detached_content)
    signer = data.signers[0].certificate
    steps: list[tuple[str, Callable[[], object]]] = [
        ("mime.locate_signature", lambda: mime.locate_signature(raw, DEFAULT_LIMITS)),
        ("cms.verify_signed_data", lambda: cms.verify_signed_data(signed.signature, signed.detached_content)),
        ("mime.check_content", lambda: mime.check_content(signed, data.content, DEFAULT_LIMITS)),
        ("certpath.validate_signer", lambda: certpath.validate_signer(signer, data.certificates, bundle, NOW)),
        ("identity (read, bind, professional)", lambda: _identity(signer, signed.sender.address, bundle)),
    ]
    return [(name, 1e6 / rate(work, seconds)[1]) for name, work in steps]


def _identity(cert: x509.Certificate, sender: str, bundle: Bundle) -> None:
    who = identity.read_identity(cert)
    identity.check_address_binding(cert, sender, bundle)
    identity.check_professional(who, bundle)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time spent on each measurement")
    args = parser.parse_args()
    leaf, inter, bundle = build()
    trust = StaticTrust((bundle,))
    cases = (("20 KB", 20 * 1024, True), ("2 MB", 2 * 1024 * 1024, True), ("2 MB opaque", 2 * 1024 * 1024, False))
    for label, size, detached in cases:
        raw = signed_message(size, leaf, inter, detached)
        verdict = verify_message(raw, trust, NOW)
        if not verdict.accepted:
            print(f"{label}: not accepted ({verdict.code}: {verdict.detail}); nothing to measure")
            return 1
        wall, cpu = rate(lambda: verify_message(raw, trust, NOW), args.seconds)
        print(
            f"{label} message ({len(raw):,} bytes): {wall:,.0f} verifications/s, {wall * len(raw) / 1e6:,.1f} MB/s"
            f" (per CPU second: {cpu:,.0f}/s, {cpu * len(raw) / 1e6:,.1f} MB/s)"
        )
        print("    per stage, CPU time per call:")
        for name, micros in stages(raw, bundle, args.seconds / 3):
            print(f"    {name:<38} {micros:10.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
