"""The sync and async clients are twins in behaviour, not only in names: for the same server
answer, over a real local server, each public call gives the same result or raises the same error
with the same message, streamed or not."""

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
)
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "twins-test-key-0123456789"
CHAT = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "hi"}]}
TEXT = {"model": "meta-llama-3-8B-instruct", "prompt": "hi"}


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    modelslab_server.api_key = KEY
    return modelslab_server


def _event(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


_CHUNK = {"id": "c", "choices": [{"index": 0, "delta": {"content": "he"}, "finish_reason": None}]}
_ANSWER = {
    "id": "c",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hey"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
_TEXT = {"id": "t", "choices": [{"index": 0, "text": "hey"}]}

REPLIES: dict[str, Reply] = {
    "an answer": Reply.raw(200, json.dumps(_ANSWER).encode(), "application/json"),
    "a text answer": Reply.raw(200, json.dumps(_TEXT).encode(), "application/json"),
    "a 404": Reply.raw(404, b'{"message":"Route not found"}', "application/json"),
    "an empty 400": Reply.raw(400, b"", "application/json"),
    "a failure body": Reply.raw(200, b'{"status":"failure","message":"boom"}', "application/json"),
    "a queued job": Reply.raw(200, b'{"status":"processing","id":3}', "application/json"),
    "not JSON": Reply.raw(200, b"<html>oops</html>", "text/html"),
    "a stream": Reply.raw(200, _event(_CHUNK) + b"data: [DONE]\n\n", "text/event-stream"),
    "a cut stream": Reply.raw(200, _event(_CHUNK), "text/event-stream"),
    "an error event": Reply.raw(
        200,
        _event(_CHUNK) + b'event: error\ndata: {"message":"overloaded"}\n\n',
        "text/event-stream",
    ),
    "a failure event": Reply.raw(
        200, _event({"status": "failure", "message": "boom"}), "text/event-stream"
    ),
}

CALLS = ["chat", "chat_stream", "complete", "complete_stream"]


def _outcome(value: Any) -> Any:
    if isinstance(value, list):
        return [_outcome(item) for item in value]
    return value.model_dump()


def _sync(server: LocalModelsLab, call: str) -> Any:
    text = call.startswith("complete")
    cls = ModelsLabCompletionsClient if text else ModelsLabClient
    base_url = server.completions_base_url if text else server.base_url
    client = cls(api_key=KEY, base_url=base_url, timeout=5, max_retries=0)
    method = getattr(client, call)
    try:
        if call.endswith("_stream"):
            with method(TEXT if text else CHAT) as chunks:
                return ("ok", _outcome(list(chunks)))
        return ("ok", _outcome(method(TEXT if text else CHAT)))
    except Exception as error:
        return (type(error), str(error))


def _async(server: LocalModelsLab, call: str) -> Any:
    text = call.startswith("complete")
    cls = AsyncModelsLabCompletionsClient if text else AsyncModelsLabClient
    base_url = server.completions_base_url if text else server.base_url

    async def run() -> Any:
        client = cls(api_key=KEY, base_url=base_url, timeout=5, max_retries=0)
        method = getattr(client, call)
        try:
            if call.endswith("_stream"):
                async with await method(TEXT if text else CHAT) as chunks:
                    return ("ok", _outcome([chunk async for chunk in chunks]))
            return ("ok", _outcome(await method(TEXT if text else CHAT)))
        except Exception as error:
            return (type(error), str(error))

    return asyncio.run(run())


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("reply", list(REPLIES))
def test_the_twins_give_the_same_outcome_for_the_same_answer(
    server: LocalModelsLab, call: str, reply: str
) -> None:
    server.enqueue(REPLIES[reply])
    sync = _sync(server, call)
    server.enqueue(REPLIES[reply])
    async_ = _async(server, call)
    assert server.pending_replies == 0  # both twins were answered by the scripted reply
    assert sync == async_
