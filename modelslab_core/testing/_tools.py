"""Tool use of the local server's deterministic model (pure, no I/O).

Which tools to call and with what arguments (function calling), what JSON to return in JSON
mode, and how to play a ReAct turn when the system prompt asks for the ReAct format.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._schema import ValueSource, fill_schema
from ._text import TextValues, extract_values, message_text

__all__ = [
    "TOOL_ROLES",
    "ToolSpec",
    "is_react",
    "json_object_answer",
    "react_turn",
    "select_tool_calls",
    "tool_specs",
]

TOOL_ROLES = frozenset({"tool", "function"})
_REPEAT_WORDS = {"twice": 2, "two times": 2, "thrice": 3, "three times": 3}
_REACT_DONE = "Thought: I can answer without using any more tools. I'll use the user's language "
_REACT_DONE += "to answer\nAnswer: "
_REACT_ACT = "Thought: I need to use a tool to help me answer the question.\n"
_KEYS_AFTER_RE = re.compile(
    r"\b(?:keys?|fields?|properties)\s*(?:named|called|:)?\s+"
    r"([A-Za-z_]\w*(?:\s*(?:,\s*and|,|and)\s*[A-Za-z_]\w*)*)",
    re.IGNORECASE,
)
_KEYS_BEFORE_RE = re.compile(
    r"\b([A-Za-z_]\w*(?:\s*(?:,\s*and|,|and)\s*[A-Za-z_]\w*)+)\s+(?:keys|fields)\b",
    re.IGNORECASE,
)
_KEY_SPLIT_RE = re.compile(r"\s*(?:,\s*and|,|\band\b)\s*", re.IGNORECASE)
_REACT_TOOL_RE = re.compile(r"^> Tool Name: *(.+?) *$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the request offers: its name and JSON-schema parameters."""

    name: str
    parameters: Mapping[str, Any]


# ----------------------------------------------------------------------------- tools


def tool_specs(body: Mapping[str, Any]) -> list[ToolSpec]:
    """Return the tools a request offers (OpenAI ``tools``, legacy ``functions``, flat forms)."""
    raw = body.get("tools")
    if not isinstance(raw, list):
        raw = body.get("functions")
    if not isinstance(raw, list):
        return []
    specs: list[ToolSpec] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        function = item.get("function", item)
        if not isinstance(function, Mapping):
            continue
        name = function.get("name")
        if not isinstance(name, str) or not name:
            continue
        parameters = function.get("parameters", function.get("input_schema"))
        specs.append(ToolSpec(name, parameters if isinstance(parameters, Mapping) else {}))
    return specs


