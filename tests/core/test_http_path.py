"""The request path over ``httpx.MockTransport``: redirects, settings checked before any
request, the JSON body, the User-Agent and the log. Real sockets: ``integration_tests/network``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modelslab_core import (
    AsyncModelsLabClient,
    ClientConfig,
    ConfigurationError,
    ModelsLabClient,
    ParameterError,
)
from modelslab_core import errors as e
from modelslab_core.testing import LocalModelsLab

KEY = "sk-path-0123456789abcdef"
BASE = "https://api.test/api/v7/llm"
ASK = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
ANSWER = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
SSE = (
    b'data: {"id":"x","choices":[{"index":0,"delta":{"content":"ok"}}]}\n\n'
    b'data: {"id":"x","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)

Handler = Callable[[httpx.Request], httpx.Response]


def answer(request: httpx.Request) -> httpx.Response:
    if json.loads(request.content).get("stream"):
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=SSE)
    return httpx.Response(200, json=ANSWER)


class Both:
    """Sync and async clients over one handler, called the same way."""

    def __init__(self, handler: Handler, is_async: bool, **settings: Any) -> None:
        self.seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            request.read()
            self.seen.append(request)
            return handler(request)

        transport = httpx.MockTransport(record)
        self.is_async = is_async
        settings = {"api_key": KEY, "base_url": BASE, "max_retries": 0, **settings}
        if is_async:
            self.aclient = AsyncModelsLabClient(
                **settings, http_client=httpx.AsyncClient(transport=transport)
            )
        else:
            self.client = ModelsLabClient(**settings, http_client=httpx.Client(transport=transport))

    async def chat(self) -> str:
        if self.is_async:
            async with self.aclient:
                return (await self.aclient.chat(ASK)).choices[0].message.content or ""
        with self.client:
            return self.client.chat(ASK).choices[0].message.content or ""

    async def stream(self) -> str:
        if self.is_async:
            async with self.aclient, await self.aclient.chat_stream(ASK) as stream:
                return "".join([c.choices[0].delta.content or "" async for c in stream])
        with self.client, self.client.chat_stream(ASK) as sync_stream:
            return "".join(c.choices[0].delta.content or "" for c in sync_stream)


@pytest.fixture(params=["sync", "async"])
def is_async(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "async")


@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("kind", ["chat", "stream"])
async def test_307_and_308_are_followed_with_method_and_body(
    is_async: bool, status: int, kind: str
) -> None:
    def moved(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/moved/chat":
            return answer(request)
        return httpx.Response(status, headers={"location": "/moved/chat"})

    both = Both(moved, is_async)
    text = await (both.chat() if kind == "chat" else both.stream())
    assert text == "ok"
    first, second = both.seen
    assert second.method == first.method == "POST"
    assert second.content == first.content and json.loads(second.content)["model"] == "m"
    assert second.headers["authorization"] == f"Bearer {KEY}"  # same origin keeps the key


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_post_redirected_to_a_get_is_an_error_naming_the_location(
    is_async: bool, status: int
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers={"location": "https://elsewhere.test/v7/llm"})

    both = Both(handler, is_async)
    with pytest.raises(e.APIStatusError, match=r"elsewhere\.test/v7/llm") as info:
        await both.chat()
    assert info.value.status_code == status
    assert len(both.seen) == 1  # never re-sent as a GET
    assert KEY not in str(info.value)


async def test_a_redirect_to_another_origin_drops_the_key(is_async: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "api.test":
            return httpx.Response(307, headers={"location": "https://other.test/chat"})
        return answer(request)

    both = Both(handler, is_async)
    assert await both.chat() == "ok"
    assert "authorization" not in both.seen[1].headers


async def test_a_redirect_loop_ends_with_a_typed_error(is_async: bool) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(307, headers={"location": str(request.url)})

    both = Both(handler, is_async)
    with pytest.raises(e.APIStatusError, match="redirects"):
        await both.chat()
    assert len(both.seen) == 21  # httpx's max_redirects (20) hops, then the error


@pytest.mark.parametrize(
    "bad_key", ["sk-abc\r\n x-injected: 1", "sk-abc\u200bdef", "sk-\x00abc", "sk-é-latin-1"]
)
def test_a_key_that_cannot_be_a_header_is_refused_before_any_request(bad_key: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        ModelsLabClient(api_key=bad_key, base_url=BASE)
    assert bad_key.strip() not in str(info.value)
    assert "character" in str(info.value) and "U+" in str(info.value)


def test_a_printable_ascii_key_is_accepted() -> None:
    key = "sk-" + "".join(chr(c) for c in range(0x21, 0x7F))
    assert ModelsLabClient(api_key=key, base_url=BASE).config.api_key.get_secret_value() == key


@pytest.mark.parametrize(
    "headers", [{"x-trace": "a\r\nb"}, {"x-trace": "\u200b"}, {"bad\nname": "v"}]
)
def test_default_headers_that_cannot_be_sent_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="header"):
        ModelsLabClient(api_key=KEY, base_url=BASE, default_headers=headers)


@pytest.mark.parametrize(
    "url", ["https://api.test/v7/llm?key=1", "https://api.test/v7/llm#frag", "https://a.test/?"]
)
def test_a_base_url_with_a_query_or_fragment_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="query string or a fragment"):
        ModelsLabClient(api_key=KEY, base_url=url)


@pytest.mark.parametrize(
    "setting",
    [
        {"timeout": float("nan")},
        {"timeout": float("inf")},
        {"timeout": True},
        {"timeout": -1},
        {"total_timeout": float("nan")},
        {"total_timeout": 0},
        {"rate_limit_budget": float("inf")},
        {"max_retries": True},
        {"max_retries": 1.5},
        {"max_in_flight": 0},
        {"max_in_flight": True},
    ],
)
def test_settings_must_be_finite_numbers_of_the_right_kind(setting: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        ClientConfig.build(KEY, BASE, **setting)


def _nested(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = {}
    outer = inner
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    return outer


@pytest.mark.parametrize("placement", ["bearer", "body"])
@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"logit_bias": {"1": float("nan")}}, "Out of range float"),
        ({"metadata": _nested(100_000)}, "nested too deeply"),
    ],
    ids=["nan", "nested-too-deeply"],
)
async def test_a_request_json_cannot_carry_is_a_parameter_error_before_sending(
    is_async: bool, placement: str, extra: dict[str, Any], match: str
) -> None:
    both = Both(answer, is_async, key_placement=placement)
    request = {**ASK, **extra}
    with pytest.raises(ParameterError, match=match) as info:
        if is_async:
            await both.aclient.chat(request)
        else:
            both.client.chat(request)
    assert both.seen == [] and KEY not in str(info.value)


@pytest.mark.parametrize("placement", ["bearer", "body"])
async def test_a_lone_surrogate_is_a_clear_error_without_the_body(
    is_async: bool, placement: str
) -> None:
    both = Both(answer, is_async, key_placement=placement)
    request = {"model": "m", "messages": [{"role": "user", "content": "bad \ud800 text"}]}
    with pytest.raises(ParameterError, match=r"U\+D800") as info:
        if is_async:
            await both.aclient.chat(request)
        else:
            both.client.chat(request)
    assert both.seen == []
    assert KEY not in str(info.value) and KEY not in repr(info.value.args)
    assert info.value.__cause__ is None and info.value.__suppress_context__


async def test_the_key_goes_first_in_a_body_placement(is_async: bool) -> None:
    both = Both(answer, is_async, key_placement="body")
    assert await both.chat() == "ok"
    body = json.loads(both.seen[0].content)
    assert next(iter(body)) == "key" and body["key"] == KEY and body["model"] == "m"
    assert "authorization" not in both.seen[0].headers


async def test_user_agent_names_the_stack_and_compression_is_asked_for(is_async: bool) -> None:
    both = Both(answer, is_async)
    await both.chat()
    agent = both.seen[0].headers["user-agent"]
    assert agent.startswith("modelslab-integrations/") and f"httpx/{httpx.__version__}" in agent
    assert "gzip" in both.seen[0].headers["accept-encoding"]


async def test_the_user_agent_names_the_transport_that_carried_the_call(
    modelslab_server: LocalModelsLab,
) -> None:
    """The shared async pool runs on aiohttp (named); the sync pool on httpx's own transport."""
    request = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": "ua"}]}
    ModelsLabClient(api_key=KEY, base_url=modelslab_server.base_url).chat(request)
    await AsyncModelsLabClient(api_key=KEY, base_url=modelslab_server.base_url).chat(request)
    sync_agent, async_agent = (r.headers["user-agent"] for r in modelslab_server.requests)
    assert " aiohttp/" in async_agent and " aiohttp/" not in sync_agent
    assert sync_agent.startswith("modelslab-integrations/") and "httpx/" in sync_agent


async def test_debug_log_has_model_status_request_id_and_retries_but_no_key(
    is_async: bool, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(503, json={"message": "busy"}, headers={"retry-after": "0"})
        return httpx.Response(200, json=ANSWER, headers={"x-request-id": "req-42"})

    both = Both(handler, is_async, max_retries=1)
    with caplog.at_level(logging.DEBUG, logger="modelslab_core"):
        assert await both.chat() == "ok"
    lines = [r.getMessage() for r in caplog.records if r.name == "modelslab_core"]
    final = [line for line in lines if "status=200" in line]
    assert final and "model=m" in final[0] and "request_id=req-42" in final[0]
    assert "retries=1" in final[0] and "latency=" in final[0]
    assert all(KEY not in line and "ping" not in line for line in lines)
