"""Pure converters between LangChain's messages and ModelsLab's wire models (no I/O); streamed
and whole answers share helpers, so a merged stream gives the same message as ``invoke``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    InvalidToolCall,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.block_translators.openai import convert_to_openai_data_block
from langchain_core.messages.content import is_data_content_block
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import (
    ChatGeneration,
    ChatGenerationChunk,
    ChatResult,
    Generation,
    GenerationChunk,
)
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

import modelslab_core as wire
from modelslab_core.accumulate import ToolCallSlots
from modelslab_core.validation import check_tools

from ._errors import ModelsLabParameterError, translated_errors

#: ``response_metadata["model_provider"]``, as langchain-core 1.x expects of every integration.
PROVIDER = "modelslab"

# Blocks that only mean something in an answer (or to another provider); never sent back.
_DROPPED_BLOCKS = frozenset(
    {"tool_use", "tool_call", "tool_call_chunk", "thinking", "reasoning", "reasoning_content"}
)

# --- LangChain → wire --------------------------------------------------------------------------


def _part_to_wire(block: str | Mapping[str, Any]) -> dict[str, Any] | None:
    """One content block (any image shape LangChain users write) as an OpenAI content part; None
    when it is not sent."""
    if isinstance(block, str):
        return {"type": "text", "text": block}
    kind, source = block.get("type"), block.get("source")
    if kind == "text":
        return {"type": "text", "text": str(block.get("text", ""))}
    if kind in _DROPPED_BLOCKS:
        return None
    if kind == "image_url":
        image = block.get("image_url")
        return {
            "type": "image_url",
            "image_url": {"url": image} if isinstance(image, str) else image,
        }
    if kind == "image" and isinstance(source, Mapping) and source.get("type") in ("base64", "url"):
        # Anthropic's shape
        url = source.get("url")
        if source["type"] == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        return {"type": "image_url", "image_url": {"url": url}}
    if not is_data_content_block(dict(block)):
        raise ValueError(f"Unsupported content block for ModelsLab: {kind!r}")
    if kind != "image":
        raise ValueError(
            f"ModelsLab's chat API takes text and images only, not {kind!r} content blocks"
        )
    return convert_to_openai_data_block(dict(block))  # standard v0 and v1 image blocks


def content_to_wire(
    content: str | list[str | dict[str, Any]], *, flatten: bool = False
) -> str | list[dict[str, Any]]:
    """Message content as the API takes it: a string, or a list of ``text``/``image_url`` parts
    (text-only content as one string with ``flatten``, for assistant and tool messages)."""
    if isinstance(content, str):
        return content
    parts = [p for p in (_part_to_wire(block) for block in content) if p is not None]
    if all(p["type"] == "text" for p in parts) and (flatten or len(parts) == 1):
        return "".join(p["text"] for p in parts)
    return parts


def tool_call_to_wire(call: ToolCall | InvalidToolCall) -> wire.ToolCall:
    """A LangChain tool call (valid or not) as the API's ``tool_calls`` entry."""
    args = call.get("args")
    arguments = args if isinstance(args, str) else json.dumps(args or {}, ensure_ascii=False)
    return wire.ToolCall(
        id=call.get("id") or "",
        function=wire.FunctionCall(name=call.get("name") or "", arguments=arguments),
    )


def message_to_wire(message: BaseMessage) -> wire.ChatMessage:
    """One LangChain message as a wire message."""
    name = message.name or message.additional_kwargs.get("name")
    if isinstance(message, ToolMessage):
        return wire.ChatMessage(
            role="tool",
            content=content_to_wire(message.content, flatten=True),
            tool_call_id=message.tool_call_id,
        )
    if isinstance(message, AIMessage):
        calls = [tool_call_to_wire(c) for c in message.tool_calls]
        calls += [tool_call_to_wire(c) for c in message.invalid_tool_calls]
        content = content_to_wire(message.content, flatten=True)
        return wire.ChatMessage(
            role="assistant",
            content=content or (None if calls else ""),
            name=name,
            tool_calls=calls or None,
        )
    if isinstance(message, HumanMessage):
        role = "user"
    elif isinstance(message, SystemMessage):
        role = "system"
    elif isinstance(message, ChatMessage):
        role = message.role
    elif isinstance(message, FunctionMessage):
        role = "function"
    else:
        raise TypeError(f"ModelsLab cannot send a message of type {type(message).__name__}")
    return wire.ChatMessage(role=role, content=content_to_wire(message.content), name=name)


ToolLike = Mapping[str, Any] | type | Callable[..., Any] | BaseTool


