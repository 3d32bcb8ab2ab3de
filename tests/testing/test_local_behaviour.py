"""Unit tests of the local server's pure parts: text helpers, schema filling, answers, SSE."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelslab_core.testing import Reply
from modelslab_core.testing._demo_model import (
    ToolSpec,
    Values,
    apply_stop,
    chat_answer,
    chat_completion_body,
    chat_request_error,
    completion_answer,
    completion_request_error,
    fill_schema,
    is_reasoning_model,
    json_object_answer,
    message_text,
    models_body,
    requested_model,
    scripted_answer,
    select_tool_calls,
    split_pieces,
    text_completion_body,
    truncate_words,
    wants_stream,
    wants_usage,
)
from modelslab_core.testing._sse import chat_stream_events, text_stream_events
from tests.testing.reassemble import (
    flatten_chat,
    flatten_text,
    reassemble_chat,
    reassemble_text,
)


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "meta-llama-3-8B-instruct", "messages": list(messages), **fields}


def tool(name: str, properties: dict[str, Any] | None = None, **schema: Any) -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "object", "properties": properties or {}, **schema}
    if properties is not None and "required" not in schema:
        parameters["required"] = list(properties)
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def fill(schema: dict[str, Any], text: str) -> Any:
    return fill_schema(schema, Values(text))


def calls_of(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    choice = chat_answer(body).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.content is None
    return [(call.name, json.loads(call.arguments)) for call in choice.tool_calls]


# ----------------------------------------------------------------------------- text helpers


def test_message_text_reads_strings_parts_and_nothing() -> None:
    assert message_text("hi") == "hi"
    assert message_text(None) == ""
    parts = [{"type": "text", "text": "one"}, {"type": "image_url", "image_url": {}}, "two"]
    assert message_text(parts) == "one\ntwo"
    assert message_text({"type": "text", "text": "solo"}) == "solo"


@pytest.mark.parametrize("text", ["", "one", " lead and trail  ", "a\n\nb\tc", "x  y  "])
def test_split_pieces_concatenate_to_the_text(text: str) -> None:
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert all(piece for piece in pieces)


def test_apply_stop_cuts_at_the_earliest_sequence() -> None:
    assert apply_stop("hello you there", ["there", "you"]) == ("hello ", True)
    assert apply_stop("hello", ["zzz", ""]) == ("hello", False)


def test_truncate_words_keeps_spacing() -> None:
    assert truncate_words("a  b c d", 2) == ("a  b", True)
    assert truncate_words("a b", 2) == ("a b", False)
    assert truncate_words("a b", None) == ("a b", False)
    assert truncate_words("a b", 0) == ("", True)


def test_values_hand_out_numbers_then_quoted_strings_names_and_the_text() -> None:
    text = "Add 2 and -3.5 to 'Bob' then ask Mary Jane about \u201cz w\u201d"
    values = Values(text)
    assert values.numbers == [2.0, -3.5]
    assert values.strings == ["Bob", "z w", "Mary Jane", "Add"]
    assert [values.number() for _ in range(3)] == [2.0, -3.5, 1.0]
    assert [values.string() for _ in range(5)] == ["Bob", "z w", "Mary Jane", "Add", text]


def test_names_put_mid_sentence_runs_before_sentence_openers() -> None:
    assert Values("What is the weather in San Francisco, CA?").strings == [
        "San Francisco",
        "CA",
        "What",
    ]
    assert Values("Alice is 30 years old").strings == ["Alice"]
    assert Values("call get_weather for Oslo", exclude=["Oslo"]).strings == []


# ----------------------------------------------------------------------------- schema filling


def test_fill_schema_numbers_in_order_with_integer_and_bounds() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "integer"},
            "b": {"type": "number"},
            "c": {"type": "integer", "exclusiveMaximum": 10},
        },
        "required": ["a", "b", "c"],
    }
    assert fill(schema, "use 4.7 then 2.5 then 99") == {"a": 4, "b": 2.5, "c": 9}


def test_fill_schema_refs_unions_nested_arrays_enums_booleans() -> None:
    schema = {
        "$defs": {
            "Unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
            "Place": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
                "required": ["city"],
            },
        },
        "type": "object",
        "properties": {
            "place": {"$ref": "#/$defs/Place"},
            "unit": {"$ref": "#/$defs/Unit"},
            "days": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "alerts": {"type": "boolean"},
            "note": {"type": "string"},
            "extra": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
        "required": ["place", "unit", "days", "tags", "alerts"],
    }
    result = fill(schema, "Weather for Oslo in fahrenheit for 3 days")
    # Only required properties are filled (not place.zip, note, extra).
    assert result == {
        "place": {"city": "Oslo"},
        "unit": "fahrenheit",
        "days": 3,
        "tags": ["Weather"],
        "alerts": True,
    }


def test_fill_schema_enum_defaults_to_first_and_formats() -> None:
    schema = {
        "type": "object",
        "properties": {
            "mode": {"type": "string", "enum": ["fast", "slow"]},
            "when": {"type": "string", "format": "date"},
            "flag": {"type": "boolean"},
        },
        "required": ["mode", "when", "flag"],
    }
    assert fill(schema, "nothing relevant") == {"mode": "fast", "when": "2024-01-01", "flag": True}
    assert fill(schema, "go slow")["mode"] == "slow"


def test_fill_schema_strings_quoted_then_names_then_text() -> None:
    properties = {name: {"type": "string"} for name in ("a", "b", "c", "d")}
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    text = "Send 'hi' to Paris about cats"
    assert fill(schema, text) == {"a": "hi", "b": "Paris", "c": "Send", "d": text}


def test_fill_schema_all_of_and_empty_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"inner": {"allOf": [{"$ref": "#/definitions/Inner"}]}},
        "required": ["inner"],
        "definitions": {
            "Inner": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        },
    }
    assert fill(schema, "value 5") == {"inner": {"n": 5}}
    assert fill({}, "anything") == "anything"


# ----------------------------------------------------------------------------- request fields


def test_request_field_aliases() -> None:
    assert requested_model({"model_id": "x"}, "d") == "x"
    assert requested_model({}, "d") == "d"
    assert wants_stream({"streaming": True}) and wants_stream({"stream": True})
    assert not wants_stream({"stream": False})
    assert wants_usage({"stream_options": {"include_usage": True}})
    assert not wants_usage({})
    assert is_reasoning_model("deepseek-ai-DeepSeek-R1-Distill-Llama-70B")
    assert is_reasoning_model("some-Thinking-model")
    assert not is_reasoning_model("meta-llama-3-8B-instruct")


def test_validation_messages() -> None:
    assert chat_request_error({}) == "The messages field is required."
    assert chat_request_error({"messages": []}) == "The messages field is required."
    assert chat_request_error({"messages": ["x"]}) is not None
    assert chat_request_error(chat(user("hi"))) is None
    assert completion_request_error({}) == "The prompt field is required."
    assert completion_request_error({"prompt": ["a"]}) is None


# ----------------------------------------------------------------------------- chat answers


def test_echo_of_the_last_user_message() -> None:
    body = chat(
        {"role": "system", "content": "be nice"},
        user("first"),
        {"role": "assistant", "content": "ok"},
        user([{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]),
    )
    answer = chat_answer(body)
    assert answer.choices[0].content == "second\npart"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage == {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}


def test_echo_when_last_message_is_assistant_and_for_images_only() -> None:
    body = chat(user("question"), {"role": "assistant", "content": "partial"})
    assert chat_answer(body).choices[0].content == "question"
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    content = chat_answer(chat(user([image]))).choices[0].content
    assert content and "image" in content


def test_stop_max_tokens_and_n() -> None:
    assert chat_answer(chat(user("hi there you all"), stop="you")).choices[0].content == "hi there "
    answer = chat_answer(chat(user("one two three four"), max_tokens=2, n=3))
    assert len(answer.choices) == 3
    assert all(c.content == "one two" and c.finish_reason == "length" for c in answer.choices)
    assert answer.usage["completion_tokens"] == 6


def test_reasoning_model_adds_reasoning() -> None:
    body = chat(user("why is the sky blue"), model="deepseek-ai-DeepSeek-R1-Distill-Llama-70B")
    choice = chat_answer(body).choices[0]
    assert choice.reasoning == "Let me think about: why is the sky blue"
    assert choice.content == "why is the sky blue"


def test_named_tool_gets_numbers_from_text() -> None:
    magic = tool("magic_function", {"input": {"type": "integer"}})
    weather = tool("get_weather", {"location": {"type": "string"}})
    body = chat(
        user("What is the value of magic_function(3)? Use the tool."), tools=[weather, magic]
    )
    assert calls_of(body) == [("magic_function", {"input": 3})]


def test_first_tool_when_none_named_and_forced_tool() -> None:
    magic = tool("magic_function", {"input": {"type": "integer"}})
    weather = tool("get_weather", {"location": {"type": "string"}})
    body = chat(user("What is the weather in San Francisco, CA?"), tools=[weather, magic])
    assert calls_of(body) == [("get_weather", {"location": "San Francisco"})]
    forced = {"type": "function", "function": {"name": "magic_function"}}
    assert calls_of({**body, "tool_choice": forced})[0][0] == "magic_function"
    assert calls_of({**body, "tool_choice": "required"})[0][0] == "get_weather"


def test_tool_choice_none_and_non_user_last_message_do_not_call() -> None:
    weather = tool("get_weather", {"location": {"type": "string"}})
    body = chat(user("weather in Rome"), tools=[weather], tool_choice="none")
    assert chat_answer(body).choices[0].content == "weather in Rome"


def test_several_tools_named_each_called_with_its_own_values() -> None:
    add = tool("add", {"a": {"type": "integer"}, "b": {"type": "integer"}})
    weather = tool("get_weather", {"city": {"type": "string"}})
    body = chat(user("get weather for 'Oslo' and add 2 and 3"), tools=[add, weather])
    assert calls_of(body) == [("get_weather", {"city": "Oslo"}), ("add", {"a": 2, "b": 3})]
    single = calls_of({**body, "parallel_tool_calls": False})
    assert single == [("get_weather", {"city": "Oslo"})]


def test_repeated_mentions_twice_and_both() -> None:
    weather = tool("get_weather", {"city": {"type": "string"}})
    time_tool = tool("get_time", {"city": {"type": "string"}})
    text = "call get_weather for 'Paris' and get_weather for 'Lima'"
    assert calls_of(chat(user(text), tools=[weather])) == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Lima"}),
    ]
    twice = calls_of(chat(user("check 'Oslo' and 'Rome', twice"), tools=[weather]))
    assert twice == [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Rome"})]
    both = calls_of(chat(user("use both for 'Kyiv'"), tools=[weather, time_tool]))
    assert [name for name, _ in both] == ["get_weather", "get_time"]


def test_tool_without_parameters_and_unicode_quoted_value() -> None:
    no_args = {"type": "function", "function": {"name": "magic_function_no_args"}}
    assert calls_of(chat(user("call magic_function_no_args()"), tools=[no_args])) == [
        ("magic_function_no_args", {})
    ]
    customer = tool("unicode_customer", {"customer_name": {"type": "string"}})
    text = "Create a customer named '你好啊集团' (Hello Group)"
    assert calls_of(chat(user(text), tools=[customer]))[0][1] == {"customer_name": "你好啊集团"}


def test_tool_call_ids_follow_earlier_calls() -> None:
    weather = tool("get_weather", {"city": {"type": "string"}})
    earlier = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "x", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
        ],
    }
    body = chat(
        user("a"), earlier, {"role": "tool", "tool_call_id": "x", "content": "r"}, user("Oslo")
    )
    body["tools"] = [weather]
    assert chat_answer(body).choices[0].tool_calls[0].id == "call_2"


def test_tool_results_are_the_answer() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = chat(
        user("weather?"),
        {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "c2"}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "warm"}]},
        tools=[tool("f")],
    )
    choice = chat_answer(body).choices[0]
    assert (choice.content, choice.finish_reason, choice.tool_calls) == ("sunny\nwarm", "stop", ())
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    body["messages"][-2:] = [{**body["messages"][-1], "content": image}]
    assert chat_answer(body).choices[0].content == "The tool returned an image."


def test_json_schema_response_format() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "P", "schema": schema}}
    body = chat(user("Alice is 30 years old"), response_format=response_format)
    assert json.loads(chat_answer(body).choices[0].content or "") == {"name": "Alice", "age": 30}


def test_json_object_mode_keys() -> None:
    text = "Return JSON with 'setup' and 'punchline' keys about cats."
    assert json_object_answer(text) == {"setup": text, "punchline": text}
    assert set(json_object_answer("Give JSON with keys name and city")) == {"name", "city"}
    assert set(json_object_answer("JSON with the keys name, city and age, for Paris")) == {
        "name",
        "city",
        "age",
    }
    assert json_object_answer("hello") == {"response": "hello"}
    body = chat(user("hello"), response_format={"type": "json_object"})
    assert json.loads(chat_answer(body).choices[0].content or "") == {"response": "hello"}


REACT_SYSTEM = """You have access to the following tools:
> Tool Name: multiply
Tool Description: Multiply two integers.
Tool Args: {"properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"], "type": "object"}

