"""Relaying streams: wire chunks as LlamaIndex responses (the stream opens when first read), and
responses as structured output."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any, TypeVar

from llama_index.core.base.llms.types import ChatResponse
from llama_index.core.program.streaming_utils import process_streaming_content_incremental
from pydantic import BaseModel

from modelslab_core import AsyncStream, Stream

from ._convert import parse_output

R = TypeVar("R")
W = TypeVar("W", bound=BaseModel)
M = TypeVar("M", bound=BaseModel)


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


async def _chain(first: R | None, rest: AsyncIterator[R]) -> AsyncGenerator[R, None]:
    """``first`` (if any), then ``rest``: a stream whose first item was read ahead."""
    if first is not None:
        yield first
    async for item in rest:
        yield item


def _parse(responses: Iterable[ChatResponse], output_cls: type[M]) -> Generator[Any, None, None]:
    """Each streamed response as ``output_cls`` parsed so far; a last whole parse where the
    partial one failed (e.g. JSON inside prose)."""
    current = last = None
    for last in responses:
        current = process_streaming_content_incremental(last, output_cls, current)
        yield current
    if last is not None and not isinstance(current, output_cls):
        yield parse_output(output_cls, last)


async def _aparse(
    responses: AsyncIterator[ChatResponse], output_cls: type[M]
) -> AsyncGenerator[Any, None]:
    """Async twin of :func:`_parse`."""
    current = last = None
    async for last in responses:
        current = process_streaming_content_incremental(last, output_cls, current)
        yield current
    if last is not None and not isinstance(current, output_cls):
        yield parse_output(output_cls, last)
