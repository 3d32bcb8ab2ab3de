"""One account gate for a fleet: every process and machine using a key shares it through Redis
(``MODELSLAB_REDIS_URL`` or ``redis_url=``; docs/rate_limits.md, "Many workers, one key").

- A request in flight is a lease that expires (:data:`LEASE_SECONDS`), renewed while it runs, so
  the places of a killed worker come back within the lease time.
- The learned limit is shared; waiters of every process are served in arrival order, woken by a
  push on their process's list (one listener thread per account and process, BLPOP: no polling).
- Every change is one Lua script (:mod:`modelslab_core._fleet_lua`) under one hash tag
  ``modelslab:{digest}:``, a salted digest: neither the key nor its plain SHA-256 reaches Redis.
- Redis away: calls go on through this process's :class:`FlowGate`, one WARNING per outage.
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import hashlib
import logging
import os
import queue
import threading
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._fleet_lua import SCRIPT
from ._limit import COLD_START, PROBE_SLOWDOWN, TRUST_NAMED_LIMIT
from .errors import ConfigurationError
from .flow import (
    _GONE,
    _GRANTED,
    _WAITING,
    Account,
    FlowGate,
    GateStats,
    Outcome,
    Permit,
    _wait_time,
    _Waiter,
)

__all__ = ["LEASE_SECONDS", "FleetGate", "masked_url"]

logger = logging.getLogger("modelslab_core.flow")

#: Seconds a place is held without renewal: a killed worker's places come back within it.
LEASE_SECONDS = 30.0
#: Seconds a waiter blocks on its wake-up list before it tells Redis it is still there.
BLOCK_SECONDS = 1.0
#: Seconds a waiter that stopped saying so stays queued (a killed worker's waiters go).
WAITER_SECONDS = 5.0
#: Seconds after a Redis error before the shared gate is tried again.
RETRY_REDIS_AFTER = 1.0
#: Seconds after Redis came back within which a new failure is the same outage (no new WARNING).
SAME_OUTAGE = 10.0
#: Seconds Redis may take to connect or answer before it counts as down.
REDIS_TIMEOUT = 1.0
#: Seconds a process at exit waits for its sender thread to send what it was handed.
FLUSH_SECONDS = REDIS_TIMEOUT + BLOCK_SECONDS
#: Connections to one Redis per process (per event loop for async calls): calls wait for one.
MAX_CONNECTIONS = 32

try:
    import redis
    import redis.asyncio as aredis
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError
    from redis.retry import Retry
except ImportError:  # pragma: no cover - without the [redis] extra
    redis = None  # type: ignore[assignment]


def masked_url(url: str) -> str:
    """``url`` without its password (and without a query, which may hold one)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, _, where = netloc.rpartition("@")
        user = credentials.split(":", 1)[0]
        netloc = f"{user}:***@{where}" if user else f"***@{where}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Link:
    """This process's connections to one Redis: a sync client, one async client per event loop,
    the leases to renew, and whether Redis is answering."""

    def __init__(self, url: str) -> None:
        if redis is None:
            raise ConfigurationError(
                "redis_url (or MODELSLAB_REDIS_URL) needs redis-py: "
                "pip install 'modelslab-integrations[redis]'"
            )
        self.url = url
        self.shown = masked_url(url)
        #: This process's name in waiter ids: its listeners wait on ``wake:<token>``.
        self.token = uuid.uuid4().hex[:16]
        self.lock = threading.Lock()
        self._sync: Any = None
        self._sync_script: Any = None
        self.by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any, Any]]
        self.by_loop = weakref.WeakKeyDictionary()
        self.down = False
        self.warned = False
        self.retry_at = 0.0
        self.recovered_at = -SAME_OUTAGE
        #: lease id -> its gate, renewed by the renewer thread while held.
        self.held: dict[str, FleetGate] = {}
        self._renewer: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        #: What the sender thread runs, in order.
        self._outbox: queue.SimpleQueue[Callable[[], object]] = queue.SimpleQueue()

    @staticmethod
    def _options(retry: Any) -> dict[str, Any]:
        # One retry inside redis-py (a pooled connection broken by a restart reconnects); a
        # Redis that still does not answer is an outage.
        return {
            "socket_timeout": BLOCK_SECONDS + REDIS_TIMEOUT,
            "socket_connect_timeout": REDIS_TIMEOUT,
            "retry": retry(NoBackoff(), 1),
            # A call waits this long for one of the pool's connections.
            "timeout": REDIS_TIMEOUT + BLOCK_SECONDS,
        }

    def sync(self) -> tuple[Any, Any]:
        if self._sync is None:
            with self.lock:
                if self._sync is None:
                    pool = redis.BlockingConnectionPool.from_url(
                        self.url, max_connections=MAX_CONNECTIONS, **self._options(Retry)
                    )
                    client = redis.Redis.from_pool(pool)
                    self._sync_script = client.register_script(SCRIPT)
                    self._sync = client
        return self._sync, self._sync_script

    async def on_loop(self) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        entry = self.by_loop.get(loop)
        if entry is None:
            pool = aredis.BlockingConnectionPool.from_url(
                self.url, max_connections=MAX_CONNECTIONS, **self._options(AsyncRetry)
            )
            client = aredis.Redis.from_pool(pool)  # closes the pool with it
            guard = _close_with_loop(self, loop, client)
            await guard.__anext__()  # the loop closes it at shutdown
            entry = self.by_loop[loop] = (client, client.register_script(SCRIPT), guard)
        return entry[0], entry[1]

    # --- outages ----------------------------------------------------------------------------

    def usable(self) -> bool:
        return not self.down or time.monotonic() >= self.retry_at

    def failed(self, error: BaseException) -> None:
        """A Redis call failed: shared mode pauses for :data:`RETRY_REDIS_AFTER` seconds. One
        WARNING per outage: a failure soon after Redis came back (a connection broken by its
        restart) belongs to the same outage."""
        now = time.monotonic()
        with self.lock:
            self.retry_at = now + RETRY_REDIS_AFTER
            if self.down:
                return
            self.down = True
            if now - self.recovered_at < SAME_OUTAGE:
                return
            self.warned = True
        logger.warning(
            "Redis at %s does not answer (%s): the account gates of this process go on alone "
            "until it is back",
            self.shown,
            type(error).__name__,
        )

    def answered(self) -> None:
        if self.down:
            with self.lock:
                was, self.down = self.down, False
                warned, self.warned = self.warned, False
                self.recovered_at = time.monotonic()
            if was and warned:
                logger.warning("Redis at %s answers again: account gates shared", self.shown)

    # --- renewal ----------------------------------------------------------------------------

    def hold(self, lease: str, gate: FleetGate) -> None:
        with self.lock:
            self.held[lease] = gate
            if self._renewer is None:
                self._renewer = _daemon(self._renew, "modelslab-fleet-renewer")

    def post(self, gate: FleetGate, op: str, args: tuple[Any, ...]) -> None:
        """Send ``op`` from the sender thread, in order."""
        with self.lock:
            if self._sender is None:
                self._sender = _daemon(self._send_all, "modelslab-fleet-sender")
                # Its thread is a daemon: without this, the releases of a process's last calls
                # die with it and their places stay held until the leases expire.
                atexit.register(self.flush, FLUSH_SECONDS)
        self._outbox.put(functools.partial(self.run, gate, op, args))

    def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) until the sender thread has sent what it was
        handed before. A forked child's inherited link has no sender: nothing to wait for."""
        sender = self._sender
        if sender is None or not sender.is_alive():
            return
        done = threading.Event()
        self._outbox.put(done.set)
        done.wait(timeout)

    def _send_all(self) -> None:
        while True:
            self._outbox.get()()

    def run(self, gate: FleetGate, op: str, args: tuple[Any, ...]) -> None:
        """Run ``op`` now unless Redis is away; a failure is an outage (the lease expires)."""
        if self.usable():
            try:
                gate._run_sync(op, *args)
            except (RedisError, OSError) as error:
                self.failed(error)

    def let_go(self, lease: str) -> None:
        with self.lock:
            self.held.pop(lease, None)

    def _renew(self) -> None:
        while True:
            time.sleep(LEASE_SECONDS / 3)
            with self.lock:
                groups: dict[FleetGate, list[str]] = {}
                for lease, gate in self.held.items():
                    groups.setdefault(gate, []).append(lease)
            for gate, leases in groups.items():
                self.run(gate, "renew", tuple(leases))


