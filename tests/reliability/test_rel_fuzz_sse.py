"""Property tests of the SSE path, bytes to chunks, through the real clients (``httpx``
``MockTransport``; nothing leaves the process).

- A stream split into byte pieces at arbitrary boundaries (inside a multi-byte character, between
  ``\\r`` and ``\\n``), with LF, CRLF or CR line endings, comments, ``retry:``, ``id:`` and
  ``event:`` fields and multi-line ``data:``, decodes to the same chunks as the unsplit stream,
  and those are the chunks that were sent.
- Malformed JSON, wrong shapes and streams cut anywhere produce only the project's typed errors
  (``ModelsLabError``), never a ``KeyError``, ``TypeError``, ``IndexError`` or anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from modelslab_core import (
    AsyncModelsLabClient,
    AsyncModelsLabCompletionsClient,
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    ModelsLabClient,
    ModelsLabCompletionsClient,
)
from modelslab_core import errors as e
from modelslab_core._base_client import parse_body
from modelslab_core.streaming import decode_event, iter_sse_data
from tests.reliability.strategies import CHUNK_KEYS, ERROR_FIELDS, envelopes, json_values

KEY = "fuzz-key-123"
REQUEST = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Pieces(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A response body delivered in the given pieces."""

    def __init__(self, pieces: list[bytes]) -> None:
        self._pieces = pieces

    def __iter__(self) -> Iterator[bytes]:
        yield from self._pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self._pieces:
            yield piece


def serving(pieces: list[bytes], content_type: str = "text/event-stream", status: int = 200):  # type: ignore[no-untyped-def]
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"content-type": content_type}, stream=Pieces(pieces))

    return httpx.MockTransport(handler)


def sync_chunks(pieces: list[bytes], *, completions: bool = False) -> list[Any]:
    with httpx.Client(transport=serving(pieces)) as http:
        if completions:
            client: ModelsLabClient = ModelsLabCompletionsClient(
                api_key=KEY, base_url="http://fuzz.invalid/api/v6", http_client=http, max_retries=0
            )
            with client.complete_stream({"model": "m", "prompt": "hi"}) as stream:
                return list(stream)
        client = ModelsLabClient(
            api_key=KEY, base_url="http://fuzz.invalid/api/v7/llm", http_client=http, max_retries=0
        )
        with client.chat_stream(REQUEST) as stream:
            return list(stream)


def async_chunks(pieces: list[bytes], *, completions: bool = False) -> list[Any]:
    async def run() -> list[Any]:
        async with httpx.AsyncClient(transport=serving(pieces)) as http:
            if completions:
                client: AsyncModelsLabClient = AsyncModelsLabCompletionsClient(
                    api_key=KEY,
                    base_url="http://fuzz.invalid/api/v6",
                    http_client=http,
                    max_retries=0,
                )
                async with await client.complete_stream({"model": "m", "prompt": "hi"}) as s:
                    return [c async for c in s]
            client = AsyncModelsLabClient(
                api_key=KEY,
                base_url="http://fuzz.invalid/api/v7/llm",
                http_client=http,
                max_retries=0,
            )
            async with await client.chat_stream(REQUEST) as stream:
                return [c async for c in stream]

    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(run())


# ----------------------------------------------------------------------------- strategies

# Text of every kind: multi-byte characters, newlines, quotes, escapes, NUL.
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
words = st.text("abcdefghij _-.:", min_size=1, max_size=12)


@st.composite
def chat_chunks(draw: st.DrawFn) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    if draw(st.booleans()):
        delta["content"] = draw(texts)
    if draw(st.booleans()):
        delta["reasoning_content"] = draw(texts)
    if draw(st.integers(0, 3)) == 0:
        fragment: dict[str, Any] = {"index": draw(st.integers(0, 2))}
        if draw(st.booleans()):
            fragment["id"] = draw(words)
            fragment["type"] = "function"
        fragment["function"] = {"arguments": draw(texts)}
        if draw(st.booleans()):
            fragment["function"]["name"] = draw(words)
        delta["tool_calls"] = [fragment]
    chunk: dict[str, Any] = {
        "id": "gen-" + draw(words),
        "object": "chat.completion.chunk",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(words),
        "choices": [
            {
                "index": 0,
                "delta": delta,
                "finish_reason": draw(st.sampled_from([None, "stop", "length", "tool_calls"])),
            }
        ],
    }
    if draw(st.integers(0, 4)) == 0:
        chunk["choices"] = []
        n = draw(st.integers(0, 10**6))
        chunk["usage"] = {"prompt_tokens": n, "completion_tokens": 1, "total_tokens": n + 1}
    return chunk


