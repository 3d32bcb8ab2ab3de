"""Relaying a stream of wire chunks as LlamaIndex responses: the stream opens when first read."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TypeVar

from pydantic import BaseModel

from modelslab_core import AsyncStream, Stream

R = TypeVar("R")
W = TypeVar("W", bound=BaseModel)


def _relay(
    open_stream: Callable[[], Stream[W]], step: Callable[[R | None, W], R]
) -> Generator[R, None, None]:
    """Open the stream when first read; each chunk → ``step(previous response, chunk)``."""
    response = None
    with open_stream() as stream:
        for chunk in stream:
            response = step(response, chunk)
            yield response


async def _arelay(
    open_stream: Callable[[], Awaitable[AsyncStream[W]]], step: Callable[[R | None, W], R]
) -> AsyncGenerator[R, None]:
    """Async twin of :func:`_relay`."""
    response = None
    async with await open_stream() as stream:
        async for chunk in stream:
            response = step(response, chunk)
            yield response
