"""The local ModelsLab-compatible server: aiohttp's web server on a daemon thread.

One event loop in a background thread serves every connection (keep-alive, many requests in
flight at once). Requests are routed, their key is checked, they are logged with keys hidden,
and they are answered by a scripted :class:`Reply`, a random fault, or the demo model of
:mod:`._demo_model`. Connection faults take over the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Self

from aiohttp import web

from ._demo_model import chat_choice, completion_choices
from ._replies import (
    INVALID_KEY_BODY,
    QUEUE_LIMIT_MESSAGE,
    AnswerReply,
    CutStreamReply,
    KeepAliveReply,
    Reply,
    ResetReply,
    ResponseReply,
    SlowReply,
    StreamErrorReply,
)
from ._routing import ROUTES, RecordedRequest, find_key, redacted
from ._webserver import EVENT_STREAM, JSON, SERVER, WebServer, reset_after, send_half
from ._wire import (
    DONE_EVENT,
    KEEP_ALIVE,
    POPULAR_MODELS,
    Choice,
    answer_body,
    first_chunks,
    prompts,
    request_error,
    stream_events,
    unknown_model,
    wants_stream,
    wants_usage,
)

__all__ = ["QUEUE_LIMIT_MESSAGE", "LocalModelsLab"]

#: The ``retry_after`` of a queue-limit 429, in seconds, as ModelsLab answers it.
DEFAULT_RETRY_AFTER = 30.0

logger = logging.getLogger(__name__)

#: SSE events are written in batches of about this many characters (fewer writes, same bytes).
_BATCH = 32 * 1024
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
    usage: bool  # a stream ends with a usage chunk


def _response(
    status: int, body: Any, content_type: str = JSON, headers: Sequence[tuple[str, str]] = ()
) -> web.Response:
    """A whole response with a ``Content-Length``; ``body`` is bytes or a JSON value."""
    response = web.Response(
        status=status,
        reason=None if status in _KNOWN_STATUSES else "Unknown",
        body=body if isinstance(body, bytes) else _dumps(body).encode("utf-8"),
        headers={"Content-Type": content_type, "Server": SERVER},
    )
    for name, value in headers:
        response.headers.add(name, value)
    return response


def _error(
    status: int, message: str, headers: Sequence[tuple[str, str]] = (), **fields: Any
) -> web.Response:
    """ModelsLab's error body ``{"status": "error", "message", **fields}``."""
    return _response(status, {"status": "error", "message": message, **fields}, headers=headers)


