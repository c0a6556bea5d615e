"""A small asyncio HTTP/1.1 endpoint for /metrics, /healthz and /readyz.

Loopback by default: the metrics tell queue sizes and trust versions, which
are for the operator's scraper, not the Internet. One request per
connection, GET or HEAD only, bounded request size and time; anything else
gets a plain 4xx and the connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Callable, Mapping

from .health import Check, evaluate
from .registry import Metrics

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9325
MAX_REQUEST_BYTES = 8192
REQUEST_TIMEOUT = 5.0

CONTENT_TYPE_METRICS = "text/plain; version=0.0.4; charset=utf-8"
CONTENT_TYPE_TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    reason: str
    body: bytes
    content_type: str = CONTENT_TYPE_TEXT


class ObservabilityEndpoint:
    """Routes the three paths; `start()` binds and returns the asyncio server."""

    def __init__(
        self,
        metrics: Metrics,
        readiness: Mapping[str, Check],
        alive: Callable[[], bool] = lambda: True,
        request_timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.metrics = metrics
        self.readiness = readiness
        self.alive = alive
        self.request_timeout = request_timeout

    async def start(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> asyncio.Server:
        return await asyncio.start_server(self._serve, host=host, port=port, limit=MAX_REQUEST_BYTES)

    async def respond(self, method: str, target: str) -> Response:
        if method not in ("GET", "HEAD"):
            return Response(405, "Method Not Allowed", b"only GET and HEAD\n")
        path = target.split("?", 1)[0]
        if path == "/metrics":
            # Reading the spool for the queue gauges touches the disk: off the loop.
            body = await asyncio.to_thread(self.metrics.exposition)
            return Response(200, "OK", body, CONTENT_TYPE_METRICS)
        if path == "/healthz":
            return Response(200, "OK", b"alive\n") if self.alive() else Response(503, "Service Unavailable", b"not alive\n")
        if path == "/readyz":
            state = await asyncio.to_thread(evaluate, self.readiness)
            return Response(200 if state.ready else 503, "OK" if state.ready else "Service Unavailable", state.as_text().encode())
        return Response(404, "Not Found", b"not found\n")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), self.request_timeout)
            if request is None:
                response = Response(400, "Bad Request", b"bad request\n")
                head_only = False
            else:
                method, target = request
                head_only = method == "HEAD"
                try:
                    response = await self.respond(method, target)
                except Exception:  # a failing collector costs this scrape, never the endpoint
                    response = Response(500, "Internal Server Error", b"internal error\n")
            writer.write(_render(response, head_only))
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass  # a client that stalls, hangs up or floods gets nothing more
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str] | None:
    """(method, target) from the request line; the header fields are read and ignored."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.LimitOverrunError, asyncio.IncompleteReadError):  # too long, or cut short
        return None
    try:
        line = head.split(b"\r\n", 1)[0].decode("ascii")
    except UnicodeDecodeError:
        return None
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return None
    return parts[0], parts[1]


def _render(response: Response, head_only: bool) -> bytes:
    head = (
        f"HTTP/1.1 {response.status} {response.reason}\r\n"
        f"Content-Type: {response.content_type}\r\n"
        f"Content-Length: {len(response.body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    ).encode()
    return head if head_only else head + response.body
