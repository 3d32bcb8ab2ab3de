"""Fixtures of the local-server tests.

The ``modelslab`` pytest plugin provides ``modelslab_server``; it is imported here too so
these tests run whether or not the package (and so its entry point) is installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from modelslab_core.testing import LocalModelsLab
from modelslab_core.testing.pytest_plugin import modelslab_server, modelslab_server_session

__all__ = ["modelslab_server", "modelslab_server_session"]

API_KEY = "test-key"


@pytest.fixture(scope="module")
def keyed_server_module() -> Iterator[LocalModelsLab]:
    """A server that accepts only ``test-key`` (one per test module)."""
    with LocalModelsLab(api_key=API_KEY) as server:
        yield server


@pytest.fixture
def keyed_server(keyed_server_module: LocalModelsLab) -> LocalModelsLab:
    """The keyed server, reset for this test."""
    keyed_server_module.reset()
    return keyed_server_module


@pytest.fixture
def client(modelslab_server: LocalModelsLab) -> Iterator[httpx.Client]:
    """An httpx client on the session server's root URL with a bearer key."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=modelslab_server.url, headers=headers, timeout=10) as http:
        yield http
