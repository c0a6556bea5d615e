"""The observability endpoint on loopback: scraped with urllib, parsed by prometheus_client's parser."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.core.bundle import Bundle
from relay.core.reasons import Reason
from relay.core.snapshot import Snapshot
from relay.devpki import make_ca, make_crl
from relay.metrics.endpoint import ObservabilityEndpoint
from relay.metrics.health import directory_writable, readiness_checks
from relay.metrics.registry import Metrics
from relay.metrics.spoolstate import queue_state
from relay.queue.spool import Envelope, RecipientState, Spool
from relay.smtp.replies import Refusal

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
HOUR = 3600.0


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    root = make_ca("AC RACINE METRICS")
    other = make_ca("AC AUTRE METRICS")
    fresh = make_crl(root, this_update=NOW - dt.timedelta(hours=2), next_update=NOW + dt.timedelta(hours=22))
    stale = make_crl(root, this_update=NOW - dt.timedelta(days=3), next_update=NOW - dt.timedelta(days=2))
    lapsed = make_crl(other, this_update=NOW - dt.timedelta(days=9), next_update=NOW - dt.timedelta(hours=1))
    return Snapshot(
        version="v-metrics-1",
        loaded_at=NOW - dt.timedelta(minutes=10),
        bundles={
            "igc-sante": Bundle("igc-sante", (root.cert,), crls=(stale, fresh)),
            "direct": Bundle("direct", (other.cert,), crls=(lapsed,)),
            "no-crl": Bundle("no-crl", (other.cert,)),
        },
    )


def _spool(directory: Path, ages_hours: list[float]) -> Spool:
    spool = Spool(directory)
    spool.prepare()
    for n, age in enumerate(ages_hours):
        queue_id = f"{n + 1:024x}"
        received = NOW.timestamp() - age * HOUR
        envelope = Envelope(queue_id, "a@x.test", (RecipientState("b@y.test"),), received, 0.0)
        spool.store_now(b"Subject: not read by metrics\r\n\r\nbody\r\n", envelope)
        os.utime(spool.queue / f"{queue_id}.msg", (received, received))
    return spool


def _families(text: str) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """{family: {(sample name, sorted labels): value}}; the parser raises on malformed text."""
    return {
        family.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Endpoint:
    """The endpoint served by an event loop in a thread, so urllib can call it synchronously."""

    def __init__(self, endpoint: ObservabilityEndpoint) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(endpoint.start("127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        future = self.loop.run_in_executor(None, _get, self.url + path)
        return self.loop.run_until_complete(future)

    def raw(self, request: bytes, finish: bool = True) -> bytes:
        async def exchange() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(request)
            await writer.drain()
            if finish:
                writer.write_eof()  # the whole request is sent: a cut-short one is seen as such
            answer = await reader.read()
            writer.close()
            return answer

        return self.loop.run_until_complete(exchange())

    def close(self) -> None:
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()


@contextlib.contextmanager
def read_only(directory: Path):
    """Make a directory unwritable for this process: mode bits, or the immutable flag for root."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("running as root without chattr +i (CAP_LINUX_IMMUTABLE): cannot make a directory read-only")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


@pytest.fixture
def served(tmp_path, snapshot):
    spool = _spool(tmp_path / "spool", [0.5, 26.0, 3.0])
    current: dict[str, Snapshot | None] = {"snapshot": snapshot}
    metrics = Metrics(lambda: current["snapshot"], lambda: queue_state(spool), clock=NOW.timestamp)
    checks = readiness_checks(lambda: current["snapshot"] is not None, directory_writable(spool.tmp))
    endpoint = Endpoint(ObservabilityEndpoint(metrics, checks))
    yield endpoint, metrics, spool, current
    endpoint.close()


