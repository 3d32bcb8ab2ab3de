"""Server-Sent Events → wire chunks.

The pure part (:func:`iter_sse_data`, :func:`decode_event`) turns text into ``data:`` payloads and
payloads into chunks; :class:`Stream` and :class:`AsyncStream` hold the HTTP response and close it
in every case: exhausted, broken off by the caller, or failed.

ModelsLab's stream, OpenAI-compatible like the rest of its LLM API (https://docs.modelslab.com):
``data: {chunk}`` events, comment lines (``: keep-alive``, ``: OPENROUTER PROCESSING``)
anywhere, and ``data: [DONE]`` at the end. A stream that ends without ``[DONE]`` was cut off:
:class:`IncompleteStreamError`, never a short answer.
"""

from __future__ import annotations

import codecs
import contextlib
import enum
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Generic, Self, TypeVar, cast

import httpx
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from pydantic import BaseModel, ValidationError

from ._transport import is_transport_error
from .errors import (
    APIError,
    IncompleteStreamError,
    InvalidResponseError,
    body_error,
    body_kind,
    redact_error,
)
from .types import ChatCompletion, ChatCompletionChunk

__all__ = ["AsyncStream", "Stream", "answer_as_chunk", "decode_event", "iter_sse_data"]

T = TypeVar("T", bound=BaseModel)
C = TypeVar("C")  # the body's bytes: an iterator, sync or async

DONE = "[DONE]"


#: The longest line (or ``data`` of one event) a stream may send, in characters. Far above any
#: real chunk; without a cap, a server sending one endless line grows memory until it fails.
MAX_LINE = 16 * 1024 * 1024
#: How much of a stream is kept while no event has arrived, to read a JSON error body sent with a
#: ``text/event-stream`` content type.
_MAX_HEAD = 64 * 1024
_BOM = "\ufeff"


class _SSEParser:
    """Text or bytes in, ``data`` payloads out (into :attr:`datas`); the line and event decoders
    of httpx-sse.

    Bytes are decoded as strict UTF-8, so a corrupt stream is an error rather than U+FFFD in the
    answer. A byte-order mark before the first event is dropped, as the SSE specification says
    (https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing-an-event-stream).

    Why httpx-sse's decoders (``httpx_sse._decoders``, pinned to the 0.4 series, the newest on
    PyPI) and not its public ``EventSource``: that one reads an ``httpx.Response`` itself, decodes
    its text leniently (invalid UTF-8 becomes U+FFFD in the answer), buffers a line without any
    bound, and keeps no head of the body to read a JSON error labelled ``text/event-stream``;
    incremental decoding with no I/O of our own is only in the decoders.
    """

    __slots__ = (
        "_bytes_read",
        "_event_chars",
        "_events",
        "_head",
        "_head_chars",
        "_line_chars",
        "_lines",
        "_seen_event",
        "_started",
        "_utf8",
        "datas",
    )

    def __init__(self) -> None:
        self._lines = SSELineDecoder()
        self._events = SSEDecoder()
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._bytes_read = 0
        self._started = False  # past the place where a byte-order mark may stand
        self._line_chars = 0  # the unterminated line held by the line decoder
        self._event_chars = 0  # the ``data`` lines of the event being read
        self._seen_event = False
        self._head: list[str] = []  # the text before any event, for a JSON body (bounded)
        self._head_chars = 0
        self.datas: deque[str] = deque()  # the payloads read and not yet taken

    def _text(self, piece: str | bytes) -> str:
        if isinstance(piece, str):
            return piece
        try:
            text = self._utf8.decode(piece)
        except UnicodeDecodeError as exc:  # the bytes held back from the last piece come first
            at = self._bytes_read - len(self._utf8.getstate()[0]) + exc.start
            raise InvalidResponseError(
                f"the stream is not valid UTF-8: byte {exc.object[exc.start]:#04x} at offset {at}"
            ) from None
        self._bytes_read += len(piece)
        return text

    def feed(self, piece: str | bytes) -> None:
        text = self._text(piece)
        if not self._started and text:
            self._started = True
            if text.startswith(_BOM):
                text = text[1:]
        if not text:
            return
        if not self._seen_event and self._head_chars < _MAX_HEAD:
            self._head.append(text)
            self._head_chars += len(text)
        for line in self._lines.decode(text):
            self._line(line)
        if "\n" in text or "\r" in text:
            self._line_chars = sum(map(len, self._lines.buffer))
        else:
            self._line_chars += len(text)
        if self._line_chars + self._event_chars > MAX_LINE:
            raise InvalidResponseError(
                f"a stream line or event exceeded {MAX_LINE // (1024 * 1024)} MiB without ending"
            )

    def _line(self, line: str) -> None:
        if line.startswith("data"):
            self._event_chars += len(line)
        event = self._events.decode(line)
        if not line:
            self._event_chars = 0
        if event is None or not (event.data or event.event == "error"):
            return  # no event ends here, or one without data
        self._seen_event = True
        self.datas.append(_error_event_data(event.data) if event.event == "error" else event.data)

    def finish(self) -> None:
        """What the body left unterminated (a last line, an event with no blank line after it)
        counts only when it is ``[DONE]``: anything else is an event cut off mid-way, and the
        stream, left without ``[DONE]``, is reported incomplete rather than as a bad event.

        A body that held no event but is one JSON error object (a server that labels its error
        answer ``text/event-stream``) raises that error, mapped as a non-streamed body would be.
        """
        # Bytes of a character cut off at the end are dropped: the stream is cut.
        for line in [*self._lines.flush(), ""]:
            event = self._events.decode(line)
            if event is not None and event.data.strip() == DONE:
                self.datas.append(event.data)
        if not self.datas and not self._seen_event:
            try:
                body = json.loads("".join(self._head))
            except (ValueError, RecursionError):
                return
            error = body_error(200, body) if isinstance(body, dict) else None
            if error is not None:
                raise error


