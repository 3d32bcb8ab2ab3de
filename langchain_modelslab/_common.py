"""What ``ChatModelsLab`` and ``ModelsLabLLM`` share: their fields and checks
(:class:`ModelsLabFields`) and their lazily built adapter clients.

Clients are cheap (they share the adapter's connection pools), so each model builds its sync and
async client on first use and rebuilds them when a connection setting changes. The cache is never
pickled, copied or serialized: a copy starts empty and builds its own.
"""

from __future__ import annotations

import math
import os
import sys
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, TypeVar

import httpx
import langchain_core
import pydantic
from langchain_core.language_models import LangSmithParams
from langchain_core.utils import secret_from_env
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from modelslab_core import (
    API_KEY_ENV,
    AsyncModelsLabClient,
    MissingAPIKeyError,
    ModelsLabClient,
    check_params,
)
from modelslab_core.config import ClientConfig, KeyPlacement

from ._convert import PROVIDER

__all__ = [
    "ClientCache",
    "ClientSettings",
    "ModelsLabFields",
    "approximate_tokens",
    "move_unknown_to_model_kwargs",
]

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


def approximate_tokens(text: str) -> int:
    """About four characters a token: langchain-core's approximate counter, for plain text."""
    return math.ceil(len(text) / 4)


def _field_names(cls: type[Any]) -> set[str]:
    """Every name a constructor argument may use for a field: its name, alias and alias choices."""
    known = set()
    for name, info in cls.model_fields.items():
        known.add(name)
        if info.alias:
            known.add(info.alias)
        if isinstance(info.validation_alias, str):
            known.add(info.validation_alias)
        elif isinstance(info.validation_alias, AliasChoices):
            known.update(c for c in info.validation_alias.choices if isinstance(c, str))
    return known


#: Frames from these packages sit between a user's ``ChatModelsLab(...)`` and our validator.
_LIBRARY_DIRS = tuple(
    str(Path(module.__file__).parent) + os.sep
    for module in (pydantic, langchain_core, sys.modules[__name__.rpartition(".")[0]])
    if module.__file__
)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning point at the first frame outside pydantic,
    langchain-core and this package: the user's line that built the model."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_LIBRARY_DIRS):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def move_unknown_to_model_kwargs(cls: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments that are no field go to ``model_kwargs`` (as ChatOpenAI does)."""
    known = _field_names(cls)
    if isinstance(values.get("api_key"), str):  # never shown in an error's input_value
        values["api_key"] = SecretStr(values["api_key"])
    extra = dict(values.get("model_kwargs") or {})
    for name in [k for k in values if k not in known]:
        warnings.warn(
            f"{name!r} is not a default parameter of {cls.__name__}; it is sent as a "
            "model_kwargs entry.",
            stacklevel=_caller_stacklevel(),
        )
        extra[name] = values.pop(name)
    if extra:
        values["model_kwargs"] = extra
    return values


