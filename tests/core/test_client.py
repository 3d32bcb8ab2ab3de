"""Both clients over ``httpx.MockTransport``: the same behaviour, sync and async."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from modelslab_core import (
    AsyncModelsLabClient,
    ChatCompletion,
    ModelsLabClient,
    RetryPolicy,
)
from modelslab_core import errors as e

KEY = "sk-test-SECRET-0123456789"
MESSAGES = [{"role": "user", "content": "hi"}]
Handler = Callable[[httpx.Request], httpx.Response]


def answer(content: str = "hello", **extra: Any) -> dict[str, Any]:
    return {
        "id": "gen-1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        **extra,
    }


def sse(*events: Any, done: bool = True) -> httpx.Response:
    text = ": keep-alive\n\n" + "".join(
        f"data: {ev if isinstance(ev, str) else json.dumps(ev)}\n\n" for ev in events
    )
    if done:
        text += "data: [DONE]\n\n"
    return httpx.Response(200, content=text.encode(), headers={"content-type": "text/event-stream"})


def delta(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


class NoWait(RetryPolicy):
    """The real policy's decisions (a hint above 60 s is not retried), without its waits."""

    def delay(self, error: BaseException, attempt: int, *, rng: Any = None) -> float:
        return 0.0


class Driver:
    """Runs one call through the sync or the async client, so each test covers both."""

    def __init__(self, mode: str, handler: Handler, **kwargs: Any) -> None:
        self.mode = mode
        self.seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            self.seen.append(request)
            return handler(request)

        transport = httpx.MockTransport(record)
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("base_url", "https://modelslab.test/api/v7/llm")
        self.client: ModelsLabClient | AsyncModelsLabClient
        if mode == "sync":
            self.client = ModelsLabClient(http_client=httpx.Client(transport=transport), **kwargs)
        else:
            self.client = AsyncModelsLabClient(
                http_client=httpx.AsyncClient(transport=transport), **kwargs
            )
        self.client.retry_policy = NoWait(max_retries=self.client.config.max_retries)

    async def chat(self, **request: Any) -> ChatCompletion:
        request.setdefault("messages", MESSAGES)
        if isinstance(self.client, ModelsLabClient):
            return self.client.chat(request)
        return await self.client.chat(request)

    async def stream(self, **request: Any) -> list[Any]:
        request.setdefault("messages", MESSAGES)
        if isinstance(self.client, ModelsLabClient):
            with self.client.chat_stream(request) as stream:
                return list(stream)
        async with await self.client.chat_stream(request) as astream:
            return [c async for c in astream]

    async def close(self) -> None:
        if isinstance(self.client, ModelsLabClient):
            self.client.close()
        else:
            await self.client.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make(mode: str) -> Any:
    drivers: list[Driver] = []

    def build(handler: Handler, **kwargs: Any) -> Driver:
        driver = Driver(mode, handler, **kwargs)
        drivers.append(driver)
        return driver

    yield build
    for driver in drivers:
        await driver.close()


async def test_chat_sends_canonical_body_and_bearer(make: Any) -> None:
    d = make(lambda r: httpx.Response(200, json=answer()))
    result = await d.chat(model_id="meta-llama-3-8B-instruct", temperature=0.5)
    assert result.choices[0].message.content == "hello"
    request = d.seen[0]
    assert str(request.url) == "https://modelslab.test/api/v7/llm/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(request.content)
    assert body["model"] == "meta-llama-3-8B-instruct" and "model_id" not in body
    assert body["stream"] is False and "key" not in body


@pytest.mark.parametrize("placement", ["body", "x-api-key"])
async def test_a_key_placed_in_the_body_or_x_api_key_is_not_also_sent_as_a_bearer(
    make: Any, placement: str
) -> None:
    d = make(lambda r: httpx.Response(200, json=answer()), key_placement=placement)
    await d.chat(model="m")
    request = d.seen[0]
    assert "authorization" not in request.headers
    if placement == "body":
        assert json.loads(request.content)["key"] == KEY
    else:
        assert request.headers["x-api-key"] == KEY


async def test_default_headers_go_out_with_the_request(make: Any) -> None:
    d = make(lambda r: httpx.Response(200, json=answer()), default_headers={"X-Trace": "t1"})
    await d.chat(model="m")
    assert d.seen[0].headers["x-trace"] == "t1"


