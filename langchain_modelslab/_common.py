"""What ``ChatModelsLab`` and ``ModelsLabLLM`` share: fields, checks, request bodies, lazily built
adapter clients (never pickled or copied: a copy builds its own) and LangChain's bookkeeping."""

from __future__ import annotations

import inspect
import math
import os
import sys
import warnings
from abc import abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, TypeVar

import httpx
import langchain_core
import pydantic
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LangSmithParams
from langchain_core.outputs import ChatGenerationChunk, GenerationChunk
from langchain_core.utils import secret_from_env
from langchain_core.utils.utils import get_pydantic_field_names
from pydantic import AliasChoices, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

import modelslab_core
from modelslab_core import API_KEY_ENV, ConfigurationError, check_params
from modelslab_core._cache import ClientCache
from modelslab_core.client import AsyncModelsLabClientBase, ModelsLabClientBase
from modelslab_core.config import (
    ClientConfig,
    ClientSettings,
    check_extra_fields,
    merge_aliases,
    repr_args,
)
from modelslab_core.structured import request_body
from modelslab_core.validation import check_numbers

from ._convert import PROVIDER
from ._errors import translated_errors

#: Left out of the repr: secrets, clients, and what the model id already says.
_NOT_SHOWN = frozenset(
    {"model", "api_key", "http_client", "http_async_client", "default_headers", "profile"}
)

# Call-time keyword arguments that are LangChain's business, never the API's.
_LANGCHAIN_KWARGS = ("ls_structured_output_format", "stream")

#: The type of a model's ``model`` field: its id, also read from ``model_id`` and ``model_name``
#: (as ``ChatOpenAI`` and ``ChatAnthropic`` name it).
ModelId = Annotated[
    str,
    Field(alias="model_id", validation_alias=AliasChoices("model", "model_id", "model_name")),
]

W = TypeVar("W")
F = TypeVar("F", bound=Callable[..., Any])
G = TypeVar("G", GenerationChunk, ChatGenerationChunk)


def signature_once(func: F) -> F:
    """LangChain reads the signature of ``_generate`` and ``_agenerate`` on every call (to see
    whether they take ``run_manager``): it is computed once, here, and read from
    ``__signature__`` (a subclass's own override is inspected as usual)."""
    setattr(func, "__signature__", inspect.signature(func))  # noqa: B010 - a function attribute
    return func


def relay(
    chunks: Iterable[W],
    convert: Callable[[W], G | None],
    run_manager: CallbackManagerForLLMRun | None,
) -> Iterator[G]:
    """Wire chunks → the generation chunks that carry something, each reported as a new token."""
    for chunk in chunks:
        generation = convert(chunk)
        if generation is None:
            continue
        if run_manager is not None:
            run_manager.on_llm_new_token(generation.text, chunk=generation)
        yield generation


async def arelay(
    chunks: AsyncIterable[W],
    convert: Callable[[W], G | None],
    run_manager: AsyncCallbackManagerForLLMRun | None,
) -> AsyncIterator[G]:
    """Async twin of :func:`relay`."""
    async for chunk in chunks:
        generation = convert(chunk)
        if generation is None:
            continue
        if run_manager is not None:
            await run_manager.on_llm_new_token(generation.text, chunk=generation)
        yield generation


