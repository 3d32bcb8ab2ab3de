"""One classification of a ModelsLab body (error report / queued job / answer), whether it comes
as a whole answer or as an event of a stream, over a real local server: the same body gives the
same outcome streamed or not, and a status error names the method and URL that were called."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from modelslab_core import (
    AsyncModelsLabClient,
    AsyncModelsLabCompletionsClient,
    ModelsLabClient,
    ModelsLabCompletionsClient,
    StreamAccumulator,
)
from modelslab_core import errors as e
from modelslab_core.streaming import decode_event, iter_sse_data
from modelslab_core.testing import LocalModelsLab, Reply
from modelslab_core.types import ChatCompletionChunk

KEY = "classify-test-key-0123456789"
CHAT = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "hi"}]}
TEXT = {"model": "meta-llama-3-8B-instruct", "prompt": "hi"}
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    modelslab_server.api_key = KEY
    return modelslab_server


def _client(server: LocalModelsLab, mode: str, kind: str) -> Any:
    cls = {
        ("sync", "chat"): ModelsLabClient,
        ("async", "chat"): AsyncModelsLabClient,
        ("sync", "text"): ModelsLabCompletionsClient,
        ("async", "text"): AsyncModelsLabCompletionsClient,
    }[mode, kind]
    base_url = server.base_url if kind == "chat" else server.completions_base_url
    return cls(api_key=KEY, base_url=base_url, timeout=5, max_retries=0)


def whole(server: LocalModelsLab, mode: str, kind: str) -> Any:
    """The non-streamed answer (or the error raised)."""
    client = _client(server, mode, kind)
    call = client.chat if kind == "chat" else client.complete
    request = CHAT if kind == "chat" else TEXT
    if mode == "sync":
        return call(request)
    return asyncio.run(call(request))


def streamed(server: LocalModelsLab, mode: str, kind: str) -> list[Any]:
    """The streamed chunks (or the error raised)."""
    client = _client(server, mode, kind)
    request = CHAT if kind == "chat" else TEXT
    if mode == "sync":
        call = client.chat_stream if kind == "chat" else client.complete_stream
        with call(request) as stream:
            return list(stream)

    async def run() -> list[Any]:
        call = client.chat_stream if kind == "chat" else client.complete_stream
        async with await call(request) as stream:
            return [chunk async for chunk in stream]

    return asyncio.run(run())


# --- the one classification ------------------------------------------------------------------

FAILURES = [
    {"status": "failure", "message": "boom"},
    {"status": "failed", "message": "boom"},
    {"status": "error", "message": "boom"},
    {"error": "boom"},
    {"error": {"message": "boom"}},
]


@pytest.mark.parametrize("body", FAILURES)
def test_every_error_status_is_an_error_as_a_body_and_as_an_event(body: dict[str, Any]) -> None:
    """Every error status (``"failure"`` included) is an error as a body and as an event, never
    an empty chunk in a stream."""
    assert e.body_kind(body) == "error"
    assert isinstance(e.error_from_body(200, body), e.BadRequestError)
    with pytest.raises(e.StreamError, match="boom"):
        decode_event(json.dumps(body), ChatCompletionChunk)
    (data,) = iter_sse_data([b"event: error\ndata: " + json.dumps(body).encode() + b"\n\n"])
    with pytest.raises(e.StreamError, match="boom"):
        decode_event(data, ChatCompletionChunk)


@pytest.mark.parametrize("status", ["processing", "queued", "PENDING"])
def test_a_queued_job_in_a_stream_is_no_empty_chunk(status: str) -> None:
    body = json.dumps({"status": status, "id": 7})
    with pytest.raises(e.ProcessingResponseError, match="queued"):
        decode_event(body, ChatCompletionChunk)


def test_a_null_error_field_is_an_answer_as_a_body_and_as_an_event() -> None:
    body = {"id": "c", "choices": [], "error": None, "status": "success"}
    assert e.body_kind(body) == "answer"
    assert e.error_from_body(200, body) is None
    assert decode_event(json.dumps(body), ChatCompletionChunk) is not None


@MODES
@pytest.mark.parametrize("body", FAILURES[:2])
def test_a_failure_event_ends_a_stream_with_an_error(
    server: LocalModelsLab, mode: str, body: dict[str, Any]
) -> None:
    server.enqueue(
        Reply.raw(200, b"data: " + json.dumps(body).encode() + b"\n\n", "text/event-stream")
    )
    with pytest.raises(e.StreamError, match="boom"):
        streamed(server, mode, "chat")


# --- the same body streamed or not -----------------------------------------------------------

CHAT_ANSWER = {
    "id": "c1",
    "object": "chat.completion",
    "created": 1,
    "model": "meta-llama-3-8B-instruct",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there"},
         "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}  # fmt: skip
TEXT_ANSWER = {
    "id": "t1",
    "object": "text_completion",
    "created": 1,
    "model": "meta-llama-3-8B-instruct",
    "choices": [{"index": 0, "text": "Hello there", "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}


@MODES
def test_a_chat_answer_streamed_accumulates_to_the_answer_not_streamed(
    server: LocalModelsLab, mode: str
) -> None:
    server.enqueue(Reply.raw(200, json.dumps(CHAT_ANSWER).encode(), "application/json"))
    answer = whole(server, mode, "chat")
    server.enqueue(Reply.raw(200, json.dumps(CHAT_ANSWER).encode(), "application/json"))
    accumulator = StreamAccumulator()
    for chunk in streamed(server, mode, "chat"):
        accumulator.add(chunk)
    merged = accumulator.completion()
    assert merged.choices[0].message.content == answer.choices[0].message.content == "Hello there"
    assert merged.choices[0].finish_reason == answer.choices[0].finish_reason
    assert merged.usage == answer.usage


@MODES
def test_a_text_completion_streamed_equals_the_completion_not_streamed(
    server: LocalModelsLab, mode: str
) -> None:
    server.enqueue(Reply.raw(200, json.dumps(TEXT_ANSWER).encode(), "application/json"))
    answer = whole(server, mode, "text")
    server.enqueue(Reply.raw(200, json.dumps(TEXT_ANSWER).encode(), "application/json"))
    (chunk,) = streamed(server, mode, "text")
    assert "".join(c.text for c in chunk.choices) == "".join(c.text for c in answer.choices)
    assert chunk.usage == answer.usage


ERROR_BODIES = [
    *FAILURES,
    {"status": "error", "message": "Invalid Api Key"},
    {"status": "error", "messege": "No credits left"},
    {"status": "error", "message": "Rate limit exceeded"},
    {"status": "processing", "id": 9, "eta": 3},
]


@MODES
@pytest.mark.parametrize("kind", ["chat", "text"])
@pytest.mark.parametrize("content_type", ["application/json", "text/event-stream"])
@pytest.mark.parametrize("body", ERROR_BODIES)
def test_an_error_body_raises_the_same_error_streamed_or_not(
    server: LocalModelsLab, mode: str, kind: str, content_type: str, body: dict[str, Any]
) -> None:
    raw = json.dumps(body).encode()
    server.enqueue(Reply.raw(200, raw, "application/json"))
    with pytest.raises(e.APIError) as not_streamed:
        whole(server, mode, kind)
    server.enqueue(Reply.raw(200, raw, content_type))
    with pytest.raises(e.APIError) as as_stream:
        streamed(server, mode, kind)
    assert type(as_stream.value) is type(not_streamed.value)
    assert as_stream.value.message == not_streamed.value.message


# --- status errors name what was called ------------------------------------------------------


@MODES
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"message":"Route not found"}', "Route not found"),
        (b"", "the server gave no error message"),
    ],
)
def test_a_status_error_names_the_method_and_url(
    server: LocalModelsLab, mode: str, body: bytes, message: str
) -> None:
    server.enqueue(Reply.raw(404, body, "application/json"))
    with pytest.raises(e.NotFoundError) as caught:
        whole(server, mode, "chat")
    url = f"{server.base_url}/chat/completions"
    assert str(caught.value) == f"{message} (HTTP 404 from POST {url})"
    assert caught.value.endpoint == f"POST {url}"
    assert KEY not in str(caught.value)


def test_an_endpoint_holding_the_key_is_masked() -> None:
    error = e.error_from_response(404, b"", endpoint=f"GET https://h/v1?k={KEY}")
    e.redact_error(error, KEY)
    assert KEY not in str(error) and KEY not in repr(error.endpoint)
    assert "GET https://h/v1?k=***" in str(error)
