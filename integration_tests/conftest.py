"""Shared by every integration suite."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import pytest

from modelslab_core.flow import reset_gates


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


@pytest.fixture(autouse=True)
def _fresh_account_gates() -> None:
    """Each test starts with no account gate: what one test's 429s taught the process (a queue
    limit, a pinned ``max_in_flight``) must not hold back the next test's calls."""
    reset_gates()
