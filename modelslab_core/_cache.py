"""A model's adapter clients, built on first use and rebuilt when its settings (one
:class:`~modelslab_core.config.ClientConfig`) or its own httpx client change.

Both frameworks' models keep one; clients are cheap (they share the process's pools). The cache
is never pickled, copied or serialized: a copy starts empty and builds its own.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from .client import AsyncModelsLabClientBase, ModelsLabClientBase
from .config import ClientConfig

__all__ = ["ClientCache"]

C = TypeVar("C", bound=ModelsLabClientBase | AsyncModelsLabClientBase)

#: Clients are built rarely: one lock for every model is enough.
_BUILD_LOCK = threading.Lock()


class ClientCache:
    """One client of each class (chat or completions, sync or async) per model instance."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[type, tuple[Any, ClientConfig, Any]] = {}

    def get(self, cls: type[C], config: ClientConfig, http_client: Any) -> C:
        """The model's client of class ``cls``, built anew when ``config`` or ``http_client``
        changed since the last one."""
        entry = self._entries.get(cls)
        if entry is None or entry[1] != config or entry[2] is not http_client:
            # Threads making a model's first calls at once share one client: built under a
            # lock, checked again inside it.
            with _BUILD_LOCK:
                entry = self._entries.get(cls)
                if entry is None or entry[1] != config or entry[2] is not http_client:
                    built = cls(config=config, http_client=http_client)
                    entry = self._entries[cls] = (built, config, http_client)
        client: C = entry[0]
        return client

    # A copy or an unpickled model starts with no clients and builds its own.
    def __reduce__(self) -> tuple[Any, ...]:
        return (ClientCache, ())

    def __copy__(self) -> ClientCache:
        return ClientCache()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientCache:
        return ClientCache()
