"""Hostile servers and bad input through LangChain: the JSON-mode fallback of
``with_structured_output`` answers only a refused response format; bad numbers and nameless
tools are refused before any request; a usage chunk with ``"choices": null`` keeps the streamed
answer; the two retry flags agree except where a comment says why."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

import modelslab_core
from langchain_modelslab import ChatModelsLab, _errors
from modelslab_core import ConfigurationError
from modelslab_core import errors as core

from .conftest import KEY, Mock, chat_answer, chunk

MakeChat = Callable[..., ChatModelsLab]


class City(BaseModel):
    name: str
    population: int


JSON_ANSWER = chat_answer(json.dumps({"name": "Paris", "population": 2100000}))
OVERFLOW = httpx.Response(
    400,
    json={
        "error": {
            "message": "This model's maximum context length is 8192 tokens. However, your "
            "messages resulted in 9000 tokens.",
            "type": "invalid_request_error",
            "code": "context_length_exceeded",
        }
    },
)
UNKNOWN_MODEL = httpx.Response(400, json={"error": {"message": "The model `x` does not exist"}})
PARAM_REFUSAL = httpx.Response(
    400,
    json={"error": {"message": "Invalid parameter", "param": "response_format", "code": None}},
)


async def run(structured: Any, mode: str, question: str) -> Any:
    if mode == "sync":
        return structured.invoke(question)
    if mode == "async":
        return await structured.ainvoke(question)
    if mode == "stream":
        return list(structured.stream(question))[-1]
    return [part async for part in structured.astream(question)][-1]


MODES = ["sync", "async", "stream", "astream"]


@pytest.mark.parametrize("mode", MODES)
async def test_a_context_length_error_is_not_retried_in_json_mode(
    make_chat: MakeChat, mock: Mock, mode: str
) -> None:
    """Only a refused response format triggers the JSON-mode fallback: a context-length 400 is
    raised, not sent again with a longer prompt."""
    structured = make_chat(OVERFLOW, JSON_ANSWER).with_structured_output(City, method="json_schema")
    with pytest.raises(_errors.ModelsLabContextOverflowError, match="maximum context length"):
        await run(structured, mode, "Paris")
    assert len(mock.requests) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_another_bad_request_is_raised_as_it_is(
    make_chat: MakeChat, mock: Mock, mode: str
) -> None:
    structured = make_chat(UNKNOWN_MODEL, JSON_ANSWER).with_structured_output(
        City, method="json_schema"
    )
    with pytest.raises(modelslab_core.BadRequestError, match="does not exist"):
        await run(structured, mode, "Paris")
    assert len(mock.requests) == 1


@pytest.mark.parametrize("mode", MODES)
async def test_a_refusal_naming_the_parameter_still_falls_back(
    make_chat: MakeChat, mock: Mock, mode: str
) -> None:
    structured = make_chat(PARAM_REFUSAL, JSON_ANSWER).with_structured_output(
        City, method="json_schema"
    )
    city = await run(structured, mode, "Paris")
    assert city == City(name="Paris", population=2100000)
    assert [body["response_format"]["type"] for body in mock.bodies] == [
        "json_schema",
        "json_object",
    ]


@pytest.mark.parametrize(
    ("status", "body", "names_it"),
    [
        (400, {"error": {"message": "response_format json_schema is not supported"}}, True),
        (400, {"error": {"message": "Invalid", "param": "response_format"}}, True),
        (422, {"detail": "json schema output is not available for this model"}, True),
        (200, {"status": "error", "message": "Unsupported response format"}, True),
        (400, {"error": {"message": "maximum context length is 8192 tokens"}}, False),
        (400, {"error": {"message": "The model `x` does not exist"}}, False),
        (401, {"error": {"message": "response_format needs a paid key"}}, False),
        (500, {"error": {"message": "response_format crashed the server"}}, False),
    ],
)
def test_names_response_format_is_the_one_trigger(
    status: int, body: dict[str, Any], names_it: bool
) -> None:
    error = core.error_from_body(status, body)
    assert error is not None
    assert core.names_response_format(error) is names_it
    translated = _errors.translate_error(error)
    assert isinstance(translated, _errors.ModelsLabResponseFormatError) is names_it


# --- bad numbers and nameless tools -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", True), ("temperature", math.nan), ("top_p", math.nan), ("seed", False)],
)
def test_bad_numbers_are_refused_at_construction(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=field) as caught:
        ChatModelsLab(api_key=KEY, **{field: value})
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_tokens", True), ("temperature", math.inf), ("frequency_penalty", math.nan)],
)
async def test_bad_numbers_in_a_call_are_refused_before_any_request(
    make_chat: MakeChat, mock: Mock, field: str, value: Any
) -> None:
    model = make_chat(chat_answer())
    with pytest.raises(_errors.ModelsLabParameterError, match=field):
        model.invoke("hi", **{field: value})
    with pytest.raises(_errors.ModelsLabParameterError, match=field):
        await model.ainvoke("hi", **{field: value})
    assert mock.requests == []


def _add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@pytest.mark.parametrize(
    ("tool", "says"),
    [
        ({"type": "function", "function": {"parameters": {}}}, "has no function name"),
        ({"type": "function", "function": {"name": "", "parameters": {}}}, "has no function name"),
        ({"type": "function", "function": None}, "has no function name"),
        ({"toolSpec": {"description": "Bedrock's shape without a name"}}, "has no function name"),
        ({"description": "not a tool"}, "is not a tool LangChain can convert"),
    ],
)
def test_a_tool_without_a_name_is_refused_naming_its_position(
    make_chat: MakeChat, mock: Mock, tool: dict[str, Any], says: str
) -> None:
    """A nameless OpenAI-style dict gave a bare ``KeyError: 'name'``."""
    model = make_chat(chat_answer())
    with pytest.raises(_errors.ModelsLabParameterError, match=rf"tools\[1\] {says}") as caught:
        model.bind_tools([_add, tool])
    assert caught.value.field == "tools"
    assert isinstance(caught.value, ValueError)
    assert mock.requests == []


def test_a_tool_of_another_kind_is_bound_as_given_for_the_server_to_judge(
    make_chat: MakeChat, mock: Mock
) -> None:
    """Only function tools need a name; another kind goes out as given, as in a raw request."""
    model = make_chat(chat_answer())
    model.bind_tools([_add, {"type": "web_search_preview"}]).invoke("hi")
    assert mock.body["tools"][1] == {"type": "web_search_preview"}


# --- "choices": null ----------------------------------------------------------------------------


def test_a_usage_chunk_with_null_choices_keeps_the_streamed_answer(
    make_chat: MakeChat,
) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    body = "".join(
        f"data: {json.dumps(event)}\n\n"
        for event in (
            chunk({"role": "assistant", "content": "Hel"}),
            chunk({"content": "lo"}, "stop"),
            {"id": "gen-1", "object": "chat.completion.chunk", "choices": None, "usage": usage},
        )
    )
    stream = httpx.Response(
        200, text=body + "data: [DONE]\n\n", headers={"content-type": "text/event-stream"}
    )
    parts = list(make_chat(stream).stream("hi"))
    message = parts[0]
    for part in parts[1:]:
        message += part
    assert message.content == "Hello"
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] == 5


# --- the two retry flags ------------------------------------------------------------------------

# Where LangChain's is_retryable differs from the adapter's retryable on purpose: the docstrings
# of these classes say why (the adapter never restarts a stream; a new call from scratch may
# succeed).
DIFFER_ON_PURPOSE = {"ModelsLabStreamError", "ModelsLabIncompleteStreamError"}


# ParameterError is left out: raised before any request, it has no retry flag in the adapter.
API_ERRORS = sorted(
    name
    for name in _errors.__all__
    if isinstance(getattr(_errors, name), type)
    and issubclass(getattr(_errors, name), core.APIError)
)


@pytest.mark.parametrize("name", API_ERRORS)
def test_retry_flags_agree_or_say_why_not(name: str) -> None:
    cls = getattr(_errors, name)
    if name in DIFFER_ON_PURPOSE:
        assert cls.is_retryable and not cls.retryable
        assert "on purpose" in " ".join((cls.__doc__ or "").split())
    else:
        assert cls.is_retryable == cls.retryable
