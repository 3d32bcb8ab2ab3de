"""Unit tests of the pure converters in langchain_modelslab._convert."""

from __future__ import annotations

import json
from typing import Any, TypedDict

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from pydantic import BaseModel, Field

import modelslab_core as wire
from langchain_modelslab._convert import (
    PROVIDER,
    chunk_to_generation,
    completion_chunk_to_generation,
    completion_to_generations,
    completion_to_result,
    content_to_wire,
    llm_output,
    message_to_wire,
    tool_call_from_wire,
    tool_call_to_wire,
    tool_choice_to_wire,
    tools_to_wire,
    usage_to_metadata,
)

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="  # noqa: E501


# --- messages → wire ---------------------------------------------------------------------------


def test_each_message_type_gets_its_api_role_and_keeps_its_name() -> None:
    assert message_to_wire(SystemMessage("be brief")).model_dump(exclude_none=True) == {
        "role": "system",
        "content": "be brief",
    }
    human = message_to_wire(HumanMessage("hi", name="ana"))
    assert (human.role, human.content, human.name) == ("user", "hi", "ana")
    assert message_to_wire(ChatMessage(content="x", role="developer")).role == "developer"
    function = message_to_wire(FunctionMessage(content="42", name="f"))
    assert (function.role, function.name) == ("function", "f")


def test_ai_message_with_tool_calls() -> None:
    message = AIMessage(
        "",
        tool_calls=[{"name": "add", "args": {"a": 1, "b": 2}, "id": "c1", "type": "tool_call"}],
        invalid_tool_calls=[
            {"name": "bad", "args": "{oops", "id": "c2", "error": "x", "type": "invalid_tool_call"}
        ],
    )
    out = message_to_wire(message)
    assert out.role == "assistant"
    assert out.content is None
    assert out.tool_calls is not None
    assert [(c.id, c.function.name) for c in out.tool_calls] == [("c1", "add"), ("c2", "bad")]
    assert json.loads(out.tool_calls[0].function.arguments) == {"a": 1, "b": 2}
    assert out.tool_calls[1].function.arguments == "{oops"


def test_ai_message_reasoning_and_tool_use_blocks_not_sent_back() -> None:
    message = AIMessage(
        [
            {"type": "reasoning", "reasoning": "secret thoughts"},
            {"type": "text", "text": "The answer"},
            {"type": "tool_use", "id": "t", "name": "x", "input": {}},
        ],
        additional_kwargs={"reasoning_content": "secret thoughts"},
    )
    out = message_to_wire(message)
    assert out.content == "The answer"
    assert out.reasoning_content is None
    assert "secret" not in out.model_dump_json()


def test_tool_message_string_and_list_content() -> None:
    out = message_to_wire(ToolMessage("3", tool_call_id="c1", name="add"))
    assert out.model_dump(exclude_none=True) == {
        "role": "tool",
        "content": "3",
        "tool_call_id": "c1",
    }
    listed = message_to_wire(ToolMessage([{"type": "text", "text": "a"}, "b"], tool_call_id="c1"))
    assert listed.content == "ab"


def test_tool_message_with_image_keeps_parts() -> None:
    out = message_to_wire(
        ToolMessage([{"type": "image", "base64": PNG, "mime_type": "image/png"}], tool_call_id="c1")
    )
    assert out.content == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    ]


@pytest.mark.parametrize(
    ("block", "url"),
    [
        ({"type": "image", "url": "https://x.test/a.png"}, "https://x.test/a.png"),
        (
            {"type": "image", "base64": PNG, "mime_type": "image/png"},
            f"data:image/png;base64,{PNG}",
        ),
        (
            {"type": "image", "source_type": "base64", "data": PNG, "mime_type": "image/png"},
            f"data:image/png;base64,{PNG}",
        ),
        (
            {"type": "image", "source_type": "url", "url": "https://x.test/b.png"},
            "https://x.test/b.png",
        ),
        (
            {"type": "image_url", "image_url": {"url": "https://x.test/c.png"}},
            "https://x.test/c.png",
        ),
        ({"type": "image_url", "image_url": "https://x.test/d.png"}, "https://x.test/d.png"),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            f"data:image/png;base64,{PNG}",
        ),
    ],
)
def test_image_blocks_become_image_url_parts(block: dict[str, Any], url: str) -> None:
    parts = content_to_wire([{"type": "text", "text": "what is this?"}, block])
    assert parts == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]


def test_single_text_part_is_sent_as_string() -> None:
    assert content_to_wire([{"type": "text", "text": "hi"}]) == "hi"
    assert content_to_wire(["a", "b"]) == [
        {"type": "text", "text": "a"},
        {"type": "text", "text": "b"},
    ]


def test_unsupported_blocks_are_refused() -> None:
    with pytest.raises(ValueError, match="text and images only"):
        content_to_wire([{"type": "audio", "base64": "AAAA", "mime_type": "audio/wav"}])
    with pytest.raises(ValueError, match="Unsupported content block"):
        content_to_wire([{"type": "mystery"}])


class _OddMessage(BaseMessage):
    type: str = "odd"


