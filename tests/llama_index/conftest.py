"""Fixtures: the local ModelsLab server (from the ``modelslab`` pytest plugin) and an LLM on it."""

from __future__ import annotations

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
