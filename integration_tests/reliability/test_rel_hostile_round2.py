"""Hostile servers, round 2, over real sockets (small raw-socket servers on 127.0.0.1): whatever
they do, a call ends within its bounds in a typed error, and the key never goes to another
origin.

- a redirect to another origin (host, port, or scheme and port) is refused when anything the
  request would carry there holds the key: a header or a body field, whatever the placement;
- ``total_timeout`` ends a sync call whose body stalls after late headers at the deadline, and a
  sync stream that stalls after its first event with the deadline's ``APITimeoutError``;
- ``timeout`` bounds each write of an async call to a server that stops reading;
- a chunked body that turns invalid half-way ends in a typed error, sync and async.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient
from modelslab_core import errors as e

KEY = "msl-ROUND2-4b1d-SECRET-KEY-77"
REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
MODES = pytest.mark.parametrize("mode", ["sync", "async"])
ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}


class RawServer:
    """A TCP server on 127.0.0.1 running ``handler(conn, request_head)`` per connection, in a
    thread; it records every byte each connection sent before the handler returned."""

    def __init__(self, handler: Callable[[socket.socket, bytes], None]) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self.received: list[bytes] = []
        self._handler = handler
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def url(self, host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}/api/v7/llm"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        conn.settimeout(10)
        try:
            while b"\r\n\r\n" not in head:
                data = conn.recv(65536)
                if not data:
                    break
                head += data
            self.received.append(head)
            self._handler(conn, head)
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for conn in self._connections:
            conn.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, bytes], None]], RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Callable[[socket.socket, bytes], None]) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _read_body(conn: socket.socket, head: bytes) -> bytes:
    """The rest of a request with a ``content-length`` (what a leak would be in)."""
    lines = head.split(b"\r\n\r\n", 1)
    body = lines[1] if len(lines) > 1 else b""
    length = 0
    for line in lines[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        data = conn.recv(65536)
        if not data:
            break
        body += data
    return body


def _respond(conn: socket.socket, status: str, body: bytes, extra: str = "") -> None:
    conn.sendall(
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        f"{extra}connection: close\r\n\r\n".encode()
        + body
    )


def call(mode: str, client_kwargs: dict[str, Any], request: dict[str, Any] = REQUEST) -> Any:
    kwargs = {"api_key": KEY, "timeout": 5, "max_retries": 0, **client_kwargs}
    if mode == "sync":
        return ModelsLabClient(**kwargs).chat(request)

    async def run() -> Any:
        return await AsyncModelsLabClient(**kwargs).chat(request)

    return asyncio.run(run())


def stream(mode: str, client_kwargs: dict[str, Any]) -> list[Any]:
    kwargs = {"api_key": KEY, "timeout": 5, "max_retries": 0, **client_kwargs}
    if mode == "sync":
        with ModelsLabClient(**kwargs).chat_stream(REQUEST) as chunks:
            return list(chunks)

    async def run() -> list[Any]:
        client = AsyncModelsLabClient(**kwargs)
        async with await client.chat_stream(REQUEST) as chunks:
            return [chunk async for chunk in chunks]

    return asyncio.run(run())


# --- the key never follows a redirect to another origin --------------------------------------

PLACEMENTS = {
    "bearer, key in a body field": ({}, {"key": KEY}),
    "bearer, key in a default header": ({"default_headers": {"api-key": KEY}}, {}),
    "x-api-key": ({"key_placement": "x-api-key"}, {}),
    "body": ({"key_placement": "body"}, {}),
}
TARGETS = ["another host", "another port", "another scheme and port"]


@MODES
@pytest.mark.parametrize("placement", list(PLACEMENTS))
@pytest.mark.parametrize("target", TARGETS)
def test_a_redirect_to_another_origin_never_carries_the_key(
    raw_server: Any, mode: str, placement: str, target: str
) -> None:
    elsewhere = raw_server(lambda conn, head: _respond(conn, "200 OK", json.dumps(ANSWER).encode()))
    location = {
        "another host": elsewhere.url("localhost"),
        "another port": elsewhere.url(),
        "another scheme and port": elsewhere.url(scheme="https"),
    }[target]

    def redirect(conn: socket.socket, head: bytes) -> None:
        _read_body(conn, head)
        _respond(conn, "307 Temporary Redirect", b"", f"location: {location}/chat/completions\r\n")

    origin = raw_server(redirect)
    client_kwargs, extra = PLACEMENTS[placement]
    with pytest.raises(e.APIStatusError, match="another origin") as caught:
        call(mode, {"base_url": origin.url(), **client_kwargs}, {**REQUEST, **extra})
    assert caught.value.status_code == 307
    assert KEY not in str(caught.value)
    assert elsewhere.received == []  # nothing at all went there


@MODES
def test_a_redirect_within_the_origin_is_followed_with_the_key(raw_server: Any, mode: str) -> None:
    def serve(conn: socket.socket, head: bytes) -> None:
        _read_body(conn, head)
        if b"/moved/" in head.split(b"\r\n", 1)[0]:
            _respond(conn, "200 OK", json.dumps(ANSWER).encode())
        else:
            _respond(conn, "307 Temporary Redirect", b"", "location: /moved/chat/completions\r\n")

    server = raw_server(serve)
    answer = call(mode, {"base_url": server.url()}, {**REQUEST, "key": KEY})
    assert answer.choices[0].message.content == "hi"
    assert len(server.received) == 2
