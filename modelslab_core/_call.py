"""One call's plumbing around the clients' I/O, shared by both twins: a place at the account gate
given back with what the answer taught, the whole-call deadline over a body's bytes, and the
safety net that gives a dropped stream's place (and, async, its connection) back."""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator
from typing import Any, TypeVar

import httpx

from .errors import RateLimitError
from .flow import NO_PERMIT, Permit, parse_queue_limit
from .retry import CallPlan

R = TypeVar("R")


def finish(permit: Permit, error: BaseException | None) -> None:
    """Give a request's place back, telling the gate what the answer taught."""
    if error is None:
        permit.succeeded()
    elif isinstance(error, RateLimitError):
        permit.rate_limited(parse_queue_limit(error.message))
    else:
        permit.release()


def timed(request: httpx.Request, plan: CallPlan, timeout: float) -> httpx.Request:
    """Under a deadline, each network step may take at most what is left of it."""
    if plan.deadline is not None:
        left = max(plan.deadline - time.monotonic(), 0.001)
        if left < timeout:
            request.extensions["timeout"] = httpx.Timeout(left).as_dict()
    return request


def bytes_until(chunks: Iterable[bytes], plan: CallPlan) -> Iterator[bytes]:
    """``chunks``, ended by :meth:`CallPlan.timeout_error` once the deadline passes: a server
    trickling bytes or sending keep-alive comments forever does not hold a call past it (each
    read is also bounded by what was left of the deadline when the request went out)."""
    deadline = plan.deadline
    assert deadline is not None
    for chunk in chunks:
        if time.monotonic() >= deadline:
            raise plan.timeout_error()
        yield chunk


async def abytes_until(chunks: AsyncIterable[bytes], plan: CallPlan) -> AsyncIterator[bytes]:
    """Async twin of :func:`bytes_until`; a read that waits past the deadline is cancelled."""
    deadline = plan.deadline
    assert deadline is not None
    iterator = aiter(chunks)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise plan.timeout_error()
        try:
            async with asyncio.timeout(left):
                chunk = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise plan.timeout_error() from None
        yield chunk


async def within_deadline(attempt: Awaitable[R], plan: CallPlan) -> R:
    """``attempt``, cancelled at the deadline and ended with :meth:`CallPlan.timeout_error`."""
    assert plan.deadline is not None
    try:
        async with asyncio.timeout(max(plan.deadline - time.monotonic(), 0.0)):
            return await attempt
    except TimeoutError:
        raise plan.timeout_error() from None


#: Closings of dropped async streams, scheduled on their loops (kept until done).
_closing: set[asyncio.Task[None]] = set()


def _close_dropped(response: httpx.Response, loop: asyncio.AbstractEventLoop) -> None:
    async def close() -> None:
        await response.aclose()

    def schedule() -> None:
        task = loop.create_task(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(schedule)


def guard_stream(stream: Any, permit: Permit, loop: asyncio.AbstractEventLoop | None) -> None:
    """A stream dropped unclosed gives its place back (and, async, its connection) when it is
    garbage-collected; closing it first does that at once."""
    if permit is NO_PERMIT and loop is None:
        return
    if loop is None:
        weakref.finalize(stream, permit.release).atexit = False
    else:
        response: httpx.Response = stream.response
        weakref.finalize(stream, _release_and_close, permit, response, loop).atexit = False


def _release_and_close(
    permit: Permit, response: httpx.Response, loop: asyncio.AbstractEventLoop
) -> None:
    permit.release()
    if not response.is_closed:
        _close_dropped(response, loop)