def test_unknown_message_type_is_refused() -> None:
    with pytest.raises(TypeError, match="_OddMessage"):
        message_to_wire(_OddMessage(content="x"))


# --- tools ---------------------------------------------------------------------------------


class GetWeather(BaseModel):
    """Get the weather in a city."""

    city: str = Field(description="the city")


class Move(TypedDict):
    """Move a piece."""

    square: str


@tool
def multiply(a: int, b: int) -> int:
    """Multiply a and b."""
    return a * b


def divide(a: float, b: float) -> float:
    """Divide a by b."""
    return a / b


def test_tools_of_every_kind() -> None:
    raw = {
        "type": "function",
        "function": {"name": "ping", "description": "Ping.", "parameters": {"type": "object"}},
    }
    tools = tools_to_wire([GetWeather, Move, multiply, divide, raw])
    assert [t["function"]["name"] for t in tools] == [
        "GetWeather",
        "Move",
        "multiply",
        "divide",
        "ping",
    ]
    assert all(t["type"] == "function" for t in tools)
    assert tools[0]["function"]["parameters"]["properties"]["city"]["type"] == "string"
    strict = tools_to_wire([GetWeather], strict=True)[0]["function"]
    assert strict["strict"] is True


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        (None, None),
        ("auto", "auto"),
        ("none", "none"),
        ("any", "required"),
        ("required", "required"),
        (True, "required"),
        (False, "none"),
        ("multiply", {"type": "function", "function": {"name": "multiply"}}),
        (
            {"type": "function", "function": {"name": "multiply"}},
            {"type": "function", "function": {"name": "multiply"}},
        ),
    ],
)
def test_every_langchain_tool_choice_becomes_the_api_choice(choice: Any, expected: Any) -> None:
    assert tool_choice_to_wire(choice, ["multiply"]) == expected


def test_tool_choice_unknown_name() -> None:
    with pytest.raises(ValueError, match="names no bound tool"):
        tool_choice_to_wire("divide", ["multiply"])


def test_tool_call_round_trip() -> None:
    call = tool_call_to_wire({"name": "f", "args": {"x": "é"}, "id": "1", "type": "tool_call"})
    assert call.function.arguments == '{"x": "é"}'
    back = tool_call_from_wire(call)
    assert back == {"name": "f", "args": {"x": "é"}, "id": "1", "type": "tool_call"}


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_bad_tool_arguments_become_invalid_tool_calls(arguments: str) -> None:
    call = wire.ToolCall(id="1", function=wire.FunctionCall(name="f", arguments=arguments))
    back = tool_call_from_wire(call)
    assert back["type"] == "invalid_tool_call"
    assert back["args"] == arguments
    assert back.get("error")


def test_empty_arguments_are_an_empty_object() -> None:
    call = wire.ToolCall(id="1", function=wire.FunctionCall(name="f", arguments=""))
    assert tool_call_from_wire(call)["args"] == {}


# --- usage, answers, chunks ----------------------------------------------------------------


def test_usage_becomes_usage_metadata_with_cache_and_reasoning_details() -> None:
    usage = wire.Usage.model_validate(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        }
    )
    assert usage_to_metadata(usage) == {
        "input_tokens": 10,
        "output_tokens": 5,
        "total_tokens": 15,
        "input_token_details": {"cache_read": 4},
        "output_token_details": {"reasoning": 2},
    }
    assert usage_to_metadata(wire.Usage(prompt_tokens=3, completion_tokens=4))["total_tokens"] == 7


