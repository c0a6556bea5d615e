"""The service's own sections of relay.toml: [service], [[listeners]], [limits], [queue], [delivery], [audit], [metrics].

Strict: an unknown key, a wrong type or an impossible value is a ConfigError
naming the file, the line, the section and the key. Other top-level sections belong to the trust
directory and are left to its loader. Relative paths are resolved against the
directory of the configuration file.
"""

from __future__ import annotations

import ipaddress
import math
import tomllib
from dataclasses import dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping, NoReturn

from ..core.limits import MessageLimits
from ..queue import syncfs
from ..queue.spool import Flush
from ..trust.tomlsource import KeyPath, line_of, not_utf8, read_document


class ConfigError(ValueError):
    """The service configuration cannot be used; the message names the file, line and key."""


class ConfigSource:
    """relay.toml as read: its path, and the line of each key when its text is at hand."""

    def __init__(self, path: Path, lines: Mapping[KeyPath, int] | None = None) -> None:
        self.path = path
        self.lines: Mapping[KeyPath, int] = lines or {}

    def where(self, *keypath: str | int) -> str:
        """`file:line` of the key (or of its closest enclosing table); the file alone when
        neither is in the file, or its text is not at hand."""
        line = line_of(self.lines, keypath)
        return f"{self.path}:{line}" if line else str(self.path)


class ListenerKind(StrEnum):
    SUBMISSION = "submission"  # authenticated clients of this relay (RFC 6409)
    MX = "mx"  # peer relays, identified by their TLS client certificate
    LOOPBACK = "loopback"  # plain SMTP from this host only (benchmarks, local tools)


class ListenerTls(StrEnum):
    STARTTLS = "starttls"
    IMPLICIT = "tls"  # RFC 8314 implicit TLS
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    name: str
    kind: ListenerKind
    address: str
    port: int
    tls: ListenerTls
    certificate: Path | None = None
    key: Path | None = None
    # PROXY protocol (HAProxy v1/v2): each connection must open with a header
    # from one of these networks, and the client it names is the peer.
    proxy_from: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @property
    def proxy_protocol(self) -> bool:
        return bool(self.proxy_from)


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    max_recipients: int = 100
    max_received: int = 50  # more Received: fields than this is a mail loop
    max_connections: int = 200
    max_connections_per_ip: int = 20
    command_timeout: float = 300.0  # idle time allowed between commands (RFC 5321 §4.5.3.2)
    session_timeout: float = 1800.0  # whole session, against slow drip-feeding clients
    message: MessageLimits = MessageLimits()


@dataclass(frozen=True, slots=True)
class QueueConfig:
    directory: Path
    scan_interval: float = 5.0  # how often the spool is re-read for due or operator-changed messages
    commit_wait: float = 0.002  # how long a commit may wait for messages still being judged
    flush: Flush = Flush.FILES  # how a batch of several messages is made durable


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    first_retry: float = 300.0
    max_retry_interval: float = 4 * 3600.0
    give_up_after: float = 5 * 86400.0
    connect_timeout: float = 30.0
    command_timeout: float = 120.0
    max_per_destination: int = 20  # as Postfix's default_destination_concurrency_limit
    max_concurrent: int = 32


@dataclass(frozen=True, slots=True)
class AuditConfig:
    file: Path | None = None  # None: standard error


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    path: Path  # the relay.toml read; the trust loader reads it too
    pid_file: Path | None  # top-level, shared with `relay reload`
    hostname: str
    users: Path | None
    verify_workers: int  # 0: verify in threads of the service process
    processes: int  # service processes sharing the listeners and the spool (relay.smtp.supervisor)
    metrics: tuple[str, int] | None  # [metrics]: Prometheus and health endpoint; None: not served
    listeners: tuple[ListenerConfig, ...]
    limits: ServiceLimits
    queue: QueueConfig
    delivery: DeliveryConfig
    audit: AuditConfig


def read_toml(path: Path) -> tuple[Mapping[str, Any], Mapping[KeyPath, int]]:
    """relay.toml as a document and the line of each key, or a ConfigError naming the file."""
    try:
        return read_document(path.read_bytes())
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: {not_utf8(error)}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None


def load_service_config(path: Path) -> ServiceConfig:
    document, lines = read_toml(path)
    return parse_service_config(document, path, lines)


