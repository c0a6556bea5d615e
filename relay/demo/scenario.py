"""The demo scenario: start the relay on the example configuration and send it two messages.

One message is signed by a demo practitioner and is delivered to the demo
hospital system; the other is the same message altered after signing and is
refused at DATA with the reason code. Everything runs on loopback.
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import secrets
import smtplib
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import IO, Callable, Iterator, Sequence

from ..core.smime_sign import sign_message
from ..core.snapshot import Snapshot, TlsMode
from ..demopki import LOCAL_DOMAIN, write_demo_pki
from ..keys.software import load_file_key
from ..smtp.config import ListenerKind, ListenerTls, ServiceConfig, load_service_config
from ..smtp.credentials import PasswordHash, edit_credentials, write_credentials
from ..trust.loader import load_snapshot
from .sink import MailboxSink

SENDER = f"claire.martin@{LOCAL_DOMAIN}"
RECIPIENT = f"secretariat@{LOCAL_DOMAIN}"
SIGNER = "dr-martin"  # certs/demo/dr-martin.{pem,key}: Claire Martin's signature certificate
DELIVERY_TIMEOUT = 60.0
READY_TIMEOUT = 60.0  # seconds for `relay serve` to bind its listeners (it loads the trust directory first)
STOP_TIMEOUT = 30.0

Say = Callable[[str], None]


@dataclass(frozen=True)
class DemoSetup:
    config_path: Path
    certs: Path
    work: Path  # where the demo keeps its mailboxes and sample message

    @property
    def sample(self) -> Path:
        """The signed message of the demo, kept for the swaks and relay verify examples."""
        return self.work / "signed-example.eml"


@dataclass(frozen=True)
class Submission:
    host: str
    port: int
    password: str


def run(setup: DemoSetup, keep_running: bool, say: Say = print) -> int:
    """Run the scenario; 0 when both messages met their expected fate."""
    written = write_demo_pki(setup.certs)
    say(f"demo PKI: {setup.certs} ({len(written)} file(s) written)")
    config = load_service_config(setup.config_path)
    snapshot = load_snapshot(setup.config_path)
    submission = _prepare_user(config)
    sinks = _start_sinks(snapshot, setup.work)
    try:
        with relay_process(_serve_command(setup.config_path), _relay_log(config), say) as relay:
            ok = _scenario(setup, submission, sinks, say)
            _explain(setup, submission, say)
            if keep_running and relay.poll() is None:
                say("the relay keeps running; Ctrl-C stops it")
                _wait_for_interrupt(relay)
            return 0 if ok else 1
    finally:
        for sink in sinks.values():
            sink.stop()


def _prepare_user(config: ServiceConfig) -> Submission:
    """A fresh password for the demo practitioner, so the demo can log in and print it."""
    if config.users is None:
        raise RuntimeError(f"{config.path}: [service] users is not set")
    listener = next(
        (l for l in config.listeners if l.kind is ListenerKind.SUBMISSION and l.tls is ListenerTls.STARTTLS), None
    )
    if listener is None:
        raise RuntimeError(f"{config.path}: no STARTTLS submission listener to send the demo messages to")
    config.users.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    users = edit_credentials(config.users)
    users[SENDER] = PasswordHash.create(password)
    write_credentials(config.users, users)
    return Submission(listener.address, listener.port, password)


def _start_sinks(snapshot: Snapshot, work: Path) -> dict[str, MailboxSink]:
    """One stand-in hospital system per plain loopback next hop of the example."""
    hops = [rule.next_hop for rule in snapshot.domains.values() if rule.local and rule.next_hop]
    hops += [rule.next_hop for rule in snapshot.addresses.values() if rule.next_hop]
    sinks: dict[str, MailboxSink] = {}
    for hop in hops:
        if hop.tls is TlsMode.NONE and hop.host in ("127.0.0.1", "::1", "localhost"):
            name = f"{hop.host}:{hop.port}"
            if name not in sinks:
                sinks[name] = MailboxSink(work / f"mailbox-{hop.port}", hop.port, hop.host)
                sinks[name].start()
    return sinks


@contextmanager
def relay_process(
    command: Sequence[str], log: str, say: Say, ready_timeout: float = READY_TIMEOUT
) -> Iterator[subprocess.Popen[str]]:
    """The relay as a child process once it reports listening; stopped on exit, and if it never does.

    `log`: where to read why it did not start, named in the error.
    """
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, text=True)
    try:
        ready = _read_ready_line(process, log, ready_timeout)
        say(f"relay serve is listening: {', '.join(f'{n} {h}:{p}' for n, (h, p) in ready.items())}")
        yield process
    finally:
        _stop(process)


def _serve_command(config_path: Path) -> list[str]:
    return [sys.executable, "-m", "relay", "serve", "--config", str(config_path)]


def _relay_log(config: ServiceConfig) -> str:
    if config.audit.file is None:
        return "the relay's messages above (standard error, its audit trail included)"
    return f"the audit log {config.audit.file} and the relay's messages above (standard error)"


def _read_ready_line(process: subprocess.Popen[str], log: str, timeout: float) -> dict[str, list]:
    """The service prints one JSON line once every listener is bound; wait for it at most `timeout` seconds."""
    assert process.stdout is not None
    ready: queue.Queue[dict[str, list] | None] = queue.Queue(maxsize=1)
    # readline() cannot time out; the thread ends when the stopped process closes its output.
    threading.Thread(target=_watch_output, args=(process.stdout, ready), daemon=True).start()
    try:
        listening = ready.get(timeout=timeout)
    except queue.Empty:
        raise RuntimeError(
            f"relay serve did not report listening within {timeout:g} s and was stopped; read {log}"
        ) from None
    if listening is None:
        raise RuntimeError(f"relay serve exited ({process.wait()}) before listening; read {log}")
    return listening


def _watch_output(output: IO[str], ready: queue.Queue[dict[str, list] | None]) -> None:
    """Hand over the ready line and echo every other line, for as long as the relay runs.

    The relay also logs warnings on standard output: read to the end, its
    pipe never fills (which would block it), and a warning before the ready
    line is shown rather than taken for it.
    """
    announced = False
    for line in output:
        listening = None if announced else _listening(line)
        if listening is not None:
            ready.put(listening)
            announced = True
        else:
            sys.stdout.write(line)
            sys.stdout.flush()
    if not announced:
        ready.put(None)


def _listening(line: str) -> dict[str, list] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value.get("ready") if isinstance(value, dict) and isinstance(value.get("ready"), dict) else None


def _stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if the relay has not stopped after STOP_TIMEOUT seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _scenario(setup: DemoSetup, submission: Submission, sinks: dict[str, MailboxSink], say: Say) -> bool:
    signed = _signed_message(setup.certs)
    setup.sample.write_bytes(signed)
    tampered = signed.replace(b"de consultation", b"de consultatioN", 1)  # inside the signed part
    say(f"1. signed message from {SENDER} to {RECIPIENT}")
    first = _submit(setup, submission, signed)
    say(f"   relay answered: {first}")
    say("2. the same message altered after signing")
    second = _submit(setup, submission, tampered)
    say(f"   relay answered: {second}")
    delivered = _wait_for_delivery(list(sinks.values()))
    say(f"   delivered to the hospital system: {delivered or 'nothing yet (see relay queue list)'}")
    return first.startswith("250") and second.startswith("5") and delivered is not None


def _signed_message(certs: Path) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    unsigned = (
        f"From: Dr Claire Martin <{SENDER}>\r\n"
        f"To: {RECIPIENT}\r\n"
        f"Subject: Compte rendu (demo)\r\n"
        f"Date: {format_datetime(now)}\r\n"
        f"Message-ID: {make_msgid(domain=LOCAL_DOMAIN)}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Compte rendu de consultation (message de demonstration, aucune donnee patient).\r\n"
    ).encode()
    key = load_file_key(certs / f"{SIGNER}.key", certs / f"{SIGNER}.pem", certs / "igc-personnes.pem")
    return sign_message(unsigned, key, now)


def _submit(setup: DemoSetup, submission: Submission, message: bytes) -> str:
    """The relay's reply to DATA, as text ("250 ..." or the refusal)."""
    context = ssl.create_default_context(cafile=str(setup.certs / "igc-chain.pem"))
    context.check_hostname = False  # the demo server certificate names mx.hopital-demo.mssante.fr, not 127.0.0.1
    try:
        with smtplib.SMTP(submission.host, submission.port, timeout=60) as client:
            client.starttls(context=context)
            client.login(SENDER, submission.password)
            client.mail(SENDER)
            code, reply = client.rcpt(RECIPIENT)
            if code != 250:
                return f"{code} {reply.decode(errors='replace')}"
            code, reply = client.data(message)
            return f"{code} {reply.decode(errors='replace')}"
    except smtplib.SMTPResponseException as refusal:
        return f"{refusal.smtp_code} {refusal.smtp_error.decode(errors='replace')}"


def _wait_for_delivery(sinks: list[MailboxSink]) -> str | None:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        for sink in sinks:
            found = sink.messages()
            if found:
                return str(found[0])
        time.sleep(0.2)  # polling a folder the delivery writes into; bounded by the deadline
    return None


def _explain(setup: DemoSetup, submission: Submission, say: Say) -> None:
    sample = setup.sample
    say("")
    say("send more with swaks (the password is new at every demo run):")
    say(
        f"  swaks --server {submission.host} --port {submission.port} --tls "
        f"--auth PLAIN --auth-user {SENDER} --auth-password '{submission.password}' "
        f"--from {SENDER} --to {RECIPIENT} --data {sample}"
    )
    say(f"  relay verify --config {setup.config_path} {sample}")
    say(f"  relay queue list --config {setup.config_path}")
    say(f"audit trail: see [audit] file in {setup.config_path}")


def _wait_for_interrupt(process: subprocess.Popen[str]) -> None:
    try:
        process.wait()
    except KeyboardInterrupt:
        pass
