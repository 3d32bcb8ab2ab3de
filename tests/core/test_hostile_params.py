"""Bad parameters refused before any request, over real sockets: a bool or a
non-finite number where a number is expected, and a tool without a name, each raise
``ParameterError`` naming the field or the tool's position; the server sees nothing."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from modelslab_core import (
    AsyncModelsLabClient,
    ChatRequest,
    CompletionRequest,
    ModelsLabClient,
    ModelsLabCompletionsClient,
    ParameterError,
    check_params,
)
from modelslab_core.testing import LocalModelsLab

KEY = "params-test-key"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    """The plugin's session server, reset for this test, checking this suite's key."""
    modelslab_server.api_key = KEY
    return modelslab_server


def sync_chat(server: LocalModelsLab, request: dict[str, Any]) -> Any:
    return ModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=0).chat(request)


def async_chat(server: LocalModelsLab, request: dict[str, Any]) -> Any:
    async def run() -> Any:
        client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=0)
        return await client.chat(request)

    return asyncio.run(run())


def sync_stream(server: LocalModelsLab, request: dict[str, Any]) -> Any:
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=0)
    with client.chat_stream(request) as stream:
        return list(stream)


def sync_complete(server: LocalModelsLab, request: dict[str, Any]) -> Any:
    client = ModelsLabCompletionsClient(
        api_key=KEY, base_url=server.completions_base_url, max_retries=0
    )
    return client.complete({k: v for k, v in request.items() if k != "messages"} | {"prompt": "x"})


CALLS = {"chat": sync_chat, "achat": async_chat, "stream": sync_stream, "complete": sync_complete}

NAN, INF = math.nan, math.inf
BAD_NUMBERS = [
    ("temperature", NAN, "finite"),
    ("temperature", INF, "finite"),
    ("temperature", "nan", "finite"),
    ("top_p", NAN, "finite"),
    ("top_p", -INF, "finite"),
    ("frequency_penalty", NAN, "finite"),
    ("presence_penalty", INF, "finite"),
    ("repetition_penalty", NAN, "finite"),
    ("max_tokens", True, "must be a number"),
    ("max_tokens", False, "must be a number"),
    ("temperature", True, "must be a number"),
    ("top_k", True, "must be a number"),
    ("n", True, "must be a number"),
    ("seed", False, "must be a number"),
]


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize(("field", "value", "says"), BAD_NUMBERS)
def test_bools_and_non_finite_numbers_are_refused_before_any_request(
    server: LocalModelsLab, call: str, field: str, value: Any, says: str
) -> None:
    """A non-finite number would go out as a bare ``NaN`` token (not JSON), and
    ``max_tokens=True`` as 1: each is refused, naming its field, and the server sees nothing."""
    with pytest.raises(ParameterError, match=says) as caught:
        CALLS[call](
            server, {"model": "meta-llama-3-8B-instruct", "messages": MESSAGES, field: value}
        )
    assert caught.value.field == field
    assert field in str(caught.value)
    assert server.request_count == 0


@pytest.mark.parametrize("cls", [ChatRequest, CompletionRequest])
def test_request_models_refuse_them_whichever_way_they_are_built(cls: type) -> None:
    with pytest.raises(ParameterError, match="max_tokens"):
        cls(max_tokens=True)
    with pytest.raises(ParameterError, match="temperature"):
        cls.model_validate({"temperature": NAN})


def test_a_field_assigned_after_the_request_was_built_is_refused_as_it_is_assigned(
    server: LocalModelsLab,
) -> None:
    """A request is checked as it is built; a field assigned afterwards is checked as it is
    assigned (and left unchanged when refused), so sending needs no second check."""
    numbers = ChatRequest(model="meta-llama-3-8B-instruct", messages=MESSAGES)
    with pytest.raises(ParameterError, match="temperature must be a number"):
        numbers.temperature = True
    with pytest.raises(ParameterError, match="temperature must be between"):
        numbers.temperature = 7
    assert numbers.temperature is None
    tools = ChatRequest(model="meta-llama-3-8B-instruct", messages=MESSAGES)
    with pytest.raises(ParameterError, match=r"tools\[1\].*no function name"):
        tools.tools = [GOOD_TOOL, {"type": "function", "function": {}}]
    with pytest.raises(ParameterError, match="messages"):
        tools.messages = []
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=0)
    assert client.chat(tools).choices  # still the good request
    assert server.request_count == 1


def test_check_params_refuses_them_too() -> None:
    with pytest.raises(ParameterError, match="finite"):
        check_params({"temperature": INF})
    with pytest.raises(ParameterError, match="number"):
        check_params({"seed": True})
    check_params({"temperature": 0.5, "max_tokens": 10**400, "seed": 7})  # huge ints are JSON


def test_good_numbers_still_go_out(server: LocalModelsLab) -> None:
    request = {
        "model": "meta-llama-3-8B-instruct",
        "messages": MESSAGES,
        "temperature": 0,
        "max_tokens": 5,
        "top_p": 1,
    }
    answer = sync_chat(server, request)
    assert answer.choices
    assert server.requests[-1].body["temperature"] == 0
    assert server.requests[-1].body["max_tokens"] == 5


# --- tools --------------------------------------------------------------------------------------

GOOD_TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}


@pytest.mark.parametrize("call", ["chat", "achat", "stream"])
@pytest.mark.parametrize(
    ("tool", "says"),
    [
        ({"type": "function", "function": {"parameters": {}}}, "no function name"),
        ({"type": "function", "function": {"name": ""}}, "no function name"),
        ({"type": "function", "function": {"name": None}}, "no function name"),
        ({"type": "function"}, "no function name"),
        ({"function": {"description": "no name"}}, "no function name"),
        ("get_weather", "must be an object"),
    ],
)
def test_a_tool_without_a_name_is_refused_naming_its_position(
    server: LocalModelsLab, call: str, tool: Any, says: str
) -> None:
    request = {
        "model": "meta-llama-3-8B-instruct",
        "messages": MESSAGES,
        "tools": [GOOD_TOOL, tool],
    }
    with pytest.raises(ParameterError, match=rf"tools\[1\].*{says}") as caught:
        CALLS[call](server, request)
    assert caught.value.field == "tools"
    assert server.request_count == 0


def test_named_tools_and_other_tool_kinds_go_out(server: LocalModelsLab) -> None:
    tools = [GOOD_TOOL, {"type": "web_search"}]
    sync_chat(server, {"model": "meta-llama-3-8B-instruct", "messages": MESSAGES, "tools": tools})
    assert server.requests[-1].body["tools"] == tools
