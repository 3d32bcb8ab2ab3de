"""Adapter errors come out of every path as classes that are also langchain-core's exceptions."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)

import modelslab_core
from langchain_modelslab import (
    ChatModelsLab,
    ModelsLabAuthenticationError,
    ModelsLabRateLimitError,
    translate_error,
)

from .conftest import KEY, Mock, chat_answer, chunk, sse

MakeChat = Callable[..., ChatModelsLab]


async def _collect_async(model: ChatModelsLab, stream: bool) -> Any:
    if stream:
        return [c async for c in model.astream("hi")]
    return await model.ainvoke("hi")


def _run(model: ChatModelsLab, path: str) -> Any:
    import asyncio

    if path == "invoke":
        return model.invoke("hi")
    if path == "stream":
        return list(model.stream("hi"))
    return asyncio.run(_collect_async(model, stream=path == "astream"))


PATHS = ["invoke", "ainvoke", "stream", "astream"]

CASES = [
    (
        httpx.Response(429, json={"status": "error", "message": "Rate limit exceeded. Max 5."}),
        modelslab_core.RateLimitError,
        ModelRateLimitError,
        "Rate limit exceeded",
    ),
    (
        httpx.Response(401, json={"error": {"message": "Bad key", "type": "auth"}}),
        modelslab_core.AuthenticationError,
        ModelAuthenticationError,
        "Bad key",
    ),
    (
        httpx.Response(200, json={"status": "error", "message": "Invalid Api Key"}),
        modelslab_core.AuthenticationError,
        ModelAuthenticationError,
        "Invalid Api Key",
    ),
    (
        httpx.Response(403, json={"message": "Forbidden here"}),
        modelslab_core.PermissionDeniedError,
        ModelPermissionDeniedError,
        "Forbidden here",
    ),
    (
        httpx.Response(402, json={"status": "error", "message": "Insufficient credits"}),
        modelslab_core.InsufficientCreditsError,
        ModelPermissionDeniedError,
        "Insufficient credits",
    ),
    (
        httpx.Response(400, json={"error": {"message": "bad temperature"}}),
        modelslab_core.BadRequestError,
        ModelInvalidRequestError,
        "bad temperature",
    ),
    (
        httpx.Response(
            400, json={"error": {"message": "This model's maximum context length is 8192"}}
        ),
        modelslab_core.BadRequestError,
        ContextOverflowError,
        "maximum context length",
    ),
    (
        httpx.Response(422, json={"message": "The messages field is required."}),
        modelslab_core.UnprocessableEntityError,
        ModelInvalidRequestError,
        "messages field is required",
    ),
    (
        httpx.Response(404, json={"message": "Model not found"}),
        modelslab_core.NotFoundError,
        ModelNotFoundError,
        "Model not found",
    ),
    (
        httpx.Response(500, json={"message": "boom"}),
        modelslab_core.ServerError,
        ModelAPIError,
        "boom",
    ),
    (
        httpx.Response(502, text="<html><title>502 Bad Gateway</title></html>"),
        modelslab_core.ServerError,
        ModelAPIError,
        "502 Bad Gateway",
    ),
    (
        httpx.Response(200, json={"status": "processing", "id": 1, "eta": 5}),
        modelslab_core.ProcessingResponseError,
        ModelAPIError,
        "",
    ),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("answer", "core_cls", "lc_cls", "text"), CASES)
def test_a_status_error_is_a_langchain_and_an_adapter_error_without_the_key(
    make_chat: MakeChat,
    path: str,
    answer: httpx.Response,
    core_cls: type[Exception],
    lc_cls: type[Exception],
    text: str,
) -> None:
    model = make_chat(answer)
    with pytest.raises(core_cls) as info:
        _run(model, path)
    error = info.value
    assert isinstance(error, lc_cls)
    assert isinstance(error, modelslab_core.APIError)
    assert text in str(error)
    assert KEY not in str(error) and KEY not in repr(error)
    assert isinstance(error.__cause__, core_cls)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    ("exc", "lc_cls", "core_cls"),
    [
        (httpx.ConnectError("refused"), ModelConnectionError, modelslab_core.APIConnectionError),
        (httpx.ReadTimeout("slow"), ModelTimeoutError, modelslab_core.APITimeoutError),
    ],
)
def test_a_transport_failure_is_a_langchain_connection_or_timeout_error(
    make_chat: MakeChat,
    path: str,
    exc: Exception,
    lc_cls: type[Exception],
    core_cls: type[Exception],
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(core_cls) as info:
        _run(make_chat(fail), path)
    assert isinstance(info.value, lc_cls)


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_an_error_event_mid_stream_raises_the_servers_message(
    make_chat: MakeChat, path: str
) -> None:
    answer = sse(
        chunk({"content": "par"}),
        {"error": {"message": "upstream overloaded", "code": 503}},
        done=False,
    )
    with pytest.raises(modelslab_core.APIError) as info:
        _run(make_chat(answer), path)
    assert isinstance(info.value, ModelAPIError)
    assert "upstream overloaded" in str(info.value)


@pytest.mark.parametrize("path", ["stream", "astream"])
def test_a_stream_cut_before_done_is_an_incomplete_stream_error(
    make_chat: MakeChat, path: str
) -> None:
    answer = sse(chunk({"content": "par"}), done=False)
    with pytest.raises(modelslab_core.IncompleteStreamError) as info:
        _run(make_chat(answer), path)
    assert isinstance(info.value, ModelConnectionError)


def test_rate_limit_is_retried_then_succeeds(
    make_chat: MakeChat, mock: Mock, no_retry_delay: None
) -> None:
    limited = httpx.Response(429, json={"message": "Rate limit exceeded", "retry_after": 30})
    model = make_chat(limited, chat_answer("finally"), max_retries=1)
    assert model.invoke("hi").content == "finally"
    assert len(mock.requests) == 2


def test_key_echoed_by_server_is_redacted(make_chat: MakeChat) -> None:
    answer = httpx.Response(401, json={"message": f"Invalid key {KEY}"})
    with pytest.raises(ModelAuthenticationError) as info:
        make_chat(answer).invoke("hi")
    assert KEY not in str(info.value)
    assert KEY not in repr(info.value.__dict__)


def test_translation_keeps_fields_and_pickles() -> None:
    original = modelslab_core.RateLimitError(
        "slow down", status_code=429, request_id="r1", body={"x": 1}, retry_after=2.0
    )
    translated = translate_error(original)
    assert type(translated) is ModelsLabRateLimitError
    assert isinstance(translated, modelslab_core.RateLimitError)
    assert (translated.message, translated.status_code, translated.request_id) == (
        "slow down",
        429,
        "r1",
    )
    assert translated.retry_after == 2.0
    assert str(translated) == str(original)
    assert ModelsLabRateLimitError.is_retryable is True
    clone = pickle.loads(pickle.dumps(translated))
    assert type(clone) is ModelsLabRateLimitError and clone.retry_after == 2.0
    assert translate_error(translated) is translated


def test_configuration_errors_are_left_alone() -> None:
    error = modelslab_core.MissingAPIKeyError("no key")
    assert translate_error(error) is error


def test_a_403_is_a_permission_error_that_an_authentication_handler_catches() -> None:
    error = translate_error(modelslab_core.PermissionDeniedError("no", status_code=403))
    assert isinstance(error, ModelPermissionDeniedError)
    assert isinstance(error, modelslab_core.AuthenticationError)
    assert not isinstance(error, ModelsLabAuthenticationError)


def test_fallback_catches_rate_limit(make_chat: MakeChat) -> None:
    limited = make_chat(httpx.Response(429, json={"message": "Rate limit exceeded"}))
    backup = ChatModelsLab(
        api_key=KEY,
        http_client=httpx.Client(
            transport=httpx.MockTransport(lambda r: chat_answer("from backup"))
        ),
    )
    try:
        chain = limited.with_fallbacks([backup], exceptions_to_handle=(ModelRateLimitError,))
        assert chain.invoke("hi").content == "from backup"
    finally:
        assert backup.http_client is not None
        backup.http_client.close()
