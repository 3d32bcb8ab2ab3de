"""Hostile streams, over real sockets: each ends in the answer it spells or in a typed
error that says what happened, never in a silently changed answer or an untyped failure.

- a usage chunk with ``"choices": null`` keeps the answer;
- a JSON error body labelled ``text/event-stream``, and an ``event: error`` without an ``error``
  key, raise the error the body names (not ``IncompleteStreamError``);
- invalid UTF-8 raises ``InvalidResponseError`` (not U+FFFD in the answer);
- a byte-order mark before the first event is dropped, the event kept;
- a line (or event) longer than ``MAX_LINE`` raises ``InvalidResponseError`` at the cap.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from modelslab_core import (
    AsyncModelsLabClient,
    ChatCompletionChunk,
    ModelsLabClient,
    StreamAccumulator,
    streaming,
)
from modelslab_core import errors as e
from modelslab_core.streaming import iter_sse_data
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "stream-test-key"
REQUEST = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    """The plugin's session server, reset for this test, checking this suite's key."""
    modelslab_server.api_key = KEY
    return modelslab_server


def event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def delta(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


DONE = b"data: [DONE]\n\n"
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def sse_reply(body: bytes, status: int = 200) -> Reply:
    return Reply.raw(status, body, "text/event-stream")


def sync_stream(server: LocalModelsLab, **kwargs: Any) -> list[ChatCompletionChunk]:
    kwargs.setdefault("max_retries", 0)
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, timeout=5, **kwargs)
    with client.chat_stream(REQUEST) as stream:
        return list(stream)


def async_stream(server: LocalModelsLab, **kwargs: Any) -> list[ChatCompletionChunk]:
    kwargs.setdefault("max_retries", 0)

    async def run() -> list[ChatCompletionChunk]:
        client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, timeout=5, **kwargs)
        async with await client.chat_stream(REQUEST) as stream:
            return [chunk async for chunk in stream]

    return asyncio.run(run())


READ = {"sync": sync_stream, "async": async_stream}
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def merged(chunks: list[ChatCompletionChunk]) -> tuple[str, Any]:
    accumulator = StreamAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
    answer = accumulator.completion()
    return answer.choices[0].message.content or "", answer.usage


# --- "choices": null ----------------------------------------------------------------------------


@MODES
def test_a_usage_chunk_with_null_choices_keeps_the_answer(
    server: LocalModelsLab, mode: str
) -> None:
    body = (
        event(delta("Hello"))
        + event(delta(" world", "stop"))
        + event({"id": "c1", "choices": None, "usage": USAGE})
        + DONE
    )
    server.enqueue(sse_reply(body))
    text, usage = merged(READ[mode](server))
    assert text == "Hello world"
    assert usage is not None and usage.total_tokens == 5


# --- error bodies inside an event stream --------------------------------------------------------


@MODES
@pytest.mark.parametrize(
    ("body", "cls", "message"),
    [
        ({"status": "error", "message": "Invalid Api Key"}, e.AuthenticationError, "Invalid Api"),
        ({"status": "error", "messege": "No credits"}, e.InsufficientCreditsError, "credits"),
        ({"status": "error", "message": "model is required"}, e.BadRequestError, "model"),
        ({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                    "code": "invalid_api_key"}}, e.AuthenticationError, "Incorrect API key"),
    ],
)  # fmt: skip
def test_a_json_error_body_labelled_event_stream_is_mapped_like_a_body(
    server: LocalModelsLab, mode: str, body: dict[str, Any], cls: type, message: str
) -> None:
    """The error the body reports (an authentication failure, say), not ``IncompleteStreamError``
    ("cut off"), which would read as a network fault."""
    server.enqueue(sse_reply(json.dumps(body).encode()))
    with pytest.raises(cls, match=message) as caught:
        READ[mode](server)
    assert not isinstance(caught.value, e.IncompleteStreamError)
    assert caught.value.status_code == 200


@MODES
def test_a_pretty_printed_error_body_is_mapped_too(server: LocalModelsLab, mode: str) -> None:
    body = json.dumps({"status": "error", "message": "Invalid Api Key"}, indent=2).encode()
    server.enqueue(sse_reply(body + b"\n"))
    with pytest.raises(e.AuthenticationError, match="Invalid Api Key"):
        READ[mode](server)


@MODES
def test_a_rate_limit_body_in_an_event_stream_is_retried(server: LocalModelsLab, mode: str) -> None:
    limited = {"status": "error", "message": "Rate limit exceeded", "retry_after": 0}
    server.enqueue(sse_reply(json.dumps(limited).encode()), Reply.text("second try"))
    text, _ = merged(READ[mode](server, max_retries=1))
    assert text == "second try"
    assert server.request_count == 2


@MODES
def test_a_processing_body_in_an_event_stream_is_not_an_answer(
    server: LocalModelsLab, mode: str
) -> None:
    server.enqueue(sse_reply(b'{"status": "processing", "id": 7, "eta": 10}'))
    with pytest.raises(e.ProcessingResponseError):
        READ[mode](server)


@MODES
def test_a_stream_that_is_cut_still_reads_as_cut(server: LocalModelsLab, mode: str) -> None:
    server.enqueue(sse_reply(event(delta("Hel"))))
    with pytest.raises(e.IncompleteStreamError):
        READ[mode](server)


@MODES
@pytest.mark.parametrize(
    ("data", "cls", "message"),
    [
        (json.dumps({"message": "Invalid Api Key"}), e.AuthenticationError, "Invalid Api Key"),
        (json.dumps({"message": "Rate limit exceeded"}), e.RateLimitError, "Rate limit"),
        (json.dumps({"detail": "upstream overloaded"}), e.StreamError, "upstream overloaded"),
        ("upstream provider went away", e.StreamError, "upstream provider went away"),
        ("", e.StreamError, "error event"),
    ],
)
@pytest.mark.parametrize("after", [0, 1])
def test_an_error_event_without_an_error_key_is_mapped(
    server: LocalModelsLab, mode: str, data: str, cls: type, message: str, after: int
) -> None:
    """``event: error`` whose data has no ``error`` key raises the error its data reports, before
    or after a chunk: it is not read as a chunk, nor the stream reported as cut off."""
    body = event(delta("Hel")) * after + f"event: error\ndata: {data}\n\n".encode() + DONE
    server.enqueue(sse_reply(body))
    with pytest.raises(cls, match=message) as caught:
        READ[mode](server)
    assert not isinstance(caught.value, e.IncompleteStreamError)


def test_error_event_data_is_mapped_like_a_body_pure() -> None:
    stream = 'event: error\ndata: {"message": "Invalid Api Key"}\n\n'
    (data,) = iter_sse_data([stream])
    with pytest.raises(e.AuthenticationError):
        streaming.decode_event(data, ChatCompletionChunk)


# --- encoding -----------------------------------------------------------------------------------


@MODES
@pytest.mark.parametrize(
    "bad",
    [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xe2\x82"],
    ids=["ff", "c3", "surrogate", "cut"],
)
def test_invalid_utf8_is_a_typed_error_not_a_replacement(
    server: LocalModelsLab, mode: str, bad: bytes
) -> None:
    body = event(delta("caf")) + b'data: {"choices": [{"delta": {"content": "' + bad
    body += b'"}}]}\n\n' + DONE
    server.enqueue(sse_reply(body))
    with pytest.raises(e.InvalidResponseError, match="not valid UTF-8"):
        READ[mode](server)


def test_utf8_split_inside_a_character_across_pieces_is_fine() -> None:
    event_text = json.dumps({"content": "café ☕"}, ensure_ascii=False)
    payload = f"data: {event_text}\n\ndata: [DONE]\n\n"
    raw = payload.encode()
    pieces = [raw[i : i + 1] for i in range(len(raw))]
    assert list(iter_sse_data(pieces)) == list(iter_sse_data([payload]))


@pytest.mark.parametrize(
    ("pieces", "message"),
    [
        ([b"data: ok\n\ndat", b"a: \xff\n\n"], "0xff at offset 16"),
        # A character's first bytes held back from one piece count from where they stood.
        ([b"data: ok\n\ndata: a\xe2\x82", b"(\n\n"], "0xe2 at offset 17"),
    ],
)
def test_invalid_utf8_names_its_offset(pieces: list[bytes], message: str) -> None:
    with pytest.raises(e.InvalidResponseError, match=message):
        list(iter_sse_data(pieces))


@MODES
@pytest.mark.parametrize("crlf", [False, True])
def test_a_byte_order_mark_before_the_first_event_is_dropped(
    server: LocalModelsLab, mode: str, crlf: bool
) -> None:
    body = event(delta("Hello")) + event(delta("!", "stop")) + DONE
    if crlf:
        body = body.replace(b"\n", b"\r\n")
    server.enqueue(sse_reply(b"\xef\xbb\xbf" + body))
    text, _ = merged(READ[mode](server))
    assert text == "Hello!"  # the first event is kept, not read as a "\ufeffdata" field


def test_only_a_leading_byte_order_mark_is_dropped() -> None:
    inner = "data: " + json.dumps({"content": "\ufeffkept"}) + "\n\n"
    assert list(iter_sse_data(["\ufeff", inner])) == [json.dumps({"content": "\ufeffkept"})]
    assert list(iter_sse_data([b"\xef", b"\xbb\xbfdata: x\n\n"])) == ["x"]


# --- the line cap -------------------------------------------------------------------------------


def test_a_line_longer_than_the_cap_raises_at_the_cap() -> None:
    """An endless line does not grow memory without bound: the parser stops at 16 MiB."""
    piece = b"x" * (1024 * 1024)
    fed = 0

    def endless() -> Iterator[bytes]:
        nonlocal fed
        yield b"data: "
        while fed < 64:
            fed += 1
            yield piece

    with pytest.raises(e.InvalidResponseError, match="16 MiB"):
        list(iter_sse_data(endless()))
    assert fed == 16  # stopped at the cap ("data: " and 16 MiB), not at the end of the line


def test_many_data_lines_of_one_event_count_against_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(streaming, "MAX_LINE", 1000)
    with pytest.raises(e.InvalidResponseError, match="without ending"):
        list(iter_sse_data(["data: " + "y" * 50 + "\n"] * 40))
    # Events below the cap, however many, are fine: the count starts again at each event.
    many = ("data: " + "y" * 50 + "\n\n") * 40 + "data: [DONE]\n\n"
    assert len(list(iter_sse_data([many]))) == 41


@MODES
def test_a_line_above_the_cap_over_a_socket_is_a_typed_error(
    server: LocalModelsLab, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streaming, "MAX_LINE", 64 * 1024)
    server.enqueue(sse_reply(event(delta("Hi")) + b"data: " + b"z" * (1024 * 1024)))
    with pytest.raises(e.InvalidResponseError, match="without ending"):
        READ[mode](server)
