"""Faults over real sockets, through both frameworks, sync, async and streaming.

Every fault is played by the local server (``Reply``) or by the network itself (a refused port).
Retryable faults must be retried as the policy says and answered, or, with ``max_retries=0``,
raise a typed error naming the status and the server's message. Faults a retry cannot mend must
raise a typed error after exactly one request. A stream cut before ``[DONE]`` must raise in every
path, and a cancelled async stream must close its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from langchain_core.exceptions import (
    ModelAPIError,
    ModelAuthenticationError,
    ModelConnectionError,
    ModelError,
    ModelInvalidRequestError,
    ModelNotFoundError,
    ModelPermissionDeniedError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import ChatMessage

from langchain_modelslab import ChatModelsLab
from langchain_modelslab import ModelsLabLLM as LangChainLLM
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import RetryPolicy
from modelslab_core import errors as e
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "msl-REL-7f3c9e1d-SECRET-KEY-0042"  # the conftest's server accepts this key only
T = TypeVar("T")

PATHS = (
    "lc.invoke",
    "lc.ainvoke",
    "lc.stream",
    "lc.astream",
    "li.chat",
    "li.achat",
    "li.stream_chat",
    "li.astream_chat",
)
STREAMING = frozenset({"lc.stream", "lc.astream", "li.stream_chat", "li.astream_chat"})


def arun(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


def build(path: str, base_url: str, **settings: Any) -> Any:
    settings = {name: value for name, value in settings.items() if value is not None}
    if path.startswith("lc."):
        return ChatModelsLab(api_key=KEY, base_url=base_url, **settings)
    return ModelsLabLLM(api_key=KEY, base_url=base_url, **settings)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def answer(path: str, model: Any, text: str) -> str:
    """Ask ``text`` through ``path`` and return the whole answer's text."""
    if path == "lc.invoke":
        return str(model.invoke(text).content)
    if path == "lc.ainvoke":
        return str(arun(model.ainvoke(text)).content)
    if path == "lc.stream":
        return "".join(str(chunk.content) for chunk in model.stream(text))
    if path == "lc.astream":

        async def lc_astream() -> str:
            return "".join([str(chunk.content) async for chunk in model.astream(text)])

        return arun(lc_astream())
    if path == "li.chat":
        return str(model.chat(user(text)).message.content)
    if path == "li.achat":
        return str(arun(model.achat(user(text))).message.content)
    if path == "li.stream_chat":
        responses = list(model.stream_chat(user(text)))
        return str(responses[-1].message.content)

    async def li_astream_chat() -> str:
        responses = [r async for r in await model.astream_chat(user(text))]
        return str(responses[-1].message.content)

    return arun(li_astream_chat())


# LangChain's own exception each adapter error must also be (its retry and fallback logic).
LANGCHAIN_CLASS: dict[type[Exception], type[ModelError]] = {
    e.RateLimitError: ModelRateLimitError,
    e.ServerError: ModelAPIError,
    e.APITimeoutError: ModelTimeoutError,
    e.APIConnectionError: ModelConnectionError,
    e.InsufficientCreditsError: ModelPermissionDeniedError,
    e.AuthenticationError: ModelAuthenticationError,
    e.UnprocessableEntityError: ModelInvalidRequestError,
    e.BadRequestError: ModelInvalidRequestError,
    e.NotFoundError: ModelNotFoundError,
    e.ProcessingResponseError: ModelAPIError,
    e.IncompleteStreamError: ModelConnectionError,
}


def check_framework_class(path: str, error: BaseException, core_class: type[Exception]) -> None:
    assert isinstance(error, e.ModelsLabError)
    if path.startswith("lc"):
        assert isinstance(error, LANGCHAIN_CLASS[core_class]), type(error).__mro__


# ----------------------------------------------------------------------------- retryable faults

# Backoff without a server hint: the policy's first delay, less up to its jitter.
POLICY = RetryPolicy()
FIRST_BACKOFF = (POLICY.initial_delay * (1 - POLICY.jitter), POLICY.initial_delay)


