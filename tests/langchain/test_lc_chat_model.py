"""ChatModelsLab over httpx.MockTransport: requests it builds, answers it parses, its settings."""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.load import dumpd, dumps, load
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from langchain_modelslab import ChatModelsLab
from modelslab_core import (
    CHAT_BASE_URL,
    DEFAULT_PROFILE,
    UNCENSORED_BASE_URL,
    ConfigurationError,
    get_profile,
)
from modelslab_core.testing import LocalModelsLab

from .conftest import KEY, Mock, chat_answer, chunk, sse, usage_chunk

MakeChat = Callable[..., ChatModelsLab]


# --- construction ----------------------------------------------------------------------------


def test_with_only_a_key_the_model_is_the_default_model_on_the_chat_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MODELSLAB_BASE_URL", raising=False)
    model = ChatModelsLab(api_key=KEY)
    assert model.model == "meta-llama-3-8B-instruct"
    assert model.base_url == CHAT_BASE_URL
    assert model.stream_usage is True
    assert ChatModelsLab(api_key=KEY, model_id="gemini-2.5-pro").model == "gemini-2.5-pro"


def test_key_and_base_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSLAB_API_KEY", "from-env")
    monkeypatch.setenv("MODELSLAB_BASE_URL", "uncensored")
    model = ChatModelsLab()
    assert model.api_key is not None and model.api_key.get_secret_value() == "from-env"
    assert model.base_url == UNCENSORED_BASE_URL


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSLAB_API_KEY", raising=False)
    with pytest.raises(ValueError, match="MODELSLAB_API_KEY"):
        ChatModelsLab()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": -0.1}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 11}, "n"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"base_url": "ftp://nope"}, "base_url"),
        ({"timeout": 0}, "timeout"),
        ({"streaming": True, "n": 2}, "n must be 1"),
    ],
)
def test_invalid_values_are_refused_at_construction(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field) as info:
        ChatModelsLab(api_key=KEY, **params)
    assert KEY not in str(info.value)


def test_unknown_arguments_go_to_model_kwargs(make_chat: MakeChat, mock: Mock) -> None:
    with pytest.warns(UserWarning, match="repetition_penalty"):
        model = make_chat(chat_answer(), repetition_penalty=1.1)
    assert model.model_kwargs == {"repetition_penalty": 1.1}
    model.invoke("hi")
    assert mock.body["repetition_penalty"] == 1.1


def test_the_key_never_shows_in_repr_str_or_serialized_form() -> None:
    model = ChatModelsLab(api_key=KEY)
    assert KEY not in repr(model)
    assert KEY not in str(model)
    assert KEY not in dumps(model)
    assert KEY not in json.dumps(dumpd(model))
    assert dumpd(model)["kwargs"]["api_key"] == {
        "lc": 1,
        "type": "secret",
        "id": ["MODELSLAB_API_KEY"],
    }


def test_dumpd_load_round_trip(monkeypatch: pytest.MonkeyPatch) -> None:
    model = ChatModelsLab(api_key=KEY, model="gemini-2.5-pro", temperature=0.3, max_tokens=9)
    loaded = load(
        dumpd(model),
        secrets_map={"MODELSLAB_API_KEY": KEY},
        valid_namespaces=["langchain_modelslab"],
        allowed_objects=[ChatModelsLab],
    )
    assert isinstance(loaded, ChatModelsLab)
    assert loaded.model == "gemini-2.5-pro"
    assert (loaded.temperature, loaded.max_tokens) == (0.3, 9)
    assert loaded.api_key is not None and loaded.api_key.get_secret_value() == KEY


def test_a_model_pickled_after_a_call_answers_from_its_copy(
    modelslab_server: LocalModelsLab,
) -> None:
    model = ChatModelsLab(
        api_key=KEY, base_url=modelslab_server.base_url, model="deepseek-ai-DeepSeek-V3"
    )
    assert model.invoke("before").content == "before"  # the model now holds its clients
    clone = pickle.loads(pickle.dumps(model))
    assert (clone.model, clone.api_key) == (model.model, model.api_key)
    assert clone.invoke("after pickling").content == "after pickling"