@st.composite
def text_chunks(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "id": "cmpl-" + draw(words),
        "object": "text_completion",
        "created": draw(st.integers(0, 2**31)),
        "model": draw(words),
        "choices": [
            {
                "index": 0,
                "text": draw(texts),
                "finish_reason": draw(st.sampled_from([None, "stop", "length"])),
                "stop_reason": None,
            }
        ],
    }


@st.composite
def sse_stream(draw: st.DrawFn, chunk: st.SearchStrategy[dict[str, Any]]) -> tuple[bytes, list]:  # type: ignore[type-arg]
    """(the stream's bytes, the chunks it carries). One line ending per event: a CR ending
    followed by an LF-started line would read as one CRLF, which is the spec, not a split."""
    payloads = draw(st.lists(chunk, max_size=6))
    events: list[str] = []
    for payload in payloads:
        eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        lines: list[str] = []
        for _ in range(draw(st.integers(0, 2))):  # fields before the data
            lines.append(
                draw(
                    st.sampled_from(
                        [
                            ": keep-alive",
                            ": OPENROUTER PROCESSING",
                            ":",
                            "retry: 3000",
                            "retry: soon",  # an invalid retry is ignored
                            "id: 42",
                            "event: completion",
                            "unknown-field: x",
                        ]
                    )
                )
            )
        text = json.dumps(
            payload, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from([None, None, 1]))
        )
        # Multi-line JSON becomes several data lines, joined again with "\n" by the decoder.
        space = draw(st.sampled_from(["data: ", "data:"]))
        lines.extend(f"{space}{line}" for line in text.split("\n"))
        if draw(st.booleans()):
            lines.append(": after the data")
        events.append(eol.join(lines) + eol + eol)
        if draw(st.integers(0, 3)) == 0:
            events.append(": keep-alive" + eol + eol)  # a comment-only event
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    events.append("data: [DONE]" + eol + eol)
    return "".join(events).encode("utf-8"), payloads


@st.composite
def split(draw: st.DrawFn, data: bytes) -> list[bytes]:
    if not data:
        return [data]
    cuts = sorted(draw(st.sets(st.integers(1, max(len(data) - 1, 1)), max_size=40)))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def dumped(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c.model_dump(exclude_none=True) for c in chunks]


def expected(payloads: list[dict[str, Any]], model: type[Any]) -> list[dict[str, Any]]:
    return [model.model_validate(p).model_dump(exclude_none=True) for p in payloads]


# ----------------------------------------------------------------------------- split streams


@FUZZ
@given(st.data())
def test_chat_stream_split_anywhere_decodes_to_the_same_chunks(data: st.DataObject) -> None:
    stream, payloads = data.draw(sse_stream(chat_chunks()))
    pieces = data.draw(split(stream))
    whole = dumped(sync_chunks([stream]))
    assert whole == expected(payloads, ChatCompletionChunk)
    assert dumped(sync_chunks(pieces)) == whole
    assert dumped(async_chunks(pieces)) == whole


@FUZZ
@given(st.data())
def test_text_stream_split_anywhere_decodes_to_the_same_chunks(data: st.DataObject) -> None:
    stream, payloads = data.draw(sse_stream(text_chunks()))
    pieces = data.draw(split(stream))
    whole = dumped(sync_chunks([stream], completions=True))
    assert whole == expected(payloads, Completion)
    assert dumped(sync_chunks(pieces, completions=True)) == whole
    assert dumped(async_chunks(pieces, completions=True)) == whole


