"""The demo model: the local server's deterministic "brain" (pure functions, no I/O, no state).

A request body (already parsed JSON) goes in, an :class:`Answer` comes out;
:func:`chat_completion_body` and :func:`text_completion_body` render it as ModelsLab's JSON, and
:mod:`._sse` renders the same answer as a stream.

The default answers: an echo of the last user message; tool calls when tools are offered
(arguments filled from the user's words to fit the tool's JSON schema); the tool results' text
after a tool turn; JSON for ``response_format``; ReAct-formatted turns when the system prompt asks
for them; a ``reasoning_content`` for reasoning models; ``stop``, ``max_tokens`` and ``n``
honoured. The sections: text helpers, the user's words as values, schema filling, tool use
(function calling, JSON mode, ReAct), the answers and their JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Any

# ----------------------------------------------------------------------------- text

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text", None})
_WORD_RE = re.compile(r"\S+")
_PIECE_RE = re.compile(r"\s*\S+")


def message_text(content: Any) -> str:
    """Return the text of a message ``content``: a string, or the joined text parts of a list."""
    if isinstance(content, str) or content is None:
        return content or ""
    parts = [content] if isinstance(content, dict) else content
    if not isinstance(parts, list):
        return str(content)
    texts: list[str] = []
    for part in parts:
        if isinstance(part, dict) and part.get("type") in _TEXT_PART_TYPES:
            part = part.get("text")
        if isinstance(part, str):
            texts.append(part)
    return "\n".join(texts)


def _attachments(*contents: Any) -> str:
    """Describe the non-text parts of message contents ("an image and a file"), or ``""``."""
    kinds: dict[str, None] = {}
    for content in contents:
        for part in content if isinstance(content, list) else []:
            kind = part.get("type") if isinstance(part, dict) else None
            if isinstance(kind, str) and kind not in _TEXT_PART_TYPES:
                kinds[next((k for k in ("image", "audio", "video") if k in kind), "file")] = None
    return " and ".join(("an " if kind[0] in "aeiou" else "a ") + kind for kind in kinds)


def count_words(text: str | None) -> int:
    """Count whitespace-separated words (the local server's notion of a token)."""
    return len(text.split()) if text else 0


def truncate_words(text: str, max_words: int | None) -> tuple[str, bool]:
    """Keep at most ``max_words`` words of ``text`` (original spacing); say whether it cut."""
    words = list(_WORD_RE.finditer(text))
    if max_words is None or len(words) <= max_words:
        return text, False
    return text[: words[max_words - 1].end() if max_words > 0 else 0], True


def apply_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first occurrence of any stop sequence; say whether it cut."""
    positions = [text.find(stop) for stop in stops if stop and stop in text]
    return (text[: min(positions)], True) if positions else (text, False)


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized pieces whose concatenation is exactly ``text``."""
    pieces = _PIECE_RE.findall(text)
    rest = text[sum(len(piece) for piece in pieces) :]
    if rest:
        pieces[-1:] = [(pieces[-1] if pieces else "") + rest]
    return pieces


# ----------------------------------------------------------------------------- values

# The user's words as values for a schema: numbers in order; quoted strings, then runs of
# capitalized words (mid-sentence ones before sentence openers such as "What"); the text itself
# when the strings run out.

_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?!\w)")
_QUOTED_RE = re.compile(
    r"(?<!\w)'([^'\n]+?)'(?!\w)|\"([^\"\n]+?)\""
    r"|\u201c([^\u201d\n]+?)\u201d|\u2018([^\u2019\n]+?)\u2019(?!\w)"
)
_LETTER_WORD_RE = re.compile(r"[^\W\d_](?:[\w\-]|['\u2019](?=\w))*")


def _mention(word: str) -> re.Pattern[str]:
    """Match ``word`` as a whole word, any case, "_" matching a space too."""
    return re.compile(r"(?<!\w)" + re.escape(word).replace("_", "[_ ]") + r"(?!\w)", re.I)


def _names(text: str, excluded: set[str]) -> list[str]:
    """Runs of capitalized words ("New York"): mid-sentence runs first, then sentence openers."""
    runs: list[list[re.Match[str]]] = []
    for word in _LETTER_WORD_RE.finditer(text):
        name = word.group()
        if not name[0].isupper() or name == "I" or name.lower() in excluded:
            continue
        if runs and text[runs[-1][-1].end() : word.start()] == " ":
            runs[-1].append(word)
        else:
            runs.append([word])
    names = {text[run[0].start() : run[-1].end()]: _opens(text, run[0].start()) for run in runs}
    return sorted(names, key=names.__getitem__)


