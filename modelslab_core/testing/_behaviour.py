"""The deterministic "model" of the local server: pure functions from request dicts to answers.

Nothing here does I/O or keeps state. A request body (already parsed JSON) goes in, an
:class:`Answer` comes out; :func:`chat_completion_body` and :func:`text_completion_body` render
it as ModelsLab's JSON, and :mod:`._sse` renders the same answer as a stream.

The default answers: an echo of the last user message; tool calls when tools are offered
(arguments filled from the user's words); the tool results' text after a tool turn; JSON
for ``response_format``; ReAct-formatted turns when the system prompt asks for them; a
``reasoning_content`` for reasoning models; ``stop``, ``max_tokens`` and ``n`` honoured.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._schema import ValueSource, fill_schema
from ._text import (
    apply_stop,
    attachment_kinds,
    count_words,
    extract_values,
    first_words,
    message_text,
    truncate_words,
)
from ._tools import (
    TOOL_ROLES,
    is_react,
    json_object_answer,
    react_turn,
    select_tool_calls,
    tool_specs,
)

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_COMPLETION_MODEL",
    "POPULAR_MODELS",
    "Answer",
    "Choice",
    "ToolCall",
    "chat_answer",
    "chat_completion_body",
    "chat_request_error",
    "completion_answer",
    "completion_request_error",
    "is_reasoning_model",
    "make_answer",
    "models_body",
    "prompt_token_count",
    "requested_model",
    "scripted_answer",
    "text_completion_body",
    "wants_stream",
    "wants_usage",
]

DEFAULT_CHAT_MODEL = "meta-llama-3-8B-instruct"
DEFAULT_COMPLETION_MODEL = "ModelsLab/Llama-3.1-8b-Uncensored-Dare"
POPULAR_MODELS: tuple[str, ...] = (
    "meta-llama-3-8B-instruct",
    "meta-llama-Llama-3.3-70B-Instruct-Turbo",
    "meta-llama-Meta-Llama-3.1-405B-Instruct-Turbo",
    "deepseek-ai-DeepSeek-R1-Distill-Llama-70B",
    "deepseek-ai-DeepSeek-V3",
    "gemini-2.0-flash-001",
    "gemini-2.5-pro",
    "Qwen-Qwen2.5-72B-Instruct-Turbo",
    "Qwen-Qwen2.5-Coder-32B-Instruct",
    "mistralai-Mixtral-8x7B-Instruct-v0.1",
    "mistralai-Mistral-Small-24B-Instruct-2501",
    "Qwen/Qwen2.5-VL-72B-Instruct-together",
    "ModelsLab/Llama-3.1-8b-Uncensored-Dare",
)
MESSAGES_REQUIRED = "The messages field is required."
PROMPT_REQUIRED = "The prompt field is required."
DEFAULT_COMPLETION_MAX_TOKENS = 128

_SYSTEM_ROLES = frozenset({"system", "developer"})
_REASONING_MARKERS = ("r1", "reason", "think")


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call of an answer: ``arguments`` is the JSON text of the arguments."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Choice:
    """One choice of an answer (``content`` is the text for text completions)."""

    content: str | None
    finish_reason: str
    reasoning: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete answer: its choices and the usage to report."""

    choices: tuple[Choice, ...]
    usage: Mapping[str, int]


# ----------------------------------------------------------------------------- request fields


def requested_model(body: Mapping[str, Any], default: str) -> str:
    """Return the requested model id (``model`` or its alias ``model_id``)."""
    for key in ("model", "model_id"):
        value = body.get(key)
        if isinstance(value, str) and value:
            return value
    return default


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and value == 1)


def wants_stream(body: Mapping[str, Any]) -> bool:
    """Say whether the request asks for a stream (``stream`` or its alias ``streaming``)."""
    return _truthy(body.get("stream")) or _truthy(body.get("streaming"))


def wants_usage(body: Mapping[str, Any]) -> bool:
    """Say whether a stream must end with a usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, Mapping) and _truthy(options.get("include_usage"))


def is_reasoning_model(model: str) -> bool:
    """Say whether ``model`` is treated as a reasoning model (sends ``reasoning_content``)."""
    lowered = model.lower()
    return any(marker in lowered for marker in _REASONING_MARKERS)


def chat_request_error(body: Mapping[str, Any]) -> str | None:
    """Return the validation message for a chat body, or ``None`` when it is acceptable."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return MESSAGES_REQUIRED
    if not all(isinstance(message, Mapping) for message in messages):
        return "The messages must be objects with a role and a content."
    return None


