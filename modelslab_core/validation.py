"""Parameter ranges from ModelsLab's LLM API documentation (https://docs.modelslab.com: the chat
and text-completion parameter tables), checked before a request is sent, so a bad value fails at
once with a message naming the field and the range. Bools and non-finite numbers are refused too:
pydantic would send ``True`` as ``1``, and NaN is not JSON."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ParameterError

__all__ = [
    "MAX_STOP_SEQUENCES",
    "check_chat_fields",
    "check_completion_fields",
    "check_numbers",
    "check_params",
    "check_tools",
]

#: Request fields that take a number, with the range ModelsLab's parameter tables give
#: (https://docs.modelslab.com; None: an open end).
_NUMBERS: dict[str, tuple[float | None, float | None]] = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "top_k": (0, None),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
    "repetition_penalty": (None, None),
    "n": (1, 10),
    "max_tokens": (1, None),
    "seed": (None, None),
}
_INTEGERS = frozenset({"n", "max_tokens", "top_k", "seed"})


def check_numbers(values: Mapping[str, Any]) -> None:
    """Refuse a bool or a non-finite number (NaN, infinity) in a field that takes a number, with
    a :class:`ParameterError` naming the field: run on the values as given, before pydantic."""
    for name in _NUMBERS:
        value = values.get(name)
        if isinstance(value, bool):
            raise ParameterError(f"{name} must be a number, got {value!r}", field=name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ParameterError(f"{name} must be a finite number, got {value!r}", field=name)


def check_tools(tools: Sequence[Any] | None) -> None:
    """Every tool is an OpenAI function tool with a name (the model calls tools by name): else a
    :class:`ParameterError` naming the tool's position, before any request."""
    for index, tool in enumerate(tools or ()):
        if not isinstance(tool, Mapping):
            raise ParameterError(
                f"tools[{index}] must be an object like "
                '{"type": "function", "function": {"name": ...}}, '
                f"got {type(tool).__name__}",
                field="tools",
            )
        if tool.get("type", "function") != "function":
            continue  # another kind of tool: the server decides
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else None
        if not isinstance(name, str) or not name.strip():
            raise ParameterError(
                f"tools[{index}] has no function name: every tool needs one", field="tools"
            )


MAX_STOP_SEQUENCES = 4
#: Text completions take max_tokens up to 44,000 (ModelsLab's completions parameter table).
MAX_COMPLETION_TOKENS = 44_000


def check_params(params: Mapping[str, Any]) -> None:
    """Check the sampling parameters in ``params`` (absent or None values are not checked):
    numbers, finite (NaN is not JSON), never a bool, within the documented ranges."""
    check_numbers(params)  # no bool, nothing infinite or NaN ("nan" becomes NaN in pydantic)
    for name, (low, high) in _NUMBERS.items():
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float):
            raise ParameterError(f"{name} must be a number, got {value!r}", field=name)
        # An int is whole already (float() of a huge one would overflow).
        if name in _INTEGERS and isinstance(value, float) and not value.is_integer():
            raise ParameterError(f"{name} must be a whole number, got {value!r}", field=name)
        if (low is not None and value < low) or (high is not None and value > high):
            limits = f">= {low:g}" if high is None else f"between {low:g} and {high:g}"
            raise ParameterError(f"{name} must be {limits}, got {value!r}", field=name)
    stop = params.get("stop")
    if stop is not None:
        stops = [stop] if isinstance(stop, str) else list(stop)
        if len(stops) > MAX_STOP_SEQUENCES:
            raise ParameterError(
                f"stop takes at most {MAX_STOP_SEQUENCES} sequences, got {len(stops)}",
                field="stop",
            )
        if not all(isinstance(s, str) and s for s in stops):
            raise ParameterError("stop sequences must be non-empty strings", field="stop")


def check_chat_fields(params: Mapping[str, Any]) -> None:
    """Check a chat request's field values (its tools are checked as they are given, by
    :func:`check_tools`)."""
    if not params.get("messages"):
        raise ParameterError("messages must hold at least one message", field="messages")
    if not params.get("model"):
        raise ParameterError("model must be a non-empty model id", field="model")
    check_params(params)


def check_completion_fields(params: Mapping[str, Any]) -> None:
    """Check a text-completion request's field values."""
    prompt = params.get("prompt")
    if not prompt or (isinstance(prompt, list) and not all(isinstance(p, str) for p in prompt)):
        raise ParameterError("prompt must be a non-empty string or list of strings", field="prompt")
    if not params.get("model"):
        raise ParameterError("model must be a non-empty model id", field="model")
    check_params(params)
    max_tokens = params.get("max_tokens")
    if max_tokens is not None and max_tokens > MAX_COMPLETION_TOKENS:
        raise ParameterError(
            f"max_tokens must be between 1 and {MAX_COMPLETION_TOKENS} for text completions, "
            f"got {max_tokens}",
            field="max_tokens",
        )
