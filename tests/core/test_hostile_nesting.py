"""JSON nested deeper than Python's json module reads (it raises RecursionError, no ValueError)
is a typed error wherever a server puts it, over a real socket: a whole answer, an error
answer, a stream event, an error event, or an event stream that holds only such a body.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient
from modelslab_core import errors as e
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "nesting-test-key"
REQUEST = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "hi"}]}
#: Far deeper than the interpreter's recursion limit, far below any size cap.
DEEP = b'{"error": ' + b"[" * 100_000


def call(server: LocalModelsLab, mode: str, stream: bool) -> Any:
    """One call of the given kind, read to its end."""
    settings: dict[str, Any] = {"api_key": KEY, "base_url": server.base_url, "max_retries": 0}
    if mode == "sync":
        client = ModelsLabClient(**settings, timeout=5)
        if not stream:
            return client.chat(REQUEST)
        with client.chat_stream(REQUEST) as chunks:
            return list(chunks)

    async def run() -> Any:
        client = AsyncModelsLabClient(**settings, timeout=5)
        if not stream:
            return await client.chat(REQUEST)
        async with await client.chat_stream(REQUEST) as chunks:
            return [chunk async for chunk in chunks]

    return asyncio.run(run())


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("reply", "stream", "cls"),
    [
        (Reply.raw(200, DEEP, "application/json"), False, e.InvalidResponseError),
        (Reply.raw(500, DEEP, "application/json"), False, e.ServerError),
        (Reply.raw(200, b"data: " + DEEP + b"\n\n", "text/event-stream"), True,
         e.InvalidResponseError),
        (Reply.raw(200, b"event: error\ndata: " + DEEP + b"\n\n", "text/event-stream"), True,
         e.StreamError),
        (Reply.raw(200, DEEP, "text/event-stream"), True, e.IncompleteStreamError),
    ],
    ids=["answer", "error answer", "stream event", "error event", "event stream of one body"],
)  # fmt: skip
def test_json_nested_too_deep_is_a_typed_error(
    modelslab_server: LocalModelsLab, mode: str, reply: Reply, stream: bool, cls: type
) -> None:
    modelslab_server.api_key = KEY
    modelslab_server.enqueue(reply)
    with pytest.raises(cls):
        call(modelslab_server, mode, stream)
