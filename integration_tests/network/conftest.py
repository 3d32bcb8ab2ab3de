"""Fixtures of the real-world network suite: one way to call every surface (the adapter's four
calls, LangChain's four, LlamaIndex's four), trustme certificates, small raw-socket servers that
misbehave the way real networks do, a forward proxy, and a subprocess runner.

Test modules here cannot import each other (pytest runs with ``--import-mode=importlib``), so the
shared helpers are fixtures. Everything listens on 127.0.0.1 only, every wait is bounded, and
every server and client is closed (the suite runs under ``-W error::ResourceWarning``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient, _pools
from modelslab_core.testing import LocalModelsLab

#: A recognisable key: any leak of it is easy to spot.
KEY = "msl-NET-5f2a9c-SECRET-KEY-7781"
MODEL = "meta-llama-3-8B-instruct"

#: Every way a user calls the API: framework, then method.
SURFACES = [
    "core:chat",
    "core:chat_stream",
    "core:achat",
    "core:achat_stream",
    "lc:invoke",
    "lc:stream",
    "lc:ainvoke",
    "lc:astream",
    "li:chat",
    "li:stream_chat",
    "li:achat",
    "li:astream_chat",
]
ASYNC = {s for s in SURFACES if s.split(":")[1].startswith("a")}

#: Environment variables that would change where a request goes or which CAs are trusted.
NETWORK_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "MODELSLAB_API_KEY",
    "MODELSLAB_BASE_URL",
    "MODELSLAB_COMPLETIONS_BASE_URL",
)


@pytest.fixture(autouse=True)
def _clean_network_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy, CA or ModelsLab variable of the machine leaks into a test, and the process's
    sync pool is rebuilt around each test (it reads the environment when it is created)."""
    for name in NETWORK_ENV:
        monkeypatch.delenv(name, raising=False)
    _pools.close_shared_pools()
    yield
    _pools.close_shared_pools()


# --------------------------------------------------------------------------- calling surfaces


