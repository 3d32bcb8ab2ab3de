"""``ModelsLabClient`` and ``AsyncModelsLabClient``: thin twins over :class:`BaseClient`.

They differ only in ``await``: each waits for a place at the account gate
(:mod:`modelslab_core.flow`), sends bytes, applies the one retry plan (:class:`CallPlan`: the retry
count, the rate-limit budget, the whole-call deadline) and hands the answer to the shared pure
parsers. A stream is retried only until its first event has arrived, and holds its place at the
gate until it ends, is closed or is dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel

from . import _pools
from ._base_client import BaseClient, next_hop
from ._call import abody_bytes, admission, admitted, body_bytes, finish, guard_stream
from ._transport import translated
from .config import COMPLETIONS_BASE_URL, COMPLETIONS_BASE_URL_ENV
from .errors import APIError, NotFoundError
from .flow import NO_PERMIT, Permit
from .retry import CallPlan
from .streaming import AsyncStream, Stream, answer_as_chunk
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Completion,
    CompletionRequest,
    ModelList,
)

__all__ = [
    "AsyncModelsLabClient",
    "AsyncModelsLabClientBase",
    "AsyncModelsLabCompletionsClient",
    "ModelsLabClient",
    "ModelsLabClientBase",
    "ModelsLabCompletionsClient",
]

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R")

ChatInput = ChatRequest | Mapping[str, Any]
CompletionInput = CompletionRequest | Mapping[str, Any]
Request = ChatRequest | CompletionRequest
Attempt = Callable[[Permit, CallPlan], R]
AsyncAttempt = Callable[[Permit, CallPlan], Awaitable[R]]


class ModelsLabClientBase(BaseClient[httpx.Client]):
    """What both sync clients share: settings, the account gate, the model list, closing and
    the I/O loop. Use :class:`ModelsLabClient` (chat) or :class:`ModelsLabCompletionsClient`
    (text completions).

    Settings as keyword arguments or one ``config=ClientConfig``; ``http_client`` is an
    ``httpx.Client`` of yours (proxies, certificates, event hooks, a mock transport); without it
    the process-wide pool is shared by every client."""

    def _http(self) -> httpx.Client:
        return self._http_client if self._http_client is not None else _pools.sync_pool()

    def list_models(self) -> ModelList:
        """GET the model list (``/v1/models``, falling back to ``/models``)."""
        # The model list is no queued request: it does not pass through the account gate.
        try:
            return self._retrying(
                partial(self._send, "v1/models", None, ModelList, None), gated=False
            )
        except NotFoundError:
            return self._retrying(partial(self._send, "models", None, ModelList, None), gated=False)

    def close(self) -> None:
        """Close the ``http_client`` this client was given; the shared pool stays open."""
        if self._http_client is not None:
            self._http_client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _answer(self, path: str, request: Request, model: type[T]) -> T:
        body = self._encode(request.body(stream=False))
        return self._retrying(partial(self._send, path, body, model, request.model))

    def _stream(
        self, path: str, request: Request, answer: type[BaseModel], chunk: type[T]
    ) -> Stream[T]:
        body = self._encode(request.body(stream=True))
        call = partial(self._open_stream, path, body, answer, chunk, request.model)
        return self._retrying(call)

    # --- the I/O skeleton (each step without I/O is BaseClient's or _call's) --------------------

    def _retrying(self, attempt: Attempt[R], *, gated: bool = True) -> R:
        plan = self._plan(gated)
        gate = self.flow_gate if plan.gated else None
        while True:
            timeout = admission(plan)
            permit = NO_PERMIT
            if gate is not None:
                got = gate.acquire(timeout, retry_at=plan.take_retry_at())
                permit = admitted(got, plan)
            try:
                return attempt(permit, plan)
            except APIError as error:
                delay = self._retry_delay(error, plan)
            if delay:
                time.sleep(delay)

    def _exchange(self, path: str, body: bytes | None, plan: CallPlan) -> httpx.Response:
        """The open (unread) response, after following 307/308 redirects (:func:`next_hop`)."""
        http = self._http()
        request = self._request(http, path, body, plan)
        hops = 0
        while True:
            response = http.send(request, stream=True, follow_redirects=False)
            try:
                following = next_hop(response, hops, http.max_redirects, self._secret)
            finally:
                if response.next_request is not None:
                    response.close()
            if following is None:
                return response
            request, hops = following, hops + 1

    def _send(
        self,
        path: str,
        body: bytes | None,
        model: type[T],
        label: str | None,
        permit: Permit,
        plan: CallPlan,
    ) -> T:
        started = time.monotonic()
        try:
            with translated:
                response = self._exchange(path, body, plan)
                try:
                    chunks = body_bytes(response, plan, self.config.timeout)
                    data = b"".join(chunks)
                finally:
                    response.close()
            self._log(response, label, started, plan)
            result = self._parse(response, data, model)
        except BaseException as error:
            finish(permit, error)
            raise
        finish(permit, None)
        return result

    def _open_stream(
        self,
        path: str,
        body: bytes,
        answer_model: type[BaseModel],
        model: type[T],
        label: str | None,
        permit: Permit,
        plan: CallPlan,
    ) -> Stream[T]:
        started = time.monotonic()
        try:
            with translated:
                response = self._exchange(path, body, plan)
                self._log(response, label, started, plan)
                try:
                    chunks = body_bytes(response, plan, self.config.timeout)
                    if not self._is_event_stream(response):
                        data = b"".join(chunks)  # read whole: closed
                        answer = answer_as_chunk(self._parse(response, data, answer_model))
                        finish(permit, None)
                        return Stream.of_answer(response, answer)  # type: ignore[arg-type]
                    stream = Stream.open(response, model, chunks, secret=self._secret)
                except BaseException:
                    response.close()
                    raise
        except BaseException as error:
            finish(permit, error)
            raise
        guard_stream(stream, chunks, permit, self.flow_gate, None)
        return stream


class ModelsLabClient(ModelsLabClientBase):
    """The chat client: ``{base_url}/chat/completions``, sync. Text completions are
    :class:`ModelsLabCompletionsClient`'s."""

    def chat(self, request: ChatInput) -> ChatCompletion:
        """POST ``/chat/completions`` and return the completion."""
        return self._answer("chat/completions", ChatRequest.of(request), ChatCompletion)

    def chat_stream(self, request: ChatInput) -> Stream[ChatCompletionChunk]:
        """POST ``/chat/completions`` with ``stream: true``; an iterator of chunks."""
        request = ChatRequest.of(request)
        return self._stream("chat/completions", request, ChatCompletion, ChatCompletionChunk)


