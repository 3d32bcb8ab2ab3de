"""Settings resolve from arguments and the environment; bad parameters fail before any request."""

from __future__ import annotations

import pytest

from modelslab_core import (
    BASE_URLS,
    CHAT_BASE_URL,
    COMPLETIONS_BASE_URL,
    DEFAULT_PROFILE,
    PROFILES,
    UNCENSORED_BASE_URL,
    ChatRequest,
    ClientConfig,
    CompletionRequest,
    ConfigurationError,
    MissingAPIKeyError,
    ModelsLabClient,
    ModelsLabCompletionsClient,
    ParameterError,
    get_profile,
)
from modelslab_core.validation import check_params


def test_base_urls_are_the_documented_ones() -> None:
    assert CHAT_BASE_URL == "https://modelslab.com/api/v7/llm"
    assert COMPLETIONS_BASE_URL == "https://modelslab.com/api/v6"
    assert UNCENSORED_BASE_URL == "https://modelslab.com/api/uncensored-chat/v1"
    assert dict(BASE_URLS) == {
        "chat": CHAT_BASE_URL,
        "completions": COMPLETIONS_BASE_URL,
        "uncensored": UNCENSORED_BASE_URL,
    }


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSLAB_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="MODELSLAB_API_KEY"):
        ModelsLabClient()


def test_key_and_base_url_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELSLAB_API_KEY", "env-key")
    monkeypatch.setenv("MODELSLAB_BASE_URL", "http://127.0.0.1:9/api/v7/llm/")
    client = ModelsLabClient()
    assert client.config.api_key.get_secret_value() == "env-key"
    assert client.base_url == "http://127.0.0.1:9/api/v7/llm"
    # The argument wins over the environment; names from BASE_URLS are accepted.
    assert ModelsLabClient(api_key="k", base_url="uncensored").base_url == UNCENSORED_BASE_URL


def test_completions_client_has_its_own_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODELSLAB_COMPLETIONS_BASE_URL", raising=False)
    monkeypatch.setenv("MODELSLAB_BASE_URL", "http://chat.example/api/v7/llm")
    assert ModelsLabCompletionsClient(api_key="k").base_url == COMPLETIONS_BASE_URL
    monkeypatch.setenv("MODELSLAB_COMPLETIONS_BASE_URL", "http://x.example/api/v6")
    assert ModelsLabCompletionsClient(api_key="k").base_url == "http://x.example/api/v6"


def test_key_never_in_repr() -> None:
    config = ClientConfig.build("sk-very-secret", default_headers={"X-Proxy-Token": "hdr-secret"})
    client = ModelsLabClient(api_key="sk-very-secret")
    for text in (repr(config), str(config), repr(client), str(client), repr(config.api_key)):
        assert "sk-very-secret" not in text
        assert "hdr-secret" not in text
    assert "base_url='https://modelslab.com/api/v7/llm'" in repr(config)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"key_placement": "query"}, "key_placement"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"base_url": "modelslab.com/api"}, "base_url"),
    ],
)
def test_a_bad_client_setting_is_a_configuration_error_naming_it(
    kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        ModelsLabClient(api_key="k", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"temperature": 2.5}, "temperature must be between 0 and 2"),
        ({"temperature": -0.1}, "temperature"),
        ({"top_p": 1.5}, "top_p must be between 0 and 1"),
        ({"frequency_penalty": -3}, "frequency_penalty must be between -2 and 2"),
        ({"presence_penalty": 2.1}, "presence_penalty"),
        ({"n": 11}, "n must be between 1 and 10"),
        ({"n": 0}, "n must be"),
        ({"max_tokens": 0}, "max_tokens must be >= 1"),
        ({"max_tokens": 1.5}, "whole number"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "at most 4"),
        ({"stop": [""]}, "non-empty"),
        ({"temperature": "hot"}, "must be a number"),
    ],
)
def test_an_out_of_range_parameter_is_a_parameter_error_naming_its_field(
    params: dict[str, object], match: str
) -> None:
    with pytest.raises(ParameterError, match=match) as info:
        check_params(params)
    assert info.value.field == next(iter(params))
    assert isinstance(info.value, ValueError)


def test_parameters_at_the_edges_of_their_ranges_pass() -> None:
    check_params(
        {"temperature": 0, "top_p": 1, "n": 10, "max_tokens": 1, "stop": ["a"] * 4, "top_k": 40}
    )


def test_requests_need_messages_and_prompt() -> None:
    with pytest.raises(ParameterError, match="messages"):
        ChatRequest(model="m", messages=[])
    with pytest.raises(ParameterError, match="prompt"):
        CompletionRequest(prompt="")
    with pytest.raises(ParameterError, match="44000"):
        CompletionRequest(prompt="x", max_tokens=50_000)


def test_aliases_come_in_and_canonical_names_go_out_with_extras_kept() -> None:
    request = ChatRequest.model_validate(
        {
            "model_id": "m",
            "streaming": True,
            "messages": [{"role": "user", "content": "hi"}],
            "repetition_penalty": 1.1,
            "custom_field": {"a": 1},
        }
    )
    body = request.to_body()
    assert body["model"] == "m" and body["stream"] is True
    assert "model_id" not in body and "streaming" not in body
    assert body["custom_field"] == {"a": 1}
    assert body["messages"] == [{"role": "user", "content": "hi"}]


def test_a_known_id_in_any_case_gets_its_profile_and_an_unknown_id_the_safe_default() -> None:
    for name, profile in PROFILES.items():
        assert get_profile(name.upper()) == get_profile(name) == profile
    assert get_profile("GEMINI-2.5-PRO") != DEFAULT_PROFILE
    unknown = get_profile("some-new-model")
    assert unknown == DEFAULT_PROFILE
    assert unknown.tool_calling and not unknown.vision  # ModelsLab documents tools for all models
    assert get_profile("vendor-r1-preview").reasoning  # an id that looks like a reasoning model
