"""Unit tests of the pure converters in ``llama_index_modelslab._convert``."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    ChatResponse,
    CitableBlock,
    CitationBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llama_index_modelslab import ModelsLabLLM
from llama_index_modelslab import _convert as conv
from modelslab_core import (
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    Completion,
    StreamAccumulator,
    ToolCall,
    Usage,
)
from modelslab_core import ChatMessage as WireMessage

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def chunk(delta: dict[str, Any] | None = None, **extra: Any) -> ChatCompletionChunk:
    choices = [] if delta is None else [{"index": 0, "delta": delta, **extra}]
    return ChatCompletionChunk.model_validate({"id": "c1", "model": "m", "choices": choices})


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


# --- LlamaIndex -> wire ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "wire_role"),
    [
        (MessageRole.SYSTEM, "system"),
        (MessageRole.DEVELOPER, "system"),
        (MessageRole.USER, "user"),
        (MessageRole.ASSISTANT, "assistant"),
        (MessageRole.CHATBOT, "assistant"),
        (MessageRole.MODEL, "assistant"),
    ],
)
def test_roles_map_to_the_api_roles(role: MessageRole, wire_role: str) -> None:
    wire = conv.message_to_wire(ChatMessage(role=role, content="hi"))
    assert wire.role == wire_role
    assert wire.content == "hi"


def test_text_blocks_join_into_one_string() -> None:
    message = ChatMessage(role="user", blocks=[TextBlock(text="a"), TextBlock(text="b")])
    assert conv.message_to_wire(message).content == "a\nb"


def test_image_url_and_inline_image_become_content_parts() -> None:
    message = ChatMessage(
        role="user",
        blocks=[
            TextBlock(text="what is this?"),
            ImageBlock(url="https://example.com/cat.png", detail="low"),
            ImageBlock(image=PNG, image_mimetype="image/png"),
        ],
    )
    content = conv.message_to_wire(message).content
    assert isinstance(content, list)
    assert content[0] == {"type": "text", "text": "what is this?"}
    assert content[1] == {
        "type": "image_url",
        "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
    }
    url = content[2]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == PNG


def test_assistant_tool_call_blocks_become_tool_calls_and_thinking_is_dropped() -> None:
    message = ChatMessage(
        role="assistant",
        blocks=[
            ThinkingBlock(content="let me see"),
            TextBlock(text=""),
            ToolCallBlock(tool_call_id="call_1", tool_name="multiply", tool_kwargs={"a": 2}),
            ToolCallBlock(tool_call_id="call_2", tool_name="multiply", tool_kwargs='{"a": 3}'),
        ],
    )
    wire = conv.message_to_wire(message)
    assert wire.content is None
    assert wire.reasoning_content is None
    assert wire.tool_calls is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in wire.tool_calls] == [
        ("call_1", "multiply", '{"a": 2}'),
        ("call_2", "multiply", '{"a": 3}'),
    ]


def test_legacy_tool_calls_in_additional_kwargs_are_sent() -> None:
    legacy = {"id": "c9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [legacy]})
    wire = conv.message_to_wire(message)
    assert wire.tool_calls == [ToolCall.model_validate(legacy)]


def test_tool_result_carries_its_call_id() -> None:
    message = ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "call_1"})
    wire = conv.message_to_wire(message)
    assert (wire.role, wire.content, wire.tool_call_id) == ("tool", "42", "call_1")


def test_cited_text_is_sent_as_text() -> None:
    cited = CitableBlock(content=[TextBlock(text="Paris is in France.")], source="atlas", title="")
    citation = CitationBlock(
        cited_content=TextBlock(text="p. 12"), source="atlas", title="", additional_location_info={}
    )
    message = ChatMessage(role="user", blocks=[TextBlock(text="Where?"), cited, citation])
    assert conv.message_to_wire(message).content == "Where?\nParis is in France.\np. 12"


def test_unsupported_blocks_are_refused_clearly() -> None:
    message = ChatMessage(role="user", blocks=[AudioBlock(audio=b"RIFF", format="wav")])
    with pytest.raises(ValueError, match="AudioBlock"):
        conv.message_to_wire(message)


def test_tool_specs_carry_name_and_required_args_and_strict_closes_the_schema() -> None:
    tool = FunctionTool.from_defaults(multiply)
    (spec,) = conv.tool_specs([tool])
    assert spec["type"] == "function"
    assert spec["function"]["name"] == "multiply"
    assert spec["function"]["parameters"]["required"] == ["a", "b"]
    assert "strict" not in spec["function"]
    (strict,) = conv.tool_specs([tool], strict=True)
    assert strict["function"]["strict"] is True
    assert strict["function"]["parameters"]["additionalProperties"] is False


@pytest.mark.parametrize(
    ("choice", "required", "expected"),
    [
        (None, False, "auto"),
        (None, True, "required"),
        ("none", False, "none"),
        ("auto", True, "auto"),
        ("multiply", False, {"type": "function", "function": {"name": "multiply"}}),
        ({"type": "function", "function": {"name": "x"}}, False, None),
    ],
)
def test_tool_choice_defaults_to_auto_or_required_and_a_name_becomes_a_function(
    choice: Any, required: bool, expected: Any
) -> None:
    assert conv.resolve_tool_choice(choice, required) == (expected or choice)


def test_structured_output_asks_for_the_class_json_schema_after_the_format_instructions() -> None:
    class Person(BaseModel):
        name: str

    history = [ChatMessage(role="user", content="Ann")]
    messages, kwargs = conv.json_request(Person, history, None)
    assert [m.role for m in messages] == [MessageRole.SYSTEM, MessageRole.USER]
    assert "JSON" in (messages[0].content or "")
    fmt = kwargs["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Person"
    assert fmt["json_schema"]["schema"]["required"] == ["name"]


# --- wire -> LlamaIndex ------------------------------------------------------------------------


def test_wire_message_becomes_thinking_text_and_tool_call_blocks() -> None:
    wire = WireMessage.model_validate(
        {
            "role": "assistant",
            "content": "ok",
            "reasoning_content": "hmm",
            "tool_calls": [
                {"id": "c1", "function": {"name": "f", "arguments": '{"x": 1}'}},
                {"id": "c2", "function": {"name": "g", "arguments": "not json"}},
                {"id": "c3", "function": {"name": "h", "arguments": ""}},
            ],
        }
    )
    message = conv.wire_to_message(wire)
    assert message.role == MessageRole.ASSISTANT
    thinking, text, *calls = message.blocks
    assert isinstance(thinking, ThinkingBlock) and thinking.content == "hmm"
    assert isinstance(text, TextBlock) and text.text == "ok"
    assert [(c.tool_call_id, c.tool_name, c.tool_kwargs) for c in calls] == [  # type: ignore[union-attr]
        ("c1", "f", {"x": 1}),
        ("c2", "g", "not json"),
        ("c3", "h", {}),
    ]


def test_an_answer_in_content_parts_becomes_its_text() -> None:
    parts = [{"type": "text", "text": "Hel"}, {"type": "image_url"}, {"type": "text", "text": "lo"}]
    message = conv.wire_to_message(WireMessage(content=parts))
    assert message.content == "Hello"


def test_a_json_answer_inside_prose_parses_and_no_json_is_an_error() -> None:
    class Person(BaseModel):
        name: str

    prose = 'Here you are: {"name": "Ann"} Hope it helps.'
    answer = ChatResponse(message=ChatMessage(role="assistant", content=prose))
    assert conv.parse_output(Person, answer) == Person(name="Ann")
    with pytest.raises(ValueError, match="json"):
        conv.parse_output(Person, ChatResponse(message=ChatMessage(content="no idea")))


def test_response_to_chat_carries_usage_and_raw() -> None:
    completion = ChatCompletion.model_validate(
        {
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        }
    )
    response = conv.response_to_chat(completion)
    assert response.message.content == "hi"
    assert response.raw is completion
    assert response.additional_kwargs == {
        "prompt_tokens": 2,
        "completion_tokens": 1,
        "total_tokens": 3,
    }


def test_stream_step_gives_cumulative_message_and_delta() -> None:
    acc = StreamAccumulator()
    steps = [
        conv.stream_step(acc, chunk({"role": "assistant", "reasoning_content": "th"})),
        conv.stream_step(acc, chunk({"reasoning_content": "ink"})),
        conv.stream_step(acc, chunk({"content": "Hel"})),
        conv.stream_step(acc, chunk({"content": "lo"}, finish_reason="stop")),
        conv.stream_step(acc, chunk(None).model_copy(update={"usage": Usage(total_tokens=7)})),
    ]
    assert [s.delta for s in steps] == ["", "", "Hel", "lo", ""]
    assert [s.message.content for s in steps] == ["", "", "Hel", "Hello", "Hello"]
    assert steps[1].additional_kwargs == {"thinking_delta": "ink"}
    thinking = steps[-1].message.blocks[0]
    assert isinstance(thinking, ThinkingBlock) and thinking.content == "think"
    assert steps[-1].additional_kwargs["total_tokens"] == 7
    assert steps[2].raw.choices[0].delta.content == "Hel"


def test_stream_step_keeps_several_tool_calls_from_one_chunk_and_partial_json() -> None:
    acc = StreamAccumulator()
    both = chunk(
        {
            "tool_calls": [
                {"index": 0, "id": "a", "function": {"name": "f", "arguments": '{"x": '}},
                {"index": 1, "id": "b", "function": {"name": "g", "arguments": '{"y": "ab'}},
            ]
        }
    )
    first = conv.stream_step(acc, both)
    selections = conv.tool_calls_to_selections(first)
    assert [(s.tool_id, s.tool_name) for s in selections] == [("a", "f"), ("b", "g")]
    # LlamaIndex's partial-JSON parser leaves an unfinished string out (None) but keeps the key.
    assert selections[1].tool_kwargs == {"y": None}
    rest = chunk(
        {
            "tool_calls": [
                {"index": 0, "function": {"arguments": "1}"}},
                {"index": 1, "function": {"arguments": 'c"}'}},
            ]
        }
    )
    done = conv.stream_step(acc, rest)
    selections = conv.tool_calls_to_selections(done)
    assert [s.tool_kwargs for s in selections] == [{"x": 1}, {"y": "abc"}]


def test_last_stream_step_equals_the_non_streamed_response() -> None:
    message = {
        "role": "assistant",
        "content": "Hi there",
        "reasoning_content": "why not",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    whole = conv.response_to_chat(
        ChatCompletion.model_validate({"choices": [{"message": message}], "usage": usage})
    )
    acc = StreamAccumulator()
    pieces = [
        chunk({"role": "assistant", "reasoning_content": "why "}),
        chunk({"reasoning_content": "not", "content": "Hi "}),
        chunk({"content": "there", "tool_calls": [{"index": 0, "id": "c1", "type": "function"}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}),
        chunk(None).model_copy(update={"usage": Usage.model_validate(usage)}),
    ]
    last: ChatResponse | None = None
    for piece in pieces:
        last = conv.stream_step(acc, piece)
    assert last is not None
    assert last.message == whole.message
    assert last.additional_kwargs == whole.additional_kwargs


def test_tool_calls_to_selections_without_calls() -> None:
    response = ChatResponse(message=ChatMessage(role="assistant", content="no tools"))
    assert conv.tool_calls_to_selections(response, error_on_no_tool_call=False) == []
    with pytest.raises(ValueError, match="tool call"):
        conv.tool_calls_to_selections(response)


def test_unparseable_streamed_arguments_become_empty_kwargs() -> None:
    block = ToolCallBlock(tool_call_id="x", tool_name="f", tool_kwargs="[1, 2")
    response = ChatResponse(message=ChatMessage(role="assistant", blocks=[block]))
    (selection,) = conv.tool_calls_to_selections(response)
    assert selection.tool_kwargs == {}


def test_text_completions_stream_to_cumulative_text_with_deltas_and_usage() -> None:
    completion = Completion.model_validate(
        {"choices": [{"text": "once"}], "usage": {"total_tokens": 4}}
    )
    assert conv.completion_to_response(completion).text == "once"
    response = None
    deltas = []
    for piece in ("on", "ce"):
        step = Completion.model_validate({"choices": [{"text": piece}]})
        response = conv.stream_completion_step(response, step)
        deltas.append(response.delta)
    usage = conv.stream_completion_step(response, Completion(usage=Usage(total_tokens=4)))
    final = conv.stream_completion_step(usage, Completion.model_validate({"choices": []}))
    assert (usage.text, deltas, usage.delta) == ("once", ["on", "ce"], "")
    assert usage.additional_kwargs["total_tokens"] == 4
    assert (final.text, final.additional_kwargs) == ("once", usage.additional_kwargs)


def test_usage_kwargs_are_empty_without_usage_and_json_serializable() -> None:
    assert conv.usage_kwargs(None) == {}
    assert json.dumps(conv.usage_kwargs(Usage(prompt_tokens=1, total_tokens=1)))


def test_the_user_message_goes_after_the_history_which_is_left_as_it_was() -> None:
    llm = ModelsLabLLM(api_key="k")
    history = [ChatMessage(role=MessageRole.SYSTEM, content="be brief")]
    messages = llm._prepare_chat_with_tools([], user_msg="hi", chat_history=history)["messages"]
    assert [(m.role, m.content) for m in messages] == [
        (MessageRole.SYSTEM, "be brief"),
        (MessageRole.USER, "hi"),
    ]
    assert len(history) == 1
    assert llm._prepare_chat_with_tools([])["messages"] == []


def test_only_the_first_tool_call_is_kept_with_the_text() -> None:
    calls = [ToolCallBlock(tool_call_id=f"c{i}", tool_name="f", tool_kwargs={}) for i in (1, 2)]
    message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[*calls, TextBlock(text="two")])
    parallel = ChatResponse(message=message.model_copy(deep=True))
    response = ModelsLabLLM(api_key="k")._validate_chat_with_tools_response(
        ChatResponse(message=message), []
    )
    assert [getattr(b, "tool_call_id", None) for b in response.message.blocks] == [None, "c1"]
    assert response.message.content == "two"
    kept = ModelsLabLLM(api_key="k")._validate_chat_with_tools_response(
        parallel, [], allow_parallel_tool_calls=True
    )
    assert [getattr(b, "tool_call_id", None) for b in kept.message.blocks] == ["c1", "c2", None]


def test_a_refused_schema_asks_again_in_json_mode_and_other_errors_stand() -> None:
    class Person(BaseModel):
        name: str

    _, kwargs = conv.json_request(Person, [], {"max_tokens": 5})
    assert kwargs["response_format"]["type"] == "json_schema"
    refused = BadRequestError("response_format json_schema is not supported")
    assert conv.json_fallback_kwargs(refused, kwargs) == {
        "max_tokens": 5,
        "response_format": {"type": "json_object"},
    }
    too_long = BadRequestError("context length exceeded")
    with pytest.raises(BadRequestError) as caught:
        conv.json_fallback_kwargs(too_long, kwargs)
    assert caught.value is too_long