def parse_service_config(document: Mapping[str, Any], path: Path, lines: Mapping[KeyPath, int] | None = None) -> ServiceConfig:
    """The service's sections of document, read from path; lines (from index_lines) put each error's line in its message."""
    base = path.parent
    source = ConfigSource(path, lines)
    service = _Section(document.get("service", {}), ("service",), source)
    listeners_raw = document.get("listeners", [])
    if not isinstance(listeners_raw, list) or not listeners_raw:
        raise ConfigError(f"{source.where('listeners')}: [[listeners]]: at least one listener is required")
    listeners = tuple(_listener(_Section(raw, ("listeners", i), source), base) for i, raw in enumerate(listeners_raw))
    _unique_names(listeners, source)
    queue = _Section(document.get("queue", {}), ("queue",), source)
    audit = _Section(document.get("audit", {}), ("audit",), source)
    metrics = _Section(document.get("metrics", {}), ("metrics",), source)
    pid_file = document.get("pid_file")
    if pid_file is not None and (not isinstance(pid_file, str) or not pid_file):
        raise ConfigError(f"{source.where('pid_file')}: pid_file: must be a path")
    config = ServiceConfig(
        path=path,
        pid_file=base / pid_file if pid_file else None,
        hostname=service.string("hostname", "localhost"),
        users=service.path("users", base, None),
        verify_workers=service.integer("verify_workers", 2, minimum=0),
        processes=service.integer("processes", 1, minimum=1, maximum=64),
        metrics=_metrics(metrics, "metrics" in document),
        listeners=listeners,
        limits=_limits(_Section(document.get("limits", {}), ("limits",), source)),
        queue=QueueConfig(
            directory=queue.path("directory", base, base / "spool"),
            scan_interval=queue.number("scan_interval", 5.0, minimum=0.01),
            commit_wait=queue.number("commit_wait", 0.002, minimum=0.0, maximum=0.1),
            flush=_flush(queue),
        ),
        delivery=_delivery(_Section(document.get("delivery", {}), ("delivery",), source)),
        audit=AuditConfig(file=audit.path("file", base, None)),
    )
    for section in (service, queue, audit, metrics):
        section.finish()
    if config.processes > 1 and config.metrics:
        # Each process counts only what it handled: one endpoint would show a fraction.
        service.fail("processes", "[metrics] is served by a single process: use processes = 1 with [metrics]")
    return config


METRICS_PORT = 9325


def _flush(section: _Section) -> Flush:
    flush: Flush = section.choice("flush", Flush, Flush.FILES)
    if flush is Flush.FILESYSTEM and (why := syncfs.unavailable_reason()):
        section.fail("flush", f'"filesystem" {why}')
    return flush


def _metrics(section: _Section, present: bool) -> tuple[str, int] | None:
    """The endpoint's address; the section's presence turns it on."""
    address = section.string("address", "127.0.0.1")
    port = section.integer("port", METRICS_PORT, minimum=0, maximum=65535)
    try:
        ipaddress.ip_address(address)
    except ValueError:
        section.fail("address", f"{address!r} is not an IP address")
    return (address, port) if present else None


def _listener(section: _Section, base: Path) -> ListenerConfig:
    kind = section.choice("kind", ListenerKind)
    tls = section.choice("tls", ListenerTls, ListenerTls.NONE if kind is ListenerKind.LOOPBACK else ListenerTls.STARTTLS)
    listener = ListenerConfig(
        name=section.string("name", str(kind)),
        kind=kind,
        address=section.string("address", "127.0.0.1"),
        port=section.integer("port", None, minimum=0, maximum=65535),
        tls=tls,
        certificate=section.path("certificate", base, None),
        key=section.path("key", base, None),
        proxy_from=_proxy_from(section),
    )
    section.finish()
    _check_listener(listener, section)
    return listener


def _proxy_from(section: _Section) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """The trusted proxies when `proxy_protocol = true`; both keys go together."""
    enabled = section.boolean("proxy_protocol", False)
    raw = section._get("proxy_from", None)
    if not enabled:
        if raw is not None:
            section.fail("proxy_from", "is only read with proxy_protocol = true")
        return ()
    if not isinstance(raw, list) or not raw or not all(isinstance(item, str) for item in raw):
        section.fail("proxy_from", "proxy_protocol = true needs the proxies' addresses, e.g. [\"127.0.0.1\"]")
    networks = []
    for item in raw:
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            section.fail("proxy_from", f"{item!r} is not an IP address or network")
    return tuple(networks)


