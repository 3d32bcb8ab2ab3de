"""One conformance suite over sync, async, stream and astream, against the local server.

Every test runs in the four modes. ``run_*`` return the list of responses a caller sees: one for
sync/async, every streamed response for stream/astream (the last is the full answer). Async
modes each run in a fresh event loop, so the suite also checks several loops in a row.

The model's answers are scripted (``Reply``): the tests check the requests we send and the
LlamaIndex objects we build from known answers, not what the demo model makes up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Iterable
from typing import Any, TypeVar

import pytest
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    ImageBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from llama_index_modelslab import ModelsLabLLM
from modelslab_core import (
    AuthenticationError,
    BadRequestError,
    IncompleteStreamError,
    InsufficientCreditsError,
    ModelsLabError,
    RateLimitError,
    ServerError,
)
from modelslab_core.testing import LocalModelsLab, Reply

MODES = ["sync", "async", "stream", "astream"]
STREAMING = {"stream", "astream"}
T = TypeVar("T")


def multiply(a: int, b: int) -> int:
    """Multiply two integers and return the product."""
    return a * b


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str
    age: int


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def _run(awaitable: Awaitable[T]) -> T:
    async def wrap() -> T:
        return await awaitable

    return asyncio.run(wrap())


def _drain(items: Iterable[T]) -> list[T]:
    return list(items)


def _adrain(make: Awaitable[AsyncIterator[T]]) -> list[T]:
    async def collect() -> list[T]:
        return [item async for item in await make]

    return asyncio.run(collect())


def run_chat(llm: ModelsLabLLM, mode: str, messages: list[ChatMessage], **kw: Any) -> list[Any]:
    if mode == "sync":
        return [llm.chat(messages, **kw)]
    if mode == "async":
        return [_run(llm.achat(messages, **kw))]
    if mode == "stream":
        return _drain(llm.stream_chat(messages, **kw))
    return _adrain(llm.astream_chat(messages, **kw))


def run_complete(llm: ModelsLabLLM, mode: str, prompt: str, **kw: Any) -> list[Any]:
    if mode == "sync":
        return [llm.complete(prompt, **kw)]
    if mode == "async":
        return [_run(llm.acomplete(prompt, **kw))]
    if mode == "stream":
        return _drain(llm.stream_complete(prompt, **kw))
    return _adrain(llm.astream_complete(prompt, **kw))


def run_tools(llm: ModelsLabLLM, mode: str, tools: list[Any], text: str, **kw: Any) -> list[Any]:
    if mode == "sync":
        return [llm.chat_with_tools(tools, text, **kw)]
    if mode == "async":
        return [_run(llm.achat_with_tools(tools, text, **kw))]
    if mode == "stream":
        return _drain(llm.stream_chat_with_tools(tools, text, **kw))
    return _adrain(llm.astream_chat_with_tools(tools, text, **kw))


def run_structured(llm: ModelsLabLLM, mode: str, text: str) -> list[Any]:
    prompt = PromptTemplate("Extract the person: {text}")
    if mode == "sync":
        return [llm.structured_predict(Person, prompt, text=text)]
    if mode == "async":
        return [_run(llm.astructured_predict(Person, prompt, text=text))]
    if mode == "stream":
        return _drain(llm.stream_structured_predict(Person, prompt, text=text))
    return _adrain(llm.astream_structured_predict(Person, prompt, text=text))


def check_stream_shape(mode: str, responses: list[Any]) -> None:
    """Streams: several responses, each with a str delta, cumulative text = joined deltas."""
    if mode not in STREAMING:
        assert len(responses) == 1
        return
    assert len(responses) > 1
    text = ""
    for response in responses:
        assert isinstance(response.delta, str)
        text += response.delta
        current = response.text if isinstance(response, CompletionResponse) else None
        current = current if current is not None else response.message.content
        assert current == text


# --- chat and complete -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_chat_sends_the_messages_and_returns_the_assistants_answer(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    messages = [
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="Tell me about otters please"),
    ]
    server.enqueue(Reply.text("Otters are playful river mammals."))
    responses = run_chat(llm, mode, messages)
    check_stream_shape(mode, responses)
    final = responses[-1]
    assert isinstance(final, ChatResponse)
    assert final.message.role == "assistant"
    assert final.message.content == "Otters are playful river mammals."
    (request,) = server.requests
    assert request.body is not None
    assert request.body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me about otters please"},
    ]
    assert request.body["stream"] is (mode in STREAMING)
    assert server.pending_replies == 0


@pytest.mark.parametrize("mode", MODES)
def test_complete_is_derived_from_chat(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    server.enqueue(Reply.text("Rivers run to the sea."))
    responses = run_complete(llm, mode, "Say something about rivers")
    check_stream_shape(mode, responses)
    assert isinstance(responses[-1], CompletionResponse)
    assert responses[-1].text == "Rivers run to the sea."
    (request,) = server.requests
    assert request.path.endswith("/api/v7/llm/chat/completions")
    assert (request.body or {})["messages"] == [
        {"role": "user", "content": "Say something about rivers"}
    ]
    assert server.pending_replies == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_text_completion_model_completes_on_the_completions_route(
    server: LocalModelsLab, mode: str
) -> None:
    llm = ModelsLabLLM(
        "ModelsLab/Llama-3.1-8b-Uncensored-Dare",
        api_key="test-key",
        base_url=server.completions_base_url,
    )
    server.enqueue(Reply.text(" there lived an otter."))
    responses = run_complete(llm, mode, "Once upon a time")
    check_stream_shape(mode, responses)
    assert responses[-1].text == " there lived an otter."
    (request,) = server.requests
    assert request.path == "/api/v6/completions"
    assert request.body is not None and request.body["prompt"] == "Once upon a time"
    assert server.pending_replies == 0


@pytest.mark.parametrize("mode", MODES)
def test_chat_on_a_text_completion_model(server: LocalModelsLab, mode: str) -> None:
    llm = ModelsLabLLM(
        api_key="test-key", base_url=server.completions_base_url, is_chat_model=False
    )
    server.enqueue(Reply.text("a text completion", usage={"total_tokens": 9}))
    responses = run_chat(llm, mode, user("hello from chat"))
    check_stream_shape(mode, responses)
    assert responses[-1].message.content == "a text completion"
    # As LlamaIndex's own completion-to-chat helpers (and its OpenAI LLM on a completion
    # model) place them: the completion's extras ride on the message.
    assert responses[-1].message.additional_kwargs["total_tokens"] == 9
    (request,) = server.requests
    assert request.path == "/api/v6/completions"
    assert "user: hello from chat" in request.body["prompt"]  # type: ignore[index]


@pytest.mark.parametrize("mode", MODES)
def test_usage_in_additional_kwargs_and_raw(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    server.enqueue(
        Reply.text("counted", usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})
    )
    final = run_chat(llm, mode, user("count me"))[-1]
    expected = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert final.additional_kwargs == expected
    assert final.raw.usage.model_dump() == expected
    if mode in STREAMING:
        assert server.requests[0].body["stream_options"] == {"include_usage": True}  # type: ignore[index]


@pytest.mark.parametrize("mode", MODES)
def test_reasoning_becomes_a_thinking_block(server: LocalModelsLab, mode: str) -> None:
    llm = ModelsLabLLM(
        "deepseek-ai-DeepSeek-R1-Distill-Llama-70B", api_key="test-key", base_url=server.base_url
    )
    server.enqueue(Reply.text("The answer is 4.", reasoning="Two plus two makes four."))
    responses = run_chat(llm, mode, user("What is 2+2?"))
    final = responses[-1]
    thinking = [b for b in final.message.blocks if isinstance(b, ThinkingBlock)]
    assert [b.content for b in thinking] == ["Two plus two makes four."]
    assert final.message.content == "The answer is 4."
    if mode in STREAMING:
        deltas = "".join(r.additional_kwargs.get("thinking_delta", "") for r in responses)
        assert deltas == "Two plus two makes four."


@pytest.mark.parametrize("mode", MODES)
def test_an_image_block_is_sent_as_an_image_url_part(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    message = ChatMessage(
        role="user",
        blocks=[TextBlock(text="Describe it"), ImageBlock(url="https://example.com/a.png")],
    )
    run_chat(llm, mode, [message])
    content = server.requests[0].body["messages"][0]["content"]  # type: ignore[index]
    assert content == [
        {"type": "text", "text": "Describe it"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]


@pytest.mark.parametrize("mode", sorted(STREAMING))
def test_last_streamed_response_equals_the_non_streamed_one(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    twin = "sync" if mode == "stream" else "async"
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    replies = [
        Reply.text("Plain words here", reasoning="thinking it over", usage=usage),
        Reply.tool_calls([("multiply", {"a": 2, "b": 3}), ("add", {"a": 1, "b": 1})], "Calling"),
    ]
    for reply in replies:
        server.enqueue(reply, reply)
        whole = run_chat(llm, twin, user("go"))[-1]
        streamed = run_chat(llm, mode, user("go"))[-1]
        assert streamed.message == whole.message
        assert llm.get_tool_calls_from_response(
            streamed, error_on_no_tool_call=False
        ) == llm.get_tool_calls_from_response(whole, error_on_no_tool_call=False)
        assert {k: v for k, v in streamed.additional_kwargs.items() if k != "thinking_delta"} == (
            whole.additional_kwargs
        )


# --- tools -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_chat_with_tools_sends_the_tools_and_returns_the_call_with_its_id(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    tools = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]
    server.enqueue(Reply.tool_call("multiply", {"a": 6, "b": 7}, id="call_6x7"))
    responses = run_tools(llm, mode, tools, "Please multiply 6 and 7", tool_required=True)
    (selection,) = llm.get_tool_calls_from_response(responses[-1])
    assert (selection.tool_name, selection.tool_kwargs) == ("multiply", {"a": 6, "b": 7})
    assert selection.tool_id == "call_6x7"
    (request,) = server.requests
    body = request.body or {}
    assert body["messages"] == [{"role": "user", "content": "Please multiply 6 and 7"}]
    assert [t["function"]["name"] for t in body["tools"]] == ["add", "multiply"]
    assert body["tools"][1]["function"]["parameters"]["required"] == ["a", "b"]
    assert body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False
    assert body["stream"] is (mode in STREAMING)
    assert server.pending_replies == 0


@pytest.mark.parametrize("mode", MODES)
def test_forced_tool_choice_and_parallel_calls(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    tools = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]
    server.enqueue(Reply.tool_call("add", {"a": 2, "b": 5}))
    forced = run_tools(llm, mode, tools, "numbers 2 and 5", tool_choice="add")
    (selection,) = llm.get_tool_calls_from_response(forced[-1])
    assert (selection.tool_name, selection.tool_kwargs) == ("add", {"a": 2, "b": 5})
    body = server.requests[0].body or {}
    assert body["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    server.enqueue(Reply.tool_calls([("add", {"a": 1, "b": 2}), ("multiply", {"a": 3, "b": 4})]))
    responses = run_tools(llm, mode, tools, "both", allow_parallel_tool_calls=True)
    selections = llm.get_tool_calls_from_response(responses[-1])
    assert [(s.tool_name, s.tool_kwargs) for s in selections] == [
        ("add", {"a": 1, "b": 2}),
        ("multiply", {"a": 3, "b": 4}),
    ]
    assert (server.requests[1].body or {})["parallel_tool_calls"] is True
    assert server.pending_replies == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_single_tool_call_kept_when_parallel_is_off(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    tools = [FunctionTool.from_defaults(add), FunctionTool.from_defaults(multiply)]
    server.enqueue(Reply.tool_calls([("add", {"a": 1, "b": 2}), ("multiply", {"a": 3, "b": 4})]))
    final = run_tools(llm, mode, tools, "both")[-1]
    assert [b.tool_name for b in final.message.blocks if isinstance(b, ToolCallBlock)] == ["add"]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_predict_and_call_runs_the_called_tool_without_a_second_request(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    tools = [FunctionTool.from_defaults(multiply)]
    server.enqueue(Reply.tool_call("multiply", {"a": 12, "b": 3}))
    if mode == "sync":
        result = llm.predict_and_call(tools, "multiply 12 by 3")
    else:
        result = _run(llm.apredict_and_call(tools, "multiply 12 by 3"))
    assert result.response == "36"
    assert result.sources[0].raw_output == 36
    assert result.sources[0].raw_input == {"args": (), "kwargs": {"a": 12, "b": 3}}
    (request,) = server.requests  # the tool's output is the answer: no second request
    body = request.body or {}
    assert [t["function"]["name"] for t in body["tools"]] == ["multiply"]
    assert body["messages"] == [{"role": "user", "content": "multiply 12 by 3"}]
    assert server.pending_replies == 0


def test_tool_results_go_back_with_their_call_id(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    tools = [FunctionTool.from_defaults(multiply)]
    server.enqueue(
        Reply.tool_call("multiply", {"a": 4, "b": 5}, id="call_4x5"),
        Reply.text("4 times 5 is 20."),
    )
    first = llm.chat_with_tools(tools, "multiply 4 and 5")
    (selection,) = llm.get_tool_calls_from_response(first)
    assert (selection.tool_id, selection.tool_kwargs) == ("call_4x5", {"a": 4, "b": 5})
    history = [
        *user("multiply 4 and 5"),
        first.message,
        ChatMessage(
            role="tool", content="20", additional_kwargs={"tool_call_id": selection.tool_id}
        ),
    ]
    final = llm.chat_with_tools(tools, chat_history=history)
    assert final.message.content == "4 times 5 is 20."
    assert llm.get_tool_calls_from_response(final, error_on_no_tool_call=False) == []
    sent = (server.requests[1].body or {})["messages"]
    assert sent[0] == {"role": "user", "content": "multiply 4 and 5"}
    (call,) = sent[1]["tool_calls"]
    assert (call["id"], call["function"]["name"]) == ("call_4x5", "multiply")
    assert json.loads(call["function"]["arguments"]) == {"a": 4, "b": 5}
    assert sent[2] == {"role": "tool", "content": "20", "tool_call_id": "call_4x5"}
    assert len(server.requests) == 2 and server.pending_replies == 0


# --- structured output -------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("function_calling", [True, False])
def test_structured_output_by_tool_call_or_json_schema_gives_the_object(
    server: LocalModelsLab, mode: str, function_calling: bool
) -> None:
    llm = ModelsLabLLM(
        api_key="test-key", base_url=server.base_url, is_function_calling_model=function_calling
    )
    alice = {"name": "Alice Smith", "age": 31}
    server.enqueue(
        Reply.tool_call("Person", alice) if function_calling else Reply.text(json.dumps(alice))
    )
    text = 'The new hire is "Alice Smith", 31 years old.'
    results = run_structured(llm, mode, text)
    final = results[-1]
    assert isinstance(final, Person)
    assert final.name == "Alice Smith"
    assert final.age == 31
    if mode in STREAMING:
        assert len(results) > 1  # partial objects, then the whole one
    (request,) = server.requests
    body = request.body or {}
    assert text in str(body["messages"])
    assert body["stream"] is (mode in STREAMING)
    if function_calling:
        (tool,) = body["tools"]
        assert tool["function"]["name"] == "Person"
        assert tool["function"]["parameters"]["required"] == ["name", "age"]
        # LlamaIndex's streaming programs leave the choice to the model (as with its OpenAI LLM).
        assert body["tool_choice"] == ("auto" if mode in STREAMING else "required")
        assert "response_format" not in body
    else:
        assert "tools" not in body
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["name"] == "Person"
        assert body["response_format"]["json_schema"]["schema"]["required"] == ["name", "age"]
    assert server.pending_replies == 0


@pytest.mark.parametrize("mode", MODES)
def test_json_mode_falls_back_to_json_object(server: LocalModelsLab, mode: str) -> None:
    llm = ModelsLabLLM(
        api_key="test-key", base_url=server.base_url, is_function_calling_model=False
    )
    server.enqueue(
        Reply.openai_error(400, "response_format json_schema is not supported"),
        Reply.text('Here you go: {"name": "Bob", "age": 40}'),
    )
    final = run_structured(llm, mode, "Bob is 40")[-1]
    assert (final.name, final.age) == ("Bob", 40)
    formats = [(r.body or {})["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object"]


def test_as_structured_llm_answers_with_the_object_and_its_json(
    llm: ModelsLabLLM, server: LocalModelsLab
) -> None:
    server.enqueue(Reply.tool_call("Person", {"name": "Carol Jones", "age": 28}))
    structured = llm.as_structured_llm(Person)
    response = structured.chat(user('Record "Carol Jones" who is 28'))
    assert isinstance(response.raw, Person)
    assert (response.raw.name, response.raw.age) == ("Carol Jones", 28)
    assert json.loads(response.message.content or "") == {"name": "Carol Jones", "age": 28}
    (request,) = server.requests
    body = request.body or {}
    assert [t["function"]["name"] for t in body["tools"]] == ["Person"]
    assert body["tool_choice"] == "required"
    assert 'Record "Carol Jones" who is 28' in str(body["messages"])
    assert server.pending_replies == 0


# --- errors ------------------------------------------------------------------------------------

ERRORS = [
    (Reply.openai_error(401, "Incorrect API key provided"), AuthenticationError, "Incorrect API"),
    (Reply.invalid_key_envelope(), AuthenticationError, "Invalid Api Key"),
    (Reply.insufficient_credits(), InsufficientCreditsError, None),
    (Reply.validation_error(), BadRequestError, "The messages field is required."),
    (Reply.rate_limit(retry_after=0), RateLimitError, "Rate limit exceeded"),
    (Reply.server_error(503, "Upstream is down"), ServerError, "Upstream is down"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("reply", "error", "message"), ERRORS)
def test_errors_are_the_adapters_typed_errors(
    server: LocalModelsLab,
    mode: str,
    reply: Reply,
    error: type[Exception],
    message: str | None,
) -> None:
    # A 429 spends no retry (it waits for a place at the account gate): with retries off it is
    # raised at once, like every other error here after its one retry.
    retries = 0 if error is RateLimitError else 1
    llm = ModelsLabLLM(api_key="test-key", base_url=server.base_url, max_retries=retries)
    server.enqueue(reply, reply)
    with pytest.raises(error) as info:
        run_chat(llm, mode, user("hello"))
    if message is not None:
        assert message in str(info.value)
    with pytest.raises(ModelsLabError):
        server.enqueue(reply, reply)
        run_complete(llm, mode, "hello")


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_cut_stream_is_an_error_not_a_short_answer(
    llm: ModelsLabLLM, server: LocalModelsLab, mode: str
) -> None:
    server.enqueue(*[Reply.cut_stream(after_chunks=2)] * 3)
    with pytest.raises(IncompleteStreamError):
        run_chat(llm, mode, user("a long enough sentence to be cut in pieces"))


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_error_event_inside_a_stream(llm: ModelsLabLLM, server: LocalModelsLab, mode: str) -> None:
    server.enqueue(*[Reply.stream_error_event("Upstream provider error", after_chunks=1)] * 3)
    with pytest.raises(ModelsLabError, match="Upstream provider error"):
        run_chat(llm, mode, user("hello there friend"))


def test_a_rate_limit_is_retried_then_answered(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    server.enqueue(Reply.rate_limit(retry_after=0), Reply.text("after retry"))
    assert llm.complete("x").text == "after retry"
    assert len(server.requests) == 2


def test_one_llm_from_two_event_loops(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    for loop in ("first loop", "second loop"):
        server.enqueue(Reply.text(f"answered in the {loop}"), Reply.text(f"streamed in the {loop}"))
        assert _run(llm.acomplete(loop)).text == f"answered in the {loop}"
        streamed = _adrain(llm.astream_chat(user(loop)))
        assert streamed[-1].message.content == f"streamed in the {loop}"
    assert len(server.requests) == 4 and server.pending_replies == 0
