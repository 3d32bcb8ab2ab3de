"""One call's plumbing around the clients' I/O, shared by both twins: a place at the account gate
given back with what the answer taught, the whole-call deadline over a body's reads, and what
gives a dropped stream's place (and connection) back.

The deadline, one mechanism for both twins: the request goes out with every network step bounded
by what is left of the deadline (:func:`timed`), and each read of the body waits at most what is
left then (:func:`read_window`); a body still arriving at the deadline, or a read that waited
into it, ends with the deadline's :class:`APITimeoutError`. httpx takes a sync read timeout per
body, so the sync twin sets it when the body starts; the async twin bounds each read with
``asyncio.timeout`` (the aiohttp transport fixes its read timeout with the request).

A dropped stream (never closed, garbage-collected) gives its place back as ``released`` (a
dropped stream taught the gate nothing), and never from inside the garbage collector: its
finalizer only appends to a queue (lock-free, safe wherever the collector runs, even in a
thread holding httpcore's pool lock or the gate's), and ordinary code settles the queue: the
next call's admission, and a janitor thread while guarded streams are out. A stream dropped
inside a reference cycle is found only by the garbage collector; while a caller waits at a full
gate and nothing moves, the janitor runs the collector (at most every
:data:`COLLECT_AFTER` seconds) so that such places come back.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterator
from functools import partial
from typing import Any, NamedTuple

import httpx

from .errors import RateLimitError
from .flow import FlowGate, Permit, parse_queue_limit
from .retry import CallPlan

__all__ = [
    "COLLECT_AFTER",
    "abody_bytes",
    "admission",
    "admitted",
    "body_bytes",
    "finish",
    "guard_stream",
    "read_window",
    "settle_dropped",
    "timed",
]

#: Seconds a caller waits at a full gate, with nothing admitted, before the janitor runs the
#: garbage collector to find streams dropped inside reference cycles.
COLLECT_AFTER = 1.0
#: How often the janitor settles dropped streams while guarded streams are out.
_TICK = 0.05
#: Slack when telling a read timeout at the deadline from an ordinary one.
_SLACK = 0.05


def admission(plan: CallPlan) -> float | None:
    """How long the gate may hold the next attempt back (None: as long as it takes); past the
    deadline or the rate-limit budget, the call's error. Streams dropped since the last call
    give their places back first."""
    timeout = plan.admission_timeout(time.monotonic())
    if timeout is not None and timeout <= 0:
        raise plan.admission_error(time.monotonic())
    settle_dropped()
    return timeout


def admitted(permit: Permit | None, plan: CallPlan) -> Permit:
    """The place the gate gave, or the call's error when it held the call back past its
    admission timeout (None)."""
    if permit is None:
        raise plan.admission_error(time.monotonic())
    return permit


def finish(permit: Permit, error: BaseException | None) -> None:
    """Give a request's place back, telling the gate what the answer taught."""
    if error is None:
        permit.succeeded()
    elif isinstance(error, RateLimitError):
        permit.rate_limited(parse_queue_limit(error.message))
    else:
        permit.release()


# --- the deadline ------------------------------------------------------------------------------


def timed(request: httpx.Request, plan: CallPlan, timeout: float) -> httpx.Request:
    """Under a deadline, each network step may take at most what is left of it."""
    if plan.deadline is not None:
        left = max(plan.deadline - time.monotonic(), 0.001)
        if left < timeout:
            request.extensions["timeout"] = httpx.Timeout(left).as_dict()
    return request


def read_window(plan: CallPlan, timeout: float) -> float:
    """Seconds the next read may wait: ``timeout``, or what is left of the deadline when that is
    less. Past the deadline: the deadline's error."""
    assert plan.deadline is not None
    left = plan.deadline - time.monotonic()
    if left <= 0:
        raise plan.timeout_error()
    return min(left, timeout)


def _past(plan: CallPlan) -> bool:
    assert plan.deadline is not None
    return time.monotonic() >= plan.deadline - _SLACK


def body_bytes(response: httpx.Response, plan: CallPlan, timeout: float) -> Iterator[bytes]:
    """The body's bytes, under the call's deadline when it has one."""
    if plan.deadline is None:
        return response.iter_bytes()
    # httpx reads a sync body with one read timeout, taken when the body starts: set it now.
    timeouts = response.request.extensions.get("timeout", {})
    response.request.extensions["timeout"] = {**timeouts, "read": read_window(plan, timeout)}
    return _until(response.iter_bytes(), plan)


def _until(chunks: Iterator[bytes], plan: CallPlan) -> Iterator[bytes]:
    try:
        for chunk in chunks:
            if _past(plan):
                raise plan.timeout_error()
            yield chunk
    except httpx.TimeoutException:
        if _past(plan):
            raise plan.timeout_error() from None
        raise


def abody_bytes(response: httpx.Response, plan: CallPlan, timeout: float) -> AsyncIterator[bytes]:
    """Async twin of :func:`body_bytes`: each read is bounded by ``asyncio.timeout``."""
    if plan.deadline is None:
        return response.aiter_bytes()
    return _auntil(response.aiter_bytes(), plan, timeout)


async def _auntil(
    chunks: AsyncIterator[bytes], plan: CallPlan, timeout: float
) -> AsyncIterator[bytes]:
    while True:
        window = read_window(plan, timeout)
        try:
            async with asyncio.timeout(window):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except (TimeoutError, httpx.TimeoutException):
            if _past(plan):
                raise plan.timeout_error() from None
            raise httpx.ReadTimeout(f"no data for {window:g} s") from None
        if _past(plan):
            raise plan.timeout_error()
        yield chunk


