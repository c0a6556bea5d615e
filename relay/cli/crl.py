"""relay crl refresh: fetch the bundles' CRLs into their caches."""

from __future__ import annotations

import argparse
import datetime as dt
import sys

from ..trust.crlrefresh import Outcome, Status, refresh_bundle
from ..trust.loader import ConfigError, load_directory
from .config import add_config_option, invalid_trust


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("crl", help="manage the cached CRLs of the trust bundles")
    actions = p.add_subparsers(dest="action", required=True)
    refresh = actions.add_parser("refresh", help="fetch every bundle's CRL URLs")
    add_config_option(refresh)
    refresh.add_argument("--timeout", type=float, default=10.0, help="seconds per download (default 10)")
    refresh.add_argument("--warn-hours", type=float, default=24.0, help="warn when a CRL's nextUpdate is nearer than this")
    refresh.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        loaded = load_directory(args.config)
    except ConfigError as error:
        raise invalid_trust(args.config, error) from None
    now = dt.datetime.now(dt.timezone.utc)
    outcomes = [o for spec in loaded.bundle_specs.values() for o in refresh_bundle(spec, now, args.timeout)]
    for outcome in outcomes:
        print(f"{outcome.bundle}: {outcome.url}: {outcome.status}: {outcome.message}")
        warning = near_expiry(outcome, now, dt.timedelta(hours=args.warn_hours))
        if warning:
            print(f"warning: {warning}", file=sys.stderr)
    if not outcomes:
        print("no bundle declares crl_urls")
    return 1 if any(o.status is Status.FAILED for o in outcomes) else 0


def near_expiry(outcome: Outcome, now: dt.datetime, margin: dt.timedelta) -> str | None:
    """A warning when the CRL now cached (fetched or kept) expires within `margin`."""
    if outcome.next_update is None or outcome.next_update - now > margin:
        return None
    return (
        f"{outcome.bundle}: the CRL from {outcome.url} reaches its nextUpdate "
        f"{outcome.next_update:%Y-%m-%d %H:%M}Z with no fresher replacement"
    )
