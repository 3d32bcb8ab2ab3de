"""``ModelsLabLLM``: ModelsLab's text completions API as a LangChain LLM (no HTTP here: it builds
:class:`modelslab_core.CompletionRequest` objects and calls the adapter's clients)."""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Iterable, Iterator
from functools import partial, reduce
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

from modelslab_core import (
    COMPLETIONS_BASE_URL,
    COMPLETIONS_BASE_URL_ENV,
    AsyncModelsLabCompletionsClient,
    CompletionRequest,
    ModelsLabCompletionsClient,
)

from ._common import ModelId, ModelsLabFields, arelay, relay, signature_once
from ._convert import completion_chunk_to_generation, completion_to_generations, llm_output
from ._errors import translated_errors

__all__ = ["DEFAULT_COMPLETION_MODEL", "ModelsLabLLM"]

DEFAULT_COMPLETION_MODEL = "ModelsLab/Llama-3.1-8b-Uncensored-Dare"


class ModelsLabLLM(ModelsLabFields, BaseLLM):
    """ModelsLab's text completions (``/api/v6/completions``, or the uncensored endpoint).

    Example:
        ```python
        from langchain_modelslab import ModelsLabLLM

        llm = ModelsLabLLM(max_tokens=64)
        llm.invoke("Once upon a time")
        ```
    """

    model: ModelId = DEFAULT_COMPLETION_MODEL
    """Model id (aliases ``model_id`` and ``model_name``)."""
    base_url: str | None = None
    """Completions base URL (``.../api/v6``) or a named one (``completions``, ``uncensored``);
    default ``MODELSLAB_COMPLETIONS_BASE_URL``, else the v6 URL (alias ``api_base``)."""

    _default_base_url = COMPLETIONS_BASE_URL
    _base_url_env = COMPLETIONS_BASE_URL_ENV
    _ls_model_type = "llm"

    def _client(self) -> ModelsLabCompletionsClient:
        return self._cache().get(ModelsLabCompletionsClient, self._config(), self.http_client)

    def _async_client(self) -> AsyncModelsLabCompletionsClient:
        return self._cache().get(
            AsyncModelsLabCompletionsClient, self._config(), self.http_async_client
        )

    @property
    def _llm_type(self) -> str:
        return "modelslab-completions"

    def _request(
        self, prompt: str, stop: list[str] | None, *, stream: bool, **kwargs: Any
    ) -> CompletionRequest:
        body = {**self._body(stop, stream, kwargs), "prompt": prompt}
        return CompletionRequest.model_validate(body)

    # --- the four paths -----------------------------------------------------------------------

    @signature_once
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

    @signature_once
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
                generations.append([_merge(chunks)])
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
            convert = partial(completion_chunk_to_generation, model=request.model)
            with self._client().complete_stream(request) as stream:
                yield from relay(stream, convert, run_manager)

    async def _astream(
        self,
        prompt: str,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[GenerationChunk]:
        with translated_errors():
            request = self._request(prompt, stop, stream=True, **kwargs)
            convert = partial(completion_chunk_to_generation, model=request.model)
            async with await self._async_client().complete_stream(request) as stream:
                async for generation in arelay(stream, convert, run_manager):
                    yield generation


def _merge(chunks: Iterable[GenerationChunk]) -> Generation:
    merged = reduce(operator.add, chunks, GenerationChunk(text=""))
    return Generation(text=merged.text, generation_info=merged.generation_info)
