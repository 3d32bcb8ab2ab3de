"""A local, offline, ModelsLab-compatible LLM server for demos, tests and benchmarks.

``LocalModelsLab`` is a real HTTP/1.1 server on loopback (aiohttp's web server on a daemon
thread) that speaks ModelsLab's chat, text-completion and model-list endpoints, answers with a
deterministic echo "model" (tool calls, structured output, reasoning, streaming included), and
can be scripted with :class:`Reply` objects to play errors and connection faults::

    from modelslab_core.testing import LocalModelsLab, Reply

    with LocalModelsLab(api_key="test-key") as server:
        server.enqueue(Reply.rate_limit(retry_after=0), Reply.text("hello"))
        ...  # point a client at server.base_url with key "test-key"

The pytest fixtures ``modelslab_server`` and ``modelslab_server_session`` come from
:mod:`modelslab_core.testing.pytest_plugin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

if TYPE_CHECKING:
    from ._replies import Reply, ReplyKind
    from ._routing import KeyPlacement, RecordedRequest
    from ._server import LocalModelsLab

__all__ = ["KeyPlacement", "LocalModelsLab", "RecordedRequest", "Reply", "ReplyKind"]

#: Loaded on first use: the pytest plugin imports this package in every pytest run of every
#: project that installs us, and only a test that asks for the server should pay for it.
__getattr__, __dir__ = lazy_names(
    __name__, __all__, ("._replies", "._routing", "._server"), globals()
)