def _opens(text: str, position: int) -> bool:
    before = text[:position].rstrip(" \t\"'\u201c\u2018([")
    return before == "" or before[-1] in ".!?:\n"


class Values:
    """The values of a text (then of a ``fallback`` text), each handed out once: its numbers,
    and its strings (the quoted ones of both texts before the names)."""

    def __init__(self, text: str, exclude: Iterable[str] = (), fallback: str = "") -> None:
        """Read ``text``, then ``fallback``; words in ``exclude`` (tool names) are no values."""
        excluded = {word.lower() for word in exclude}
        self.texts = [text, fallback] if fallback else [text]
        self.numbers = [float(m.group()) for t in self.texts for m in _NUMBER_RE.finditer(t)]
        strings = [*(s for t in self.texts for s in _quoted(t)), *_names(text, excluded)]
        strings += _names(fallback, excluded)
        self.strings = list(dict.fromkeys(s for s in strings if s.lower() not in excluded))
        self.whole = text.strip() or fallback.strip()

    def number(self) -> float:
        """The next number, or 1."""
        return self.numbers.pop(0) if self.numbers else 1.0

    def string(self) -> str:
        """The next quoted string or name, or the whole text."""
        return self.strings.pop(0) if self.strings else self.whole or "value"

    def choose(self, options: list[Any]) -> Any:
        """The first option the text mentions, or the first option."""
        mentioned = (o for t in self.texts for o in options if _mention(str(o)).search(t))
        return next(mentioned, options[0])


def _quoted(text: str) -> list[str]:
    matches = _QUOTED_RE.finditer(text)
    return [s.strip() for m in matches for s in m.groups() if s is not None and s.strip()]


# ----------------------------------------------------------------------------- JSON schema

# Required properties are filled, optional ones left out: numbers (clamped to the bounds) to
# integer and number properties, strings (or a fixed value for a ``format``) to strings, the
# mentioned (or first) option to enums, true to booleans, one item to arrays. ``$ref``, and the
# first non-null branch of ``anyOf``/``oneOf``/``allOf``, are followed.

_MAX_DEPTH = 12
_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
_BOUNDS: tuple[tuple[str, Any, int], ...] = (
    ("minimum", max, 0),
    ("exclusiveMinimum", max, 1),
    ("maximum", min, 0),
    ("exclusiveMaximum", min, -1),
)


