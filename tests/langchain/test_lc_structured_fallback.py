"""``with_structured_output(method="json_schema")`` falls back to JSON mode when the server
refuses a ``json_schema`` response format (ModelsLab documents only ``json_object``)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from pydantic import BaseModel

import modelslab_core
from langchain_modelslab import ChatModelsLab

from .conftest import Mock, chat_answer


class City(BaseModel):
    name: str
    population: int


REFUSAL = httpx.Response(
    400, json={"error": {"message": "response_format json_schema is not supported"}}
)
JSON_ANSWER = chat_answer(json.dumps({"name": "Paris", "population": 2100000}))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_refused_json_schema_is_asked_again_in_json_mode(
    make_chat: Callable[..., ChatModelsLab], mock: Mock, mode: str
) -> None:
    structured = make_chat(REFUSAL, JSON_ANSWER).with_structured_output(City, method="json_schema")
    question = "Paris has 2100000 inhabitants."
    if mode == "sync":
        city = structured.invoke(question)
    else:
        city = await structured.ainvoke(question)
    assert city == City(name="Paris", population=2100000)
    first, second = mock.bodies
    assert first["response_format"]["type"] == "json_schema"
    assert second["response_format"] == {"type": "json_object"}
    system, user = second["messages"]
    assert system["role"] == "system" and '"population"' in system["content"]
    assert user == {"role": "user", "content": question}


def test_accepted_json_schema_needs_no_second_request(
    make_chat: Callable[..., ChatModelsLab], mock: Mock
) -> None:
    structured = make_chat(JSON_ANSWER).with_structured_output(City, method="json_schema")
    assert structured.invoke("Paris").population == 2100000
    assert len(mock.requests) == 1


def test_other_errors_are_not_hidden_by_the_fallback(
    make_chat: Callable[..., ChatModelsLab], mock: Mock
) -> None:
    denied = httpx.Response(401, json={"status": "error", "message": "Invalid Api Key"})
    structured = make_chat(denied).with_structured_output(City, method="json_schema")
    with pytest.raises(modelslab_core.AuthenticationError, match="Invalid Api Key"):
        structured.invoke("Paris")
    assert len(mock.requests) == 1


def test_include_raw_keeps_the_fallback_answer(
    make_chat: Callable[..., ChatModelsLab], mock: Mock
) -> None:
    structured = make_chat(REFUSAL, JSON_ANSWER).with_structured_output(
        City, method="json_schema", include_raw=True
    )
    out = structured.invoke("Paris")
    assert out["parsed"] == City(name="Paris", population=2100000)
    assert out["parsing_error"] is None
    assert json.loads(out["raw"].content)["name"] == "Paris"
