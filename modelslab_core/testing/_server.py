"""The local ModelsLab-compatible server: aiohttp's web server on a daemon thread.

One event loop in a background thread serves every connection (keep-alive, many requests
in flight at once). Requests are routed, their key is checked, they are logged with keys
hidden, and they are answered by a scripted :class:`Reply`, a random fault, or the default
deterministic demo model of :mod:`._demo_model`. Connection faults take over the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import random
import socket
import ssl
import struct
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self

from aiohttp import web
from aiohttp.http import HttpVersion11

from ._demo_model import (
    DEFAULT_CHAT_MODEL,
    DEFAULT_COMPLETION_MODEL,
    POPULAR_MODELS,
    Answer,
    chat_answer,
    chat_completion_body,
    chat_request_error,
    completion_answer,
    completion_request_error,
    models_body,
    requested_model,
    scripted_answer,
    text_completion_body,
    wants_stream,
    wants_usage,
)
from ._replies import (
    AnswerReply,
    CutStreamReply,
    KeepAliveReply,
    Reply,
    ResetReply,
    ResponseReply,
    SlowReply,
    StreamErrorReply,
    invalid_key_body,
)
from ._routing import ROUTES, RecordedRequest, find_key, redacted
from ._sse import (
    DONE_EVENT,
    LAST_CHUNK,
    chat_stream_events,
    chunked_frame,
    first_chunks,
    text_stream_events,
)

__all__ = ["QUEUE_LIMIT_MESSAGE", "LocalModelsLab"]

#: The 429 message of the queue limit, as ModelsLab words it.
QUEUE_LIMIT_MESSAGE = "Rate limit exceeded. Maximum {limit} queued requests allowed."

logger = logging.getLogger(__name__)
#: aiohttp's own complaints (malformed requests, which it answers 400) are not ours to log.
_aiohttp_logger = logging.getLogger(f"{__name__}.aiohttp")
_aiohttp_logger.addHandler(logging.NullHandler())
_aiohttp_logger.propagate = False

_JSON = "application/json"
_EVENT_STREAM = "text/event-stream"
_SERVER = "modelslab-local"
_READ_LIMIT = 1024 * 1024
_MAX_BODY = 64 * 1024 * 1024
#: SSE events are written in batches of about this size (fewer writes, same bytes).
_BATCH_BYTES = 32 * 1024
_KNOWN_STATUSES = frozenset(HTTPStatus)
_dumps = json.JSONEncoder(ensure_ascii=False).encode


@dataclass(frozen=True, slots=True)
class _Call:
    """One chat or completion request being answered."""

    request: web.BaseRequest
    body: dict[str, Any]
    chat: bool
    uncensored: bool
    stream: bool

    @property
    def model(self) -> str:
        """The requested model id, or the route's default."""
        default = DEFAULT_CHAT_MODEL if self.chat else DEFAULT_COMPLETION_MODEL
        return requested_model(self.body, default)


def _error_body(message: str) -> bytes:
    return _dumps({"status": "error", "message": message}).encode("utf-8")


def _response(
    status: int,
    body: bytes,
    content_type: str = _JSON,
    headers: Sequence[tuple[str, str]] = (),
) -> web.Response:
    """A whole response with a ``Content-Length``."""
    response = web.Response(
        status=status,
        reason=None if status in _KNOWN_STATUSES else "Unknown",
        body=body,
        headers={"Content-Type": content_type, "Server": _SERVER},
    )
    for name, value in headers:
        response.headers.add(name, value)
    return response


def _stream(content_type: str = _EVENT_STREAM) -> web.StreamResponse:
    """A chunked response (an SSE stream, or a JSON body after keep-alive bytes)."""
    headers = {"Content-Type": content_type, "Cache-Control": "no-cache", "Server": _SERVER}
    return web.StreamResponse(status=200, headers=headers)