Thought: ...
Action: tool name (one of multiply)
Action Input: the input to the tool
Thought: I can answer without using any more tools.
Answer: [your answer here]
"""  # noqa: E501


def test_react_turns() -> None:
    system = {"role": "system", "content": REACT_SYSTEM}
    first = chat_answer(chat(system, user("multiply 6 and 7"))).choices[0].content or ""
    assert "Action: multiply" in first
    assert 'Action Input: {"a": 6, "b": 7}' in first
    body = chat(
        system,
        user("multiply 6 and 7"),
        {"role": "assistant", "content": first},
        user("Observation: 42"),
    )
    assert chat_answer(body).choices[0].content == (
        "Thought: I can answer without using any more tools. "
        "I'll use the user's language to answer\nAnswer: 42"
    )
    no_tools = {"role": "system", "content": REACT_SYSTEM.split("Thought:", 1)[1]}
    no_tools["content"] = "Thought: x\nAction Input: y\nAnswer: z"
    answer = chat_answer(chat(no_tools, user("hi there"))).choices[0].content or ""
    assert answer.endswith("Answer: hi there")


# ----------------------------------------------------------------------------- completions


def test_text_completion_continuation_and_lists() -> None:
    answer = completion_answer({"prompt": "Line one\nWrite a tagline", "n": 2})
    assert [c.content for c in answer.choices] == [" Write a tagline"] * 2
    answer = completion_answer({"prompt": ["a b c", "d"], "max_tokens": 2, "stop": ["zzz"]})
    assert [(c.content, c.finish_reason) for c in answer.choices] == [
        (" a b", "length"),
        (" d", "stop"),
    ]
    long_prompt = " ".join(["w"] * 300)
    assert completion_answer({"prompt": long_prompt}).choices[0].finish_reason == "length"
    assert completion_answer({"prompt": "x", "echo": True}).choices[0].content == "x x"


def test_bodies_have_the_documented_shapes() -> None:
    answer = chat_answer(chat(user("hi")))
    body = chat_completion_body(answer, completion_id="gen-1", created=1, model="m")
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi"}
    uncensored = chat_completion_body(
        answer, completion_id="gen-1", created=1, model="m", uncensored=True
    )
    assert uncensored["choices"][0]["message"]["tool_calls"] == []
    text = text_completion_body(
        completion_answer({"prompt": "p"}), completion_id="c", created=1, model="m"
    )
    assert set(text["choices"][0]) == {
        "text",
        "index",
        "logprobs",
        "finish_reason",
        "stop_reason",
        "prompt_logprobs",
    }
    listing = models_body(["a", "b"], 5)
    assert listing["object"] == "list"
    assert listing["data"][0] == {
        "id": "a",
        "object": "model",
        "created": 5,
        "owned_by": "modelslab",
    }


def test_scripted_answers() -> None:
    answer = scripted_answer(
        chat(user("x"), n=2),
        chat=True,
        content="hello",
        reasoning=None,
        finish_reason="stop",
        tool_calls=[("f", '{"a": 1}', None)],
        usage=None,
    )
    assert len(answer.choices) == 2
    assert answer.choices[0].finish_reason == "tool_calls"
    assert answer.choices[0].tool_calls[0].id == "call_1"
    text = scripted_answer(
        {"prompt": ["a", "b"]},
        chat=False,
        content="t",
        reasoning=None,
        finish_reason="length",
        tool_calls=[],
        usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    )
    assert [c.content for c in text.choices] == ["t", "t"]
    assert text.usage["total_tokens"] == 3


def test_select_tool_calls_unknown_forced_name() -> None:
    calls = select_tool_calls([ToolSpec("a", {})], {"name": "zzz"}, "text")
    assert calls == [("zzz", "{}")]


# ----------------------------------------------------------------------------- SSE


STREAM_CASES: list[dict[str, Any]] = [
    chat(user("Hello there, world!  ")),
    chat(user("why is the sky blue"), model="deepseek-ai-DeepSeek-R1-Distill-Llama-70B", n=2),
    chat(
        user("What is magic_function(3)?"),
        tools=[tool("magic_function", {"x": {"type": "integer"}})],
    ),
    chat(user("add 1 and 2 then add 3 and 4"), tools=[tool("add", {"a": {"type": "integer"}})]),
    chat(user("one two three"), max_tokens=2, stop=["three"]),
    chat(user("no args"), tools=[{"type": "function", "function": {"name": "ping"}}]),
]


@pytest.mark.parametrize("body", STREAM_CASES)
def test_chat_stream_reassembles_to_the_answer(body: dict[str, Any]) -> None:
    answer = chat_answer(body)
    events = chat_stream_events(
        answer, completion_id="gen-1", created=1, model="m", include_usage=True
    )
    assert events[0] == ": keep-alive\n\n"
    assert events[-1] == "data: [DONE]\n\n"
    assert all(event.endswith("\n\n") for event in events)
    rebuilt = reassemble_chat("".join(events))
    expected = flatten_chat(
        chat_completion_body(answer, completion_id="gen-1", created=1, model="m")
    )
    assert rebuilt == expected


def test_stream_without_usage_has_no_usage_chunk() -> None:
    events = chat_stream_events(
        chat_answer(chat(user("hi"))), completion_id="g", created=1, model="m", include_usage=False
    )
    assert all('"usage"' not in event for event in events)


def test_text_stream_reassembles() -> None:
    answer = completion_answer({"prompt": ["alpha beta", "gamma"], "n": 2, "max_tokens": 1})
    events = text_stream_events(
        answer, completion_id="cmpl-1", created=1, model="m", include_usage=True
    )
    rebuilt = reassemble_text("".join(events))
    expected = text_completion_body(answer, completion_id="cmpl-1", created=1, model="m")
    assert rebuilt == flatten_text(expected)


def test_long_stream_has_processing_comments_and_one_piece_per_word() -> None:
    words = " ".join(f"w{i}" for i in range(500))
    events = chat_stream_events(
        chat_answer(chat(user(words))), completion_id="g", created=1, model="m", include_usage=False
    )
    assert events.count(": OPENROUTER PROCESSING\n\n") >= 5
    assert sum('"content":' in event for event in events) == 501


# ----------------------------------------------------------------------------- replies


def test_reply_constructors_are_immutable_values() -> None:
    reply = Reply.text("hi", reasoning="r", usage={"prompt_tokens": 1})
    assert (reply.kind, reply.content, reply.reasoning, reply.usage) == (
        "answer",
        "hi",
        "r",
        (("prompt_tokens", 1),),
    )
    with pytest.raises(AttributeError):
        reply.content = "x"  # type: ignore[misc]
    call = Reply.tool_call("f", {"a": 1}, id="id1")
    assert call.calls == (("f", '{"a": 1}', "id1"),)
    assert Reply.tool_calls([("f", "{}"), ("g", {"b": 2})]).finish_reason == "tool_calls"
    with pytest.raises(ValueError):
        Reply.error(999, {})
    with pytest.raises(ValueError):
        Reply.slow(-1)
    limited = Reply.rate_limit(retry_after=3)
    assert limited.status == 429 and ("Retry-After", "3") in limited.headers
    assert json.loads(limited.body)["retry_after"] == 3
    assert Reply.rate_limit(header=False).headers == ()
    assert "retry_after" not in json.loads(Reply.rate_limit(body_field=False).body)
    assert Reply.html_error(502).content_type == "text/html"
    assert Reply.cut_stream(3).after_chunks == 3
    assert Reply.slow(0.5, Reply.text("x")).then == Reply.text("x")
