"""Account-aware flow control: one gate per ModelsLab account (API key and host).

ModelsLab queues only a few requests of an account at once (5, 10 or 15, by plan) and answers
the next with HTTP 429 ``Maximum 5 queued requests allowed.`` and ``retry_after`` 30
(https://docs.modelslab.com). Every client and model of both frameworks, sync and async, in every
thread and event loop, passes its account's :class:`FlowGate`: a slow start (:data:`COLD_START`)
until the first 429, then the limit the 429 showed, raised slowly by answers. A turned-away call
waits at the head of the gate until a place of the account frees or ``retry_after`` passes. With
a Redis URL the gate is shared by a fleet (:mod:`modelslab_core._fleet`). docs/rate_limits.md
tells the whole story. Gates are keyed by a SHA-256 digest of the key, never the key; idle ones
beyond :data:`MAX_GATES` are dropped, what they learned kept for :data:`MAX_LEARNED` accounts.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

import httpx

from ._limit import COLD_START, TRUST_NAMED_LIMIT, AdaptiveLimit, parse_queue_limit

__all__ = [
    "COLD_START",
    "MAX_GATES",
    "MAX_LEARNED",
    "TRUST_NAMED_LIMIT",
    "AdaptiveLimit",
    "FlowGate",
    "GateStats",
    "Outcome",
    "Permit",
    "account_of",
    "gate_for",
    "gate_stats",
    "parse_queue_limit",
    "reset_gates",
]

logger = logging.getLogger("modelslab_core.flow")

#: Gates kept in a process before idle ones (nothing in flight, nobody waiting) are dropped.
MAX_GATES = 1024
#: Accounts whose learned limit outlives their dropped gate (least recently used go first).
MAX_LEARNED = 4096

#: An account: (SHA-256 hex digest of the key, ``scheme://host[:port]``).
Account = tuple[str, str]


class Outcome(enum.Enum):
    """What a request's answer taught its gate when it gave its place back."""

    #: Answered: the server took the request (a place of the account freed).
    ANSWERED = "answered"
    #: Turned away with a 429: the account is full.
    RATE_LIMITED = "rate_limited"
    #: An error or a cancelled call: nothing learned (the place frees all the same).
    NEUTRAL = "neutral"


@dataclass(frozen=True)
class GateStats:
    """What a gate knows, at one moment. The account is named by host and fingerprint only."""

    host: str
    #: The first 8 hex digits of the key's SHA-256 digest.
    account: str
    #: Requests admitted at once; None until the first 429 (no limit known).
    limit: int | None
    #: The limit was pinned with ``max_in_flight``.
    pinned: bool
    #: The queue limit the last 429 message named, if any.
    named_limit: int | None
    #: Requests of this process in flight.
    in_flight: int
    #: Calls of this process waiting for a place.
    waiting: int
    #: 429 answers seen by requests of this process.
    rate_limited: int
    #: Requests admitted since the gate was made.
    admitted: int
    #: The most requests of this process in flight at once.
    peak_in_flight: int
    #: The gate is shared by a fleet through Redis (and Redis answers now).
    shared: bool = False
    #: Requests of the whole fleet in flight (shared gates only).
    fleet_in_flight: int | None = None
    #: Calls of the whole fleet waiting for a place (shared gates only).
    fleet_waiting: int | None = None


_WAITING, _GRANTED, _GONE = 0, 1, 2


@dataclass(slots=True)
class _Waiter:
    """A call waiting for a place: sync ones on an event, async ones on a future of their loop."""

    event: threading.Event | None
    future: asyncio.Future[None] | None
    state: int = _WAITING
    #: A call turned away by a 429 waits at the head until then, or until a place frees.
    not_before: float = 0.0
    #: Woken because the shared gate's Redis went away (a fleet waiter goes to the local gate).
    failed: bool = False

    def wake(self) -> bool:
        """Wake the call from any thread; False when its loop is closed (nobody will wake)."""
        if self.event is not None:
            self.event.set()
            return True
        assert self.future is not None
        try:
            self.future.get_loop().call_soon_threadsafe(_set_result, self.future)
        except RuntimeError:
            return False
        return True


