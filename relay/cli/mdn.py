"""relay mdn error: a hospital system reports that it could not integrate a message it received.

The relay answers the sender's Disposition-Notification-To with an RFC 8098
MDN `processed/error` carrying MSSanté's `Error: code^label`, from the null
sender, spooled and delivered by the running service like any message.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..core.mdn import MdnError
from ..core.snapshot import Snapshot, normalise_address
from ..queue.mdn import MdnOutbox
from ..smtp.config import ConfigError, ServiceConfig, parse_service_config
from ..smtp.crypto_config import CryptoConfig, parse_crypto_config
from ..trust.loader import ConfigError as TrustConfigError
from ..trust.loader import load_directory
from .config import existing_spool, invalid_trust
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mdn", help="send acknowledgements on behalf of the hospital systems")
    p.add_argument("--config", type=Path, required=True, help="relay.toml")
    actions = p.add_subparsers(dest="action", required=True)
    error = actions.add_parser("error", help="a processed/error MDN for a message the hospital system could not integrate")
    error.add_argument("--message-id", required=True, help="the original Message-ID, with its angle brackets")
    error.add_argument("--recipient", required=True, help="the local mailbox the message was delivered to")
    error.add_argument("--to", action="append", required=True, help="the message's Disposition-Notification-To address(es)")
    error.add_argument("--code", required=True, help="the MSSanté error code")
    error.add_argument("--label", required=True, help="the error label (printable US-ASCII)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config, crypto, snapshot = _read_configuration(args.config)
    recipient = normalise_address(args.recipient)
    requesters = tuple(normalise_address(a) for a in args.to)
    _check_addresses(snapshot, recipient, requesters)
    outbox = MdnOutbox(existing_spool(config), config.hostname, crypto.mdn.reporting_ua, crypto.dkim)
    try:
        queue_id = outbox.send(
            recipient, requesters, args.message_id.strip(), time.time(), {"mdn_error": args.code}, MdnError(args.code, args.label)
        )
    except ValueError as error:  # the builder's refusal of a field it cannot carry safely
        raise UsageError(str(error)) from None
    except OSError as error:  # SpoolError among them
        raise UsageError(f"{config.queue.directory}: cannot spool the MDN ({error})") from None
    print(f"queued {queue_id}: processed/error MDN to {', '.join(requesters)}")
    return 0


def _read_configuration(path: Path) -> tuple[ServiceConfig, CryptoConfig, Snapshot]:
    """relay.toml read once: the trust loader parses it, the service readers take its tables."""
    try:
        loaded = load_directory(path)
        source = loaded.config.source
        return (
            parse_service_config(source.data, path, source.lines),
            parse_crypto_config(source.data, path, source.lines),
            loaded.snapshot,
        )
    except ConfigError as error:
        raise UsageError(str(error)) from None
    except TrustConfigError as error:
        raise invalid_trust(path, error) from None


def _check_addresses(snapshot: Snapshot, recipient: str, requesters: tuple[str, ...]) -> None:
    """Only for our own mailboxes, and only towards the trust space: no open relay through this door."""
    if not snapshot.route(recipient).local:
        raise UsageError(f"{recipient} is not a mailbox of a local domain")
    for address in requesters:
        if not snapshot.route(address).known:
            raise UsageError(f"{address}: its domain is not in the trust directory")