def _chat_request(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


def _delta_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


class Ask:
    """``ask(surface, base_url, texts)``: one model (or client) of that surface, one call per
    text in a row (async ones on one event loop, run with ``asyncio.run``), the answers' texts.

    ``pause`` seconds pass between two calls (``time.sleep`` or ``asyncio.sleep``). With
    ``catch=True`` a call that raises gives its exception in place of its answer.
    ``http_client`` is handed to the model as it is (and never closed here);
    ``async_http_client`` is a factory called inside the event loop of the calls, and the client
    it makes is closed when they are done. ``core`` options (``key_placement``...) go to the
    adapter clients only.
    """

    def __call__(
        self,
        surface: str,
        base_url: str,
        texts: list[str] | str,
        *,
        api_key: str = KEY,
        timeout: float = 5,
        max_retries: int = 0,
        http_client: Any = None,
        async_http_client: Callable[[], Any] | None = None,
        pause: float = 0,
        catch: bool = False,
        **core: Any,
    ) -> list[Any]:
        if isinstance(texts, str):
            texts = [texts]
        options = {"api_key": api_key, "base_url": base_url, "timeout": timeout}
        options["max_retries"] = max_retries
        if surface in ASYNC:
            return asyncio.run(
                self._async(surface, texts, options, async_http_client, pause, catch, core)
            )
        framework, method = surface.split(":")
        if framework == "core":
            client_or_model = ModelsLabClient(**options, http_client=http_client, **core)
        else:
            client_or_model = self._model(framework, options, http_client=http_client)
        out: list[Any] = []
        for index, text in enumerate(texts):
            if index and pause:
                time.sleep(pause)
            try:
                out.append(self._sync_call(framework, method, client_or_model, text))
            except Exception as exc:
                if not catch:
                    raise
                out.append(exc)
        return out

    @staticmethod
    def _sync_call(framework: str, method: str, target: Any, text: str) -> str:
        if method == "chat" and framework == "core":
            return str(target.chat(_chat_request(text)).choices[0].message.content)
        if method == "chat_stream":
            with target.chat_stream(_chat_request(text)) as stream:
                return _delta_text(list(stream))
        if method == "invoke":
            return str(target.invoke(text).content)
        if method == "stream":
            return "".join(str(c.content) for c in target.stream(text))
        if method == "chat":
            return str(target.chat(_li_messages(text)).message.content)
        return "".join(r.delta or "" for r in target.stream_chat(_li_messages(text)))

    @staticmethod
    async def _async_call(framework: str, method: str, target: Any, text: str) -> str:
        if method == "achat" and framework == "core":
            answer = await target.chat(_chat_request(text))
            return str(answer.choices[0].message.content)
        if method == "achat_stream":
            async with await target.chat_stream(_chat_request(text)) as stream:
                return _delta_text([c async for c in stream])
        if method == "ainvoke":
            return str((await target.ainvoke(text)).content)
        if method == "astream":
            return "".join([str(c.content) async for c in target.astream(text)])
        if method == "achat":
            return str((await target.achat(_li_messages(text))).message.content)
        gen = await target.astream_chat(_li_messages(text))
        return "".join([r.delta or "" async for r in gen])

    @staticmethod
    def _model(framework: str, options: dict[str, Any], **clients: Any) -> Any:
        if framework == "lc":
            from langchain_modelslab import ChatModelsLab

            return ChatModelsLab(
                model=MODEL,
                **options,
                http_client=clients.get("http_client"),
                http_async_client=clients.get("async_http_client"),
            )
        from llama_index_modelslab import ModelsLabLLM

        return ModelsLabLLM(model=MODEL, **options, **clients)

    async def _async(
        self,
        surface: str,
        texts: list[str],
        options: dict[str, Any],
        factory: Callable[[], Any] | None,
        pause: float,
        catch: bool,
        core: dict[str, Any],
    ) -> list[Any]:
        framework, method = surface.split(":")
        http = factory() if factory is not None else None
        out: list[Any] = []
        try:
            if framework == "core":
                target = AsyncModelsLabClient(**options, http_client=http, **core)
            else:
                target = self._model(framework, options, async_http_client=http)
            for index, text in enumerate(texts):
                if index and pause:
                    await asyncio.sleep(pause)
                try:
                    out.append(await self._async_call(framework, method, target, text))
                except Exception as exc:
                    if not catch:
                        raise
                    out.append(exc)
            return out
        finally:
            if http is not None:
                await http.aclose()


def _li_messages(text: str) -> list[Any]:
    from llama_index.core.llms import ChatMessage

    return [ChatMessage(role="user", content=text)]


@pytest.fixture
def ask() -> Ask:
    return Ask()


@pytest.fixture(params=SURFACES)
def surface(request: pytest.FixtureRequest) -> str:
    """Each of the twelve ways to call the API."""
    return str(request.param)


@pytest.fixture
def server() -> Iterator[LocalModelsLab]:
    """A plain-HTTP local server of this test alone, accepting only :data:`KEY`."""
    with LocalModelsLab(api_key=KEY) as local:
        yield local


# --------------------------------------------------------------------------- answers by hand


def completion_json(text: str) -> bytes:
    """A chat completion answering ``text``, as ModelsLab sends it."""
    return json.dumps(
        {
            "id": "gen-raw",
            "object": "chat.completion",
            "created": 0,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    ).encode()


def completion_sse(text: str) -> bytes:
    """The same answer as a server-sent event stream, ``[DONE]`` included."""
    chunk = {"id": "gen-raw", "object": "chat.completion.chunk", "created": 0, "model": MODEL}
    first = {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text}}]}
    last = {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(first)}\n\ndata: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()


@pytest.fixture
def answers() -> Any:
    """``answers.json(text)`` and ``answers.sse(text)``: bodies of a hand-made answer."""

    class Answers:
        json = staticmethod(completion_json)
        sse = staticmethod(completion_sse)

    return Answers()


# --------------------------------------------------------------------------- TLS