def completion_request_error(body: Mapping[str, Any]) -> str | None:
    """Return the validation message for a text-completion body, or ``None``."""
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        return None
    if isinstance(prompt, list) and prompt:
        return None
    return PROMPT_REQUIRED


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(int(value), 0)


def _choice_count(body: Mapping[str, Any]) -> int:
    value = _positive_int(body.get("n"))
    return min(max(value or 1, 1), 128)


def _stops(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [message for message in messages if isinstance(message, Mapping)]


def prompt_token_count(body: Mapping[str, Any]) -> int:
    """Count the words of the request's messages (chat) or prompts (completions), at least 1."""
    total = sum(count_words(message_text(m.get("content"))) for m in _messages(body))
    total += sum(count_words(prompt) for prompt in _prompts(body.get("prompt")))
    return max(total, 1)


def _prompts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(item, int) for item in value):
            return [" ".join(str(item) for item in value)]
        return [item if isinstance(item, str) else json.dumps(item) for item in value]
    return []


# ----------------------------------------------------------------------------- answers


def make_answer(
    choices: Sequence[Choice], prompt_tokens: int, usage: Mapping[str, int] | None = None
) -> Answer:
    """Build an :class:`Answer`, computing usage from word counts unless ``usage`` is given."""
    if usage is None:
        completion = sum(_choice_tokens(choice) for choice in choices)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
    return Answer(choices=tuple(choices), usage=dict(usage))


def _choice_tokens(choice: Choice) -> int:
    tokens = count_words(choice.content) + count_words(choice.reasoning)
    return tokens + sum(max(count_words(call.arguments), 1) for call in choice.tool_calls)


def _limit(text: str, stops: Sequence[str], max_tokens: int | None) -> tuple[str, str]:
    text, _ = apply_stop(text, stops)
    text, cut = truncate_words(text, max_tokens)
    return text, "length" if cut else "stop"


def _call_ids(messages: Sequence[Mapping[str, Any]], count: int) -> list[str]:
    """Ids ``call_<n>`` numbered after the tool calls already in the conversation."""
    earlier = 0
    for message in messages:
        calls = message.get("tool_calls")
        if message.get("role") == "assistant" and isinstance(calls, list):
            earlier += len(calls)
    return [f"call_{earlier + index + 1}" for index in range(count)]


def chat_answer(body: Mapping[str, Any]) -> Answer:
    """Answer a (validated) chat request with the default deterministic behaviour."""
    messages = _messages(body)
    model = requested_model(body, DEFAULT_CHAT_MODEL)
    content, calls = _respond(messages, body)
    reasoning = _reasoning(messages) if is_reasoning_model(model) else None
    if calls:
        ids = _call_ids(messages, len(calls))
        tool_calls = tuple(
            ToolCall(id=call_id, name=name, arguments=arguments)
            for call_id, (name, arguments) in zip(ids, calls, strict=True)
        )
        choice = Choice(None, "tool_calls", reasoning, tool_calls)
    else:
        text, finish = _limit(
            content, _stops(body.get("stop")), _positive_int(body.get("max_tokens"))
        )
        choice = Choice(text, finish, reasoning)
    return make_answer([choice] * _choice_count(body), prompt_token_count(body))


def completion_answer(body: Mapping[str, Any]) -> Answer:
    """Answer a (validated) text-completion request: one choice per prompt and per ``n``."""
    stops = _stops(body.get("stop"))
    max_tokens = _positive_int(body.get("max_tokens"))
    if max_tokens is None:
        max_tokens = DEFAULT_COMPLETION_MAX_TOKENS
    echo = _truthy(body.get("echo"))
    choices: list[Choice] = []
    for prompt in _prompts(body.get("prompt")):
        text, finish = _limit(_continuation(prompt), stops, max_tokens)
        choices.extend([Choice(prompt + text if echo else text, finish)] * _choice_count(body))
    return make_answer(choices, prompt_token_count(body))


def scripted_answer(
    body: Mapping[str, Any],
    *,
    chat: bool,
    content: str | None,
    reasoning: str | None,
    finish_reason: str,
    tool_calls: Sequence[tuple[str, str, str | None]],
    usage: Mapping[str, int] | None,
) -> Answer:
    """Build the answer of a scripted reply for this request (``n`` and prompts honoured)."""
    if chat:
        messages = _messages(body)
        ids = _call_ids(messages, len(tool_calls))
        calls = tuple(
            ToolCall(id=call_id or default_id, name=name, arguments=arguments)
            for default_id, (name, arguments, call_id) in zip(ids, tool_calls, strict=True)
        )
        finish = "tool_calls" if calls and finish_reason == "stop" else finish_reason
        choices = [Choice(content, finish, reasoning, calls)] * _choice_count(body)
    else:
        prompts = max(len(_prompts(body.get("prompt"))), 1)
        choices = [Choice(content or "", finish_reason)] * (prompts * _choice_count(body))
    return make_answer(choices, prompt_token_count(body), usage)


