"""Shared pieces for the SMTP and end-to-end tests: a test PKI on disk, a trust spec, configs, processes.

The trust spec is a small JSON description of a Snapshot (bundles from PEM
files, domains, mailboxes) read by `load_spec`; the service and its
verification workers load it through a picklable loader, as they would
load the trust directory.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from relay import devpki
from relay.core.bundle import Bundle, Purpose, RevocationMode
from relay.core.snapshot import DomainRule, MailboxEntry, MailboxKind, MessagePolicy, NextHop, Snapshot, TlsMode
from relay.trust.dn import normalise_dn

ROOT = Path(__file__).resolve().parents[2]
NOW = devpki.DEFAULT_NOT_BEFORE.replace(year=2026)


# -- PKI -------------------------------------------------------------------


@dataclass(frozen=True)
class TestPki:
    directory: Path
    root: devpki.Issued
    server: devpki.Issued  # the relay's and the sinks' TLS certificate
    peer: devpki.Issued  # a peer relay's client certificate (operator of peer.test)
    stranger: devpki.Issued  # a client certificate from another root

    def path(self, name: str) -> Path:
        return self.directory / name

    @property
    def peer_dn(self) -> str:
        return self.peer.cert.subject.rfc4514_string()


def _tls_leaf(issuer: devpki.Issued, name: str) -> devpki.Issued:
    return devpki.make_leaf(
        issuer,
        devpki.organisation_subject(name, "1750000001", f"{name} SA"),
        dns_names=[name, "localhost"],
        key_usage="both",
        eku=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        policies=(),
        key_kind="p256",
    )


def make_pki(directory: Path) -> TestPki:
    directory.mkdir(parents=True, exist_ok=True)
    root = devpki.make_ca("Test TLS root", key_kind="p256")
    other = devpki.make_ca("Other root", key_kind="p256")
    pki = TestPki(directory, root, _tls_leaf(root, "relay.test"), _tls_leaf(root, "mx.peer.test"), _tls_leaf(other, "mx.evil.test"))
    for name, issued in (("server", pki.server), ("peer", pki.peer), ("stranger", pki.stranger)):
        (directory / f"{name}.pem").write_bytes(issued.cert_pem)
        (directory / f"{name}.key").write_bytes(issued.key_pem)
    (directory / "root.pem").write_bytes(root.cert_pem)
    return pki


# -- Trust spec -> Snapshot -------------------------------------------------


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(json.dumps(spec, indent=1))
    return path


def load_spec(path: Path) -> Snapshot:
    raw = path.read_bytes()
    spec = json.loads(raw)
    bundles = {b["name"]: _bundle(b) for b in spec.get("bundles", [])}
    domains = {d["name"]: _domain(d) for d in spec.get("domains", [])}
    mailboxes = {
        m: MailboxEntry(address=m, kind=MailboxKind.PERSONAL) for m in spec.get("mailboxes", [])
    }
    return Snapshot(
        version=hashlib.sha256(raw).hexdigest()[:16],
        loaded_at=NOW,
        bundles=bundles,
        domains=domains,
        mailboxes=mailboxes,
    )


def spec_loader(path: Path) -> functools.partial[Snapshot]:
    return functools.partial(load_spec, path)


def gated_load(path: Path, gate: Path) -> Snapshot:
    """load_spec once `gate/open` exists; until then the loading process writes its pid to the
    FIFO `gate/holding` and blocks for good, so a test can kill a worker that holds a message."""
    if not (gate / "open").exists():
        with open(gate / "holding", "w") as holding:
            holding.write(str(os.getpid()))
        (gate / "never").read_bytes()  # a FIFO nobody writes to
    return load_spec(path)


def make_gate(directory: Path) -> Path:
    directory.mkdir()
    os.mkfifo(directory / "holding")
    os.mkfifo(directory / "never")
    return directory


def _bundle(b: dict[str, Any]) -> Bundle:
    def certs(key: str) -> tuple[x509.Certificate, ...]:
        return tuple(c for p in b.get(key, []) for c in x509.load_pem_x509_certificates(Path(p).read_bytes()))

    return Bundle(
        name=b["name"],
        anchors=certs("anchors"),
        intermediates=certs("intermediates"),
        crls=tuple(x509.load_pem_x509_crl(Path(p).read_bytes()) for p in b.get("crls", [])),
        purpose=Purpose(b.get("purpose", "smime")),
        revocation=RevocationMode(b.get("revocation", "where-available")),
    )


def _domain(d: dict[str, Any]) -> DomainRule:
    hop = d.get("next_hop")
    policy = d.get("policy", {})
    return DomainRule(
        name=d["name"],
        local=d.get("local", False),
        signer_bundles=tuple(d.get("signer_bundles", ["smime"])),
        next_hop=NextHop(hop["host"], hop["port"], TlsMode(hop.get("tls", "none")), hop.get("verify_bundle"), hop.get("verify_dn")) if hop else None,
        operator_dns=frozenset(normalise_dn(dn) for dn in d.get("operator_dns", [])),  # as the loader stores them
        policy=MessagePolicy(
            require_signature=policy.get("require_signature", True),
            unsigned_senders=frozenset(policy.get("unsigned_senders", [])),
            envelope_check=policy.get("envelope_check", True),
            sign_on_behalf=policy.get("sign_on_behalf", False),
            send_mdn=policy.get("send_mdn", False),
        ),
    )


def basic_spec(pki: TestPki, sink_port: int, *, require_signature: bool = False, sink_tls: str = "none", mailboxes: list[str] | None = None) -> dict[str, Any]:
    """hospital.test is local (delivered to the sink), peer.test is a remote peer, both via the sink."""
    hop = {"host": "127.0.0.1", "port": sink_port, "tls": sink_tls}
    if sink_tls != "none":
        hop["verify_bundle"] = "tls"
        hop["verify_dn"] = pki.server.cert.subject.rfc4514_string()
    policy = {"require_signature": require_signature, "unsigned_senders": ["alice@hospital.test"]}
    return {
        "bundles": [
            {"name": "tls", "purpose": "tls", "anchors": [str(pki.path("root.pem"))]},
            {"name": "smime", "purpose": "smime", "anchors": [str(pki.path("root.pem"))]},
        ],
        "domains": [
            {"name": "hospital.test", "local": True, "next_hop": hop, "policy": policy},
            {"name": "peer.test", "local": False, "next_hop": hop, "operator_dns": [pki.peer_dn], "policy": policy},
        ],
        "mailboxes": mailboxes or [],
    }


# -- Configuration ---------------------------------------------------------


def service_toml(
    directory: Path,
    pki: TestPki,
    *,
    limits: dict[str, Any] | None = None,
    delivery: dict[str, Any] | None = None,
    listeners: tuple[str, ...] = ("submission", "submissions", "mx", "mxs", "loopback"),
    workers: int = 0,
    metrics: bool = False,
) -> Path:
    blocks = {
        "submission": ("submission", "starttls"),
        "submissions": ("submission", "tls"),
        "mx": ("mx", "starttls"),
        "mxs": ("mx", "tls"),
        "loopback": ("loopback", "none"),
    }
    lines = [
        "[service]",
        'hostname = "relay.test"',
        f'users = "{directory / "users"}"',
        f"verify_workers = {workers}",
        *(["[metrics]", "port = 0"] if metrics else []),
        "[queue]",
        f'directory = "{directory / "spool"}"',
        "scan_interval = 0.1",
        "[audit]",
        f'file = "{directory / "audit.log"}"',
        "[limits]",
        *(f"{k} = {json.dumps(v)}" for k, v in (limits or {}).items()),
        "[delivery]",
        *(f"{k} = {json.dumps(v)}" for k, v in ({"first_retry": 0.3, "connect_timeout": 2, **(delivery or {})}).items()),
    ]
    for name in listeners:
        kind, tls = blocks[name]
        lines += ["[[listeners]]", f'name = "{name}"', f'kind = "{kind}"', 'address = "127.0.0.1"', "port = 0", f'tls = "{tls}"']
        if tls != "none":
            lines += [f'certificate = "{pki.path("server.pem")}"', f'key = "{pki.path("server.key")}"']
    path = directory / "relay.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_trust_dir(directory: Path, pki: TestPki, sink_port: int, domains: tuple[str, ...] = ("hospital.test",), extra: str = "") -> None:
    """directory/trust for `relay serve`: the operators' TLS bundle, and `domains` local, unsigned mail accepted,
    delivered to the sink; `extra` is appended to domains.toml as is."""
    trust = directory / "trust"
    trust.mkdir(exist_ok=True)
    (trust / "bundles.toml").write_text(f'[bundle.operators]\npurpose = "tls"\nanchors = ["{pki.path("root.pem")}"]\nrevocation = "soft"\n')
    (trust / "domains.toml").write_text("".join(
        f'[domain."{domain}"]\nlocal = true\nsigner_bundles = []\n'
        f'next_hop = {{ url = "smtp://127.0.0.1:{sink_port}", tls = "none" }}\n'
        f'[domain."{domain}".policy]\nrequire_signature = false\n'
        for domain in domains
    ) + extra)


def add_user(config: Path, user: str, password: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "relay", "users", "--config", str(config), "add", user],
        input=password + "\n", text=True, check=True, cwd=ROOT, capture_output=True,
    )


# -- Processes -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_ready(proc: subprocess.Popen[str], timeout: float = 30.0) -> dict[str, Any]:
    """The process's JSON ready line (it prints one once its sockets listen)."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], deadline - time.monotonic())
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"process exited before ready: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
        if line.startswith('{"ready"'):  # other JSON lines are log records
            return json.loads(line)["ready"]
    raise AssertionError("process not ready in time")


