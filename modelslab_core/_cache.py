"""A model's sync and async adapter clients, built on first use and rebuilt when its settings
(one :class:`~modelslab_core.config.ClientConfig`) or its own httpx client change.

Both frameworks' models keep one; clients are cheap (they share the process's pools). The cache
is never pickled, copied or serialized: a copy starts empty and builds its own.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

import httpx

from .client import AsyncModelsLabClientBase, ModelsLabClientBase
from .config import ClientConfig

__all__ = ["ClientCache"]

S = TypeVar("S", bound=ModelsLabClientBase)
A = TypeVar("A", bound=AsyncModelsLabClientBase)

#: Clients are built rarely: one lock for every model is enough.
_BUILD_LOCK = threading.Lock()


class ClientCache:
    """One sync and one async client per model instance."""

    __slots__ = ("_async", "_sync")

    def __init__(self) -> None:
        self._sync: tuple[ModelsLabClientBase, ClientConfig, httpx.Client | None] | None = None
        self._async: (
            tuple[AsyncModelsLabClientBase, ClientConfig, httpx.AsyncClient | None] | None
        ) = None

    def sync(self, cls: type[S], config: ClientConfig, http_client: httpx.Client | None) -> S:
        entry = self._sync
        if not _fits(entry, cls, config, http_client):
            # Threads making a model's first calls at once share one client: built under a
            # lock, checked again inside it.
            with _BUILD_LOCK:
                entry = self._sync
                if not _fits(entry, cls, config, http_client):
                    entry = self._sync = (
                        cls(config=config, http_client=http_client),
                        config,
                        http_client,
                    )
        assert entry is not None
        return entry[0]  # type: ignore[return-value]

    def async_(
        self, cls: type[A], config: ClientConfig, http_client: httpx.AsyncClient | None
    ) -> A:
        entry = self._async
        if not _fits(entry, cls, config, http_client):
            with _BUILD_LOCK:
                entry = self._async
                if not _fits(entry, cls, config, http_client):
                    entry = self._async = (
                        cls(config=config, http_client=http_client),
                        config,
                        http_client,
                    )
        assert entry is not None
        return entry[0]  # type: ignore[return-value]

    # A copy or an unpickled model starts with no clients and builds its own.
    def __reduce__(self) -> tuple[Any, ...]:
        return (ClientCache, ())

    def __copy__(self) -> ClientCache:
        return ClientCache()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientCache:
        return ClientCache()


def _fits(
    entry: tuple[Any, ClientConfig, Any] | None, cls: type, config: ClientConfig, http: Any
) -> bool:
    return entry is not None and type(entry[0]) is cls and entry[2] is http and entry[1] == config
