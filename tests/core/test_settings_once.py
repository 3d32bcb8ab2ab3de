"""Each client setting is declared once (``ClientSettings``: type, default, doc, check) and both
frameworks take it from there; configuration mistakes are typed alike in both frameworks and in
the clients; base URLs are read one way; contradictory settings are refused."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from llama_index.core.base.llms.types import ChatMessage as LIMessage

from langchain_modelslab import ChatModelsLab
from langchain_modelslab import ModelsLabLLM as LCCompletions
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import (
    ClientConfig,
    ClientSettings,
    ConfigurationError,
    InvalidSettingError,
    ModelsLabClient,
    ParameterError,
)
from modelslab_core.config import resolve_base_url
from modelslab_core.testing import LocalModelsLab

KEY = "sk-settings-once-0123456789"
MODEL = "meta-llama-3-8B-instruct"
DOCUMENTED_ENDPOINT = "https://modelslab.com/api/v7/llm/chat/completions"

Make = Callable[..., Any]
MAKERS: dict[str, Make] = {
    "langchain": lambda **kw: ChatModelsLab(**{"api_key": KEY, **kw}),
    "llama_index": lambda **kw: ModelsLabLLM(**{"api_key": KEY, **kw}),
    "client": lambda **kw: ModelsLabClient(**{"api_key": KEY, **kw}),
}
FRAMEWORKS = {name: MAKERS[name] for name in ("langchain", "llama_index")}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELSLAB_API_KEY", "MODELSLAB_BASE_URL", "MODELSLAB_COMPLETIONS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


# --- declared once --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ChatModelsLab, LCCompletions, ModelsLabLLM])
def test_every_setting_has_the_declared_type_default_and_doc_in_each_framework(
    cls: type[Any],
) -> None:
    for name, declared in ClientSettings.model_fields.items():
        field = cls.model_fields[name]
        assert field.annotation == declared.annotation, name
        assert field.get_default(call_default_factory=True) == declared.get_default(
            call_default_factory=True
        ), name
        assert field.description and field.description == declared.description, name


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
def test_a_model_with_no_settings_has_the_clients_defaults(make: Make) -> None:
    model = make()
    assert model._config() == ClientConfig.build(KEY, model.base_url)


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
def test_the_config_is_built_once_per_model_and_again_when_a_field_changes(make: Make) -> None:
    model = make(timeout=5)
    first = model._config()
    assert model._config() is first
    model.timeout = 9
    second = model._config()
    assert second is not first and second.timeout == 9.0
    model.default_headers["x-team"] = "blue"  # changed in place
    assert model._config().default_headers == {"x-team": "blue"}


def test_the_frameworks_agree_on_every_client_setting_default() -> None:
    chat, llm = ChatModelsLab(api_key=KEY), ModelsLabLLM(api_key=KEY)
    assert chat._config() == llm._config()


# --- mistakes are configuration errors, alike everywhere ------------------------------------------

MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"temperature": 3}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_tokens": True}, "max_tokens"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": "soon"}, "timeout"),
    ({"max_retries": -1}, "max_retries"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"flow_control": "yes"}, "flow_control"),
    ({"key_placement": "query"}, "key_placement"),
    ({"default_headers": {"x": "a\r\nb"}}, "header"),
    ({"api_key": 123}, "api_key"),
    ({"base_url": "ftp://nope"}, "base_url"),
]


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
@pytest.mark.parametrize(("kwargs", "says"), MISTAKES)
def test_every_constructor_mistake_is_a_configuration_error(
    make: Make, kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says) as caught:
        make(**kwargs)
    assert isinstance(caught.value, ValueError)
    assert KEY not in f"{caught.value} {caught.value!r}"


def test_an_unknown_client_setting_is_refused_by_name() -> None:
    with pytest.raises(InvalidSettingError, match="retries") as caught:
        ModelsLabClient(api_key=KEY, retries=3)
    assert caught.value.field == "retries"
    assert ModelsLabClient(api_key=KEY, request_timeout=5).config.timeout == 5.0


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS)
@pytest.mark.parametrize(
    "headers", [{"x-token": 7}, {7: "hdr-secret"}, [("x-token", "hdr-secret")], "hdr-secret"]
)
def test_default_headers_that_are_no_map_of_strings_are_refused_without_showing_them(
    make: Make, headers: Any
) -> None:
    with pytest.raises(InvalidSettingError, match="default_headers") as caught:
        make(default_headers=headers)
    assert caught.value.field == "default_headers"
    assert "hdr-secret" not in f"{caught.value} {caught.value!r}"


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
def test_an_out_of_range_sampling_value_is_both_a_parameter_and_a_configuration_error(
    make: Make,
) -> None:
    with pytest.raises(ParameterError, match="temperature") as caught:
        make(temperature=3)
    assert isinstance(caught.value, ConfigurationError)
    assert caught.value.field == "temperature"


# --- names of one setting -------------------------------------------------------------------------


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
@pytest.mark.parametrize("alias", ["model", "model_name", "model_id"])
def test_the_model_id_is_taken_under_each_usual_name(make: Make, alias: str) -> None:
    assert make(**{alias: "deepseek-ai-DeepSeek-V3"}).model == "deepseek-ai-DeepSeek-V3"


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": MODEL, "model_name": "deepseek-ai-DeepSeek-V3"},
        {"model_id": MODEL, "model_name": "deepseek-ai-DeepSeek-V3"},
        {"base_url": "https://a.test/v7", "api_base": "https://b.test/v7"},
        {"timeout": 5, "request_timeout": 6},
    ],
)
def test_two_names_of_one_setting_with_different_values_are_refused(
    make: Make, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError, match="contradict"):
        make(**kwargs)


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
def test_two_names_of_one_setting_with_the_same_value_are_one_setting(make: Make) -> None:
    assert make(model=MODEL, model_name=MODEL).model == MODEL
    assert make(timeout=5, request_timeout=5)._config().timeout == 5.0


# --- contradictions -------------------------------------------------------------------------------

CONTRADICTIONS: list[tuple[dict[str, Any], str]] = [
    ({"max_in_flight": 4, "flow_control": False}, "max_in_flight"),
    ({"key_in_body": True, "key_placement": "x-api-key"}, "key_in_body"),
    ({"rate_limit_budget": 30, "max_retries": 0}, "max_retries=0"),
    ({"rate_limit_budget": 30, "flow_control": False}, "flow_control=False"),
    ({"rate_limit_budget": 600, "total_timeout": 60}, "total_timeout"),
    ({"default_headers": {"Authorization": "Bearer other"}}, "authorization"),
    ({"default_headers": {"X-API-Key": "other"}, "key_placement": "x-api-key"}, "x-api-key"),
]


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS)
@pytest.mark.parametrize(("kwargs", "says"), CONTRADICTIONS)
def test_settings_that_cannot_take_effect_together_are_refused(
    make: Make, kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError, match=says):
        make(**kwargs)


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
def test_a_setting_changed_into_a_contradiction_is_refused_at_the_next_call(make: Make) -> None:
    model = make(max_retries=0)
    model.rate_limit_budget = 30
    with pytest.raises(ConfigurationError, match="max_retries=0"):
        model._config()


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
def test_settings_that_work_together_are_kept(make: Make) -> None:
    model = make(
        max_retries=0,
        flow_control=False,
        total_timeout=30,
        rate_limit_budget=None,
        default_headers={"Authorization": "Basic proxy"},
        key_placement="x-api-key",
    )
    config = model._config()
    assert config.default_headers == {"Authorization": "Basic proxy"}
    assert pickle.loads(pickle.dumps(model))._config() == config


def test_key_in_body_and_the_same_placement_agree() -> None:
    assert (
        ModelsLabLLM(api_key=KEY, key_in_body=True, key_placement="body")._config().key_placement
        == "body"
    )
    assert ChatModelsLab(api_key=KEY, key_in_body=True)._config().key_placement == "body"


def test_tools_with_text_completions_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="is_function_calling_model"):
        ModelsLabLLM(api_key=KEY, is_chat_model=False, is_function_calling_model=True)


def test_streaming_with_several_answers_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="n must be 1"):
        ChatModelsLab(api_key=KEY, streaming=True, n=2)


# --- base URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        "https://modelslab.com/api/v7/llm/",
        "HTTPS://ModelsLab.COM/api/v7/llm",
        "https://modelslab.com:443/api/v7/llm",
        " https://modelslab.com/api/v7/llm ",
        "chat",
    ],
)
@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS)
def test_spellings_of_one_base_url_give_one_config(make: Make, spelling: str) -> None:
    made = make(base_url=spelling)
    config = made.config if isinstance(made, ModelsLabClient) else made._config()
    assert config.base_url == "https://modelslab.com/api/v7/llm"
    assert config == MAKERS["client"]().config


@pytest.mark.parametrize(
    ("pasted", "base"),
    [
        (DOCUMENTED_ENDPOINT, "https://modelslab.com/api/v7/llm"),
        ("https://modelslab.com/api/v6/completions", "https://modelslab.com/api/v6"),
        ("https://modelslab.com/api/v7/llm/v1/models/", "https://modelslab.com/api/v7/llm"),
    ],
)
def test_a_pasted_endpoint_url_is_cut_to_its_base_with_a_warning_saying_so(
    pasted: str, base: str
) -> None:
    with pytest.warns(UserWarning, match="ends in the endpoint path") as caught:
        assert resolve_base_url(pasted) == base
    assert base in str(caught[0].message)


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS)
def test_the_documented_endpoint_as_base_url_reaches_the_chat_endpoint(
    make: Make, modelslab_server: LocalModelsLab
) -> None:
    modelslab_server.api_key = KEY
    with pytest.warns(UserWarning, match="chat/completions"):
        made = make(base_url=f"{modelslab_server.base_url}/chat/completions")
    if isinstance(made, ModelsLabClient):
        made.chat({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    elif isinstance(made, ChatModelsLab):
        made.invoke([HumanMessage("hi")])
    else:
        made.chat([LIMessage(role="user", content="hi")])
    assert [r.path for r in modelslab_server.requests] == ["/api/v7/llm/chat/completions"]


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS)
@pytest.mark.parametrize(
    "url",
    [
        "https://alice:hunter2secret@modelslab.com/api/v7/llm",
        "ftp://alice:hunter2secret@modelslab.com/api/v7/llm",
        "https://alice:hunter2secret@modelslab.com/api/v7/llm?x=1",
        "https://alice:hunter2secret@[::1/api",
    ],
)
def test_a_base_url_with_a_user_and_password_is_refused_without_showing_them(
    make: Make, url: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        make(base_url=url)
    shown = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert "hunter2secret" not in shown and "alice" not in shown


# --- repr -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", FRAMEWORKS.values(), ids=FRAMEWORKS)
def test_the_repr_is_short_and_starts_with_the_model_id(make: Make) -> None:
    for model in (make(), make(temperature=0.3), pickle.loads(pickle.dumps(make(timeout=5)))):
        text = repr(model)
        assert text.startswith(f"{type(model).__name__}(model='{MODEL}'"), text
        assert len(text) < 160, text
        assert KEY not in text and "context_window" not in text and "profile" not in text
    assert "temperature=0.3" in repr(make(temperature=0.3))


def test_no_warning_for_an_ordinary_base_url() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ChatModelsLab(api_key=KEY, base_url="https://modelslab.com/api/v7/llm")
        ModelsLabLLM(api_key=KEY, base_url="https://modelslab.com/api/v7/llm")


def test_both_spellings_of_the_key_in_the_body_give_one_config() -> None:
    by_flag = ChatModelsLab(api_key=KEY, key_in_body=True)._config()
    by_placement = ModelsLabLLM(api_key=KEY, key_placement="body")._config()
    assert by_flag == by_placement == ModelsLabClient(api_key=KEY, key_placement="body").config


@pytest.mark.parametrize(
    ("make", "kwargs"),
    [
        (MAKERS["langchain"], {"temperature": 0.2, "model_kwargs": {"temperature": 0.9}}),
        (MAKERS["langchain"], {"extra_body": {"model": "deepseek-ai-DeepSeek-V3"}}),
        (MAKERS["llama_index"], {"additional_kwargs": {"max_tokens": 50}}),
    ],
)
def test_a_request_field_given_twice_through_the_extras_is_refused(
    make: Make, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError, match="arguments of their own"):
        make(**kwargs)


def test_stop_and_stop_sequences_are_one_setting() -> None:
    assert ChatModelsLab(api_key=KEY, stop_sequences=["END"]).stop == ["END"]
    with pytest.raises(ConfigurationError, match="contradict"):
        ChatModelsLab(api_key=KEY, stop=["A"], stop_sequences=["B"])
