"""Load time and memory of a trust directory at national scale.

The full MSSanté whitelist (the real one from ../shared/ when present, else a
synthetic list of the same size) plus a mailbox directory of N entries, on the
demo PKI; prints the figures.

    python3 bench/trust_load.py [--mailboxes 100000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # measure the checkout this script belongs to
sys.path.insert(0, str(PROJECT / "tests" / "trust"))

from relay.core.snapshot import MailboxEntry, MailboxKind  # noqa: E402
from relay.demopki import write_demo_pki  # noqa: E402
from relay.trust.loader import load_directory  # noqa: E402
from relay.trust.mailboxes import write_mailboxes  # noqa: E402
from trustfactory import operator_dn, whitelist_xml  # noqa: E402

REAL_WHITELIST = PROJECT.parent / "shared" / "data" / "mssante" / "listeblanchemssante-full-2025-03-13.xml"


def synthetic_whitelist(path: Path, entries: int = 6554, domains: int = 5002) -> None:
    """The size of the published list: `entries` entries over `domains` domains and 40 operators."""
    path.write_bytes(whitelist_xml(
        (f"domaine{n % domains}.mssante.fr", operator_dn(f"mss{n % 40}.operateur.fr", f"{n % 40:014d}"))
        for n in range(entries)
    ))


def build(folder: Path, mailboxes: int, whitelist: Path | None) -> Path:
    write_demo_pki(folder / "certs")
    trust = folder / "trust"
    trust.mkdir()
    if whitelist is None:
        whitelist = trust / "whitelist.xml"
        synthetic_whitelist(whitelist)
    (folder / "relay.toml").write_text('trust_dir = "trust"\n')
    (trust / "trust.toml").write_text(
        "[bundle.signers]\nanchors = ['../certs/igc-root.pem']\n"
        "intermediates = ['../certs/igc-personnes.pem', '../certs/igc-structures.pem']\n"
        "crls = ['../certs/igc-root.crl', '../certs/igc-personnes.crl', '../certs/igc-structures.crl']\n"
        "[bundle.operators]\npurpose = 'tls'\nanchors = ['../certs/igc-root.pem']\n"
        f"[whitelist]\nfile = '{whitelist}'\nsigner_bundles = ['signers']\n"
        "next_hop = { url = 'smtp://127.0.0.1:2527', tls = 'starttls', verify_bundle = 'operators' }\n"
        "[mailboxes]\nfile = 'mailboxes.tsv'\n"
    )
    with (trust / "mailboxes.tsv").open("wb") as out:
        write_mailboxes(out, (
            MailboxEntry(f"dr.{n}@domaine{n % 5002}.mssante.fr", MailboxKind.PERSONAL, f"8{n:011d}", "10", "1750000001")
            for n in range(mailboxes)
        ))
    return folder / "relay.toml"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=100_000)
    args = parser.parse_args(argv)
    whitelist = REAL_WHITELIST if REAL_WHITELIST.exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        config = build(Path(tmp), args.mailboxes, whitelist)
        gc.collect()
        loaded = load_directory(config)  # timed without tracing
        snap, seconds = loaded.snapshot, loaded.seconds
        del loaded
        gc.collect()
        tracemalloc.start()
        load_directory(config)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    addresses = [f"dr.{n}@domaine{n % 5002}.mssante.fr" for n in range(0, args.mailboxes, 7)]
    started = time.perf_counter()
    for address in addresses:
        snap.route(address)
        snap.national_id_of(address)
    lookup = (time.perf_counter() - started) / max(len(addresses), 1)
    print(f"whitelist: {'real ' + whitelist.name if whitelist else 'synthetic, 6554 entries'}")
    print(f"snapshot: {len(snap.domains)} domains, {len(snap.mailboxes)} mailboxes, {len(snap.bundles)} bundles")
    print(f"load time: {seconds:.3f} s")
    print(f"memory: tracemalloc peak {peak / 2**20:.1f} MiB during a load")
    print(f"lookup: {lookup * 1e6:.1f} µs per address (route + national id)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
