"""The demo model: what the local server answers when no reply is scripted (pure functions).

It echoes the last user message, calls the offered tools and fills JSON schemas with values
from the user's words, answers with tool results, plays ReAct turns and reasoning models, and
continues a text completion (docs/testing.md, "The default model", gives each rule). That is
what ``make demo``, the examples and agents need; tests wanting more script replies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from itertools import takewhile
from typing import Any

from ._wire import Choice, earlier_calls, message_text, named_model, prompts, truthy, whole_number

EMPTY = "I received an empty message."
_TOOL_ROLES = ("tool", "function")
_WORD_RE = re.compile(r"\S+")
_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?!\w)")
_QUOTED_RE = re.compile(
    r"(?<!\w)'([^'\n]+?)'(?!\w)|\"([^\"\n]+?)\""
    r"|\u201c([^\u201d\n]+?)\u201d|\u2018([^\u2019\n]+?)\u2019(?!\w)"
)
_LETTER_WORD_RE = re.compile(r"[^\W\d_](?:[\w\-]|['\u2019](?=\w))*")
_KEYS_RE = re.compile(r"\bkeys\s+((?:\w+,\s*)*\w+(?:,?\s+and\s+\w+)?)", re.I)
_REACT_ACT = "Thought: I need to use a tool to help me answer the question.\nAction: "
_REACT_DONE = "Thought: I can answer without using any more tools. I'll use the user's language "
_REACT_DONE += "to answer\nAnswer: "


def _limit(text: str, body: Mapping[str, Any], max_words: int | None) -> Choice:
    """Cut ``text`` at the request's first stop sequence, then after ``max_words`` words."""
    stops = body.get("stop")
    stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
    cuts = [text.find(stop) for stop in stops if isinstance(stop, str) and stop and stop in text]
    text = text[: min(cuts)] if cuts else text
    words = list(_WORD_RE.finditer(text))
    if max_words is None or len(words) <= max_words:
        return {"content": text}, "stop"
    return {"content": text[: words[max_words - 1].end() if max_words > 0 else 0]}, "length"


def _mention(word: str) -> re.Pattern[str]:
    """Match ``word`` as a whole word, any case, "_" matching a space too."""
    return re.compile(r"(?<!\w)" + re.escape(word).replace("_", "[_ ]") + r"(?!\w)", re.I)


def _quoted(text: str) -> list[str]:
    matches = _QUOTED_RE.finditer(text)
    return [s.strip() for m in matches for s in m.groups() if s is not None and s.strip()]


def _names(text: str) -> list[str]:
    """Runs of capitalized words ("New York"): mid-sentence runs first, then sentence openers."""
    runs: list[list[re.Match[str]]] = []
    for word in _LETTER_WORD_RE.finditer(text):
        if not word.group()[0].isupper() or word.group() == "I":
            continue
        if runs and text[runs[-1][-1].end() : word.start()] == " ":
            runs[-1].append(word)
        else:
            runs.append([word])
    opens: dict[str, bool] = {}
    for run in runs:
        before = text[: run[0].start()].rstrip(" \t\"'\u201c\u2018([")
        opens[text[run[0].start() : run[-1].end()]] = before == "" or before[-1] in ".!?:\n"
    return sorted(opens, key=opens.__getitem__)


class Values:
    """The values of a text, each handed out once: its numbers in order, then its strings
    (quoted ones, then names), then the text itself; words in ``exclude`` are no values."""

    def __init__(self, text: str, exclude: Sequence[str] = ()) -> None:
        """Read the values of ``text``."""
        excluded = {word.lower() for word in exclude}
        self.text = text
        self.numbers = [float(m.group()) for m in _NUMBER_RE.finditer(text)]
        strings = [*_quoted(text), *_names(text)]
        self.strings = list(dict.fromkeys(s for s in strings if s.lower() not in excluded))

    def number(self) -> float:
        """The next number, or 1."""
        return self.numbers.pop(0) if self.numbers else 1.0

    def string(self) -> str:
        """The next quoted string or name, or the whole text."""
        return self.strings.pop(0) if self.strings else self.text.strip() or "value"


