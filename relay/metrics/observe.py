"""One call that gives a running service its metrics and health endpoint.

The service passes its spool and a way to read its current snapshot; it
gets back the Metrics to record events into and the listening server to
close on shutdown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable

from ..core.snapshot import Snapshot
from ..queue.spool import Spool
from .endpoint import DEFAULT_HOST, DEFAULT_PORT, ObservabilityEndpoint
from .health import directory_writable, readiness_checks
from .registry import Metrics
from .spoolstate import queue_state


@dataclass(frozen=True)
class Observability:
    metrics: Metrics
    server: asyncio.Server

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.sockets[0].getsockname()[:2]
        return host, port

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def start_observability(
    spool: Spool,
    snapshot: Callable[[], Snapshot | None],
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
) -> Observability:
    metrics = Metrics(snapshot, lambda: queue_state(spool))
    checks = readiness_checks(lambda: snapshot() is not None, directory_writable(spool.tmp))
    server = await ObservabilityEndpoint(metrics, checks).start(host, port)
    return Observability(metrics, server)
