"""Hostile servers over real sockets (small raw-socket servers on 127.0.0.1): whatever they do,
a call ends within its bounds in a typed error, and the key never goes to another origin.

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

KEY = "msl-HOSTILE-4b1d-SECRET-KEY-77"
REQUEST = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "hi"}]}
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


# --- total_timeout: one deadline for both twins ----------------------------------------------

EVENT = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'


def _late_headers_then_stall(stream_body: bool) -> Callable[[socket.socket, bytes], None]:
    """Headers after 1.5 s, then (streamed) one event, then nothing for 30 s."""

    def serve(conn: socket.socket, head: bytes) -> None:
        _read_body(conn, head)
        time.sleep(1.5)
        kind = "text/event-stream" if stream_body else "application/json"
        conn.sendall(
            f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n"
            "transfer-encoding: chunked\r\n\r\n".encode()
        )
        if stream_body:
            conn.sendall(b"%x\r\n%s\r\n" % (len(EVENT), EVENT))
        time.sleep(30)

    return serve


@MODES
@pytest.mark.parametrize("streamed", [False, True], ids=["body", "stream"])
def test_a_body_stalling_after_late_headers_ends_at_the_deadline(
    raw_server: Any, mode: str, streamed: bool
) -> None:
    """The body's read waits only what is left of the deadline, not a whole read timeout: the
    call, or the stalled stream, ends with the deadline's ``APITimeoutError``, not a
    ``ReadTimeout`` or an ``IncompleteStreamError``."""
    server = raw_server(_late_headers_then_stall(streamed))
    client = {"base_url": server.url(), "total_timeout": 2.0, "timeout": 20}
    # The deadline's own error ("did not finish within total_timeout"), not a read timeout's.
    with pytest.raises(e.APITimeoutError, match="within total_timeout=2") as caught:
        stream(mode, client) if streamed else call(mode, client)
    assert not isinstance(caught.value, e.StreamError)
    # Ended by the deadline itself: no read had to time out first (it waited a whole read
    # timeout past the deadline, and the error blamed it).
    assert "ReadTimeout" not in str(caught.value)


# --- streams dropped inside reference cycles -------------------------------------------------


def _drop_in_a_cycle(chunks: Any) -> None:
    """Leave ``chunks`` (read once, never closed) in a reference cycle: an exception stored in
    this frame, whose traceback holds the frame (and so the stream)."""
    try:
        raise RuntimeError("kept")
    except RuntimeError as exc:
        error = exc  # error -> traceback -> this frame -> chunks, error
    assert error is not None


@pytest.fixture
def no_automatic_gc() -> Iterator[None]:
    """The collector runs only when asked: a place held by a stream in a cycle must come back
    without luck."""
    import gc

    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_a_caller_waiting_for_the_place_of_a_stream_dropped_in_a_cycle_gets_it(
    modelslab_server: Any, no_automatic_gc: None
) -> None:
    """With ``max_in_flight=1`` the next call waited for ever (until the collector happened to
    run)."""
    client = ModelsLabClient(
        api_key="cycle-key-1234567", base_url=modelslab_server.base_url, max_in_flight=1
    )
    chunks = client.chat_stream({**REQUEST, "messages": [{"role": "user", "content": "a b c d"}]})
    next(iter(chunks))
    _drop_in_a_cycle(chunks)
    del chunks
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(client.chat(REQUEST)), daemon=True)
    worker.start()
    worker.join(60)  # a hang detector, not a timing bound: it returns in about a second
    assert done and done[0].choices[0].message.content
    assert client.flow_gate is not None and client.flow_gate.stats().in_flight == 0


async def test_an_async_caller_waiting_for_a_stream_dropped_in_a_cycle_gets_the_place(
    modelslab_server: Any, no_automatic_gc: None
) -> None:
    client = AsyncModelsLabClient(
        api_key="cycle-key-1234567", base_url=modelslab_server.base_url, max_in_flight=1
    )
    chunks = await client.chat_stream({**REQUEST, "messages": [{"role": "user", "content": "a b"}]})
    await anext(aiter(chunks))
    _drop_in_a_cycle(chunks)
    del chunks
    answer = await asyncio.wait_for(client.chat(REQUEST), 60)  # a hang detector
    assert answer.choices[0].message.content


DROPPING_THREADS = """
import sys, threading
from modelslab_core import ModelsLabClient
from modelslab_core.testing import LocalModelsLab

