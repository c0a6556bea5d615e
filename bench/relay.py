"""Throughput and latency of `relay serve` against a stock Postfix relay.

    python3 bench/relay.py [--messages 2000] [--sessions 16] [--workers 1] [--processes CORES] [--size 20000] [--unsigned]
                            [--no-postfix] [--no-floor] [--rounds 1]

smtp-source -> relay (loopback listener, S/MIME verification, spool with
fsync, delivery) -> smtp-sink, then the same load through a Postfix relaying
to its own smtp-sink. Prints messages per second (accepted and delivered),
the ratio to Postfix, p50/p99 end-of-DATA -> 250 latency (from the audit
trail), the peak RSS of the relay and its verification workers (with
--processes N, of the supervisor and all its service processes) and the CPU
time they used per message (steadier than msg/s on a shared machine).

For each run it also prints the whole machine's CPU time per message (from
/proc/stat: the server, smtp-source, smtp-sink and the kernel's loopback
work), the one figure that compares like with like. The "libraries" run
(skip it with --no-floor) sends the same load through the two SMTP
libraries alone, as many processes as the relay: aiosmtpd's stock server
accepting each message, handed in memory to the relay's delivery
transaction over reused sessions of its delivery client. No verification, spool or
audit: the cost of the relay's own work is its difference from that floor.
Needs root (Postfix and smtp-sink), openssl, smtp-source and smtp-sink.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path and its name
# would hide the `relay` package; put the project root there instead.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "bench"]
sys.path.insert(0, str(_ROOT))

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402

from cryptography import x509  # noqa: E402

from relay import devpki  # noqa: E402
from relay.core.bundle import Bundle, RevocationMode  # noqa: E402
from relay.core.snapshot import DomainRule, MessagePolicy, NextHop, Snapshot, TlsMode  # noqa: E402

SENDER, RECIPIENT = "alice@hospital.test", "bob@hospital.test"


# -- the relay side ------------------------------------------------------------


def bench_snapshot(spec: Path) -> Snapshot:
    """The bench's trust: one S/MIME bundle and one local domain delivered to the sink."""
    data = json.loads(spec.read_text())
    certs = [x509.load_pem_x509_certificate(Path(p).read_bytes()) for p in (data["root"], data["ca"])]
    bundle = Bundle("bench", anchors=(certs[0],), intermediates=(certs[1],), revocation=RevocationMode.WHERE_AVAILABLE)
    domain = DomainRule(
        "hospital.test", True, ("bench",), NextHop("127.0.0.1", data["sink_port"], TlsMode.NONE),
        policy=MessagePolicy(require_signature=data["signed"]),
    )
    return Snapshot("bench", dt.datetime.now(dt.timezone.utc), {"bench": bundle}, {"hospital.test": domain})


def _serve(config: Path, spec: Path) -> None:
    from relay.smtp.config import load_service_config
    from relay.smtp.supervisor import run

    run(load_service_config(config), functools.partial(bench_snapshot, spec))