def _raw_head(content_type: str, length: int | None, keep_alive: bool) -> bytes:
    """The head :meth:`LocalModelsLab._reset` writes itself (``length=None``: chunked), byte
    for byte what the server sends, so ``after_bytes`` cuts at a known place."""
    framing = "Transfer-Encoding: chunked\r\nCache-Control: no-cache" if length is None else ""
    lines = [
        "HTTP/1.1 200 OK",
        f"Content-Type: {content_type}",
        framing or f"Content-Length: {length}",
        f"Connection: {'keep-alive' if keep_alive else 'close'}",
        f"Server: {_SERVER}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _WebServer(web.Server):
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
        self,
        message: Any,
        payload: Any,
        protocol: web.RequestHandler,
        writer: Any,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        # Every answer is HTTP/1.1 (an HTTP/1.0 request's connection still closes after it).
        return web.BaseRequest(
            message._replace(version=HttpVersion11),
            payload,
            protocol,
            writer,
            task,
            asyncio.get_running_loop(),
            client_max_size=_MAX_BODY,
        )

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        owner = self._owner
        owner._transports[handler] = transport
        owner._connections_opened += 1
        owner._max_open_connections = max(owner._max_open_connections, len(owner._transports))

    def connection_lost(
        self, handler: web.RequestHandler, exc: BaseException | None = None
    ) -> None:
        super().connection_lost(handler, exc)
        self._owner._transports.pop(handler, None)


class LocalModelsLab:
    """A real HTTP server on loopback that speaks ModelsLab's LLM API (aiohttp).

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with LocalModelsLab(api_key="test-key") as server:
            server.enqueue(Reply.text("hello"))
            ...  # point a client at server.base_url

    ``api_key=None`` accepts any non-empty key. ``stream_delay`` (seconds) paces SSE events
    one by one instead of batching them. The request log keeps the last
    ``max_recorded_requests`` requests. ``ssl_context`` (a server-side ``ssl.SSLContext``)
    serves HTTPS instead of plain HTTP.

    ``queue_limit=N`` plays ModelsLab's account queue: a key may have at most N chat or
    completion requests being answered at once; the next one gets HTTP 429 with
    ``{"status": "error", "message": rate_limit_message, "retry_after": ...}`` and a
    ``Retry-After`` header. ``latency`` (seconds) is how long each answer takes before its first
    byte. ``retry_after`` is the hint sent with a 429; by default the time until the key's oldest
    request is due (its ``latency`` is up). ``rate_limit_message`` may hold ``{limit}``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] | None = None,
        stream_delay: float = 0.0,
        max_recorded_requests: int = 10_000,
        ssl_context: ssl.SSLContext | None = None,
        queue_limit: int | None = None,
        latency: float = 0.0,
        retry_after: float | None = None,
        rate_limit_message: str = QUEUE_LIMIT_MESSAGE,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`."""
        self.api_key = api_key
        self.stream_delay = float(stream_delay)
        if queue_limit is not None and queue_limit < 1:
            raise ValueError(f"queue_limit must be >= 1 or None, got {queue_limit}")
        if latency < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("latency and retry_after must be >= 0")
        #: At most this many chat/completion requests per key at once (None: no limit).
        self.queue_limit = queue_limit
        #: Seconds each chat/completion answer takes before its first byte.
        self.latency = float(latency)
        #: The hint sent with a 429 of the queue limit (None: when the oldest request is due).
        self.retry_after = retry_after
        #: The message of that 429; ``{limit}`` becomes the queue limit.
        self.rate_limit_message = rate_limit_message
        self._queue_settings = (queue_limit, self.latency, retry_after, rate_limit_message)
        self._queues: dict[str, list[float]] = {}
        self._queued = 0
        self._max_queued = 0
        self._queue_rejections = 0
        self._host = host
        self._ssl = ssl_context
        self._requested_port = port
        self._port = 0
        self._models = tuple(models) if models is not None else POPULAR_MODELS
        self._created = int(time.time())
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._fault_rate = 0.0
        self._fault_replies: tuple[Reply, ...] = ()
        self._fault_once = False
        self._faulted: set[bytes] = set()
        self._faults_injected = 0
        self._rng = random.Random()
        self._log: deque[RecordedRequest] = deque(maxlen=max(int(max_recorded_requests), 0))
        self._in_flight = 0
        self._max_in_flight = 0
        self._request_count = 0
        self._connections_opened = 0
        self._max_open_connections = 0
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._transports: dict[web.RequestHandler, asyncio.Transport] = {}

    # ------------------------------------------------------------------ URLs

    @property
    def host(self) -> str:
        """The interface the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        if not self._port:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The root URL, e.g. ``http://127.0.0.1:PORT``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The chat base URL (chat at ``{base_url}/chat/completions``)."""
        return f"{self.url}/api/v7/llm"

    @property
    def completions_base_url(self) -> str:
        """The text-completions base URL (``{..}/completions``)."""
        return f"{self.url}/api/v6"

    @property
    def uncensored_base_url(self) -> str:
        """The uncensored-chat base URL (``/chat/completions`` and ``/completions``)."""
        return f"{self.url}/api/uncensored-chat/v1"

    # ------------------------------------------------------------------ script and log

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies (FIFO) for the next chat and completion requests."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected a Reply, got {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending_replies(self) -> int:
        """How many queued replies are still waiting for a request."""
        with self._lock:
            return len(self._queue)

    def set_fault_rate(
        self,
        rate: float,
        replies: Sequence[Reply] | None = None,
        seed: int | None = None,
        *,
        once_per_request: bool = False,
    ) -> None:
        """Answer a random fraction ``rate`` of chat/completion requests with one of ``replies``.

        ``replies`` defaults to a 429 (``retry_after=0``) and a 500; ``rate=0`` turns it off.
        Queued replies go first. With ``once_per_request=True`` a request meets at most one
        fault: a request whose path and body were already answered with a fault (a client's
        retry) is answered normally, so "a fraction ``rate`` of the calls meet a fault first".
        :attr:`faults_injected` counts the faults played.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        chosen = (
            tuple(replies)
            if replies is not None
            else (Reply.rate_limit(retry_after=0), Reply.server_error(500))
        )
        if rate > 0 and not chosen:
            raise ValueError("a fault rate needs at least one reply")
        with self._lock:
            self._fault_rate = float(rate)
            self._fault_replies = chosen
            self._fault_once = bool(once_per_request)
            self._faulted.clear()
            self._rng = random.Random(seed)

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received so far (oldest first), keys hidden."""
        with self._lock:
            return list(self._log)

    @property
    def last_request(self) -> RecordedRequest | None:
        """The most recent request, or ``None``."""
        with self._lock:
            return self._log[-1] if self._log else None

    @property
    def in_flight(self) -> int:
        """How many requests are being handled right now."""
        return self._in_flight

    @property
    def max_in_flight_seen(self) -> int:
        """The most requests handled at once since the start or :meth:`reset_stats`."""
        return self._max_in_flight

    @property
    def request_count(self) -> int:
        """How many requests arrived since the start or :meth:`reset_stats`."""
        return self._request_count

    @property
    def connections_opened(self) -> int:
        """How many TCP connections were accepted since the start or :meth:`reset_stats`."""
        return self._connections_opened

    @property
    def open_connections(self) -> int:
        """How many client connections are open right now (idle keep-alive ones included).

        The server notices a connection closed by its client when it reads the end of it, a
        moment after the client closed it.
        """
        return len(self._transports)

    @property
    def max_open_connections_seen(self) -> int:
        """The most connections open at once since the start or :meth:`reset_stats`."""
        return self._max_open_connections

    @property
    def queued(self) -> int:
        """How many chat/completion requests are being answered now (under ``queue_limit``,
        the requests the server accepted; the ones it turned away with a 429 are not counted)."""
        return self._queued

    @property
    def max_queued_seen(self) -> int:
        """The most accepted chat/completion requests at once since the start or
        :meth:`reset_stats` (what ``queue_limit`` bounds, per key)."""
        return self._max_queued

    @property
    def rate_limited_count(self) -> int:
        """How many requests ``queue_limit`` turned away with a 429 since the start or
        :meth:`reset_stats`."""
        return self._queue_rejections

    @property
    def faults_injected(self) -> int:
        """How many requests :meth:`set_fault_rate` answered with a fault since the start or
        :meth:`reset_stats`."""
        return self._faults_injected

    def reset_stats(self) -> None:
        """Reset ``max_in_flight_seen`` and ``max_open_connections_seen`` (to the current
        values) and the counters."""
        with self._lock:
            self._max_in_flight = self._in_flight
            self._max_queued = self._queued
            self._queue_rejections = 0
            self._max_open_connections = len(self._transports)
            self._request_count = 0
            self._connections_opened = 0
            self._faults_injected = 0

    def reset(self) -> None:
        """Clear the reply queue, the fault rate, the request log and the stats; restore the
        queue settings (``queue_limit``, ``latency``, ``retry_after``, ``rate_limit_message``)
        given to the constructor."""
        (self.queue_limit, self.latency, self.retry_after, self.rate_limit_message) = (
            self._queue_settings
        )
        with self._lock:
            self._queue.clear()
            self._fault_rate = 0.0
            self._fault_replies = ()
            self._fault_once = False
            self._faulted.clear()
            self._log.clear()
        self.reset_stats()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Start listening in a background thread; return ``self``."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._open())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name="modelslab-local-server", daemon=True)
        self._loop = loop
        self._thread = thread
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            self._loop = None
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            future.result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = None
            self._thread = None
            self._port = 0

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def __repr__(self) -> str:
        """Show where the server listens."""
        where = self.url if self._port else "not started"
        return f"LocalModelsLab({where})"

    async def _open(self) -> None:
        runner = web.ServerRunner(_WebServer(self), shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(
            runner, self._host, self._requested_port, ssl_context=self._ssl, backlog=2048
        )
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def _shutdown(self) -> None:
        runner, self._runner = self._runner, None
        for transport in list(self._transports.values()):
            transport.abort()
        if runner is not None:
            await runner.cleanup()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ requests

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self._in_flight += 1
        self._request_count += 1
        self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            return await self._dispatch(request)
        except web.HTTPException:  # aiohttp's own answer: 413 for a body over 64 MiB
            raise
        except (ConnectionError, OSError):  # the client left, or a fault dropped it
            return web.Response()
        except Exception as exc:
            logger.exception("local ModelsLab server failed on %s %s", request.method, request.path)
            response = _response(500, _error_body(f"Local server error: {exc!r}"))
            response.force_close()
            return response
        finally:
            self._in_flight -= 1

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                body = None
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        target, _, query = request.raw_path.partition("?")
        key, placement = find_key(headers, body)
        with self._lock:
            self._log.append(redacted(request.method, target, headers, body, placement, query))
        route = ROUTES.get(target.rstrip("/") or "/")
        if route is None:
            return _response(404, _error_body("Route not found"))
        if request.method != route.method:
            message = f"The {request.method} method is not supported for this route."
            return _response(405, _error_body(message), headers=(("Allow", route.method),))
        if key is None or (self.api_key is not None and key != self.api_key):
            return _response(200, _dumps(invalid_key_body()).encode("utf-8"))
        if route.kind == "models":
            return _response(200, _dumps(models_body(self._models, self._created)).encode())
        if not isinstance(body, dict):
            return _response(400, _error_body("The request body must be a JSON object."))
        chat = route.kind == "chat"
        problem = chat_request_error(body) if chat else completion_request_error(body)
        if problem is not None:
            field = "messages" if chat else "prompt"
            payload = {"status": "error", "message": problem, "errors": {field: [problem]}}
            return _response(422, _dumps(payload).encode("utf-8"))
        call = _Call(request, body, chat, route.uncensored, wants_stream(body))
        if self.queue_limit is not None or self.latency > 0:
            return await self._under_queue_limit(key, call, target.encode() + b"\n" + raw)
        return await self._play(self._next_reply(target.encode() + b"\n" + raw), call)

    async def _under_queue_limit(
        self, key: str, call: _Call, identity: bytes
    ) -> web.StreamResponse:
        """Answer under the account queue: a 429 when the key has ``queue_limit`` requests
        being answered, else the answer after ``latency`` seconds."""
        limit = self.queue_limit
        started = self._queues.setdefault(key, [])
        now = time.monotonic()
        if limit is not None and len(started) >= limit:
            self._queue_rejections += 1
            hint = self.retry_after
            if hint is None:
                hint = math.ceil(max(min(started) + self.latency - now, 0.0) * 100) / 100
            message = self.rate_limit_message.replace("{limit}", str(limit))
            body = _dumps({"status": "error", "message": message, "retry_after": hint})
            return _response(429, body.encode("utf-8"), headers=(("Retry-After", f"{hint:g}"),))
        started.append(now)
        self._queued += 1
        self._max_queued = max(self._max_queued, self._queued)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            return await self._play(self._next_reply(identity), call)
        finally:
            started.remove(now)
            self._queued -= 1

    def _next_reply(self, identity: bytes) -> Reply | None:
        """The queued reply, a random fault, or ``None``; ``identity`` is the request's path
        and body (a retry repeats them byte for byte)."""
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._fault_rate <= 0:
                return None
            identity = identity if self._fault_once else b""
            if identity in self._faulted or self._rng.random() >= self._fault_rate:
                return None
            if self._fault_once:
                self._faulted.add(identity)
            self._faults_injected += 1
            return self._rng.choice(self._fault_replies)

    # ------------------------------------------------------------------ playing replies

    async def _play(self, reply: Reply | None, call: _Call) -> web.StreamResponse:
        match reply:
            case None | AnswerReply():
                answer = self._answer(reply, call)
                if call.stream:
                    return await self._send_events(call, self._events(answer, call))
                return _response(200, self._json_answer(answer, call))
            case ResponseReply(status, body, content_type, headers):
                return _response(status, body, content_type, headers)
            case SlowReply(seconds, then):
                await asyncio.sleep(seconds)
                return await self._play(then, call)
            case CutStreamReply(after_chunks):
                return await self._cut(after_chunks, call)
            case KeepAliveReply():
                return await self._keep_alive(reply, call)
            case StreamErrorReply(event, after_chunks):
                events = first_chunks(self._events(self._answer(None, call), call), after_chunks)
                events += [f"data: {event.decode('utf-8')}\n\n", DONE_EVENT]
                return await self._send_events(call, events)
            case ResetReply(after_bytes):
                return await self._reset(after_bytes, call)
        raise TypeError(f"not a playable Reply: {reply!r}")

    def _answer(self, reply: AnswerReply | None, call: _Call) -> Answer:
        if reply is None:
            return chat_answer(call.body) if call.chat else completion_answer(call.body)
        return scripted_answer(
            call.body,
            chat=call.chat,
            content=reply.content,
            reasoning=reply.reasoning,
            finish_reason=reply.finish_reason,
            tool_calls=reply.calls,
            usage=dict(reply.usage) if reply.usage is not None else None,
        )

    def _next_id(self, call: _Call) -> str:
        return f"{'gen' if call.chat else 'cmpl'}-{next(self._ids)}"

    def _json_answer(self, answer: Answer, call: _Call) -> bytes:
        completion_id, created = self._next_id(call), int(time.time())
        if call.chat:
            body = chat_completion_body(
                answer,
                completion_id=completion_id,
                created=created,
                model=call.model,
                uncensored=call.uncensored,
            )
        else:
            body = text_completion_body(
                answer, completion_id=completion_id, created=created, model=call.model
            )
        return _dumps(body).encode("utf-8")

    def _events(self, answer: Answer, call: _Call) -> list[str]:
        render = chat_stream_events if call.chat else text_stream_events
        return render(
            answer,
            completion_id=self._next_id(call),
            created=int(time.time()),
            model=call.model,
            include_usage=wants_usage(call.body),
        )

    async def _send_events(self, call: _Call, events: list[str]) -> web.StreamResponse:
        """Stream SSE events in batches, or one every ``stream_delay`` seconds."""
        response = _stream()
        await response.prepare(call.request)
        if self.stream_delay > 0:
            for index, event in enumerate(events):
                if index:  # paced between events: the body ends with the last one
                    await asyncio.sleep(self.stream_delay)
                if index < len(events) - 1:
                    await response.write(event.encode("utf-8"))
            await response.write_eof(events[-1].encode("utf-8") if events else b"")
            return response
        batch: list[str] = []
        size = 0
        for event in events:
            batch.append(event)
            size += len(event)
            if size >= _BATCH_BYTES:
                await response.write("".join(batch).encode("utf-8"))
                batch.clear()
                size = 0
        await response.write_eof("".join(batch).encode("utf-8"))
        return response

    async def _keep_alive(self, reply: KeepAliveReply, call: _Call) -> web.StreamResponse:
        response = _stream(_EVENT_STREAM if call.stream else _JSON)
        await response.prepare(call.request)
        beat = b": keep-alive\n\n" if call.stream else b" "
        loop = asyncio.get_running_loop()
        end = loop.time() + reply.seconds
        while loop.time() < end:
            await response.write(beat)
            await asyncio.sleep(min(reply.interval, max(end - loop.time(), 0.0)))
        answer = self._answer(reply.then, call)
        if call.stream:
            payload = "".join(self._events(answer, call)).encode("utf-8")
        else:
            payload = self._json_answer(answer, call)
        await response.write_eof(payload)
        return response

    async def _cut(self, chunks: int, call: _Call) -> web.StreamResponse:
        answer = self._answer(None, call)
        if call.stream:
            return await self._send_events(call, first_chunks(self._events(answer, call), chunks))
        payload = self._json_answer(answer, call)
        response = web.StreamResponse(headers={"Content-Type": _JSON, "Server": _SERVER})
        response.content_length = len(payload)
        response.force_close()
        await response.prepare(call.request)
        await response.write(payload[: len(payload) // 2])
        transport = call.request.transport
        if transport is not None:
            transport.close()
        return response

    async def _reset(self, after_bytes: int, call: _Call) -> web.StreamResponse:
        """Take over the transport: write the first ``after_bytes`` of the answer, then abort
        the connection with an RST."""
        answer = self._answer(None, call)
        keep_alive = call.request.keep_alive
        if call.stream:
            events = "".join(self._events(answer, call)).encode("utf-8")
            data = _raw_head(_EVENT_STREAM, None, keep_alive) + chunked_frame(events) + LAST_CHUNK
        else:
            payload = self._json_answer(answer, call)
            data = _raw_head(_JSON, len(payload), keep_alive) + payload
        transport = call.request.transport
        if transport is None:
            return web.Response()
        if after_bytes:
            transport.write(data[:after_bytes])
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