def _error_event_data(data: str) -> str:
    """The payload of an ``event: error`` as an error object :func:`decode_event` maps, whatever
    the server put in it: its JSON if that already names the error, else ``{"error": ...}``."""
    try:
        body = json.loads(data) if data.strip() else None
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and body_kind(body) == "error":
        return data
    detail = body if isinstance(body, dict) else {"message": data.strip() or "error event"}
    return json.dumps({"error": detail})


def iter_sse_data(texts: Iterable[str | bytes]) -> Iterator[str]:
    """The ``data`` payload of each event in a stream of text or byte pieces split anywhere.

    Bytes must be UTF-8 (:class:`InvalidResponseError` otherwise); a line or event longer than
    :data:`MAX_LINE` characters raises :class:`InvalidResponseError` at the cap; an
    ``event: error`` comes out as an error object.
    """
    parser = _SSEParser()
    datas = parser.datas
    for text in texts:
        parser.feed(text)
        while datas:
            yield datas.popleft()
    parser.finish()
    yield from datas


def decode_event(data: str, model: type[T], *, status_code: int = 200) -> T | None:
    """One ``data`` payload → a chunk of type ``model``; None for ``[DONE]``.

    Raises the mapped :class:`APIError` for an error object inside the stream and
    :class:`InvalidResponseError` for a payload that is not a JSON object of the expected shape.
    """
    if data.startswith(DONE) or data.strip() == DONE:
        return None
    if '"error"' not in data and '"status"' not in data:
        try:
            return model.model_validate_json(data)
        except ValidationError:
            pass  # fall through to the careful path for a precise error
    try:
        body, what = json.loads(data), "a JSON object"
    except (ValueError, RecursionError):  # RecursionError: nested deeper than json reads
        body, what = None, "JSON"
    if not isinstance(body, dict):
        # quoting keeps the whole event so that the key is masked before the text is cut.
        template = f"stream event is not {what}: {{!r}}"
        raise InvalidResponseError.quoting(template, data, status_code=status_code)
    error = body_error(status_code, body, in_stream=True)
    if error is not None:
        raise error
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
    data = answer.model_dump(exclude={"object"})
    for choice in data["choices"]:
        delta = choice["delta"] = choice.pop("message")
        if isinstance(delta["content"], list):  # content parts: a chunk's content is text
            parts = delta["content"]
            delta["content"] = "".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))
        for index, call in enumerate(delta.get("tool_calls") or ()):
            call["index"] = index
    return ChatCompletionChunk.model_validate(data)


#: Events read after ``[DONE]`` at most (normally only the end of the chunked body is left), so
#: that the connection goes back to the pool: closing a response that was not read to its end
#: drops the connection, and the next call would open a new one. A failure there changes nothing.
_DRAIN_EVENTS = 16


class _Signal(enum.Enum):
    """What :meth:`_Events.pop` gives instead of a chunk."""

    MORE = "more"  #: the events so far are used up: feed more bytes
    DONE = "done"  #: ``[DONE]``: the answer is complete
    ENDED = "ended"  #: the body ended and every event was used (without ``[DONE]``: cut off)


class _Events(_SSEParser, Generic[T]):
    """Bytes in, chunks out, with no I/O: the SSE parser and the event decoder, one chunk (or
    :class:`_Signal`) at a time. Each ``data`` payload is decoded only when it is asked for, so a
    bad event raises after the chunks before it were handed out."""

    __slots__ = ("_ended", "_items", "_model", "_status")

    def __init__(
        self, model: type[T] | None, status_code: int, items: Iterable[T | _Signal] = ()
    ) -> None:
        super().__init__()
        self._items: deque[T | _Signal] = deque(items)  # already decoded or put back
        self._model = model
        self._status = status_code
        self._ended = self._model is None

    def end(self) -> None:
        self.finish()
        self._ended = True

    def put_back(self, item: T | _Signal) -> None:
        """``item`` comes out of the next :meth:`pop` again."""
        self._items.appendleft(item)

    def pop(self) -> T | _Signal:
        """The next chunk, or what stands in its place."""
        if self._items:
            return self._items.popleft()
        if self.datas:
            assert self._model is not None
            chunk = decode_event(self.datas.popleft(), self._model, status_code=self._status)
            return _Signal.DONE if chunk is None else chunk
        return _Signal.ENDED if self._ended else _Signal.MORE


