"""Annuaire Santé extraction import: time and memory for a large synthetic file.

    python3 bench/directory_import.py [--lines 500000]

Writes a synthetic extraction in the published format (31 `|`-separated
columns, one header line) to a temporary folder, imports it with the code
`relay directory import` runs, and prints lines/s and the tracemalloc peak.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, not an installed copy
sys.path.insert(0, str(ROOT / "tests" / "trust"))

from relay.trust.mailboxes import import_extraction  # noqa: E402
from trustfactory import EXTRACTION_COLUMNS, extraction_line, mailbox_values  # noqa: E402


def write_extraction(path: Path, lines: int) -> None:
    template = extraction_line(mailbox_values("PER", "dr{n}@big.mssante.fr", "8{n:011d}", "10", "1750000001"))
    with path.open("w", encoding="utf-8") as out:
        out.write("|".join(EXTRACTION_COLUMNS) + "\n")
        for n in range(lines):
            out.write(template.replace("{n}", str(n)).replace("{n:011d}", f"{n:011d}") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "Extraction_Correspondance_MSSante.txt"
        write_extraction(source, args.lines)
        size = source.stat().st_size
        started = time.perf_counter()
        report = import_extraction(source, Path(folder) / "mailboxes.tsv")
        seconds = time.perf_counter() - started
        tracemalloc.start()
        import_extraction(source, Path(folder) / "again.tsv")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"extraction: {args.lines:,} lines, {size / 2**20:.1f} MiB")
    print(f"import: {seconds:.2f} s, {args.lines / seconds:,.0f} lines/s, {report.written:,} mailboxes written")
    print(f"memory: tracemalloc peak {peak / 2**20:.1f} MiB ({peak / args.lines:.0f} bytes a line: the set of addresses seen)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
