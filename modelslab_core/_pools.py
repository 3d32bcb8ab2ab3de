"""Shared httpx clients: one per process for sync calls (httpx's own transport), one per event
loop for async ones (the ``httpx-aiohttp`` transport, chosen by measurement: docs/benchmarks.md),
used by every ModelsLab client that was not handed its own ``http_client``.

Every byte goes through httpx, so TLS trust (``SSL_CERT_FILE``, ``SSL_CERT_DIR``), proxies,
compression, event hooks and httpx's request log work as users expect. No cap on connections
(concurrent streams each hold one); idle ones expire after :data:`KEEPALIVE_EXPIRY` seconds,
before a NAT forgets them. An async pool closes when its loop shuts down
(``loop.shutdown_asyncgens()``, which ``asyncio.run`` calls) and lets go of the loop. A forked
child drops every inherited pool and lock untouched: they belong to the parent.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections.abc import AsyncGenerator

import httpx

__all__ = [
    "KEEPALIVE_EXPIRY",
    "async_pool",
    "close_shared_pools",
    "sync_pool",
]

#: Seconds an idle keep-alive connection is kept: below common NAT and load-balancer idle
#: timeouts, so a connection they dropped without a word is never reused.
KEEPALIVE_EXPIRY = 15.0


#: The async pool's connection cap, in effect none. Not ``None``: ``httpx-aiohttp`` passes
#: ``max_connections=None`` on as aiohttp's default cap of 100, and the 101st stream then waits
#: for one of the first hundred to end (1,000 concurrent streams took six times as long).
ASYNC_MAX_CONNECTIONS = 100_000


def pool_limits(max_connections: int | None = None) -> httpx.Limits:
    """No connection cap; enough idle connections kept for 256 requests in flight."""
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=256,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


class _NoCookies(httpx.Cookies):
    """The shared pools' cookies: none, ever. A pool serves every account of the process, so a
    cookie that one key's answer sets must not ride on another key's requests (and the API's
    authentication is the key alone). Keeping none also spares each answer httpx's cookie
    parsing."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        raise TypeError("the shared ModelsLab pools keep no cookies")


_NO_COOKIES = _NoCookies()


class _KeepsNoCookies:
    """Put before an httpx client class: its cookie jar is :data:`_NO_COOKIES`."""

    @property
    def cookies(self) -> httpx.Cookies:
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: httpx._types.CookieTypes) -> None:
        raise TypeError("the shared ModelsLab pools keep no cookies")


class SharedSyncClient(_KeepsNoCookies, httpx.Client):
    """The process-wide sync pool: an ``httpx.Client`` that keeps no cookies (environment
    proxies and CAs honoured; timeouts are set per request by the ModelsLab clients)."""


class _Shared:
    """The process's pools. Replaced whole in a forked child."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sync: httpx.Client | None = None
        self.by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]
        ] = weakref.WeakKeyDictionary()


_shared = _Shared()
#: What a forked child inherited: kept (never used, never closed) so that garbage collection
#: does not shut down sockets and TLS sessions that still belong to the parent.
_inherited: list[_Shared] = []


def _forget_after_fork() -> None:
    global _shared
    _inherited.append(_shared)
    _shared = _Shared()


os.register_at_fork(after_in_child=_forget_after_fork)


def sync_pool() -> httpx.Client:
    """The process-wide sync client."""
    shared = _shared
    client = shared.sync
    if client is None:
        with shared.lock:
            if shared.sync is None:
                shared.sync = SharedSyncClient(limits=pool_limits(), timeout=None)
            client = shared.sync
    return client


async def _close_with_loop(
    shared: _Shared, loop: asyncio.AbstractEventLoop, client: httpx.AsyncClient
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        # The pool refers to its loop: drop the entry, or the loop would never be freed.
        entry = shared.by_loop.pop(loop, None)
        del loop, entry
        await client.aclose()


async def async_pool() -> httpx.AsyncClient:
    """The async client of the running event loop (created on first use there)."""
    loop = asyncio.get_running_loop()
    shared = _shared
    entry = shared.by_loop.get(loop)
    if entry is not None:
        return entry[0]
    for closed in [old for old in list(shared.by_loop) if old.is_closed()]:
        shared.by_loop.pop(closed, None)  # closed without shutting down: its guard never ran
    from ._aiohttp import SharedAsyncClient  # aiohttp is imported on the first async call

    client = SharedAsyncClient(limits=pool_limits(ASYNC_MAX_CONNECTIONS), timeout=None)
    guard = _close_with_loop(shared, loop, client)
    await guard.__anext__()  # started: the loop now tracks it and closes it at shutdown
    shared.by_loop[loop] = (client, guard)
    return client


def close_shared_pools() -> None:
    """Close the process-wide sync client (async pools close with their loops)."""
    shared = _shared
    with shared.lock:
        client, shared.sync = shared.sync, None
    if client is not None:
        client.close()


atexit.register(close_shared_pools)