def _forced_name(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        return name if isinstance(name, str) and name else None
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required", "any"):
        return tool_choice
    return None


def _repeat_count(text: str) -> int:
    lowered = text.lower()
    counts = [count for word, count in _REPEAT_WORDS.items() if re.search(rf"\b{word}\b", lowered)]
    return max(counts, default=1)


def _mentions(spec: ToolSpec, text: str) -> list[int]:
    positions: set[int] = set()
    for variant in {spec.name, spec.name.replace("_", " ")}:
        pattern = r"(?<!\w)" + re.escape(variant) + r"(?!\w)"
        positions.update(match.start() for match in re.finditer(pattern, text, re.IGNORECASE))
    return sorted(positions)


def select_tool_calls(
    tools: Sequence[ToolSpec], tool_choice: Any, text: str, *, parallel: bool = True
) -> list[tuple[str, str]]:
    """Choose the tool calls for ``text``: a list of (name, JSON arguments).

    A forced ``tool_choice`` wins; otherwise every tool named in the text (once per
    mention, in the order offered), or the first tool; "twice" repeats a single call and
    "both" calls the first two tools when none is named. Arguments come from the text
    between a mention and the next one, falling back to the whole text.
    """
    if not tools:
        return []
    exclude = [spec.name for spec in tools]
    forced = _forced_name(tool_choice)
    plan: list[tuple[ToolSpec, tuple[int, int]]] = []
    whole = (0, len(text))
    if forced is not None:
        spec = next((item for item in tools if item.name == forced), ToolSpec(forced, {}))
        plan.append((spec, whole))
    else:
        found = [(position, spec) for spec in tools for position in _mentions(spec, text)]
        starts = sorted({position for position, _ in found})
        for position, spec in found:
            index = starts.index(position)
            start = 0 if index == 0 else position
            end = starts[index + 1] if index + 1 < len(starts) else len(text)
            plan.append((spec, (start, end)))
        if not plan:
            both = re.search(r"\bboth\b", text, re.IGNORECASE) is not None and len(tools) > 1
            plan = [(spec, whole) for spec in tools[: 2 if both else 1]]
        if len(plan) == 1:
            plan = plan * _repeat_count(text)
    if not parallel:
        plan = plan[:1]
    whole_values = extract_values(text, exclude)
    sources: dict[tuple[int, int], ValueSource] = {}
    calls: list[tuple[str, str]] = []
    for spec, span in plan:
        source = sources.get(span)
        if source is None:
            if span == whole:
                source = ValueSource(whole_values)
            else:
                segment = extract_values(text[span[0] : span[1]], exclude)
                source = ValueSource(segment, whole_values)
            sources[span] = source
        arguments = fill_schema(spec.parameters, source) if spec.parameters else {}
        calls.append((spec.name, json.dumps(arguments, ensure_ascii=False)))
    return calls


# ----------------------------------------------------------------------------- JSON mode


def _requested_keys(text: str, values: TextValues) -> list[str]:
    if values.quoted:
        return list(values.quoted[:20])
    for pattern in (_KEYS_AFTER_RE, _KEYS_BEFORE_RE):
        match = pattern.search(text)
        if match:
            keys = [key for key in _KEY_SPLIT_RE.split(match.group(1)) if key]
            if keys:
                return list(dict.fromkeys(keys))
    return []


def json_object_answer(text: str) -> dict[str, Any]:
    """Return the JSON-mode object for ``text``: the keys it asks for, or ``{"response": ...}``."""
    values = extract_values(text)
    keys = _requested_keys(text, values)
    if not keys:
        return {"response": text if text.strip() else "I received an empty message."}
    without_keys = TextValues(
        text=text,
        numbers=values.numbers,
        names=tuple(name for name in values.names if name not in keys),
        last_word=values.last_word,
    )
    schema = {
        "type": "object",
        "properties": {key: {"type": "string"} for key in keys},
        "required": keys,
    }
    result = fill_schema(schema, ValueSource(without_keys))
    return result if isinstance(result, dict) else {}


# ----------------------------------------------------------------------------- ReAct


def is_react(system: str) -> bool:
    """Say whether a system prompt asks for the ReAct format (Thought/Action/Answer)."""
    return "Action Input:" in system and "Thought:" in system and "Answer:" in system


def _react_tools(system: str) -> list[ToolSpec]:
    decoder = json.JSONDecoder()
    tools: list[ToolSpec] = []
    for match in _REACT_TOOL_RE.finditer(system):
        parameters: Mapping[str, Any] = {}
        following = system.find("> Tool Name:", match.end())
        args_at = system.find("Tool Args:", match.end())
        if args_at != -1 and (following == -1 or args_at < following):
            raw = system[args_at + len("Tool Args:") :].lstrip()
            try:
                decoded, _ = decoder.raw_decode(raw)
            except ValueError:
                decoded = {}
            if isinstance(decoded, Mapping):
                parameters = decoded
        tools.append(ToolSpec(match.group(1), parameters))
    return tools


def react_turn(messages: Sequence[Mapping[str, Any]], system: str) -> str:
    """Play one ReAct turn: an Action on the tools listed in ``system``, or the Answer.

    After an ``Observation:`` (or a tool message) the observation is the answer; otherwise
    the first tool the question names (or the first tool) is called with arguments from the
    question; with no tools the question is echoed as the answer.
    """
    last = messages[-1]
    last_text = message_text(last.get("content")).strip()
    if last.get("role") in TOOL_ROLES or last_text.startswith("Observation:"):
        observation = last_text.removeprefix("Observation:").strip()
        return _REACT_DONE + (observation or "The tool returned no text.")
    question = ""
    for message in reversed(messages):
        text = message_text(message.get("content"))
        if message.get("role") == "user" and not text.lstrip().startswith("Observation:"):
            question = text
            break
    tools = _react_tools(system)
    if tools and last.get("role") == "user":
        calls = select_tool_calls(tools, None, question, parallel=False)
        if calls:
            name, arguments = calls[0]
            return f"{_REACT_ACT}Action: {name}\nAction Input: {arguments}"
    return _REACT_DONE + (question.strip() or "I received an empty message.")
