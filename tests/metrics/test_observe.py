"""start_observability wires a real spool and snapshot to a listening endpoint."""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.request

from relay.core.snapshot import Snapshot
from relay.metrics.observe import start_observability
from relay.queue.spool import Spool


def _fetch(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_started_endpoint_reports_the_service_state(tmp_path):
    spool = Spool(tmp_path / "spool")
    spool.prepare()
    snapshot = Snapshot("v-observe", dt.datetime.now(dt.timezone.utc))

    async def scenario() -> tuple[tuple[int, str], tuple[int, str]]:
        observed = await start_observability(spool, lambda: snapshot, "127.0.0.1", 0)
        try:
            host, port = observed.address
            assert host == "127.0.0.1" and port > 0
            observed.metrics.message_accepted()
            ready = await asyncio.to_thread(_fetch, f"http://{host}:{port}/readyz")
            metrics = await asyncio.to_thread(_fetch, f"http://{host}:{port}/metrics")
            return ready, metrics
        finally:
            await observed.close()

    ready, (status, text) = asyncio.run(scenario())
    assert ready == (200, "ready\n")
    assert status == 200
    assert 'relay_messages_total{outcome="accepted",reason="ok"} 1.0' in text
    assert 'relay_trust_snapshot_info{version="v-observe"} 1.0' in text
    assert "relay_queue_messages 0.0" in text