class ModelsLabCompletionsClient(ModelsLabClientBase):
    """The text-completions client: ``{base_url}/completions``, sync; its default base is the v6
    API (``MODELSLAB_COMPLETIONS_BASE_URL`` overrides it). The uncensored base serves both
    clients."""

    _default_base_url = COMPLETIONS_BASE_URL
    _base_url_env = COMPLETIONS_BASE_URL_ENV

    def complete(self, request: CompletionInput) -> Completion:
        """POST ``/completions`` (text completion) and return it."""
        return self._answer("completions", CompletionRequest.of(request), Completion)

    def complete_stream(self, request: CompletionInput) -> Stream[Completion]:
        """POST ``/completions`` with ``stream: true``; an iterator of completion chunks."""
        request = CompletionRequest.of(request)
        return self._stream("completions", request, Completion, Completion)


class AsyncModelsLabClientBase(BaseClient[httpx.AsyncClient]):
    """Async twin of :class:`ModelsLabClientBase`. Without ``http_client``, each event loop gets
    its own shared pool (on the aiohttp transport), so one client works from several loops in a
    row."""

    _transport_name = "aiohttp"

    async def _http(self) -> httpx.AsyncClient:
        return self._http_client if self._http_client is not None else await _pools.async_pool()

    async def list_models(self) -> ModelList:
        """GET the model list (``/v1/models``, falling back to ``/models``)."""
        # The model list is no queued request: it does not pass through the account gate.
        try:
            return await self._retrying(
                partial(self._send, "v1/models", None, ModelList, None), gated=False
            )
        except NotFoundError:
            return await self._retrying(
                partial(self._send, "models", None, ModelList, None), gated=False
            )

    async def close(self) -> None:
        """Close the ``http_client`` this client was given; shared pools close with their loop."""
        if self._http_client is not None:
            await self._http_client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _answer(self, path: str, request: Request, model: type[T]) -> T:
        body = self._encode(request.body(stream=False))
        return await self._retrying(partial(self._send, path, body, model, request.model))

    async def _stream(
        self, path: str, request: Request, answer: type[BaseModel], chunk: type[T]
    ) -> AsyncStream[T]:
        body = self._encode(request.body(stream=True))
        call = partial(self._open_stream, path, body, answer, chunk, request.model)
        return await self._retrying(call)

    # --- the I/O skeleton (each step without I/O is BaseClient's or _call's) --------------------

    async def _retrying(self, attempt: AsyncAttempt[R], *, gated: bool = True) -> R:
        plan = self._plan(gated)
        gate = self.flow_gate if plan.gated else None
        while True:
            timeout = admission(plan)
            permit = NO_PERMIT
            if gate is not None:
                got = await gate.acquire_async(timeout, retry_at=plan.take_retry_at())
                permit = admitted(got, plan)
            try:
                return await attempt(permit, plan)
            except APIError as error:
                delay = self._retry_delay(error, plan)
            if delay:
                await asyncio.sleep(delay)

    async def _exchange(self, path: str, body: bytes | None, plan: CallPlan) -> httpx.Response:
        """The open (unread) response, after following 307/308 redirects (:func:`next_hop`)."""
        http = await self._http()
        request = self._request(http, path, body, plan)
        hops = 0
        while True:
            response = await http.send(request, stream=True, follow_redirects=False)
            try:
                following = next_hop(response, hops, http.max_redirects, self._secret)
            finally:
                if response.next_request is not None:
                    await response.aclose()
            if following is None:
                return response
            request, hops = following, hops + 1

    async def _send(
        self,
        path: str,
        body: bytes | None,
        model: type[T],
        label: str | None,
        permit: Permit,
        plan: CallPlan,
    ) -> T:
        started = time.monotonic()
        try:
            with translated:
                response = await self._exchange(path, body, plan)
                try:
                    chunks = abody_bytes(response, plan, self.config.timeout)
                    data = b"".join([chunk async for chunk in chunks])
                finally:
                    await response.aclose()
            self._log(response, label, started, plan)
            result = self._parse(response, data, model)
        except BaseException as error:
            finish(permit, error)
            raise
        finish(permit, None)
        return result

    async def _open_stream(
        self,
        path: str,
        body: bytes,
        answer_model: type[BaseModel],
        model: type[T],
        label: str | None,
        permit: Permit,
        plan: CallPlan,
    ) -> AsyncStream[T]:
        started = time.monotonic()
        try:
            with translated:
                response = await self._exchange(path, body, plan)
                self._log(response, label, started, plan)
                try:
                    chunks = abody_bytes(response, plan, self.config.timeout)
                    if not self._is_event_stream(response):
                        data = b"".join([chunk async for chunk in chunks])  # read whole: closed
                        answer = answer_as_chunk(self._parse(response, data, answer_model))
                        finish(permit, None)
                        return AsyncStream.of_answer(response, answer)  # type: ignore[arg-type]
                    stream = await AsyncStream.open(response, model, chunks, secret=self._secret)
                except BaseException:
                    await response.aclose()
                    raise
        except BaseException as error:
            finish(permit, error)
            raise
        guard_stream(stream, chunks, permit, self.flow_gate, asyncio.get_running_loop())
        return stream


