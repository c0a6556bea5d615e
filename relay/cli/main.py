"""Entry point: dispatch to one module per sub-command."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Sequence

from .errors import UsageError

# Each module defines `register(subparsers)` and `run(args) -> int`.
COMMANDS: tuple[str, ...] = (
    "verify",
    "check",
    "route",
    "crl",
    "directory",
    "reload",
    "keys",
    "serve",
    "queue",
    "users",
    "demo",
    "mdn",
)

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep one clear line
        self.exit(EXIT_USAGE, f"relay: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="relay", description="Secure health messaging relay")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"relay.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as error:
        print(f"relay {args.command}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a pager or head that stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