def fill_schema(
    schema: Mapping[str, Any], values: Values, root: Mapping[str, Any] | None = None, depth: int = 0
) -> Any:
    """A JSON value valid for ``schema`` from ``values``: required properties only, an enum's
    mentioned (or first) option, a union's first non-null branch, one item per array; local
    ``$ref``s are followed (``root`` holds the definitions)."""
    root = schema if root is None else root
    reference = schema.get("$ref")
    if isinstance(reference, str):
        target: Any = root
        for key in reference.removeprefix("#/").split("/"):
            target = target.get(key) if isinstance(target, Mapping) else None
        schema = target if isinstance(target, Mapping) else {}
    enum, kind = schema.get("enum"), schema.get("type")
    branches = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if "const" in schema or depth > 8:
        return schema.get("const")
    if isinstance(enum, list) and enum:
        return next((o for o in enum if _mention(str(o)).search(values.text)), enum[0])
    if isinstance(branches, list):
        kept = [b for b in branches if isinstance(b, Mapping) and b.get("type") != "null"]
        return fill_schema(kept[0], values, root, depth + 1) if kept else None
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    if kind == "object" or "properties" in schema:
        properties, required = schema.get("properties"), schema.get("required")
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            return {}
        return {
            key: fill_schema(sub if isinstance(sub, Mapping) else {}, values, root, depth + 1)
            for key, sub in properties.items()
            if key in required
        }
    if kind == "array" or "items" in schema:
        items = schema.get("items")
        return [fill_schema(items if isinstance(items, Mapping) else {}, values, root, depth + 1)]
    if kind in ("integer", "number"):
        number = values.number()
        return int(number) if kind == "integer" or number.is_integer() else number
    return True if kind == "boolean" else values.string()