class Certificates:
    """A trustme CA, a server certificate for 127.0.0.1 and localhost, and the CA as a file
    (``SSL_CERT_FILE``) and as a c_rehash-style directory (``SSL_CERT_DIR``)."""

    def __init__(self, folder: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self.server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        self.ca_file = folder / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.ca_dir = folder / "certs"
        self.ca_dir.mkdir()
        subject_hash = subprocess.run(
            ["openssl", "x509", "-hash", "-noout", "-in", str(self.ca_file)],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        self.ca.cert_pem.write_to_path(str(self.ca_dir / f"{subject_hash}.0"))

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_cert.configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(certs: Certificates) -> Iterator[LocalModelsLab]:
    """The local server over HTTPS with the trustme certificate, accepting only :data:`KEY`."""
    with LocalModelsLab(api_key=KEY, ssl_context=certs.server_context()) as local:
        yield local


# --------------------------------------------------------------------------- subprocesses


class Python:
    """Runs ``python -c code`` with a chosen environment (read fresh by the new process) and
    returns what it printed last as JSON."""

    def __call__(self, code: str, env: dict[str, str], *args: str, timeout: float = 60) -> Any:
        full = {k: v for k, v in os.environ.items() if k not in NETWORK_ENV}
        full.update(env)
        done = subprocess.run(
            [sys.executable, "-c", code, *args],
            env=full,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=str(Path(__file__).resolve().parents[2]),
        )
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        lines = done.stdout.strip().splitlines()
        assert lines, f"nothing printed\n{done.stderr}"
        return json.loads(lines[-1])


@pytest.fixture
def python() -> Python:
    return Python()


#: Loads this conftest by path in a subprocess, so a script there can use :class:`Ask`.
LOAD_CONFTEST = f"""
import importlib.util
_spec = importlib.util.spec_from_file_location("network_conftest", {str(Path(__file__))!r})
net = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(net)
"""


@pytest.fixture
def load_conftest() -> str:
    """Python source that imports this file as ``net`` (for ``python -c`` scripts)."""
    return LOAD_CONFTEST


# --------------------------------------------------------------------------- raw servers


class Closed(Exception):
    """The peer closed the connection, or the server is stopping."""


class RawConnection:
    """One accepted connection with buffered HTTP/1.1 request reading (Content-Length bodies,
    which is what httpx and aiohttp send for our JSON bodies)."""

    def __init__(self, sock: socket.socket, server: RawServer) -> None:
        self.sock = sock
        self.server = server
        self.buffer = b""

    def _fill(self, deadline: float | None) -> None:
        while True:
            if self.server.stopping.is_set():
                raise Closed
            wait = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            if deadline is not None and wait <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self.sock], [], [], wait)
            if ready:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    raise Closed from None
                if not data:
                    raise Closed
                self.buffer += data
                return

    def read_request(self, idle: float | None = None) -> tuple[str, dict[str, str], bytes]:
        """The next request: (request line, headers in lower case, body). ``TimeoutError`` when
        no byte of it arrived within ``idle`` seconds."""
        deadline = None if idle is None else time.monotonic() + idle
        while b"\r\n\r\n" not in self.buffer:
            self._fill(deadline if not self.buffer else None)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill(None)
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        self.server.record(lines[0], headers, body, head + b"\r\n\r\n" + body)
        return lines[0], headers, body

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self, body: dict[str, Any] | bytes, *, extra: str = "") -> None:
        """Answer a request body with an echo of its last message (JSON or SSE as asked)."""
        request = json.loads(body) if isinstance(body, bytes) else body
        text = request["messages"][-1]["content"]
        if request.get("stream"):
            payload, kind = completion_sse(text), "text/event-stream"
        else:
            payload, kind = completion_json(text), "application/json"
        self.send(http_response(200, payload, kind, extra))

    def reset(self) -> None:
        """Abort the connection with a TCP RST."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def hold(self) -> None:
        """Keep the connection open and say nothing (swallow what arrives) until the server
        stops: a peer that silently forgot it, as a NAT does."""
        with contextlib.suppress(Closed):
            while True:
                self._fill(None)
                self.buffer = b""


def http_response(status: int, body: bytes, content_type: str, extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode("latin-1") + body


class RawServer:
    """A threaded TCP server on 127.0.0.1: ``handler(connection)`` runs for each accepted
    connection on its own thread. Records every request (:attr:`requests`, raw bytes in
    :attr:`raw`) and counts connections. ``stop()`` ends every thread within seconds."""

    def __init__(self, handler: Callable[[RawConnection], None]) -> None:
        self.handler = handler
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.raw: list[bytes] = []
        self.connections_opened = 0
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def record(self, line: str, headers: dict[str, str], body: bytes, raw: bytes) -> None:
        with self.lock:
            self.requests.append((line, headers, body))
            self.raw.append(raw)

    def _accept(self) -> None:
        while not self.stopping.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready or self.stopping.is_set():
                continue
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self.lock:
                self.connections_opened += 1
                self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(Closed, OSError, TimeoutError):
            self.handler(RawConnection(sock, self))
        with contextlib.suppress(OSError):
            sock.close()

    def stop(self) -> None:
        self.stopping.set()
        self._acceptor.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)
        with self.lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[RawConnection], None]], RawServer]]:
    """``raw_server(handler)`` starts a :class:`RawServer`; all are stopped after the test."""
    started: list[RawServer] = []

    def start(handler: Callable[[RawConnection], None]) -> RawServer:
        started.append(RawServer(handler))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def echo_handler(connection: RawConnection) -> None:
    """A well-behaved keep-alive server: echoes every request."""
    while True:
        _, _, body = connection.read_request()
        connection.answer(body)


@pytest.fixture
def echo() -> Callable[[RawConnection], None]:
    return echo_handler


# --------------------------------------------------------------------------- forward proxy


def _pipe(a: socket.socket, b: socket.socket, stopping: threading.Event) -> None:
    """Copy bytes both ways until either side closes (or the proxy stops)."""
    peers = {a: b, b: a}
    while not stopping.is_set():
        ready, _, _ = select.select(list(peers), [], [], 0.05)
        for sock in ready:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            peers[sock].sendall(data)


class ForwardProxy:
    """An HTTP forward proxy on 127.0.0.1: ``CONNECT host:port`` tunnels (for https) and
    absolute-form requests forwarded one per connection (for http). Only loopback targets.

    :attr:`seen` lists every request line it handled: ``CONNECT 127.0.0.1:PORT`` or
    ``POST http://127.0.0.1:PORT/path``.
    """

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.raw = RawServer(self._handle)
        self.url = self.raw.url

    def _handle(self, connection: RawConnection) -> None:
        line, headers, body = connection.read_request()
        method, target, _ = line.split(" ")
        with self.raw.lock:
            self.seen.append(f"{method} {target}")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream_address = (host, int(port))
            forward = b""
        else:
            from urllib.parse import urlsplit

            parts = urlsplit(target)
            upstream_address = (parts.hostname or "", parts.port or 80)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            kept = [
                f"{name}: {value}"
                for name, value in headers.items()
                if name not in ("connection", "proxy-connection", "keep-alive")
            ]
            head = "\r\n".join([f"{method} {path} HTTP/1.1", *kept, "Connection: close"])
            forward = head.encode("latin-1") + b"\r\n\r\n" + body
        if upstream_address[0] not in ("127.0.0.1", "localhost"):
            connection.send(http_response(403, b"loopback only", "text/plain"))
            return
        upstream = socket.create_connection(upstream_address, timeout=5)
        try:
            if method == "CONNECT":
                connection.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                upstream.sendall(forward)
            if connection.buffer:
                upstream.sendall(connection.buffer)
            _pipe(connection.sock, upstream, self.raw.stopping)
        finally:
            upstream.close()

    def stop(self) -> None:
        self.raw.stop()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    forward = ForwardProxy()
    yield forward
    forward.stop()
