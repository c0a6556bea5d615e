"""relay route: which rule applies to an address, and why."""

from __future__ import annotations

import argparse

from cryptography import x509

from ..core.snapshot import EncryptMode, MessagePolicy, NextHop, Route, Snapshot
from ..trust.loader import ConfigError, load_snapshot
from .config import add_config_option, invalid_trust

_SHOWN_DNS = 5


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("route", help="explain the route and policy for an address")
    add_config_option(p)
    p.add_argument("--from", dest="sender", metavar="SENDER", help="also explain which signers are trusted for this sender")
    p.add_argument("address", metavar="ADDRESS")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        snapshot = load_snapshot(args.config)
    except ConfigError as error:
        raise invalid_trust(args.config, error) from None
    route = snapshot.route(args.address)
    print("\n".join(explain(route, snapshot)))
    if args.sender:
        print("\n".join(explain_sender(snapshot.route(args.sender), snapshot)))
    return 0 if route.known else 1


def explain(route: Route, snapshot: Snapshot) -> list[str]:
    lines = [f"address:     {route.address}"]
    if route.domain is None:
        lines.append("rule:        none: the domain is neither declared nor whitelisted (mail to it is refused)")
    else:
        kind = "local" if route.domain.local else "remote"
        lines.append(f"rule:        domain {route.domain.name} ({kind}) from {route.domain.origin}")
    if route.override:
        lines.append(f"override:    address rule from {route.override.origin}")
    lines.append(f"next hop:    {_hop(route.next_hop)}")
    lines.append(f"policy:      {_policy(route.policy)}")
    if route.domain and route.domain.operator_dns:
        dns = sorted(route.domain.operator_dns)
        more = f" (+{len(dns) - _SHOWN_DNS} more)" if len(dns) > _SHOWN_DNS else ""
        lines.append(f"operators:   {'; '.join(dns[:_SHOWN_DNS])}{more}")
    if route.policy.encrypt is not EncryptMode.NEVER:
        lines.append(f"encryption:  {_encryption_certificate(snapshot.encryption_certificate(route.address))}")
    mailbox = snapshot.mailbox(route.address)
    if mailbox:
        lines.append(
            f"mailbox:     {mailbox.kind} national id {mailbox.national_id or '-'}"
            f" profession {mailbox.profession_code or '-'} structure {mailbox.structure_id or '-'}"
        )
    return lines


def explain_sender(route: Route, snapshot: Snapshot) -> list[str]:
    names = route.signer_bundles
    where = route.override.origin if route.override and route.override.signer_bundles is not None else (
        route.domain.origin if route.domain else "no rule"
    )
    trusted = ", ".join(f"{n} ({snapshot.bundles[n].purpose})" for n in names if n in snapshot.bundles)
    return [
        f"sender:      {route.address}",
        f"signers:     {trusted or 'none: signed mail from this sender is refused (untrusted-issuer)'} from {where}",
        f"national id: {snapshot.national_id_of(route.address) or 'not in the directory'}",
    ]


def _encryption_certificate(cert: x509.Certificate | None) -> str:
    if cert is None:
        return "no certificate in the directory"
    return f"certificate {cert.subject.rfc4514_string()} until {cert.not_valid_after_utc:%Y-%m-%d}"


def _hop(hop: NextHop | None) -> str:
    if hop is None:
        return "none"
    verify = f", verified by bundle {hop.verify_bundle}" if hop.verify_bundle else ""
    pinned = f", expecting {hop.verify_dn}" if hop.verify_dn else ""
    return f"{hop}{verify}{pinned}"


def _policy(policy: MessagePolicy) -> str:
    parts = ["signature required" if policy.require_signature else "signature optional"]
    if policy.unsigned_senders:
        parts.append("unsigned accepted from " + ", ".join(sorted(policy.unsigned_senders)))
    parts.append("signs on behalf" if policy.sign_on_behalf else "no signing on behalf")
    parts.append("envelope checked" if policy.envelope_check else "envelope not checked")
    if policy.send_mdn:
        parts.append("sends MDNs")
    if policy.encrypt is not EncryptMode.NEVER:
        cipher = "AES-256-GCM" if policy.encryption_aead else "AES-256-CBC"
        parts.append(f"encrypt {policy.encrypt} ({cipher})")
    return "; ".join(parts)