# --- dropped streams -------------------------------------------------------------------------

#: What streams dropped unclosed leave: appended by finalizers, settled by ordinary code
#: (:func:`settle_dropped`).
_dropped: deque[_Leftovers] = deque()
#: Finalizers of the guarded streams still out, by id (added and removed without a lock: a
#: dict's item assignment and ``pop`` are atomic).
_live: dict[int, tuple[weakref.finalize[Any, Any], FlowGate | None]] = {}


class _Leftovers(NamedTuple):
    """What a dropped stream leaves to give back."""

    permit: Permit
    response: httpx.Response
    chunks: Iterator[bytes] | AsyncIterator[bytes]
    loop: asyncio.AbstractEventLoop | None


#: Closings of dropped async streams, scheduled on their loops (kept until done).
_closing: set[asyncio.Task[None]] = set()
#: The janitor thread (see the module's docstring), while guarded streams are out.
_janitor: threading.Thread | None = None
_janitor_lock = threading.Lock()


def _ensure_janitor() -> None:
    global _janitor
    with _janitor_lock:
        if _janitor is None:
            _janitor = threading.Thread(
                target=_sweep, name="modelslab-dropped-streams", daemon=True
            )
            _janitor.start()


def _sweep() -> None:
    global _janitor
    progress: dict[int, tuple[int, float]] = {}
    while True:
        time.sleep(_TICK)
        settle_dropped()
        with _janitor_lock:
            if not _live and not _dropped:
                _janitor = None
                return
        if _starved(progress):
            gc.collect()
            settle_dropped()


def _starved(progress: dict[int, tuple[int, float]]) -> bool:
    """True when a gate of a stream still out has callers waiting and has admitted none for
    :data:`COLLECT_AFTER` seconds."""
    now = time.monotonic()
    starved = False
    gates = {id(gate): gate for _, gate in _snapshot() if gate is not None}
    for key, gate in gates.items():
        stats = gate.stats()
        admitted, since = progress.get(key, (-1, now))
        if stats.admitted != admitted or not stats.waiting:
            progress[key] = (stats.admitted, now)
        elif now - since >= COLLECT_AFTER:
            progress[key] = (stats.admitted, now)
            starved = True
    for key in set(progress) - set(gates):
        del progress[key]
    return starved


def _snapshot() -> list[tuple[weakref.finalize[Any, Any], FlowGate | None]]:
    """The guarded streams still out (a finalizer may remove one meanwhile: try again)."""
    while True:
        try:
            return list(_live.values())
        except RuntimeError:  # changed size during iteration
            continue


def _forget_after_fork() -> None:
    # What a forked child inherited belongs to the parent (its pools, its gates, its thread).
    global _janitor, _janitor_lock
    _dropped.clear()
    _live.clear()
    _janitor, _janitor_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _dropped_unclosed(key: int, leftovers: _Leftovers) -> None:
    """The finalizer of a guarded stream: lock-free, it only queues the stream's leftovers."""
    _live.pop(key, None)
    _dropped.append(leftovers)


def guard_stream(
    stream: Any,
    chunks: Iterator[bytes] | AsyncIterator[bytes],
    permit: Permit,
    gate: FlowGate | None,
    loop: asyncio.AbstractEventLoop | None,
) -> None:
    """A stream handed out holds its place (``permit``, accepted: its first event arrived) until
    it closes, which gives the place back as ``succeeded``, or is dropped unclosed, which gives
    the place and the connection back (see the module's docstring).

    The finalizer holds the stream's body iterator (``chunks``): collected with the stream, that
    generator's own finalizer would close the response inside the collector, where the thread
    may hold httpcore's pool lock (encode/httpcore#990). Kept alive, it is closed by
    :func:`settle_dropped`, in ordinary code. The close callback holds no reference to the
    stream (that would keep it alive until the garbage collector ran)."""
    permit.accepted()
    key = id(stream)
    stream.when_closed(partial(_closed, key, permit))
    leftovers = _Leftovers(permit, stream.response, chunks, loop)
    finalizer = weakref.finalize(stream, _dropped_unclosed, key, leftovers)
    finalizer.atexit = False
    _live[key] = (finalizer, gate)
    _ensure_janitor()


def _closed(key: int, permit: Permit) -> None:
    entry = _live.pop(key, None)
    if entry is not None:
        entry[0].detach()
    permit.succeeded()


def settle_dropped() -> None:
    """Give back the places and connections of the streams dropped so far: their permits are
    released (a dropped stream taught nothing), sync responses closed, async ones closed on
    their loops."""
    while True:
        try:
            permit, response, chunks, loop = _dropped.popleft()
        except IndexError:
            return
        permit.release()
        if loop is None:
            with contextlib.suppress(Exception):
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
                response.close()
        else:
            _close_on(response, chunks, loop)


def _close_on(response: httpx.Response, chunks: Any, loop: asyncio.AbstractEventLoop) -> None:
    async def close() -> None:
        with contextlib.suppress(Exception):
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
            await response.aclose()

    def schedule() -> None:
        task = loop.create_task(close())
        _closing.add(task)
        task.add_done_callback(_closing.discard)

    if not loop.is_closed():
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(schedule)