def floor(hint: float) -> tuple[float, float]:
    """A server's hint is a floor: never earlier than asked, up to the jitter on top."""
    return (hint, hint * (1 + POLICY.jitter))


@dataclass(frozen=True)
class Fault:
    name: str
    reply: Callable[[bool], Reply]  # streaming -> the reply
    error: type[e.APIError]
    status: int | None = None
    message: str = ""
    delay: tuple[float, float] = FIRST_BACKOFF  # the range the policy's delay must fall in
    timeout: float | None = None


RETRYABLE = [
    Fault(
        "429 Retry-After header",
        lambda _: Reply.rate_limit(retry_after=7, body_field=False),
        e.RateLimitError,
        429,
        "Rate limit exceeded. Maximum 5 queued requests allowed.",
        floor(7.0),
    ),
    Fault(
        "429 retry_after body field",
        lambda _: Reply.rate_limit(retry_after=9, header=False),
        e.RateLimitError,
        429,
        "Rate limit exceeded. Maximum 5 queued requests allowed.",
        floor(9.0),
    ),
    Fault("502 HTML page", lambda _: Reply.html_error(502), e.ServerError, 502, "502 Bad Gateway"),
    Fault(
        "503 JSON",
        lambda _: Reply.server_error(503, "upstream overloaded"),
        e.ServerError,
        503,
        "upstream overloaded",
    ),
    # Inside the body: the JSON answer is bytes 121-388 of the response, the first SSE data event
    # bytes 173-338 (test_reset_cuts_inside_the_body checks it).
    Fault(
        "reset mid-body",
        lambda streaming: Reply.reset_connection(after_bytes=250 if streaming else 200),
        e.APIConnectionError,
    ),
    Fault(
        "slow beyond timeout",
        lambda _: Reply.slow(1.5),
        e.APITimeoutError,
        timeout=0.3,
    ),
]


