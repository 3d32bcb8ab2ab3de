"""The adapter over real sockets against the local ModelsLab server: answers, streams, faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from modelslab_core import (
    AsyncModelsLabClient,
    ModelsLabClient,
    ModelsLabCompletionsClient,
    RetryPolicy,
    StreamAccumulator,
)
from modelslab_core import errors as e
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "integration-key-0123456789"
MODEL = "meta-llama-3-8B-instruct"


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    modelslab_server.api_key = KEY
    return modelslab_server


def fast(client: Any) -> Any:
    client.retry_policy = RetryPolicy(
        max_retries=client.config.max_retries, initial_delay=0, max_retry_after=0
    )
    return client


@pytest.mark.parametrize("placement", ["bearer", "body", "x-api-key"])
def test_the_key_goes_where_its_placement_says_and_nowhere_else(
    server: LocalModelsLab, placement: str
) -> None:
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, key_placement=placement)  # type: ignore[arg-type]
    answer = client.chat(ask("hello there"))
    assert answer.choices[0].message.content == "hello there"
    recorded = server.requests[-1]
    assert recorded.key_placement == placement
    assert KEY not in json.dumps(recorded.body) and KEY not in json.dumps(recorded.headers)


def test_wrong_key_is_an_authentication_error(server: LocalModelsLab) -> None:
    client = ModelsLabClient(api_key="wrong-key", base_url=server.base_url)
    with pytest.raises(e.AuthenticationError, match="Invalid Api Key"):
        client.chat(ask("hi"))
    with pytest.raises(e.AuthenticationError, match="Invalid Api Key"):
        list(client.chat_stream(ask("hi")))


def test_url_without_api_segment_is_not_found(server: LocalModelsLab) -> None:
    wrong = server.base_url.replace("/api/v7", "/v7")
    client = ModelsLabClient(api_key=KEY, base_url=wrong, max_retries=0)
    with pytest.raises(e.NotFoundError):
        client.chat(ask("hi"))


def test_stream_merges_to_the_non_streamed_answer(server: LocalModelsLab) -> None:
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "multiply",
                "parameters": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"],
                },
            },
        }
    ]
    for request in (
        ask("one two three four", stream_options={"include_usage": True}),
        ask("multiply 6 and 7", tools=tools, stream_options={"include_usage": True}),
        {
            **ask("why is the sky blue"),
            "model": "deepseek-ai-DeepSeek-R1-Distill-Llama-70B",
            "stream_options": {"include_usage": True},
        },
    ):
        whole = client.chat(request)
        acc = StreamAccumulator()
        with client.chat_stream(request) as stream:
            for chunk in stream:
                acc.add(chunk)
        merged = acc.completion()
        assert merged.choices[0].message.content == whole.choices[0].message.content
        assert merged.choices[0].message.reasoning_content == (
            whole.choices[0].message.reasoning_content
        )
        assert [c.function for c in merged.choices[0].message.tool_calls or []] == [
            c.function for c in whole.choices[0].message.tool_calls or []
        ]
        assert merged.choices[0].finish_reason == whole.choices[0].finish_reason
        assert merged.usage == whole.usage


def test_text_completions_answer_whole_and_streamed(server: LocalModelsLab) -> None:
    client = ModelsLabCompletionsClient(api_key=KEY, base_url=server.completions_base_url)
    done = client.complete({"prompt": "Write a tagline for an ice cream shop.", "max_tokens": 3})
    assert done.choices[0].text.strip()
    assert done.choices[0].finish_reason == "length"
    chunks = list(client.complete_stream({"prompt": "once upon a time", "stop": ["time"]}))
    assert "".join(c.choices[0].text for c in chunks if c.choices)


def test_the_model_list_names_the_served_models(server: LocalModelsLab) -> None:
    models = ModelsLabClient(api_key=KEY, base_url=server.base_url).list_models()
    assert "meta-llama-3-8B-instruct" in {m.id for m in models.data}


@pytest.mark.parametrize(
    ("reply", "cls", "text"),
    [
        (Reply.insufficient_credits(), e.InsufficientCreditsError, "(?i)credit"),
        (Reply.invalid_key_envelope(), e.AuthenticationError, "Invalid Api Key"),
        (Reply.misspelled_error("Model is loading"), e.BadRequestError, "Model is loading"),
        (Reply.openai_error(400, "bad temperature"), e.BadRequestError, "bad temperature"),
        (Reply.non_json(), e.InvalidResponseError, "not JSON"),
        (Reply.processing(), e.ProcessingResponseError, "queued"),
        (Reply.validation_error(), e.UnprocessableEntityError, "messages field"),
    ],
)
def test_non_retryable_faults_fail_fast(
    server: LocalModelsLab, reply: Reply, cls: type, text: str
) -> None:
    server.enqueue(reply)
    client = fast(ModelsLabClient(api_key=KEY, base_url=server.base_url))
    with pytest.raises(cls, match=text):
        client.chat(ask("hi"))
    assert server.request_count == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply.rate_limit(retry_after=0),
        Reply.server_error(500),
        Reply.html_error(502),
        Reply.reset_connection(),
        Reply.reset_connection(after_bytes=20),
    ],
)
async def test_retryable_faults_recover_sync_and_async(
    server: LocalModelsLab, reply: Reply
) -> None:
    server.enqueue(reply)
    client = fast(ModelsLabClient(api_key=KEY, base_url=server.base_url))
    assert client.chat(ask("after the fault")).choices[0].message.content == "after the fault"
    server.enqueue(reply)
    aclient = fast(AsyncModelsLabClient(api_key=KEY, base_url=server.base_url))
    answer = await aclient.chat(ask("after the fault"))
    assert answer.choices[0].message.content == "after the fault"


def test_slow_server_times_out_then_typed(server: LocalModelsLab) -> None:
    server.enqueue(Reply.slow(1.0))
    client = fast(
        ModelsLabClient(api_key=KEY, base_url=server.base_url, timeout=0.2, max_retries=0)
    )
    with pytest.raises(e.APITimeoutError):
        client.chat(ask("hi"))


async def test_cut_stream_raises_in_both_twins(server: LocalModelsLab) -> None:
    server.enqueue(Reply.cut_stream(after_chunks=2))
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url)
    with pytest.raises(e.IncompleteStreamError):
        list(client.chat_stream(ask("one two three four five")))
    server.enqueue(Reply.cut_stream(after_chunks=2))
    aclient = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url)
    with pytest.raises(e.IncompleteStreamError):
        async with await aclient.chat_stream(ask("one two three four five")) as stream:
            async for _ in stream:
                pass


async def test_stream_error_event_raises(server: LocalModelsLab) -> None:
    server.enqueue(Reply.stream_error_event("the model crashed"))
    aclient = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url)
    with pytest.raises(e.APIError, match="the model crashed"):
        async with await aclient.chat_stream(ask("hi")) as stream:
            async for _ in stream:
                pass


async def test_in_flight_cap_seen_by_server(server: LocalModelsLab) -> None:
    server.reset_stats()
    aclient = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, max_in_flight=5)
    answers = await asyncio.gather(*(aclient.chat(ask(f"call {i}")) for i in range(60)))
    assert [a.choices[0].message.content for a in answers] == [f"call {i}" for i in range(60)]
    assert 1 <= server.max_in_flight_seen <= 5


def test_one_async_client_on_two_event_loops(server: LocalModelsLab) -> None:
    aclient = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url)

    async def once(text: str) -> str:
        answer = await aclient.chat(ask(text))
        return str(answer.choices[0].message.content)

    assert asyncio.run(once("first loop")) == "first loop"
    assert asyncio.run(once("second loop")) == "second loop"