class LocalModelsLab:
    """A real HTTP server on loopback that speaks ModelsLab's LLM API (aiohttp).

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with LocalModelsLab(api_key="test-key") as server:
            server.enqueue(Reply.text("hello"))
            ...  # point a client at server.base_url

    ``api_key=None`` accepts any non-empty key. ``models`` are the model ids the server lists
    and accepts (default: ModelsLab's model list, any case); a chat or completion request naming
    another id gets ModelsLab's 404, so a misspelled id fails offline too (:meth:`allow_models`
    adds ids for one test). ``stream_delay`` (seconds) paces SSE events
    one by one instead of batching them. The request log keeps the last
    ``max_recorded_requests`` requests. ``ssl_context`` (a server-side ``ssl.SSLContext``)
    serves HTTPS.

    ``queue_limit=N`` plays ModelsLab's account queue: a key may have at most N chat or
    completion requests being answered at once; the next gets HTTP 429 with
    ``rate_limit_message`` (``{limit}`` becomes N), a ``retry_after`` field and a ``Retry-After``
    header. ``latency`` is how long each answer takes before its first byte; ``retry_after``
    is the hint, 30 s by default as ModelsLab's own (https://docs.modelslab.com); None makes it
    the time until the key's oldest request is due.

    The counters (since the start or :meth:`reset_stats`) are attributes: ``request_count``,
    ``connections_opened``, ``in_flight`` and ``max_in_flight_seen``, ``queued`` and
    ``max_queued_seen`` (requests the queue accepted), ``rate_limited_count`` (its 429s),
    ``max_open_connections_seen`` and ``faults_injected`` (see :meth:`set_fault_rate`).
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
        retry_after: float | None = DEFAULT_RETRY_AFTER,
        rate_limit_message: str = QUEUE_LIMIT_MESSAGE,
    ) -> None:
        """Configure the server; nothing listens until :meth:`start`."""
        if queue_limit is not None and queue_limit < 1:
            raise ValueError(f"queue_limit must be >= 1 or None, got {queue_limit}")
        if latency < 0 or (retry_after is not None and retry_after < 0):
            raise ValueError("latency and retry_after must be >= 0")
        self.api_key = api_key
        self.host = host
        self.stream_delay = float(stream_delay)
        self._queue_settings = (queue_limit, float(latency), retry_after, rate_limit_message)
        self._ssl = ssl_context
        self._requested_port = port
        self._port = 0
        models = tuple(models) if models is not None else POPULAR_MODELS
        self._accepted = self._known = frozenset(model.lower() for model in models)
        listed = {"object": "model", "created": int(time.time()), "owned_by": "modelslab"}
        self._model_list = {"object": "list", "data": [{"id": m, **listed} for m in models]}
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._log: deque[RecordedRequest] = deque(maxlen=max(int(max_recorded_requests), 0))
        self._queues: dict[str, list[float]] = {}
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._transports: dict[web.RequestHandler, asyncio.Transport] = {}
        self.in_flight = self.queued = 0
        self.reset()

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        if not self._port:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The root URL, e.g. ``http://127.0.0.1:PORT``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self._ssl is not None else 'http'}://{host}:{self.port}"

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

    def enqueue(self, *replies: Reply) -> None:
        """Queue replies (FIFO) for the next chat and completion requests."""
        for reply in replies:
            if not isinstance(reply, Reply):
                raise TypeError(f"expected a Reply, got {type(reply).__name__}")
        with self._lock:
            self._replies.extend(replies)

    def allow_models(self, *models: str) -> None:
        """Accept these model ids too, until :meth:`reset` (the pytest fixture resets after
        each test)."""
        self._accepted = self._accepted | {model.lower() for model in models}

    @property
    def pending_replies(self) -> int:
        """How many queued replies are still waiting for a request."""
        return len(self._replies)

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
        Queued replies go first. With ``once_per_request=True`` a request whose path and body
        already met a fault (a client's retry) is answered normally. ``faults_injected`` counts
        the faults played.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if replies is None:
            replies = (Reply.rate_limit(retry_after=0), Reply.server_error(500))
        if rate > 0 and not replies:
            raise ValueError("a fault rate needs at least one reply")
        with self._lock:
            self._fault_rate = float(rate)
            self._fault_replies = tuple(replies)
            self._fault_once = bool(once_per_request)
            self._faulted: set[bytes] = set()
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
    def open_connections(self) -> int:
        """How many client connections are open now (idle keep-alive ones included; one its
        client closed counts until the server reads its end)."""
        return len(self._transports)

    def reset_stats(self) -> None:
        """Zero the counters; the ``max_*_seen`` ones start again from the current values."""
        with self._lock:
            self.max_in_flight_seen = self.in_flight
            self.max_queued_seen = self.queued
            self.max_open_connections_seen = len(self._transports)
            self.request_count = self.connections_opened = 0
            self.rate_limited_count = self.faults_injected = 0

    def reset(self) -> None:
        """Clear the reply queue, the fault rate, the request log and the stats; restore the
        constructor's ``queue_limit``, ``latency``, ``retry_after`` and ``rate_limit_message``."""
        self.queue_limit, self.latency, self.retry_after, self.rate_limit_message = (
            self._queue_settings
        )
        self.set_fault_rate(0.0)
        self._accepted = self._known
        with self._lock:
            self._replies.clear()
            self._log.clear()
        self.reset_stats()

    def start(self) -> Self:
        """Start listening in a background thread; return ``self``."""
        if self._thread is not None:
            raise RuntimeError("the server is already started")
        loop = asyncio.new_event_loop()

        def run() -> None:
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        thread = threading.Thread(target=run, name="modelslab-local-server", daemon=True)
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._open(), loop).result()
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close every connection, stop the loop and join the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            self._loop = self._thread = None
            self._port = 0

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalModelsLab({self.url if self._port else 'not started'})"

    async def _open(self) -> None:
        runner = web.ServerRunner(WebServer(self), shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self._requested_port, ssl_context=self._ssl, backlog=2048
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

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        self.in_flight += 1
        self.request_count += 1
        self.max_in_flight_seen = max(self.max_in_flight_seen, self.in_flight)
        try:
            return await self._dispatch(request)
        except web.HTTPException:  # aiohttp's own answer: 413 for a body over 64 MiB
            raise
        except OSError:  # the client left, or a fault dropped it
            return web.Response()
        except Exception as exc:
            logger.exception("local ModelsLab server failed on %s %s", request.method, request.path)
            response = _error(500, f"Local server error: {exc!r}")
            response.force_close()
            return response
        finally:
            self.in_flight -= 1

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        with contextlib.suppress(ValueError):  # UnicodeDecodeError is one too
            body = json.loads(raw)
        names = dict.fromkeys(name.lower() for name in request.headers)
        headers = {name: ", ".join(request.headers.getall(name)) for name in names}
        key, placement = find_key(headers, body)
        with self._lock:
            self._log.append(redacted(request.method, request.raw_path, headers, body, placement))
        target = request.raw_path.partition("?")[0]
        route = ROUTES.get(target.rstrip("/") or "/")
        if route is None:
            return _error(404, "Route not found")
        method, kind, uncensored = route
        if request.method != method:
            message = f"The {request.method} method is not supported for this route."
            return _error(405, message, [("Allow", method)])
        if key is None or (self.api_key is not None and key != self.api_key):
            return _response(200, INVALID_KEY_BODY)
        if kind == "models":
            return _response(200, self._model_list)
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object.")
        chat = kind == "chat"
        if (problem := request_error(body, chat)) is not None:
            return _error(422, problem, errors={"messages" if chat else "prompt": [problem]})
        if (problem := unknown_model(body, self._accepted)) is not None:
            return _error(404, problem)
        call = _Call(request, body, chat, uncensored, wants_stream(body), wants_usage(body))
        identity = target.encode() + b"\n" + raw
        if self.queue_limit is None and self.latency <= 0:
            return await self._play(self._next_reply(identity), call)
        return await self._under_queue_limit(key, call, identity)

    async def _under_queue_limit(
        self, key: str, call: _Call, identity: bytes
    ) -> web.StreamResponse:
        """Answer under the account queue: a 429 when the key has ``queue_limit`` requests
        being answered, else the answer after ``latency`` seconds."""
        limit = self.queue_limit
        started = self._queues.setdefault(key, [])
        now = time.monotonic()
        if limit is not None and len(started) >= limit:
            self.rate_limited_count += 1
            hint = self.retry_after
            if hint is None:
                hint = math.ceil(max(min(started) + self.latency - now, 0.0) * 100) / 100
            message = self.rate_limit_message.replace("{limit}", str(limit))
            return _error(429, message, [("Retry-After", f"{hint:g}")], retry_after=hint)
        started.append(now)
        self.queued += 1
        self.max_queued_seen = max(self.max_queued_seen, self.queued)
        try:
            if self.latency > 0:
                await asyncio.sleep(self.latency)
            return await self._play(self._next_reply(identity), call)
        finally:
            started.remove(now)
            self.queued -= 1

    def _next_reply(self, identity: bytes) -> Reply | None:
        """The queued reply, a random fault, or ``None``; ``identity`` is the request's path
        and body (a retry repeats them byte for byte)."""
        with self._lock:
            if self._replies:
                return self._replies.popleft()
            if self._fault_rate <= 0 or identity in self._faulted:  # only once_per_request adds
                return None
            if self._rng.random() >= self._fault_rate:
                return None
            if self._fault_once:
                self._faulted.add(identity)
            self.faults_injected += 1
            return self._rng.choice(self._fault_replies)

    async def _play(self, reply: Reply | None, call: _Call) -> web.StreamResponse:
        match reply:
            case ResponseReply(status, body, content_type, headers):
                return _response(status, body, content_type, headers)
            case SlowReply(seconds, then):
                await asyncio.sleep(seconds)
                return await self._play(then, call)
            case KeepAliveReply():
                return await self._keep_alive(reply, call)
            case ResetReply(after_bytes):
                payload = self._payload(None, call)
                return await reset_after(call.request, payload, call.stream, after_bytes)
            case CutStreamReply() if not call.stream:
                return await send_half(call.request, self._payload(None, call))
            case CutStreamReply(after) | StreamErrorReply(after_chunks=after):
                events = first_chunks(stream_events(self._answer(None, call), call.usage), after)
                if isinstance(reply, StreamErrorReply):  # its event, then a clean end
                    events += [f"data: {reply.event}\n\n", DONE_EVENT]
                return await self._send_events(call, events)
            case AnswerReply() | None:
                answer = self._answer(reply, call)
                if not call.stream:
                    return _response(200, answer)
                return await self._send_events(call, stream_events(answer, call.usage))
        raise TypeError(f"not a reply the server can play: {reply!r}")

    def _answer(self, reply: AnswerReply | None, call: _Call) -> dict[str, Any]:
        """The JSON body of the demo model's answer, or of a scripted ``answer`` reply."""
        choices: list[Choice]
        if reply is None:
            choices = [chat_choice(call.body)] if call.chat else completion_choices(call.body)
        elif call.chat:
            message: dict[str, Any] = {"content": reply.content}
            if reply.reasoning is not None:
                message["reasoning_content"] = reply.reasoning
            if reply.calls:
                message["tool_calls"] = [
                    {"id": id, "type": "function", "function": {"name": name, "arguments": args}}
                    for name, args, id in reply.calls
                ]
            choices = [(message, reply.finish_reason)]
        else:
            count = max(len(prompts(call.body.get("prompt"))), 1)
            choices = [({"content": reply.content or ""}, reply.finish_reason)] * count
        prefix = "gen" if call.chat else "cmpl"
        return answer_body(
            call.body,
            choices,
            chat=call.chat,
            completion_id=f"{prefix}-{next(self._ids)}",
            created=int(time.time()),
            uncensored=call.uncensored,
            usage=dict(reply.usage) if reply is not None and reply.usage is not None else None,
        )

    async def _prepare(self, call: _Call, content_type: str = EVENT_STREAM) -> web.StreamResponse:
        """Send the head of a chunked response (an SSE stream, or keep-alive bytes and JSON)."""
        headers = {"Content-Type": content_type, "Cache-Control": "no-cache", "Server": SERVER}
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(call.request)
        return response

    async def _send_events(self, call: _Call, events: list[str]) -> web.StreamResponse:
        """Stream SSE events in batches, or one every ``stream_delay`` seconds."""
        response = await self._prepare(call)
        pending = ""
        for index, event in enumerate(events):
            if index and self.stream_delay > 0:  # paced between events
                await asyncio.sleep(self.stream_delay)
            pending += event
            if index < len(events) - 1 and (self.stream_delay > 0 or len(pending) >= _BATCH):
                await response.write(pending.encode("utf-8"))
                pending = ""
        await response.write_eof(pending.encode("utf-8"))
        return response

    async def _keep_alive(self, reply: KeepAliveReply, call: _Call) -> web.StreamResponse:
        response = await self._prepare(call, EVENT_STREAM if call.stream else JSON)
        beat = KEEP_ALIVE.encode() if call.stream else b" "
        loop = asyncio.get_running_loop()
        end = loop.time() + reply.seconds
        while loop.time() < end:
            await response.write(beat)
            await asyncio.sleep(min(reply.interval, max(end - loop.time(), 0.0)))
        await response.write_eof(self._payload(reply.then, call))
        return response

    def _payload(self, reply: AnswerReply | None, call: _Call) -> bytes:
        """The answer as the request asked for it: its SSE events, or its JSON body."""
        answer = self._answer(reply, call)
        text = "".join(stream_events(answer, call.usage)) if call.stream else _dumps(answer)
        return text.encode("utf-8")
