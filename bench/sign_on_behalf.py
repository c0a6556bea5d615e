"""Sign on behalf, end to end: unsigned application mail in, signed and DKIM-signed mail out.

    python3 bench/sign_on_behalf.py [--messages 400] [--sessions 8]

A SoftHSM2 token holds the organisation key; `relay serve` runs as a child
process with `[keys]` and `[dkim]` configured; N client threads, each on one
authenticated STARTTLS session, submit unsigned 20 KB messages from the
hospital application account; a sink process counts what the relay delivers.
Prints messages/s from the first submission until the sink has them all, and
the DATA -> 250 latency percentiles (which include the token signature).
Token signatures/s on their own: bench/sign.py.
"""

from __future__ import annotations

import argparse
import smtplib
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout, not an installed copy

from cryptography.hazmat.primitives import serialization  # noqa: E402

from relay import devpki  # noqa: E402
from tests.e2e.crypto_support import TokenRelay, append, keys_section, make_token  # noqa: E402
from tests.e2e.test_e2e_outbound import APP, DOCTOR, DOMAIN, KEY_LABEL, PASSWORD, SELECTOR, _spec  # noqa: E402
from tests.pki import HealthPki  # noqa: E402
from tests.smtp.helpers import Sink, add_user, make_pki, service_toml, write_spec  # noqa: E402


def message(number: int, size: int = 20_000) -> bytes:
    line = "Resultats de biologie : valeurs dans les normes, aucun commentaire particulier.\r\n"
    body = (line * (size // len(line) + 1))[:size]
    return (
        f"From: DPI <{APP}>\r\nTo: <{DOCTOR}>\r\nSubject: Compte rendu {number}\r\n"
        f"Date: Mon, 01 Jun 2026 09:30:00 +0000\r\nMessage-ID: <bench-{number}@{DOMAIN}>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n" + body[: body.rfind("\r\n") + 2]
    ).encode()


def client(port: int, root_pem: Path, numbers: list[int], latencies: list[float]) -> None:
    context = ssl.create_default_context(cafile=str(root_pem))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.starttls(context=context)
        smtp.login(APP, PASSWORD)
        for number in numbers:
            smtp.mail(APP)
            smtp.rcpt(DOCTOR)
            started = time.perf_counter()
            code, text = smtp.data(message(number))
            latencies.append(time.perf_counter() - started)
            if code != 250:
                raise RuntimeError(f"message {number}: {code} {text!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--sessions", type=int, default=8)
    args = parser.parse_args()
    pki = HealthPki()
    with tempfile.TemporaryDirectory() as folder:
        d = Path(folder)
        tls = make_pki(d / "tls")
        organisation = pki.organisation(emails=[APP])
        token = make_token(d / "hsm", "relay-org", KEY_LABEL, organisation, [pki.structures.cert, pki.root.cert])
        dkim_key = devpki.new_key("rsa2048").private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (d / "dkim.pem").write_bytes(dkim_key)
        sink = Sink(d / "sink", 0).start()
        write_spec(d / "spec.json", _spec(d, tls, pki, sink.port))
        config = service_toml(d, tls, listeners=("submission",), workers=2)
        append(config, keys_section(token, sign_label=KEY_LABEL) + f'[dkim."{DOMAIN}"]\nselector = "{SELECTOR}"\nkey_file = "dkim.pem"\n')
        add_user(config, APP, PASSWORD)
        relay = TokenRelay(config, d / "spec.json").with_token(token).start()
        try:
            latencies: list[float] = []
            shares = [list(range(i, args.messages, args.sessions)) for i in range(args.sessions)]
            threads = [
                threading.Thread(target=client, args=(relay.ports["submission"], tls.path("root.pem"), share, latencies))
                for share in shares
            ]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            sink.wait_for(args.messages, timeout=600)
            elapsed = time.perf_counter() - started
        finally:
            relay.stop()
            sink.stop()
    if len(latencies) != args.messages:
        print(f"only {len(latencies)} of {args.messages} messages were accepted", file=sys.stderr)
        return 1
    cuts = statistics.quantiles(latencies, n=100)
    print(f"sign on behalf, end to end: {args.messages} unsigned 20 KB messages over {args.sessions} sessions")
    print(f"  {args.messages / elapsed:.0f} messages/s signed (SoftHSM2, RSA-2048), DKIM-signed and delivered")
    print(f"  DATA -> 250: p50 {cuts[49] * 1000:.0f} ms, p99 {cuts[98] * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
