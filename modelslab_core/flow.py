"""Account-aware flow control: one gate per ModelsLab account (API key and host) in a process.

ModelsLab lets an account have only a few requests queued at once (5, 10 or 15, by plan) and
answers the next one with HTTP 429 ``Maximum 5 queued requests allowed.``. Every client and model
of both frameworks, sync and async, in every thread and event loop, passes through its account's
:class:`FlowGate`. Before the first 429 the gate only paces bursts (a slow start of
:data:`COLD_START`); a 429 sets the limit to what the server was holding of ours (and to the limit
its message names); answers raise it again slowly (additive increase), so processes sharing a key
settle on their shares. ``max_in_flight=N`` pins the limit; ``flow_control=False`` keeps a client
out of the gate. docs/rate_limits.md tells the whole story.

The controller is pure (:class:`AdaptiveLimit`); the gate is a short :class:`threading.Lock`, with
sync waiters on a :class:`threading.Event` and async ones on a future of their own loop. Gates are
keyed by a SHA-256 digest of the key and named by host and its first 8 hex digits: the key never
leaves the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = [
    "TRUST_NAMED_LIMIT",
    "AdaptiveLimit",
    "FlowGate",
    "GateStats",
    "Permit",
    "account_of",
    "gate_for",
    "gate_stats",
    "parse_queue_limit",
    "reset_gates",
]

logger = logging.getLogger("modelslab_core.flow")

#: Seconds a queue limit named by a 429 message is trusted before the gate probes above it.
TRUST_NAMED_LIMIT = 600.0
#: A probe (growth soon after a 429, or with no named limit to recover to) is this many times
#: slower than a recovery: one place more per this many limits' worth of answers.
PROBE_SLOWDOWN = 8.0
#: Before the first 429 the gate lets calls out in rounds: this many at once (more than the largest
#: plan's queue, 15, so that no plan waits a round for it), one more for each answer while they
#: fill the round (so the round doubles), like TCP's slow start. A burst of 300 then costs a
#: handful of 429s, not 295 requests sent only to be turned away (each told to wait
#: ``retry_after``: 30 s on the live API).
COLD_START = 16
_QUEUE_LIMIT = re.compile(
    r"(?:maximum|max\.?|at most|limit(?: of| is)?)\s*:?\s*(\d{1,6})\s+"
    r"(?:queued|concurrent|simultaneous|parallel|pending|active|in[- ]flight)?\s*"
    r"(?:requests?|calls?|jobs?)",
    re.IGNORECASE,
)


# ----------------------------------------------------------------------------- pure logic


def parse_queue_limit(message: str | None) -> int | None:
    """The queue limit a 429 message names (``Maximum 5 queued requests allowed.`` → 5), or None
    when it names none."""
    if not message:
        return None
    match = _QUEUE_LIMIT.search(message)
    if match is None:
        return None
    limit = int(match.group(1))
    return limit if limit >= 1 else None


@dataclass
class AdaptiveLimit:
    """The controller of one gate, without I/O or locks: what the limit is, and how a 429 or a
    success moves it. ``now`` is ``time.monotonic()`` seconds.

    ``limit`` is None until the first 429 (no limit known): meanwhile ``window`` requests go out
    at once, one more for each answer while they fill it (:data:`COLD_START`). ``pinned``
    overrides everything. ``named`` is the queue limit a 429 message named, trusted until
    ``named_until``.
    """

    pinned: int | None = None
    limit: float | None = None
    window: float = COLD_START
    #: Answers since the last 429.
    quiet: int = 0
    named: int | None = None
    named_until: float = 0.0
    trust: float = TRUST_NAMED_LIMIT

    def current(self) -> int | None:
        """The number of requests admitted at once; None: no limit."""
        if self.pinned is not None:
            return self.pinned
        if self.limit is None:
            return None
        return max(1, int(self.limit))

    def admits(self, in_flight: int) -> bool:
        """Whether one more request may go out with ``in_flight`` already out."""
        limit = self.current()
        if limit is None:
            return in_flight < self.window
        return in_flight < limit

    def on_success(self, in_flight: int, waiting: int, now: float) -> bool:
        """A request was answered. ``in_flight`` counts it; ``waiting`` counts callers held back.
        Grows the limit only while the requests fill it (nothing is learned otherwise). Returns
        whether :meth:`current` changed."""
        if self.pinned is not None:
            return False
        if self.limit is None:  # before the first 429: the round grows by one per answer
            if waiting or in_flight >= int(self.window):
                self.window += 1
            return False
        before = self.current()
        if waiting == 0 and in_flight < int(self.limit):
            return False
        ceiling = self.named if self.named is not None and now < self.named_until else None
        self.quiet += 1
        step = 1.0 / self.limit  # one place more per limit's worth of answers...
        if ceiling is None or self.limit >= ceiling or self.quiet < 2 * self.limit:
            # ...but slowly above a named limit, without one, or soon after a 429: a place more
            # than the account's share costs a 429 (processes sharing a key collide less often)
            step /= PROBE_SLOWDOWN
        grown = self.limit + step
        if ceiling is not None:
            grown = min(grown, float(ceiling))
        self.limit = max(self.limit, grown)
        return self.current() != before

    def on_accepted(self, in_flight: int, waiting: int) -> None:
        """A stream's first event arrived: the server took the request, which will hold its
        place until the stream ends. Before the first 429 the round grows as for an answer, so
        that many concurrent streams do not wait a whole stream's length per round."""
        if (
            self.pinned is None
            and self.limit is None
            and (waiting or in_flight >= int(self.window))
        ):
            self.window += 1

    def on_rate_limited(self, in_flight: int, named: int | None, now: float) -> bool:
        """A request was turned away with a 429. ``in_flight`` counts it: the others are what the
        server was holding of ours, an upper bound on our share of the account's queue. ``named``
        is the queue limit the message named, if any. Returns whether :meth:`current` changed."""
        if named is not None:
            self.named = named
            self.named_until = now + self.trust
        self.quiet = 0
        if self.pinned is not None:
            return False
        before = self.current()
        new = float(max(in_flight - 1, 1))
        if named is not None:
            new = min(new, float(named))
        if self.limit is not None:
            new = min(new, float(int(self.limit)))
        self.limit = new
        return self.current() != before


