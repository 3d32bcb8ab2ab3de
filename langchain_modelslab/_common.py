"""What ``ChatModelsLab`` and ``ModelsLabLLM`` share: their lazily built adapter clients.

Clients are cheap (they share the adapter's connection pools), so each model builds its sync and
async client on first use and rebuilds them when a connection setting changes. The cache is never
pickled, copied or serialized: a copy starts empty and builds its own.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx
from pydantic import SecretStr

from modelslab_core import (
    AsyncModelsLabClient,
    ModelsLabClient,
)
from modelslab_core.config import ClientConfig, KeyPlacement

__all__ = ["ClientCache", "ClientSettings"]

S = TypeVar("S", bound=ModelsLabClient)
A = TypeVar("A", bound=AsyncModelsLabClient)


class ClientSettings:
    """The connection settings of a model, comparable so a changed setting rebuilds clients."""

    __slots__ = ("_key",)

    def __init__(
        self,
        *,
        api_key: SecretStr | None,
        base_url: str | None,
        timeout: float | None,
        max_retries: int | None,
        default_headers: Mapping[str, str] | None,
        key_in_body: bool,
        max_in_flight: int | None = None,
    ) -> None:
        self._key = (
            api_key.get_secret_value() if api_key is not None else None,
            base_url,
            timeout,
            max_retries,
            tuple(sorted((default_headers or {}).items())),
            key_in_body,
            max_in_flight,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClientSettings) and other._key == self._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __repr__(self) -> str:  # never shows the key
        return "ClientSettings(...)"

    def kwargs(self) -> dict[str, Any]:
        api_key, base_url, timeout, max_retries, headers, key_in_body, max_in_flight = self._key
        placement: KeyPlacement = "body" if key_in_body else "bearer"
        return {
            "api_key": api_key,
            "base_url": base_url,
            "timeout": timeout,
            "max_retries": max_retries,
            "default_headers": dict(headers),
            "key_placement": placement,
            "max_in_flight": max_in_flight,
        }


#: Clients are built rarely: one lock for every model is enough.
_BUILD_LOCK = threading.Lock()


class ClientCache:
    """One sync and one async client per model instance, rebuilt when the settings change."""

    __slots__ = ("_async", "_async_settings", "_sync", "_sync_settings")

    def __init__(self) -> None:
        self._sync: ModelsLabClient | None = None
        self._sync_settings: ClientSettings | None = None
        self._async: AsyncModelsLabClient | None = None
        self._async_settings: ClientSettings | None = None

    def sync(self, cls: type[S], settings: ClientSettings, http_client: httpx.Client | None) -> S:
        if not isinstance(self._sync, cls) or self._sync_settings != settings:
            # Threads making a model's first calls at once must share one client (and so one
            # max_in_flight cap): built under a lock, checked again inside it.
            with _BUILD_LOCK:
                if not isinstance(self._sync, cls) or self._sync_settings != settings:
                    self._sync = cls(**settings.kwargs(), http_client=http_client)
                    self._sync_settings = settings
        return self._sync

    def async_(
        self, cls: type[A], settings: ClientSettings, http_client: httpx.AsyncClient | None
    ) -> A:
        if not isinstance(self._async, cls) or self._async_settings != settings:
            with _BUILD_LOCK:
                if not isinstance(self._async, cls) or self._async_settings != settings:
                    self._async = cls(**settings.kwargs(), http_client=http_client)
                    self._async_settings = settings
        return self._async

    # A copy or an unpickled model starts with no clients and builds its own.
    def __reduce__(self) -> tuple[Any, ...]:
        return (ClientCache, ())

    def __copy__(self) -> ClientCache:
        return ClientCache()

    def __deepcopy__(self, memo: dict[int, Any]) -> ClientCache:
        return ClientCache()


def check_connection(settings: ClientSettings, default_base_url: str, base_url_env: str) -> str:
    """Resolve and check the key and base URL now (a missing key fails at construction);
    returns the resolved base URL."""
    options = settings.kwargs()
    config = ClientConfig.build(
        options["api_key"],
        options["base_url"],
        timeout=options["timeout"],
        max_retries=options["max_retries"],
        key_placement=options["key_placement"],
        max_in_flight=options["max_in_flight"],
        default_base_url=default_base_url,
        base_url_env=base_url_env,
    )
    return config.base_url
