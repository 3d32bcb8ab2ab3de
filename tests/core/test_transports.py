"""The two transports behind the shared pools (http.client for sync, aiohttp for async), over
loopback against the local server: connection reuse, closing, compression, faults."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

import httpx
import pytest

from modelslab_core import AsyncModelsLabClient, ModelsLabClient, RetryPolicy
from modelslab_core import errors as e
from modelslab_core._aiohttp_transport import AiohttpTransport
from modelslab_core._pools import POOL_LIMITS
from modelslab_core._sync_transport import HTTPClientTransport
from modelslab_core.testing import LocalModelsLab, Reply

ASK = {"model": "m", "messages": [{"role": "user", "content": "ping"}]}
ANSWER = {
    "id": "x",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "zipped"}}],
}


def test_keep_alive_connection_reused(modelslab_server: LocalModelsLab) -> None:
    with httpx.Client(transport=HTTPClientTransport()) as http:
        client = ModelsLabClient(api_key="k", base_url=modelslab_server.base_url, http_client=http)
        before = modelslab_server.connections_opened
        for _ in range(20):
            assert client.chat(ASK).choices[0].message.content == "ping"
        assert modelslab_server.connections_opened - before == 1


def test_server_closing_the_connection_is_handled(modelslab_server: LocalModelsLab) -> None:
    body = json.dumps(ANSWER)
    modelslab_server.enqueue(
        Reply.raw(200, body, content_type="application/json", headers={"connection": "close"})
    )
    transport = HTTPClientTransport()
    with httpx.Client(transport=transport) as http:
        client = ModelsLabClient(
            api_key="k", base_url=modelslab_server.base_url, http_client=http, max_retries=0
        )
        assert client.chat(ASK).choices[0].message.content == "zipped"
        assert client.chat(ASK).choices[0].message.content == "ping"


def test_gzip_bodies_decoded_by_both_transports(modelslab_server: LocalModelsLab) -> None:
    zipped = gzip.compress(json.dumps(ANSWER).encode())

    def enqueue() -> None:
        modelslab_server.enqueue(
            Reply.raw(
                200, zipped, content_type="application/json", headers={"content-encoding": "gzip"}
            )
        )

    enqueue()
    with httpx.Client(transport=HTTPClientTransport()) as http:
        client = ModelsLabClient(api_key="k", base_url=modelslab_server.base_url, http_client=http)
        assert client.chat(ASK).choices[0].message.content == "zipped"

    async def run() -> str:
        async with httpx.AsyncClient(transport=AiohttpTransport(POOL_LIMITS)) as ahttp:
            aclient = AsyncModelsLabClient(
                api_key="k", base_url=modelslab_server.base_url, http_client=ahttp
            )
            answer = await aclient.chat(ASK)
            return str(answer.choices[0].message.content)

    enqueue()
    assert asyncio.run(run()) == "zipped"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_faults_typed_through_each_transport(modelslab_server: LocalModelsLab, mode: str) -> None:
    cases: list[tuple[Reply, type[Exception], dict[str, Any]]] = [
        (Reply.reset_connection(), e.APIConnectionError, {}),
        (Reply.reset_connection(after_bytes=30), e.APIConnectionError, {}),
        (Reply.slow(0.5), e.APITimeoutError, {"timeout": 0.1}),
    ]
    for reply, cls, extra in cases:
        modelslab_server.enqueue(reply)
        kwargs: dict[str, Any] = {
            "api_key": "k",
            "base_url": modelslab_server.base_url,
            "max_retries": 0,
            **extra,
        }
        if mode == "sync":
            with httpx.Client(transport=HTTPClientTransport()) as http, pytest.raises(cls):
                ModelsLabClient(http_client=http, **kwargs).chat(ASK)
        else:

            async def run(kwargs: dict[str, Any] = kwargs) -> None:
                async with httpx.AsyncClient(transport=AiohttpTransport(POOL_LIMITS)) as ahttp:
                    await AsyncModelsLabClient(http_client=ahttp, **kwargs).chat(ASK)

            with pytest.raises(cls):
                asyncio.run(run())


def test_connection_refused_is_a_connection_error() -> None:
    with LocalModelsLab() as server:
        base_url = server.base_url
    with httpx.Client(transport=HTTPClientTransport()) as http:
        client = ModelsLabClient(api_key="k", base_url=base_url, http_client=http, max_retries=1)
        client.retry_policy = RetryPolicy(max_retries=1, initial_delay=0)
        with pytest.raises(e.APIConnectionError, match="connection failed"):
            client.chat(ASK)


def test_half_read_stream_is_not_put_back_in_the_pool(modelslab_server: LocalModelsLab) -> None:
    transport = HTTPClientTransport()
    with httpx.Client(transport=transport) as http:
        client = ModelsLabClient(api_key="k", base_url=modelslab_server.base_url, http_client=http)
        long = {"model": "m", "messages": [{"role": "user", "content": "word " * 500}]}
        with client.chat_stream(long) as stream:
            next(iter(stream))
        assert sum(len(v) for v in transport._idle.values()) == 0
        # The next call opens a fresh connection and answers.
        assert client.chat(ASK).choices[0].message.content == "ping"
        assert sum(len(v) for v in transport._idle.values()) == 1
