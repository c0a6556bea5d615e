"""relay verify: the verdict on message files, against an ad-hoc bundle or the trust directory."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Sequence

from ..core.bundle import Bundle, RevocationMode
from ..core.trustview import StaticTrust, TrustView
from ..core.verdict import Verdict
from ..core.verify import verify_message
from ..trust.material import MaterialError, read_certificates, read_crls
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify", help="verify S/MIME signed messages and their signers")
    p.add_argument("--config", type=Path, help="relay.toml whose trust directory to use")
    p.add_argument("--anchor", type=Path, action="append", default=[], help="trusted root(s), PEM or DER")
    p.add_argument("--intermediate", type=Path, action="append", default=[], help="intermediate CA(s), PEM or DER")
    p.add_argument("--crl", type=Path, action="append", default=[], help="CRL(s), PEM or DER")
    p.add_argument("--at", type=_parse_time, help="evaluation time, ISO-8601 (default: now)")
    p.add_argument("--no-require-professional", action="store_true", help="accept signers without a professional identifier")
    p.add_argument("--allow-org-certs", action="store_true", help="let a dNSName SAN bind organisation certificates")
    p.add_argument("--json", action="store_true", help="one JSON object per line and message")
    p.add_argument("messages", nargs="+", type=Path, metavar="MESSAGE")
    p.set_defaults(run=run)


def _parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def run(args: argparse.Namespace) -> int:
    trust = _trust_from(args)
    now = args.at or dt.datetime.now(dt.timezone.utc)
    all_accepted = True
    for path in args.messages:
        raw = _read_message(path)
        verdict = verify_message(raw, trust, now)
        all_accepted &= verdict.accepted
        print(_render(path, verdict, args.json), flush=True)
    return 0 if all_accepted else 1


def _read_message(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None


def _trust_from(args: argparse.Namespace) -> TrustView:
    if args.config:
        if args.anchor or args.intermediate or args.crl:
            raise UsageError("--config and --anchor/--intermediate/--crl are exclusive")
        return _configured_trust(args.config)
    if not args.anchor:
        raise UsageError("give --anchor (and optionally --intermediate, --crl) or --config")
    try:
        bundle = Bundle(
            name="command-line",
            anchors=_certificates(args.anchor),
            intermediates=_certificates(args.intermediate),
            crls=tuple(crl for path in args.crl for crl in read_crls(path)),
            require_professional=not args.no_require_professional,
            allow_org_certs=args.allow_org_certs,
            revocation=RevocationMode.WHERE_AVAILABLE,
        )
    except MaterialError as error:
        raise UsageError(str(error)) from None
    return StaticTrust((bundle,))


def _certificates(paths: Sequence[Path]) -> tuple:
    return tuple(cert for path in paths for cert in read_certificates(path))


def _configured_trust(config: Path) -> TrustView:
    from ..trust.loader import ConfigError, load_snapshot  # the edge that reads the directory

    try:
        return load_snapshot(config)
    except ConfigError as error:
        raise UsageError(str(error)) from None


def _render(path: Path, verdict: Verdict, as_json: bool) -> str:
    if as_json:
        return json.dumps({"file": str(path), **verdict.as_dict()}, ensure_ascii=False)
    who = ""
    if verdict.signer:
        who = f" signer={verdict.signer.email or verdict.signer.subject}"
        if verdict.signer.national_id:
            who += f" id={verdict.signer.national_id}"
    return f"{path}: {verdict.decision.upper()} {verdict.code} - {verdict.detail}{who}"