# ----------------------------------------------------------------------------- the gate


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
    in_flight: int
    waiting: int
    #: 429 answers seen by requests of this gate.
    rate_limited: int
    #: Requests admitted since the gate was made.
    admitted: int
    #: The most requests in flight at once.
    peak_in_flight: int


_WAITING, _GRANTED, _GONE = 0, 1, 2


@dataclass(slots=True)
class _Waiter:
    event: threading.Event | None
    loop: asyncio.AbstractEventLoop | None
    future: asyncio.Future[None] | None
    state: int = _WAITING


def _wake_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Permit:
    """One place at a gate. Released exactly once: by :meth:`succeeded`, :meth:`rate_limited` or
    :meth:`release`, whichever comes first; later calls do nothing."""

    __slots__ = ("__weakref__", "_gate")

    def __init__(self, gate: FlowGate | None) -> None:
        self._gate = gate

    @property
    def released(self) -> bool:
        return self._gate is None

    def release(self) -> None:
        """Give the place back, learning nothing (an error, a cancelled call)."""
        gate = self._gate
        if gate is not None:
            gate._release(self, "neutral", None)

    def succeeded(self) -> None:
        """Give the place back after an answer (the server took the request)."""
        gate = self._gate
        if gate is not None:
            gate._release(self, "ok", None)

    def accepted(self) -> None:
        """The request was taken (a stream's first event arrived); the place is kept."""
        gate = self._gate
        if gate is not None:
            gate._accepted()

    def rate_limited(self, named_limit: int | None = None) -> None:
        """Give the place back after a 429; ``named_limit`` is the queue limit its message named."""
        gate = self._gate
        if gate is not None:
            gate._release(self, "429", named_limit)


#: A permit of no gate (flow control off, or a request the gate does not count).
NO_PERMIT = Permit(None)


