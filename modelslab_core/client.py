"""``ModelsLabClient`` and ``AsyncModelsLabClient``: thin twins over :class:`BaseClient`.

They differ only in ``await``: each sends bytes, applies the one retry policy and hands the answer
to the shared pure parsers. A stream is retried only until its first event has arrived.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator, Mapping
from functools import partial
from itertools import chain
from types import TracebackType
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from . import _pools
from ._base_client import BaseClient, is_transport_error, next_hop, translate_transport_error
from .config import COMPLETIONS_BASE_URL, COMPLETIONS_BASE_URL_ENV
from .errors import APIError, redact_error
from .streaming import (
    AsyncStream,
    Stream,
    aiter_sse_data,
    answer_as_chunk,
    decode_event,
    iter_sse_data,
)
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Completion,
    CompletionRequest,
    ModelList,
)
from .validation import check_chat_request, check_completion_request

__all__ = [
    "AsyncModelsLabClient",
    "AsyncModelsLabCompletionsClient",
    "ModelsLabClient",
    "ModelsLabCompletionsClient",
]

logger = logging.getLogger("modelslab_core")

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

ChatInput = ChatRequest | Mapping[str, Any]
CompletionInput = CompletionRequest | Mapping[str, Any]


def _chat_body(request: ChatInput, *, stream: bool) -> dict[str, Any]:
    req = request if isinstance(request, ChatRequest) else ChatRequest.model_validate(request)
    check_chat_request(req)
    body = req.to_body()
    body["stream"] = stream
    if not stream:
        body.pop("stream_options", None)
    return body


def _completion_body(request: CompletionInput, *, stream: bool) -> dict[str, Any]:
    req = (
        request
        if isinstance(request, CompletionRequest)
        else CompletionRequest.model_validate(request)
    )
    check_completion_request(req)
    body = req.to_body()
    body["stream"] = stream
    if not stream:
        body.pop("stream_options", None)
    return body


class _Slot:
    """One place among ``max_in_flight``; released exactly once."""

    __slots__ = ("_release",)

    def __init__(self, release: Callable[[], None] | None) -> None:
        self._release = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()


_END: Any = object()


class ModelsLabClient(BaseClient[httpx.Client]):
    """Synchronous client. Settings as keyword arguments or one ``config=ClientConfig``;
    ``http_client`` is an ``httpx.Client`` of yours (proxies, certificates, event hooks, a mock
    transport); without it the process-wide pool is shared by every client."""

    def _http(self) -> httpx.Client:
        return self._http_client if self._http_client is not None else _pools.sync_pool()

    # --- public API ---------------------------------------------------------------------------

    def chat(self, request: ChatInput) -> ChatCompletion:
        """POST ``/chat/completions`` and return the completion."""
        payload = _chat_body(request, stream=False)
        body = self._encode(payload)
        label = payload.get("model")
        return self._retrying(
            partial(self._send, "POST", "chat/completions", body, ChatCompletion, label)
        )

    def chat_stream(self, request: ChatInput) -> Stream[ChatCompletionChunk]:
        """POST ``/chat/completions`` with ``stream: true``; an iterator of chunks."""
        payload = _chat_body(request, stream=True)
        body = self._encode(payload)
        label = payload.get("model")
        return self._retrying(
            lambda n: self._open_stream(
                "chat/completions", body, ChatCompletion, ChatCompletionChunk, label, n
            )
        )

    def complete(self, request: CompletionInput) -> Completion:
        """POST ``/completions`` (text completion) and return it."""
        payload = _completion_body(request, stream=False)
        body = self._encode(payload)
        label = payload.get("model")
        return self._retrying(partial(self._send, "POST", "completions", body, Completion, label))

    def complete_stream(self, request: CompletionInput) -> Stream[Completion]:
        """POST ``/completions`` with ``stream: true``; an iterator of completion chunks."""
        payload = _completion_body(request, stream=True)
        body = self._encode(payload)
        label = payload.get("model")
        return self._retrying(
            partial(self._open_stream, "completions", body, Completion, Completion, label)
        )

    def list_models(self) -> ModelList:
        """GET the model list (``/v1/models``, falling back to ``/models``)."""
        from .errors import NotFoundError

        try:
            return self._retrying(partial(self._send, "GET", "v1/models", None, ModelList, None))
        except NotFoundError:
            return self._retrying(partial(self._send, "GET", "models", None, ModelList, None))

    def close(self) -> None:
        """Close the ``http_client`` this client was given; the shared pool stays open."""
        if self._http_client is not None:
            self._http_client.close()

    def __enter__(self) -> ModelsLabClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the I/O loop -------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[int], R]) -> R:
        retries = 0
        while True:
            try:
                return attempt(retries)
            except APIError as error:
                redact_error(error, self._secret)  # a server may echo the key back
                if not self.retry_policy.should_retry(error, retries):
                    raise
                delay = self.retry_policy.delay(error, retries)
                logger.info("retrying in %.2fs after %s", delay, type(error).__name__)
            time.sleep(delay)
            retries += 1

    def _acquire(self) -> _Slot:
        gate = self._gate
        if gate is None:
            return _Slot(None)
        gate.acquire()
        return _Slot(gate.release)

    def _exchange(self, method: str, path: str, body: bytes | None) -> httpx.Response:
        """Send through the httpx client and return the open (unread) response, after following
        307/308 redirects (see :func:`next_hop`)."""
        http = self._http()
        request = self._request(http, method, path, body)
        hops = 0
        while True:
            try:
                response = http.send(request, stream=True, follow_redirects=False)
            except httpx.HTTPError as exc:
                raise translate_transport_error(exc) from None
            try:
                following = next_hop(response, hops, http.max_redirects)
            finally:
                if response.next_request is not None:
                    response.close()
            if following is None:
                return response
            request, hops = following, hops + 1

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        model: type[T],
        label: str | None,
        retries: int,
    ) -> T:
        slot = self._acquire()
        started = time.monotonic()
        try:
            response = self._exchange(method, path, body)
            try:
                response.read()
            except httpx.HTTPError as exc:
                raise translate_transport_error(exc) from None
            finally:
                response.close()
        finally:
            slot.release()
        self._log(response, label, started, retries)
        return self._parse(response, model)

    def _open_stream(
        self,
        path: str,
        body: bytes,
        answer_model: type[BaseModel],
        chunk_model: type[T],
        label: str | None,
        retries: int,
    ) -> Stream[T]:
        slot = self._acquire()
        try:
            started = time.monotonic()
            response = self._exchange("POST", path, body)
            self._log(response, label, started, retries)
            try:
                if not self._is_event_stream(response):
                    response.read()
                    response.close()
                    slot.release()
                    answer = answer_as_chunk(self._parse(response, answer_model))
                    return Stream(response, iter([answer, None]))  # type: ignore[list-item]
                events: Iterator[T | None] = (
                    decode_event(data, chunk_model, status_code=response.status_code)
                    for data in iter_sse_data(response.iter_bytes())
                )
                first = next(events, _END)
            except httpx.HTTPError as exc:
                response.close()
                raise translate_transport_error(exc) from None
            except BaseException:
                response.close()
                raise
        except BaseException:
            slot.release()
            raise
        rest = iter(()) if first is _END else chain([first], events)
        return Stream(response, rest, on_close=slot.release, secret=self._secret)


class AsyncModelsLabClient(BaseClient[httpx.AsyncClient]):
    """Asynchronous twin of :class:`ModelsLabClient`. Without ``http_client``, each event loop
    gets its own shared pool (on the aiohttp transport), so one client works from several loops
    in a row."""

    _transport_name = "aiohttp"

    async def _http(self) -> httpx.AsyncClient:
        own = self._http_client
        return own if own is not None else await _pools.async_pool()

    # --- public API ---------------------------------------------------------------------------

    async def chat(self, request: ChatInput) -> ChatCompletion:
        """POST ``/chat/completions`` and return the completion."""
        payload = _chat_body(request, stream=False)
        body = self._encode(payload)
        label = payload.get("model")
        return await self._retrying(
            partial(self._send, "POST", "chat/completions", body, ChatCompletion, label)
        )

    async def chat_stream(self, request: ChatInput) -> AsyncStream[ChatCompletionChunk]:
        """POST ``/chat/completions`` with ``stream: true``; an async iterator of chunks."""
        payload = _chat_body(request, stream=True)
        body = self._encode(payload)
        label = payload.get("model")
        return await self._retrying(
            lambda n: self._open_stream(
                "chat/completions", body, ChatCompletion, ChatCompletionChunk, label, n
            )
        )

    async def complete(self, request: CompletionInput) -> Completion:
        """POST ``/completions`` (text completion) and return it."""
        payload = _completion_body(request, stream=False)
        body = self._encode(payload)
        label = payload.get("model")
        return await self._retrying(
            partial(self._send, "POST", "completions", body, Completion, label)
        )

    async def complete_stream(self, request: CompletionInput) -> AsyncStream[Completion]:
        """POST ``/completions`` with ``stream: true``; an async iterator of completion chunks."""
        payload = _completion_body(request, stream=True)
        body = self._encode(payload)
        label = payload.get("model")
        return await self._retrying(
            partial(self._open_stream, "completions", body, Completion, Completion, label)
        )

    async def list_models(self) -> ModelList:
        """GET the model list (``/v1/models``, falling back to ``/models``)."""
        from .errors import NotFoundError

        try:
            return await self._retrying(
                partial(self._send, "GET", "v1/models", None, ModelList, None)
            )
        except NotFoundError:
            return await self._retrying(partial(self._send, "GET", "models", None, ModelList, None))

    async def close(self) -> None:
        """Close the ``http_client`` this client was given; shared pools close with their loop."""
        if self._http_client is not None:
            await self._http_client.aclose()

    async def __aenter__(self) -> AsyncModelsLabClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the I/O loop -------------------------------------------------------------------------

    async def _retrying(self, attempt: Callable[[int], Awaitable[R]]) -> R:
        retries = 0
        while True:
            try:
                return await attempt(retries)
            except APIError as error:
                redact_error(error, self._secret)  # a server may echo the key back
                if not self.retry_policy.should_retry(error, retries):
                    raise
                delay = self.retry_policy.delay(error, retries)
                logger.info("retrying in %.2fs after %s", delay, type(error).__name__)
            await asyncio.sleep(delay)
            retries += 1

    async def _acquire(self) -> _Slot:
        limit = self.config.max_in_flight
        if not limit:
            return _Slot(None)
        loop = asyncio.get_running_loop()
        gate = self._gates.get(loop)
        if gate is None:
            gate = self._gates[loop] = asyncio.Semaphore(limit)
        await gate.acquire()
        return _Slot(gate.release)

    async def _exchange(self, method: str, path: str, body: bytes | None) -> httpx.Response:
        """Async twin of :meth:`ModelsLabClient._exchange`."""
        http = await self._http()
        request = self._request(http, method, path, body)
        hops = 0
        while True:
            try:
                response = await http.send(request, stream=True, follow_redirects=False)
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                raise translate_transport_error(exc) from None
            try:
                following = next_hop(response, hops, http.max_redirects)
            finally:
                if response.next_request is not None:
                    await response.aclose()
            if following is None:
                return response
            request, hops = following, hops + 1

    async def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        model: type[T],
        label: str | None,
        retries: int,
    ) -> T:
        slot = await self._acquire()
        started = time.monotonic()
        try:
            response = await self._exchange(method, path, body)
            try:
                await response.aread()
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                raise translate_transport_error(exc) from None
            finally:
                await response.aclose()
        finally:
            slot.release()
        self._log(response, label, started, retries)
        return self._parse(response, model)

    async def _open_stream(
        self,
        path: str,
        body: bytes,
        answer_model: type[BaseModel],
        chunk_model: type[T],
        label: str | None,
        retries: int,
    ) -> AsyncStream[T]:
        slot = await self._acquire()
        try:
            started = time.monotonic()
            response = await self._exchange("POST", path, body)
            self._log(response, label, started, retries)
            try:
                if not self._is_event_stream(response):
                    await response.aread()
                    await response.aclose()
                    slot.release()
                    answer = answer_as_chunk(self._parse(response, answer_model))
                    return AsyncStream(response, _aiter([answer, None]))
                events = _adecode(response, chunk_model)
                first = await anext(events, _END)
            except Exception as exc:
                await response.aclose()
                if not is_transport_error(exc):
                    raise
                raise translate_transport_error(exc) from None
            except BaseException:
                await response.aclose()
                raise
        except BaseException:
            slot.release()
            raise
        rest = _aiter([]) if first is _END else _aprepend(first, events)
        return AsyncStream(response, rest, on_close=slot.release, secret=self._secret)


async def _adecode(response: httpx.Response, model: type[T]) -> AsyncGenerator[T | None, None]:
    async for data in aiter_sse_data(response.aiter_bytes()):
        yield decode_event(data, model, status_code=response.status_code)


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _aprepend(
    first: T | None, rest: AsyncGenerator[T | None, None]
) -> AsyncIterator[T | None]:
    try:
        yield first
        async for item in rest:
            yield item
    finally:
        await rest.aclose()


class ModelsLabCompletionsClient(ModelsLabClient):
    """A :class:`ModelsLabClient` whose default base is the v6 text-completions API
    (``MODELSLAB_COMPLETIONS_BASE_URL`` overrides it)."""

    _default_base_url = COMPLETIONS_BASE_URL
    _base_url_env = COMPLETIONS_BASE_URL_ENV


class AsyncModelsLabCompletionsClient(AsyncModelsLabClient):
    """Async twin of :class:`ModelsLabCompletionsClient`."""

    _default_base_url = COMPLETIONS_BASE_URL
    _base_url_env = COMPLETIONS_BASE_URL_ENV