@pytest.mark.parametrize(
    ("response", "cls", "text"),
    [
        (
            (200, {"json": {"status": "error", "message": "Invalid Api Key"}}),
            e.AuthenticationError,
            "Invalid Api Key",
        ),
        (
            (200, {"json": {"status": "error", "messege": "Something failed"}}),
            e.BadRequestError,
            "Something failed",
        ),
        (
            (402, {"json": {"status": "error", "message": "Insufficient credits"}}),
            e.InsufficientCreditsError,
            "Insufficient credits",
        ),
        (
            (401, {"json": {"error": {"message": "bad key", "type": "auth"}}}),
            e.AuthenticationError,
            "bad key",
        ),
        (
            (404, {"json": {"status": "error", "message": "Model not found"}}),
            e.NotFoundError,
            "Model not found",
        ),
        (
            (422, {"json": {"status": "error", "message": "The messages field is required."}}),
            e.UnprocessableEntityError,
            "messages field",
        ),
        ((200, {"content": b"<html>oops</html>"}), e.InvalidResponseError, "not JSON"),
        (
            (200, {"json": {"status": "processing", "id": 5, "eta": 10}}),
            e.ProcessingResponseError,
            "queued",
        ),
        ((200, {"json": {"hello": "world"}}), e.InvalidResponseError, "without choices"),
    ],
)
async def test_error_answers_raise_typed_errors_without_retry(
    make: Any, response: tuple[int, dict[str, Any]], cls: type, text: str
) -> None:
    d = make(lambda r: httpx.Response(response[0], **response[1]))
    with pytest.raises(cls, match=text) as info:
        await d.chat(model="m")
    assert len(d.seen) == 1  # never retried
    assert KEY not in str(info.value) and KEY not in repr(info.value)


async def test_key_echoed_by_server_is_scrubbed_from_errors(make: Any) -> None:
    d = make(lambda r: httpx.Response(401, json={"status": "error", "message": f"bad key {KEY}"}))
    with pytest.raises(e.AuthenticationError) as info:
        await d.chat(model="m")
    assert KEY not in str(info.value)
    assert KEY not in json.dumps(info.value.body)
    assert "***" in info.value.message


@pytest.mark.parametrize(
    "failure",
    [
        (429, {"json": {"status": "error", "message": "Rate limit", "retry_after": 30}}),
        (429, {"headers": {"retry-after": "2"}}),
        (502, {"text": "<html><title>502 Bad Gateway</title></html>"}),
        (500, {"json": {"error": {"message": "boom"}}}),
        (408, {}),
        (409, {}),
    ],
)
async def test_retryable_answers_are_retried_then_succeed(
    make: Any, failure: tuple[int, dict[str, Any]]
) -> None:
    responses = iter(
        [httpx.Response(failure[0], **failure[1]), httpx.Response(200, json=answer("recovered"))]
    )
    d = make(lambda r: next(responses))
    result = await d.chat(model="m")
    assert result.choices[0].message.content == "recovered"
    assert len(d.seen) == 2


async def test_retries_exhausted_raise_last_error(make: Any) -> None:
    d = make(lambda r: httpx.Response(503, text="Service Unavailable"), max_retries=2)
    with pytest.raises(e.ServerError, match="Service Unavailable"):
        await d.chat(model="m")
    assert len(d.seen) == 3


async def test_max_retries_zero_means_one_try(make: Any) -> None:
    d = make(lambda r: httpx.Response(429, json={"message": "slow"}), max_retries=0)
    with pytest.raises(e.RateLimitError) as info:
        await d.chat(model="m")
    assert info.value.status_code == 429
    assert len(d.seen) == 1


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (httpx.ConnectError("refused"), e.APIConnectionError),
        (httpx.ReadTimeout("slow"), e.APITimeoutError),
        (httpx.RemoteProtocolError("reset"), e.APIConnectionError),
    ],
)
async def test_transport_failures_retried_then_typed(make: Any, exc: Exception, cls: type) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise exc

    d = make(fail, max_retries=1)
    with pytest.raises(cls):
        await d.chat(model="m")
    assert len(d.seen) == 2


async def test_bad_parameters_fail_before_any_request(make: Any) -> None:
    d = make(lambda r: httpx.Response(200, json=answer()))
    with pytest.raises(e.ParameterError, match="temperature"):
        await d.chat(model="m", temperature=3)
    with pytest.raises(e.ParameterError, match="messages"):
        await d.chat(model="m", messages=[])
    assert d.seen == []


async def test_stream_decodes_and_closes(make: Any) -> None:
    d = make(lambda r: sse(delta("Hel"), delta("lo", "stop")))
    chunks = await d.stream(model="m", stream_options={"include_usage": True})
    assert "".join(c.choices[0].delta.content for c in chunks) == "Hello"
    body = json.loads(d.seen[0].content)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_stream_without_done_is_incomplete(make: Any) -> None:
    d = make(lambda r: sse(delta("Hel"), done=False))
    with pytest.raises(e.IncompleteStreamError, match="DONE"):
        await d.stream(model="m")


async def test_stream_error_event_raises(make: Any) -> None:
    d = make(lambda r: sse(delta("Hel"), {"error": {"message": "upstream died"}}))
    with pytest.raises(e.StreamError, match="upstream died"):
        await d.stream(model="m")
    assert len(d.seen) == 1  # after the first event: not retried


async def test_stream_request_answered_by_json_error(make: Any) -> None:
    d = make(lambda r: httpx.Response(200, json={"status": "error", "message": "Invalid Api Key"}))
    with pytest.raises(e.AuthenticationError, match="Invalid Api Key"):
        await d.stream(model="m")