class FlowGate:
    """The gate of one account (API key and host) in this process. Thread-safe; async waiters
    wait on their own loop. Get it with :func:`gate_for`, not the constructor."""

    def __init__(self, host: str, account: str, *, pinned: int | None = None) -> None:
        self.host = host
        self.account = account
        self._lock = threading.Lock()
        self._control = AdaptiveLimit(pinned=pinned)
        self._in_flight = 0
        self._waiters: deque[_Waiter] = deque()
        self._rate_limited = 0
        self._admitted = 0
        self._peak = 0
        self._logged: int | None = None
        self._pending_log = 0  # 429s since the limit last changed without a log line

    def __repr__(self) -> str:
        return f"FlowGate(host={self.host!r}, account={self.account!r})"

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
                waiting=len(self._waiters),
                rate_limited=self._rate_limited,
                admitted=self._admitted,
                peak_in_flight=self._peak,
            )

    @property
    def limit(self) -> int | None:
        """Requests admitted at once (None: no limit known yet)."""
        with self._lock:
            return self._control.current()

    def pin(self, limit: int | None) -> None:
        """Pin the limit at ``limit`` (``max_in_flight``); None makes it adaptive again."""
        if limit is not None and limit < 1:
            raise ValueError(f"a pinned limit must be >= 1, got {limit}")
        with self._lock:
            self._control.pinned = limit
            wake = self._grant_locked()
            self._log_change_locked("pinned" if limit is not None else "unpinned")
        self._wake(wake)

    # --- admission --------------------------------------------------------------------------

    def try_acquire(self) -> Permit | None:
        """A place now, or None when the gate is full (or callers are already waiting)."""
        with self._lock:
            if self._waiters or not self._control.admits(self._in_flight):
                return None
            return self._admit_locked()

    def acquire(self, timeout: float | None = None) -> Permit | None:
        """Wait for a place (blocking this thread); None when ``timeout`` seconds pass first."""
        with self._lock:
            if not self._waiters and self._control.admits(self._in_flight):
                return self._admit_locked()
            waiter = _Waiter(threading.Event(), None, None)
            self._waiters.append(waiter)
        assert waiter.event is not None
        try:
            granted = waiter.event.wait(timeout)
        except BaseException:
            if not self._abandon(waiter):
                self._release(None, "neutral", None)
            raise
        if granted or not self._abandon(waiter):
            return Permit(self)
        return None

    async def acquire_async(self, timeout: float | None = None) -> Permit | None:
        """Wait for a place without blocking the event loop; None when ``timeout`` seconds pass
        first. Cancelling the wait gives back a place granted meanwhile."""
        with self._lock:
            if not self._waiters and self._control.admits(self._in_flight):
                return self._admit_locked()
            loop = asyncio.get_running_loop()
            waiter = _Waiter(None, loop, loop.create_future())
            self._waiters.append(waiter)
        assert waiter.future is not None
        try:
            if timeout is None:
                await waiter.future
            else:
                async with asyncio.timeout(max(timeout, 0.0)):
                    await waiter.future
        except TimeoutError:
            if self._abandon(waiter):
                return None
            return Permit(self)
        except BaseException:
            if not self._abandon(waiter):
                self._release(None, "neutral", None)
            raise
        return Permit(self)

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
            if waiter.state == _WAITING:
                waiter.state = _GONE
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
                return True
            if waiter.state == _GONE:
                return True
        # Granted: a place is ours. A caller that raises (cancelled) must give it back.
        return False

    def _grant_locked(self) -> list[_Waiter]:
        woken = []
        while self._waiters and self._control.admits(self._in_flight):
            waiter = self._waiters.popleft()
            if waiter.state != _WAITING:
                continue
            waiter.state = _GRANTED
            self._count_in_locked()
            woken.append(waiter)
        return woken

    def _wake(self, woken: list[_Waiter]) -> None:
        for waiter in woken:
            if waiter.event is not None:
                waiter.event.set()
                continue
            assert waiter.loop is not None and waiter.future is not None
            try:
                waiter.loop.call_soon_threadsafe(_wake_future, waiter.future)
            except RuntimeError:  # its loop is closed: nobody will take the place
                with self._lock:
                    waiter.state = _GONE
                self._release(None, "neutral", None)

    # --- release ----------------------------------------------------------------------------

    def _accepted(self) -> None:
        with self._lock:
            self._control.on_accepted(self._in_flight, len(self._waiters))
            wake = self._grant_locked()
        self._wake(wake)

    def _release(self, permit: Permit | None, outcome: str, named: int | None) -> None:
        now = time.monotonic()
        with self._lock:
            if permit is not None:
                if permit._gate is None:  # released already (by another thread)
                    return
                permit._gate = None
            control = self._control
            if outcome == "ok":
                if control.on_success(self._in_flight, len(self._waiters), now):
                    self._log_change_locked("raised after answers filled it")
                elif self._pending_log:
                    self._log_change_locked("")
            elif outcome == "429":
                self._rate_limited += 1
                if control.on_rate_limited(self._in_flight, named, now):
                    self._pending_log += 1
                    if named is not None and self._logged is None:
                        self._log_change_locked(f"the 429 message names {named}")
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


def account_of(api_key: str, base_url: str) -> tuple[str, str]:
    """The registry key of an account: (SHA-256 hex digest of the key, ``scheme://host:port``)."""
    digest = hashlib.sha256(api_key.encode("utf-8")).hexdigest()
    parts = urlsplit(base_url)
    host = f"{parts.scheme}://{parts.netloc}".lower()
    return digest, host


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.gates: dict[tuple[str, str], FlowGate] = {}


_registry = _Registry()


def _reset_after_fork() -> None:
    # The parent's counts (and a lock a parent thread may hold) mean nothing in a child.
    global _registry
    _registry = _Registry()


os.register_at_fork(after_in_child=_reset_after_fork)


def gate_for(account: tuple[str, str], *, pin: int | None = None) -> FlowGate:
    """The gate of ``account`` (from :func:`account_of`), made on first use; ``pin`` pins a new
    gate's limit (use :meth:`FlowGate.pin` to change an existing one)."""
    registry = _registry
    gate = registry.gates.get(account)
    if gate is not None:
        return gate
    with registry.lock:
        gate = registry.gates.get(account)
        if gate is None:
            digest, host = account
            gate = registry.gates[account] = FlowGate(host, digest[:8], pinned=pin)
    return gate


def gate_stats() -> list[GateStats]:
    """The state of every account gate of this process."""
    registry = _registry
    with registry.lock:
        gates = list(registry.gates.values())
    return [gate.stats() for gate in gates]


def reset_gates() -> None:
    """Forget every gate (tests; a gate in use keeps working for the calls holding it)."""
    registry = _registry
    with registry.lock:
        registry.gates.clear()
