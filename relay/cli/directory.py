"""relay directory import: the Annuaire Santé MSSanté extraction into the trust directory."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..trust.loader import ConfigError, mailbox_path, open_config
from ..trust.mailboxes import MailboxError, import_extraction
from .config import add_config_option, invalid_trust
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("directory", help="manage the mailbox directory")
    actions = p.add_subparsers(dest="action", required=True)
    imp = actions.add_parser("import", help="import an Annuaire Santé MSSanté extraction (.txt or .zip)")
    add_config_option(imp)
    imp.add_argument("--output", type=Path, help="file to write (default: the [mailboxes] file of the trust directory)")
    imp.add_argument("file", type=Path, metavar="FILE")
    imp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    destination = args.output or _configured_destination(args.config)
    started = time.perf_counter()
    try:
        report = import_extraction(args.file, destination)
    except OSError as error:
        raise UsageError(f"{error.filename or args.file}: {error.strerror or error}") from None
    except MailboxError as error:
        raise UsageError(f"{args.file}: {error}") from None
    for bad in report.bad:
        print(f"warning: {args.file}: {bad}", file=sys.stderr)
    if report.bad_count > len(report.bad):
        print(f"warning: {args.file}: {report.bad_count - len(report.bad)} more bad line(s)", file=sys.stderr)
    print(
        f"{destination}: {report.written} mailboxes from {report.lines} lines"
        f" ({report.bad_count} bad, {report.duplicates} duplicate) in {time.perf_counter() - started:.2f} s"
    )
    return 0


def _configured_destination(config: Path) -> Path:
    try:
        return mailbox_path(open_config(config))
    except ConfigError as error:
        raise invalid_trust(config, error) from None
