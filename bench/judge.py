"""Where the end-of-DATA judgement spends its CPU, on the message bench/relay.py sends.

    python3 bench/judge.py [--seconds 2] [--workers 2] [--messages 2000]

Times each step of relay.smtp.decide.judge on one signed 20 KB message
(CPU microseconds per call), the size of what crosses the process boundary,
and the round trip through the Verifier: the event-loop process's CPU per
message (pickling, wake-ups, hand-off threads) and the whole tree's.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime as dt  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pickle  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Callable  # noqa: E402

from relay.core.limits import DEFAULT_LIMITS  # noqa: E402
from relay.core.verify import verify_message  # noqa: E402
from relay.smtp import decide  # noqa: E402
from relay.smtp.verifier import Verifier  # noqa: E402

import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("bench_relay", _ROOT / "bench" / "relay.py")
bench_relay = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
sys.modules["bench_relay"] = bench_relay  # spawned workers unpickle the loader from it
_spec.loader.exec_module(bench_relay)  # type: ignore[union-attr]

MAX_RECEIVED = 50


def cpu_micros(work: Callable[[], object], seconds: float) -> float:
    """CPU microseconds per call of `work`, over about `seconds` after a warm-up call."""
    work()
    calls, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        work()
        calls += 1
    return (time.process_time() - cpu_start) * 1e6 / calls


def wire_message(directory: Path) -> bytes:
    """The bench's message as the relay holds it at end of DATA: CRLF lines."""
    bench_relay._pki(directory)
    path = bench_relay._message(directory, True, 20000)
    return path.read_bytes().replace(b"\n", b"\r\n")


def tree_cpu(pid: int) -> float:
    return bench_relay._cpu_seconds(pid)


async def round_trips(verifier: Verifier, args: tuple, messages: int, concurrency: int) -> None:
    queue = iter(range(messages))

    async def client() -> None:
        for _ in queue:
            judgement = await verifier.judge(*args)
            assert isinstance(judgement.outcome, decide.Accepted), judgement

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def measure_round_trips(loader: Callable[[], object], call: tuple, workers: int, messages: int) -> tuple[float, float, float]:
    """Messages per second, and CPU seconds of this process and of the whole tree, over `messages` round trips."""
    verifier = Verifier(loader, workers, DEFAULT_LIMITS, MAX_RECEIVED)  # type: ignore[arg-type]
    try:
        await round_trips(verifier, call, 50, 8)  # warm-up: workers started, snapshot loaded
        own, tree = time.process_time(), tree_cpu(os.getpid())
        start = time.perf_counter()
        await round_trips(verifier, call, messages, 16)
        wall = time.perf_counter() - start
        return messages / wall, time.process_time() - own, tree_cpu(os.getpid()) - tree
    finally:
        verifier.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--messages", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-judge-") as tmp:
        directory = Path(tmp)
        raw = wire_message(directory)
        spec = directory / "spec.json"
        spec.write_text(json.dumps({"root": str(directory / "root.pem"), "ca": str(directory / "ca.pem"), "sink_port": 9, "signed": True}))
        loader = functools.partial(bench_relay.bench_snapshot, spec)
        snapshot = loader()
        now = dt.datetime.now(dt.timezone.utc)
        tx = decide.Transaction(bench_relay.SENDER, (bench_relay.RECIPIENT,), None)
        limits = DEFAULT_LIMITS
        judgement = decide.judge(raw, tx, snapshot, now, limits, MAX_RECEIVED)
        assert isinstance(judgement.outcome, decide.Accepted), judgement
        print(f"message: {len(raw)} bytes; per call, CPU µs:")
        steps: list[tuple[str, Callable[[], object]]] = [
            ("check_line_endings", lambda: decide.check_line_endings(raw)),
            ("check_header_limits", lambda: decide.check_header_limits(raw, limits, MAX_RECEIVED)),
            ("read_headers", lambda: decide.read_headers(raw)),
            ("verify_message", lambda: verify_message(raw, snapshot, now, limits)),
            ("judge (all)", lambda: decide.judge(raw, tx, snapshot, now, limits, MAX_RECEIVED)),
        ]
        task = (tx, snapshot.version, now)  # the pickled header; the message travels as raw bytes
        sent, answer = pickle.dumps(task), pickle.dumps(judgement)
        steps += [
            ("pickle task", lambda: pickle.dumps(task)),
            ("unpickle task", lambda: pickle.loads(sent)),
            ("pickle judgement", lambda: pickle.dumps(judgement)),
            ("unpickle judgement", lambda: pickle.loads(answer)),
        ]
        for name, work in steps:
            print(f"    {name:<22} {cpu_micros(work, args.seconds):9.1f}")
        print(f"pickled: task {len(sent)} bytes, judgement {len(answer)} bytes")
        call = (raw, tx, snapshot, now)
        rate, own, tree = asyncio.run(measure_round_trips(loader, call, args.workers, args.messages))
        n = args.messages
        print(
            f"Verifier round trips ({args.workers} workers, 16 concurrent): {rate:.0f}/s, CPU per message: "
            f"event-loop process {own * 1e6 / n:.0f} µs, all processes {tree * 1e6 / n:.0f} µs"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
