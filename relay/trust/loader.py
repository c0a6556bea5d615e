"""Load relay.toml and its trust directory into one immutable Snapshot.

Everything is read and checked before anything is built: either every file
is valid and a new Snapshot comes out, or ConfigError lists every problem
with its `file:line`. Nothing is ever half loaded.

Trust directory layout (all paths inside are relative to the directory):
every `*.toml` file at its top level may declare `[bundle.NAME]`,
`[domain."NAME"]`, `[address."ADDR"]`, and once in the whole directory
`[whitelist]`, `[mailboxes]` and `[recipients]`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..core.bundle import Purpose
from ..core.snapshot import AddressRule, DomainRule, MessagePolicy, NextHop, Snapshot
from .bundles import BundleSpec, read_bundle
from .config import RelayConfig, read_config
from .mailboxes import MailboxError, read_mailboxes
from .problems import ConfigError, Problems
from .recipients import read_recipients
from .rules import read_address, read_domain, read_next_hop, read_policy
from .sources import Sources
from .tomlsource import Table, TomlFile, parse_toml
from .whitelist import Whitelist, WhitelistError, check_sha256, parse_whitelist

__all__ = ["ConfigError", "Loaded", "load_directory", "load_snapshot"]


@dataclass(frozen=True)
class WhitelistSpec:
    path: Path
    sha256_path: Path | None
    signer_bundles: tuple[str, ...]
    next_hop: NextHop | None
    policy: MessagePolicy
    origin: str


@dataclass(frozen=True)
class Loaded:
    """A snapshot and what `relay check` reports about it."""

    snapshot: Snapshot
    config: RelayConfig
    bundle_specs: Mapping[str, BundleSpec]
    warnings: tuple[str, ...]
    files_read: int
    whitelist_domains: int
    seconds: float


def load_snapshot(config_path: Path, now: dt.datetime | None = None) -> Snapshot:
    return load_directory(config_path, now).snapshot


def load_directory(config_path: Path, now: dt.datetime | None = None) -> Loaded:
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.timezone.utc)
    state = _State(Sources(), Problems(), now)
    config = _read_service_config(Path(config_path), state)
    for path in _trust_files(config, state):
        _read_trust_file(path, state)
    _check_references(state)
    whitelisted = _merge_whitelist(state)
    mailboxes = _read_mailboxes(state)
    snapshot = Snapshot(
        version="",
        loaded_at=now,
        bundles={name: spec.bundle for name, spec in state.bundles.items()},
        domains=state.domains,
        addresses=state.addresses,
        mailboxes=mailboxes,
    )
    recipients = _read_recipients(state, snapshot)  # needs the routes: checked against each domain's bundles
    state.problems.raise_if_any()
    snapshot = dataclasses.replace(snapshot, version=state.sources.version, recipients=recipients)
    return Loaded(
        snapshot, config, dict(state.bundles), tuple(state.problems.warnings),
        state.sources.count, whitelisted, time.perf_counter() - started,
    )


@dataclass
class _State:
    sources: Sources
    problems: Problems
    now: dt.datetime
    trust_dir: Path = Path(".")
    bundles: dict[str, BundleSpec] = field(default_factory=dict)
    domains: dict[str, DomainRule] = field(default_factory=dict)
    addresses: dict[str, AddressRule] = field(default_factory=dict)
    singletons: dict[str, Table] = field(default_factory=dict)
    declared: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> file:line

    def declare(self, kind: str, name: str, table: Table) -> bool:
        """False (and an error naming both places) when the name is already declared."""
        first = self.declared.setdefault((kind, name), table.where())
        if first != table.where():
            self.problems.error(table.where(), f"{kind} {name!r} is already declared at {first}")
            return False
        return True

    def read_toml(self, path: Path, referenced_at: str) -> TomlFile | None:
        try:
            raw = self.sources.read(path)
        except OSError as error:
            self.problems.error(referenced_at, f"{path}: {error.strerror or error}")
            return None
        return parse_toml(path, raw, self.problems)


def open_config(config_path: Path) -> RelayConfig:
    """relay.toml alone, for commands that need its settings but not the trust."""
    state = _State(Sources(), Problems(), dt.datetime.now(dt.timezone.utc))
    config = _read_service_config(Path(config_path), state)
    state.problems.raise_if_any()
    return config


def _read_service_config(path: Path, state: _State) -> RelayConfig:
    source = state.read_toml(path, "")
    if source is None:
        raise state.problems.as_error()
    config = read_config(source, state.problems)
    state.trust_dir = config.trust_dir
    return config


def _trust_files(config: RelayConfig, state: _State) -> list[Path]:
    if not config.trust_dir.is_dir():
        state.problems.error(config.source.where(("trust_dir",)), f"trust directory {config.trust_dir} does not exist")
        raise state.problems.as_error()
    files = sorted(config.trust_dir.glob("*.toml"))
    if not files:
        state.problems.warn(str(config.trust_dir), "no *.toml file: the trust directory is empty")
    return files


def _read_trust_file(path: Path, state: _State) -> None:
    source = state.read_toml(path, str(path))
    if source is None:
        return
    top = Table(source, (), source.data, state.problems)
    for table in top.subtables("bundle"):
        spec = read_bundle(table, state.trust_dir, state.sources, state.now)
        if state.declare("bundle", spec.bundle.name, table):
            state.bundles[spec.bundle.name] = spec
    for table in top.subtables("domain"):
        rule = read_domain(table)
        if state.declare("domain", rule.name, table):
            state.domains[rule.name] = rule
    for table in top.subtables("address"):
        override = read_address(table)
        if state.declare("address", override.address, table):
            state.addresses[override.address] = override
    for name in ("whitelist", "mailboxes", "recipients"):
        table = top.table(name)
        if table is not None and state.declare("table", name, table):
            state.singletons[name] = table
    top.done()


def _check_references(state: _State) -> None:
    for rule in [*state.domains.values(), *state.addresses.values()]:
        _check_hop_and_signers(state, rule.origin, rule.signer_bundles or (), rule.next_hop)


def _check_hop_and_signers(state: _State, origin: str, signers: tuple[str, ...], hop: NextHop | None) -> None:
    for name in signers:
        _check_bundle(state, origin, name, Purpose.SMIME)
    if hop and hop.verify_bundle:
        _check_bundle(state, origin, hop.verify_bundle, Purpose.TLS)


def _check_bundle(state: _State, origin: str, name: str, purpose: Purpose) -> None:
    spec = state.bundles.get(name)
    if spec is None:
        state.problems.error(origin, f"unknown bundle {name!r}")
    elif spec.bundle.purpose is not purpose:
        state.problems.error(origin, f"bundle {name!r} has purpose {spec.bundle.purpose}, {purpose} is needed here")


def _read_whitelist_table(table: Table, state: _State) -> WhitelistSpec:
    file = table.string("file", required=True) or ""
    sha256 = table.string("sha256_file")
    spec = WhitelistSpec(
        path=state.trust_dir / file,
        sha256_path=state.trust_dir / sha256 if sha256 else None,
        signer_bundles=table.strings("signer_bundles"),
        next_hop=read_next_hop(table.table("next_hop")),
        policy=read_policy(table.table("policy")) or MessagePolicy(),
        origin=table.where(),
    )
    if not spec.signer_bundles:
        table.error(None, "[whitelist] needs signer_bundles: the bundles trusted for signers of whitelisted domains")
    table.done()
    _check_hop_and_signers(state, spec.origin, spec.signer_bundles, spec.next_hop)
    return spec


def _merge_whitelist(state: _State) -> int:
    """Whitelisted domains become remote domain rules; explicit [domain] rules win.

    An explicit rule for a whitelisted domain that lists no operator DN keeps
    the whitelist's DNs, so administrators can change a next hop without
    copying the ANS-managed operator list.
    """
    table = state.singletons.get("whitelist")
    if table is None:
        return 0
    spec = _read_whitelist_table(table, state)
    operator_dns, first_line = _read_whitelist_file(spec, table, state)
    for domain, dns in operator_dns.items():
        explicit = state.domains.get(domain)
        if explicit is None:
            state.domains[domain] = DomainRule(
                domain, False, spec.signer_bundles, spec.next_hop, dns, spec.policy,
                origin=f"whitelist {spec.path}:{first_line[domain]}",
            )
        elif not explicit.operator_dns and not explicit.local:
            state.domains[domain] = dataclasses.replace(explicit, operator_dns=dns)
    return len(operator_dns)


def _read_whitelist_file(spec: WhitelistSpec, table: Table, state: _State) -> tuple[dict[str, frozenset[str]], dict[str, int]]:
    try:
        whitelist = _parse_whitelist_once(spec, state.sources)
    except OSError as error:
        table.error("file", f"{error.filename}: {error.strerror or error}")
        return {}, {}
    except WhitelistError as error:
        table.error("file", f"{spec.path}: {error}")
        return {}, {}
    for skipped in whitelist.skipped:
        state.problems.warn(f"{spec.path}", f"entry skipped: {skipped}")
    first_line: dict[str, int] = {}
    for entry in whitelist.entries:
        first_line.setdefault(entry.domain, entry.line)
    return whitelist.operator_dns(), first_line


def _parse_whitelist_once(spec: WhitelistSpec, sources: Sources) -> Whitelist:
    """One pass over the file: the streaming parser, the SHA-256 and the version see the same bytes."""
    published = sources.read(spec.sha256_path) if spec.sha256_path else None
    with sources.stream(spec.path) as stream:
        try:
            whitelist = parse_whitelist(stream)
        finally:
            # Even when the parse fails: a file that is not the published one is reported as such.
            if published is not None:
                check_sha256(stream.sha256(), published)
    return whitelist


def _read_mailboxes(state: _State) -> dict:
    table = state.singletons.get("mailboxes")
    if table is None:
        return {}
    path = state.trust_dir / (table.string("file", required=True) or "")
    table.done()
    try:
        return read_mailboxes(state.sources.read(path))
    except OSError as error:
        table.error("file", f"{path}: {error.strerror or error} (write it with `relay directory import`)")
    except MailboxError as error:
        table.error("file", f"{path}: {error}")
    finally:
        state.sources.forget(path)
    return {}


def _read_recipients(state: _State, snapshot: Snapshot) -> dict:
    table = state.singletons.get("recipients")
    if table is None:
        return {}
    directory = state.trust_dir / (table.string("directory", required=True) or "")
    table.done()
    if state.problems.errors:
        return {}  # the routes are not trustworthy yet; the errors already stop the load
    return read_recipients(directory, snapshot, state.sources, state.problems, state.now)


def mailbox_path(config: RelayConfig) -> Path:
    """Where `relay directory import` writes: the [mailboxes] file, else mailboxes.tsv."""
    for path in sorted(config.trust_dir.glob("*.toml")):
        problems = Problems()
        try:
            source = parse_toml(path, path.read_bytes(), problems)
        except OSError:
            continue
        table = source.data.get("mailboxes") if source else None
        if isinstance(table, dict) and isinstance(table.get("file"), str):
            return config.trust_dir / table["file"]
    return config.trust_dir / "mailboxes.tsv"
