"""Connection faults the local server plays by taking over the transport: a body cut short and a
TCP reset after a given number of bytes. The bytes of a reset response, its head included, are
written here exactly as aiohttp would have sent them."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from aiohttp import web

__all__ = ["EVENT_STREAM", "JSON", "SERVER", "reset_after", "send_half"]

JSON = "application/json"
EVENT_STREAM = "text/event-stream"
SERVER = "modelslab-local"


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
