"""Server-Sent Events → wire chunks.

The pure part (:func:`iter_sse_data`, :func:`decode_event`) turns text into ``data:`` payloads and
payloads into chunks; :class:`Stream` and :class:`AsyncStream` hold the HTTP response and close it
in every case: exhausted, broken off by the caller, or failed.

ModelsLab's stream (seed 002; ``shared/modelslab-api.md``): ``data: {chunk}`` events, comment lines
(``: keep-alive``, ``: OPENROUTER PROCESSING``) anywhere, and ``data: [DONE]`` at the end. A stream
that ends without ``[DONE]`` was cut off: :class:`IncompleteStreamError`, never a short answer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

import httpx
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from pydantic import BaseModel, ValidationError

from .errors import (
    APIError,
    IncompleteStreamError,
    InvalidResponseError,
    StreamError,
    error_from_body,
    redact_error,
)
from .types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceDelta,
    ChunkChoice,
    FunctionCallDelta,
    ToolCallDelta,
)

__all__ = [
    "AsyncStream",
    "Stream",
    "aiter_sse_data",
    "answer_as_chunk",
    "decode_event",
    "iter_sse_data",
]

T = TypeVar("T", bound=BaseModel)

DONE = "[DONE]"


class _SSEParser:
    """Text in, ``data`` payloads out; the line and event decoders of httpx-sse."""

    __slots__ = ("_events", "_lines")

    def __init__(self) -> None:
        self._lines = SSELineDecoder()
        self._events = SSEDecoder()

    def feed(self, text: str) -> list[str]:
        out = []
        for line in self._lines.decode(text):
            event = self._events.decode(line.rstrip("\n"))
            if event is not None and event.data:
                out.append(event.data)
        return out

    def finish(self) -> list[str]:
        """What the body left unterminated (a last line, an event with no blank line after it)
        counts only when it is ``[DONE]``: anything else is an event cut off mid-way, and the
        stream, left without ``[DONE]``, is reported incomplete rather than as a bad event."""
        out = []
        for line in [*self._lines.flush(), ""]:
            event = self._events.decode(line)
            if event is not None and event.data.strip() == DONE:
                out.append(event.data)
        return out


def iter_sse_data(texts: Iterable[str]) -> Iterator[str]:
    """The ``data`` payload of each event in a stream of text pieces split anywhere."""
    parser = _SSEParser()
    for text in texts:
        if text:
            yield from parser.feed(text)
    yield from parser.finish()


async def aiter_sse_data(texts: AsyncIterable[str]) -> AsyncIterator[str]:
    """Async twin of :func:`iter_sse_data`."""
    parser = _SSEParser()
    async for text in texts:
        if text:
            for data in parser.feed(text):
                yield data
    for data in parser.finish():
        yield data


def _stream_error(body: Any, status_code: int) -> APIError:
    error = error_from_body(status_code, body)
    if error is None or type(error).__name__ == "BadRequestError":
        # An error event in a stream that names no known cause.
        message = error.message if error is not None else "error event in stream"
        return StreamError(message, status_code=status_code, body=body)
    return error


def decode_event(data: str, model: type[T], *, status_code: int = 200) -> T | None:
    """One ``data`` payload → a chunk of type ``model``; None for ``[DONE]``.

    Raises the mapped :class:`APIError` for an error object inside the stream and
    :class:`InvalidResponseError` for a payload that is not a JSON object of the expected shape.
    """
    if data.startswith("[DONE]") or data.strip() == DONE:
        return None
    if '"error"' not in data and '"status"' not in data:
        try:
            return model.model_validate_json(data)
        except ValidationError:
            pass  # fall through to the careful path for a precise error
    try:
        body = json.loads(data)
    except ValueError:
        raise InvalidResponseError(
            f"stream event is not JSON: {data[:200]!r}", status_code=status_code
        ) from None
    if not isinstance(body, dict):
        raise InvalidResponseError(
            f"stream event is not a JSON object: {data[:200]!r}", status_code=status_code
        )
    if "error" in body or str(body.get("status", "")).lower() in ("error", "failed"):
        raise _stream_error(body, status_code)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidResponseError(
            f"stream event has an unexpected shape: {exc.errors()[0]['msg']}",
            status_code=status_code,
            body=body,
        ) from None


def answer_as_chunk(answer: BaseModel) -> BaseModel:
    """A whole answer given to a stream request (a server that ignored ``stream``) as the one
    chunk it amounts to. Text completions and their chunks share a shape: returned as they are."""
    if not isinstance(answer, ChatCompletion):
        return answer
    choices = [
        ChunkChoice(
            index=choice.index,
            finish_reason=choice.finish_reason,
            delta=ChoiceDelta(
                role=choice.message.role,
                content=choice.message.content
                if isinstance(choice.message.content, str | None)
                else "".join(
                    str(p.get("text", "")) for p in choice.message.content if isinstance(p, dict)
                ),
                reasoning_content=choice.message.reasoning_content,
                tool_calls=[
                    ToolCallDelta(
                        index=i,
                        id=call.id,
                        type=call.type,
                        function=FunctionCallDelta(
                            name=call.function.name, arguments=call.function.arguments
                        ),
                    )
                    for i, call in enumerate(choice.message.tool_calls)
                ]
                if choice.message.tool_calls
                else None,
            ),
        )
        for choice in answer.choices
    ]
    return ChatCompletionChunk(
        id=answer.id,
        created=answer.created,
        model=answer.model,
        choices=choices,
        usage=answer.usage,
    )


class Stream(Generic[T]):
    """An iterator of chunks over one HTTP response; closes the response when done or closed.

    The client reads the first event while opening the stream (so that a failure before it can
    still be retried) and passes it back in front of ``events``.
    """

    def __init__(
        self,
        response: httpx.Response,
        events: Iterator[T | None],
        *,
        on_close: Callable[[], None] | None = None,
        secret: str = "",
    ) -> None:
        self.response = response
        self._events = events
        self._on_close = on_close
        self._secret = secret  # masked in the errors of events (a server may echo it back)
        self._closed = False
        self._done = False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            item = next(self._events)
        except StopIteration:
            self.close()
            raise IncompleteStreamError(
                "the stream ended without [DONE]: the answer was cut off",
                status_code=self.response.status_code,
            ) from None
        except httpx.HTTPError as exc:
            self.close()
            raise IncompleteStreamError(
                f"the stream broke off: {type(exc).__name__}: {exc}",
                status_code=self.response.status_code,
            ) from exc
        except APIError as error:
            self.close()
            redact_error(error, self._secret)
            raise
        except BaseException:
            self.close()
            raise
        if item is None:
            self._done = True
            self.close()
            raise StopIteration
        return item

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.response.close()
        finally:
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # A stream dropped half-read must not leak its connection or its in-flight slot.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):  # interpreter teardown
                self.close()


class AsyncStream(Generic[T]):
    """Async twin of :class:`Stream`."""

    def __init__(
        self,
        response: httpx.Response,
        events: AsyncIterator[T | None],
        *,
        on_close: Callable[[], None] | None = None,
        secret: str = "",
    ) -> None:
        self.response = response
        self._events = events
        self._on_close = on_close
        self._secret = secret  # masked in the errors of events (a server may echo it back)
        self._closed = False
        self._done = False

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._events.__anext__()
        except StopAsyncIteration:
            await self.aclose()
            raise IncompleteStreamError(
                "the stream ended without [DONE]: the answer was cut off",
                status_code=self.response.status_code,
            ) from None
        except httpx.HTTPError as exc:
            await self.aclose()
            raise IncompleteStreamError(
                f"the stream broke off: {type(exc).__name__}: {exc}",
                status_code=self.response.status_code,
            ) from exc
        except APIError as error:
            await self.aclose()
            redact_error(error, self._secret)
            raise
        except BaseException:
            await self.aclose()
            raise
        if item is None:
            self._done = True
            await self.aclose()
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()
            await self.response.aclose()
        finally:
            if self._on_close is not None:
                self._on_close()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
