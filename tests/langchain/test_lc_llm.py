"""ModelsLabLLM over httpx.MockTransport, and the package's import guard."""

from __future__ import annotations

import asyncio
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_core.exceptions import ModelRateLimitError
from langchain_core.load import dumpd, dumps

import modelslab_core
from langchain_modelslab import ModelsLabLLM
from modelslab_core import COMPLETIONS_BASE_URL, UNCENSORED_BASE_URL

from .conftest import KEY, Mock, sse

MakeLLM = Callable[..., ModelsLabLLM]


def completion(text: str = "world", finish_reason: str = "stop") -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "cmpl-1",
            "object": "text_completion",
            "model": "ModelsLab/Llama-3.1-8b-Uncensored-Dare",
            "choices": [
                {"index": 0, "text": text, "finish_reason": finish_reason, "stop_reason": None}
            ],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        },
    )


def text_chunk(text: str, finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": finish_reason}],
    }


STREAM = sse(
    text_chunk("Hel"),
    text_chunk("lo"),
    text_chunk("", "stop"),
    {
        "id": "c",
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    },
)


def test_the_default_model_and_base_url_a_named_base_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MODELSLAB_COMPLETIONS_BASE_URL", raising=False)
    llm = ModelsLabLLM(api_key=KEY)
    assert llm.base_url == COMPLETIONS_BASE_URL
    assert llm.model == "ModelsLab/Llama-3.1-8b-Uncensored-Dare"
    assert ModelsLabLLM(api_key=KEY, base_url="uncensored").base_url == UNCENSORED_BASE_URL
    monkeypatch.setenv("MODELSLAB_COMPLETIONS_BASE_URL", "https://example.test/v6/")
    assert ModelsLabLLM(api_key=KEY).base_url == "https://example.test/v6"


def test_an_out_of_range_value_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="temperature"):
        ModelsLabLLM(api_key=KEY, temperature=-1)


def test_invoke_and_generate_send_the_fields_and_return_text_and_usage(
    make_llm: MakeLLM, mock: Mock
) -> None:
    llm = make_llm(completion("world"), temperature=0.1, max_tokens=20)
    assert llm.invoke("hello") == "world"
    assert mock.requests[-1].url == f"{COMPLETIONS_BASE_URL}/completions"
    assert mock.body == {
        "model": "ModelsLab/Llama-3.1-8b-Uncensored-Dare",
        "temperature": 0.1,
        "max_tokens": 20,
        "prompt": "hello",
        "stream": False,
    }
    result = llm.generate(["a", "b"])
    assert [g[0].text for g in result.generations] == ["world", "world"]
    info = result.generations[0][0].generation_info
    assert info is not None and info["finish_reason"] == "stop"
    assert info["token_usage"]["total_tokens"] == 3
    assert result.llm_output is not None
    assert result.llm_output["token_usage"] == {
        "prompt_tokens": 4,
        "completion_tokens": 2,
        "total_tokens": 6,
    }


def test_stop_sequences_of_the_model_and_of_a_call_are_sent(make_llm: MakeLLM, mock: Mock) -> None:
    llm = make_llm(completion(), stop=["\n"])
    llm.invoke("x")
    assert mock.body["stop"] == ["\n"]
    llm.invoke("x", stop=["END"])
    assert mock.body["stop"] == ["END"]


def test_stream_yields_the_text_and_asks_for_usage(make_llm: MakeLLM, mock: Mock) -> None:
    llm = make_llm(STREAM)
    assert "".join(llm.stream("hi")) == "Hello"
    assert mock.body["stream"] is True
    assert mock.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("path", ["sync", "async"])
def test_streaming_field_makes_generate_stream(make_llm: MakeLLM, mock: Mock, path: str) -> None:
    llm = make_llm(STREAM, streaming=True)
    result = llm.generate(["hi"]) if path == "sync" else asyncio.run(llm.agenerate(["hi"]))
    assert mock.body["stream"] is True
    generation = result.generations[0][0]
    assert generation.text == "Hello"
    assert generation.generation_info is not None
    assert generation.generation_info["token_usage"]["total_tokens"] == 3
    assert generation.generation_info["finish_reason"] == "stop"


def test_async_calls_answer_from_event_loops_in_a_row(make_llm: MakeLLM, mock: Mock) -> None:
    llm = make_llm(completion("async"))

    async def astream() -> str:
        mock.answers[:] = [STREAM]
        return "".join([c async for c in llm.astream("hi")])

    assert asyncio.run(llm.ainvoke("hi")) == "async"
    assert asyncio.run(llm.ainvoke("hi")) == "async"
    assert asyncio.run(astream()) == "Hello"
    mock.answers[:] = [completion("b")]
    assert asyncio.run(llm.abatch(["1", "2"])) == ["b", "b"]


def test_batch_answers_every_prompt(make_llm: MakeLLM) -> None:
    assert make_llm(completion("x")).batch(["1", "2", "3"]) == ["x", "x", "x"]


@pytest.mark.parametrize("path", ["invoke", "stream", "ainvoke"])
def test_a_rate_limit_is_a_langchain_error_and_an_adapter_error_on_every_path(
    make_llm: MakeLLM, path: str
) -> None:
    llm = make_llm(httpx.Response(429, json={"message": "Rate limit exceeded"}))
    with pytest.raises(modelslab_core.RateLimitError) as info:
        if path == "invoke":
            llm.invoke("x")
        elif path == "stream":
            list(llm.stream("x"))
        else:
            asyncio.run(llm.ainvoke("x"))
    assert isinstance(info.value, ModelRateLimitError)
    assert "Rate limit exceeded" in str(info.value)


def test_the_key_never_shows_and_survives_a_pickle_and_langsmith_params_name_the_model() -> None:
    llm = ModelsLabLLM(api_key=KEY, max_tokens=5)
    assert KEY not in repr(llm) and KEY not in dumps(llm)
    assert dumpd(llm)["kwargs"]["api_key"]["id"] == ["MODELSLAB_API_KEY"]
    clone = pickle.loads(pickle.dumps(llm))
    assert clone.api_key == llm.api_key and clone.max_tokens == 5
    assert llm._get_ls_params(stop=["x"]) == {
        "ls_provider": "modelslab",
        "ls_model_name": "ModelsLab/Llama-3.1-8b-Uncensored-Dare",
        "ls_model_type": "llm",
        "ls_max_tokens": 5,
        "ls_stop": ["x"],
    }


def test_import_error_names_the_extra() -> None:
    code = (
        "import sys\n"
        "sys.modules['langchain_core'] = None\n"
        "try:\n"
        "    import langchain_modelslab\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # A command that works today (the package itself is installed; the framework is missing).
    assert 'pip install "langchain-core>=1.0" "langchain>=1.0"' in out