async def test_a_field_changed_after_the_first_call_takes_effect(
    make_chat: MakeChat, mock: Mock
) -> None:
    model = make_chat(chat_answer(), base_url="https://one.test/api/v7/llm")
    model.invoke("hi")
    await model.ainvoke("hi")
    model.base_url = "https://two.test/api/v7/llm"
    model.timeout = 7.5
    model.default_headers = {"x-team": "blue"}
    model.invoke("hi")
    await model.ainvoke("hi")
    assert [r.url.host for r in mock.requests] == ["one.test", "one.test", "two.test", "two.test"]
    for before, after in zip(mock.requests[:2], mock.requests[2:], strict=True):
        assert "x-team" not in before.headers and after.headers["x-team"] == "blue"
        assert after.extensions["timeout"]["read"] == 7.5


def test_profile_from_the_shared_table() -> None:
    model = "deepseek-ai-DeepSeek-R1-Distill-Llama-70B"
    profile = ChatModelsLab(api_key=KEY, model=model).profile
    assert profile is not None
    assert profile["max_input_tokens"] == get_profile(model).context_window
    assert profile["max_input_tokens"] != DEFAULT_PROFILE.context_window
    assert profile["reasoning_output"] is True
    assert profile["tool_calling"] is True
    vision = ChatModelsLab(api_key=KEY, model="Qwen/Qwen2.5-VL-72B-Instruct-together").profile
    assert vision is not None and vision["image_inputs"] is True
    unknown = ChatModelsLab(api_key=KEY, model="some-new-model").profile
    assert unknown is not None
    assert unknown["max_input_tokens"] == DEFAULT_PROFILE.context_window


def test_langsmith_params_name_the_provider_model_and_sampling_settings() -> None:
    model = ChatModelsLab(api_key=KEY, temperature=0.2, max_tokens=10, stop=["x"])
    assert model._get_ls_params() == {
        "ls_provider": "modelslab",
        "ls_model_name": "meta-llama-3-8B-instruct",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 10,
        "ls_stop": ["x"],
    }
    assert model._get_ls_params(model="other")["ls_model_name"] == "other"


# --- requests --------------------------------------------------------------------------------


