"""Conventions users bring from ChatOpenAI, ChatAnthropic and ChatDeepSeek: argument names, where a
warning points, token counting offline, the model list, the error a missing key raises, and one
truth about structured output."""

from __future__ import annotations

import asyncio
import builtins
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages
from langchain_core.tools import tool

from langchain_modelslab import ChatModelsLab, ModelsLabLLM
from modelslab_core import PROFILES, ConfigurationError, MissingAPIKeyError, get_profile

from .conftest import KEY, Mock, chat_answer

MakeChat = Callable[..., ChatModelsLab]
MakeLLM = Callable[..., ModelsLabLLM]
REPO = Path(__file__).resolve().parents[2]

COMPLETION = httpx.Response(
    200,
    json={
        "id": "cmpl-1",
        "object": "text_completion",
        "model": "m",
        "choices": [{"index": 0, "text": "done", "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    },
)


@pytest.mark.parametrize("factory", ["make_chat", "make_llm"])
def test_model_name_and_request_timeout_are_accepted_as_chatopenai_names_them(
    factory: str, mock: Mock, request: pytest.FixtureRequest
) -> None:
    make = request.getfixturevalue(factory)
    answer = chat_answer() if factory == "make_chat" else COMPLETION
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not a default parameter" warning
        model = make(answer, model_name="gemini-2.5-pro", request_timeout=7)
    assert model.model == "gemini-2.5-pro"
    assert model.timeout == 7
    assert model.model_kwargs == {}
    model.invoke("hi")
    assert mock.requests[-1].extensions["timeout"]["read"] == 7  # the timeout the call used
    assert type(model)(api_key=KEY, model_id="a", timeout=3).model == "a"


def test_model_name_reaches_the_request_body(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(chat_answer(), model_name="gemini-2.5-pro")
    model.invoke("hi")
    assert mock.body["model"] == "gemini-2.5-pro"
    assert "model_name" not in mock.body


def test_model_name_reaches_the_text_completion_body(make_llm: MakeLLM, mock: Mock) -> None:
    make_llm(COMPLETION, model_name="some-completion-model").invoke("hi")
    assert mock.body["model"] == "some-completion-model"
    assert "model_name" not in mock.body


@pytest.mark.parametrize("cls", [ChatModelsLab, ModelsLabLLM])
@pytest.mark.parametrize("alias", ["model", "model_id", "model_name"])
def test_an_empty_model_id_is_refused_at_construction(
    cls: type[ChatModelsLab | ModelsLabLLM], alias: str
) -> None:
    with pytest.raises(ConfigurationError, match="model must be a non-empty model id"):
        cls(api_key=KEY, **{alias: ""})


@pytest.mark.parametrize("cls", [ChatModelsLab, ModelsLabLLM])
def test_unknown_argument_warning_points_at_the_callers_line(
    cls: type[ChatModelsLab | ModelsLabLLM],
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = sys._getframe().f_lineno + 1
        model = cls(api_key=KEY, repetition_penalty=1.1)
    assert model.model_kwargs == {"repetition_penalty": 1.1}
    [warning] = [w for w in caught if "repetition_penalty" in str(w.message)]
    assert (warning.filename, warning.lineno) == (__file__, line)


@pytest.mark.parametrize("cls", [ChatModelsLab, ModelsLabLLM])
def test_missing_key_raises_the_documented_error(
    cls: type[ChatModelsLab | ModelsLabLLM], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELSLAB_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="MODELSLAB_API_KEY"):
        cls()


def test_other_validation_errors_are_configuration_errors_too() -> None:
    with pytest.raises(ConfigurationError, match="temperature") as caught:
        ChatModelsLab(api_key=KEY, temperature="hot")
    assert isinstance(caught.value, ValueError)  # as pydantic's ValidationError is
    assert "hot" not in str(caught.value)  # no input in the message (it may be the key)


@pytest.fixture
def no_transformers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing transformers (or tiktoken, which downloads its files) fails, as offline."""
    real_import = builtins.__import__

    def guarded(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.split(".")[0] in ("transformers", "tiktoken"):
            raise ImportError(f"no {name} here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", guarded)


@tool
def get_weather(city: str) -> str:
    """Get the weather in a city."""
    return city


def test_token_counting_works_offline(no_transformers: None) -> None:
    llm = ChatModelsLab(api_key=KEY)
    messages = [SystemMessage("You are terse."), HumanMessage("x" * 400)]
    counted = llm.get_num_tokens_from_messages(messages)
    assert 100 < counted < 130  # about four characters a token
    assert llm.get_num_tokens_from_messages(messages, tools=[get_weather]) > counted
    assert llm.get_num_tokens("x" * 400) == 100
    assert ModelsLabLLM(api_key=KEY).get_num_tokens("x" * 40) == 10


def test_trim_messages_with_the_model_as_token_counter(no_transformers: None) -> None:
    llm = ChatModelsLab(api_key=KEY)
    history = [
        SystemMessage("system"),
        *[
            m
            for i in range(10)
            for m in (HumanMessage(f"question {i} " * 10), AIMessage(f"answer {i} " * 10))
        ],
    ]
    trimmed = trim_messages(
        history, max_tokens=120, token_counter=llm, strategy="last", include_system=True
    )
    assert trimmed[0] == history[0]
    assert trimmed[-1] == history[-1]
    assert 2 < len(trimmed) < len(history)
    assert llm.get_num_tokens_from_messages(trimmed) <= 120


@pytest.mark.parametrize("model_class", [ChatModelsLab, ModelsLabLLM])
def test_custom_get_token_ids_still_wins(model_class: type[ChatModelsLab | ModelsLabLLM]) -> None:
    llm = model_class(api_key=KEY, custom_get_token_ids=lambda text: text.split())
    assert llm.get_num_tokens("one two three") == 3


def test_text_model_lists_models(make_llm: MakeLLM, mock: Mock) -> None:
    models = httpx.Response(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})
    llm = make_llm(models)
    assert llm.list_models() == ["a", "b"]
    assert mock.requests[-1].url.path.endswith("/v1/models")
    assert asyncio.run(llm.alist_models()) == ["a", "b"]


@pytest.mark.parametrize("model", sorted(PROFILES))
def test_profile_structured_output_comes_from_the_model_table(model: str) -> None:
    profile = ChatModelsLab(api_key=KEY, model=model).profile
    assert profile is not None
    assert profile["structured_output"] is get_profile(model).structured_output
    assert profile["tool_calling"] is get_profile(model).tool_calling


def _feature_table(page: str) -> dict[str, str]:
    lines = (REPO / "docs" / page).read_text(encoding="utf-8").splitlines()
    start = lines.index("### Model features")
    rows = [line for line in lines[start:] if line.startswith("|")][:3]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    values = [cell.strip() for cell in rows[2].strip("|").split("|")]
    return dict(zip(header, values, strict=True))


def test_feature_table_and_profile_tell_one_truth_about_structured_output() -> None:
    table = _feature_table("langchain.md")
    profile = ChatModelsLab(api_key=KEY).profile
    assert profile is not None
    native = table['native structured output (`profile["structured_output"]`)']
    assert native.startswith("✅" if profile["structured_output"] else "❌")
    assert table["`with_structured_output`"].startswith("✅")
    assert re.search(r"tool calling", table["`with_structured_output`"])
