"""Unit tests of the local server's pure parts: the demo model, answer bodies, SSE, replies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelslab_core.testing import Reply
from modelslab_core.testing._demo_model import (
    Values,
    chat_choice,
    completion_choices,
    fill_schema,
)
from modelslab_core.testing._wire import (
    answer_body,
    message_text,
    prompts,
    request_error,
    split_pieces,
    stream_events,
    wants_stream,
    wants_usage,
)
from tests.testing.reassemble import flatten_chat, flatten_text, reassemble_chat, reassemble_text


def user(text: Any) -> dict[str, Any]:
    return {"role": "user", "content": text}


def chat(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "meta-llama-3-8B-instruct", "messages": list(messages), **fields}


def tool(name: str, properties: dict[str, Any] | None = None) -> dict[str, Any]:
    parameters = {
        "type": "object",
        "properties": properties or {},
        "required": list(properties or {}),
    }
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def body_of(request: dict[str, Any]) -> dict[str, Any]:
    """The demo model's whole answer to ``request``, as the server sends it."""
    is_chat = "messages" in request
    choices = [chat_choice(request)] if is_chat else completion_choices(request)
    return answer_body(request, choices, chat=is_chat, completion_id="id-1", created=1)


def content(request: dict[str, Any]) -> str | None:
    return body_of(request)["choices"][0]["message"]["content"]


def calls_of(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    [choice, *_] = body_of(request)["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    return [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls]


# ----------------------------------------------------------------------------- text and values


def test_message_text_reads_strings_parts_and_nothing() -> None:
    assert message_text("hi") == "hi"
    assert message_text(None) == ""
    parts = [{"type": "text", "text": "one"}, {"type": "image_url", "image_url": {}}, "two"]
    assert message_text(parts) == "one\ntwo"
    assert message_text({"type": "text", "text": "solo"}) == "solo"
    assert message_text(42) == "42"


def test_request_fields_read_loosely() -> None:
    assert wants_stream({"stream": "true"}) and wants_stream({"streaming": 1})
    assert not wants_stream({"stream": "no"}) and not wants_stream({"stream": 2})
    assert wants_usage({"stream_options": {"include_usage": "yes"}})
    assert prompts([1, 2, 3]) == ["1 2 3"]
    assert prompts(["a", {"b": 1}]) == ["a", '{"b": 1}']


@pytest.mark.parametrize("text", ["", "one", " lead and trail  ", "a\n\nb\tc", "x  y  "])
def test_split_pieces_concatenate_to_the_text(text: str) -> None:
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert all(piece for piece in pieces)


def test_values_hand_out_numbers_then_quoted_strings_names_and_the_text() -> None:
    text = "Add 2 and -3.5 to 'Bob' then ask Mary Jane about \u201cz w\u201d"
    values = Values(text)
    assert [values.number() for _ in range(3)] == [2.0, -3.5, 1.0]
    assert [values.string() for _ in range(5)] == ["Bob", "z w", "Mary Jane", "Add", text]
    assert Values("What is the weather in San Francisco, CA?").strings == [
        "San Francisco",
        "CA",
        "What",
    ]
    assert Values("call Oslo", exclude=["oslo"]).strings == []


def test_fill_schema_required_properties_refs_unions_enums_arrays() -> None:
    schema = {
        "$defs": {
            "Place": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
                "required": ["city"],
            },
        },
        "type": "object",
        "properties": {
            "place": {"$ref": "#/$defs/Place"},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "alerts": {"type": "boolean"},
            "ratio": {"type": "number"},
            "note": {"type": "string"},
        },
        "required": ["place", "unit", "days", "tags", "alerts", "ratio"],
    }
    result = fill_schema(schema, Values("Weather for Oslo in fahrenheit for 3 days, 0.5"))
    assert result == {
        "place": {"city": "Oslo"},
        "unit": "fahrenheit",
        "days": 3,
        "tags": ["Weather"],
        "alerts": True,
        "ratio": 0.5,
    }
    assert fill_schema({}, Values("anything")) == "anything"


def test_fill_schema_consts_nullable_types_and_endless_refs() -> None:
    node = {
        "type": "object",
        "properties": {
            "kind": {"const": "point"},
            "size": {"type": ["null", "integer"]},
            "next": {"$ref": "#/$defs/Node"},
        },
        "required": ["kind", "size", "next"],
    }
    result = fill_schema({"$defs": {"Node": node}, **node}, Values("size 4"))
    assert result["kind"] == "point" and result["size"] == 4
    depth = 0
    while isinstance(result, dict):  # the self-reference ends with None, 9 levels down
        result, depth = result["next"], depth + 1
    assert (result, depth) == (None, 9)


# ----------------------------------------------------------------------------- chat answers


def test_echo_of_the_last_user_message_with_word_usage() -> None:
    request = chat(
        {"role": "system", "content": "be nice"},
        user("first"),
        {"role": "assistant", "content": "ok"},
        user([{"type": "text", "text": "second"}, {"type": "text", "text": "part"}]),
    )
    body = body_of(request)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "second\npart"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 2, "total_tokens": 8}
    assert content(chat(user("question"), {"role": "assistant", "content": "x"})) == "question"
    assert content(chat(user(""))) == "I received an empty message."


