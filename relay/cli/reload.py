"""relay reload: check the trust directory, then ask the running service to reload it.

The service writes its pid to the file named by relay.toml's top-level
`pid_file` and reloads its trust snapshot on SIGHUP.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ..trust.loader import ConfigError, load_directory
from .config import add_config_option
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reload", help="make the running service reload its trust directory")
    add_config_option(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_directory(args.config)
    except ConfigError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        print("not reloading: the service keeps its current trust", file=sys.stderr)
        return 1
    if loaded.config.pid_file is None:
        raise UsageError(f"{args.config}: pid_file is not set: cannot find the running service")
    pid = _read_pid(loaded.config.pid_file)
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise UsageError(f"no process {pid}: the service is not running (stale pid file?)") from None
    except PermissionError:
        raise UsageError(f"not allowed to signal process {pid}") from None
    print(f"sent SIGHUP to {pid}: the service reloads version {loaded.snapshot.version}")
    return 0


def _read_pid(path: Path) -> int:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: {getattr(error, 'strerror', None) or error}") from None
    if not text.isdigit() or int(text) <= 1:
        raise UsageError(f"{path}: does not hold a process id")
    return int(text)