def _completion(**message: Any) -> wire.ChatCompletion:
    return wire.ChatCompletion.model_validate(
        {
            "id": "gen-1",
            "model": "m-1",
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    )


def test_an_answer_becomes_an_ai_message_with_reasoning_tools_usage_and_metadata() -> None:
    result = completion_to_result(
        _completion(
            content="4",
            reasoning_content="2+2",
            tool_calls=[
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        )
    )
    message = result.generations[0].message
    assert isinstance(message, AIMessage)
    assert message.content == "4"
    assert message.additional_kwargs == {"reasoning_content": "2+2"}
    assert message.tool_calls == [{"name": "f", "args": {}, "id": "c", "type": "tool_call"}]
    assert message.usage_metadata == {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert message.response_metadata == {
        "model_provider": PROVIDER,
        "model_name": "m-1",
        "finish_reason": "stop",
        "id": "gen-1",
    }
    assert message.id == "gen-1"
    assert result.llm_output is not None
    assert result.llm_output["token_usage"]["total_tokens"] == 5
    assert message.content_blocks[0] == {"type": "reasoning", "reasoning": "2+2"}


def test_model_name_falls_back_to_the_requested_model() -> None:
    completion = _completion(content="x")
    completion.model = ""
    message = completion_to_result(completion, model="asked").generations[0].message
    assert message.response_metadata["model_name"] == "asked"


def test_several_choices_give_several_generations() -> None:
    completion = wire.ChatCompletion.model_validate(
        {
            "id": "g",
            "model": "m",
            "choices": [
                {"index": 0, "message": {"content": "a"}},
                {"index": 1, "message": {"content": "b"}},
            ],
        }
    )
    result = completion_to_result(completion)
    assert [g.text for g in result.generations] == ["a", "b"]


def test_chunks_become_message_chunks_with_tool_call_pieces_finish_and_usage() -> None:
    first = wire.ChatCompletionChunk.model_validate(
        {
            "id": "g",
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "role": "assistant",
                        "reasoning_content": "hmm",
                        "tool_calls": [
                            {"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
                            {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}},
                        ],
                    },
                }
            ],
        }
    )
    generation = chunk_to_generation(first)
    assert generation is not None
    message = generation.message
    assert isinstance(message, AIMessageChunk)
    assert message.additional_kwargs == {"reasoning_content": "hmm"}
    assert [(c["index"], c["id"], c["name"]) for c in message.tool_call_chunks] == [
        (0, "a", "f"),
        (1, "b", "g"),
    ]
    assert message.response_metadata == {"model_provider": PROVIDER}
    assert message.usage_metadata is None

    last = wire.ChatCompletionChunk.model_validate(
        {"id": "g", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    )
    generation = chunk_to_generation(last)
    assert generation is not None
    assert generation.message.response_metadata["finish_reason"] == "length"
    assert generation.message.response_metadata["model_name"] == "m"

    usage = wire.ChatCompletionChunk.model_validate(
        {"id": "g", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    )
    generation = chunk_to_generation(usage)
    assert generation is not None
    assert isinstance(generation.message, AIMessageChunk)
    assert generation.message.usage_metadata == {
        "input_tokens": 1,
        "output_tokens": 1,
        "total_tokens": 2,
    }
    assert chunk_to_generation(wire.ChatCompletionChunk(id="g")) is None


def test_merged_chunks_equal_the_answer() -> None:
    """The accumulator (adapter) and LangChain's chunk merging agree with completion_to_result."""
    pieces = [
        {"role": "assistant", "reasoning_content": "thin"},
        {"reasoning_content": "king"},
        {"content": "Hel"},
        {
            "content": "lo",
            "tool_calls": [
                {
                    "index": 0,
                    "id": "a",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"x"'},
                },
                {
                    "index": 1,
                    "id": "b",
                    "type": "function",
                    "function": {"name": "g", "arguments": "{}"},
                },
            ],
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
    ]
    chunks = [
        wire.ChatCompletionChunk.model_validate(
            {"id": "g", "model": "m", "choices": [{"index": 0, "delta": d}]}
        )
        for d in pieces
    ]
    chunks.append(
        wire.ChatCompletionChunk.model_validate(
            {
                "id": "g",
                "model": "m",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
            }
        )
    )
    chunks.append(
        wire.ChatCompletionChunk.model_validate(
            {
                "id": "g",
                "model": "m",
                "choices": [],
                "usage": {"prompt_tokens": 2, "completion_tokens": 3},
            }
        )
    )
    merged: AIMessageChunk | None = None
    accumulator = wire.StreamAccumulator()
    for chunk in chunks:
        accumulator.add(chunk)
        generation = chunk_to_generation(chunk)
        assert generation is not None
        assert isinstance(generation.message, AIMessageChunk)
        merged = generation.message if merged is None else merged + generation.message
    assert merged is not None
    merged = merged + AIMessageChunk(content="", chunk_position="last")
    invoked = completion_to_result(accumulator.completion()).generations[0].message
    assert isinstance(invoked, AIMessage)
    assert merged.text == invoked.text == "Hello"
    assert merged.tool_calls == invoked.tool_calls
    assert [c["args"] for c in merged.tool_calls] == [{"x": 1}, {}]
    assert merged.usage_metadata == invoked.usage_metadata
    assert (
        merged.additional_kwargs == invoked.additional_kwargs == {"reasoning_content": "thinking"}
    )
    assert merged.response_metadata == invoked.response_metadata


# --- text completions ----------------------------------------------------------------------


def test_text_completions_become_generations_and_their_usage_is_summed() -> None:
    completion = wire.Completion.model_validate(
        {
            "id": "c",
            "model": "m",
            "choices": [{"index": 0, "text": "abc", "finish_reason": "stop", "stop_reason": "\n"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
        }
    )
    [generation] = completion_to_generations(completion)
    assert generation.text == "abc"
    assert generation.generation_info == {
        "finish_reason": "stop",
        "model_name": "m",
        "stop_reason": "\n",
        "token_usage": {"prompt_tokens": 1, "completion_tokens": 3, "total_tokens": 4},
    }
    assert llm_output([[generation], [generation]], "m") == {
        "token_usage": {"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8},
        "model_name": "m",
    }
    chunk = completion_chunk_to_generation(
        wire.Completion.model_validate({"choices": [{"text": "a"}]})
    )
    assert chunk is not None and chunk.text == "a" and chunk.generation_info is None
    assert completion_chunk_to_generation(wire.Completion(choices=[])) is None
    usage_chunk = completion_chunk_to_generation(
        wire.Completion.model_validate({"choices": [], "usage": {"prompt_tokens": 1}})
    )
    assert usage_chunk is not None
    assert usage_chunk.generation_info == {
        "token_usage": {"prompt_tokens": 1, "completion_tokens": 0, "total_tokens": 0}
    }