# -- helpers ---------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class SmtpSink:
    """Postfix's smtp-sink, counting messages (-c prints `sess=.. quit=.. mesg=N`).

    Its counter goes to a file, not a pipe: a pipe read only once the load
    is sent fills after some 2,700 messages, and smtp-sink, blocked writing
    to it, then stops answering the server under test until the load ends.
    """

    def __init__(self) -> None:
        self.port = _free_port()
        self._output = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            ["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{self.port}", "256"], stdout=self._output, stderr=subprocess.STDOUT
        )
        _wait_port(self.port)

    def count(self) -> int:
        size = os.fstat(self._output.fileno()).st_size
        tail = os.pread(self._output.fileno(), 4096, max(0, size - 4096))
        found = re.findall(rb"mesg=(\d+)", tail)
        return int(found[-1]) if found else 0

    def wait(self, n: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while self.count() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sink received {self.count()} of {n}")
            time.sleep(0.02)
        return time.monotonic()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()
        self._output.close()


def _source(message: Path, port: int, messages: int, sessions: int) -> None:
    subprocess.run(
        ["smtp-source", "-F", str(message), "-m", str(messages), "-s", str(sessions), "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"],
        check=True,
        timeout=900,
    )


SIGNATURE_OVERHEAD = 3000  # the detached signature with its two certificates, in base64


def _message(directory: Path, signed: bool, size: int) -> Path:
    """A message of about `size` bytes, signed with a detached S/MIME signature unless `signed` is false."""
    line = "Compte rendu de consultation, examen et conclusions.\r\n"
    lines = max(size - (SIGNATURE_OVERHEAD if signed else 200), len(line)) // len(line)
    body = "Content-Type: text/plain; charset=utf-8\r\n\r\n" + line * lines
    path = directory / "message.eml"
    # smtp-source sends the file line by line, ending each with CRLF itself: store LF lines.
    if not signed:
        path.write_text(f"From: <{SENDER}>\nTo: <{RECIPIENT}>\nSubject: bench\nMIME-Version: 1.0\n{body}".replace("\r\n", "\n"))
        return path
    (directory / "part.txt").write_text(body)
    signed_bytes = subprocess.run(
        ["openssl", "cms", "-sign", "-in", str(directory / "part.txt"), "-signer", str(directory / "signer.pem"),
         "-inkey", str(directory / "signer.key"), "-certfile", str(directory / "ca.pem"), "-from", SENDER, "-to", RECIPIENT,
         "-subject", "bench", "-crlfeol", "-binary"],
        capture_output=True, check=True,
    ).stdout
    path.write_bytes(signed_bytes.replace(b"\r\n", b"\n"))
    return path


def _pki(directory: Path) -> None:
    root = devpki.make_ca("Bench root")
    ca = devpki.make_ca("Bench personnes", root, path_length=0)
    leaf = devpki.make_leaf(ca, devpki.practitioner_subject("810001234567", "DUPONT", "JEAN"), emails=[SENDER])
    for name, issued in (("root", root), ("ca", ca), ("signer", leaf)):
        (directory / f"{name}.pem").write_bytes(issued.cert_pem)
    (directory / "signer.key").write_bytes(leaf.key_pem)


def _accepted_counter(port: int) -> float:
    """relay_messages_total{outcome="accepted"} from the relay's own /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "relay_messages_total" and sample.labels.get("outcome") == "accepted"
    )


def _tree(pid: int) -> list[int]:
    """A process and its descendants (the service processes and their verification workers)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _machine_cpu_seconds() -> float:
    """CPU time the whole machine spent busy (user, nice, system, irq, softirq, steal) so far."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process tree, living processes only."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for current in _tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def _peak_rss_kib(pid: int) -> int:
    """VmHWM of a process and its descendants (the verification workers)."""
    total = 0
    for current in _tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
        except (OSError, AttributeError):
            continue
    return total


# -- the two runs ------------------------------------------------------------


def run_relay(directory: Path, message: Path, args: argparse.Namespace) -> dict:
    sink = SmtpSink()
    spec = directory / "spec.json"
    pki = message.parent  # the message was signed beside the bench's PKI
    spec.write_text(json.dumps({"root": str(pki / "root.pem"), "ca": str(pki / "ca.pem"), "sink_port": sink.port, "signed": not args.unsigned}))
    config = directory / "relay.toml"
    config.write_text(
        f'[service]\nhostname = "relay.bench"\nverify_workers = {args.workers}\nprocesses = {args.processes}\n'
        f'[queue]\ndirectory = "{directory / "spool"}"\nscan_interval = 1\nflush = "{args.flush}"\n'
        f'[audit]\nfile = "{directory / "audit.log"}"\n'
        f"[limits]\nmax_connections_per_ip = {args.sessions + 10}\n[delivery]\nmax_per_destination = {args.destination_sessions}\n"
        '[[listeners]]\nname = "bench"\nkind = "loopback"\naddress = "127.0.0.1"\nport = 0\n'
        # As in production: every decision and attempt is recorded (one process only: see docs/service.md).
        + ("[metrics]\nport = 0\n" if args.processes == 1 else "")
    )
    try:
        proc = subprocess.Popen([sys.executable, __file__, "--serve", str(config), str(spec)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            ready = json.loads(proc.stdout.readline())["ready"]
            rates = _timed_load(message, ready["bench"][1], sink, args, proc.pid)
            rss = _peak_rss_kib(proc.pid)
            counted = _accepted_counter(ready["metrics"][1]) if "metrics" in ready else None
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    finally:
        sink.stop()
    done = [json.loads(line) for line in (directory / "audit.log").read_text().splitlines()]
    latencies = sorted(e["ms"] for e in done if e.get("event") == "done" and e.get("queue_id"))[20:]
    refused = [e for e in done if e.get("event") == "done" and not e.get("queue_id")]
    if refused:
        raise RuntimeError(f"{len(refused)} messages refused, first: {refused[0]}")
    if counted is None:  # several processes: the audit trail's queued events instead
        counted = sum(1 for e in done if e.get("event") == "queued")
    if counted != 20 + args.messages:
        raise RuntimeError(f"relay_messages_total counted {counted} accepted messages, not {20 + args.messages}")
    return {
        **rates,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "peak_rss_mib": rss / 1024,
    }


_POSTFIX_MAIN = """compatibility_level = 3.6
queue_directory = {d}/queue
data_directory = {d}/data
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink}
myhostname = postfix.bench
mydestination =
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
"""


def run_postfix(directory: Path, message: Path, args: argparse.Namespace) -> dict:
    d = directory / "postfix"
    for walked in (directory.parent, directory):  # Postfix's unprivileged daemons walk down to their queue
        walked.chmod(0o755)
    for sub in ("conf", "queue", "data"):
        (d / sub).mkdir(parents=True)
    shutil.chown(d / "data", "postfix")
    sink = SmtpSink()
    port = _free_port()
    (d / "conf" / "main.cf").write_text(_POSTFIX_MAIN.format(d=d, sink=sink.port))
    master = Path("/etc/postfix/master.cf").read_text()
    (d / "conf" / "master.cf").write_text(re.sub(r"(?m)^smtp\s+inet.*$", f"127.0.0.1:{port} inet n - n - - smtpd", master))
    try:
        subprocess.run(["postfix", "-c", str(d / "conf"), "start"], check=True)
        _wait_port(port)
        return _timed_load(message, port, sink, args)
    finally:
        subprocess.run(["postfix", "-c", str(d / "conf"), "stop"], check=False)
        sink.stop()


def _timed_load(message: Path, port: int, sink: SmtpSink, args: argparse.Namespace, pid: int | None = None) -> dict:
    """A warm-up (workers started, snapshot loaded), then the measured load: rates and the whole
    machine's CPU per message, and with `pid` that process tree's own."""
    _source(message, port, 20, 4)
    sink.wait(20, 60)
    own_before = _cpu_seconds(pid) if pid else 0.0
    machine_before, start = _machine_cpu_seconds(), time.monotonic()
    _source(message, port, args.messages, args.sessions)
    accepted = time.monotonic()
    delivered = sink.wait(20 + args.messages, 600)
    machine = _machine_cpu_seconds() - machine_before
    rates = {
        "accepted_per_s": args.messages / (accepted - start),
        "delivered_per_s": args.messages / (delivered - start),
        "machine_ms_per_message": machine * 1000 / args.messages,
    }
    if pid:
        rates["cpu_ms_per_message"] = (_cpu_seconds(pid) - own_before) * 1000 / args.messages
    return rates


# -- the libraries' floor ------------------------------------------------------


def _serve_floor(port: int, sink_port: int, sessions: int) -> None:
    """aiosmtpd's stock server; each message handed in memory to the relay's delivery transaction."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    from relay.queue.delivery import _transaction
    from relay.queue.smtp_client import Session

    class Forward:
        def __init__(self) -> None:
            self.idle: list[Session] = []
            self.room = asyncio.Semaphore(sessions)
            self.tasks: set[asyncio.Task[None]] = set()

        async def handle_DATA(self, server: SMTP, session: object, envelope: object) -> str:
            task = asyncio.create_task(self.forward(envelope.mail_from, envelope.rcpt_tos, envelope.original_content))  # type: ignore[attr-defined]
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return "250 2.0.0 OK"

        async def forward(self, sender: str, recipients: list[str], message: bytes) -> None:
            async with self.room:
                client = self.idle.pop() if self.idle else None
                if client is None:
                    client = await Session.open(
                        "127.0.0.1", sink_port, helo_name="floor.bench", connect_timeout=30, command_timeout=120
                    )
                outcome = await _transaction(client, sender, recipients, message, reused=False)
                assert outcome is not None and outcome[1], outcome
                self.idle.append(client)

    async def serve() -> None:
        handler = Forward()
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(handler, hostname="floor.bench"), "127.0.0.1", port, reuse_port=True
        )
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


