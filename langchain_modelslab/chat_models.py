"""``ChatModelsLab``: ModelsLab's chat completions API as a LangChain chat model (no HTTP here:
it builds :class:`modelslab_core.ChatRequest` objects for the adapter's clients)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from functools import partial
from operator import itemgetter
from typing import Any, Literal, Self

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableLambda, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import Field, model_validator

import modelslab_core
from modelslab_core import (
    BASE_URL_ENV,
    CHAT_BASE_URL,
    AsyncModelsLabClient,
    ChatRequest,
    ModelsLabClient,
    get_profile,
)
from modelslab_core.accumulate import ToolCallSlots
from modelslab_core.config import InvalidSettingError
from modelslab_core.structured import JSON_OBJECT_FORMAT, json_schema_format, schema_instruction

from ._common import ModelId, ModelsLabFields, arelay, relay, signature_once
from ._convert import (
    chunk_to_generation,
    completion_to_result,
    message_to_wire,
    tool_choice_to_wire,
    tools_to_wire,
)
from ._errors import ModelsLabResponseFormatError, translated_errors

__all__ = ["DEFAULT_MODEL", "ChatModelsLab"]

DEFAULT_MODEL = "meta-llama-3-8B-instruct"


class ChatModelsLab(ModelsLabFields, BaseChatModel):
    """ModelsLab's chat completions API (``/api/v7/llm/chat/completions``).

    Example:
        ```python
        from langchain_modelslab import ChatModelsLab

        model = ChatModelsLab(model="meta-llama-3-8B-instruct", temperature=0)
        model.invoke("Hello")
        ```

    The key comes from ``api_key`` or ``MODELSLAB_API_KEY``; the base URL from ``base_url``
    (a URL or a name in ``modelslab_core.BASE_URLS``), ``MODELSLAB_BASE_URL``, or the v7 chat URL.
    """

    model: ModelId = DEFAULT_MODEL
    """Model id, e.g. ``meta-llama-3-8B-instruct`` (aliases ``model_id`` and ``model_name``, as
    ``ChatOpenAI`` and ``ChatAnthropic`` name it)."""
    base_url: str | None = None
    """Chat base URL (``.../api/v7/llm``) or a named one (``chat``, ``uncensored``); default
    ``MODELSLAB_BASE_URL``, else the v7 chat URL (alias ``api_base``)."""
    stop: list[str] | str | None = Field(default=None, alias="stop_sequences")
    n: int | None = None
    """Number of answers per request (1-10; streaming takes 1)."""

    _sampling = (*ModelsLabFields._sampling, "n")
    _default_base_url = CHAT_BASE_URL
    _base_url_env = BASE_URL_ENV
    _ls_model_type = "chat"

    def _client(self) -> ModelsLabClient:
        return self._cache().get(ModelsLabClient, self._config(), self.http_client)

    def _async_client(self) -> AsyncModelsLabClient:
        return self._cache().get(AsyncModelsLabClient, self._config(), self.http_async_client)

    @model_validator(mode="after")
    def _check_streaming_n(self) -> Self:
        if self.streaming and (self.n or 1) > 1:
            raise InvalidSettingError(
                "n must be 1 when streaming (streaming=True sends one answer)", field="n"
            )
        return self

    def _resolve_model_profile(self) -> ModelProfile | None:
        profile = get_profile(self.model)
        return ModelProfile(
            max_input_tokens=profile.context_window,
            max_output_tokens=profile.max_output_tokens,
            text_inputs=True,
            text_outputs=True,
            image_inputs=profile.vision,
            image_url_inputs=profile.vision,
            pdf_inputs=False,
            audio_inputs=False,
            video_inputs=False,
            reasoning_output=profile.reasoning,
            tool_calling=profile.tool_calling,
            tool_choice=profile.tool_calling,
            tool_call_streaming=profile.tool_calling,
            # A json_schema response format the API honours (create_agent reads it);
            # with_structured_output works through tool calling either way.
            structured_output=profile.structured_output,
        )

    @property
    def _llm_type(self) -> str:
        return "modelslab-chat"

    # --- requests -------------------------------------------------------------------------

    def _request(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        *,
        stream: bool,
        **kwargs: Any,
    ) -> ChatRequest:
        body = self._body(stop, stream, kwargs)
        if stream and (body.get("n") or 1) > 1:
            raise modelslab_core.ParameterError("n must be 1 when streaming", field="n")
        body["messages"] = [message_to_wire(m) for m in messages]
        return ChatRequest.model_validate(body)

    @signature_once
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with translated_errors():
            request = self._request(messages, stop, stream=False, **kwargs)
            completion = self._client().chat(request)
        return completion_to_result(completion, model=request.model)

    @signature_once
    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with translated_errors():
            request = self._request(messages, stop, stream=False, **kwargs)
            completion = await self._async_client().chat(request)
        return completion_to_result(completion, model=request.model)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        with translated_errors():
            request = self._request(messages, stop, stream=True, **kwargs)
            convert = partial(chunk_to_generation, model=request.model, slots=ToolCallSlots())
            with self._client().chat_stream(request) as stream:
                yield from relay(stream, convert, run_manager)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        with translated_errors():
            request = self._request(messages, stop, stream=True, **kwargs)
            convert = partial(chunk_to_generation, model=request.model, slots=ToolCallSlots())
            async with await self._async_client().chat_stream(request) as stream:
                async for generation in arelay(stream, convert, run_manager):
                    yield generation

    # --- tools and structured output -----------------------------------------------------------

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | Mapping[str, Any] | None = None,
        parallel_tool_calls: bool | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model.

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"``/``"required"``/``True`` (some tool),
        a tool's name, or an OpenAI ``tool_choice`` dict.
        """
        formatted = tools_to_wire(tools, strict=strict)
        names = [t["function"]["name"] for t in formatted if "function" in t]
        choice = tool_choice_to_wire(tool_choice, names)
        if choice is not None:
            kwargs["tool_choice"] = choice
        if parallel_tool_calls is not None:
            kwargs["parallel_tool_calls"] = parallel_tool_calls
        return super().bind(tools=formatted, **kwargs)

    def with_structured_output(
        self,
        schema: Mapping[str, Any] | type | None = None,
        *,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        include_raw: bool = False,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """A runnable that answers with ``schema`` (pydantic class, TypedDict or JSON schema).

        ``method``: ``function_calling`` (default: ModelsLab documents tools), ``json_schema``
        (an OpenAI ``json_schema`` response format) or ``json_mode`` (``json_object``; describe
        the schema in the prompt). ``include_raw`` gives ``{"raw", "parsed", "parsing_error"}``.
        """
        if method != "json_mode" and schema is None:
            raise ValueError(f"schema is required with method={method!r}")
        if method not in ("function_calling", "json_schema", "json_mode"):
            raise ValueError(
                f"method must be 'function_calling', 'json_schema' or 'json_mode', got {method!r}"
            )
        trace = {"kwargs": {"method": method, "strict": strict}, "schema": schema}
        kwargs["ls_structured_output_format"] = trace
        is_pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        llm: Runnable[LanguageModelInput, Any]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            assert schema is not None
            tool_name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=tool_name, strict=strict, **kwargs)
            parser = (
                PydanticToolsParser(tools=[schema], first_tool_only=True)
                if is_pydantic
                else JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
            )
        else:
            llm = self.bind(response_format=dict(JSON_OBJECT_FORMAT), **kwargs)
            parser = (
                PydanticOutputParser(pydantic_object=schema) if is_pydantic else JsonOutputParser()
            )
        if method == "json_schema":
            assert schema is not None
            json_schema = convert_to_json_schema(
                dict(schema) if isinstance(schema, Mapping) else schema
            )
            response_format = json_schema_format(json_schema, strict=strict)  # named by its title
            # ModelsLab documents only json_object: a server that refuses json_schema (and only
            # such a refusal: a context-length error would come back with a longer prompt) is
            # asked again in JSON mode (``llm`` so far), with the schema in a system message.
            instruction = schema_instruction(response_format["json_schema"]["schema"])
            fallback = RunnableLambda(partial(_with_schema_instruction, self, instruction)) | llm
            llm = self.bind(response_format=response_format, **kwargs).with_fallbacks(
                [fallback], exceptions_to_handle=(ModelsLabResponseFormatError,)
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
        )
        no_parse = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks(
            [no_parse], exception_key="parsing_error"
        )

    # --- token counting --------------------------------------------------------------------------

    def get_num_tokens_from_messages(
        self,
        messages: list[BaseMessage],
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool] | None = None,
    ) -> int:
        """An offline estimate of the prompt's tokens (langchain-core's approximate counter), so
        ``trim_messages(..., token_counter=llm)`` downloads nothing: ModelsLab publishes no
        tokenizer. ``custom_get_token_ids`` counts with a tokenizer of your own."""
        if self.custom_get_token_ids is not None:
            return super().get_num_tokens_from_messages(messages, tools)
        schemas: list[BaseTool | dict[str, Any]] = [convert_to_openai_tool(t) for t in tools or ()]
        return count_tokens_approximately(messages, tools=schemas or None)


def _with_schema_instruction(
    model: ChatModelsLab, instruction: str, value: LanguageModelInput
) -> list[BaseMessage]:
    """The input as messages, led by a system message that asks for JSON fitting the schema."""
    return [SystemMessage(content=instruction), *model._convert_input(value).to_messages()]
