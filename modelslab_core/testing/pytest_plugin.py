"""Pytest fixtures for the local ModelsLab server (registered as the ``modelslab`` plugin).

- ``modelslab_server_session``: one :class:`LocalModelsLab` for the whole session (accepts
  any non-empty key, and the model ids of ModelsLab's list plus those of the ini option
  ``modelslab_models``).
- ``modelslab_server``: the same server for one test, with its reply queue, fault rate,
  request log and stats reset before the test (and its ``api_key`` restored after it), and
  the process's account gates (:mod:`modelslab_core.flow`) forgotten.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._server import LocalModelsLab

# pytest loads this module in every project that installs us: the server is imported by the
# fixtures, on first use, never at pytest start-up.

__all__ = ["modelslab_server", "modelslab_server_session"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "modelslab_models",
        "model ids the local ModelsLab server accepts besides ModelsLab's own (one a line)",
        type="linelist",
        default=[],
    )


@pytest.fixture(scope="session")
def modelslab_server_session(request: pytest.FixtureRequest) -> Iterator[LocalModelsLab]:
    """Start one local ModelsLab server for the test session and stop it at the end."""
    from ._server import LocalModelsLab
    from ._wire import POPULAR_MODELS

    extra = request.config.getini("modelslab_models")
    with LocalModelsLab(models=[*POPULAR_MODELS, *extra]) as server:
        yield server


@pytest.fixture
def modelslab_server(modelslab_server_session: LocalModelsLab) -> Iterator[LocalModelsLab]:
    """The session's local server, reset for this test; the account gates too, so that what
    one test's 429s taught the process does not hold back the next test's calls."""
    from modelslab_core.flow import reset_gates

    server = modelslab_server_session
    api_key = server.api_key
    server.reset()
    reset_gates()
    try:
        yield server
    finally:
        server.api_key = api_key
        server.reset()