def fill_schema(
    schema: Mapping[str, Any], values: Values, root: Mapping[str, Any] | None = None, depth: int = 0
) -> Any:
    """Return a JSON value valid for ``schema`` (``root`` holds its ``$defs``) from ``values``."""
    root = schema if root is None else root
    node = _resolve(schema, root)
    if "const" in node or depth > _MAX_DEPTH:
        return node.get("const")
    if isinstance(node.get("enum"), list) and node["enum"]:
        return values.choose(node["enum"])
    branches = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
    if isinstance(branches, list):
        kinds = [
            b for b in branches if isinstance(b, Mapping) and _kind(_resolve(b, root)) != "null"
        ]
        return fill_schema(kinds[0], values, root, depth + 1) if kinds else None
    kind = _kind(node)
    if kind == "object":
        properties, required = node.get("properties"), node.get("required")
        if not isinstance(properties, Mapping) or not isinstance(required, list):
            return {}
        return {
            key: fill_schema(sub if isinstance(sub, Mapping) else {}, values, root, depth + 1)
            for key, sub in properties.items()
            if key in required
        }
    if kind == "array":
        items, count = node.get("items"), node.get("minItems")
        items = items if isinstance(items, Mapping) else {}
        count = min(count, 16) if isinstance(count, int) and count > 1 else 1
        return [fill_schema(items, values, root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        number = values.number()
        for key, pick, step in _BOUNDS:
            bound = node.get(key)
            if isinstance(bound, int | float) and not isinstance(bound, bool):
                number = float(pick(number, bound + step)) if math.isfinite(bound) else number
        return int(number) if kind == "integer" or number.is_integer() else number
    if kind in ("boolean", "null"):
        return kind == "boolean" or None
    text = _FORMATS.get(str(node.get("format"))) or values.string()
    longest, shortest = node.get("maxLength"), node.get("minLength")
    text = text[:longest] if isinstance(longest, int) else text
    return text.ljust(shortest, ".") if isinstance(shortest, int) else text


def _kind(node: Mapping[str, Any]) -> Any:
    kind = node.get("type")
    if isinstance(kind, list):
        return next((item for item in kind if item != "null"), "null")
    if kind is None and "properties" in node:
        return "object"
    return "array" if kind is None and "items" in node else kind


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """Inline a local ``$ref`` ("#/$defs/Name"), keeping the referring schema's own keys."""
    node = dict(schema)
    for _ in range(_MAX_DEPTH):
        reference = node.pop("$ref", None)
        if not isinstance(reference, str):
            break
        target: Any = root
        for part in filter(None, reference.removeprefix("#").split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            target = target.get(key) if isinstance(target, Mapping) else None
        node = {**(target if isinstance(target, Mapping) else {}), **node}
    return node


# ----------------------------------------------------------------------------- tool use

TOOL_ROLES = frozenset({"tool", "function"})
_REACT_DONE = "Thought: I can answer without using any more tools. I'll use the user's language "
_REACT_DONE += "to answer\nAnswer: "
_REACT_ACT = "Thought: I need to use a tool to help me answer the question.\n"
_KEYS_RE = re.compile(r"\bkeys\s+((?:\w+,\s*)*\w+(?:,?\s+and\s+\w+)?)", re.I)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool the request offers: its name and JSON-schema parameters."""

    name: str
    parameters: Mapping[str, Any]


def tool_specs(body: Mapping[str, Any]) -> list[ToolSpec]:
    """Return the tools a request offers (OpenAI ``tools``, legacy ``functions``, flat forms)."""
    raw = body.get("tools") if isinstance(body.get("tools"), list) else body.get("functions")
    specs: list[ToolSpec] = []
    for item in raw if isinstance(raw, list) else []:
        function = item.get("function", item) if isinstance(item, Mapping) else None
        name = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(function, Mapping) and isinstance(name, str) and name:
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


def select_tool_calls(
    tools: Sequence[ToolSpec], tool_choice: Any, text: str, *, parallel: bool = True
) -> list[tuple[str, str]]:
    """Choose the tool calls for ``text``: a list of (name, JSON arguments).

    A forced ``tool_choice`` wins; otherwise every tool the text names, once per mention in the
    text's order, or the first tool ("both": the first two). "twice" repeats a single call. A
    call's arguments come from the text from its mention to the next one, then the whole text.
    """
    forced = _forced_name(tool_choice)
    if forced is not None:
        plan = [(next((t for t in tools if t.name == forced), ToolSpec(forced, {})), text)]
    else:
        found = [(m.start(), t) for t in tools for m in _mention(t.name).finditer(text)]
        found.sort(key=lambda item: item[0])
        ends = [position for position, _ in found[1:]] + [len(text)]
        plan = [
            (t, text[p if i else 0 : end])
            for i, ((p, t), end) in enumerate(zip(found, ends, strict=False))
        ]
        if not plan:
            both = len(tools) > 1 and re.search(r"\bboth\b", text, re.I) is not None
            plan = [(spec, text) for spec in tools[: 2 if both else 1]]
        if len(plan) == 1 and re.search(r"\btwice\b", text, re.I):
            plan *= 2
    sources: dict[str, Values] = {}
    calls: list[tuple[str, str]] = []
    for spec, segment in plan if parallel else plan[:1]:
        if segment not in sources:
            fallback = "" if segment == text else text
            sources[segment] = Values(segment, [t.name for t in tools], fallback)
        arguments = fill_schema(spec.parameters, sources[segment]) if spec.parameters else {}
        calls.append((spec.name, json.dumps(arguments, ensure_ascii=False)))
    return calls


def json_object_answer(text: str) -> dict[str, Any]:
    """Return the JSON-mode object for ``text``: its quoted words, or the words after "keys"
    ("the keys city and country"), as keys of the text; else ``{"response": text}``."""
    match = _KEYS_RE.search(text)
    keys = _quoted(text) or (re.split(r",?\s+and\s+|,\s*", match.group(1)) if match else [])
    if not keys:
        return {"response": text if text.strip() else "I received an empty message."}
    return dict.fromkeys(keys, text)


def is_react(system: str) -> bool:
    """Say whether a system prompt asks for the ReAct format (Thought/Action/Answer)."""
    return "Action Input:" in system and "Thought:" in system and "Answer:" in system


def _react_tools(system: str) -> list[ToolSpec]:
    """The tools of a ReAct system prompt: "> Tool Name: x" lines, each with its "Tool Args:"."""
    tools: list[ToolSpec] = []
    for block in system.split("> Tool Name:")[1:]:
        name, _, rest = block.partition("\n")
        try:
            found = json.JSONDecoder().raw_decode(rest.partition("Tool Args:")[2].lstrip())[0]
        except ValueError:
            found = {}
        tools.append(ToolSpec(name.strip(), found if isinstance(found, Mapping) else {}))
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
    asked = [message_text(m.get("content")) for m in messages if m.get("role") == "user"]
    question = next((t for t in reversed(asked) if not t.lstrip().startswith("Observation:")), "")
    tools = _react_tools(system)
    if tools and last.get("role") == "user":
        name, arguments = select_tool_calls(tools, None, question, parallel=False)[0]
        return f"{_REACT_ACT}Action: {name}\nAction Input: {arguments}"
    return _REACT_DONE + (question.strip() or "I received an empty message.")


# ----------------------------------------------------------------------------- models and answers

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
    found = [body.get(key) for key in ("model", "model_id")]
    return next((value for value in found if isinstance(value, str) and value), default)


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
    return any(marker in model.lower() for marker in _REASONING_MARKERS)


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
    return None if isinstance(prompt, str | list) and prompt else PROMPT_REQUIRED


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(int(value), 0)


def _choice_count(body: Mapping[str, Any]) -> int:
    return min(_positive_int(body.get("n")) or 1, 128)


def _stops(value: Any) -> list[str]:
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [item for item in values if isinstance(item, str)]


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    return [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []


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
    calls = [m.get("tool_calls") for m in messages if m.get("role") == "assistant"]
    earlier = sum(len(found) for found in calls if isinstance(found, list))
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
    max_tokens = DEFAULT_COMPLETION_MAX_TOKENS if max_tokens is None else max_tokens
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
    users = [message for message in messages if message.get("role") == "user"] or messages
    return users[-1] if users else None


def _echo(messages: Sequence[Mapping[str, Any]]) -> str:
    message = _last_user(messages)
    content = message.get("content") if message is not None else None
    if message_text(content).strip():
        return message_text(content)
    attached = _attachments(content)
    return (
        f"I see {attached} and no text to answer." if attached else "I received an empty message."
    )


def _reasoning(messages: Sequence[Mapping[str, Any]]) -> str:
    message = _last_user(messages)
    text = message_text(message.get("content")) if message is not None else ""
    return "Let me think about: " + (" ".join(text.split()[:8]) or "the request")


def _respond(
    messages: Sequence[Mapping[str, Any]], body: Mapping[str, Any]
) -> tuple[str, list[tuple[str, str]]]:
    """Return the answer text, or the tool calls (name, JSON arguments) to make."""
    system = "\n".join(
        message_text(m.get("content")) for m in messages if m.get("role") in _SYSTEM_ROLES
    )
    if is_react(system):
        return react_turn(messages, system), []
    trailing = list(takewhile(lambda m: m.get("role") in TOOL_ROLES, reversed(messages)))[::-1]
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
    if not isinstance(response_format, Mapping):
        response_format = {}
    kind = response_format.get("type")
    spec = response_format.get("json_schema") if kind == "json_schema" else None
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if isinstance(schema, Mapping):
        return json.dumps(fill_schema(schema, Values(user_text)), ensure_ascii=False), []
    if kind in ("json_schema", "json_object"):
        return json.dumps(json_object_answer(user_text), ensure_ascii=False), []
    return _echo(messages), []


def _tool_results_text(messages: Sequence[Mapping[str, Any]]) -> str:
    joined = "\n".join(filter(None, (message_text(m.get("content")) for m in messages)))
    if joined.strip():
        return joined
    attached = _attachments(*(message.get("content") for message in messages))
    return f"The tool returned {attached}." if attached else "The tool returned no text."


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