async def test_stream_request_answered_by_whole_completion(make: Any) -> None:
    d = make(lambda r: httpx.Response(200, json=answer("all at once")))
    chunks = await d.stream(model="m")
    assert [c.choices[0].delta.content for c in chunks] == ["all at once"]
    assert chunks[0].usage.total_tokens == 2


async def test_stream_retried_before_first_event(make: Any) -> None:
    responses = iter([httpx.Response(429, json={"message": "slow"}), sse(delta("ok", "stop"))])
    d = make(lambda r: next(responses))
    chunks = await d.stream(model="m")
    assert chunks[0].choices[0].delta.content == "ok"
    assert len(d.seen) == 2


async def test_list_models_falls_back_to_second_route(make: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/models"):
            return httpx.Response(404, json={"message": "Route not found"})
        return httpx.Response(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})

    d = make(handler)
    if isinstance(d.client, ModelsLabClient):
        models = d.client.list_models()
    else:
        models = await d.client.list_models()
    assert [m.id for m in models.data] == ["a", "b"]
    assert [r.url.path for r in d.seen] == ["/api/v7/llm/v1/models", "/api/v7/llm/models"]


async def test_async_in_flight_cap() -> None:
    import asyncio

    state = {"now": 0, "peak": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["peak"] = max(state["peak"], state["now"])
        await asyncio.sleep(0.001)
        state["now"] -= 1
        return httpx.Response(200, json=answer())

    client = AsyncModelsLabClient(
        api_key=KEY,
        max_in_flight=3,
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    async with client:
        await asyncio.gather(
            *(client.chat({"model": "m", "messages": MESSAGES}) for _ in range(20))
        )
    assert state["peak"] == 3


def test_stream_closed_when_caller_stops_early() -> None:
    transport = httpx.MockTransport(lambda r: sse(delta("a"), delta("b"), delta("c", "stop")))
    with ModelsLabClient(api_key=KEY, http_client=httpx.Client(transport=transport)) as client:
        stream = client.chat_stream({"model": "m", "messages": MESSAGES})
        for _ in stream:
            break
        stream.close()
        assert stream.response.is_closed
        with client.chat_stream({"model": "m", "messages": MESSAGES}) as stream2:
            next(iter(stream2))
        assert stream2.response.is_closed


def test_sync_in_flight_slot_released_by_stream() -> None:
    transport = httpx.MockTransport(lambda r: sse(delta("a", "stop")))
    client = ModelsLabClient(
        api_key=KEY, max_in_flight=1, http_client=httpx.Client(transport=transport)
    )
    with client:
        for _ in range(3):  # would deadlock if a finished stream kept its slot
            with client.chat_stream({"model": "m", "messages": MESSAGES}) as stream:
                list(stream)
            client.chat_stream({"model": "m", "messages": MESSAGES}).close()


async def test_stream_cut_inside_an_event_is_incomplete(make: Any) -> None:
    text = f"data: {json.dumps(delta('Hel'))}\n\ndata: {json.dumps(delta('lo'))}"[:-7]

    def cut(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, content=text.encode(), headers={"content-type": "text/event-stream"}
        )

    d = make(cut)
    with pytest.raises(e.IncompleteStreamError, match="DONE"):
        await d.stream(model="m")


def test_a_model_keeps_one_client_of_each_class() -> None:
    """A LlamaIndex model alternating chat and text completions keeps both clients; a new
    config (or a new httpx client) builds a new one."""
    from modelslab_core import ClientConfig, ModelsLabCompletionsClient
    from modelslab_core._cache import ClientCache

    cache = ClientCache()
    config = ClientConfig.build("k", "http://127.0.0.1:9")
    chat = cache.get(ModelsLabClient, config, None)
    text = cache.get(ModelsLabCompletionsClient, config, None)
    assert isinstance(text, ModelsLabCompletionsClient)
    assert cache.get(ModelsLabClient, config, None) is chat
    assert cache.get(ModelsLabCompletionsClient, config, None) is text
    other = ClientConfig.build("k", "http://127.0.0.1:9", timeout=5)
    assert cache.get(ModelsLabClient, other, None) is not chat
    with httpx.Client() as http:
        assert cache.get(ModelsLabClient, other, http)._http() is http


def test_a_copied_or_unpickled_client_cache_starts_empty() -> None:
    from modelslab_core import ClientConfig
    from modelslab_core._cache import ClientCache

    cache = ClientCache()
    client = cache.get(ModelsLabClient, ClientConfig.build("k", "http://127.0.0.1:9"), None)
    for copied in (copy.copy(cache), copy.deepcopy(cache), pickle.loads(pickle.dumps(cache))):
        assert type(copied) is ClientCache and copied is not cache
        config = ClientConfig.build("k", "http://127.0.0.1:9")
        assert copied.get(ModelsLabClient, config, None) is not client
