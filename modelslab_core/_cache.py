"""A model's settings and adapter clients: its :class:`~modelslab_core.config.ClientConfig`
built once and again only when a field changed, and its clients built on first use and rebuilt
when that config or its own httpx client change.

Both frameworks' models keep one; clients are cheap (they share the process's pools). The cache
is never pickled, copied or serialized: a copy starts empty and builds its own (``__reduce__``,
which copy and deepcopy use too).
"""

from __future__ import annotations

import threading
from operator import attrgetter
from typing import Any, TypeVar

from pydantic import SecretStr

from .client import AsyncModelsLabClientBase, ModelsLabClientBase
from .config import ClientConfig, ClientSettings

__all__ = ["ClientCache"]

C = TypeVar("C", bound=ModelsLabClientBase | AsyncModelsLabClientBase)

#: Clients are built rarely: one lock for every model is enough.
_BUILD_LOCK = threading.Lock()

#: Every setting of a model in one C-level call (read on every call of the model).
_settings_of = attrgetter(*ClientSettings.model_fields)


def _same(old: ClientConfig, new: ClientConfig) -> bool:
    return old is new or old == new  # the model hands back its cached config: mostly the first


def _frozen(value: Any) -> Any:
    return tuple(value.items()) if isinstance(value, dict) else value


class ClientCache:
    """One client of each class (chat or completions, sync or async) per model instance."""

    __slots__ = ("_config", "_entries")

    def __init__(self) -> None:
        self._entries: dict[type, tuple[Any, ClientConfig, Any]] = {}
        self._config: tuple[tuple[Any, ...], ClientConfig] | None = None

    def config(
        self,
        model: ClientSettings,
        api_key: SecretStr | str | None,
        base_url: str | None,
        *,
        default_base_url: str,
        base_url_env: str,
    ) -> ClientConfig:
        """The model's :class:`ClientConfig`, built (resolved and checked) once and again only
        when the key, the base URL or a setting changed since: the frameworks' models are
        mutable (``llm.timeout = 5`` takes effect at the next call)."""
        secret = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        # Headers as items: a dict changed in place must not compare equal to its old self.
        key = (secret, base_url, *[_frozen(value) for value in _settings_of(model)])
        cached = self._config
        if cached is not None and cached[0] == key:
            return cached[1]
        settings = model.client_settings()
        config = ClientConfig.build(
            api_key,
            base_url,
            default_base_url=default_base_url,
            base_url_env=base_url_env,
            **settings,
        )
        self._config = (key, config)
        return config

    def get(self, cls: type[C], config: ClientConfig, http_client: Any) -> C:
        """The model's client of class ``cls``, built anew when ``config`` or ``http_client``
        changed since the last one."""
        entry = self._entries.get(cls)
        if entry is None or not _same(entry[1], config) or entry[2] is not http_client:
            # Threads making a model's first calls at once share one client: built under a
            # lock, checked again inside it.
            with _BUILD_LOCK:
                entry = self._entries.get(cls)
                if entry is None or not _same(entry[1], config) or entry[2] is not http_client:
                    built = cls(config=config, http_client=http_client)
                    entry = self._entries[cls] = (built, config, http_client)
        client: C = entry[0]
        return client

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClientCache, ())