class AsyncModelsLabClient(AsyncModelsLabClientBase):
    """Async twin of :class:`ModelsLabClient`."""

    async def chat(self, request: ChatInput) -> ChatCompletion:
        """POST ``/chat/completions`` and return the completion."""
        return await self._answer("chat/completions", ChatRequest.of(request), ChatCompletion)

    async def chat_stream(self, request: ChatInput) -> AsyncStream[ChatCompletionChunk]:
        """POST ``/chat/completions`` with ``stream: true``; an async iterator of chunks."""
        request = ChatRequest.of(request)
        return await self._stream("chat/completions", request, ChatCompletion, ChatCompletionChunk)


class AsyncModelsLabCompletionsClient(AsyncModelsLabClientBase):
    """Async twin of :class:`ModelsLabCompletionsClient`."""

    _default_base_url = COMPLETIONS_BASE_URL
    _base_url_env = COMPLETIONS_BASE_URL_ENV

    async def complete(self, request: CompletionInput) -> Completion:
        """POST ``/completions`` (text completion) and return it."""
        return await self._answer("completions", CompletionRequest.of(request), Completion)

    async def complete_stream(self, request: CompletionInput) -> AsyncStream[Completion]:
        """POST ``/completions`` with ``stream: true``; an async iterator of completion chunks."""
        request = CompletionRequest.of(request)
        return await self._stream("completions", request, Completion, Completion)
