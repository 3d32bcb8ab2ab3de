"""Fixtures: the local ModelsLab server (from the ``modelslab`` pytest plugin) and an LLM on it."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest

from llama_index_modelslab import ModelsLabLLM
from modelslab_core import RetryPolicy
from modelslab_core.testing import LocalModelsLab

API_KEY = "test-key"


@pytest.fixture(autouse=True)
def _no_retry_delay(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("live"):
        return  # the live API's Retry-After is obeyed
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, error, attempt, rng=None: 0.0)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("live"):
        return
    for name in ("MODELSLAB_API_KEY", "MODELSLAB_BASE_URL", "MODELSLAB_COMPLETIONS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server(modelslab_server: LocalModelsLab) -> LocalModelsLab:
    """The plugin's local server (reset for each test), checking our test key."""
    modelslab_server.api_key = API_KEY
    return modelslab_server


@pytest.fixture
def llm(server: LocalModelsLab) -> ModelsLabLLM:
    return ModelsLabLLM(api_key=API_KEY, base_url=server.base_url)


@pytest.fixture(autouse=True)
def _event_loop_for_sync_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """LlamaIndex's sync token estimate (``ChatMessage.estimate_tokens``, via its ``asyncio_run``)
    calls ``asyncio.get_event_loop()``, which creates a loop nobody closes. Give sync tests a
    loop and close it afterwards, so ``-W error::ResourceWarning`` sees only our own leaks."""
    if inspect.iscoroutinefunction(request.function):
        yield
        return
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield
    finally:
        asyncio.set_event_loop(None)
        loop.close()