def test_request_body_from_fields(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(
        chat_answer(),
        temperature=0.5,
        max_tokens=50,
        top_p=0.9,
        top_k=40,
        frequency_penalty=0.1,
        presence_penalty=0.2,
        seed=7,
        stop=["END"],
        model_kwargs={"repetition_penalty": 1.05},
        extra_body={"custom": {"a": 1}},
        default_headers={"X-Trace": "t1"},
    )
    model.invoke([SystemMessage("be brief"), HumanMessage("hi")])
    body = mock.body
    assert body == {
        "model": "meta-llama-3-8B-instruct",
        "temperature": 0.5,
        "max_tokens": 50,
        "top_p": 0.9,
        "top_k": 40,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "seed": 7,
        "stop": ["END"],
        "repetition_penalty": 1.05,
        "custom": {"a": 1},
        "stream": False,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
    }
    request = mock.requests[-1]
    assert request.url == f"{CHAT_BASE_URL}/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["x-trace"] == "t1"


def test_call_arguments_override_fields(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(chat_answer(model="gemini-2.5-pro"), temperature=0.5, stop=["A"])
    message = model.invoke("hi", model="gemini-2.5-pro", temperature=0.0, stop=["B"])
    assert (mock.body["model"], mock.body["temperature"], mock.body["stop"]) == (
        "gemini-2.5-pro",
        0.0,
        ["B"],
    )
    assert message.response_metadata["model_name"] == "gemini-2.5-pro"


def test_empty_stop_is_not_sent(make_chat: MakeChat, mock: Mock) -> None:
    make_chat(chat_answer(), stop=[]).invoke("hi")
    assert "stop" not in mock.body


def test_key_in_body_sends_the_key_in_the_body_without_an_authorization_header(
    make_chat: MakeChat, mock: Mock
) -> None:
    make_chat(chat_answer(), key_in_body=True).invoke("hi")
    assert mock.body["key"] == KEY
    assert "authorization" not in mock.requests[-1].headers


def test_out_of_range_call_argument_fails_before_any_request(
    make_chat: MakeChat, mock: Mock
) -> None:
    from langchain_core.exceptions import ModelInvalidRequestError

    import modelslab_core

    model = make_chat(chat_answer())
    with pytest.raises(modelslab_core.ParameterError) as info:
        model.invoke("hi", temperature=9)
    assert isinstance(info.value, ModelInvalidRequestError)
    assert mock.requests == []


def test_streaming_with_n_above_one_is_refused(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(chat_answer())
    with pytest.raises(ValueError, match="n must be 1"):
        list(model.stream("hi", n=2))
    assert mock.requests == []


def test_n_gives_several_generations(make_chat: MakeChat, mock: Mock) -> None:
    import httpx

    answer = httpx.Response(
        200,
        json={
            "id": "g",
            "model": "m",
            "choices": [
                {"index": 0, "message": {"content": "one"}, "finish_reason": "stop"},
                {"index": 1, "message": {"content": "two"}, "finish_reason": "stop"},
            ],
        },
    )
    result = make_chat(answer, n=2).generate([[HumanMessage("hi")]])
    assert [g.text for g in result.generations[0]] == ["one", "two"]
    assert mock.body["n"] == 2


def test_images_are_sent_as_image_url_parts(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(chat_answer(), model="Qwen/Qwen2.5-VL-72B-Instruct-together")
    model.invoke(
        [
            HumanMessage(
                [
                    {"type": "text", "text": "describe"},
                    {"type": "image", "url": "https://x.test/cat.png"},
                    {"type": "image", "base64": "AAAA", "mime_type": "image/jpeg"},
                ]
            )
        ]
    )
    assert mock.body["messages"][0]["content"] == [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.png"}},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}},
    ]


# --- answers ---------------------------------------------------------------------------------


def test_invoke_returns_an_ai_message_with_usage_and_response_metadata(make_chat: MakeChat) -> None:
    message = make_chat(chat_answer("Hello there")).invoke("hi")
    assert isinstance(message, AIMessage)
    assert message.content == "Hello there"
    assert message.usage_metadata == {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}
    metadata = message.response_metadata
    assert metadata["model_provider"] == "modelslab"
    assert metadata["model_name"] == "meta-llama-3-8B-instruct"
    assert metadata["finish_reason"] == "stop"
    assert metadata["id"] == "gen-1"


async def test_ainvoke_returns_the_answer(make_chat: MakeChat) -> None:
    message = await make_chat(chat_answer("async hello")).ainvoke("hi")
    assert message.content == "async hello"


def _stream_answer() -> Any:
    return sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"reasoning_content": "Let me "}),
        chunk({"reasoning_content": "think."}),
        chunk({"content": "The "}),
        chunk(
            {
                "content": "answer",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 1, '},
                    },
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "mul", "arguments": '{"x": 2}'},
                    },
                ],
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"b": 2}'}}]}),
        chunk({}, finish_reason="tool_calls"),
        usage_chunk(5, 9),
    )


def _same_answer() -> Any:
    return chat_answer(
        "The answer",
        reasoning="Let me think.",
        finish_reason="tool_calls",
        tool_calls=[
            {
                "id": "call_a",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'},
            },
            {
                "id": "call_b",
                "type": "function",
                "function": {"name": "mul", "arguments": '{"x": 2}'},
            },
        ],
    )


def _assert_same(merged: AIMessageChunk, invoked: AIMessage) -> None:
    assert merged.text == invoked.text == "The answer"
    assert merged.tool_calls == invoked.tool_calls
    assert [c["name"] for c in merged.tool_calls] == ["add", "mul"]
    assert merged.additional_kwargs["reasoning_content"] == "Let me think."
    assert invoked.additional_kwargs["reasoning_content"] == "Let me think."
    assert (
        merged.content_blocks[0]
        == invoked.content_blocks[0]
        == {
            "type": "reasoning",
            "reasoning": "Let me think.",
        }
    )
    assert "think" not in merged.text
    for key in ("model_name", "finish_reason", "model_provider", "id"):
        assert merged.response_metadata[key] == invoked.response_metadata[key]