def tools_to_wire(tools: Sequence[ToolLike], *, strict: bool | None = None) -> list[dict[str, Any]]:
    """Any BaseTool, function, pydantic class, TypedDict or dict as OpenAI tools. A function tool
    with no name, or a tool LangChain cannot convert, raises :class:`ModelsLabParameterError`
    naming its position (``tools[1]``); another kind of tool goes out as given."""
    formatted = []
    for index, tool in enumerate(tools):
        try:
            formatted.append(convert_to_openai_tool(tool, strict=strict))
        except KeyError:  # another provider's shape (Bedrock's toolSpec) without its name
            raise ModelsLabParameterError(
                f"tools[{index}] has no function name: every tool needs one", field="tools"
            ) from None
        except (ValueError, TypeError) as exc:
            raise ModelsLabParameterError(
                f"tools[{index}] is not a tool LangChain can convert: {exc}", field="tools"
            ) from exc
    with translated_errors():
        check_tools(formatted)  # the core's check of a request's tools, now at bind time
    return formatted


def tool_choice_to_wire(
    tool_choice: str | bool | Mapping[str, Any] | None, tool_names: Sequence[str]
) -> str | dict[str, Any] | None:
    """LangChain's tool_choice as the API's: ``auto``/``none``/``required``, or one function."""
    if tool_choice is None:
        return None
    if isinstance(tool_choice, bool):
        return "required" if tool_choice else "none"
    if isinstance(tool_choice, Mapping):
        return dict(tool_choice)
    if tool_choice in ("auto", "none", "required"):
        return tool_choice
    if tool_choice == "any":
        return "required"
    if tool_choice not in tool_names:
        raise ValueError(
            f"tool_choice {tool_choice!r} names no bound tool; tools: {list(tool_names)}"
        )
    return {"type": "function", "function": {"name": tool_choice}}


# --- wire → LangChain --------------------------------------------------------------------------


def usage_to_metadata(usage: wire.Usage) -> UsageMetadata:
    """Token counts as LangChain's ``UsageMetadata`` (cached and reasoning tokens when given)."""
    metadata = UsageMetadata(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    )
    extra = usage.model_extra or {}
    cached = _detail_count(extra.get("prompt_tokens_details"), "cached_tokens")
    if cached is not None:
        metadata["input_token_details"] = InputTokenDetails(cache_read=cached)
    reasoning = _detail_count(extra.get("completion_tokens_details"), "reasoning_tokens")
    if reasoning is not None:
        metadata["output_token_details"] = OutputTokenDetails(reasoning=reasoning)
    return metadata


def _detail_count(details: Any, name: str) -> int | None:
    """A count inside an optional ``*_tokens_details`` object; None when absent or not a number
    (an unmodelled field: a malformed one is ignored, never an error)."""
    if not isinstance(details, Mapping):
        return None
    try:
        return int(details[name])
    except (KeyError, TypeError, ValueError, OverflowError):
        return None


def _text(content: str | list[dict[str, Any]] | None) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return "".join(str(p.get("text", "")) for p in content if p.get("type", "text") == "text")


def tool_call_from_wire(call: wire.ToolCall) -> ToolCall | InvalidToolCall:
    """A returned tool call; an ``InvalidToolCall`` when its arguments are not a JSON object."""
    name, raw, call_id = call.function.name, call.function.arguments, call.id or None
    try:
        args = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        return invalid_tool_call(name=name, args=raw, id=call_id, error=f"invalid JSON: {exc}")
    if not isinstance(args, dict):
        error = f"arguments are not a JSON object: {raw[:200]}"
        return invalid_tool_call(name=name, args=raw, id=call_id, error=error)
    return tool_call(name=name, args=args, id=call_id)


def _reasoning(text: str | None) -> dict[str, Any]:
    """``additional_kwargs`` holding the reasoning, when there is some."""
    return {"reasoning_content": text} if text else {}


def _answer_metadata(model: str, finish_reason: str | None, response_id: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"model_provider": PROVIDER, "model_name": model}
    if finish_reason:
        metadata["finish_reason"] = finish_reason
    if response_id:
        metadata["id"] = response_id
    return metadata


