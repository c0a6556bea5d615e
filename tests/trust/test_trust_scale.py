"""National scale: the full whitelist and 100,000 mailboxes load in under 2 s."""

from __future__ import annotations

import re
import subprocess
import sys

from trustfactory import PROJECT, SHARED_MSSANTE


def test_bench_loads_the_full_whitelist_and_100k_mailboxes_under_two_seconds() -> None:
    run = subprocess.run(
        [sys.executable, str(PROJECT / "bench" / "trust_load.py"), "--mailboxes", "100000", "--max-seconds", "2"],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    real = (SHARED_MSSANTE / "listeblanchemssante-full-2025-03-13.xml").exists()
    domains = 5001 if real else 5002  # the real list names one address instead of a domain
    assert f"snapshot: {domains} domains, 100000 mailboxes, 2 bundles" in run.stdout
    seconds = float(re.search(r"load time: ([\d.]+) s", run.stdout).group(1))
    assert seconds < 2
    assert re.search(r"memory: tracemalloc peak [\d.]+ MiB", run.stdout)