def test_stream_merges_to_invoke(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(_stream_answer(), chat_answer())
    chunks = list(model.stream("hi"))
    assert mock.body["stream"] is True
    assert mock.body["stream_options"] == {"include_usage": True}
    with_usage = [c for c in chunks if c.usage_metadata]
    assert len(with_usage) == 1
    assert with_usage[0].usage_metadata == {
        "input_tokens": 5,
        "output_tokens": 9,
        "total_tokens": 14,
    }
    fragments = [c for c in chunks if c.tool_call_chunks]
    assert {f["index"] for c in fragments for f in c.tool_call_chunks} == {0, 1}
    assert chunks[-1].chunk_position == "last"
    merged = chunks[0]
    for piece in chunks[1:]:
        merged = merged + piece
    mock.answers[:] = [_same_answer()]
    invoked = model.invoke("hi")
    _assert_same(merged, invoked)
    assert merged.usage_metadata is not None


async def test_astream_merges_to_ainvoke(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(_stream_answer(), chat_answer())
    merged: AIMessageChunk | None = None
    count = 0
    async for piece in model.astream("hi"):
        count += 1
        merged = piece if merged is None else merged + piece
    assert merged is not None and count > 3
    mock.answers[:] = [_same_answer()]
    _assert_same(merged, await model.ainvoke("hi"))


def test_streaming_field_makes_invoke_stream(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(_stream_answer(), streaming=True)
    message = model.invoke("hi")
    assert mock.body["stream"] is True
    assert message.text == "The answer"
    assert [c["name"] for c in message.tool_calls] == ["add", "mul"]
    assert message.usage_metadata is not None
    assert message.usage_metadata["total_tokens"] == 14


def test_stream_usage_off_asks_for_no_usage_and_a_call_may_ask_for_it(
    make_chat: MakeChat, mock: Mock
) -> None:
    answer = sse(chunk({"content": "x"}), chunk({}, finish_reason="stop"))
    model = make_chat(answer, stream_usage=False)
    assert all(c.usage_metadata is None for c in model.stream("hi"))
    assert "stream_options" not in mock.body
    list(model.stream("hi", stream_usage=True))
    assert mock.body["stream_options"] == {"include_usage": True}


def test_astream_events_carry_the_streamed_text(make_chat: MakeChat) -> None:
    model = make_chat(sse(chunk({"content": "a"}), chunk({"content": "b"}, "stop"), usage_chunk()))

    async def collect() -> list[str]:
        return [
            e["data"]["chunk"].content
            async for e in model.astream_events("hi", version="v2")
            if e["event"] == "on_chat_model_stream"
        ]

    assert "".join(asyncio.run(collect())) == "ab"


def test_async_from_two_event_loops(make_chat: MakeChat) -> None:
    model = make_chat(chat_answer("one"))
    assert asyncio.run(model.ainvoke("hi")).content == "one"
    assert asyncio.run(model.ainvoke("hi")).content == "one"


def test_list_models_returns_the_model_ids_sync_and_async(make_chat: MakeChat, mock: Mock) -> None:
    import httpx

    models = httpx.Response(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})
    model = make_chat(models)
    assert model.list_models() == ["a", "b"]
    assert mock.requests[-1].url.path.endswith("/v1/models")
    assert asyncio.run(model.alist_models()) == ["a", "b"]


# --- tools and structured output -------------------------------------------------------------


class Weather(BaseModel):
    """Weather in a city."""

    city: str = Field(description="City name")
    celsius: int


class WeatherDict(TypedDict):
    """Weather in a city."""

    city: str
    celsius: int


def _weather_call(arguments: str = '{"city": "Oslo", "celsius": 3}') -> Any:
    return chat_answer(
        None,
        finish_reason="tool_calls",
        tool_calls=[
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "Weather", "arguments": arguments},
            }
        ],
    )