def wait_until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)  # polling observable state with a deadline


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Sink:
    """An aiosmtpd sink in its own process; messages land as files in `directory`."""

    directory: Path
    port: int
    proc: subprocess.Popen[str] | None = None

    def start(self, mode: str = "accept", tls: Path | None = None) -> Sink:
        args = [sys.executable, str(ROOT / "tests" / "e2e" / "sink.py"), str(self.directory), str(self.port), mode]
        if tls:
            args += [str(tls / "server.pem"), str(tls / "server.key")]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.port = read_ready(self.proc)["sink"][1]
        return self

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.directory.glob("*.eml"))]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.messages()
            if len(found) >= count:
                return found
            time.sleep(0.05)  # polling the sink's directory with a deadline
        raise AssertionError(f"sink got {len(self.messages())} messages, expected {count}")

    def wait_for_marker(self, marker: str, timeout: float = 20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.messages() if marker.encode() in m]
            if found:
                return found[0]
            time.sleep(0.05)  # polling the sink's directory with a deadline
        raise AssertionError(f"no delivered message contains {marker}")


@dataclass
class Relay:
    """`relay serve` in its own process, with a spec-file trust snapshot."""

    config: Path
    spec: Path
    proc: subprocess.Popen[str] | None = None
    ports: dict[str, int] = field(default_factory=dict)

    def start(self) -> Relay:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "e2e" / "launch.py"), str(self.config), str(self.spec)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )
        self.ports = {k: v[1] for k, v in read_ready(self.proc).items()}
        return self

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @property
    def audit_lines(self) -> list[dict[str, Any]]:
        path = self.config.parent / "audit.log"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def events(self, name: str, **match: Any) -> list[dict[str, Any]]:
        return [e for e in self.audit_lines if e.get("event") == name and all(e.get(k) == v for k, v in match.items())]

    def wait_event(self, name: str, timeout: float = 20.0, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.events(name, **match)
            if found:
                return found[0]
            time.sleep(0.05)  # polling the audit file with a deadline
        raise AssertionError(f"no audit event {name} {match}")


def message(sender: str, recipients: list[str], subject: str = "Test", body: str = "Hello.\r\n", extra: str = "") -> bytes:
    return (
        f"From: <{sender}>\r\nTo: {', '.join(f'<{r}>' for r in recipients)}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{time.time_ns()}@test>\r\nDate: Thu, 01 Jan 2026 10:00:00 +0000\r\n{extra}\r\n{body}"
    ).encode()


def swaks(*args: str, data: bytes | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    command = ["swaks", "--server", "127.0.0.1", *args]
    if data is not None:
        command += ["--data", "-"]
    return subprocess.run(command, input=data.decode() if data else None, capture_output=True, text=True, timeout=timeout)


def bare_session(loop: Any, handler: Any = None, **options: Any) -> Any:
    """A RelaySMTP with no connection, service or limits behind it, for its own methods."""
    from relay.smtp.session import RelaySMTP

    return RelaySMTP(
        handler if handler is not None else object(), metrics=None, limiter=None, credentials=None,
        session_timeout=options.pop("session_timeout", 1), line_length_limit=1001, sessions=set(),
        loop=loop, hostname="relay.test", **options,
    )
