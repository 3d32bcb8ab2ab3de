"""Claims the docs make in prose and tables, checked against the code.

- docs/testing.md: what ``modelslab_core`` raises for each scripted fault of the local server,
  sync and async, streaming and not.
- docs/migrating.md: what ``ChatOpenAI(base_url=...)`` and LlamaIndex's ``OpenAILike`` (on which
  ``llama-index-llms-modelslab`` is built) do with ModelsLab's quirks, and what our classes do.
  Should a new release of those packages change, this fails and the page needs rewriting.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable, Iterator

import pytest

import modelslab_core
from modelslab_core import AsyncModelsLabClient, ModelsLabClient, RetryPolicy
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "claims-key-123"
REQUEST = {
    "model": "meta-llama-3-8B-instruct",
    "messages": [{"role": "user", "content": "one two three four five"}],
}


@pytest.fixture
def server(modelslab_server: LocalModelsLab, monkeypatch: pytest.MonkeyPatch) -> LocalModelsLab:
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, error, attempt, rng=None: 0.0)
    modelslab_server.api_key = KEY
    return modelslab_server


# --- docs/testing.md: the faults table ---------------------------------------------------------

E = modelslab_core
Expected = type[Exception] | None
#: reply → (what a request without streaming gets, what a streaming request gets); None: the answer.
FAULTS: dict[str, tuple[Callable[[], Reply], Expected, Expected]] = {
    "rate_limit": (lambda: Reply.rate_limit(retry_after=0), E.RateLimitError, E.RateLimitError),
    "insufficient_credits": (
        Reply.insufficient_credits,
        E.InsufficientCreditsError,
        E.InsufficientCreditsError,
    ),
    "invalid_key_envelope": (
        Reply.invalid_key_envelope,
        E.AuthenticationError,
        E.AuthenticationError,
    ),
    "misspelled_error": (
        lambda: Reply.misspelled_error("Oops"),
        E.BadRequestError,
        E.BadRequestError,
    ),
    "openai_error 404": (lambda: Reply.openai_error(404, "no"), E.NotFoundError, E.NotFoundError),
    "server_error": (Reply.server_error, E.ServerError, E.ServerError),
    "html_error": (Reply.html_error, E.ServerError, E.ServerError),
    "non_json": (Reply.non_json, E.InvalidResponseError, E.InvalidResponseError),
    "processing": (Reply.processing, E.ProcessingResponseError, E.ProcessingResponseError),
    "validation_error": (
        Reply.validation_error,
        E.UnprocessableEntityError,
        E.UnprocessableEntityError,
    ),
    "cut_stream": (Reply.cut_stream, E.APIConnectionError, E.IncompleteStreamError),
    "stream_error_event": (Reply.stream_error_event, E.InvalidResponseError, E.StreamError),
    "reset_connection": (Reply.reset_connection, E.APIConnectionError, E.APIConnectionError),
    "slow": (lambda: Reply.slow(0.01), None, None),
    "error 418": (
        lambda: Reply.error(418, {"message": "teapot"}),
        E.APIStatusError,
        E.APIStatusError,
    ),
}


def _sync(base_url: str, stream: bool) -> str:
    client = ModelsLabClient(api_key=KEY, base_url=base_url, max_retries=0)
    if not stream:
        return client.chat(REQUEST).choices[0].message.content or ""
    with client.chat_stream(REQUEST) as chunks:
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def _async(base_url: str, stream: bool) -> str:
    client = AsyncModelsLabClient(api_key=KEY, base_url=base_url, max_retries=0)
    if not stream:
        return (await client.chat(REQUEST)).choices[0].message.content or ""
    async with await client.chat_stream(REQUEST) as chunks:
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])


@pytest.mark.parametrize("twin", ["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_every_fault_in_the_docs_table_raises_the_class_it_names(
    server: LocalModelsLab, fault: str, stream: bool, twin: str
) -> None:
    make, plain, streamed = FAULTS[fault]
    expected = streamed if stream else plain
    server.enqueue(make())

    def call() -> str:
        if twin == "sync":
            return _sync(server.base_url, stream)
        return asyncio.run(_async(server.base_url, stream))

    if expected is None:
        assert call() == REQUEST["messages"][0]["content"]
        return
    with pytest.raises(expected) as caught:
        call()
    # The class the table names, not merely a parent of it.
    assert type(caught.value) is expected, repr(caught.value)
    assert KEY not in str(caught.value)


def test_cut_body_is_retried(server: LocalModelsLab) -> None:
    """A JSON body cut short is a broken connection (retried), not an invalid answer."""
    server.enqueue(Reply.cut_stream())
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=1)
    assert client.chat(REQUEST).choices[0].message.content == "one two three four five"


def test_slow_reply_past_the_timeout(server: LocalModelsLab) -> None:
    server.enqueue(Reply.slow(2.0))
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, max_retries=0, timeout=0.2)
    with pytest.raises(E.APITimeoutError):
        client.chat(REQUEST)


# --- docs/migrating.md -----------------------------------------------------------------------


@pytest.fixture
def quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def test_chat_openai_against_modelslab_quirks(server: LocalModelsLab, quiet: None) -> None:
    from langchain_core.messages import AIMessageChunk
    from langchain_openai import ChatOpenAI

    from langchain_modelslab import ChatModelsLab

    theirs = ChatOpenAI(
        model="meta-llama-3-8B-instruct", base_url=server.base_url, api_key=KEY, max_retries=0
    )
    ours = ChatModelsLab(
        model="meta-llama-3-8B-instruct", base_url=server.base_url, api_key=KEY, max_retries=0
    )

    server.enqueue(Reply.invalid_key_envelope())
    with pytest.raises(TypeError, match="null value for 'choices'"):
        theirs.invoke("hi")
    server.enqueue(Reply.invalid_key_envelope())
    with pytest.raises(E.AuthenticationError, match="Invalid Api Key"):
        ours.invoke("hi")

    server.enqueue(Reply.cut_stream(after_chunks=3))
    assert "".join(str(c.content) for c in theirs.stream("one two three four five")) == "one two"
    server.enqueue(Reply.cut_stream(after_chunks=3))
    with pytest.raises(E.IncompleteStreamError):
        list(ours.stream("one two three four five"))

    server.enqueue(Reply.stream_error_event("Upstream boom", style="modelslab"))
    assert "".join(str(c.content) for c in theirs.stream("one two")) == ""
    server.enqueue(Reply.stream_error_event("Upstream boom", style="modelslab"))
    with pytest.raises(E.StreamError, match="Upstream boom"):
        list(ours.stream("one two"))

    server.enqueue(Reply.insufficient_credits())
    with pytest.raises(Exception) as caught:
        theirs.invoke("hi")
    assert type(caught.value).__name__ == "APIStatusError"

    reasoner = "deepseek-ai-DeepSeek-R1-Distill-Llama-70B"
    assert "reasoning_content" not in theirs.invoke("why", model=reasoner).additional_kwargs
    assert ours.invoke("why", model=reasoner).additional_kwargs["reasoning_content"]

    assert sum(theirs.stream("a b"), AIMessageChunk(content="")).usage_metadata is None
    assert sum(ours.stream("a b"), AIMessageChunk(content="")).usage_metadata is not None

    method = ChatOpenAI.with_structured_output.__kwdefaults__ or {}
    assert method.get("method") == "json_schema"
    assert ChatModelsLab.with_structured_output.__kwdefaults__["method"] == "function_calling"


async def test_openai_like_as_llama_index_llms_modelslab_builds_it(
    server: LocalModelsLab, quiet: None
) -> None:
    import httpx
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.llms.openai_like import OpenAILike
    from openai import NotFoundError

    server.allow_models("llama-3.1-8b-uncensored")  # its default id, not on ModelsLab's list
    async with httpx.AsyncClient() as http:  # closed here: the SDK would leave its sockets open

        def theirs(api_base: str) -> OpenAILike:
            # llama-index-llms-modelslab's ModelsLabLLM: OpenAILike with these defaults.
            return OpenAILike(
                model="llama-3.1-8b-uncensored",
                api_key=KEY,
                api_base=api_base,
                is_chat_model=True,
                is_function_calling_model=False,
                context_window=131072,
                max_retries=0,
                async_http_client=http,
            )

        # Its default URL drops ModelsLab's /api segment.
        with pytest.raises(NotFoundError):
            await theirs(server.url + "/uncensored-chat/v1").acomplete("hi")

        def multiply(a: int, b: int) -> int:
            """Multiply two integers."""
            return a * b

        llm = theirs(server.uncensored_base_url)
        with pytest.raises(ValueError, match="LLM must be a FunctionCallingLLM"):
            await FunctionAgent(tools=[multiply], llm=llm).run("2*3")

        server.enqueue(Reply.invalid_key_envelope())
        with pytest.raises(TypeError, match="not subscriptable"):
            await llm.acomplete("hi")

        server.enqueue(Reply.cut_stream(after_chunks=3))
        stream = await llm.astream_complete("one two three four")
        assert "".join([r.delta or "" async for r in stream]) == "one two"