def drop_in_a_cycle(chunks):
    try:
        raise RuntimeError("kept")
    except RuntimeError as exc:
        error = exc  # error -> traceback -> this frame -> chunks, error

def worker(base_url, count, failures):
    client = ModelsLabClient(api_key="cycle-key-1234567", base_url=base_url, timeout=30)
    try:
        for _ in range(count):
            chunks = client.chat_stream(
                {
                    "model": "meta-llama-3-8B-instruct",
                    "messages": [{"role": "user", "content": "one two three"}],
                }
            )
            next(iter(chunks))
            drop_in_a_cycle(chunks)
            del chunks  # only the cycle holds it now: the collector frees it where it runs
    except BaseException as exc:
        failures.append(repr(exc))

with LocalModelsLab(api_key="cycle-key-1234567") as server:
    failures = []
    threads = [
        threading.Thread(target=worker, args=(server.base_url, 300, failures)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print("failures", failures)
    sys.exit(1 if failures else 0)
"""


def test_two_threads_dropping_streams_in_cycles_never_deadlock(tmp_path: Any) -> None:
    """A stream's finalizer may run while the same thread holds httpcore's pool lock; closing
    the response there must not take that lock again. Run in a child so that a deadlock fails
    the test."""
    import subprocess
    import sys

    script = tmp_path / "drop.py"
    script.write_text(DROPPING_THREADS)
    try:
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=240
        )
    except subprocess.TimeoutExpired:
        pytest.fail("two threads dropping streams in cycles deadlocked")
    assert done.returncode == 0, done.stdout + done.stderr


# --- async: each write bounded by timeout, a broken body ends the read -----------------------


def _bounded(mode: str, run: Callable[[], Any]) -> Any:
    """``run()`` for sync; for async, ``run()`` (a coroutine) with a hang detector of 60 s that
    raises a plain ``TimeoutError`` (no typed error of ours)."""
    if mode == "sync":
        return run()

    async def bounded() -> Any:
        return await asyncio.wait_for(run(), 60)

    return asyncio.run(bounded())


@MODES
def test_a_large_prompt_to_a_server_that_stops_reading_ends_at_the_write_timeout(
    raw_server: Any, mode: str
) -> None:
    """Async too, although aiohttp has no write timeout and starts its read timeout only once
    the body is sent."""
    hang_up = threading.Event()

    def stop_reading(conn: socket.socket, head: bytes) -> None:
        hang_up.wait(30)  # reads the head, then nothing until the client gave up
        conn.close()

    server = raw_server(stop_reading)
    big = {**REQUEST, "messages": [{"role": "user", "content": "x" * (8 * 1024 * 1024)}]}
    client_cls = ModelsLabClient if mode == "sync" else AsyncModelsLabClient
    client = client_cls(api_key=KEY, base_url=server.url(), timeout=1, max_retries=0)

    async def gives_up() -> None:
        try:
            await client.chat(big)
        finally:
            # A socket closed with unsent bytes stays open until the server reads or hangs up
            # (asyncio closes it gracefully): let the server hang up while the loop runs.
            hang_up.set()
            await asyncio.sleep(0.5)

    with pytest.raises(e.APITimeoutError, match="WriteTimeout"):
        _bounded(mode, (lambda: client.chat(big)) if mode == "sync" else gives_up)
    hang_up.set()


def _breaks_off(bad: bytes, event_stream: bool) -> Callable[[socket.socket, bytes], None]:
    """A chunked answer: one good chunk (an event, or the head of a JSON body), then ``bad``,
    then the server closes."""

    def serve(conn: socket.socket, head: bytes) -> None:
        _read_body(conn, head)
        kind = "text/event-stream" if event_stream else "application/json"
        conn.sendall(
            f"HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\n"
            "transfer-encoding: chunked\r\n\r\n".encode()
        )
        good = EVENT if event_stream else b'{"id": "c1", '
        conn.sendall(b"%x\r\n%s\r\n" % (len(good), good))
        time.sleep(0.3)  # the first event is read before the break
        conn.sendall(bad)
        time.sleep(0.2)
        conn.close()

    return serve


BAD_CHUNKS = {
    "a negative size": b"-5\r\nab",
    "chunk data longer than its size": b"5\r\nabcdefgh\r\n",
    "a size that is no number": b"zz\r\nhello\r\n",
    "a size larger than what follows": b"100\r\nab",
}


@MODES
@pytest.mark.parametrize("bad", list(BAD_CHUNKS))
def test_a_chunked_body_that_turns_invalid_ends_in_a_typed_error(
    raw_server: Any, mode: str, bad: str
) -> None:
    """Async too: aiohttp's C parser drops some broken bodies without ending the read, and the
    call must not wait for ever on them."""
    server = raw_server(_breaks_off(BAD_CHUNKS[bad], event_stream=False))
    client_cls = ModelsLabClient if mode == "sync" else AsyncModelsLabClient
    client = client_cls(api_key=KEY, base_url=server.url(), timeout=20, max_retries=0)
    with pytest.raises(e.APIConnectionError) as caught:
        _bounded(mode, lambda: client.chat(REQUEST))
    assert not isinstance(caught.value, e.APITimeoutError)  # ended by the break, not a timeout


@MODES
@pytest.mark.parametrize("bad", list(BAD_CHUNKS))
def test_a_stream_whose_chunked_body_turns_invalid_ends_incomplete(
    raw_server: Any, mode: str, bad: str
) -> None:
    """The stream ends with ``IncompleteStreamError`` after the chunks it delivered, sync and
    async: never a wait for ever nor a bare ``RuntimeError``."""
    server = raw_server(_breaks_off(BAD_CHUNKS[bad], event_stream=True))
    client_cls = ModelsLabClient if mode == "sync" else AsyncModelsLabClient
    client = client_cls(api_key=KEY, base_url=server.url(), timeout=20, max_retries=0)
    if mode == "sync":
        with client.chat_stream(REQUEST) as chunks:
            iterator = iter(chunks)
            assert next(iterator).choices[0].delta.content == "hi"
            with pytest.raises(e.IncompleteStreamError, match="broke off"):
                next(iterator)
        return

    async def run() -> None:
        async with await client.chat_stream(REQUEST) as chunks:
            iterator = aiter(chunks)
            assert (await anext(iterator)).choices[0].delta.content == "hi"
            with pytest.raises(e.IncompleteStreamError, match="broke off"):
                await asyncio.wait_for(anext(iterator), 60)

    asyncio.run(run())


PURE_PYTHON_PARSER = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import test_rel_hostile_round2 as t
from modelslab_core import AsyncModelsLabClient, errors as e

async def main():
    for bad in t.BAD_CHUNKS.values():
        for event_stream in (False, True):
            server = t.RawServer(t._breaks_off(bad, event_stream))
            client = AsyncModelsLabClient(api_key=t.KEY, base_url=server.url(), max_retries=0)
            try:
                if event_stream:
                    async with await client.chat_stream(t.REQUEST) as chunks:
                        async for _ in chunks:
                            pass
                else:
                    await client.chat(t.REQUEST)
            except e.APIError as error:
                print(type(error).__name__)
            finally:
                server.close()

asyncio.run(main())
"""


def test_with_aiohttp_pure_python_parser_a_broken_chunked_body_is_a_typed_error(
    tmp_path: Any,
) -> None:
    """With ``AIOHTTP_NO_EXTENSIONS=1`` an untyped ``TransferEncodingError`` escaped."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "pure.py"
    script.write_text(PURE_PYTHON_PARSER)
    env = {**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    names = done.stdout.split()
    assert len(names) == 2 * len(BAD_CHUNKS), done.stdout + done.stderr
    assert set(names) <= {"APIConnectionError", "IncompleteStreamError"}