def _raw_exchange(server: LocalModelsLab, stream: bool) -> tuple[bytes, bytes]:
    body = json.dumps(
        {
            "model": "meta-llama-3-8B-instruct",
            "messages": [{"role": "user", "content": "ask"}],
            "stream": stream,
        }
    ).encode()
    request = (
        b"POST /api/v7/llm/chat/completions HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(request)
        with contextlib.suppress(ConnectionResetError):
            while data := conn.recv(65536):
                received += data
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


@pytest.mark.parametrize("stream", [False, True])
def test_reset_cuts_inside_the_body(server: LocalModelsLab, stream: bool) -> None:
    """The reset fault above really breaks off inside the body, before a whole answer."""
    fault = next(f for f in RETRYABLE if f.name == "reset mid-body")
    server.enqueue(fault.reply(stream))
    head, body = _raw_exchange(server, stream)
    assert head.startswith(b"HTTP/1.1 200")
    assert body  # some of the body arrived
    if stream:
        assert b"data: {" in body and b"[DONE]" not in body
        assert not body.rstrip(b"\r\n").endswith(b"}")  # the first data event is cut
    else:
        with pytest.raises(ValueError):
            json.loads(body)


@pytest.mark.parametrize("fault", RETRYABLE, ids=lambda f: f.name)
@pytest.mark.parametrize("path", PATHS)
def test_retryable_fault_is_retried_and_answered(
    server: LocalModelsLab,
    retry_delays: list[tuple[BaseException, float]],
    path: str,
    fault: Fault,
) -> None:
    server.enqueue(fault.reply(path in STREAMING))
    model = build(path, server.base_url, max_retries=2, timeout=fault.timeout)
    assert answer(path, model, "answered after the fault") == "answered after the fault"
    assert server.request_count == 2
    [(error, delay)] = retry_delays
    assert type(error) is fault.error or isinstance(error, fault.error)
    low, high = fault.delay
    assert low <= delay <= high


@pytest.mark.parametrize("fault", RETRYABLE, ids=lambda f: f.name)
@pytest.mark.parametrize("path", PATHS)
def test_retryable_fault_without_retries_is_a_typed_error(
    server: LocalModelsLab,
    retry_delays: list[tuple[BaseException, float]],
    path: str,
    fault: Fault,
) -> None:
    server.enqueue(fault.reply(path in STREAMING))
    model = build(path, server.base_url, max_retries=0, timeout=fault.timeout)
    with pytest.raises(fault.error) as info:
        answer(path, model, "no second chance")
    error = info.value
    check_framework_class(path, error, fault.error)
    if fault.status is not None:
        assert error.status_code == fault.status
        assert f"HTTP {fault.status}" in str(error)
        assert fault.message in str(error) and fault.message in error.message
    if fault.error is e.RateLimitError:
        assert error.retry_after == fault.delay[0]  # the server's hint, for the caller
    assert server.request_count == 1
    assert retry_delays == []


@pytest.mark.parametrize("path", PATHS)
def test_connection_refused_is_retried_until_the_server_is_up(
    monkeypatch: pytest.MonkeyPatch,
    retry_delays: list[tuple[BaseException, float]],
    refused_port: int,
    path: str,
) -> None:
    started: list[LocalModelsLab] = []
    recording = RetryPolicy.delay  # the conftest's recorder

    def come_up_then_wait(
        self: RetryPolicy, error: BaseException, attempt: int, **kwargs: Any
    ) -> float:
        if not started:  # the server comes up during the first wait
            started.append(LocalModelsLab(api_key=KEY, port=refused_port).start())
        return recording(self, error, attempt, **kwargs)

    monkeypatch.setattr(RetryPolicy, "delay", come_up_then_wait)
    model = build(path, f"http://127.0.0.1:{refused_port}/api/v7/llm", max_retries=2)
    try:
        assert answer(path, model, "the server came up") == "the server came up"
        assert started[0].request_count == 1
    finally:
        for server in started:
            server.stop()
    [(error, delay)] = retry_delays
    assert isinstance(error, e.APIConnectionError)
    assert FIRST_BACKOFF[0] <= delay <= FIRST_BACKOFF[1]


@pytest.mark.parametrize("path", PATHS)
def test_connection_refused_without_retries_is_a_typed_error(
    retry_delays: list[tuple[BaseException, float]], refused_port: int, path: str
) -> None:
    model = build(path, f"http://127.0.0.1:{refused_port}/api/v7/llm", max_retries=0)
    with pytest.raises(e.APIConnectionError) as info:
        answer(path, model, "nobody listens")
    check_framework_class(path, info.value, e.APIConnectionError)
    assert not isinstance(info.value, e.APITimeoutError)
    assert info.value.status_code is None
    assert retry_delays == []


@pytest.mark.parametrize("path", sorted(STREAMING))
def test_reset_after_the_first_event_is_not_restarted(
    server: LocalModelsLab, retry_delays: list[tuple[BaseException, float]], path: str
) -> None:
    """Once a stream has delivered an event, a broken connection is an error, never a silent
    second request (bytes 173-338 hold the first event; 600 is past the second)."""
    server.enqueue(Reply.reset_connection(after_bytes=600))
    model = build(path, server.base_url, max_retries=2)
    with pytest.raises(e.IncompleteStreamError) as info:
        answer(path, model, "one two three four five six seven eight")
    check_framework_class(path, info.value, e.IncompleteStreamError)
    assert server.request_count == 1
    assert retry_delays == []


# ----------------------------------------------------------------------------- no retry helps

NOT_RETRYABLE = [
    ("402 credits", Reply.insufficient_credits(), e.InsufficientCreditsError, 402, "credits"),
    (
        "401",
        Reply.error(401, {"status": "error", "message": "Unauthenticated."}),
        e.AuthenticationError,
        401,
        "Unauthenticated.",
    ),
    (
        "200 Invalid Api Key",
        Reply.invalid_key_envelope(),
        e.AuthenticationError,
        200,
        "Invalid Api Key",
    ),
    (
        "200 messege",
        Reply.misspelled_error("Model is not available right now"),
        e.BadRequestError,
        200,
        "Model is not available right now",
    ),
    (
        "OpenAI 400",
        Reply.openai_error(400, "max_tokens is too large: 99999", code="invalid_value"),
        e.BadRequestError,
        400,
        "max_tokens is too large: 99999",
    ),
    (
        "OpenAI 401",
        Reply.openai_error(401, "Incorrect API key provided", "authentication_error", "bad_key"),
        e.AuthenticationError,
        401,
        "Incorrect API key provided",
    ),
    (
        "OpenAI 404",
        Reply.openai_error(404, "The model `nope` does not exist", code="model_not_found"),
        e.NotFoundError,
        404,
        "The model `nope` does not exist",
    ),
    ("422", Reply.validation_error(), e.UnprocessableEntityError, 422, "messages field"),
    ("processing", Reply.processing(id=77, eta=12), e.ProcessingResponseError, 200, "processing"),
]


@pytest.mark.parametrize(
    ("reply", "error_class", "status", "text"),
    [case[1:] for case in NOT_RETRYABLE],
    ids=[case[0] for case in NOT_RETRYABLE],
)
@pytest.mark.parametrize("path", PATHS)
def test_fault_no_retry_can_mend_fails_at_once(
    server: LocalModelsLab,
    retry_delays: list[tuple[BaseException, float]],
    path: str,
    reply: Reply,
    error_class: type[e.APIError],
    status: int,
    text: str,
) -> None:
    server.enqueue(reply)
    model = build(path, server.base_url, max_retries=2)
    with pytest.raises(error_class) as info:
        answer(path, model, "hello")
    error = info.value
    check_framework_class(path, error, error_class)
    assert error.status_code == status
    assert text in error.message and f"HTTP {status}" in str(error)
    # One request, no retry: and on the streaming paths that request asked for a stream, so the
    # JSON error body answered a stream request.
    assert server.request_count == 1
    assert retry_delays == []
    assert server.requests[-1].body is not None
    assert server.requests[-1].body["stream"] is (path in STREAMING)


# ----------------------------------------------------------------------------- cut streams


def _index() -> VectorStoreIndex:
    documents = [Document(text="The Zorblat bridge in Quenford is painted teal.")]
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


def _consume_lc_events(model: Any, text: str) -> None:
    async def events() -> None:
        async for _ in model.astream_events(text, version="v2"):
            pass

    arun(events())


def _consume_async(gen_factory: Callable[[], Any]) -> None:
    async def consume() -> None:
        gen = gen_factory()
        if asyncio.iscoroutine(gen):
            gen = await gen
        async for _ in gen:
            pass

    arun(consume())


def _query(llm: ModelsLabLLM, text: str) -> None:
    engine = _index().as_query_engine(llm=llm, streaming=True)
    response: Any = engine.query(text)
    for _ in response.response_gen:
        pass


def _aquery(llm: ModelsLabLLM, text: str) -> None:
    async def run() -> None:
        engine = _index().as_query_engine(llm=llm, streaming=True)
        response: Any = await engine.aquery(text)
        async for _ in response.async_response_gen():
            pass

    arun(run())


CUT_PATHS: dict[str, Callable[[str, str], Any]] = {
    "lc.stream": lambda url, q: [*ChatModelsLab(api_key=KEY, base_url=url).stream(q)],
    "lc.astream": lambda url, q: _consume_async(
        lambda: ChatModelsLab(api_key=KEY, base_url=url).astream(q)
    ),
    "lc.astream_events": lambda url, q: _consume_lc_events(
        ChatModelsLab(api_key=KEY, base_url=url), q
    ),
    "lc.invoke streaming=True": lambda url, q: ChatModelsLab(
        api_key=KEY, base_url=url, streaming=True
    ).invoke(q),
    "lc.ainvoke streaming=True": lambda url, q: arun(
        ChatModelsLab(api_key=KEY, base_url=url, streaming=True).ainvoke(q)
    ),
    "lc.llm.stream": lambda url, q: [
        *LangChainLLM(api_key=KEY, base_url=url.replace("/v7/llm", "/v6")).stream(q)
    ],
    "lc.llm.astream": lambda url, q: _consume_async(
        lambda: LangChainLLM(api_key=KEY, base_url=url.replace("/v7/llm", "/v6")).astream(q)
    ),
    "li.stream_chat": lambda url, q: [
        *ModelsLabLLM(api_key=KEY, base_url=url).stream_chat(user(q))
    ],
    "li.astream_chat": lambda url, q: _consume_async(
        lambda: ModelsLabLLM(api_key=KEY, base_url=url).astream_chat(user(q))
    ),
    "li.stream_complete": lambda url, q: [
        *ModelsLabLLM(api_key=KEY, base_url=url).stream_complete(q)
    ],
    "li.astream_complete text model": lambda url, q: _consume_async(
        lambda: ModelsLabLLM(
            api_key=KEY, base_url=url.replace("/v7/llm", "/v6"), is_chat_model=False
        ).astream_complete(q)
    ),
    "li.query_engine": lambda url, q: _query(ModelsLabLLM(api_key=KEY, base_url=url), q),
    "li.aquery_engine": lambda url, q: _aquery(ModelsLabLLM(api_key=KEY, base_url=url), q),
}


@pytest.mark.parametrize("after_chunks", [0, 2])
@pytest.mark.parametrize("path", list(CUT_PATHS))
def test_stream_cut_before_done_raises(
    server: LocalModelsLab,
    retry_delays: list[tuple[BaseException, float]],
    path: str,
    after_chunks: int,
) -> None:
    server.enqueue(Reply.cut_stream(after_chunks=after_chunks))
    with pytest.raises(e.IncompleteStreamError) as info:
        CUT_PATHS[path](server.base_url, "one two three four five six")
    check_framework_class(path, info.value, e.IncompleteStreamError)
    assert "[DONE]" in str(info.value)
    assert server.request_count == 1
    assert server.pending_replies == 0  # the cut reply was the one played
    assert retry_delays == []


# ----------------------------------------------------------------------------- cancellation

LONG = " ".join(f"word{i}" for i in range(60))


def _aiter(path: str, model: Any, text: str) -> Any:
    if path == "lc.astream":
        return model.astream(text)

    async def li() -> Any:
        async for response in await model.astream_chat(user(text)):
            yield response

    return li()


@pytest.mark.parametrize("path", ["lc.astream", "li.astream_chat"])
def test_cancelled_astream_closes_its_connection(sockets: Any, path: str) -> None:
    # Events paced 20 ms apart: the stream is still running when it is cancelled.
    with LocalModelsLab(api_key=KEY, stream_delay=0.02) as slow:
        model = build(path, slow.base_url, max_in_flight=1)

        async def main() -> tuple[int, int, str]:
            first = asyncio.Event()

            async def consume() -> None:
                async for _ in _aiter(path, model, LONG):
                    first.set()

            task = asyncio.create_task(consume())
            await first.wait()
            held = sockets.client_connections(slow.port)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # The loop and its pool are still open: the connection must be closed, neither
            # left open nor handed back to the pool half read.
            after = sockets.client_connections(slow.port)
            # The stream's place under max_in_flight=1 is free again.
            slow.stream_delay = 0.0
            again = await asyncio.wait_for(_final_text(path, model, "next call"), timeout=30)
            return held, after, again

        held, after, again = arun(main())
        assert held == 1
        assert after == 0
        assert again == "next call"
        assert slow.request_count == 2
        assert sockets.settle(lambda: slow.open_connections == 0)


async def _final_text(path: str, model: Any, text: str) -> str:
    if path == "lc.astream":
        return "".join([str(c.content) async for c in model.astream(text)])
    responses = [r async for r in await model.astream_chat(user(text))]
    return str(responses[-1].message.content)