def _continuation(prompt: str) -> str:
    lines = [line.strip() for line in prompt.splitlines() if line.strip()]
    return " " + lines[-1] if lines else " (an empty prompt)"


def _last_user(messages: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    found = next((m for m in reversed(messages) if m.get("role") == "user"), None)
    if found is None and messages:
        found = messages[-1]
    return found


def _echo(messages: Sequence[Mapping[str, Any]]) -> str:
    message = _last_user(messages)
    content = message.get("content") if message is not None else None
    text = message_text(content)
    if text.strip():
        return text
    kinds = attachment_kinds(content)
    if kinds:
        return f"I see {_describe(kinds)} and no text to answer."
    return "I received an empty message."


def _describe(kinds: Sequence[str]) -> str:
    unique = list(dict.fromkeys(kinds))
    words = [("an " if kind[0] in "aeiou" else "a ") + kind for kind in unique]
    return " and ".join(words)


def _reasoning(messages: Sequence[Mapping[str, Any]]) -> str:
    message = _last_user(messages)
    text = message_text(message.get("content")) if message is not None else ""
    return "Let me think about: " + (first_words(text, 8) or "the request")


def _respond(
    messages: Sequence[Mapping[str, Any]], body: Mapping[str, Any]
) -> tuple[str, list[tuple[str, str]]]:
    """Return the answer text, or the tool calls (name, JSON arguments) to make."""
    system = "\n".join(
        message_text(m.get("content")) for m in messages if m.get("role") in _SYSTEM_ROLES
    )
    if is_react(system):
        return react_turn(messages, system), []
    trailing: list[Mapping[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") not in TOOL_ROLES:
            break
        trailing.insert(0, message)
    if trailing:
        return _tool_results_text(trailing), []
    last = messages[-1]
    user = _last_user(messages)
    user_text = message_text(user.get("content")) if user is not None else ""
    tools = tool_specs(body)
    tool_choice = body.get("tool_choice", body.get("function_call"))
    if tools and tool_choice != "none" and last.get("role") == "user":
        parallel = body.get("parallel_tool_calls") is not False
        calls = select_tool_calls(tools, tool_choice, user_text, parallel=parallel)
        if calls:
            return "", calls
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_schema":
            spec = response_format.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, Mapping) else None
            if isinstance(schema, Mapping):
                filled = fill_schema(schema, ValueSource(extract_values(user_text)))
                return json.dumps(filled, ensure_ascii=False), []
            return json.dumps(json_object_answer(user_text), ensure_ascii=False), []
        if kind == "json_object":
            return json.dumps(json_object_answer(user_text), ensure_ascii=False), []
    return _echo(messages), []


def _tool_results_text(messages: Sequence[Mapping[str, Any]]) -> str:
    texts = [message_text(message.get("content")) for message in messages]
    joined = "\n".join(text for text in texts if text)
    if joined.strip():
        return joined
    kinds = [kind for message in messages for kind in attachment_kinds(message.get("content"))]
    if kinds:
        return f"The tool returned {_describe(kinds)}."
    return "The tool returned no text."


# ----------------------------------------------------------------------------- rendering


def _message_body(choice: Choice, uncensored: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.reasoning is not None:
        message["reasoning_content"] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in choice.tool_calls
        ]
    elif uncensored:
        message["tool_calls"] = []
    return message


def chat_completion_body(
    answer: Answer, *, completion_id: str, created: int, model: str, uncensored: bool = False
) -> dict[str, Any]:
    """Render ``answer`` as a ``chat.completion`` object."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": index,
                "message": _message_body(choice, uncensored),
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(answer.choices)
        ],
        "usage": dict(answer.usage),
    }


def text_completion_body(
    answer: Answer, *, completion_id: str, created: int, model: str
) -> dict[str, Any]:
    """Render ``answer`` as a vLLM-shaped ``text_completion`` object."""
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "text": choice.content or "",
                "index": index,
                "logprobs": None,
                "finish_reason": choice.finish_reason,
                "stop_reason": None,
                "prompt_logprobs": None,
            }
            for index, choice in enumerate(answer.choices)
        ],
        "usage": dict(answer.usage),
    }


def models_body(model_ids: Sequence[str], created: int) -> dict[str, Any]:
    """Render the model list (``{"object": "list", "data": [...]}``)."""
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": created, "owned_by": "modelslab"}
            for model_id in model_ids
        ],
    }