#: Frames from these packages sit between a user's ``ChatModelsLab(...)`` and our validator.
_LIBRARY_DIRS = tuple(
    str(Path(path).parent) + os.sep
    for path in (pydantic.__file__, langchain_core.__file__, modelslab_core.__file__, __file__)
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


class ModelsLabFields(ClientSettings):
    """The shared fields (the client settings come from
    :class:`modelslab_core.config.ClientSettings`). A subclass names its model default, base URL
    (default and environment variable), adapter clients and sampling fields (``_sampling``)."""

    # ClientSettings' config adds defer_build (validators built with the first model, not at
    # import) and hide_input_in_errors.
    model_config = ConfigDict(populate_by_name=True, arbitrary_types_allowed=True)

    model: str
    api_key: SecretStr | None = Field(default_factory=secret_from_env(API_KEY_ENV, default=None))
    """ModelsLab API key; defaults to ``MODELSLAB_API_KEY``."""
    base_url: str | None = None
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
    http_client: httpx.Client | None = Field(default=None, exclude=True)
    """Your ``httpx.Client`` for the sync paths (proxies, certificates, a mock transport)."""
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)
    """Your ``httpx.AsyncClient`` for the async paths."""

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
    _ls_model_type: ClassVar[Literal["chat", "llm"]]

    if TYPE_CHECKING:  # langchain-core's, from each model's LangChain base
        custom_get_token_ids: Callable[[str], list[int]] | None

        def get_token_ids(self, text: str) -> list[int]: ...

    @model_validator(mode="before")
    @classmethod
    def _collect_model_kwargs(cls, values: Any) -> Any:
        """Arguments that are no field (name, alias or alias choice) go to ``model_kwargs``, as
        ChatOpenAI does."""
        if not isinstance(values, dict):
            return values
        values = merge_aliases(values)
        check_numbers(values)  # before pydantic turns True into 1 (NaN is checked after too)
        known = get_pydantic_field_names(cls)
        for info in cls.model_fields.values():
            if isinstance(info.validation_alias, AliasChoices):
                known.update(c for c in info.validation_alias.choices if isinstance(c, str))
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

    @model_validator(mode="after")
    def _check_settings(self) -> Self:
        check_params({name: getattr(self, name) for name in self._sampling} | {"stop": self.stop})
        sent = {"model", "stop", *self._sampling}  # the fields that go into a request body
        check_extra_fields(self.model_kwargs, sent, "model_kwargs")
        check_extra_fields(self.extra_body, sent, "extra_body")
        if not self.model:
            raise ConfigurationError("model must be a non-empty model id")
        # Every setting is resolved and checked now: a missing key or a bad value fails here.
        self.base_url = self._config().base_url
        return self

    def _cache(self) -> ClientCache:
        """``self._clients``, read where pydantic keeps it: pydantic finds a private attribute
        only after a failed normal lookup (~2 us), and every call needs it twice."""
        private = self.__pydantic_private__
        assert private is not None
        cache: ClientCache = private["_clients"]
        return cache

    def _config(self) -> ClientConfig:
        """The model's one settings object (built again only when a field changed); its clients
        are cached by it."""
        return self._cache().config(
            self,
            self.api_key,
            self.base_url,
            default_base_url=self._default_base_url,
            base_url_env=self._base_url_env,
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return repr_args(self, _NOT_SHOWN)

    @abstractmethod
    def _client(self) -> ModelsLabClientBase: ...

    @abstractmethod
    def _async_client(self) -> AsyncModelsLabClientBase: ...

    def list_models(self) -> list[str]:
        """The ids of the models the API serves."""
        with translated_errors():
            return [m.id for m in self._client().list_models().data]

    async def alist_models(self) -> list[str]:
        """Async twin of :meth:`list_models`."""
        with translated_errors():
            return [m.id for m in (await self._async_client().list_models()).data]

    def get_num_tokens(self, text: str) -> int:
        """An offline estimate of the tokens in ``text``, about four characters a token (ModelsLab
        publishes no tokenizer; nothing is downloaded). ``custom_get_token_ids`` overrides it."""
        if self.custom_get_token_ids is not None:
            return len(self.get_token_ids(text))
        return math.ceil(len(text) / 4)

    # --- LangChain's bookkeeping --------------------------------------------------------------

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": API_KEY_ENV}

    @property
    def _default_params(self) -> dict[str, Any]:
        params = {k: v for k in self._sampling if (v := getattr(self, k)) is not None}
        if self.stop:
            params["stop"] = self.stop
        return {"model": self.model, **params, **self.model_kwargs, **(self.extra_body or {})}

    def _body(self, stop: list[str] | None, stream: bool, kwargs: dict[str, Any]) -> dict[str, Any]:
        """A request body: the model's fields, then the call's arguments (LangChain's own left out);
        ``stop`` from the call wins."""
        kwargs = {k: v for k, v in kwargs.items() if k not in _LANGCHAIN_KWARGS}
        stream_usage = kwargs.pop("stream_usage", self.stream_usage)
        if stop is not None:
            kwargs["stop"] = stop
        return request_body(self._default_params, kwargs, stream=stream, stream_usage=stream_usage)

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