def test_bind_tools_sends_tools_choice_and_parallel_flag_and_parses_the_call(
    make_chat: MakeChat, mock: Mock
) -> None:
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    model = make_chat(_weather_call())
    bound = model.bind_tools([add, Weather], tool_choice="add", parallel_tool_calls=False)
    message = bound.invoke("weather?")
    assert [t["function"]["name"] for t in mock.body["tools"]] == ["add", "Weather"]
    assert mock.body["tool_choice"] == {"type": "function", "function": {"name": "add"}}
    assert mock.body["parallel_tool_calls"] is False
    assert isinstance(message, AIMessage)
    assert message.tool_calls == [
        {"name": "Weather", "args": {"city": "Oslo", "celsius": 3}, "id": "c1", "type": "tool_call"}
    ]
    model.bind_tools([add], tool_choice="any").invoke("x")
    assert mock.body["tool_choice"] == "required"
    model.bind_tools([add]).invoke("x")
    assert "tool_choice" not in mock.body


def test_unparseable_tool_arguments_become_an_invalid_tool_call(make_chat: MakeChat) -> None:
    message = make_chat(_weather_call('{"city": ')).invoke("x")
    assert message.tool_calls == []
    assert message.invalid_tool_calls[0]["name"] == "Weather"
    assert message.invalid_tool_calls[0]["args"] == '{"city": '


@pytest.mark.parametrize("schema", [Weather, WeatherDict, Weather.model_json_schema()])
def test_structured_output_function_calling(make_chat: MakeChat, mock: Mock, schema: Any) -> None:
    def answer(request: Any) -> Any:
        name = json.loads(request.content)["tool_choice"]["function"]["name"]
        return chat_answer(
            None,
            tool_calls=[
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": name, "arguments": '{"city": "Oslo", "celsius": 3}'},
                }
            ],
        )

    result = make_chat(answer).with_structured_output(schema).invoke("Oslo?")
    expected = {"city": "Oslo", "celsius": 3}
    assert (result.model_dump() if isinstance(result, BaseModel) else result) == expected
    assert mock.body["tool_choice"]["function"]["name"] in ("Weather", "WeatherDict")


@pytest.mark.parametrize("method", ["json_schema", "json_mode"])
def test_structured_output_json_methods(make_chat: MakeChat, mock: Mock, method: str) -> None:
    model = make_chat(chat_answer('{"city": "Oslo", "celsius": 3}'))
    result = model.with_structured_output(Weather, method=method, strict=None).invoke("Oslo?")  # type: ignore[arg-type]
    assert result == Weather(city="Oslo", celsius=3)
    response_format = mock.body["response_format"]
    if method == "json_mode":
        assert response_format == {"type": "json_object"}
    else:
        assert response_format["type"] == "json_schema"
        assert response_format["json_schema"]["name"] == "Weather"
        assert response_format["json_schema"]["schema"]["required"] == ["city", "celsius"]
    assert "tools" not in mock.body


def test_structured_output_include_raw(make_chat: MakeChat, mock: Mock) -> None:
    model = make_chat(_weather_call())
    good = model.with_structured_output(Weather, include_raw=True).invoke("x")
    assert good["parsed"] == Weather(city="Oslo", celsius=3)
    assert good["parsing_error"] is None
    assert isinstance(good["raw"], AIMessage)
    mock_answers = _weather_call('{"city": "Oslo"}')  # celsius missing
    bad = make_chat(mock_answers).with_structured_output(Weather, include_raw=True)
    mock.answers[:] = [mock_answers]
    out = bad.invoke("x")
    assert out["parsed"] is None
    assert out["parsing_error"] is not None
    assert isinstance(out["raw"], AIMessage)


def test_structured_output_bad_method() -> None:
    with pytest.raises(ValueError, match="method"):
        ChatModelsLab(api_key=KEY).with_structured_output(Weather, method="xml")  # type: ignore[arg-type]
