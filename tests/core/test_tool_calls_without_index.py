"""Parallel tool calls streamed without ``index`` (Gemini-style: each call has its own id) stay
apart, in the accumulator and in both frameworks' streams, as they are when not streamed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from llama_index.core.base.llms.types import ChatMessage as LIMessage
from llama_index.core.base.llms.types import ToolCallBlock

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import ChatCompletionChunk, StreamAccumulator
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "sk-no-index-0123456789"
MODEL = "gemini-2.0-flash-001"
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


def call(id_: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    fragment: dict[str, Any] = {"function": {"arguments": arguments}}
    if id_ is not None:
        fragment |= {"id": id_, "type": "function"}
        fragment["function"]["name"] = name
    return fragment


def chunk(calls: list[dict[str, Any]] | None = None, finish: str | None = None) -> dict[str, Any]:
    delta: dict[str, Any] = {"role": "assistant"}
    if calls:
        delta["tool_calls"] = calls
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "c1", "object": "chat.completion.chunk", "model": MODEL, "choices": [choice]}


#: Two calls, each whole in one fragment; then two calls split over fragments (the later pieces
#: without an id); then two calls in one chunk.
STREAMS = {
    "one fragment each": [
        chunk([call("call_a", "get_weather", '{"city": "Paris"}')]),
        chunk([call("call_b", "get_time", '{"tz": "UTC"}')]),
        chunk(finish="tool_calls"),
    ],
    "split arguments": [
        chunk([call("call_a", "get_weather", '{"city": ')]),
        chunk([call(None, None, '"Paris"}')]),
        chunk([call("call_b", "get_time", '{"tz": ')]),
        chunk([call(None, None, '"UTC"}')]),
        chunk(finish="tool_calls"),
    ],
    "one chunk": [
        chunk(
            [
                call("call_a", "get_weather", '{"city": "Paris"}'),
                call("call_b", "get_time", '{"tz": "UTC"}'),
            ]
        ),
        chunk(finish="tool_calls"),
    ],
}
EXPECTED = [
    ("call_a", "get_weather", {"city": "Paris"}),
    ("call_b", "get_time", {"tz": "UTC"}),
]


def sse(chunks: list[dict[str, Any]]) -> Reply:
    text = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return Reply.raw(200, text, "text/event-stream")


@pytest.mark.parametrize("name", STREAMS)
def test_the_accumulator_keeps_calls_without_index_apart(name: str) -> None:
    acc = StreamAccumulator()
    for data in STREAMS[name]:
        acc.add(ChatCompletionChunk.model_validate(data))
    calls = acc.completion().choices[0].message.tool_calls or []
    got = [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls]
    assert got == EXPECTED


def test_fragments_with_an_index_are_still_keyed_by_it() -> None:
    acc = StreamAccumulator()
    first = {"index": 0, "id": "call_a", "function": {"name": "f", "arguments": "{"}}
    second = {"index": 1, "id": "call_b", "function": {"name": "g", "arguments": "{}"}}
    rest = {"index": 0, "function": {"arguments": "}"}}
    for calls in ([first], [second], [rest]):
        acc.add(ChatCompletionChunk.model_validate(chunk(calls)))
    calls = acc.completion().choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in calls] == [("call_a", "{}"), ("call_b", "{}")]


@pytest.mark.parametrize("name", STREAMS)
def test_llama_index_stream_chat_keeps_them_apart(
    name: str, modelslab_server: LocalModelsLab
) -> None:
    modelslab_server.api_key = KEY
    modelslab_server.enqueue(sse(STREAMS[name]))
    llm = ModelsLabLLM(model=MODEL, api_key=KEY, base_url=modelslab_server.base_url)
    *_, last = llm.stream_chat([LIMessage(role="user", content="weather and time?")])
    blocks = [b for b in last.message.blocks if isinstance(b, ToolCallBlock)]
    got = [(b.tool_call_id, b.tool_name, b.tool_kwargs) for b in blocks]
    assert got == EXPECTED


@pytest.mark.parametrize("name", STREAMS)
async def test_langchain_stream_keeps_them_apart(
    name: str, modelslab_server: LocalModelsLab
) -> None:
    modelslab_server.api_key = KEY
    modelslab_server.enqueue(sse(STREAMS[name]))
    model = ChatModelsLab(model=MODEL, api_key=KEY, base_url=modelslab_server.base_url)
    merged: AIMessageChunk | None = None
    async for piece in model.bind(tools=[TOOL]).astream([HumanMessage("weather and time?")]):
        merged = piece if merged is None else merged + piece  # type: ignore[assignment]
    assert merged is not None
    got = [(c["id"], c["name"], c["args"]) for c in merged.tool_calls]
    assert got == EXPECTED