def run_floor(directory: Path, message: Path, args: argparse.Namespace) -> dict:
    sink, port = SmtpSink(), _free_port()
    command = [sys.executable, __file__, "--serve-floor", str(port), str(sink.port), str(args.destination_sessions)]
    servers = [subprocess.Popen(command) for _ in range(args.processes)]
    try:
        _wait_port(port)
        return _timed_load(message, port, sink, args)
    finally:
        for server in servers:
            server.terminate()
            server.wait(30)
        sink.stop()


def main() -> int:
    if sys.argv[1:2] == ["--serve"]:
        _serve(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    if sys.argv[1:2] == ["--serve-floor"]:
        _serve_floor(*map(int, sys.argv[2:5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--size", type=int, default=20000, help="message size in bytes, about")
    # One event loop per core, each with one verification worker: what a machine's cores call for
    # (one process cannot use a second core; see docs/service.md, Throughput).
    parser.add_argument("--workers", type=int, default=1, help="[service] verify_workers")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)), help="[service] processes (default: one per core it may use)")
    parser.add_argument("--destination-sessions", type=int, default=20, help="[delivery] max_per_destination")
    parser.add_argument("--unsigned", action="store_true", help="send unsigned mail (no verification)")
    parser.add_argument("--flush", choices=("files", "filesystem"), default="filesystem", help="[queue] flush")
    parser.add_argument("--no-postfix", action="store_true")
    parser.add_argument("--no-floor", action="store_true", help="skip the run through the SMTP libraries alone")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the runs, alternating, and summarise")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        directory = Path(tmp)
        _pki(directory)
        message = _message(directory, not args.unsigned, args.size)
        rounds = [_round(directory / f"round-{n}", message, args) for n in range(args.rounds)]
    if args.rounds > 1:
        _summarise(rounds)
    return 0


def _round(directory: Path, message: Path, args: argparse.Namespace) -> dict[str, dict]:
    """One run of each kind, printed as it ends."""
    directory.mkdir()
    runs = {"relay": run_relay(directory, message, args)}
    relay = runs["relay"]
    print(f"relay:   {relay['accepted_per_s']:8.1f} msg/s accepted, {relay['delivered_per_s']:8.1f} msg/s delivered, "
          f"DATA->250 p50 {relay['p50_ms']:.1f} ms p99 {relay['p99_ms']:.1f} ms, peak RSS {relay['peak_rss_mib']:.0f} MiB, "
          f"CPU {relay['cpu_ms_per_message']:.2f} ms/message, machine {relay['machine_ms_per_message']:.2f} ms/message "
          f"({'unsigned' if args.unsigned else 'signed'}, {message.stat().st_size} bytes, {args.messages} messages, "
          f"{args.sessions} sessions, {args.processes} processes x {args.workers} workers, flush {args.flush})", flush=True)
    if not args.no_floor:
        floor = runs["libraries"] = run_floor(directory, message, args)
        print(f"libraries: {floor['accepted_per_s']:6.1f} msg/s accepted, {floor['delivered_per_s']:8.1f} msg/s delivered, "
              f"machine {floor['machine_ms_per_message']:.2f} ms/message "
              f"(aiosmtpd -> delivery client in memory, {args.processes} processes)", flush=True)
    if not args.no_postfix:
        postfix = runs["postfix"] = run_postfix(directory, message, args)
        print(f"postfix: {postfix['accepted_per_s']:8.1f} msg/s accepted, {postfix['delivered_per_s']:8.1f} msg/s delivered, "
              f"machine {postfix['machine_ms_per_message']:.2f} ms/message")
        print(f"ratio relay/postfix: accepted {relay['accepted_per_s'] / postfix['accepted_per_s']:.2f}, "
              f"delivered {relay['delivered_per_s'] / postfix['delivered_per_s']:.2f}", flush=True)
    return runs


def _summarise(rounds: list[dict[str, dict]]) -> None:
    """Median and range over the rounds: on a shared machine one run proves little."""

    def spread(values: list[float], form: str) -> str:
        return f"{form.format(statistics.median(values))} ({form.format(min(values))}-{form.format(max(values))})"

    print(f"over {len(rounds)} rounds, median (range):")
    for kind in rounds[0]:
        delivered = [r[kind]["delivered_per_s"] for r in rounds]
        machine = [r[kind]["machine_ms_per_message"] for r in rounds]
        print(f"  {kind:9} {spread(delivered, '{:.0f}')} msg/s delivered, machine {spread(machine, '{:.2f}')} ms/message")
    if "postfix" in rounds[0]:
        ratios = [r["relay"]["delivered_per_s"] / r["postfix"]["delivered_per_s"] for r in rounds]
        print(f"  ratio relay/postfix delivered {spread(ratios, '{:.2f}')}")


if __name__ == "__main__":
    sys.exit(main())