def _set_result(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wait_time(end: float | None, not_before: float) -> float | None:
    """Seconds to wait before looking again: until ``end``, or until a head waiter's
    ``not_before`` (while it is ahead)."""
    now = time.monotonic()
    bounds = [] if end is None else [end - now]
    if not_before > now:
        bounds.append(not_before - now)
    return max(min(bounds), 0.0) if bounds else None


class Permit:
    """One place at a gate. Released exactly once: by :meth:`succeeded`, :meth:`rate_limited` or
    :meth:`release`, whichever comes first; later calls do nothing. ``lease`` names the place
    in a shared (Redis) gate; None for a place of this process's gate."""

    __slots__ = ("__weakref__", "_gate", "lease")

    def __init__(self, gate: FlowGate | None, lease: str | None = None) -> None:
        self._gate = gate
        self.lease = lease

    @property
    def released(self) -> bool:
        return self._gate is None

    def release(self) -> None:
        """Give the place back, learning nothing (an error, a cancelled call)."""
        gate = self._gate
        if gate is not None:
            gate._release(self, Outcome.NEUTRAL, None)

    def succeeded(self) -> None:
        """Give the place back after an answer (the server took the request)."""
        gate = self._gate
        if gate is not None:
            gate._release(self, Outcome.ANSWERED, None)

    def accepted(self) -> None:
        """The request was taken (a stream's first event arrived); the place is kept."""
        gate = self._gate
        if gate is not None:
            gate._accepted(self)

    def rate_limited(self, named_limit: int | None = None) -> None:
        """Give the place back after a 429; ``named_limit`` is the queue limit its message named."""
        gate = self._gate
        if gate is not None:
            gate._release(self, Outcome.RATE_LIMITED, named_limit)


#: A permit of no gate (flow control off, or a request the gate does not count).
NO_PERMIT = Permit(None)


class FlowGate:
    """The gate of one account (API key and host) in this process. Thread-safe; async waiters
    wait on their own loop. Get it with :func:`gate_for`, not the constructor."""

    def __init__(
        self,
        host: str,
        account: str,
        *,
        pinned: int | None = None,
        key: tuple[Account, str | None] | None = None,
    ) -> None:
        self.host = host
        self.account = account
        #: The registry's key of this gate (None: made by hand, never dropped).
        self._key = key
        self._lock = threading.Lock()
        self._control = AdaptiveLimit(pinned=pinned)
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        #: Calls turned away by a 429, served before every other waiter.
        self._heads: deque[_Waiter] = deque()
        self._rate_limited = 0
        self._admitted = 0
        self._peak = 0
        self._logged: int | None = None
        self._pending_log = 0  # 429s since the limit last changed without a log line
        #: Dropped from the registry while idle: calls that still hold it go to its successor.
        self._retired = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(host={self.host!r}, account={self.account!r})"

    # --- state ------------------------------------------------------------------------------

    def stats(self) -> GateStats:
        """The limit, requests in flight, waiters and 429s seen, now."""
        with self._lock:
            control = self._control
            return GateStats(
                host=self.host,
                account=self.account,
                limit=control.current(),
                pinned=control.pinned is not None,
                named_limit=control.named,
                in_flight=self._in_flight,
                waiting=self._waiting_locked(),
                rate_limited=self._rate_limited,
                admitted=self._admitted,
                peak_in_flight=self._peak,
            )

    def pin(self, limit: int | None) -> None:
        """Pin the limit at ``limit`` (``max_in_flight``); None makes it adaptive again."""
        if limit is not None and limit < 1:
            raise ValueError(f"a pinned limit must be >= 1, got {limit}")
        with self._lock:
            self._control.pinned = limit
            wake = self._grant_locked()
            self._log_change_locked("pinned" if limit is not None else "unpinned")
        self._wake(wake)

    def _waiting_locked(self) -> int:
        return len(self._waiters) + len(self._heads)

    def _idle_locked(self) -> bool:
        return self._in_flight == 0 and not self._waiting_locked()

    def _successor(self) -> FlowGate:
        assert self._key is not None
        account, redis_url = self._key
        return gate_for(account, redis_url=redis_url)

    # --- admission --------------------------------------------------------------------------

    def try_acquire(self) -> Permit | None:
        """A place now, or None when the gate is full (or callers are already waiting)."""
        with self._lock:
            if not self._retired:
                return self._admit_locked() if self._ready_locked() else None
        return self._successor().try_acquire()

    def acquire(
        self, timeout: float | None = None, *, retry_at: float | None = None
    ) -> Permit | None:
        """Wait for a place (blocking this thread); None when ``timeout`` seconds pass first.

        ``retry_at`` (``time.monotonic()`` seconds): the call was turned away by a 429. It waits
        at the head of the gate, before every other caller, and goes out when a place of the
        account frees or at ``retry_at``, whichever comes first, and only while the gate has
        room."""
        with self._lock:
            if retry_at is None and not self._retired and self._ready_locked():
                return self._admit_locked()
        waiter = self._join(retry_at, sync=True)
        if waiter is None:
            return self._successor().acquire(timeout, retry_at=retry_at)
        if isinstance(waiter, Permit):
            return waiter
        assert waiter.event is not None
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while not waiter.event.wait(_wait_time(end, waiter.not_before)):
                if end is not None and time.monotonic() >= end:
                    return None if self._abandon(waiter) else Permit(self)
                self._grant()  # its retry_at passed: it goes out as soon as there is room
        except BaseException:
            self._leave(waiter)
            raise
        return Permit(self)

    async def acquire_async(
        self, timeout: float | None = None, *, retry_at: float | None = None
    ) -> Permit | None:
        """Wait for a place without blocking the event loop; None when ``timeout`` seconds pass
        first. Cancelling the wait gives back a place granted meanwhile. ``retry_at``: as for
        :meth:`acquire`."""
        with self._lock:
            if retry_at is None and not self._retired and self._ready_locked():
                return self._admit_locked()
        waiter = self._join(retry_at, sync=False)
        if waiter is None:
            return await self._successor().acquire_async(timeout, retry_at=retry_at)
        if isinstance(waiter, Permit):
            return waiter
        future = waiter.future
        assert future is not None
        end = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                await asyncio.wait([future], timeout=_wait_time(end, waiter.not_before))
                if future.done():
                    return Permit(self)
                if end is not None and time.monotonic() >= end:
                    return None if self._abandon(waiter) else Permit(self)
                self._grant()
        except BaseException:
            self._leave(waiter)
            raise

    def _join(self, retry_at: float | None, *, sync: bool) -> Permit | _Waiter | None:
        """A place at once, else a new waiter in the queue (at the head after a 429); None when
        the gate was retired. (The twins try the first case alone before: the hot path.)"""
        with self._lock:
            if self._retired:
                return None
            if retry_at is None and self._ready_locked():
                return self._admit_locked()
            if sync:
                waiter = _Waiter(threading.Event(), None)
            else:
                waiter = _Waiter(None, asyncio.get_running_loop().create_future())
            if retry_at is None:
                self._waiters.append(waiter)
            else:
                waiter.not_before = retry_at
                self._heads.append(waiter)
            woken = self._grant_locked()  # a head whose retry_at passed may go at once
        self._wake(woken)
        return waiter

    def _ready_locked(self) -> bool:
        return not self._waiters and not self._heads and self._control.admits(self._in_flight)

    def _admit_locked(self) -> Permit:
        self._count_in_locked()
        if self._pending_log:
            self._log_change_locked("")
        return Permit(self)

    def _count_in_locked(self) -> None:
        self._in_flight += 1
        self._admitted += 1
        self._peak = max(self._peak, self._in_flight)

    def _abandon(self, waiter: _Waiter) -> bool:
        """A waiter gives up. True when it held no place; False when a place had been granted
        to it (kept by the caller, who then owns it)."""
        with self._lock:
            if waiter.state != _WAITING:
                return waiter.state == _GONE
            waiter.state = _GONE
            for queue in (self._waiters, self._heads):
                with contextlib.suppress(ValueError):
                    queue.remove(waiter)
            wake = self._grant_locked()  # a head that gave up may have held others back
        self._wake(wake)
        return True

    def _leave(self, waiter: _Waiter) -> None:
        """A waiter leaves with an error (cancelled): a place granted meanwhile goes back."""
        if not self._abandon(waiter):
            self._release(None, Outcome.NEUTRAL, None)

    def _grant(self) -> None:
        with self._lock:
            wake = self._grant_locked()
        self._wake(wake)

    def _grant_locked(self) -> list[_Waiter]:
        """Let waiters out while the gate has room: heads first (calls turned away by a 429),
        in the order they were turned away; a head still waiting out its ``retry_at`` holds
        every other caller back (the account is full). Queued waiters are all waiting: one that
        gives up leaves its queue."""
        woken: list[_Waiter] = []
        now = time.monotonic()
        while self._control.admits(self._in_flight):
            if self._heads:
                if self._heads[0].not_before > now:
                    break
                waiter = self._heads.popleft()
            elif self._waiters:
                waiter = self._waiters.popleft()
            else:
                break
            waiter.state = _GRANTED
            self._count_in_locked()
            woken.append(waiter)
        return woken

    def _wake(self, woken: list[_Waiter]) -> None:
        for waiter in woken:
            if not waiter.wake():  # its loop is closed: nobody will take the place
                with self._lock:
                    waiter.state = _GONE
                self._release(None, Outcome.NEUTRAL, None)

    # --- release ----------------------------------------------------------------------------

    def _accepted(self, permit: Permit | None = None) -> None:
        with self._lock:
            self._control.on_accepted(self._in_flight, self._waiting_locked())
            wake = self._grant_locked()
        self._wake(wake)

    def _release(self, permit: Permit | None, outcome: Outcome, named: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            if permit is not None:
                if permit._gate is None:  # released already (by another thread)
                    return
                permit._gate = None
            control = self._control
            if outcome is Outcome.ANSWERED:
                waiting = len(self._waiters) + len(self._heads)
                if control.on_success(self._in_flight, waiting, now):
                    self._log_change_locked("raised after answers filled it")
                elif self._pending_log:
                    self._log_change_locked("")
            elif outcome is Outcome.RATE_LIMITED:
                self._rate_limited += 1
                if control.on_rate_limited(self._in_flight, named, now):
                    self._pending_log += 1
                    if named is not None and self._logged is None:
                        self._log_change_locked(f"the 429 message names {named}")
            if outcome is not Outcome.RATE_LIMITED:
                # A place of the account freed: the server has room for the calls it turned
                # away, whatever their retry_at said.
                for waiter in self._heads:
                    waiter.not_before = 0.0
            self._in_flight -= 1
            wake = self._grant_locked()
        self._wake(wake)

    def _log_change_locked(self, reason: str) -> None:
        """Log the limit at INFO when it changed since the last line. Drops caused by a burst of
        429s are logged once, at the next event that is not a 429, not once per 429."""
        current = self._control.current()
        pending, self._pending_log = self._pending_log, 0
        if current == self._logged:
            return
        if not reason:
            reason = f"after {pending} rate-limited request{'s' if pending != 1 else ''}"
        logger.info(
            "ModelsLab account %s at %s: queue limit %s -> %s (%s)",
            self.account,
            self.host,
            "none" if self._logged is None else self._logged,
            "none" if current is None else current,
            reason,
        )
        self._logged = current


# ----------------------------------------------------------------------------- the registry


def account_of(api_key: str, base_url: str) -> Account:
    """The registry key of an account: (SHA-256 hex digest of the key, ``scheme://host[:port]``).

    The queue limit is per key at a host, whatever the path (the chat and completions bases of
    one host are one account) and however the URL is spelled: the host's case, a default port
    and a trailing slash do not matter."""
    url = httpx.URL(base_url)
    digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()
    return digest, f"{url.scheme}://{url.netloc.decode('ascii')}"


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: dict[tuple[Account, str | None], FlowGate] = {}
        #: Learned limits of dropped gates, least recently used first.
        self.learned: OrderedDict[tuple[Account, str | None], AdaptiveLimit] = OrderedDict()


_registry = _Registry()


def _reset_after_fork() -> None:
    # The parent's counts (and a lock a parent thread may hold) mean nothing in a child.
    global _registry
    _registry = _Registry()


os.register_at_fork(after_in_child=_reset_after_fork)


def _new_gate(key: tuple[Account, str | None]) -> FlowGate:
    (digest, host), redis_url = key
    if redis_url:
        from ._fleet import FleetGate

        return FleetGate(host, digest, redis_url, key=key)
    return FlowGate(host, digest[:8], key=key)


def _drop_idle_locked(registry: _Registry) -> None:
    """Drop the gates with nothing in flight and nobody waiting; keep what they learned."""
    for key, gate in list(registry.gates.items()):
        with gate._lock:
            if not gate._idle_locked():
                continue
            gate._retired = True
            control = gate._control
        del registry.gates[key]
        if control.limit is not None or control.pinned is not None or control.named is not None:
            registry.learned[key] = replace(control)
            registry.learned.move_to_end(key)
    while len(registry.learned) > MAX_LEARNED:
        registry.learned.popitem(last=False)


def gate_for(account: Account, *, redis_url: str | None = None) -> FlowGate:
    """The gate of ``account`` (from :func:`account_of`), made on first use. With
    ``redis_url`` it is shared through that Redis by every process using the key (a
    :class:`~modelslab_core._fleet.FleetGate`). A new gate starts from what a dropped gate of the
    same account had learned, if that is still remembered."""
    key = (account, redis_url or None)
    registry = _registry
    gate = registry.gates.get(key)
    if gate is not None:
        return gate
    with registry.lock:
        gate = registry.gates.get(key)
        if gate is None:
            if len(registry.gates) >= MAX_GATES:
                _drop_idle_locked(registry)
            gate = registry.gates[key] = _new_gate(key)
            learned = registry.learned.pop(key, None)
            if learned is not None:
                gate._control = learned
    return gate


def gate_stats() -> list[GateStats]:
    """The state of every account gate of this process."""
    registry = _registry
    with registry.lock:
        gates = list(registry.gates.values())
    return [gate.stats() for gate in gates]


def reset_gates() -> None:
    """Forget every gate and what they learned (tests; a gate in use keeps working for the calls
    holding it)."""
    registry = _registry
    with registry.lock:
        registry.gates.clear()
        registry.learned.clear()