def test_stop_max_tokens_and_n() -> None:
    assert content(chat(user("hi there you all"), stop="you")) == "hi there "
    body = body_of(chat(user("one two three four"), max_tokens=2, n=3))
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert all(c["message"]["content"] == "one two" for c in body["choices"])
    assert all(c["finish_reason"] == "length" for c in body["choices"])
    assert body["usage"]["completion_tokens"] == 6


def test_reasoning_model_adds_reasoning() -> None:
    request = chat(user("why is the sky blue"), model="deepseek-ai-DeepSeek-R1-Distill-Llama-70B")
    message = body_of(request)["choices"][0]["message"]
    assert message["reasoning_content"] == "Let me think about: why is the sky blue"
    assert message["content"] == "why is the sky blue"


def test_named_tool_else_first_tool_else_forced_tool() -> None:
    magic = tool("magic_function", {"input": {"type": "integer"}})
    weather = tool("get_weather", {"location": {"type": "string"}})
    named = chat(user("What is magic_function(3)? Use the tool."), tools=[weather, magic])
    assert calls_of(named) == [("magic_function", {"input": 3})]
    request = chat(user("What is the weather in San Francisco, CA?"), tools=[weather, magic])
    assert calls_of(request) == [("get_weather", {"location": "San Francisco"})]
    forced = {"type": "function", "function": {"name": "magic_function"}}
    assert calls_of({**request, "tool_choice": forced})[0][0] == "magic_function"
    assert calls_of({**request, "tool_choice": "required"})[0][0] == "get_weather"
    assert calls_of({**request, "tool_choice": "unknown_tool"}) == [("unknown_tool", {})]
    assert content({**request, "tool_choice": "none"}) == request["messages"][0]["content"]


def test_several_tools_named_each_called_in_the_texts_order() -> None:
    add = tool("add", {"a": {"type": "integer"}, "b": {"type": "integer"}})
    weather = tool("get_weather", {"city": {"type": "string"}})
    request = chat(user("get weather for 'Oslo' and add 2 and 3"), tools=[add, weather])
    assert calls_of(request) == [("get_weather", {"city": "Oslo"}), ("add", {"a": 2, "b": 3})]
    single = calls_of({**request, "parallel_tool_calls": False})
    assert single == [("get_weather", {"city": "Oslo"})]


def test_tool_without_parameters_and_unicode_quoted_value() -> None:
    no_args = {"type": "function", "function": {"name": "magic_function_no_args"}}
    assert calls_of(chat(user("call magic_function_no_args()"), tools=[no_args])) == [
        ("magic_function_no_args", {})
    ]
    customer = tool("unicode_customer", {"customer_name": {"type": "string"}})
    text = "Create a customer named '你好啊集团' (Hello Group)"
    assert calls_of(chat(user(text), tools=[customer]))[0][1] == {"customer_name": "你好啊集团"}


