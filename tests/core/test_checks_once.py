"""A request is checked once, where it is built: not again by the framework, nor when sent."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from llama_index.core.base.llms.types import ChatMessage as LIMessage

import modelslab_core.validation as validation
from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import ChatRequest, ModelsLabClient, ParameterError
from modelslab_core.testing import LocalModelsLab

KEY = "sk-checks-once-0123456789"
MODEL = "meta-llama-3-8B-instruct"
TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


@pytest.fixture
def server() -> Iterator[LocalModelsLab]:
    with LocalModelsLab() as local:
        yield local


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the range and tool checks run (the real functions run; they are only counted)."""
    counts = {"check_params": 0, "check_tools": 0}
    for name in counts:
        real = getattr(validation, name)

        def spy(*args: Any, _real: Any = real, _name: str = name) -> Any:
            counts[_name] += 1
            return _real(*args)

        monkeypatch.setattr(validation, name, spy)
    return counts


def test_a_langchain_call_checks_its_request_once(
    server: LocalModelsLab, counted: dict[str, int]
) -> None:
    model = ChatModelsLab(model=MODEL, api_key=KEY, base_url=server.base_url, temperature=0.2)
    counted.update(check_params=0, check_tools=0)
    model.bind(tools=[TOOL]).invoke([HumanMessage("hi")])
    assert counted == {"check_params": 1, "check_tools": 1}


def test_a_llama_index_call_checks_its_request_once(
    server: LocalModelsLab, counted: dict[str, int]
) -> None:
    llm = ModelsLabLLM(model=MODEL, api_key=KEY, base_url=server.base_url)
    counted.update(check_params=0, check_tools=0)
    llm.chat([LIMessage(role="user", content="hi")], tools=[TOOL])
    assert counted == {"check_params": 1, "check_tools": 1}


def test_a_client_call_with_a_built_request_checks_nothing_more(
    server: LocalModelsLab, counted: dict[str, int]
) -> None:
    request = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    counted.update(check_params=0, check_tools=0)
    ModelsLabClient(api_key=KEY, base_url=server.base_url).chat(request)
    assert counted["check_params"] == 0


def test_a_bad_value_assigned_to_a_built_request_is_refused_at_once() -> None:
    request = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ParameterError, match="top_p"):
        request.top_p = 3
    assert request.top_p is None
