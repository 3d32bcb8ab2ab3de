"""Hostile servers and bad input through LlamaIndex, over the local server's sockets: the
JSON-mode fallback of structured output answers only a refused response format, bad numbers and
nameless tools are refused before any request, and a usage chunk with ``"choices": null`` keeps
the answer."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool, ToolMetadata
from pydantic import BaseModel

from llama_index_modelslab import ModelsLabLLM
from modelslab_core import BadRequestError, InvalidSettingError, ParameterError
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "test-key"
MODES = ["sync", "async", "stream", "astream"]


class Person(BaseModel):
    name: str
    age: int


def _drain(gen: Iterator[Any]) -> list[Any]:
    return list(gen)


def _adrain(coro: Any) -> list[Any]:
    async def run() -> list[Any]:
        gen: AsyncIterator[Any] = await coro
        return [item async for item in gen]

    return asyncio.run(run())


def run_structured(llm: ModelsLabLLM, mode: str, text: str) -> list[Any]:
    prompt = PromptTemplate("Extract the person: {text}")
    if mode == "sync":
        return [llm.structured_predict(Person, prompt, text=text)]
    if mode == "async":
        return [asyncio.run(llm.astructured_predict(Person, prompt, text=text))]
    if mode == "stream":
        return _drain(llm.stream_structured_predict(Person, prompt, text=text))
    return _adrain(llm.astream_structured_predict(Person, prompt, text=text))


def json_mode_llm(server: LocalModelsLab) -> ModelsLabLLM:
    return ModelsLabLLM(api_key=KEY, base_url=server.base_url, is_function_calling_model=False)


# --- structured output: the fallback, in all four places ----------------------------------------

OVERFLOW = "This model's maximum context length is 8192 tokens. Please reduce the length."


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "refusal",
    [
        Reply.openai_error(400, OVERFLOW),
        Reply.openai_error(400, "The model `nope` does not exist"),
        Reply.error(200, {"status": "error", "message": "The prompt field is required."}),
        Reply.error(422, {"message": "The messages field is required."}),
    ],
    ids=["context-length", "unknown-model", "envelope", "422"],
)
def test_other_bad_requests_are_raised_not_retried_in_json_mode(
    server: LocalModelsLab, mode: str, refusal: Reply
) -> None:
    """Only a refused response format is asked again in JSON mode: a context-length error (which
    JSON mode's longer prompt would only worsen) or another bad request is raised after one
    request."""
    server.enqueue(refusal, Reply.text('{"name": "Bob", "age": 40}'))
    with pytest.raises(BadRequestError):
        run_structured(json_mode_llm(server), mode, "Bob is 40")
    assert len(server.requests) == 1


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "refusal",
    [
        Reply.openai_error(400, "response_format json_schema is not supported"),
        Reply.error(
            400,
            {"error": {"message": "Invalid parameter", "type": "invalid_request_error",
                       "param": "response_format", "code": None}},
        ),
        Reply.error(422, {"detail": "Structured output (json schema) is unavailable"}),
    ],
    ids=["message", "param", "422-json-schema"],
)  # fmt: skip
def test_a_refused_response_format_still_falls_back_to_json_mode(
    server: LocalModelsLab, mode: str, refusal: Reply
) -> None:
    server.enqueue(refusal, Reply.text('{"name": "Bob", "age": 40}'))
    final = run_structured(json_mode_llm(server), mode, "Bob is 40")[-1]
    assert (final.name, final.age) == ("Bob", 40)
    formats = [(r.body or {})["response_format"]["type"] for r in server.requests]
    assert formats == ["json_schema", "json_object"]


def test_a_structured_stream_sends_nothing_until_it_is_read(server: LocalModelsLab) -> None:
    llm = json_mode_llm(server)
    prompt = PromptTemplate("Extract the person: {text}")
    stream = llm.stream_structured_predict(Person, prompt, text="Bob is 40")
    astream = asyncio.run(llm.astream_structured_predict(Person, prompt, text="Bob is 40"))
    assert server.requests == []
    server.enqueue(Reply.text('{"name": "Bob", "age": 40}'))
    assert list(stream)[-1] == Person(name="Bob", age=40)
    assert len(server.requests) == 1
    del astream


# --- bad numbers and nameless tools -------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"max_tokens": True}, {"temperature": math.nan}, {"temperature": math.inf}],
)
def test_bad_numbers_are_refused_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ParameterError, match=next(iter(kwargs))):
        ModelsLabLLM(api_key=KEY, **kwargs)


@pytest.mark.parametrize("model", [123, ["gpt"], b"meta-llama-3-8B-instruct"])
def test_a_model_that_is_not_an_id_is_refused_naming_the_setting(model: Any) -> None:
    with pytest.raises(InvalidSettingError, match="model must be a model id") as caught:
        ModelsLabLLM(model=model, api_key=KEY)
    assert caught.value.field == "model"


@pytest.mark.parametrize("name", ["is_chat_model", "is_function_calling_model"])
@pytest.mark.parametrize("flag", ["false", "no", 0])
def test_a_mode_flag_that_is_not_a_bool_is_refused_naming_it(name: str, flag: Any) -> None:
    # "false" would otherwise pick the chat endpoint and then become False: a completions model
    # talking to the chat URL.
    with pytest.raises(InvalidSettingError, match=f"{name} must be True or False") as caught:
        ModelsLabLLM(api_key=KEY, **{name: flag})
    assert caught.value.field == name


@pytest.mark.parametrize(
    "kwargs",
    [{"max_tokens": True}, {"top_p": math.nan}, {"presence_penalty": -math.inf}, {"seed": True}],
)
def test_bad_numbers_in_a_call_are_refused_before_any_request(
    server: LocalModelsLab, kwargs: dict[str, Any]
) -> None:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url)
    with pytest.raises(ParameterError, match=next(iter(kwargs))):
        llm.chat([ChatMessage(role="user", content="hi")], **kwargs)
    with pytest.raises(ParameterError, match=next(iter(kwargs))):
        asyncio.run(llm.acomplete("hi", **kwargs))
    assert server.requests == []


def _add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize("name", [None, "", "  "])
def test_a_tool_without_a_name_is_refused_naming_its_position(
    server: LocalModelsLab, name: str | None
) -> None:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url)
    good = FunctionTool.from_defaults(fn=_add)
    nameless = FunctionTool(fn=_add, metadata=ToolMetadata(description="adds", name=name))
    with pytest.raises(ParameterError, match=r"tools\[1\] \(FunctionTool\) has no name"):
        llm.chat_with_tools([good, nameless], "add 2 and 3")
    assert server.requests == []


# --- "choices": null ----------------------------------------------------------------------------


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


USAGE_NULL_CHOICES = (
    _event({"id": "c", "choices": [{"index": 0, "delta": {"content": "Hel"}}]})
    + _event({"id": "c", "choices": [{"index": 0, "delta": {"content": "lo"},
                                      "finish_reason": "stop"}]})
    + _event({"id": "c", "choices": None,
              "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
    + b"data: [DONE]\n\n"
)  # fmt: skip


@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_a_usage_chunk_with_null_choices_keeps_the_streamed_answer(
    server: LocalModelsLab, mode: str
) -> None:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url)
    server.enqueue(Reply.raw(200, USAGE_NULL_CHOICES, "text/event-stream"))
    messages = [ChatMessage(role="user", content="hi")]
    if mode == "stream":
        responses = list(llm.stream_chat(messages))
    else:
        responses = _adrain(llm.astream_chat(messages))
    assert responses[-1].message.content == "Hello"