def test_tool_call_ids_follow_earlier_calls_and_results_are_the_answer() -> None:
    call = {"id": "x", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    earlier = {"role": "assistant", "content": None, "tool_calls": [call, {**call, "id": "y"}]}
    results = [
        {"role": "tool", "tool_call_id": "x", "content": "sunny"},
        {"role": "tool", "tool_call_id": "y", "content": [{"type": "text", "text": "warm"}]},
    ]
    request = chat(user("weather?"), earlier, *results, tools=[tool("f")])
    body = body_of(request)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "sunny\nwarm"}
    assert body["choices"][0]["finish_reason"] == "stop"
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    request["messages"][-2:] = [{**results[0], "content": image}]
    assert content(request) == "The tool returned no text."
    request["messages"].append(user("and Oslo?"))
    [new_call] = body_of(request)["choices"][0]["message"]["tool_calls"]
    assert new_call["id"] == "call_3"


def test_a_forced_tool_wins_after_a_tool_result_too() -> None:
    """After a tool result, a forced ``tool_choice`` still gets a tool call (a tool not called
    yet, from the result's values): an agent's structured-output tool is called, not skipped."""
    call = {"id": "x", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    earlier = {"role": "assistant", "content": None, "tool_calls": [call]}
    result = {"role": "tool", "tool_call_id": "x", "content": "Oslo has 700000 people"}
    answer = tool("Answer", {"city": {"type": "string"}, "people": {"type": "integer"}})
    request = chat(user("people in Oslo?"), earlier, result, tools=[tool("lookup"), answer])
    expected = [("Answer", {"city": "Oslo", "people": 700000})]
    assert calls_of({**request, "tool_choice": "required"}) == expected
    named = {"type": "function", "function": {"name": "Answer"}}
    assert calls_of({**request, "tool_choice": named}) == expected
    assert calls_of({**request, "tool_choice": "lookup"})[0][0] == "lookup"  # named: even again
    assert content(request) == "Oslo has 700000 people"  # "auto": the result is the answer
    assert content({**request, "tool_choice": "none"}) == "Oslo has 700000 people"


def test_json_schema_and_json_object_response_formats() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    response_format = {"type": "json_schema", "json_schema": {"name": "P", "schema": schema}}
    request = chat(user("Alice is 30 years old"), response_format=response_format)
    assert json.loads(content(request) or "") == {"name": "Alice", "age": 30}

    def json_mode(text: str) -> Any:
        return json.loads(content(chat(user(text), response_format={"type": "json_object"})) or "")

    text = "Return JSON with 'setup' and 'punchline' keys about cats."
    assert json_mode(text) == {"setup": text, "punchline": text}
    assert set(json_mode("JSON with the keys name, city and age, for Paris")) == {
        "name",
        "city",
        "age",
    }
    assert json_mode("hello") == {"response": "hello"}


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


def test_a_react_prompt_gets_an_action_then_the_answer_to_its_observation() -> None:
    system = {"role": "system", "content": REACT_SYSTEM}
    first = content(chat(system, user("multiply 6 and 7"))) or ""
    assert "Action: multiply" in first
    assert 'Action Input: {"a": 6, "b": 7}' in first
    observed = chat(
        system,
        user("multiply 6 and 7"),
        {"role": "assistant", "content": first},
        user("Observation: 42"),
    )
    assert content(observed) == (
        "Thought: I can answer without using any more tools. "
        "I'll use the user's language to answer\nAnswer: 42"
    )
    unreadable = REACT_SYSTEM.replace('Tool Args: {"properties"', "Tool Args: {properties")
    first = content(chat({"role": "system", "content": unreadable}, user("multiply 6 and 7")))
    assert "Action: multiply\nAction Input: {}" in (first or "")
    no_tools = {"role": "system", "content": "Thought: x\nAction Input: y\nAnswer: z"}
    assert (content(chat(no_tools, user("hi there"))) or "").endswith("Answer: hi there")


# ----------------------------------------------------------------------------- completions


def test_text_completion_continuation_lists_and_echo() -> None:
    body = body_of({"prompt": "Line one\nWrite a tagline", "n": 2})
    assert [c["text"] for c in body["choices"]] == [" Write a tagline"] * 2
    assert set(body["choices"][0]) == {
        "text",
        "index",
        "logprobs",
        "finish_reason",
        "stop_reason",
        "prompt_logprobs",
    }
    body = body_of({"prompt": ["a b c", "d"], "max_tokens": 2, "stop": ["zzz"]})
    assert [(c["text"], c["finish_reason"]) for c in body["choices"]] == [
        (" a b", "length"),
        (" d", "stop"),
    ]
    assert body_of({"prompt": " ".join(["w"] * 300)})["choices"][0]["finish_reason"] == "length"
    assert body_of({"prompt": "x", "echo": True})["choices"][0]["text"] == "x x"


def test_a_request_without_messages_or_prompt_gets_modelslabs_message() -> None:
    assert request_error({}, chat=True) == "The messages field is required."
    assert request_error({"messages": []}, chat=True) == "The messages field is required."
    assert request_error({"messages": ["x"]}, chat=True) is not None
    assert request_error(chat(user("hi")), chat=True) is None
    assert request_error({}, chat=False) == "The prompt field is required."
    assert request_error({"prompt": ["a"]}, chat=False) is None


# ----------------------------------------------------------------------------- SSE


STREAM_CASES: list[dict[str, Any]] = [
    chat(user("Hello there, world!  ")),
    chat(user("why is the sky blue"), model="deepseek-ai-DeepSeek-R1-Distill-Llama-70B", n=2),
    chat(user("What is f(3)?"), tools=[tool("f", {"x": {"type": "integer"}})]),
    chat(user("add 1 and 2 then add 3 and 4"), tools=[tool("add", {"a": {"type": "integer"}})]),
    chat(user("one two three"), max_tokens=2, stop=["three"]),
    chat(user("no args"), tools=[{"type": "function", "function": {"name": "ping"}}]),
]


@pytest.mark.parametrize("request_body", STREAM_CASES)
def test_chat_stream_reassembles_to_the_answer(request_body: dict[str, Any]) -> None:
    body = body_of(request_body)
    events = stream_events(body, include_usage=True)
    assert events[0] == ": keep-alive\n\n"
    assert events[-1] == "data: [DONE]\n\n"
    assert all(event.endswith("\n\n") for event in events)
    assert reassemble_chat("".join(events)) == flatten_chat(body)
    assert all('"usage"' not in event for event in stream_events(body, include_usage=False))


def test_a_text_stream_reassembles_to_the_whole_completion() -> None:
    body = body_of({"prompt": ["alpha beta", "gamma"], "n": 2, "max_tokens": 1})
    events = stream_events(body, include_usage=True)
    assert reassemble_text("".join(events)) == flatten_text(body)


def test_long_stream_has_processing_comments_and_one_piece_per_word() -> None:
    events = stream_events(body_of(chat(user(" ".join(["w"] * 500)))), include_usage=False)
    assert events.count(": OPENROUTER PROCESSING\n\n") >= 5
    assert sum('"content":' in event for event in events) == 501


# ----------------------------------------------------------------------------- replies


def test_replies_are_immutable_values_and_bad_arguments_are_refused() -> None:
    reply = Reply.text("hi", reasoning="r", usage={"prompt_tokens": 1})
    assert reply == Reply.text("hi", reasoning="r", usage={"prompt_tokens": 1})
    assert hash(reply) == hash(Reply.text("hi", reasoning="r", usage={"prompt_tokens": 1}))
    with pytest.raises(AttributeError):
        reply.content = "x"  # type: ignore[misc]
    call = Reply.tool_call("f", {"a": 1}, id="id1")
    assert call == Reply.tool_call("f", '{"a": 1}', id="id1")  # a dict or its JSON: one reply
    assert Reply.tool_calls([("f", "{}"), ("g", {"b": 2})]).finish_reason == "tool_calls"
    with pytest.raises(ValueError):
        Reply.tool_calls([("f", "{}")], ids=[])
    with pytest.raises(ValueError):
        Reply.error(999, {})
    with pytest.raises(ValueError):
        Reply.slow(-1)
    with pytest.raises(ValueError):
        Reply.keep_alive(then=Reply.server_error())
    limited = Reply.rate_limit(retry_after=3)
    assert limited.status == 429 and ("Retry-After", "3") in limited.headers
    assert json.loads(limited.body)["retry_after"] == 3
    assert Reply.rate_limit(header=False).headers == ()
    assert "retry_after" not in json.loads(Reply.rate_limit(body_field=False).body)
    assert Reply.html_error(502).content_type == "text/html"
    assert Reply.cut_stream(3).after_chunks == 3
    assert Reply.slow(0.5, Reply.text("x")).then == Reply.text("x")
