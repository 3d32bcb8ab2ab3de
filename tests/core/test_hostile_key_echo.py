"""A server that echoes the key into text an error quotes: the key is masked before the text is
cut, so no part of it survives (a cut key's head, 20 of its 25 characters, would no longer match
the mask)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from modelslab_core import AsyncModelsLabClient, ChatCompletion, ModelsLabClient
from modelslab_core import errors as e
from modelslab_core._base_client import parse_body
from modelslab_core.streaming import decode_event
from modelslab_core.testing import LocalModelsLab, Reply
from modelslab_core.types import ChatCompletionChunk

KEY = "Zq8wK3vN5pR7tY9uB2xC4mL6h"  # 25 characters, as ModelsLab's keys
REQUEST = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "hi"}]}


def leaks(text: str) -> bool:
    """True when any 6 consecutive characters of the key appear in ``text``."""
    return any(KEY[i : i + 6] in text for i in range(len(KEY) - 5))


def shown(error: BaseException) -> str:
    parts = [str(error), repr(error), *map(str, error.args)]
    if isinstance(error, e.APIError):
        parts += [error.message, json.dumps(error.body, default=str)]
    return "\n".join(parts)


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    """The plugin's session server, reset for this test, checking this suite's key."""
    modelslab_server.api_key = KEY
    return modelslab_server


def echoing_event(at: int) -> bytes:
    """A stream event that is not JSON and echoes the request, the key starting at ``at``."""
    return b"data: " + b"x" * at + KEY.encode() + b" (echoed request)\n\n"


def read_stream(server: LocalModelsLab, mode: str) -> None:
    if mode == "sync":
        client = ModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=0)
        with client.chat_stream(REQUEST) as stream:
            list(stream)
        return

    async def run() -> None:
        client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=0)
        async with await client.chat_stream(REQUEST) as stream:
            async for _ in stream:
                pass

    asyncio.run(run())


FIRST = json.dumps({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}).encode()


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("at", [180, 185, 199, 0])
@pytest.mark.parametrize("first_event", [True, False])
def test_a_stream_event_echoing_the_key_never_shows_part_of_it(
    server: LocalModelsLab, mode: str, at: int, first_event: bool
) -> None:
    body = echoing_event(at) if first_event else b"data: " + FIRST + b"\n\n" + echoing_event(at)
    server.enqueue(Reply.raw(200, body + b"data: [DONE]\n\n", "text/event-stream"))
    with pytest.raises(e.InvalidResponseError, match="not JSON") as caught:
        read_stream(server, mode)
    assert not leaks(shown(caught.value))
    assert "***" in caught.value.message or at >= 200 - 3


def test_decode_event_quotes_at_most_200_characters_and_masks_before_cutting() -> None:
    data = "x" * 185 + KEY + "y" * 500
    with pytest.raises(e.InvalidResponseError) as caught:
        decode_event(data, ChatCompletionChunk)
    error = caught.value
    assert len(error.message) < 260  # the template and at most 200 quoted characters
    e.redact_error(error, KEY)
    assert not leaks(shown(error))
    assert "x" * 185 + "***" in error.message


def test_a_non_json_answer_full_of_echoed_keys_shows_none_of_them() -> None:
    """Sixteen copies of the key: cutting 400 bytes, masking and cutting again left a key's head
    inside the 200 shown."""
    content = ("x" * 10 + KEY * 20).encode()
    with pytest.raises(e.InvalidResponseError) as caught:
        parse_body(200, httpx.Headers(), content, ChatCompletion, KEY)
    assert not leaks(shown(caught.value))


def test_error_from_response_masks_before_cutting() -> None:
    content = ("<p>" + "y" * 190 + KEY + "</p>").encode()
    error = e.error_from_response(502, content, secret=KEY)
    assert not leaks(shown(error))


@pytest.mark.parametrize("limit", [1, 5, 24, 200])
def test_excerpt_masks_then_cuts(limit: int) -> None:
    text = "a" * (limit - 1) + KEY
    assert not leaks(e.excerpt(text, KEY, limit=limit))
    assert e.excerpt(text, KEY, limit=limit) == (("a" * (limit - 1)) + "***")[:limit]


def test_a_translated_or_pickled_quoting_error_stays_masked() -> None:
    import pickle

    error: Any = e.InvalidResponseError.quoting("bad event: {!r}", "z" * 190 + KEY)
    e.redact_error(error, KEY)
    again = pickle.loads(pickle.dumps(error))
    assert not leaks(shown(again))
    assert again.message == error.message


def test_a_quoting_error_pickled_before_it_is_masked_is_still_masked_before_the_cut() -> None:
    """An error that crosses a process pool before the key is masked keeps the whole server
    text, so masking afterwards still masks first and cuts after: the key's head is not left."""
    import pickle

    error: Any = e.InvalidResponseError.quoting("bad event: {!r}", "z" * 190 + KEY)
    again = pickle.loads(pickle.dumps(error))
    e.redact_error(again, KEY)
    assert not leaks(shown(again))
    assert again.message.endswith("***'")
