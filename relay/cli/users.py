"""relay users add|passwd|remove|list: the submission users file (scrypt hashes).

Passwords are read from standard input (one line) or prompted for on a
terminal; never from the command line, where other users could see them.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from ..smtp.credentials import (
    CredentialsError,
    PasswordHash,
    edit_credentials,
    validate_user,
    write_credentials,
)
from .config import service_config
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("users", help="manage submission users (password hashes)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--config", type=Path, help="relay.toml whose [service] users file to edit")
    where.add_argument("--file", type=Path, help="the users file itself")
    p.add_argument("action", choices=("add", "passwd", "remove", "list"))
    p.add_argument("user", nargs="?", help="user name (the sender address)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    path = _users_file(args)
    try:
        users = edit_credentials(path)
        if args.action == "list":
            for name in sorted(users):
                print(name)
            return 0
        if not args.user:
            raise UsageError(f"{args.action} needs a user name")
        name = validate_user(args.user)
        if args.action == "add" and name in users:
            raise UsageError(f"user {name} exists (use passwd)")
        if args.action in ("passwd", "remove") and name not in users:
            raise UsageError(f"no user {name}")
        if args.action == "remove":
            del users[name]
        else:
            users[name] = PasswordHash.create(_read_password())
        write_credentials(path, users)
    except (CredentialsError, OSError) as error:
        raise UsageError(str(error)) from None
    return 0


def _users_file(args: argparse.Namespace) -> Path:
    if args.file:
        return args.file
    config = service_config(args.config)
    if config.users is None:
        raise UsageError(f"{args.config}: [service] users is not set")
    return config.users


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise UsageError("the passwords differ")
        password = first
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise UsageError("a password has at least 8 characters")
    return password
