"""``ModelsLabLLM`` as a LlamaIndex component: fields, profiles, secrets, pickling, imports."""

from __future__ import annotations

import asyncio
import json
import pickle
import subprocess
import sys

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.llms.function_calling import FunctionCallingLLM

from llama_index_modelslab import ModelsLabLLM
from modelslab_core import (
    CHAT_BASE_URL,
    COMPLETIONS_BASE_URL,
    UNCENSORED_BASE_URL,
    AuthenticationError,
    MissingAPIKeyError,
    ParameterError,
    get_profile,
)
from modelslab_core.testing import LocalModelsLab, Reply

SECRET = "sk-very-secret-key-123"


def test_missing_key_names_the_environment_variable() -> None:
    with pytest.raises(MissingAPIKeyError, match="MODELSLAB_API_KEY"):
        ModelsLabLLM()


def test_the_key_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: LocalModelsLab
) -> None:
    monkeypatch.setenv("MODELSLAB_API_KEY", "test-key")
    llm = ModelsLabLLM(base_url=server.base_url)
    assert llm.complete("hello").text == "hello"


def test_key_never_shows_in_repr_dicts_or_json() -> None:
    llm = ModelsLabLLM(api_key=SECRET)
    for text in (repr(llm), str(llm), json.dumps(llm.to_dict()), llm.to_json()):
        assert SECRET not in text
    assert "api_key" not in llm.to_dict()
    assert llm.to_dict()["class_name"] == "ModelsLabLLM"


def test_key_never_shows_in_errors(server: LocalModelsLab) -> None:
    llm = ModelsLabLLM(api_key=SECRET, base_url=server.base_url, max_retries=0)
    with pytest.raises(AuthenticationError) as info:
        llm.complete("hello")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)
    assert info.value.status_code in (200, 401)


def test_to_dict_round_trip_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    llm = ModelsLabLLM(
        "deepseek-ai-DeepSeek-V3",
        api_key=SECRET,
        temperature=0.5,
        max_tokens=77,
        additional_kwargs={"top_p": 0.9},
        default_headers={"X-Trace": "1"},
        key_in_body=True,
    )
    data = llm.to_dict()
    with pytest.raises(MissingAPIKeyError):
        ModelsLabLLM.from_dict(data)
    again = ModelsLabLLM.from_dict(data, api_key="another")
    assert again.to_dict() == data
    monkeypatch.setenv("MODELSLAB_API_KEY", "from-env")
    assert ModelsLabLLM.from_json(llm.to_json()).to_dict() == data


def test_pickles_and_still_works(server: LocalModelsLab) -> None:
    llm = ModelsLabLLM(api_key="test-key", base_url=server.base_url, max_tokens=50)
    assert llm.complete("before").text == "before"  # creates the lazy client
    clone = pickle.loads(pickle.dumps(llm))
    assert clone.to_dict() == llm.to_dict()
    assert clone.complete("after pickling").text == "after pickling"
    assert server.requests[-1].key_placement == "bearer"


def test_pickles_with_an_unpicklable_field(server: LocalModelsLab) -> None:
    llm = ModelsLabLLM(
        api_key="test-key",
        base_url=server.base_url,
        completion_to_prompt=lambda prompt: prompt,  # a lambda does not pickle
    )
    clone = pickle.loads(pickle.dumps(llm))
    assert clone.complete("still works").text == "still works"


def test_fields_come_from_the_model_profile() -> None:
    llm = ModelsLabLLM("meta-llama-Llama-3.3-70B-Instruct-Turbo", api_key=SECRET)
    profile = get_profile(llm.model)
    meta = llm.metadata
    assert profile != get_profile("some-new-model")  # the model's own, not the fallback
    assert meta.context_window == profile.context_window
    assert meta.num_output == profile.max_output_tokens
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.model_name == llm.model
    assert isinstance(llm, FunctionCallingLLM)


def test_profile_values_can_be_overridden() -> None:
    llm = ModelsLabLLM(
        api_key=SECRET, context_window=1000, is_function_calling_model=False, max_tokens=10
    )
    meta = llm.metadata
    assert (meta.context_window, meta.num_output, meta.is_function_calling_model) == (
        1000,
        10,
        False,
    )


def test_text_completion_model_defaults() -> None:
    llm = ModelsLabLLM("ModelsLab/Llama-3.1-8b-Uncensored-Dare", api_key=SECRET)
    assert not llm.metadata.is_chat_model
    assert not llm.metadata.is_function_calling_model
    assert llm.base_url == COMPLETIONS_BASE_URL


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, CHAT_BASE_URL),
        ({"is_chat_model": False}, COMPLETIONS_BASE_URL),
        ({"base_url": "uncensored"}, UNCENSORED_BASE_URL),
        ({"base_url": "http://localhost:9/api/v7/llm/"}, "http://localhost:9/api/v7/llm"),
    ],
)
def test_base_urls_keep_the_api_segment(kwargs: dict[str, object], expected: str) -> None:
    base_url = ModelsLabLLM(api_key=SECRET, **kwargs).base_url  # type: ignore[arg-type]
    assert base_url == expected
    assert "/api/" in base_url  # ModelsLab's endpoints live under /api/


def test_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSLAB_BASE_URL", "http://chat.example/api/v7/llm")
    monkeypatch.setenv("MODELSLAB_COMPLETIONS_BASE_URL", "http://text.example/api/v6")
    assert ModelsLabLLM(api_key=SECRET).base_url == "http://chat.example/api/v7/llm"
    assert ModelsLabLLM(api_key=SECRET, is_chat_model=False).base_url == (
        "http://text.example/api/v6"
    )


