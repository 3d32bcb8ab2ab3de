"""Where the examples send their requests: the live API when ``MODELSLAB_API_KEY`` is set,
otherwise a local ModelsLab server started in this process (no key, no network needed)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from modelslab_core import CHAT_BASE_URL, COMPLETIONS_BASE_URL
from modelslab_core.testing import LocalModelsLab


@dataclass(frozen=True)
class Target:
    api_key: str
    base_url: str
    completions_base_url: str
    #: The local server when there is no key (its request log and counters), else None.
    server: LocalModelsLab | None = None

    @property
    def live(self) -> bool:
        return self.server is None

    @property
    def label(self) -> str:
        if self.server is not None:
            return f"the local server at {self.base_url}"
        return "the live ModelsLab API" if self.base_url == CHAT_BASE_URL else self.base_url


@contextlib.contextmanager
def modelslab_target() -> Iterator[Target]:
    """Yield the live API's settings, or start a local server and yield its settings."""
    key = os.environ.get("MODELSLAB_API_KEY")
    if key:
        yield Target(
            api_key=key,
            base_url=os.environ.get("MODELSLAB_BASE_URL", CHAT_BASE_URL),
            completions_base_url=os.environ.get(
                "MODELSLAB_COMPLETIONS_BASE_URL", COMPLETIONS_BASE_URL
            ),
        )
        return
    with LocalModelsLab(api_key="local-demo-key") as server:
        yield Target(
            api_key="local-demo-key",
            base_url=server.base_url,
            completions_base_url=server.completions_base_url,
            server=server,
        )
