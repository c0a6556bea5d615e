"""National scale: the full whitelist and 100,000 mailboxes load (the time and memory are bench figures, not asserted here)."""

from __future__ import annotations

import re
import subprocess
import sys

from trustfactory import PROJECT, SHARED_MSSANTE


def test_bench_loads_the_full_whitelist_and_100k_mailboxes() -> None:
    run = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "trust_load.py"), "--mailboxes", "100000"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    real = (SHARED_MSSANTE / "listeblanchemssante-full-2025-03-13.xml").exists()
    domains = 5001 if real else 5002  # the real list names one address instead of a domain
    assert f"snapshot: {domains} domains, 100000 mailboxes, 2 bundles" in run.stdout
    assert re.search(r"load time: [\d.]+ s", run.stdout)
    assert re.search(r"memory: tracemalloc peak [\d.]+ MiB", run.stdout)