def _daemon(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


async def _close_with_loop(
    link: _Link, loop: asyncio.AbstractEventLoop, client: Any
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        link.by_loop.pop(loop, None)
        del loop
        await client.aclose()


_links: dict[str, _Link] = {}
_links_lock = threading.Lock()
#: A forked child's inherited links: kept, never used (their sockets are the parent's).
_inherited: list[dict[str, _Link]] = []


def _forget_after_fork() -> None:
    global _links, _links_lock
    _inherited.append(_links)
    _links, _links_lock = {}, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _link_for(url: str) -> _Link:
    with _links_lock:
        if url not in _links:
            _links[url] = _Link(url)
        return _links[url]


class FleetGate(FlowGate):
    """The gate of one account shared through Redis by every process using it. A
    :class:`FlowGate` of its own (this process's) carries the calls while Redis is away."""

    def __init__(
        self,
        host: str,
        digest: str,
        redis_url: str,
        *,
        key: tuple[Account, str | None] | None = None,
    ) -> None:
        super().__init__(host, digest[:8], key=key)
        self._link = _link_for(redis_url)
        # Salted: the account's name in Redis is not the plain SHA-256 of the key.
        salted = hashlib.sha256(f"modelslab-fleet\0{host}\0{digest}".encode()).hexdigest()
        prefix = f"modelslab:{{{salted[:32]}}}:"
        #: The script's ARGV[1..6]; ARGV[7] is the pinned limit (0: none), ARGV[8] the operation.
        self._settings = [
            prefix,
            int(LEASE_SECONDS * 1000),
            int(WAITER_SECONDS * 1000),
            COLD_START,
            int(TRUST_NAMED_LIMIT * 1000),
            PROBE_SLOWDOWN,
        ]
        self._redis_keys = [
            prefix + name for name in ("leases", "queue", "alive", "state", "defer", "seq")
        ]
        self._wake_key = f"{prefix}wake:{self._link.token}"
        #: This process's waiters for a place in the fleet, by waiter id.
        self._remote: dict[str, _Waiter] = {}
        self._listener: threading.Thread | None = None

    def _args(self, op: str, *rest: Any) -> list[Any]:
        return [*self._settings, self._control.pinned or 0, op, *rest]

    def _run_sync(self, op: str, *rest: Any) -> Any:
        _, script = self._link.sync()
        result = script(keys=self._redis_keys, args=self._args(op, *rest))
        self._link.answered()
        return result

    async def _run_async(self, op: str, *rest: Any) -> Any:
        _, script = await self._link.on_loop()
        result = await script(keys=self._redis_keys, args=self._args(op, *rest))
        self._link.answered()
        return result

    # --- state ------------------------------------------------------------------------------

    def stats(self) -> GateStats:
        """This process's counts, and the fleet's (``shared``, ``fleet_in_flight``,
        ``fleet_waiting``, the shared limit) when Redis answers."""
        local = super().stats()
        if not self._link.usable():
            return local
        try:
            in_flight, waiting, limit, learned, named, _ = self._run_sync("stats")
        except (RedisError, OSError) as error:
            self._link.failed(error)
            return local
        return replace(
            local,
            shared=True,
            fleet_in_flight=int(in_flight),
            fleet_waiting=int(waiting),
            limit=int(limit) if learned or local.pinned else local.limit,
            named_limit=None if int(named) < 0 else int(named),
        )

    # --- admission --------------------------------------------------------------------------

    def _register(self, waiter: _Waiter) -> str:
        """A new waiter's id, woken by this process's listener (started if none runs)."""
        lease = f"{self._link.token}:{uuid.uuid4().hex}"
        with self._lock:
            self._remote[lease] = waiter
            if self._listener is None:
                self._listener = _daemon(self._listen, "modelslab-fleet-listener")
        return lease

    def _settle(self, lease: str, waiter: _Waiter) -> bool:
        """The waiter stops waiting: whether a place was granted to it."""
        with self._lock:
            self._remote.pop(lease, None)
            granted = waiter.state == _GRANTED
            waiter.state = _GONE
        return granted

    def _finish(self, lease: str, waiter: _Waiter, granted: bool) -> Permit | None:
        """The waiter stops waiting: its place, if the script or a wake-up granted one."""
        if not (self._settle(lease, waiter) or granted):
            return None
        with self._lock:
            self._count_in_locked()
        self._link.hold(lease, self)
        return Permit(self, lease)

    def _listen(self) -> None:
        """Deliver the fleet's wake-ups to this process's waiters of the account, and tell Redis
        they are still there; ends when nobody waits."""
        last_alive = 0.0
        while True:
            with self._lock:
                waiting = list(self._remote)
                if not waiting:
                    self._listener = None
                    return
            try:
                client, _ = self._link.sync()
                if time.monotonic() - last_alive >= BLOCK_SECONDS:
                    self._run_sync("alive", *waiting)
                    last_alive = time.monotonic()
                item = client.blpop([self._wake_key], timeout=BLOCK_SECONDS)
            except (RedisError, OSError) as error:
                self._link.failed(error)
                self._fail_waiters()
                continue
            if item is not None:
                self._dispatch(item[1].decode())

    def _dispatch(self, lease: str) -> None:
        with self._lock:
            waiter = self._remote.pop(lease, None)
            if waiter is None or waiter.state != _WAITING:
                return  # gone: its abandon script told it the place was its own
            waiter.state = _GRANTED
        if not waiter.wake():  # its loop is closed: nobody will take the place
            self._send("release", (lease, Outcome.NEUTRAL.value, ""))

    def _fail_waiters(self) -> None:
        with self._lock:
            waiters = list(self._remote.values())
            self._remote.clear()
            for waiter in waiters:
                waiter.failed = True
        for waiter in waiters:
            waiter.wake()

    def acquire(
        self, timeout: float | None = None, *, retry_at: float | None = None
    ) -> Permit | None:
        """A place in the fleet (this process's gate while Redis is away)."""
        if self._link.usable():
            started = time.monotonic()
            try:
                return self._acquire_shared(timeout, retry_at)
            except (RedisError, OSError) as error:
                self._link.failed(error)
                if timeout is not None:
                    timeout = max(timeout - (time.monotonic() - started), 0.0)
        return super().acquire(timeout, retry_at=retry_at)

    def _acquire_shared(self, timeout: float | None, retry_at: float | None) -> Permit | None:
        end = None if timeout is None else time.monotonic() + timeout
        waiter = _Waiter(threading.Event(), None, not_before=retry_at or 0.0)
        assert waiter.event is not None
        lease = self._register(waiter)  # before the script: the wake-up may come first
        try:
            granted = bool(self._run_sync("acquire", lease, _head_ms(retry_at)))
            while not granted:
                if waiter.event.wait(_wait_time(end, waiter.not_before)):
                    granted = _woken(waiter)
                elif end is not None and time.monotonic() >= end:
                    granted = bool(self._run_sync("abandon", lease))
                    break
                elif waiter.not_before and time.monotonic() >= waiter.not_before:
                    waiter.not_before = 0.0  # its retry_after passed: out as soon as there is room
                    granted = bool(self._run_sync("acquire", lease, -1))
        except BaseException:
            self._give_back(lease, waiter)
            raise
        return self._finish(lease, waiter, granted)

    def _give_back(self, lease: str, waiter: _Waiter) -> None:
        """A waiter leaves with an error (cancelled, Redis gone): a place granted meanwhile is
        given back."""
        granted = self._settle(lease, waiter)
        try:
            if self._run_sync("abandon", lease) or granted:
                self._run_sync("release", lease, Outcome.NEUTRAL.value)
        except (RedisError, OSError):
            pass  # the waiter and any place granted to it expire

    async def _give_back_async(self, lease: str, waiter: _Waiter) -> None:
        granted = self._settle(lease, waiter)
        try:
            if await self._run_async("abandon", lease) or granted:
                await self._run_async("release", lease, Outcome.NEUTRAL.value)
        except (RedisError, OSError):
            pass

    async def acquire_async(
        self, timeout: float | None = None, *, retry_at: float | None = None
    ) -> Permit | None:
        """Async twin of :meth:`acquire`."""
        if self._link.usable():
            started = time.monotonic()
            try:
                return await self._acquire_shared_async(timeout, retry_at)
            except (RedisError, OSError) as error:
                self._link.failed(error)
                if timeout is not None:
                    timeout = max(timeout - (time.monotonic() - started), 0.0)
        return await super().acquire_async(timeout, retry_at=retry_at)

    async def _acquire_shared_async(
        self, timeout: float | None, retry_at: float | None
    ) -> Permit | None:
        end = None if timeout is None else time.monotonic() + timeout
        future = asyncio.get_running_loop().create_future()
        waiter = _Waiter(None, future, not_before=retry_at or 0.0)
        lease = self._register(waiter)
        try:
            granted = bool(await self._run_async("acquire", lease, _head_ms(retry_at)))
            while not granted:
                await asyncio.wait([future], timeout=_wait_time(end, waiter.not_before))
                if future.done():
                    granted = _woken(waiter)
                elif end is not None and time.monotonic() >= end:
                    granted = bool(await self._run_async("abandon", lease))
                    break
                elif waiter.not_before and time.monotonic() >= waiter.not_before:
                    waiter.not_before = 0.0
                    granted = bool(await self._run_async("acquire", lease, -1))
        except BaseException:
            await self._give_back_async(lease, waiter)
            raise
        return self._finish(lease, waiter, granted)

    # --- release ----------------------------------------------------------------------------

    def _release(self, permit: Permit | None, outcome: Outcome, named: int | None) -> None:
        lease = None if permit is None else permit.lease
        if lease is None:
            super()._release(permit, outcome, named)
            return
        assert permit is not None
        with self._lock:
            if permit._gate is None:  # released already (by another thread)
                return
            permit._gate = None
            self._in_flight -= 1
            if outcome is Outcome.RATE_LIMITED:
                self._rate_limited += 1
        self._link.let_go(lease)
        args = (lease, outcome.value, "" if named is None else named)
        self._send("release", args)

    def _accepted(self, permit: Permit | None = None) -> None:
        if permit is None or permit.lease is None:
            super()._accepted(permit)
            return
        self._send("accepted", (permit.lease,))

    def _send(self, op: str, args: tuple[Any, ...]) -> None:
        """Tell Redis without blocking an event loop: from a loop, through this process's sender
        thread (a task could be cancelled when its loop ends, keeping the place until its lease
        expires); elsewhere (a thread, a finalizer), at once. A failure is an outage: the lease
        expires."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._link.run(self, op, args)
        else:
            self._link.post(self, op, args)


def _head_ms(retry_at: float | None) -> int:
    """Milliseconds a call turned away by a 429 waits at the head (-1: an ordinary waiter)."""
    return -1 if retry_at is None else max(int((retry_at - time.monotonic()) * 1000), 0)


def _woken(waiter: _Waiter) -> bool:
    if waiter.failed:
        raise RedisConnectionError("Redis went away")
    return True