def completion_to_result(completion: wire.ChatCompletion, *, model: str = "") -> ChatResult:
    """A chat completion as a ``ChatResult``, a generation per choice; ``model`` (the requested
    id) names the model when the answer does not."""
    model_name = completion.model or model
    usage = usage_to_metadata(completion.usage) if completion.usage is not None else None
    generations = []
    for choice in completion.choices:
        message = choice.message
        calls = [tool_call_from_wire(c) for c in message.tool_calls or ()]
        ai = AIMessage(
            content=_text(message.content),
            additional_kwargs=_reasoning(message.reasoning_content),
            tool_calls=[c for c in calls if c.get("type") == "tool_call"],
            invalid_tool_calls=[c for c in calls if c.get("type") == "invalid_tool_call"],
            usage_metadata=usage,
            response_metadata=_answer_metadata(model_name, choice.finish_reason, completion.id),
            id=completion.id or None,
        )
        info = {"finish_reason": choice.finish_reason} if choice.finish_reason else None
        generations.append(ChatGeneration(message=ai, generation_info=info))
    llm_output: dict[str, Any] = {"model_name": model_name, "id": completion.id}
    if completion.usage is not None:
        llm_output["token_usage"] = completion.usage.model_dump()
    if completion.system_fingerprint:
        llm_output["system_fingerprint"] = completion.system_fingerprint
    return ChatResult(generations=generations, llm_output=llm_output)


def chunk_to_generation(
    chunk: wire.ChatCompletionChunk, *, model: str = "", slots: ToolCallSlots | None = None
) -> ChatGenerationChunk | None:
    """One streamed chunk as a ``ChatGenerationChunk`` (None when it carries nothing). Tool-call
    fragments get the call number the accumulator gives them (``slots``, one per stream: their
    ``index``, or their id's place when they have none) so LangChain merges them alike; model
    name and finish reason ride on the chunk that finishes the choice, usage on the one that
    carries it."""
    usage = usage_to_metadata(chunk.usage) if chunk.usage is not None else None
    if not chunk.choices and usage is None:
        return None
    choice = chunk.choices[0] if chunk.choices else wire.ChunkChoice()
    fragments = [
        tool_call_chunk(
            name=(d.function.name if d.function else None) or None,
            args=(d.function.arguments if d.function else None) or None,
            id=d.id or None,
            index=d.index if slots is None else slots.index(choice.index, d),
        )
        for d in choice.delta.tool_calls or ()
    ]
    info: dict[str, Any] | None = None
    metadata: dict[str, Any] = {"model_provider": PROVIDER}
    if choice.finish_reason:
        metadata = _answer_metadata(chunk.model or model, choice.finish_reason, chunk.id)
        info = {"finish_reason": choice.finish_reason}
    message = AIMessageChunk(
        content=choice.delta.content or "",
        additional_kwargs=_reasoning(choice.delta.reasoning_content),
        tool_call_chunks=fragments,
        usage_metadata=usage,
        response_metadata=metadata,
        id=chunk.id or None,
    )
    return ChatGenerationChunk(message=message, generation_info=info)


# --- text completions --------------------------------------------------------------------------


def _choice_info(choice: wire.CompletionChoice, model: str) -> dict[str, Any]:
    info: dict[str, Any] = {"finish_reason": choice.finish_reason, "model_name": model}
    if choice.stop_reason is not None:
        info["stop_reason"] = choice.stop_reason
    if choice.logprobs is not None:
        info["logprobs"] = choice.logprobs
    return info


def completion_to_generations(completion: wire.Completion, *, model: str = "") -> list[Generation]:
    """A text completion's choices as LangChain ``Generation`` objects (usage in the first's
    ``generation_info["token_usage"]``)."""
    generations = []
    for i, choice in enumerate(completion.choices):
        info = _choice_info(choice, completion.model or model)
        if i == 0 and completion.usage is not None:
            info["token_usage"] = completion.usage.model_dump()
        generations.append(Generation(text=choice.text, generation_info=info))
    return generations


def completion_chunk_to_generation(
    chunk: wire.Completion, *, model: str = ""
) -> GenerationChunk | None:
    """One streamed text-completion chunk; None when it carries nothing."""
    info: dict[str, Any] = {}
    text = ""
    if chunk.choices:
        choice = chunk.choices[0]
        text = choice.text
        if choice.finish_reason:
            info = _choice_info(choice, chunk.model or model)
    if chunk.usage is not None:
        info["token_usage"] = chunk.usage.model_dump()
    if not text and not info:
        return None
    return GenerationChunk(text=text, generation_info=info or None)


def llm_output(generations: Sequence[Sequence[Generation]], model: str) -> dict[str, Any]:
    """``LLMResult.llm_output``: the model and the token usage summed over every prompt."""
    total: dict[str, int] = {}
    for choices in generations:
        for generation in choices:
            usage = (generation.generation_info or {}).get("token_usage") or {}
            for key, value in usage.items():
                if isinstance(value, int):
                    total[key] = total.get(key, 0) + value
    return {"token_usage": total, "model_name": model}