def test_scrape_reports_recorded_events(served):
    endpoint, metrics, _, _ = served
    metrics.message_accepted()
    metrics.message_accepted()
    metrics.message_refused(Reason.CERTIFICATE_REVOKED)
    metrics.message_refused(Refusal.RELAY_DENIED)
    for status in ("delivered", "delivered", "pending", "failed"):
        metrics.delivery_attempt(status)
    for seconds in (0.004, 0.02, 0.3):
        metrics.verification_time(seconds)
    metrics.tls_handshake("mx", "TLSv1.3")
    metrics.tls_handshake("mx", "TLSv1.2")
    metrics.tls_handshake("submission", "TLSv1.3")
    metrics.tls_handshake("submission", "SSLv3")

    status, text = endpoint.get("/metrics")
    assert status == 200
    f = _families(text)
    messages = f["relay_messages"]
    assert messages[("relay_messages_total", (("outcome", "accepted"), ("reason", "ok")))] == 2
    assert messages[("relay_messages_total", (("outcome", "refused"), ("reason", "certificate-revoked")))] == 1
    assert messages[("relay_messages_total", (("outcome", "refused"), ("reason", "relay-denied")))] == 1
    # Every reason code is exported from the start, at zero until it happens.
    for reason in Reason:
        if reason is not Reason.OK:
            assert ("relay_messages_total", (("outcome", "refused"), ("reason", reason.value))) in messages
    assert messages[("relay_messages_total", (("outcome", "refused"), ("reason", "unsigned")))] == 0
    attempts = f["relay_delivery_attempts"]
    assert attempts[("relay_delivery_attempts_total", (("result", "delivered"),))] == 2
    assert attempts[("relay_delivery_attempts_total", (("result", "deferred"),))] == 1
    assert attempts[("relay_delivery_attempts_total", (("result", "failed"),))] == 1
    latency = f["relay_verification_seconds"]
    assert latency[("relay_verification_seconds_count", ())] == 3
    assert latency[("relay_verification_seconds_sum", ())] == pytest.approx(0.324)
    assert latency[("relay_verification_seconds_bucket", (("le", "0.005"),))] == 1
    assert latency[("relay_verification_seconds_bucket", (("le", "0.025"),))] == 2
    assert latency[("relay_verification_seconds_bucket", (("le", "+Inf"),))] == 3
    handshakes = f["relay_tls_handshakes"]
    assert handshakes[("relay_tls_handshakes_total", (("listener", "mx"), ("version", "TLSv1.3")))] == 1
    assert handshakes[("relay_tls_handshakes_total", (("listener", "mx"), ("version", "TLSv1.2")))] == 1
    assert handshakes[("relay_tls_handshakes_total", (("listener", "submission"), ("version", "other")))] == 1


def test_scrape_reports_queue_and_trust_state(served, snapshot):
    endpoint, _, _, _ = served
    status, text = endpoint.get("/metrics")
    assert status == 200
    f = _families(text)
    assert f["relay_queue_messages"][("relay_queue_messages", ())] == 3
    assert f["relay_queue_oldest_message_age_seconds"][("relay_queue_oldest_message_age_seconds", ())] == pytest.approx(26 * HOUR)
    assert f["relay_trust_snapshot_info"] == {("relay_trust_snapshot_info", (("version", "v-metrics-1"),)): 1}
    assert f["relay_trust_snapshot_age_seconds"][("relay_trust_snapshot_age_seconds", ())] == 600
    crls = f["relay_bundle_crls"]
    assert crls == {
        ("relay_bundle_crls", (("bundle", "direct"),)): 1,
        ("relay_bundle_crls", (("bundle", "igc-sante"),)): 2,
        ("relay_bundle_crls", (("bundle", "no-crl"),)): 0,
    }
    root = snapshot.bundles["igc-sante"].anchors[0].subject.rfc4514_string()
    other = snapshot.bundles["direct"].anchors[0].subject.rfc4514_string()
    # Of two CRLs by the same issuer, the fresher one speaks for the bundle.
    assert f["relay_crl_age_seconds"] == {
        ("relay_crl_age_seconds", (("bundle", "direct"), ("issuer", other))): 9 * 24 * HOUR,
        ("relay_crl_age_seconds", (("bundle", "igc-sante"), ("issuer", root))): 2 * HOUR,
    }
    assert f["relay_crl_next_update_seconds"] == {
        ("relay_crl_next_update_seconds", (("bundle", "direct"), ("issuer", other))): -HOUR,
        ("relay_crl_next_update_seconds", (("bundle", "igc-sante"), ("issuer", root))): 22 * HOUR,
    }


def test_metrics_never_carry_message_content(served):
    endpoint, _, _, _ = served
    _, text = endpoint.get("/metrics")
    assert "not read by metrics" not in text and "a@x.test" not in text


