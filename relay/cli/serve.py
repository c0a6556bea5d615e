"""relay serve: run the SMTP relay service from relay.toml."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from ..smtp.config import ConfigError, load_service_config
from ..smtp.service import serve
from ..smtp.snapshots import config_loader
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the SMTP relay (listeners, verification, spool, delivery)")
    p.add_argument("--config", type=Path, required=True, help="relay.toml")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_service_config(args.config)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    try:
        asyncio.run(serve(config, config_loader(config.path)))
    except (ConfigError, OSError, ValueError) as error:  # trust directory or listener set-up
        raise UsageError(str(error)) from None
    return 0