@FUZZ
@given(st.data())
def test_sse_text_decoder_split_anywhere(data: st.DataObject) -> None:
    """The pure decoder, on text split between any two characters (CR and LF included)."""
    stream, payloads = data.draw(sse_stream(chat_chunks()))
    text = stream.decode("utf-8")
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=40)))
    edges = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(edges)]
    datas = list(iter_sse_data(pieces))
    assert datas == list(iter_sse_data([text]))
    assert [json.loads(d) for d in datas[:-1]] == payloads
    assert datas[-1] == "[DONE]"


# ----------------------------------------------------------------------------- malformed input

TYPED = e.ModelsLabError

# CHUNK_KEYS, WORDS, json_values, ERROR_FIELDS and envelopes: tests/reliability/strategies.py


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A valid payload with one subtree replaced by arbitrary JSON (to reach deep shapes)."""
    value: Any = draw(base)
    holder: Any = None
    key: Any = None
    node = value
    for _ in range(draw(st.integers(0, 5))):
        if isinstance(node, dict) and node:
            key = draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = draw(st.integers(0, len(node) - 1))
        else:
            break
        holder, node = node, node[key]
    replacement = draw(
        json_values | envelopes | st.dictionaries(st.sampled_from(CHUNK_KEYS), json_values)
    )
    if holder is None:
        return replacement
    holder[key] = replacement
    return value


def payload_texts() -> st.SearchStrategy[str]:
    return st.one_of(
        texts,  # not JSON at all, mostly
        json_values.map(json.dumps),
        envelopes.map(json.dumps),
        mutated(chat_chunks()).map(json.dumps),
        mutated(text_chunks()).map(json.dumps),
        mutated(chat_chunks()).map(lambda v: json.dumps(v)[: len(json.dumps(v)) // 2]),
    )


@FUZZ
@given(payload_texts(), st.sampled_from([ChatCompletionChunk, Completion]))
def test_decode_event_raises_only_typed_errors(data: str, model: type[Any]) -> None:
    with contextlib.suppress(TYPED):
        decode_event(data, model)


@FUZZ
@given(envelopes, st.sampled_from([200, 400, 401, 402, 429, 500, 502]))
def test_error_envelopes_raise_only_typed_errors(body: dict[str, Any], status: int) -> None:
    """Every documented error shape, with any field missing or of any type: in a stream event
    and as a whole answer."""
    for model in (ChatCompletionChunk, Completion):
        with contextlib.suppress(TYPED):
            decode_event(json.dumps(body), model, status_code=status)
    for whole in (ChatCompletion, Completion):
        with contextlib.suppress(TYPED):
            parse_body(status, httpx.Headers(), json.dumps(body).encode(), whole, KEY)


@FUZZ
@given(
    st.sampled_from([200, 201, 400, 401, 402, 403, 404, 408, 409, 422, 429, 500, 502, 503, 599]),
    st.one_of(
        payload_texts().map(str.encode),
        mutated(chat_chunks()).map(lambda v: json.dumps({"choices": [v]}).encode()),
        st.binary(max_size=60),
    ),
    st.sampled_from([None, "3", "Wed, 21 Oct 2015 07:28:00 GMT", "soon", "-1", "1e400"]),
    st.sampled_from([ChatCompletion, Completion]),
)
def test_whole_answers_raise_only_typed_errors(
    status: int, content: bytes, retry_after: str | None, model: type[Any]
) -> None:
    headers = httpx.Headers({"retry-after": retry_after} if retry_after else {})
    try:
        parse_body(status, headers, content, model, KEY)
    except TYPED as error:
        assert KEY not in str(error)


@FUZZ
@given(st.data())
def test_streams_cut_or_corrupted_raise_only_typed_errors(data: st.DataObject) -> None:
    stream, _ = data.draw(sse_stream(chat_chunks()))
    how = data.draw(st.sampled_from(["cut", "garbage", "bad event"]))
    if how == "cut":
        stream = stream[: data.draw(st.integers(0, len(stream)))]
    elif how == "garbage":
        at = data.draw(st.integers(0, len(stream)))
        stream = stream[:at] + data.draw(st.binary(min_size=1, max_size=40)) + stream[at:]
    else:
        event = "data: " + data.draw(payload_texts()).replace("\r", "").replace("\n", " ")
        at = stream.rfind(b"data: [DONE]")
        stream = stream[:at] + event.encode() + b"\n\n" + stream[at:]
    pieces = data.draw(split(stream))
    for read in (sync_chunks, async_chunks):
        with contextlib.suppress(TYPED):
            read(pieces)


@FUZZ
@given(mutated(chat_chunks()), st.booleans())
def test_a_json_body_answering_a_stream_raises_only_typed_errors(body: Any, ok: bool) -> None:
    """A server that answers a stream request with one JSON body (an error, or an answer)."""
    content = json.dumps({"choices": [body]} if ok else body).encode()
    transport = serving([content], content_type="application/json")
    with httpx.Client(transport=transport) as http:
        client = ModelsLabClient(
            api_key=KEY, base_url="http://fuzz.invalid/api/v7/llm", http_client=http, max_retries=0
        )
        try:
            with client.chat_stream(REQUEST) as stream:
                list(stream)
        except TYPED:
            pass


@pytest.mark.parametrize(
    "stream",
    [
        b'data: {"choices": [{"delta": {"content": "cut',  # cut inside an event
        b'data: {"choices": []}\n\n',  # no [DONE]
        b": keep-alive\n\n",  # nothing at all
        b"",
    ],
)
def test_known_cuts_are_incomplete_stream_errors(stream: bytes) -> None:
    for read in (sync_chunks, async_chunks):
        with pytest.raises((e.IncompleteStreamError, e.InvalidResponseError)):
            read([stream])


# ----------------------------------------------------------------------------- hostile servers
# A byte-order mark, invalid UTF-8, error bodies and events of every shape, usage chunks
# with "choices": null, echoed keys and Retry-After values of every kind.


@FUZZ
@given(st.data())
def test_a_leading_byte_order_mark_changes_nothing(data: st.DataObject) -> None:
    stream, payloads = data.draw(sse_stream(chat_chunks()))
    pieces = data.draw(split(b"\xef\xbb\xbf" + stream))
    assert dumped(sync_chunks(pieces)) == expected(payloads, ChatCompletionChunk)
    assert dumped(async_chunks(pieces)) == expected(payloads, ChatCompletionChunk)


# Bytes that never start a valid UTF-8 sequence where they stand: invalid everywhere.
INVALID_UTF8 = st.sampled_from([b"\xff", b"\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88"])


@FUZZ
@given(st.data())
def test_invalid_utf8_anywhere_before_done_is_a_typed_error(data: st.DataObject) -> None:
    stream, _ = data.draw(sse_stream(chat_chunks()))
    done = stream.rfind(b"data: [DONE]")
    at = data.draw(st.integers(0, done))
    corrupt = stream[:at] + data.draw(INVALID_UTF8) + stream[at:]
    pieces = data.draw(split(corrupt))
    for read in (sync_chunks, async_chunks):
        try:
            read(pieces)
        except e.InvalidResponseError as error:
            assert "not valid UTF-8" in str(error)
        else:
            raise AssertionError("invalid UTF-8 was decoded as an answer")


error_event_data = st.one_of(
    texts.map(lambda t: t.replace("\r", " ").replace("\n", " ")),
    envelopes.map(json.dumps),
    st.dictionaries(st.sampled_from(ERROR_FIELDS), json_values, max_size=3).map(json.dumps),
)


@FUZZ
@given(st.data(), error_event_data)
def test_an_error_event_of_any_shape_raises_a_typed_error_never_cut_off(
    data: st.DataObject, payload: str
) -> None:
    stream, _ = data.draw(sse_stream(chat_chunks()))
    at = stream.rfind(b"data: [DONE]")
    event = f"event: error\ndata: {payload}\n\n".encode()
    pieces = data.draw(split(stream[:at] + event + stream[at:]))
    for read in (sync_chunks, async_chunks):
        try:
            read(pieces)
        except e.IncompleteStreamError as error:
            raise AssertionError(f"an error event read as a cut stream: {error}") from error
        except e.APIError:
            pass
        else:
            raise AssertionError("an error event was passed over")


def body_error(body: dict[str, Any]) -> e.APIError | None:
    try:
        parse_body(200, httpx.Headers(), json.dumps(body).encode(), ChatCompletion, KEY)
    except e.APIError as error:
        return error
    return None


@FUZZ
@given(envelopes, st.data())
def test_a_json_error_body_sent_as_an_event_stream_maps_like_a_body(
    body: dict[str, Any], data: st.DataObject
) -> None:
    expected_error = body_error(body)
    assume(expected_error is not None and e.error_from_body(200, body) is not None)
    assert expected_error is not None
    raw = json.dumps(body, indent=data.draw(st.sampled_from([None, 2]))).encode()
    pieces = data.draw(split(raw))
    for read in (sync_chunks, async_chunks):
        try:
            read(pieces)
        except e.APIError as error:
            assert type(error) is type(expected_error)
            assert error.message == expected_error.message
        else:
            raise AssertionError("an error body was taken for a stream")


@FUZZ
@given(st.data(), st.sampled_from([None, [], "absent"]))
def test_a_usage_chunk_without_choices_keeps_every_chunk(data: st.DataObject, empty: Any) -> None:
    stream, payloads = data.draw(sse_stream(chat_chunks()))
    usage = {"id": "u", "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    if empty != "absent":
        usage["choices"] = empty
    at = stream.rfind(b"data: [DONE]")
    pieces = data.draw(split(stream[:at] + f"data: {json.dumps(usage)}\n\n".encode() + stream[at:]))
    chunks = dumped(sync_chunks(pieces))
    assert chunks[:-1] == expected(payloads, ChatCompletionChunk)
    assert chunks[-1]["usage"]["total_tokens"] == 3 and chunks[-1]["choices"] == []
    assert dumped(async_chunks(pieces)) == chunks


def key_fragments(text: str, key: str) -> list[str]:
    return [key[i : i + 6] for i in range(len(key) - 5) if key[i : i + 6] in text]


@FUZZ
@given(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=12, max_size=40),
    st.integers(0, 420),
    st.integers(1, 3),
    st.sampled_from([b"", b"{", b"[1,"]),
)
def test_an_echoed_key_never_shows_in_part(key: str, at: int, copies: int, head: bytes) -> None:
    """Mask first, then cut: wherever the key stands in the quoted text, however often."""
    echo = head + b"x" * at + (key.encode() + b" ") * copies
    try:
        decode_event(echo.decode(), ChatCompletionChunk)
    except e.APIError as error:
        e.redact_error(error, key)
        assert not key_fragments(str(error) + error.message, key)
    try:
        parse_body(200, httpx.Headers(), echo, ChatCompletion, key)
    except e.APIError as error:
        assert not key_fragments(str(error) + error.message, key)
    error = e.error_from_response(502, echo, secret=key)
    assert not key_fragments(str(error) + error.message, key)


retry_after_texts = st.one_of(
    texts,
    st.sampled_from(["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e400", "-1", "0", "1_0",
                     "0x1f", "3600", " 2.5 ", "Wed, 21 Oct 2015 07:28:00 GMT",
                     "Wed, 21 Oct 2099 07:28:00 GMT", "Mon, 99 Foo 9999 99:99:99 GMT"]),
    st.floats().map(str),
    st.integers(-(10**30), 10**30).map(str),
)  # fmt: skip


@FUZZ
@given(retry_after_texts, st.one_of(json_values, retry_after_texts, st.floats()))
def test_every_retry_after_value_has_a_defined_outcome(header: str, field: Any) -> None:
    """None (no hint) or a wait that is not NaN and not negative; the policy then retries only
    within its cap and always waits a finite time."""
    from modelslab_core.retry import RetryPolicy, parse_retry_after

    seconds = parse_retry_after(header)
    assert seconds is None or (seconds == seconds and seconds >= 0)
    body = {"status": "error", "message": "Rate limit exceeded", "retry_after": field}
    error = e.error_from_body(429, body, retry_after_header=seconds)
    assert isinstance(error, e.RateLimitError)
    hint = error.retry_after
    assert hint is None or (hint == hint and hint >= 0)
    policy = RetryPolicy(max_retries=3)
    retried = policy.should_retry(error, 0)
    assert retried == (hint is None or hint <= policy.max_retry_after)
    delay = policy.delay(error, 0)
    assert 0 <= delay < float("inf")
    if retried and hint is not None:
        assert delay >= hint  # never earlier than the server asked
