"""``asyncio.run`` calls in a row (36; 200 under ``make test-load``), each making a call through
one client or model built once: every event loop is freed once it is closed (its pool lets go of
it), its connection is closed with it, and nothing is left for the garbage collector to warn
about."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import warnings
import weakref
from typing import Any

import pytest

from modelslab_core import AsyncModelsLabClient, _pools
from modelslab_core.testing import LocalModelsLab

KEY = "msl-NET-5f2a9c-SECRET-KEY-7781"
ASYNC = ["core:achat", "core:achat_stream", "lc:ainvoke", "lc:astream", "li:achat"]
ASYNC += ["li:astream_chat"]
#: asyncio.run calls, each surface in turn: enough for a leak of one loop a run to show (more
#: than 2 alive), and the soak size (``make test-load``).
RUNS = [36, pytest.param(200, marks=pytest.mark.load)]


@pytest.mark.parametrize("runs", RUNS)
def test_event_loops_are_freed_after_asyncio_run(
    server: LocalModelsLab,
    ask: Any,
    caplog: pytest.LogCaptureFixture,
    runs: int,
) -> None:
    options = {"api_key": KEY, "base_url": server.base_url, "timeout": 5, "max_retries": 0}
    targets = {
        s: AsyncModelsLabClient(**options) if s.startswith("core") else ask._model(s[:2], options)
        for s in ASYNC
    }
    loops: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def one(surface: str, text: str) -> str:
        loops.append(weakref.ref(asyncio.get_running_loop()))
        framework, method = surface.split(":")
        return str(await ask._async_call(framework, method, targets[surface], text))

    caplog.set_level(logging.WARNING)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answers = []
        for i in range(runs):
            surface = ASYNC[i % len(ASYNC)]
            answers.append(asyncio.run(one(surface, f"run {i} via {surface}")))
        gc.collect()
    assert answers == [f"run {i} via {ASYNC[i % len(ASYNC)]}" for i in range(runs)]
    assert len(loops) == runs
    alive = sum(ref() is not None for ref in loops)
    assert alive <= 2, f"{alive} of {runs} event loops are still referenced"
    assert len(_pools._shared.by_loop) <= 1
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []
    assert [r.getMessage() for r in caplog.records if "nclosed" in r.getMessage()] == []
    # Each pool closed its connection with its loop (the server sees the ends a moment later).
    deadline = time.monotonic() + 5
    while server.open_connections > 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.open_connections <= 1
    assert server.request_count == runs
