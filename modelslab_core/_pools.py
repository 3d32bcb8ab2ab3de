"""Shared connection pools: one ``httpx.Client`` per process, one ``httpx.AsyncClient`` per event
loop, reused by every ModelsLab client that was not handed its own ``http_client``.

An async pool must never cross event loops (its connections belong to the loop that opened them:
the "Event loop is closed" failure of other integrations), so async pools are kept per loop.
Each one is closed when its loop shuts down: a started async generator registered with the loop
(``loop.shutdown_asyncgens()``, run by ``asyncio.run`` and ``asyncio.Runner``) closes it.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections.abc import AsyncGenerator

import httpx

__all__ = ["POOL_LIMITS", "async_pool", "close_shared_pools", "sync_pool"]

#: Enough keep-alive connections for 64 requests in flight without reconnecting.
POOL_LIMITS = httpx.Limits(max_connections=512, max_keepalive_connections=256, keepalive_expiry=30)

_lock = threading.Lock()
_sync: httpx.Client | None = None
_async: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, tuple[httpx.AsyncClient, AsyncGenerator[None, None]]
] = weakref.WeakKeyDictionary()


#: ``MODELSLAB_SYNC_TRANSPORT=httpx`` keeps httpx's own sync transport instead of http.client.
SYNC_TRANSPORT_ENV = "MODELSLAB_SYNC_TRANSPORT"


def _sync_transport() -> httpx.BaseTransport | None:
    """http.client's keep-alive connections (half the per-call cost of httpx's default: see
    ``_sync_transport``). httpx still routes proxied URLs (``HTTP(S)_PROXY``) through its own."""
    if os.environ.get(SYNC_TRANSPORT_ENV, "").lower() == "httpx":
        return None
    from ._sync_transport import HTTPClientTransport

    return HTTPClientTransport(max_keepalive=POOL_LIMITS.max_keepalive_connections or 64)


def sync_pool() -> httpx.Client:
    """The process-wide pool for sync clients."""
    global _sync
    pool = _sync
    if pool is None or pool.is_closed:
        with _lock:
            if _sync is None or _sync.is_closed:
                _sync = httpx.Client(
                    limits=POOL_LIMITS, follow_redirects=True, transport=_sync_transport()
                )
            pool = _sync
    return pool


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await client.aclose()


#: ``MODELSLAB_ASYNC_TRANSPORT=httpx`` keeps httpx's own async pool instead of aiohttp's.
ASYNC_TRANSPORT_ENV = "MODELSLAB_ASYNC_TRANSPORT"


def _async_transport() -> httpx.AsyncBaseTransport | None:
    """aiohttp's pool when aiohttp is installed (it holds up with many requests in flight where
    httpx's slows down: see ``_aiohttp_transport``), else httpx's default."""
    if os.environ.get(ASYNC_TRANSPORT_ENV, "").lower() == "httpx":
        return None
    try:
        from ._aiohttp_transport import AiohttpTransport
    except ImportError:
        return None
    return AiohttpTransport(POOL_LIMITS)


async def async_pool() -> httpx.AsyncClient:
    """The pool of the running event loop (created on first use there)."""
    loop = asyncio.get_running_loop()
    entry = _async.get(loop)
    if entry is not None and not entry[0].is_closed:
        return entry[0]
    client = httpx.AsyncClient(
        limits=POOL_LIMITS, follow_redirects=True, transport=_async_transport()
    )
    guard = _close_with_loop(client)
    await guard.__anext__()  # started: the loop now tracks it and closes it at shutdown
    _async[loop] = (client, guard)
    return client


def close_shared_pools() -> None:
    """Close the process-wide sync pool (async pools close with their loops)."""
    global _sync
    with _lock:
        if _sync is not None:
            _sync.close()
            _sync = None


atexit.register(close_shared_pools)
