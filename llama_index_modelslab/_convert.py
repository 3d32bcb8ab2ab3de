"""Pure converters between LlamaIndex's types and ModelsLab's wire models (no I/O); streamed and
whole answers share :func:`wire_to_message`, so a stream's last response equals ``chat``'s."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from llama_index.core.base.llms.types import (
    AudioBlock,
    CachePoint,
    ChatMessage,
    ChatResponse,
    CitableBlock,
    CitationBlock,
    CompletionResponse,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    VideoBlock,
)
from llama_index.core.llms.llm import ToolSelection
from llama_index.core.llms.utils import parse_partial_json
from llama_index.core.output_parsers import PydanticOutputParser
from llama_index.core.output_parsers.utils import extract_json_str
from pydantic import BaseModel

from modelslab_core import (
    BadRequestError,
    ChatCompletion,
    ChatCompletionChunk,
    ChoiceDelta,
    Completion,
    FunctionCall,
    ParameterError,
    StreamAccumulator,
    ToolCall,
    Usage,
)
from modelslab_core import ChatMessage as WireMessage
from modelslab_core.structured import json_mode_fallback, json_schema_format

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

M = TypeVar("M", bound=BaseModel)


# LlamaIndex roles the API does not know, mapped to the ones it does.
_ROLES: Mapping[str, str] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
    MessageRole.TOOL.value: "tool",
    MessageRole.FUNCTION.value: "tool",
}
_TOOL_CHOICES = frozenset({"auto", "none", "required"})


# --- LlamaIndex -> wire ------------------------------------------------------------------------


def message_to_wire(message: ChatMessage) -> WireMessage:
    """One LlamaIndex message as the API's: text blocks join into a string (a list of parts with
    an image), tool-call blocks become ``tool_calls``, thinking is not sent back."""
    role = _ROLES.get(message.role.value, message.role.value)
    parts: list[dict[str, Any]] = []
    calls: list[ToolCall] = []
    for block in message.blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock):
            url = str(block.url) if block.url is not None else block.inline_url()
            detail = {"detail": block.detail} if block.detail else {}
            parts.append({"type": "image_url", "image_url": {"url": url, **detail}})
        elif isinstance(block, ToolCallBlock):
            args = block.tool_kwargs
            arguments = args if isinstance(args, str) else json.dumps(args)
            function = FunctionCall(name=block.tool_name, arguments=arguments)
            calls.append(ToolCall(id=block.tool_call_id or "", function=function))
        elif isinstance(block, CitableBlock | CitationBlock):
            text = "\n".join(b.text for b in block.nested_blocks if isinstance(b, TextBlock))
            parts.append({"type": "text", "text": text})
        elif isinstance(block, ThinkingBlock | CachePoint):
            continue
        elif isinstance(block, AudioBlock | VideoBlock | DocumentBlock):
            raise ValueError(
                f"ModelsLab's chat API does not accept {type(block).__name__} content; "
                "send text or images."
            )
    if not calls:  # kept in additional_kwargs (OpenAI objects or dicts)
        legacy = message.additional_kwargs.get("tool_calls") or ()
        calls = [ToolCall.model_validate(c, from_attributes=True) for c in legacy]
    content: str | list[dict[str, Any]] | None = parts
    if all(part["type"] == "text" for part in parts):  # no image: one string
        content = "\n".join(part["text"] for part in parts) or (None if calls else "")
    tool_call_id = message.additional_kwargs.get("tool_call_id")
    name = message.additional_kwargs.get("name")
    return WireMessage(
        role=role,
        content=content,
        name=name if isinstance(name, str) else None,
        tool_calls=calls or None,
        tool_call_id=str(tool_call_id) if role == "tool" and tool_call_id else None,
    )


def tool_specs(tools: Sequence[BaseTool], *, strict: bool = False) -> list[dict[str, Any]]:
    """OpenAI-style function specs for ``tools``; ``strict`` asks for exact schema adherence."""
    specs = []
    for index, tool in enumerate(tools):
        name = tool.metadata.name
        if not isinstance(name, str) or not name.strip():
            # The model calls tools by name: a nameless one would go out as "name": null.
            raise ParameterError(
                f"tools[{index}] ({type(tool).__name__}) has no name: every tool needs one "
                "(ToolMetadata(name=...))",
                field="tools",
            )
        spec = tool.metadata.to_openai_tool(skip_length_check=True)
        if strict:
            spec["function"]["strict"] = True
            spec["function"]["parameters"]["additionalProperties"] = False
        specs.append(spec)
    return specs


def resolve_tool_choice(
    tool_choice: str | dict[str, Any] | None, tool_required: bool = False
) -> str | dict[str, Any]:
    """``"auto"``/``"none"``/``"required"``, a dict as is, or a tool name forced."""
    if tool_choice is None:
        return "required" if tool_required else "auto"
    if isinstance(tool_choice, dict) or tool_choice in _TOOL_CHOICES:
        return tool_choice
    return {"type": "function", "function": {"name": tool_choice}}


def json_request(
    output_cls: type[BaseModel], messages: Sequence[ChatMessage], kwargs: dict[str, Any] | None
) -> tuple[list[ChatMessage], dict[str, Any]]:
    """``messages`` after a system message with the format instructions for ``output_cls``, and
    the call's ``kwargs`` with its ``json_schema`` response format (the core's rules, shared
    with LangChain)."""
    instructions = PydanticOutputParser(output_cls).get_format_string(escape_json=False)
    system = ChatMessage(role=MessageRole.SYSTEM, content=instructions.strip())
    schema = json_schema_format(output_cls.model_json_schema(), name=output_cls.__name__)
    return [system, *messages], {**(kwargs or {}), "response_format": schema}


def json_fallback_kwargs(error: BadRequestError, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` asking again in JSON mode when ``error`` refused the ``json_schema`` format;
    raises ``error`` again when it stands."""
    fallback = json_mode_fallback(error)
    if fallback is None:
        raise error
    return {**kwargs, "response_format": fallback}