def _cut_off(status_code: int) -> IncompleteStreamError:
    return IncompleteStreamError(
        "the stream ended without [DONE]: the answer was cut off", status_code=status_code
    )


class _StreamBase(Generic[T, C]):
    """What :class:`Stream` and :class:`AsyncStream` share: their state and the errors of a read.

    The client opens a stream with ``open``, which reads the first event at once, so that a failure
    before it can still be retried; ``of_answer`` gives a whole answer (a server that ignored
    ``stream``) as a stream of its one chunk. A stream dropped unclosed is no error: the client
    gives its connection and its place at the gate back (never from a finalizer's own thread
    state: see ``modelslab_core._call``).
    """

    def __init__(
        self, response: httpx.Response, events: _Events[T], chunks: C, *, secret: str = ""
    ) -> None:
        self.response = response
        self._events = events
        self._chunks = chunks
        self._on_close: Callable[[], None] | None = None
        self._secret = secret  # masked in the errors of events (a server may echo it back)
        self._closed = False
        self._done = False

    @classmethod
    def of_answer(cls, response: httpx.Response, answer: T) -> Self:
        """``answer`` and ``[DONE]``, with no body left to read."""
        events: _Events[T] = _Events(None, response.status_code, [answer, _Signal.DONE])
        return cls(response, events, cast(C, iter(())))

    def when_closed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the stream closes."""
        self._on_close = callback

    def _failure(self, exc: BaseException) -> BaseException:
        """What a failed read raises: an :class:`APIError` with the key masked, a transport
        error as :class:`IncompleteStreamError`, anything else as it came."""
        if isinstance(exc, APIError):
            redact_error(exc, self._secret)
        if isinstance(exc, Exception) and is_transport_error(exc):
            error = IncompleteStreamError(
                f"the stream broke off: {type(exc).__name__}: {exc}",
                status_code=self.response.status_code,
            )
            error.__cause__ = exc
            return error
        return exc


class Stream(_StreamBase[T, Iterator[bytes]]):
    """An iterator of chunks over one HTTP response: it reads the body's bytes, decodes the
    events and closes the response when done, broken off by the caller, or failed."""

    @classmethod
    def open(
        cls, response: httpx.Response, model: type[T], body: Iterable[bytes], secret: str = ""
    ) -> Stream[T]:
        stream = cls(response, _Events(model, response.status_code), iter(body), secret=secret)
        stream._events.put_back(stream._pull())
        return stream

    def _pull(self) -> T | _Signal:
        events = self._events
        while True:
            item = events.pop()
            if item is not _Signal.MORE:
                return item
            piece = next(self._chunks, None)
            if piece is None:
                events.end()
            else:
                events.feed(piece)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        try:
            item = self._pull()
        except BaseException as exc:
            self.close()
            raise self._failure(exc)  # noqa: B904 (a transport error's cause is set)
        if item is _Signal.ENDED:
            self.close()
            raise _cut_off(self.response.status_code)
        if item is _Signal.DONE:
            self._done = True
            self._drain()
            self.close()
            raise StopIteration
        assert not isinstance(item, _Signal)
        return item

    def _drain(self) -> None:
        with contextlib.suppress(Exception):
            for _ in range(_DRAIN_EVENTS):
                if self._pull() is _Signal.ENDED:
                    break

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._chunks, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()
            self.response.close()
        finally:
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncStream(_StreamBase[T, AsyncIterator[bytes]]):
    """Async twin of :class:`Stream`."""

    @classmethod
    async def open(
        cls, response: httpx.Response, model: type[T], body: AsyncIterable[bytes], secret: str = ""
    ) -> AsyncStream[T]:
        stream = cls(response, _Events(model, response.status_code), aiter(body), secret=secret)
        stream._events.put_back(await stream._pull())
        return stream

    async def _pull(self) -> T | _Signal:
        events = self._events
        while True:
            item = events.pop()
            if item is not _Signal.MORE:
                return item
            piece = await anext(self._chunks, None)
            if piece is None:
                events.end()
            else:
                events.feed(piece)

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._done:
            raise StopAsyncIteration
        try:
            item = await self._pull()
        except BaseException as exc:
            await self.aclose()
            raise self._failure(exc)  # noqa: B904 (a transport error's cause is set)
        if item is _Signal.ENDED:
            await self.aclose()
            raise _cut_off(self.response.status_code)
        if item is _Signal.DONE:
            self._done = True
            await self._drain()
            await self.aclose()
            raise StopAsyncIteration
        assert not isinstance(item, _Signal)
        return item

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            for _ in range(_DRAIN_EVENTS):
                if await self._pull() is _Signal.ENDED:
                    break

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            aclose = getattr(self._chunks, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
            await self.response.aclose()
        finally:
            if self._on_close is not None:
                self._on_close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
