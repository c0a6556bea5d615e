"""relay keys: the signing keys in a PKCS#11 token (list, import a PKCS#12, sign a message)."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.errors import Rejection
from ..core.smime_sign import sign_message
from ..keys.config import SOFTHSM2_MODULE, KeyConfig, TokenConfig
from ..keys.errors import KeyStoreError
from ..keys.inventory import list_objects, list_tokens
from ..keys.p12_import import import_pkcs12
from ..keys.pin import PinSource
from ..keys.pkcs11_token import Pkcs11Token
from ..keys.token_keys import load_token_key
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="signing keys in a PKCS#11 token (HSM)")
    actions = p.add_subparsers(dest="action", required=True, parser_class=type(p))

    listing = actions.add_parser("list", help="tokens of the module; keys and certificates of one token")
    _token_options(listing, token_required=False)
    listing.set_defaults(run=_run_list)

    load = actions.add_parser("import", help="load a PKCS#12 (key, certificate, chain) into a token")
    _token_options(load, token_required=True)
    load.add_argument("--p12", type=Path, required=True, metavar="FILE", help="the PKCS#12 file")
    load.add_argument("--label", required=True, help="label of the key and certificate in the token")
    load.add_argument("--p12-password-env", metavar="VAR", help="environment variable holding the PKCS#12 password")
    load.add_argument("--p12-password-file", type=Path, metavar="FILE", help="file holding the PKCS#12 password")
    load.set_defaults(run=_run_import)

    sign = actions.add_parser("sign", help="S/MIME sign a message with a key of the token")
    _token_options(sign, token_required=True)
    sign.add_argument("--label", required=True, help="label of the key and certificate in the token")
    sign.add_argument("--rsa-pss", action="store_true", help="RSA-PSS rather than PKCS#1 v1.5 (RSA keys)")
    sign.add_argument("--out", type=Path, help="where to write the signed message (default: stdout)")
    sign.add_argument("message", type=Path, metavar="MESSAGE", help="the unsigned RFC 5322 message")
    sign.set_defaults(run=_run_sign)


def _token_options(p: argparse.ArgumentParser, token_required: bool) -> None:
    p.add_argument("--module", default=SOFTHSM2_MODULE, help=f"PKCS#11 module (default: {SOFTHSM2_MODULE})")
    p.add_argument("--token", required=token_required, help="token label")
    p.add_argument("--pin-env", metavar="VAR", help="environment variable holding the user PIN")
    p.add_argument("--pin-file", type=Path, metavar="FILE", help="file holding the user PIN (mode 0600 or 0400)")


def _token(args: argparse.Namespace, pin_required: bool) -> Pkcs11Token:
    if args.pin_env and args.pin_file:
        raise UsageError("--pin-env and --pin-file are exclusive")
    has_pin = bool(args.pin_env or args.pin_file)
    if pin_required and not has_pin:
        raise UsageError("give the PIN source: --pin-env VAR or --pin-file FILE")
    pin = PinSource(env=args.pin_env, file=args.pin_file) if has_pin else None
    return Pkcs11Token(TokenConfig(args.module, args.token, pin, sessions=1))


def _run_list(args: argparse.Namespace) -> int:
    with _reported():
        for info in list_tokens(args.module):
            if not info.label and not info.serial:
                print(f"free slot {info.slot}")  # an uninitialised token (SoftHSM2 always offers one)
                continue
            print(f"token {info.label!r} slot={info.slot} manufacturer={info.manufacturer!r} model={info.model!r} serial={info.serial}")
        if not args.token:
            return 0
        with _token(args, pin_required=False) as token:
            for obj in list_objects(token):
                print(f"  {obj.kind:<11} {obj.label!r} id={obj.key_id or '-'} {obj.detail}")
    return 0


def _run_import(args: argparse.Namespace) -> int:
    password = _p12_password(args)
    try:
        data = args.p12.read_bytes()
    except OSError as error:
        raise UsageError(f"{args.p12}: {error.strerror or error}") from None
    with _reported(), _token(args, pin_required=True) as token:
        imported = import_pkcs12(token, data, password, args.label)
    print(
        f"imported {imported.label!r} id={imported.key_id.hex()} "
        f"{imported.certificate.subject.rfc4514_string()} with {len(imported.chain)} CA certificate(s)"
    )
    return 0


def _p12_password(args: argparse.Namespace) -> bytes | None:
    if args.p12_password_env and args.p12_password_file:
        raise UsageError("--p12-password-env and --p12-password-file are exclusive")
    if not (args.p12_password_env or args.p12_password_file):
        return None
    with _reported():
        source = PinSource(env=args.p12_password_env, file=args.p12_password_file)
        return source.read().encode("utf-8")


def _run_sign(args: argparse.Namespace) -> int:
    try:
        raw = args.message.read_bytes()
    except OSError as error:
        raise UsageError(f"{args.message}: {error.strerror or error}") from None
    with _reported(), _token(args, pin_required=True) as token:
        key = load_token_key(token, KeyConfig(args.label, args.rsa_pss))
        try:
            signed = sign_message(raw, key, dt.datetime.now(dt.timezone.utc))
        except Rejection as refusal:
            raise UsageError(f"{args.message}: {refusal.reason}: {refusal.detail}") from None
    if args.out:
        _write_private(args.out, signed)
    else:
        sys.stdout.buffer.write(signed)
    return 0


def _write_private(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None


@contextmanager
def _reported() -> Iterator[None]:
    """Turn a key store error into the one-line usage error of the command."""
    try:
        yield
    except KeyStoreError as error:
        raise UsageError(f"{error.code}: {error.detail}") from None
