"""relay queue list | show ID | retry [ID] | bounce ID | delete ID: the spool, safe while the service runs.

Every change takes the message's lock first; a message being delivered is
reported busy instead of being changed under the delivery's feet.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from ..queue.delivery import FAILED, finish
from ..queue.spool import MessageBusy, Spool, SpoolError, UnknownMessage
from .config import existing_spool, service_config
from .errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("queue", help="inspect and act on the delivery queue")
    p.add_argument("--config", type=Path, required=True, help="relay.toml")
    p.add_argument("--json", action="store_true", help="list/show as JSON")
    p.add_argument("--message", action="store_true", help="show: write the message as it will be delivered, nothing else")
    p.add_argument("action", choices=("list", "show", "retry", "bounce", "delete"))
    p.add_argument("queue_id", nargs="?", metavar="ID")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = service_config(args.config)
    spool = existing_spool(config)
    if args.action in ("show", "bounce", "delete") and not args.queue_id:
        raise UsageError(f"{args.action} needs a queue id")
    if args.action == "list" and args.queue_id:
        raise UsageError("list takes no queue id: show ID shows one message")
    if args.message and (args.action != "show" or args.json):
        raise UsageError("--message goes with show alone, without --json")
    if args.json and args.action not in ("list", "show"):
        raise UsageError(f"--json goes with list and show, not {args.action}")
    try:
        return _ACTIONS[args.action](spool, args, config.hostname)
    except SpoolError as error:
        raise UsageError(error.strerror or str(error)) from None


def _list(spool: Spool, args: argparse.Namespace, _host: str) -> int:
    for queue_id in spool.ids():
        try:
            env = spool.envelope(queue_id)
        except SpoolError:
            continue  # removed while listing
        if args.json:
            print(json.dumps(json.loads(env.to_json())))
        else:
            pending = ",".join(r.address for r in env.pending)
            print(f"{queue_id} {_when(env.received_at)} attempts={env.attempts} next={_when(env.next_attempt)} from=<{env.mail_from}> pending={pending}")
    return 0


def _show(spool: Spool, args: argparse.Namespace, _host: str) -> int:
    if args.message:
        sys.stdout.buffer.write(spool.message(args.queue_id))
        return 0
    env = spool.envelope(args.queue_id)
    if args.json:
        print(json.dumps(json.loads(env.to_json()), indent=2))
        return 0
    print(f"queue id:    {env.queue_id}\nmessage-id:  {env.message_id}\nfrom:        <{env.mail_from}>")
    print(f"received:    {_when(env.received_at)}\nattempts:    {env.attempts}\nnext:        {_when(env.next_attempt)}")
    for r in env.recipients:
        print(f"  {r.status:9} <{r.address}> {r.reply}")
    return 0


def _retry(spool: Spool, args: argparse.Namespace, _host: str) -> int:
    if args.queue_id:
        _make_due(spool, args.queue_id)
        return 0
    for queue_id in spool.ids():
        try:
            _make_due(spool, queue_id)
        except MessageBusy:
            print(f"{queue_id}: being delivered")
        except UnknownMessage:
            pass  # delivered meanwhile
    return 0


def _make_due(spool: Spool, queue_id: str) -> None:
    with spool.locked(queue_id):
        spool.update(replace(spool.envelope(queue_id), next_attempt=0.0))
    print(f"{queue_id}: due now")


def _bounce(spool: Spool, args: argparse.Namespace, host: str) -> int:
    with spool.locked(args.queue_id):
        env = spool.envelope(args.queue_id)
        failed = {r.address: (FAILED, "5.0.0 returned to sender by the administrator") for r in env.pending}
        dsn_id = finish(spool, env.with_results(failed), host, time.time())
    print(f"{args.queue_id}: bounced" + (f", DSN {dsn_id}" if dsn_id else ""))
    return 0


def _delete(spool: Spool, args: argparse.Namespace, _host: str) -> int:
    with spool.locked(args.queue_id):
        spool.remove(args.queue_id)
    print(f"{args.queue_id}: deleted")
    return 0


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if ts else "now"


_ACTIONS = {"list": _list, "show": _show, "retry": _retry, "bounce": _bounce, "delete": _delete}
