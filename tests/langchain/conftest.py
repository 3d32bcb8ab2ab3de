"""Helpers for the LangChain unit tests: an ``httpx.MockTransport`` that records requests and
plays scripted answers (JSON or SSE)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest

import modelslab_core
from langchain_modelslab import ChatModelsLab, ModelsLabLLM

KEY = "sk-unit-secret-123"


def sse(*events: dict[str, Any], done: bool = True) -> httpx.Response:
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    if done:
        body += "data: [DONE]\n\n"
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


def chat_answer(
    content: str | None = "Hi!",
    *,
    model: str = "meta-llama-3-8B-instruct",
    tool_calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
    finish_reason: str = "stop",
) -> httpx.Response:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return httpx.Response(
        200,
        json={
            "id": "gen-1",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        },
    )


def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "model": "meta-llama-3-8B-instruct",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
        **extra,
    }


def usage_chunk(prompt: int = 5, completion: int = 2) -> dict[str, Any]:
    return {
        "id": "gen-1",
        "object": "chat.completion.chunk",
        "model": "meta-llama-3-8B-instruct",
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


@dataclass
class Mock:
    """Scripted answers, in order (the last one repeats), and the requests that came."""

    answers: list[Answer] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if callable(answer):
            return answer(request)
        # A fresh copy each time: a Response's stream can be read once.
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(r.content) if r.content else {} for r in self.requests]

    @property
    def body(self) -> dict[str, Any]:
        return self.bodies[-1]


@pytest.fixture
def mock() -> Mock:
    return Mock()


M = TypeVar("M", ChatModelsLab, ModelsLabLLM)


def _factory(cls: type[M], mock: Mock) -> Iterator[Callable[..., M]]:
    """Build models of ``cls`` over a MockTransport that plays ``mock``'s answers."""
    clients: list[httpx.Client] = []

    def make(*answers: Answer, **kwargs: Any) -> M:
        mock.answers.extend(answers)
        transport = httpx.MockTransport(mock.handler)
        sync = httpx.Client(transport=transport)
        clients.append(sync)
        params: dict[str, Any] = {"api_key": KEY, "max_retries": 0}
        params.update(kwargs)
        return cls(
            **params,
            http_client=sync,
            http_async_client=httpx.AsyncClient(transport=transport),
        )

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def make_chat(mock: Mock) -> Iterator[Callable[..., ChatModelsLab]]:
    yield from _factory(ChatModelsLab, mock)


@pytest.fixture
def make_llm(mock: Mock) -> Iterator[Callable[..., ModelsLabLLM]]:
    yield from _factory(ModelsLabLLM, mock)


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(modelslab_core.RetryPolicy, "delay", lambda self, *a, **k: 0.0)


@pytest.fixture
def benchmark(benchmark: Any) -> Any:
    """pytest-benchmark's fixture, run once without timing (as ``--benchmark-disable`` would):
    LangChain's standard suite times the constructor, and timing is ``make bench``'s job. Set
    here, next to the tests that use it, so that pytest runs without pytest-benchmark."""
    benchmark.disabled = True
    return benchmark
