"""relay demo: run the relay on the example configuration and show a signed and a tampered message."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..demo.scenario import DemoSetup, run as run_scenario
from ..smtp.config import ConfigError
from ..trust.problems import ConfigError as TrustConfigError
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the relay on the demo configuration and send it two messages")
    p.add_argument("--config", type=Path, default=Path("config/relay.toml"), help="relay.toml (default: %(default)s)")
    p.add_argument("--certs", type=Path, default=Path("certs/demo"), help="demo PKI folder (default: %(default)s)")
    p.add_argument("--work", type=Path, default=Path("var/demo"), help="demo mailboxes (default: %(default)s)")
    p.add_argument("--once", action="store_true", help="stop the relay after the two messages")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not args.config.exists():
        raise UsageError(f"{args.config}: no such file (run from the project root or give --config)")
    args.work.mkdir(parents=True, exist_ok=True)
    try:
        return run_scenario(DemoSetup(args.config, args.certs, args.work), keep_running=not args.once)
    except (ConfigError, TrustConfigError, RuntimeError) as error:
        raise UsageError(str(error)) from None
