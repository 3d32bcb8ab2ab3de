"""The LlamaIndex model's settings: one ClientConfig built from its fields, so a field changed
after the first call takes effect; its own httpx clients (OpenAILike's names)."""

from __future__ import annotations

import httpx
import pytest
from llama_index.core.base.llms.types import ChatMessage

from llama_index_modelslab import ModelsLabLLM
from modelslab_core import ConfigurationError

KEY = "sk-li-settings-0123456789"
ANSWER = {"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}


def recording() -> tuple[list[httpx.Request], httpx.MockTransport]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(200, json=ANSWER)

    return seen, httpx.MockTransport(handler)


def test_a_field_changed_after_the_first_call_takes_effect() -> None:
    seen, transport = recording()
    with httpx.Client(transport=transport) as http:
        llm = ModelsLabLLM(api_key=KEY, base_url="https://one.test/v7/llm", http_client=http)
        llm.chat([ChatMessage(role="user", content="hi")])
        llm.base_url = "https://two.test/v7/llm"
        llm.timeout = 7.5
        llm.default_headers = {"x-team": "blue"}
        llm.chat([ChatMessage(role="user", content="hi")])
    first, second = seen
    assert first.url.host == "one.test" and second.url.host == "two.test"
    assert second.headers["x-team"] == "blue" and "x-team" not in first.headers
    assert second.extensions["timeout"]["read"] == 7.5


async def test_async_http_client_is_used_for_async_calls() -> None:
    seen, transport = recording()
    async with httpx.AsyncClient(transport=transport) as http:
        llm = ModelsLabLLM(
            api_key=KEY, base_url="https://async.test/v7/llm", async_http_client=http
        )
        response = await llm.achat([ChatMessage(role="user", content="hi")])
    assert response.message.content == "ok"
    assert [r.url.host for r in seen] == ["async.test"]


def test_a_bad_setting_fails_at_construction_not_at_the_first_call() -> None:
    with pytest.raises(ConfigurationError, match="header"):
        ModelsLabLLM(api_key=KEY, default_headers={"x-a": "line\r\nbreak"})
    with pytest.raises(ConfigurationError, match="query string"):
        ModelsLabLLM(api_key=KEY, base_url="https://a.test/v7/llm?x=1")
