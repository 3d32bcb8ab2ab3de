"""``ModelsLabLLM``: ModelsLab's text completions API as a LangChain LLM.

Default base ``https://modelslab.com/api/v6`` (``MODELSLAB_COMPLETIONS_BASE_URL`` overrides it);
``base_url="uncensored"`` selects the uncensored endpoint. Like the chat model it holds no HTTP:
it builds :class:`modelslab_core.CompletionRequest` objects and calls the adapter's clients.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, Self

import httpx
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM, LangSmithParams
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from langchain_core.utils import from_env, secret_from_env
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from modelslab_core import (
    API_KEY_ENV,
    COMPLETIONS_BASE_URL,
    COMPLETIONS_BASE_URL_ENV,
    AsyncModelsLabCompletionsClient,
    CompletionRequest,
    ModelsLabCompletionsClient,
    check_params,
)

from ._common import ClientCache, ClientSettings, check_connection
from ._convert import (
    PROVIDER,
    completion_chunk_to_generation,
    completion_to_generations,
    llm_output,
)
from ._errors import translated_errors
from .chat_models import move_unknown_to_model_kwargs

__all__ = ["DEFAULT_COMPLETION_MODEL", "ModelsLabLLM"]

DEFAULT_COMPLETION_MODEL = "ModelsLab/Llama-3.1-8b-Uncensored-Dare"

_SAMPLING = (
    "temperature",
    "max_tokens",
    "top_p",
    "top_k",
    "frequency_penalty",
    "presence_penalty",
    "seed",
)


class ModelsLabLLM(BaseLLM):
    """ModelsLab's text completions (``/api/v6/completions``, or the uncensored endpoint).

    Example:
        .. code-block:: python

            from langchain_modelslab import ModelsLabLLM

            llm = ModelsLabLLM(max_tokens=64)
            llm.invoke("Once upon a time")
    """

    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, hide_input_in_errors=True
    )

    model: str = Field(default=DEFAULT_COMPLETION_MODEL, alias="model_id")
    api_key: SecretStr | None = Field(default_factory=secret_from_env(API_KEY_ENV, default=None))
    base_url: str | None = Field(default_factory=from_env(COMPLETIONS_BASE_URL_ENV, default=None))
    """Completions base URL (``.../api/v6``) or a named one (``completions``, ``uncensored``)."""
    timeout: float | None = None
    max_retries: int | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    top_k: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    stop: list[str] | str | None = None
    seed: int | None = None
    streaming: bool = False
    """Stream even when ``invoke`` is called."""
    stream_usage: bool = True
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    extra_body: dict[str, Any] | None = None
    default_headers: dict[str, str] | None = None
    key_in_body: bool = False
    max_in_flight: int | None = None
    """At most this many requests of this model open at once (ModelsLab queues 5, 10 or 15 per
    account, by plan); a stream holds its place until it ends. ``None``: no cap."""
    http_client: httpx.Client | None = Field(default=None, exclude=True)
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True)

    _clients: ClientCache = PrivateAttr(default_factory=ClientCache)

    @model_validator(mode="before")
    @classmethod
    def _collect_model_kwargs(cls, values: Any) -> Any:
        if isinstance(values, dict):
            return move_unknown_to_model_kwargs(cls, values)
        return values

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_params({name: getattr(self, name) for name in _SAMPLING} | {"stop": self.stop})
        settings = self._settings()
        self.base_url = check_connection(settings, COMPLETIONS_BASE_URL, COMPLETIONS_BASE_URL_ENV)
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

    def _client(self) -> ModelsLabCompletionsClient:
        return self._clients.sync(ModelsLabCompletionsClient, self._settings(), self.http_client)

    def _async_client(self) -> AsyncModelsLabCompletionsClient:
        return self._clients.async_(
            AsyncModelsLabCompletionsClient, self._settings(), self.http_async_client
        )

    @property
    def _llm_type(self) -> str:
        return "modelslab-completions"

    @classmethod
    def is_lc_serializable(cls) -> bool:
        return True

    @classmethod
    def get_lc_namespace(cls) -> list[str]:
        return ["langchain_modelslab", "llms"]

    @property
    def lc_secrets(self) -> dict[str, str]:
        return {"api_key": API_KEY_ENV}

    @property
    def _default_params(self) -> dict[str, Any]:
        params = {name: getattr(self, name) for name in _SAMPLING}
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
            ls_provider=PROVIDER, ls_model_name=str(params["model"]), ls_model_type="llm"
        )
        if isinstance(params.get("temperature"), int | float):
            ls_params["ls_temperature"] = params["temperature"]
        if isinstance(params.get("max_tokens"), int):
            ls_params["ls_max_tokens"] = params["max_tokens"]
        stops = stop or params.get("stop")
        if stops:
            ls_params["ls_stop"] = [stops] if isinstance(stops, str) else list(stops)
        return ls_params

    def _request(
        self, prompt: str, stop: list[str] | None, *, stream: bool, **kwargs: Any
    ) -> CompletionRequest:
        stream_usage = kwargs.pop("stream_usage", self.stream_usage)
        kwargs.pop("stream", None)
        body = {**self._default_params, **kwargs, "prompt": prompt}
        if stop is not None:
            body["stop"] = stop
        if not body.get("stop"):
            body.pop("stop", None)
        if stream and stream_usage and "stream_options" not in body:
            body["stream_options"] = {"include_usage": True}
        return CompletionRequest.model_validate(body)

    # --- the four paths -----------------------------------------------------------------------

    def _generate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        generations: list[list[Generation]] = []
        for prompt in prompts:
            if self.streaming:
                generations.append([_merge(self._stream(prompt, stop, run_manager, **kwargs))])
                continue
            with translated_errors():
                request = self._request(prompt, stop, stream=False, **kwargs)
                completion = self._client().complete(request)
            generations.append(completion_to_generations(completion, model=request.model))
        return LLMResult(generations=generations, llm_output=llm_output(generations, self.model))

    async def _agenerate(
        self,
        prompts: list[str],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> LLMResult:
        generations: list[list[Generation]] = []
        for prompt in prompts:
            if self.streaming:
                chunks = [c async for c in self._astream(prompt, stop, run_manager, **kwargs)]
                generations.append([_merge(iter(chunks))])
                continue
            with translated_errors():
                request = self._request(prompt, stop, stream=False, **kwargs)
                completion = await self._async_client().complete(request)
            generations.append(completion_to_generations(completion, model=request.model))
        return LLMResult(generations=generations, llm_output=llm_output(generations, self.model))

    def _stream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[GenerationChunk]:
        with translated_errors():
            request = self._request(prompt, stop, stream=True, **kwargs)
            with self._client().complete_stream(request) as stream:
                for chunk in stream:
                    generation = completion_chunk_to_generation(chunk, model=request.model)
                    if generation is None:
                        continue
                    if run_manager is not None:
                        run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        with translated_errors():
            request = self._request(prompt, stop, stream=True, **kwargs)
            async with await self._async_client().complete_stream(request) as stream:
                async for chunk in stream:
                    generation = completion_chunk_to_generation(chunk, model=request.model)
                    if generation is None:
                        continue
                    if run_manager is not None:
                        await run_manager.on_llm_new_token(generation.text, chunk=generation)
                    yield generation


def _merge(chunks: Iterator[GenerationChunk]) -> Generation:
    merged: GenerationChunk | None = None
    for chunk in chunks:
        merged = chunk if merged is None else merged + chunk
    if merged is None:
        return Generation(text="")
    return Generation(text=merged.text, generation_info=merged.generation_info)