@pytest.mark.parametrize("kwargs", [{"temperature": 3.0}, {"max_tokens": 0}])
def test_out_of_range_parameters_fail_at_construction(kwargs: dict[str, float]) -> None:
    with pytest.raises(ParameterError):
        ModelsLabLLM(api_key=SECRET, **kwargs)  # type: ignore[arg-type]


def test_out_of_range_call_parameters_fail_before_any_request(
    llm: ModelsLabLLM, server: LocalModelsLab
) -> None:
    with pytest.raises(ParameterError, match="top_p"):
        llm.chat([ChatMessage(role="user", content="hi")], top_p=5)
    with pytest.raises(ParameterError, match="stop"):
        llm.stream_complete("hi", stop=["a", "b", "c", "d", "e"])
    assert server.requests == []


async def test_each_async_twin_answers_as_its_sync_method(llm: ModelsLabLLM) -> None:
    from llama_index.core.tools import FunctionTool

    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    said = [ChatMessage(role="user", content="twins say the same")]
    assert (await llm.achat(said)).message.content == llm.chat(said).message.content
    streamed = [r.message.content async for r in await llm.astream_chat(said)]
    assert streamed[-1] == [r.message.content for r in llm.stream_chat(said)][-1]
    assert (await llm.acomplete("same text")).text == llm.complete("same text").text
    parts = [r.text async for r in await llm.astream_complete("same text")]
    assert parts[-1] == [r.text for r in llm.stream_complete("same text")][-1]
    tools = [FunctionTool.from_defaults(lookup)]
    calls = llm.get_tool_calls_from_response(await llm.achat_with_tools(tools, "look up 'Oslo'"))
    assert [call.tool_kwargs for call in calls] == [{"city": "Oslo"}]
    assert calls == llm.get_tool_calls_from_response(llm.chat_with_tools(tools, "look up 'Oslo'"))


def test_request_carries_fields_headers_and_extras(server: LocalModelsLab) -> None:
    llm = ModelsLabLLM(
        "deepseek-ai-DeepSeek-V3",
        api_key="test-key",
        base_url=server.base_url,
        temperature=0.3,
        max_tokens=64,
        additional_kwargs={"top_k": 5, "repetition_penalty": 1.1},
        default_headers={"X-Trace": "abc"},
    )
    llm.chat([ChatMessage(role="user", content="hi")], seed=7)
    (request,) = server.requests
    assert request.path == "/api/v7/llm/chat/completions"
    assert request.headers["x-trace"] == "abc"
    body = request.body or {}
    assert {k: body[k] for k in ("model", "temperature", "max_tokens", "top_k", "seed")} == {
        "model": "deepseek-ai-DeepSeek-V3",
        "temperature": 0.3,
        "max_tokens": 64,
        "top_k": 5,
        "seed": 7,
    }
    assert body["repetition_penalty"] == 1.1
    assert body["stream"] is False


def test_strict_tool_schemas_are_sent_unless_a_call_turns_them_off(server: LocalModelsLab) -> None:
    from llama_index.core.tools import FunctionTool

    def lookup(city: str) -> str:
        """Look a city up."""
        return city

    llm = ModelsLabLLM(api_key="test-key", base_url=server.base_url, strict=True)
    llm.chat_with_tools([FunctionTool.from_defaults(lookup)], "lookup Paris")
    llm.chat_with_tools([FunctionTool.from_defaults(lookup)], "lookup Paris", strict=False)
    first, second = ((r.body or {})["tools"][0]["function"] for r in server.requests)
    assert first["strict"] is True and first["parameters"]["additionalProperties"] is False
    assert "strict" not in second


def test_stopping_a_stream_early_closes_it(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    stream = llm.stream_chat([ChatMessage(role="user", content="one two three four five six")])
    first = next(stream)
    assert first.delta is not None
    stream.close()  # no ResourceWarning (pytest runs with -W error::ResourceWarning)
    assert llm.complete("next request").text == "next request"


def test_key_in_body_sends_the_key_in_the_body_without_an_authorization_header(
    server: LocalModelsLab,
) -> None:
    llm = ModelsLabLLM(api_key="test-key", base_url=server.base_url, key_in_body=True)
    assert llm.complete("hello").text == "hello"
    assert server.requests[-1].key_placement == "body"
    assert "authorization" not in server.requests[-1].headers


def test_scripted_reply_reaches_the_caller(llm: ModelsLabLLM, server: LocalModelsLab) -> None:
    server.enqueue(Reply.text("scripted answer"))
    assert llm.complete("anything").text == "scripted answer"


def test_import_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['llama_index.core'] = None\n"
        "try:\n"
        "    import llama_index_modelslab\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    # A command that works today (the package itself is installed; the framework is missing).
    assert 'pip install "llama-index-core>=0.14"' in result.stdout


def test_api_base_is_accepted_as_the_base_url(server: LocalModelsLab) -> None:
    # OpenAILike and llama-index-llms-modelslab call it api_base: a migrating user keeps it.
    llm = ModelsLabLLM(api_key="test-key", api_base=server.base_url)
    assert llm.base_url == server.base_url
    assert llm.complete("ping").text == "ping"


def test_unknown_arguments_are_refused_not_dropped() -> None:
    with pytest.raises(TypeError, match=r"\['temprature'\].*additional_kwargs"):
        ModelsLabLLM(api_key=SECRET, temprature=0.2)


def test_list_models_returns_the_ids_the_api_serves() -> None:
    """The migration guide's ``llm.list_models()``: the ids the API serves."""
    with LocalModelsLab(api_key="test-key", models=["model-a", "model-b"]) as own:
        llm = ModelsLabLLM(api_key="test-key", base_url=own.base_url)
        assert llm.list_models() == ["model-a", "model-b"]
        assert asyncio.run(llm.alist_models()) == ["model-a", "model-b"]