class ModelsLabFields(BaseModel):
    """What ``ChatModelsLab`` and ``ModelsLabLLM`` share: the connection settings, the sampling
    parameters, their checks, the lazily built adapter clients and LangChain's bookkeeping.

    A subclass names its model default, its base URL (default and environment variable), its
    adapter client classes and the sampling fields it sends (``_sampling``).
    """

    # defer_build: the validators are built when the first model is made, not at import
    # (import time is measured against langchain-core's own chat model module).
    model_config = ConfigDict(
        populate_by_name=True,
        arbitrary_types_allowed=True,
        hide_input_in_errors=True,
        defer_build=True,
    )

    model: str
    api_key: SecretStr | None = Field(default_factory=secret_from_env(API_KEY_ENV, default=None))
    """ModelsLab API key; defaults to ``MODELSLAB_API_KEY``."""
    base_url: str | None = None
    timeout: float | None = Field(
        default=None, validation_alias=AliasChoices("timeout", "request_timeout")
    )
    """Seconds to wait for an answer (the adapter's default when None; alias
    ``request_timeout``, as ``ChatOpenAI`` names it)."""
    max_retries: int | None = None
    """Retries after rate limits, server errors and dropped connections."""
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: list[str] | str | None = None
    seed: int | None = None
    streaming: bool = False
    """Stream the answer even when ``invoke`` is called."""
    stream_usage: bool = True
    """Ask for token usage in streams (``stream_options.include_usage``)."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other request fields, sent as they are."""
    extra_body: dict[str, Any] | None = None
    """More request fields, merged into the JSON body last."""
    default_headers: dict[str, str] | None = None
    key_in_body: bool = False
    """Send the key as a ``key`` field in the JSON body (legacy ModelsLab style)."""
    max_in_flight: int | None = None
    """At most this many requests of this model open at once (ModelsLab queues 5, 10 or 15 per
    account, by plan); a stream holds its place until it ends. ``None``: no cap."""
    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """An ``httpx.Client`` for the sync paths (tests); default: the adapter's shared pool."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """An ``httpx.AsyncClient`` for the async paths (tests); default: shared per-loop pools."""

    _clients: ClientCache = PrivateAttr(default_factory=ClientCache)

    _sampling: ClassVar[tuple[str, ...]] = (
        "temperature",
        "max_tokens",
        "top_p",
        "top_k",
        "frequency_penalty",
        "presence_penalty",
        "seed",
    )
    _default_base_url: ClassVar[str]
    _base_url_env: ClassVar[str]
    _sync_client_class: ClassVar[type[ModelsLabClient]]
    _async_client_class: ClassVar[type[AsyncModelsLabClient]]
    _ls_model_type: ClassVar[Literal["chat", "llm"]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().__init__(*args, **kwargs)
        except ValidationError as exc:
            # A missing key is raised as the documented MissingAPIKeyError (pydantic would wrap
            # it, as a ValueError, in a ValidationError that nobody is told to catch).
            for error in exc.errors():
                cause = (error.get("ctx") or {}).get("error")
                if isinstance(cause, MissingAPIKeyError):
                    raise cause from None
            raise

    @model_validator(mode="before")
    @classmethod
    def _collect_model_kwargs(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return move_unknown_to_model_kwargs(cls, values)
        return values

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        check_params({name: getattr(self, name) for name in self._sampling} | {"stop": self.stop})
        if not self.model:
            raise ValueError("model must be a non-empty model id")
        settings = self._settings()
        self.base_url = check_connection(settings, self._default_base_url, self._base_url_env)
        return self

    def _settings(self) -> ClientSettings:
        return ClientSettings(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=self.default_headers,
            key_in_body=self.key_in_body,
            max_in_flight=self.max_in_flight,
        )

    def _client(self) -> ModelsLabClient:
        return self._clients.sync(self._sync_client_class, self._settings(), self.http_client)

    def _async_client(self) -> AsyncModelsLabClient:
        return self._clients.async_(
            self._async_client_class, self._settings(), self.http_async_client
        )

    # --- LangChain's bookkeeping --------------------------------------------------------------

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": API_KEY_ENV}

    @property
    def _default_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in self._sampling}
        params = {k: v for k, v in params.items() if v is not None}
        if self.stop:
            params["stop"] = self.stop
        return {"model": self.model, **params, **self.model_kwargs, **(self.extra_body or {})}

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"base_url": self.base_url, **self._default_params}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = {**self._default_params, **kwargs}
        ls_params = LangSmithParams(
            ls_provider=PROVIDER,
            ls_model_name=str(params["model"]),
            ls_model_type=self._ls_model_type,
        )
        if isinstance(params.get("temperature"), int | float):
            ls_params["ls_temperature"] = params["temperature"]
        if isinstance(params.get("max_tokens"), int):
            ls_params["ls_max_tokens"] = params["max_tokens"]
        stops = stop or params.get("stop")
        if stops:
            ls_params["ls_stop"] = [stops] if isinstance(stops, str) else list(stops)
        return ls_params
