"""Rules both frameworks share live once in modelslab_core.structured: the same schema gives
the same ``json_schema`` response format from LangChain and LlamaIndex, and both fall back to
JSON mode on a refusal of that format (and on nothing else)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from llama_index.core.prompts import PromptTemplate
from pydantic import BaseModel

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import BadRequestError, RateLimitError
from modelslab_core.structured import json_mode_fallback, json_schema_format, request_body
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "sk-shared-rules-0123456789"
MODEL = "meta-llama-3-8B-instruct"


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    celsius: float


ANSWER = json.dumps({"city": "Paris", "celsius": 21.5})


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    modelslab_server.api_key = KEY
    return modelslab_server


def sent_formats(server: LocalModelsLab) -> list[dict[str, Any]]:
    return [(r.body or {}).get("response_format") for r in server.requests]  # type: ignore[misc]


def test_both_frameworks_send_one_json_schema_format_for_one_schema(
    server: LocalModelsLab,
) -> None:
    server.enqueue(Reply.text(ANSWER), Reply.text(ANSWER))
    chat = ChatModelsLab(model=MODEL, api_key=KEY, base_url=server.base_url)
    assert chat.with_structured_output(Weather, method="json_schema").invoke("Paris?") == Weather(
        city="Paris", celsius=21.5
    )
    llm = ModelsLabLLM(
        model=MODEL, api_key=KEY, base_url=server.base_url, is_function_calling_model=False
    )
    assert llm.structured_predict(Weather, PromptTemplate("Paris?")) == Weather(
        city="Paris", celsius=21.5
    )
    langchain, llama_index = sent_formats(server)
    # Each framework writes the class's JSON schema its own way (LangChain leaves out property
    # titles); the format around it is the one rule.
    for fmt in (langchain, llama_index):
        fmt["json_schema"]["schema"] = sorted(fmt["json_schema"]["schema"]["properties"])
    assert langchain == llama_index
    assert langchain["json_schema"]["name"] == "Weather"
    assert langchain["json_schema"]["description"] == "The weather in a city."


def test_both_frameworks_fall_back_to_json_mode_when_the_format_is_refused(
    server: LocalModelsLab,
) -> None:
    refusal = Reply.error(400, {"error": {"message": "response_format json_schema unsupported"}})
    server.enqueue(refusal, Reply.text(ANSWER), refusal, Reply.text(ANSWER))
    chat = ChatModelsLab(model=MODEL, api_key=KEY, base_url=server.base_url, max_retries=0)
    chat.with_structured_output(Weather, method="json_schema").invoke("Paris?")
    llm = ModelsLabLLM(
        model=MODEL,
        api_key=KEY,
        base_url=server.base_url,
        is_function_calling_model=False,
        max_retries=0,
    )
    llm.structured_predict(Weather, PromptTemplate("Paris?"))
    kinds = [f["type"] for f in sent_formats(server)]
    assert kinds == ["json_schema", "json_object", "json_schema", "json_object"]


def test_only_a_refusal_of_the_format_falls_back() -> None:
    assert json_mode_fallback(BadRequestError("response_format json_schema is not supported")) == {
        "type": "json_object"
    }
    assert json_mode_fallback(BadRequestError("context length exceeded")) is None
    assert json_mode_fallback(RateLimitError("slow down", status_code=429)) is None


def test_a_format_name_holds_only_the_characters_a_name_may_hold() -> None:
    fmt = json_schema_format({"title": "Weather report (v2)", "type": "object"})
    assert fmt["json_schema"]["name"] == "Weather_report__v2_"
    assert len(json_schema_format({}, name="x" * 100)["json_schema"]["name"]) == 64


def test_the_call_wins_over_the_model_and_streams_ask_for_usage() -> None:
    body = request_body(
        {"model": MODEL, "temperature": 0.1, "stop": None}, {"temperature": 0.5}, stream=True
    )
    assert body == {
        "model": MODEL,
        "temperature": 0.5,
        "stream_options": {"include_usage": True},
    }
    assert "stream_options" not in request_body({}, {}, stream=True, stream_usage=False)
