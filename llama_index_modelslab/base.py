"""``ModelsLabLLM``: ModelsLab's LLM API as a LlamaIndex ``FunctionCallingLLM``, between the pure
converters of :mod:`._convert` and the adapter's clients (no HTTP here; clients built lazily)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Iterator, Sequence
from functools import partial
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx
from llama_index.core.base.llms.generic_utils import (
    astream_chat_response_to_completion_response,
    astream_completion_response_to_chat_response,
    chat_response_to_completion_response,
    completion_response_to_chat_response,
    prompt_to_messages,
    stream_chat_response_to_completion_response,
    stream_completion_response_to_chat_response,
)
from llama_index.core.base.llms.generic_utils import (
    messages_to_prompt as generic_messages_to_prompt,
)
from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.constants import DEFAULT_TEMPERATURE
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.types import PydanticProgramMode
from pydantic import BaseModel, SecretStr

from modelslab_core import (
    CHAT_BASE_URL,
    COMPLETIONS_BASE_URL,
    AsyncModelsLabClient,
    AsyncModelsLabCompletionsClient,
    BadRequestError,
    ChatRequest,
    CompletionRequest,
    ModelsLabClient,
    ModelsLabCompletionsClient,
    check_params,
    get_profile,
)
from modelslab_core._cache import ClientCache
from modelslab_core.client import AsyncModelsLabClientBase, ModelsLabClientBase
from modelslab_core.config import (
    BASE_URL_ENV,
    COMPLETIONS_BASE_URL_ENV,
    ClientConfig,
    ClientSettings,
    InvalidSettingError,
    as_setting_errors,
    check_extra_fields,
    merge_aliases,
    repr_args,
    resolve_api_key,
    resolve_base_url,
)
from modelslab_core.structured import request_body
from modelslab_core.validation import check_numbers

from . import _convert as conv
from ._relay import _aparse, _arelay, _chain, _parse, _relay

if TYPE_CHECKING:
    from llama_index.core.prompts import PromptTemplate
    from llama_index.core.tools.types import BaseTool

__all__ = ["DEFAULT_MODEL", "ModelsLabLLM"]

DEFAULT_MODEL = "meta-llama-3-8B-instruct"

#: Left out of the repr: what the model id already says, secrets, callbacks and prompt hooks.
_NOT_SHOWN = frozenset({
    "model", "default_headers", "callback_manager", "messages_to_prompt", "output_parser",
    "completion_to_prompt", "context_window", "is_function_calling_model", "is_chat_model",
})  # fmt: skip


#: By ``is_chat_model``: the default base URL and the variable that overrides it.
_DEFAULT_URLS = {
    True: (CHAT_BASE_URL, BASE_URL_ENV),
    False: (COMPLETIONS_BASE_URL, COMPLETIONS_BASE_URL_ENV),
}


class UnknownArgumentError(InvalidSettingError, TypeError):
    """An argument ``ModelsLabLLM`` does not take: a configuration error, and the ``TypeError``
    Python raises for an unexpected keyword argument."""


M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")
C = TypeVar("C", bound=ModelsLabClientBase | AsyncModelsLabClientBase)


class ModelsLabLLM(ClientSettings, FunctionCallingLLM):
    """ModelsLab's chat (or text-completion) models in LlamaIndex.

    ``context_window`` and ``is_function_calling_model`` come from the shared model-profile table
    unless given. The API key comes from ``api_key`` or ``MODELSLAB_API_KEY`` and is kept out of
    ``repr``, ``to_dict`` and ``to_json``. With ``is_chat_model=False``, ``complete`` posts to
    ``{base_url}/completions`` and ``base_url`` defaults to the v6 completions base. The client
    settings (``timeout``, ``max_retries``, ``default_headers``, ``key_placement``,
    ``max_in_flight``, ...) are those of :class:`modelslab_core.config.ClientSettings`.
    """

    model: str = Field(
        default=DEFAULT_MODEL,
        description="The ModelsLab model id (aliases model_name and model_id).",
    )
    base_url: str = Field(
        default=CHAT_BASE_URL,
        description="The API base URL, or a name: chat, completions, uncensored (alias api_base).",
    )
    temperature: float | None = Field(
        default=DEFAULT_TEMPERATURE,
        description="0 to 2. The default, 0.1, is LlamaIndex's own (llama_index.core.constants."
        "DEFAULT_TEMPERATURE, as its OpenAI LLM has it); LangChain's ChatModelsLab sends none.",
    )
    max_tokens: int | None = Field(default=None, description="Most tokens to generate.")
    context_window: int = Field(default=0, description="Input plus output tokens.")
    is_chat_model: bool = Field(default=True, description="False: use text completions.")
    is_function_calling_model: bool = Field(default=True, description="Whether tools work.")
    additional_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra fields for every request body."
    )
    strict: bool = Field(default=False, description="Ask for strict tool-argument schemas.")

    _api_key: SecretStr = PrivateAttr()
    _http_client: httpx.Client | None = PrivateAttr(default=None)
    _async_http_client: httpx.AsyncClient | None = PrivateAttr(default=None)
    _clients: ClientCache = PrivateAttr(default_factory=ClientCache)

    def __init__(
        self,
        model: str | None = None,
        api_key: str | SecretStr | None = None,
        base_url: str | None = None,
        *,
        is_chat_model: bool | None = None,
        context_window: int | None = None,
        is_function_calling_model: bool | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        **kwargs: Any,
    ) -> None:
        # ``model_name``, ``api_base`` (OpenAILike's and llama-index-llms-modelslab's name of the
        # base URL), ``request_timeout``: one setting each, contradictions refused.
        kwargs = merge_aliases({"model": model, "base_url": base_url, **kwargs})
        model = kwargs.pop("model", None) or DEFAULT_MODEL
        with as_setting_errors():
            check_numbers(kwargs)  # before pydantic turns True into 1
        unknown = sorted(set(kwargs) - set(type(self).model_fields))
        if unknown:
            raise UnknownArgumentError(
                f"ModelsLabLLM got unexpected keyword arguments {unknown}; request fields that "
                "are not modelled go in additional_kwargs={...}",
                field=unknown[0],
            )
        if not isinstance(model, str):
            raise InvalidSettingError(f"model must be a model id, got {model!r}", field="model")
        # Read before pydantic would turn "false" into False: a string would pick the endpoint.
        flags = {
            "is_chat_model": is_chat_model,
            "is_function_calling_model": is_function_calling_model,
        }
        for name, flag in flags.items():
            if flag is not None and not isinstance(flag, bool):
                raise InvalidSettingError(f"{name} must be True or False, got {flag!r}", field=name)
        profile = get_profile(model)
        chat = profile.chat if is_chat_model is None else is_chat_model
        if is_function_calling_model and not chat:
            raise InvalidSettingError(
                "is_function_calling_model=True cannot take effect with text completions "
                "(is_chat_model=False, or a completions-only model): tools need the chat endpoint",
                field="is_function_calling_model",
            )
        default_url, url_env = _DEFAULT_URLS[chat]
        kwargs["base_url"] = resolve_base_url(kwargs.get("base_url"), default_url, env=url_env)
        if is_function_calling_model is None:
            is_function_calling_model = chat and profile.tool_calling
        super().__init__(
            model=model,
            is_chat_model=chat,
            context_window=context_window or profile.context_window,
            is_function_calling_model=is_function_calling_model,
            **kwargs,
        )
        with as_setting_errors():
            check_params({"temperature": self.temperature, "max_tokens": self.max_tokens})
        sent = ("model", "temperature", "max_tokens")  # the fields that go into a request body
        check_extra_fields(self.additional_kwargs, sent, "additional_kwargs")
        self._api_key = resolve_api_key(api_key)
        self._http_client = http_client
        self._async_http_client = async_http_client
        self._config()  # every setting checked now: a bad value fails here, not at the first call

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        return repr_args(self, _NOT_SHOWN)

    @classmethod
    def class_name(cls) -> str:
        return "ModelsLabLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or get_profile(self.model).max_output_tokens,
            is_chat_model=self.is_chat_model,
            is_function_calling_model=self.is_function_calling_model,
            model_name=self.model,
            system_role=MessageRole.SYSTEM,
        )

    # --- model list ------------------------------------------------------------------------------

    def list_models(self) -> list[str]:
        """The ids of the models the API serves (``GET {base_url}/v1/models``)."""
        return [m.id for m in self._client(ModelsLabClient).list_models().data]

    async def alist_models(self) -> list[str]:
        """Async twin of :meth:`list_models`."""
        return [m.id for m in (await self._client(AsyncModelsLabClient).list_models()).data]

    # --- pickling: keep the key, drop the clients ----------------------------------------------

    def __getstate__(self) -> dict[Any, Any]:
        return {**super().__getstate__(), "__pydantic_private__": {"_api_key": self._api_key}}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # Re-run __init__ (as LlamaIndex's components do) so fields that could not be pickled
        # get their defaults back; the key travels in the private state.
        api_key = state["__pydantic_private__"]["_api_key"]
        self.__init__(**state["__dict__"], api_key=api_key)  # type: ignore[misc]

    # --- clients and requests ------------------------------------------------------------------

    def _private(self, name: str) -> Any:
        # Read where pydantic keeps it: ``self._clients`` is found only after a failed normal
        # lookup (~2 us), and every call reads four.
        return self.__pydantic_private__[name]  # type: ignore[index]

    def _config(self) -> ClientConfig:
        """The settings from the current fields, built again only when one changed (a changed
        field takes effect at the next call)."""
        default_url, url_env = _DEFAULT_URLS[self.is_chat_model]
        cache: ClientCache = self._private("_clients")
        key = self._private("_api_key")
        return cache.config(
            self, key, self.base_url, default_base_url=default_url, base_url_env=url_env
        )

    def _client(self, cls: type[C]) -> C:
        """The model's client of class ``cls``, over the matching (sync or async) http client."""
        is_async = issubclass(cls, AsyncModelsLabClientBase)
        http_client = self._private("_async_http_client" if is_async else "_http_client")
        cache: ClientCache = self._private("_clients")
        return cache.get(cls, self._config(), http_client)

    def _body(self, kwargs: dict[str, Any], stream: bool) -> dict[str, Any]:
        """The request body: the model's fields, ``additional_kwargs``, then the call's."""
        fields = {"model": self.model, "temperature": self.temperature}
        fields |= {"max_tokens": self.max_tokens, **self.additional_kwargs}
        return request_body(fields, kwargs, stream=stream)

    # A request is checked once, as the wire model is built: a stream fails at the call, not
    # when first read.
    def _chat_request(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any], *, stream: bool = False
    ) -> ChatRequest:
        wire_messages = [conv.message_to_wire(m) for m in messages]
        return ChatRequest.model_validate({**self._body(kwargs, stream), "messages": wire_messages})

    def _completion_request(
        self, prompt: str, kwargs: dict[str, Any], *, stream: bool = False
    ) -> CompletionRequest:
        return CompletionRequest.model_validate({**self._body(kwargs, stream), "prompt": prompt})

    # LlamaIndex's validators fill both hooks in; its types still say they may be None.
    def _prompt(self, prompt: str, formatted: bool) -> str:
        to_prompt = self.completion_to_prompt
        return prompt if formatted or to_prompt is None else to_prompt(prompt)

    def _messages_prompt(self, messages: Sequence[ChatMessage]) -> str:
        return (self.messages_to_prompt or generic_messages_to_prompt)(messages)

    # --- chat ------------------------------------------------------------------------------------

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self.is_chat_model:
            return self._chat(messages, kwargs)
        response = self._complete(self._messages_prompt(messages), kwargs)
        return completion_response_to_chat_response(response)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        if self.is_chat_model:
            return self._stream_chat(messages, kwargs)
        responses = self._stream_complete(self._messages_prompt(messages), kwargs)
        return stream_completion_response_to_chat_response(responses)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self.is_chat_model:
            return await self._achat(messages, kwargs)
        response = await self._acomplete(self._messages_prompt(messages), kwargs)
        return completion_response_to_chat_response(response)

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        if self.is_chat_model:
            return self._astream_chat(messages, kwargs)
        responses = self._astream_complete(self._messages_prompt(messages), kwargs)
        return astream_completion_response_to_chat_response(responses)

    # --- complete --------------------------------------------------------------------------------

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        if not self.is_chat_model:
            return self._complete(self._prompt(prompt, formatted), kwargs)
        return chat_response_to_completion_response(self._chat(prompt_to_messages(prompt), kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        if not self.is_chat_model:
            return self._stream_complete(self._prompt(prompt, formatted), kwargs)
        responses = self._stream_chat(prompt_to_messages(prompt), kwargs)
        return stream_chat_response_to_completion_response(responses)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        if not self.is_chat_model:
            return await self._acomplete(self._prompt(prompt, formatted), kwargs)
        response = await self._achat(prompt_to_messages(prompt), kwargs)
        return chat_response_to_completion_response(response)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        if not self.is_chat_model:
            return self._astream_complete(self._prompt(prompt, formatted), kwargs)
        responses = self._astream_chat(prompt_to_messages(prompt), kwargs)
        return astream_chat_response_to_completion_response(responses)

    # --- the native calls ------------------------------------------------------------------------

    def _chat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        request = self._chat_request(messages, kwargs)
        return conv.response_to_chat(self._client(ModelsLabClient).chat(request))

    async def _achat(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> ChatResponse:
        request = self._chat_request(messages, kwargs)
        return conv.response_to_chat(await self._client(AsyncModelsLabClient).chat(request))

    def _stream_chat(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseGen:
        request = self._chat_request(messages, kwargs, stream=True)
        open_stream = partial(self._client(ModelsLabClient).chat_stream, request)
        return _relay(open_stream, conv.chat_stream_step())

    def _astream_chat(
        self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]
    ) -> ChatResponseAsyncGen:
        request = self._chat_request(messages, kwargs, stream=True)
        open_stream = partial(self._client(AsyncModelsLabClient).chat_stream, request)
        return _arelay(open_stream, conv.chat_stream_step())

    def _complete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponse:
        request = self._completion_request(prompt, kwargs)
        client = self._client(ModelsLabCompletionsClient)
        return conv.completion_to_response(client.complete(request))

    async def _acomplete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponse:
        request = self._completion_request(prompt, kwargs)
        client = self._client(AsyncModelsLabCompletionsClient)
        return conv.completion_to_response(await client.complete(request))

    def _stream_complete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponseGen:
        request = self._completion_request(prompt, kwargs, stream=True)
        client = self._client(ModelsLabCompletionsClient)
        return _relay(partial(client.complete_stream, request), conv.stream_completion_step)

    def _astream_complete(self, prompt: str, kwargs: dict[str, Any]) -> CompletionResponseAsyncGen:
        request = self._completion_request(prompt, kwargs, stream=True)
        client = self._client(AsyncModelsLabCompletionsClient)
        return _arelay(partial(client.complete_stream, request), conv.stream_completion_step)

    # --- tools -----------------------------------------------------------------------------------

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | dict[str, Any] | None = None,
        strict: bool | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        messages = [*(chat_history or ()), *([user_msg] if user_msg is not None else ())]
        specs = conv.tool_specs(tools, strict=self.strict if strict is None else strict)
        if specs:
            kwargs["tools"] = specs
            kwargs["tool_choice"] = conv.resolve_tool_choice(tool_choice, tool_required)
            kwargs["parallel_tool_calls"] = allow_parallel_tool_calls
        return {"messages": messages, **kwargs}

    def _validate_chat_with_tools_response(
        self,
        response: ChatResponse,
        tools: Sequence[BaseTool],
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> ChatResponse:
        if not allow_parallel_tool_calls:  # drop every tool call but the first
            blocks = response.message.blocks
            calls = [b for b in blocks if isinstance(b, ToolCallBlock)]
            others = [b for b in blocks if not isinstance(b, ToolCallBlock)]
            response.message.blocks = others + calls[:1]
        return response

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        return conv.tool_calls_to_selections(response, error_on_no_tool_call=error_on_no_tool_call)

    # --- structured output -----------------------------------------------------------------------
    # Models with tools go through LlamaIndex's programs (the base class); others get a JSON
    # response format: ``json_schema`` first, then ``json_object`` (the one ModelsLab documents)
    # when the server refuses it. No other error is asked again: a context-length error would
    # only come back with a longer prompt. LlamaIndex calls the two stream hooks from inside its
    # (async) generators, so their request still goes out when the stream is first read.

    def _json_mode(self) -> bool:
        return (
            self.is_chat_model
            and not self.is_function_calling_model
            and self.pydantic_program_mode == PydanticProgramMode.DEFAULT
        )

    def _json_request(
        self,
        output_cls: type[BaseModel],
        prompt: PromptTemplate,
        prompt_args: dict[str, Any],
        llm_kwargs: dict[str, Any] | None,
    ) -> tuple[list[ChatMessage], dict[str, Any]]:
        messages = self._extend_messages(prompt.format_messages(llm=self, **prompt_args))
        return conv.json_request(output_cls, messages, llm_kwargs)

    def _json_call(
        self, send: Callable[..., R], messages: list[ChatMessage], kwargs: dict[str, Any]
    ) -> R:
        """``send(messages, **kwargs)``, once more in JSON mode if the schema is refused."""
        try:
            return send(messages, **kwargs)
        except BadRequestError as error:
            kwargs = conv.json_fallback_kwargs(error, kwargs)
        return send(messages, **kwargs)

    async def _ajson_call(
        self, send: Callable[..., Awaitable[R]], messages: list[ChatMessage], kwargs: dict[str, Any]
    ) -> R:
        """Async twin of :meth:`_json_call`."""
        try:
            return await send(messages, **kwargs)
        except BadRequestError as error:
            kwargs = conv.json_fallback_kwargs(error, kwargs)
        return await send(messages, **kwargs)

    def structured_predict(
        self,
        output_cls: type[M],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> M:
        if not self._json_mode():
            result = super().structured_predict(output_cls, prompt, llm_kwargs, **prompt_args)
            return cast(M, result)
        request = self._json_request(output_cls, prompt, prompt_args, llm_kwargs)
        response = self._json_call(self.chat, *request)
        return conv.parse_output(output_cls, response)

    async def astructured_predict(
        self,
        output_cls: type[M],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> M:
        if not self._json_mode():
            result = await super().astructured_predict(
                output_cls, prompt, llm_kwargs, **prompt_args
            )
            return cast(M, result)
        request = self._json_request(output_cls, prompt, prompt_args, llm_kwargs)
        response = await self._ajson_call(self.achat, *request)
        return conv.parse_output(output_cls, response)

    def _structured_stream_call(
        self,
        output_cls: type[M],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> Generator[Any, None, None]:
        if not self._json_mode():
            return super()._structured_stream_call(output_cls, prompt, llm_kwargs, **prompt_args)

        def started(messages: list[ChatMessage], **kwargs: Any) -> Iterator[ChatResponse]:
            responses = self.stream_chat(messages, **kwargs)
            return chain(list(islice(responses, 1)), responses)  # a refusal raises here

        request = self._json_request(output_cls, prompt, prompt_args, llm_kwargs)
        return _parse(self._json_call(started, *request), output_cls)

    async def _structured_astream_call(
        self,
        output_cls: type[M],
        prompt: PromptTemplate,
        llm_kwargs: dict[str, Any] | None = None,
        **prompt_args: Any,
    ) -> AsyncGenerator[Any, None]:
        if not self._json_mode():
            return await super()._structured_astream_call(
                output_cls, prompt, llm_kwargs, **prompt_args
            )

        async def started(messages: list[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
            responses = await self.astream_chat(messages, **kwargs)
            return _chain(await anext(responses, None), responses)  # a refusal raises here

        request = self._json_request(output_cls, prompt, prompt_args, llm_kwargs)
        return _aparse(await self._ajson_call(started, *request), output_cls)