def _check_listener(listener: ListenerConfig, section: _Section) -> None:
    plain = listener.tls is ListenerTls.NONE
    if plain and listener.kind is not ListenerKind.LOOPBACK:
        section.fail("tls", f"a {listener.kind} listener needs TLS (starttls or tls)")
    if plain and not _is_loopback(listener.address):
        section.fail("address", f"a plain listener only binds loopback addresses, not {listener.address}")
    if listener.kind is ListenerKind.LOOPBACK and not plain:
        section.fail("tls", "a loopback listener is plain SMTP (tls = \"none\")")
    if not plain and (listener.certificate is None or listener.key is None):
        section.fail("certificate", "a TLS listener needs certificate and key")
    if listener.proxy_protocol and listener.tls is ListenerTls.IMPLICIT:
        # The PROXY header precedes everything; implicit TLS would expect a handshake first.
        section.fail("proxy_protocol", "not available with tls = \"tls\" (use starttls behind a proxy)")


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # host names could resolve anywhere


def _unique_names(listeners: tuple[ListenerConfig, ...], source: ConfigSource) -> None:
    names = [listener.name for listener in listeners]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise ConfigError(f"{source.where('listeners', index, 'name')}: [[listeners]]: name {name!r} is used twice")


def _numbers(section: _Section, defaults: Any) -> dict[str, Any]:
    """The numeric fields of a settings dataclass: counts at least 1, seconds at least 0.01."""
    values: dict[str, Any] = {}
    for f in fields(defaults):
        default = getattr(defaults, f.name)
        if isinstance(default, int):
            values[f.name] = section.integer(f.name, default, minimum=1)
        elif isinstance(default, float):
            values[f.name] = section.number(f.name, default, minimum=0.01)
    return values


def _limits(section: _Section) -> ServiceLimits:
    message = MessageLimits(**_numbers(section, MessageLimits()))
    limits = ServiceLimits(**_numbers(section, ServiceLimits()), message=message)
    section.finish()
    return limits


def _delivery(section: _Section) -> DeliveryConfig:
    delivery = DeliveryConfig(**_numbers(section, DeliveryConfig()))
    section.finish()
    return delivery


class _Section:
    """Typed reads from one table, remembering which keys were used."""

    def __init__(self, table: Any, keypath: KeyPath, source: ConfigSource) -> None:
        self.keypath, self.source = keypath, source
        self.name = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in keypath).lstrip(".")
        if not isinstance(table, dict):
            raise ConfigError(f"{source.where(*keypath)}: [{self.name}] must be a table")
        self.table: dict[str, Any] = table
        self.used: set[str] = set()

    def fail(self, key: str, why: str) -> NoReturn:
        raise ConfigError(f"{self.source.where(*self.keypath, key)}: [{self.name}] {key}: {why}")

    def _get(self, key: str, default: Any) -> Any:
        self.used.add(key)
        return self.table.get(key, default)

    def string(self, key: str, default: str | None) -> str:
        value = self._get(key, default)
        if value is None:
            self.fail(key, "is required")
        if not isinstance(value, str) or not value:
            self.fail(key, "must be a non-empty string")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            self.fail(key, "must be true or false")
        return value

    def integer(self, key: str, default: int | None, minimum: int = 0, maximum: int | None = None) -> int:
        value = self._get(key, default)
        if value is None:
            self.fail(key, "is required")
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(key, "must be an integer")
        if value < minimum or (maximum is not None and value > maximum):
            self.fail(key, f"must be between {minimum} and {maximum if maximum is not None else 'unbounded'}")
        return value

    def number(self, key: str, default: float, minimum: float, maximum: float | None = None) -> float:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, "must be a number (seconds)")
        if value < minimum:
            self.fail(key, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            self.fail(key, f"must be at most {maximum}")
        return float(value)

    def choice(self, key: str, enum: type[StrEnum], default: StrEnum | None = None) -> Any:
        value = self._get(key, default)
        if value is None:
            self.fail(key, f"is required (one of {', '.join(e.value for e in enum)})")
        try:
            return enum(value)
        except ValueError:
            self.fail(key, f"{value!r} is not one of {', '.join(e.value for e in enum)}")

    def path(self, key: str, base: Path, default: Path | None) -> Path | None:
        value = self._get(key, default)
        if value is None or isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            self.fail(key, "must be a path")
        return base / value

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            self.fail(unknown[0], "unknown key")

