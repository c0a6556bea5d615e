"""Signatures per second through a PKCS#11 token, 1 and N threads.

By default builds a throw-away SoftHSM2 token (RSA-2048 and P-256 keys from
relay.devpki); point it at a real HSM with --module/--token/--label/--pin-env.

    python3 bench/sign.py [--threads 8] [--seconds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # measure the checkout this file belongs to

from relay import devpki  # noqa: E402
from relay.core.smime_sign import sign_message  # noqa: E402
from relay.keys.config import SOFTHSM2_MODULE, KeyConfig, TokenConfig  # noqa: E402
from relay.keys.pin import PinSource  # noqa: E402
from relay.keys.pkcs11_token import Pkcs11Token  # noqa: E402
from relay.keys.token_keys import load_token_key  # noqa: E402

MESSAGE = (
    b"From: secretariat@hopital-test.mssante.fr\r\nTo: dr@medecin.mssante.fr\r\nSubject: bench\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" + b"Compte rendu de consultation.\r\n" * 200
)
PIN_ENV = "RELAY_BENCH_PIN"


def main() -> int:
    args = _arguments()
    if args.token:
        config = TokenConfig(args.module, args.token, PinSource(env=args.pin_env), sessions=args.threads)
        _bench_token(config, [(args.label, args.rsa_pss)], args)
        return 0
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        # Every token exists before this process initialises the module (SoftHSM2 scans once).
        rsa = _softhsm_token(Path(tmp), "bench-rsa", "rsa2048", args.threads)
        ec = _softhsm_token(Path(tmp), "bench-ec", "p256", args.threads)
        _bench_token(rsa, [("bench", False), ("bench", True)], args)
        _bench_token(ec, [("bench", False)], args)
    return 0


def _arguments() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="N for the multi-threaded run")
    p.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    p.add_argument("--module", default=SOFTHSM2_MODULE)
    p.add_argument("--token", help="an existing token (default: a throw-away SoftHSM2 token)")
    p.add_argument("--label", default="bench")
    p.add_argument("--pin-env", default=PIN_ENV)
    p.add_argument("--rsa-pss", action="store_true")
    return p.parse_args()


def _softhsm_token(tmp: Path, label: str, kind: str, sessions: int) -> TokenConfig:
    if "SOFTHSM2_CONF" not in os.environ:
        (tmp / "tokens").mkdir()
        (tmp / "softhsm2.conf").write_text(f"directories.tokendir = {tmp / 'tokens'}\nlog.level = ERROR\n")
        os.environ["SOFTHSM2_CONF"] = str(tmp / "softhsm2.conf")
    os.environ[PIN_ENV] = "bench-pin"
    subprocess.run(
        ["softhsm2-util", "--init-token", "--free", "--label", label, "--pin", "bench-pin", "--so-pin", "bench-so"],
        check=True, capture_output=True,
    )
    root = devpki.make_ca("BENCH ROOT")
    leaf = devpki.make_leaf(root, devpki.organisation_subject("bench.mssante.fr", "1750000009", "BENCH"), key_kind=kind)
    config = TokenConfig(SOFTHSM2_MODULE, label, PinSource(env=PIN_ENV), sessions=sessions)
    # A new token is only seen by a module initialised after its creation: import in a child.
    p12 = tmp / f"{label}.p12"
    p12.write_bytes(leaf.pkcs12(None))
    subprocess.run(
        [sys.executable, "-m", "relay", "keys", "import", "--token", label, "--pin-env", PIN_ENV, "--p12", str(p12), "--label", "bench"],
        check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return config


def _bench_token(config: TokenConfig, keys: list[tuple[str, bool]], args: argparse.Namespace) -> None:
    with Pkcs11Token(config) as token:
        for label, pss in keys:
            key = load_token_key(token, KeyConfig(label, pss))
            name = f"{config.token_label}/{label} {key.scheme}"
            for threads in sorted({1, args.threads}):
                raw = _rate(lambda: key.sign(b"x" * 200), threads, args.seconds)
                whole = _rate(lambda: sign_message(MESSAGE, key, dt.datetime.now(dt.timezone.utc)), threads, args.seconds)
                print(f"{name:<32} threads={threads:<3} raw signatures/s={raw:9.1f}   whole messages/s={whole:9.1f}", flush=True)


def _rate(operation, threads: int, seconds: float) -> float:
    count = [0] * threads
    deadline = time.monotonic() + seconds

    def work(slot: int) -> None:
        while time.monotonic() < deadline:
            operation()
            count[slot] += 1

    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(count) / (time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main())
