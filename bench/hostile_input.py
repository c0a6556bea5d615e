"""How long the MIME reader takes on big and hostile messages (it must stay linear).

    python3 bench/hostile_input.py

Each shape is read a few times; the best time is printed. A quadratic scan or
a per-byte Python loop shows up here as seconds instead of milliseconds.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, not an installed copy

from relay.core.errors import Rejection  # noqa: E402
from relay.core.limits import DEFAULT_LIMITS  # noqa: E402
from relay.core.mime import check_signed_content  # noqa: E402
from tests.core.test_mime_big_inputs import SENDER, deep_over_big_leaf, read, signed_message  # noqa: E402


def best_of(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        try:
            action()
        except Rejection:
            pass
        times.append(time.perf_counter() - started)
    return min(times)


def reader(raw: bytes) -> Callable[[], object]:
    return lambda: read(raw)


def check(raw: bytes) -> Callable[[], object]:
    return lambda: check_signed_content(raw, SENDER, DEFAULT_LIMITS)


def main() -> int:
    cases: list[tuple[str, Callable[[], object]]] = [
        ("signed 20 KB, read", reader(signed_message(12_000))),
        ("signed 2 MB, read", reader(signed_message(1_450_000))),
        ("200,000 empty parts", check(b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + b"--p\r\n\r\n\r\n" * 200_000 + b"--p--\r\n")),
        ("5,000,000 empty LF lines", check(b"Content-Type: text/plain\n\n" + b"\n" * 5_000_000)),
        ("one 5 MB line", check(b"Content-Type: text/plain\r\n\r\n" + b"x" * 5_000_000)),
        ("500 parts, no close delimiter", check(b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n' + b"--p\r\n\r\nx\r\n" * 500)),
        ("5,000 nested multiparts", check(b"".join(b'Content-Type: multipart/mixed; boundary="%d"\r\n\r\n--%d\r\n' % (i, i) for i in range(5000)))),
        ("depth 99 over a 1 MB leaf", check(deep_over_big_leaf())),
    ]
    for name, action in cases:
        print(f"{name:34} {best_of(3, action) * 1000:10.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
