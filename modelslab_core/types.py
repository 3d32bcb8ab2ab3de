"""Lenient pydantic wire models for ModelsLab's OpenAI-shaped API.

Every model keeps unknown fields (``extra="allow"``) and takes enum-like values (``role``,
``finish_reason``, ``object``) as plain strings, so a new value from the server never breaks a
client. Requests accept ModelsLab's aliases on input (``model_id`` for ``model``, ``streaming``
for ``stream``, as ModelsLab's documentation spells them) and always send the canonical names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Self, TypeVar

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from . import validation
from .errors import ParameterError

__all__ = [
    "ChatChoice",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatMessage",
    "ChatRequest",
    "ChoiceDelta",
    "ChunkChoice",
    "Completion",
    "CompletionChoice",
    "CompletionRequest",
    "FunctionCall",
    "FunctionCallDelta",
    "ModelInfo",
    "ModelList",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]


class WireModel(BaseModel):
    # defer_build: validators are built on first use, not at import (import time is measured).
    model_config = ConfigDict(
        extra="allow", populate_by_name=True, protected_namespaces=(), defer_build=True
    )


_Item = TypeVar("_Item")


#: ``choices`` of an answer or chunk: ``null`` reads as none. Some OpenAI-compatible servers send
#: the ``stream_options.include_usage`` chunk with ``"choices": null`` instead of ``[]``: the
#: answer streamed before it is complete, and must not be lost to a validation error.
Choices = Annotated[list[_Item], BeforeValidator(lambda value: [] if value is None else value)]


# --- messages and tool calls -------------------------------------------------------------------


class FunctionCall(WireModel):
    name: str = ""
    #: A JSON string, as the API sends it (may be invalid JSON: the converters decide).
    arguments: str = ""


class ToolCall(WireModel):
    id: str = ""
    type: str = "function"
    function: FunctionCall = Field(default_factory=FunctionCall)


class ChatMessage(WireModel):
    """One message of a conversation, sent or received."""

    role: str = "assistant"
    #: A string, a list of OpenAI content parts (``text``, ``image_url``), or None.
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    #: Reasoning models (DeepSeek R1) put their thinking here, apart from the answer.
    reasoning_content: str | None = None


class Usage(WireModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


# --- requests ----------------------------------------------------------------------------------


class _SamplingFields(WireModel):
    model: str = Field(
        default="meta-llama-3-8B-instruct", validation_alias=AliasChoices("model", "model_id")
    )
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    frequency_penalty: float | None = None
    presence_penalty: float | None = None
    repetition_penalty: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool | None = Field(default=None, validation_alias=AliasChoices("stream", "streaming"))
    stream_options: dict[str, Any] | None = None

    # A request is checked once, as it is built (keyword construction, or model_validate, which
    # the clients and frameworks use and which runs this __init__), and again only for a field
    # assigned afterwards: sending it checks nothing more. The raw values are checked first: a
    # bool would already be a number after pydantic.
    def __init__(self, /, **data: Any) -> None:
        self._check_raw(data)
        super().__init__(**data)
        self.check()

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> Self:
        try:
            return super().model_validate(obj, *args, **kwargs)
        except ValidationError as exc:
            # __init__ ran inside pydantic's validation: our ParameterError, not its wrapper.
            for error in exc.errors():
                cause = (error.get("ctx") or {}).get("error")
                if isinstance(cause, ParameterError):
                    raise cause from None
            raise

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).model_fields:
            # ``request.temperature = True`` after construction: refused here, before it is set.
            self._check_raw({name: value})
            self._check_values({**self.__dict__, name: value})
        super().__setattr__(name, value)

    #: The checks of the values as given, and of the whole request's values (the ranges
    #: ModelsLab documents); each request adds its own fields' checks.
    _check_raw = staticmethod(validation.check_numbers)
    _check_values = staticmethod(validation.check_params)

    @classmethod
    def of(cls, request: Self | Mapping[str, Any]) -> Self:
        """``request`` as this wire model (a mapping is validated and checked)."""
        return request if isinstance(request, cls) else cls.model_validate(request)

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: canonical names, no unset fields, extra fields passed through."""
        return self.model_dump(exclude_none=True, by_alias=False)

    def check(self) -> None:
        """Check the whole request (done as it is built; call it after changing a field in
        place, e.g. ``request.messages.clear()``)."""
        self._check_values(self.__dict__)

    def body(self, *, stream: bool) -> dict[str, Any]:
        """The JSON body to send (checked when the request was built); ``stream_options`` go
        only with a stream."""
        body = self.to_body()
        body["stream"] = stream
        if not stream:
            body.pop("stream_options", None)
        return body


class ChatRequest(_SamplingFields):
    """A request to ``/chat/completions``. Fields not modelled here pass through as extras."""

    messages: list[ChatMessage] = Field(default_factory=list)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None

    @staticmethod
    def _check_raw(values: Mapping[str, Any]) -> None:
        validation.check_numbers(values)
        tools = values.get("tools")
        if isinstance(tools, Sequence) and not isinstance(tools, str):
            validation.check_tools(tools)

    _check_values = staticmethod(validation.check_chat_fields)


class CompletionRequest(_SamplingFields):
    """A request to ``/completions`` (text completion)."""

    model: str = Field(
        default="ModelsLab/Llama-3.1-8b-Uncensored-Dare",
        validation_alias=AliasChoices("model", "model_id"),
    )
    prompt: str | list[str] = ""

    _check_values = staticmethod(validation.check_completion_fields)


# --- responses ---------------------------------------------------------------------------------


class _Answer(WireModel):
    """The fields every answer and stream chunk carries."""

    id: str = ""
    object: str = ""
    created: int = 0
    model: str = ""


class ChatChoice(WireModel):
    index: int = 0
    message: ChatMessage = Field(default_factory=ChatMessage)
    finish_reason: str | None = None


class ChatCompletion(_Answer):
    object: str = "chat.completion"
    choices: Choices[ChatChoice] = Field(default_factory=list)
    usage: Usage | None = None
    system_fingerprint: str | None = None


class FunctionCallDelta(WireModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(WireModel):
    """A fragment of a streamed tool call; fragments with the same ``index`` belong together."""

    index: int = 0
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None


class ChoiceDelta(WireModel):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(WireModel):
    index: int = 0
    delta: ChoiceDelta = Field(default_factory=ChoiceDelta)
    finish_reason: str | None = None


class ChatCompletionChunk(_Answer):
    object: str = "chat.completion.chunk"
    choices: Choices[ChunkChoice] = Field(default_factory=list)
    #: Only on the last chunk, with ``stream_options={"include_usage": True}`` (``choices`` empty).
    usage: Usage | None = None


class CompletionChoice(WireModel):
    index: int = 0
    text: str = ""
    logprobs: Any = None
    finish_reason: str | None = None
    #: vLLM's field: the stop string or token that ended the text, if any.
    stop_reason: str | int | None = None


class Completion(_Answer):
    """A text completion, or one chunk of a streamed one (same shape)."""

    object: str = "text_completion"
    choices: Choices[CompletionChoice] = Field(default_factory=list)
    usage: Usage | None = None


class ModelInfo(WireModel):
    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None


class ModelList(WireModel):
    object: str = "list"
    data: list[ModelInfo] = Field(default_factory=list)
