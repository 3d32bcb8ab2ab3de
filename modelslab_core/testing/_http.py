"""Minimal HTTP/1.1 plumbing on asyncio streams for the local server.

Reads a request (request line, headers, a ``Content-Length`` or chunked body), builds
response heads, and knows when a connection stays open (keep-alive by default in HTTP/1.1,
closed on ``Connection: close``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from ._sse import LAST_CHUNK, chunked_frame

__all__ = ["HttpError", "HttpRequest", "read_request", "response_head", "send", "send_events"]

MAX_BODY = 64 * 1024 * 1024
JSON = "application/json"
EVENT_STREAM = "text/event-stream"
#: SSE events are written in batches of about this size (fewer writes, same bytes).
BATCH_BYTES = 32 * 1024
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class HttpError(Exception):
    """A malformed request: answer with ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class HttpRequest:
    """One parsed HTTP request."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """Read one request; return ``None`` when the client closed the connection cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "Incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "Request header fields too large") from None
    lines = head[:-4].decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise HttpError(400, "Malformed request line")
    method, target, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HttpError(400, "Malformed header line")
        key = name.lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    body = await _read_body(reader, headers)
    connection = headers.get("connection", "").lower()
    http10 = version == "HTTP/1.0"
    keep_alive = "keep-alive" in connection if http10 else "close" not in connection
    path, _, query = target.partition("?")
    return HttpRequest(method.upper(), path, query, headers, body, keep_alive)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return await _read_chunked(reader)
    length_text = headers.get("content-length")
    if length_text is None:
        return b""
    try:
        length = int(length_text)
    except ValueError:
        raise HttpError(400, "Invalid Content-Length") from None
    if length < 0 or length > MAX_BODY:
        raise HttpError(413 if length > 0 else 400, "Invalid Content-Length")
    if length == 0:
        return b""
    try:
        return await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise HttpError(400, "Incomplete request body") from None


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            size_line = await reader.readuntil(b"\r\n")
            try:
                size = int(size_line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise HttpError(400, "Invalid chunk size") from None
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return b"".join(parts)
            total += size
            if total > MAX_BODY:
                raise HttpError(413, "Request body too large")
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        raise HttpError(400, "Incomplete chunked body") from None


def response_head(
    status: int,
    content_type: str,
    *,
    length: int | None,
    keep_alive: bool,
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    """Build a response head; ``length=None`` means a chunked body."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        f"Content-Type: {content_type}",
    ]
    if length is None:
        lines.append("Transfer-Encoding: chunked")
        lines.append("Cache-Control: no-cache")
    else:
        lines.append(f"Content-Length: {length}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    lines.append("Server: modelslab-local")
    lines.extend(f"{name}: {value}" for name, value in extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    keep_alive: bool,
    headers: Sequence[tuple[str, str]] = (),
    content_type: str = JSON,
) -> None:
    """Write one whole response with a ``Content-Length``."""
    head = response_head(
        status, content_type, length=len(body), keep_alive=keep_alive, extra=headers
    )
    writer.write(head + body)
    await writer.drain()


async def send_events(
    writer: asyncio.StreamWriter, delay: float, events: list[str], keep_alive: bool
) -> None:
    """Write an SSE response with chunked transfer encoding: batched, or one event every
    ``delay`` seconds when ``delay`` is positive."""
    pending = response_head(200, EVENT_STREAM, length=None, keep_alive=keep_alive)
    if delay > 0:
        writer.write(pending)
        for index, event in enumerate(events):
            if index:  # paced between events: the body ends with the last one, no wait after it
                await asyncio.sleep(delay)
            last = LAST_CHUNK if index == len(events) - 1 else b""
            writer.write(chunked_frame(event.encode("utf-8")) + last)
            await writer.drain()
        if not events:
            writer.write(LAST_CHUNK)
            await writer.drain()
        return
    batch: list[str] = []
    size = 0
    for event in events:
        batch.append(event)
        size += len(event)
        if size >= BATCH_BYTES:
            writer.write(pending + chunked_frame("".join(batch).encode("utf-8")))
            await writer.drain()
            pending = b""
            batch.clear()
            size = 0
    frame = chunked_frame("".join(batch).encode("utf-8")) if batch else b""
    writer.write(pending + frame + LAST_CHUNK)
    await writer.drain()
