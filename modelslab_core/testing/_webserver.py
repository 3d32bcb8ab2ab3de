"""The local server's HTTP layer: aiohttp's low-level web server (HTTP/1.1, connections
counted) and the connection faults it plays by taking over the transport: a body cut short, and
a TCP reset after a given number of bytes (aiohttp writes no part of a head, so the reset
response's bytes are written here, exactly as aiohttp would have sent them)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http import HttpVersion11

if TYPE_CHECKING:
    from ._server import LocalModelsLab

__all__ = ["EVENT_STREAM", "JSON", "SERVER", "WebServer", "reset_after", "send_half"]

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
SERVER = "modelslab-local"

_READ_LIMIT = 1024 * 1024
_MAX_BODY = 64 * 1024 * 1024
#: aiohttp's own complaints (malformed requests, which it answers 400) are not ours to log.
_aiohttp_logger = logging.getLogger("modelslab_core.testing._server.aiohttp")
_aiohttp_logger.addHandler(logging.NullHandler())
_aiohttp_logger.propagate = False


class WebServer(web.Server):
    """aiohttp's low-level server, answering in HTTP/1.1 and counting connections."""

    def __init__(self, owner: LocalModelsLab) -> None:
        super().__init__(
            owner._handle,
            request_factory=self._request,
            keepalive_timeout=24 * 3600.0,  # idle keep-alive connections stay open
            max_line_size=_READ_LIMIT,
            max_field_size=_READ_LIMIT,
            access_log=None,
            logger=_aiohttp_logger,
        )
        self._owner = owner

    def _request(
        self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        # Every answer is HTTP/1.1 (an HTTP/1.0 request's connection still closes after it).
        message = message._replace(version=HttpVersion11)
        loop = asyncio.get_running_loop()
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=_MAX_BODY
        )

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        owner = self._owner
        owner._transports[handler] = transport
        owner.connections_opened += 1
        owner.max_open_connections_seen = max(
            owner.max_open_connections_seen, len(owner._transports)
        )

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self._owner._transports.pop(handler, None)


async def send_half(request: web.BaseRequest, payload: bytes) -> web.StreamResponse:
    """Half of a JSON ``payload`` with a ``Content-Length`` for all of it, then close."""
    response = web.StreamResponse(headers={"Content-Type": JSON, "Server": SERVER})
    response.content_length = len(payload)
    response.force_close()
    await response.prepare(request)
    await response.write(payload[: len(payload) // 2])
    if request.transport is not None:
        request.transport.close()
    return response


def _raw_response(payload: bytes, stream: bool, keep_alive: bool) -> bytes:
    """A 200 response's bytes: chunked SSE for a stream, else JSON with a ``Content-Length``."""
    if stream:
        payload = b"%x\r\n%b\r\n0\r\n\r\n" % (len(payload), payload)
        head = f"{EVENT_STREAM}\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache"
    else:
        head = f"{JSON}\r\nContent-Length: {len(payload)}"
    connection = "keep-alive" if keep_alive else "close"
    head = f"HTTP/1.1 200 OK\r\nContent-Type: {head}\r\nConnection: {connection}\r\n"
    return f"{head}Server: {SERVER}\r\n\r\n".encode("latin-1") + payload


async def reset_after(
    request: web.BaseRequest, payload: bytes, stream: bool, after_bytes: int
) -> web.Response:
    """Write the first ``after_bytes`` of the response carrying ``payload``, then abort the
    connection with an RST."""
    transport = request.transport
    if transport is None:
        return web.Response()
    if after_bytes:
        transport.write(_raw_response(payload, stream, request.keep_alive)[:after_bytes])
        for _ in range(1000):  # let the bytes leave before the RST discards them
            if not transport.get_write_buffer_size():
                break
            await asyncio.sleep(0.001)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return web.Response()