def tool_specs(body: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """The tools a request offers, as (name, parameters): ``tools``, or legacy ``functions``."""
    raw = body.get("tools") if isinstance(body.get("tools"), list) else body.get("functions")
    specs: list[tuple[str, Mapping[str, Any]]] = []
    for item in raw if isinstance(raw, list) else []:
        function = item.get("function", item) if isinstance(item, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(function, Mapping) and isinstance(name, str) and name:
            parameters = function.get("parameters", function.get("input_schema"))
            specs.append((name, parameters if isinstance(parameters, Mapping) else {}))
    return specs


def _forced_name(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, Mapping):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool_choice.get("name")
        return name if isinstance(name, str) and name else None
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "none", "required", "any"):
        return tool_choice
    return None


def select_tool_calls(
    tools: Sequence[tuple[str, Mapping[str, Any]]], tool_choice: Any, text: str
) -> list[dict[str, Any]]:
    """The tool calls (without ids) for ``text``: the forced tool, else each tool the text names
    (in the text's order), else the first tool; arguments from the text's values."""
    forced = _forced_name(tool_choice)
    if forced is not None:
        chosen = [next((tool for tool in tools if tool[0] == forced), (forced, {}))]
    else:
        found = sorted(
            (m.start(), i) for i, t in enumerate(tools) for m in _mention(t[0]).finditer(text)
        )
        chosen = [tools[i] for _, i in found] or list(tools[:1])
    values = Values(text, [name for name, _ in tools])
    calls = []
    for name, parameters in chosen:
        arguments = fill_schema(parameters, values) if parameters else {}
        function = {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}
        calls.append({"id": None, "type": "function", "function": function})
    return calls


def _json_object(text: str) -> dict[str, Any]:
    """JSON mode: the quoted words, or the words after "keys" ("the keys city and country"),
    as keys of the text; else ``{"response": text}``."""
    match = _KEYS_RE.search(text)
    keys = _quoted(text) or (re.split(r",?\s+and\s+|,\s*", match.group(1)) if match else [])
    return dict.fromkeys(keys, text) if keys else {"response": text if text.strip() else EMPTY}


def _react_turn(messages: Sequence[Mapping[str, Any]], system: str, question: str) -> str:
    """One ReAct turn: after an observation, it is the answer; else an action on a tool listed
    in ``system`` ("> Tool Name:" lines with their "Tool Args:"), or the question as the answer."""
    last = messages[-1]
    last_text = message_text(last.get("content")).strip()
    if last.get("role") in _TOOL_ROLES or last_text.startswith("Observation:"):
        return _REACT_DONE + (
            last_text.removeprefix("Observation:").strip() or "The tool returned no text."
        )
    tools: list[tuple[str, Mapping[str, Any]]] = []
    for block in system.split("> Tool Name:")[1:]:
        name, _, rest = block.partition("\n")
        try:
            found = json.JSONDecoder().raw_decode(rest.partition("Tool Args:")[2].lstrip())[0]
        except ValueError:
            found = {}
        tools.append((name.strip(), found if isinstance(found, Mapping) else {}))
    if tools and last.get("role") == "user":
        function = select_tool_calls(tools, None, question)[0]["function"]
        return f"{_REACT_ACT}{function['name']}\nAction Input: {function['arguments']}"
    return _REACT_DONE + (question.strip() or EMPTY)


def chat_choice(body: Mapping[str, Any]) -> Choice:
    """The demo model's answer to a (validated) chat request."""
    messages: list[Mapping[str, Any]] = body["messages"]
    users = [m for m in messages if m.get("role") == "user"] or messages
    question = message_text(users[-1].get("content"))
    system = "\n".join(
        message_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer")
    )
    trailing = list(takewhile(lambda m: m.get("role") in _TOOL_ROLES, reversed(messages)))
    tools, tool_choice = tool_specs(body), body.get("tool_choice", body.get("function_call"))
    response_format = body.get("response_format")
    response_format = response_format if isinstance(response_format, Mapping) else {}
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    results = "\n".join(filter(None, (message_text(m.get("content")) for m in reversed(trailing))))
    forced = tool_choice in ("required", "any", True) or _forced_name(tool_choice) is not None
    calls: list[dict[str, Any]] = []
    if "Thought:" in system and "Action Input:" in system and "Answer:" in system:
        text = _react_turn(messages, system, question)
    elif trailing and not (tools and forced):
        text = results if results.strip() else "The tool returned no text."
    elif tools and tool_choice != "none" and (messages[-1].get("role") == "user" or forced):
        source = f"{results}\n{question}" if trailing else question  # called again: results' values
        if trailing and _forced_name(tool_choice) is None:  # "required": one not called yet
            functions = [c.get("function") for c in earlier_calls(messages) if isinstance(c, dict)]
            called = {f.get("name") for f in functions if isinstance(f, dict)}
            tools = [tool for tool in tools if tool[0] not in called] or tools
        calls = select_tool_calls(tools, tool_choice, source)
        calls = calls[:1] if body.get("parallel_tool_calls") is False else calls
    elif response_format.get("type") == "json_schema" and isinstance(schema, Mapping):
        text = json.dumps(fill_schema(schema, Values(question)), ensure_ascii=False)
    elif response_format.get("type") in ("json_schema", "json_object"):
        text = json.dumps(_json_object(question), ensure_ascii=False)
    else:
        text = question if question.strip() else EMPTY
    message: dict[str, Any]
    if calls:
        message, finish = {"content": None, "tool_calls": calls}, "tool_calls"
    else:
        message, finish = _limit(text, body, whole_number(body.get("max_tokens")))
    model = (named_model(body) or "").lower()
    if any(marker in model for marker in ("r1", "reason", "think")):  # a reasoning model
        topic = " ".join(question.split()[:8]) or "the request"
        message["reasoning_content"] = "Let me think about: " + topic
    return message, finish


def completion_choices(body: Mapping[str, Any]) -> list[Choice]:
    """The demo model's answer to a (validated) text-completion request: per prompt, a space
    and its last line (``max_tokens`` defaults to 128 words; ``echo`` prepends the prompt)."""
    max_words = whole_number(body.get("max_tokens"))
    choices: list[Choice] = []
    for prompt in prompts(body.get("prompt")):
        lines = [line.strip() for line in prompt.splitlines() if line.strip()]
        continuation = " " + (lines[-1] if lines else "(an empty prompt)")
        message, finish = _limit(continuation, body, 128 if max_words is None else max_words)
        if truthy(body.get("echo")):
            message["content"] = prompt + message["content"]
        choices.append((message, finish))
    return choices