def test_queue_follows_the_spool(served):
    endpoint, _, spool, _ = served
    for queue_id in spool.ids():
        with spool.locked(queue_id):
            spool.remove(queue_id)
    f = _families(endpoint.get("/metrics")[1])
    assert f["relay_queue_messages"][("relay_queue_messages", ())] == 0
    assert f["relay_queue_oldest_message_age_seconds"][("relay_queue_oldest_message_age_seconds", ())] == 0


def test_health_and_readiness_transitions(served):
    endpoint, _, spool, current = served
    assert endpoint.get("/healthz") == (200, "alive\n")
    assert endpoint.get("/readyz") == (200, "ready\n")

    current["snapshot"] = None
    assert endpoint.get("/readyz") == (503, "not ready: trust-snapshot\n")
    assert endpoint.get("/healthz") == (200, "alive\n")  # not ready is not dead: no restart
    current["snapshot"] = "loaded"  # type: ignore[assignment]
    assert endpoint.get("/readyz") == (200, "ready\n")

    with read_only(spool.tmp):
        assert endpoint.get("/readyz") == (503, "not ready: spool-writable\n")
        current["snapshot"] = None
        assert endpoint.get("/readyz") == (503, "not ready: trust-snapshot, spool-writable\n")
    current["snapshot"] = "loaded"  # type: ignore[assignment]
    assert endpoint.get("/readyz") == (200, "ready\n")
    assert list(spool.tmp.iterdir()) == []  # the probe cleans up after itself

    shutil.rmtree(spool.directory)
    assert endpoint.get("/readyz") == (503, "not ready: spool-writable\n")


def test_a_failing_check_is_a_no_not_a_crash(tmp_path):
    def broken() -> bool:
        raise RuntimeError("probe exploded")

    metrics = Metrics()
    endpoint = Endpoint(ObservabilityEndpoint(metrics, readiness_checks(broken, directory_writable(tmp_path))))
    try:
        assert endpoint.get("/readyz") == (503, "not ready: trust-snapshot\n")
        assert endpoint.get("/healthz")[0] == 200
    finally:
        endpoint.close()


@pytest.mark.parametrize(
    "request_bytes, status_line",
    [
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", b"HTTP/1.1 404 Not Found"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", b"HTTP/1.1 405 Method Not Allowed"),
        (b"\xff\xfe garbage\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET metrics HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET /metrics\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
        (b"GET /healthz HTTP/1.1\r\n", b"HTTP/1.1 400 Bad Request"),  # cut short
        (b"", b"HTTP/1.1 400 Bad Request"),
    ],
)
def test_bad_requests_get_a_clear_status_and_the_endpoint_keeps_serving(served, request_bytes, status_line):
    endpoint, _, _, _ = served
    answer = endpoint.raw(request_bytes)
    assert answer.split(b"\r\n", 1)[0] == status_line
    assert endpoint.get("/healthz") == (200, "alive\n")


def test_head_gets_headers_only(served):
    endpoint, _, _, _ = served
    answer = endpoint.raw(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in head
    assert body == b""


def test_events_outside_the_vocabulary_are_refused():
    metrics = Metrics()
    with pytest.raises(ValueError):
        metrics.message_refused(Reason.OK)
    with pytest.raises(ValueError):
        metrics.delivery_attempt("lost")


def test_a_stalled_client_is_dropped_and_others_are_served(tmp_path):
    endpoint = Endpoint(ObservabilityEndpoint(Metrics(), {}, request_timeout=0.2))
    try:
        # Half a request, the connection kept open: the endpoint hangs up without answering.
        assert endpoint.raw(b"GET /healthz HTTP/1.1\r\n", finish=False) == b""
        assert endpoint.get("/healthz") == (200, "alive\n")
        assert endpoint.get("/readyz") == (200, "ready\n")  # no checks: nothing to fail
    finally:
        endpoint.close()


def test_a_failing_collector_costs_one_scrape_not_the_endpoint():
    def snapshot() -> Snapshot:
        raise RuntimeError("holder exploded")

    endpoint = Endpoint(ObservabilityEndpoint(Metrics(snapshot), {}))
    try:
        status, _ = endpoint.get("/metrics")
        assert status == 500
        assert endpoint.get("/healthz") == (200, "alive\n")
    finally:
        endpoint.close()
