"""relay serve: run the SMTP relay service from relay.toml."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..trust.problems import ConfigError as TrustConfigError
from ..smtp.supervisor import WorkerFailed, run as run_service
from ..smtp.snapshots import config_loader
from .config import service_config
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the SMTP relay (listeners, verification, spool, delivery)")
    p.add_argument("--config", type=Path, required=True, help="relay.toml")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = service_config(args.config)
    try:
        run_service(config, config_loader(config.path))
    except TrustConfigError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise UsageError("the trust directory cannot be loaded") from None
    except WorkerFailed as error:  # its own errors are on standard error
        raise UsageError(str(error)) from None
    except (OSError, ValueError) as error:  # listener set-up: address in use, unreadable certificate
        raise UsageError(str(error)) from None
    return 0
