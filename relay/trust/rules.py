"""[domain."NAME"] and [address."ADDR"] tables: next hops, policies, operator DNs."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..core.snapshot import AddressRule, DomainRule, EncryptMode, MessagePolicy, NextHop, TlsMode, normalise_address
from .dn import DnError, normalise_dn
from .tomlsource import Table
from .whitelist import DOMAIN_NAME


def read_domain(table: Table) -> DomainRule:
    name = str(table.keypath[-1]).lower()
    if not DOMAIN_NAME.fullmatch(name):
        table.error(None, f"{name!r} is not a domain name")
    rule = DomainRule(
        name=name,
        local=table.boolean("local", False),
        signer_bundles=table.strings("signer_bundles"),
        next_hop=read_next_hop(table.table("next_hop")),
        operator_dns=read_operator_dns(table),
        policy=read_policy(table.table("policy")) or MessagePolicy(),
        origin=table.where(),
    )
    table.done()
    return rule


def read_address(table: Table) -> AddressRule:
    address = normalise_address(str(table.keypath[-1]))
    local, _, domain = address.rpartition("@")
    if not local or not DOMAIN_NAME.fullmatch(domain):
        table.error(None, f"{address!r} is not an e-mail address")
    # Absent: the domain's bundles; `[]`: none, so the address's signed mail is refused.
    signers = table.strings("signer_bundles") if table.has("signer_bundles") else None
    rule = AddressRule(
        address=address,
        signer_bundles=signers,
        next_hop=read_next_hop(table.table("next_hop")),
        policy=read_policy(table.table("policy")),
        origin=table.where(),
    )
    table.done()
    return rule


def read_next_hop(table: Table | None) -> NextHop | None:
    """url = "smtp://host:port", tls = none | starttls | tls, verify_bundle, verify_dn."""
    if table is None:
        return None
    url = table.string("url", required=True)
    tls = TlsMode(table.string("tls", "starttls", choices=[m.value for m in TlsMode]))
    verify_bundle = table.string("verify_bundle")
    verify_dn = table.string("verify_dn")
    if verify_dn is not None:
        _dn(table, "verify_dn", verify_dn)  # kept as written; compare with relay.trust.dn
    table.done()
    if url is None:
        return None
    try:
        host, port = parse_smtp_url(url)
    except ValueError as error:
        table.error("url", str(error))
        return None
    if tls is TlsMode.NONE and not is_loopback(host):
        table.error("tls", f"tls = \"none\" is only allowed towards loopback hosts, not {host}")
    if tls is not TlsMode.NONE and verify_bundle is None:
        table.error(None, f"{table.name}: a TLS next hop needs verify_bundle (the bundle that verifies its certificate)")
    return NextHop(host, port, tls, verify_bundle, verify_dn)


def parse_smtp_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or 25
    except ValueError:
        raise ValueError(f"{url!r}: bad port") from None
    if parts.scheme != "smtp" or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"{url!r} is not smtp://host:port")
    return parts.hostname, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_policy(table: Table | None) -> MessagePolicy | None:
    if table is None:
        return None
    unsigned = table.strings("unsigned_senders")
    policy = MessagePolicy(
        require_signature=table.boolean("require_signature", True),
        unsigned_senders=frozenset(normalise_address(a) for a in unsigned),
        sign_on_behalf=table.boolean("sign_on_behalf", False),
        envelope_check=table.boolean("envelope_check", True),
        send_mdn=table.boolean("send_mdn", False),
        encrypt=EncryptMode(table.string("encrypt", EncryptMode.NEVER.value, choices=[m.value for m in EncryptMode])),
        encryption_aead=table.boolean("encryption_aead", False),
    )
    table.done()
    return policy


def read_operator_dns(table: Table) -> frozenset[str]:
    return frozenset(_dn(table, "operator_dns", text) for text in table.strings("operator_dns"))


def _dn(table: Table, key: str, text: str) -> str:
    try:
        return normalise_dn(text)
    except DnError as error:
        table.error(key, f"{text!r} is not a distinguished name ({error})")
        return text