# --- wire -> LlamaIndex ------------------------------------------------------------------------


def _tool_kwargs(arguments: str) -> dict[str, Any] | str:
    """Arguments as a dict where they parse (also partial JSON mid-stream), else the raw text."""
    if not arguments.strip():
        return {}
    try:
        parsed = parse_partial_json(arguments)
    except (ValueError, TypeError):
        return arguments
    return parsed if isinstance(parsed, dict) else arguments


def wire_to_message(message: WireMessage) -> ChatMessage:
    """The API's assistant message as a LlamaIndex one: thinking, text and tool-call blocks."""
    blocks: list[Any] = []
    if message.reasoning_content:
        blocks.append(ThinkingBlock(content=message.reasoning_content))
    content = message.content
    if isinstance(content, list):
        content = "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
    blocks.append(TextBlock(text=content or ""))
    calls = message.tool_calls or []
    for call in calls:
        blocks.append(
            ToolCallBlock(
                tool_call_id=call.id or None,
                tool_name=call.function.name,
                tool_kwargs=_tool_kwargs(call.function.arguments),
            )
        )
    role = _ROLES.get(message.role, MessageRole.ASSISTANT.value)
    # Also under ``additional_kwargs["tool_calls"]`` (OpenAI-like objects), where LlamaIndex's
    # streaming structured-output program looks for them.
    extra = {"tool_calls": [call.model_copy(deep=True) for call in calls]} if calls else {}
    return ChatMessage(role=MessageRole(role), blocks=blocks, additional_kwargs=extra)


def usage_kwargs(usage: Usage | None) -> dict[str, Any]:
    """Token counts under the names LlamaIndex's token counter reads."""
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def response_to_chat(completion: ChatCompletion) -> ChatResponse:
    """A non-streamed chat completion as a ``ChatResponse`` (first choice)."""
    message = completion.choices[0].message if completion.choices else WireMessage()
    return ChatResponse(
        message=wire_to_message(message),
        raw=completion,
        additional_kwargs=usage_kwargs(completion.usage),
    )


def stream_step(acc: StreamAccumulator, chunk: ChatCompletionChunk) -> ChatResponse:
    """Add ``chunk`` to ``acc``: the response with the cumulative message, this delta, the usage
    once sent and the chunk's reasoning as ``thinking_delta`` (as LlamaIndex's agents read it)."""
    acc.add(chunk)
    choice = acc.choices.get(0)
    message = choice.message() if choice is not None else WireMessage(content="")
    delta = next((c.delta for c in chunk.choices if c.index == 0), ChoiceDelta())
    extra = usage_kwargs(acc.usage)
    if delta.reasoning_content:
        extra["thinking_delta"] = delta.reasoning_content
    return ChatResponse(
        message=wire_to_message(message),
        delta=delta.content or "",
        raw=chunk,
        additional_kwargs=extra,
    )


def chat_stream_step() -> Callable[[object, ChatCompletionChunk], ChatResponse]:
    """The ``step`` that relays one chat stream: :func:`stream_step` over a fresh accumulator."""
    acc = StreamAccumulator()
    return lambda _previous, chunk: stream_step(acc, chunk)


def completion_to_response(completion: Completion) -> CompletionResponse:
    """A non-streamed text completion as a ``CompletionResponse`` (first choice)."""
    text = completion.choices[0].text if completion.choices else ""
    return CompletionResponse(
        text=text, raw=completion, additional_kwargs=usage_kwargs(completion.usage)
    )


def stream_completion_step(
    previous: CompletionResponse | None, chunk: Completion
) -> CompletionResponse:
    """One streamed text-completion chunk after ``previous``: the cumulative text, the delta and
    the usage so far."""
    delta = "".join(c.text for c in chunk.choices if c.index == 0)
    text = previous.text if previous is not None else ""
    usage = dict(previous.additional_kwargs) if previous is not None else {}
    if chunk.usage is not None:
        usage = usage_kwargs(chunk.usage)
    return CompletionResponse(text=text + delta, delta=delta, raw=chunk, additional_kwargs=usage)


def parse_output(output_cls: type[M], response: ChatResponse) -> M:
    """A JSON answer as ``output_cls`` (also JSON inside prose, as LlamaIndex's parser finds it)."""
    return output_cls.model_validate_json(extract_json_str(response.message.content or ""))


def tool_calls_to_selections(
    response: ChatResponse, *, error_on_no_tool_call: bool = True
) -> list[ToolSelection]:
    """The tool calls of ``response`` (complete or still streaming) as ``ToolSelection``s."""
    selections = []
    for block in response.message.blocks:
        if not isinstance(block, ToolCallBlock):
            continue
        kwargs = block.tool_kwargs
        if isinstance(kwargs, str):
            parsed = _tool_kwargs(kwargs)
            kwargs = parsed if isinstance(parsed, dict) else {}
        selections.append(
            ToolSelection(
                tool_id=block.tool_call_id or "", tool_name=block.tool_name, tool_kwargs=kwargs
            )
        )
    if not selections and error_on_no_tool_call:
        raise ValueError("Expected at least one tool call, but the model made none.")
    return selections
