"""The demo model: the local server's deterministic "brain" (pure functions, no I/O, no state).

A request body (already parsed JSON) goes in, an :class:`Answer` comes out;
:func:`chat_completion_body` and :func:`text_completion_body` render it as ModelsLab's JSON, and
:mod:`._sse` renders the same answer as a stream.

The default answers: an echo of the last user message; tool calls when tools are offered
(arguments filled from the user's words to fit the tool's JSON schema); the tool results' text
after a tool turn; JSON for ``response_format``; ReAct-formatted turns when the system prompt asks
for them; a ``reasoning_content`` for reasoning models; ``stop``, ``max_tokens`` and ``n``
honoured. The sections: text helpers (reading contents, cutting text, picking values out of the
user's words), schema filling, tool use (function calling, JSON mode, ReAct), the answers and
their JSON.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

# ----------------------------------------------------------------------------- text

# Read message contents, cut text at stop sequences or word limits, split it into stream
# pieces, and pick values (numbers, quoted strings, names) out of the user's words.

_TEXT_PART_TYPES = frozenset({"text", "input_text", "output_text"})
_ATTACHMENT_KINDS = {
    "image_url": "image",
    "image": "image",
    "input_image": "image",
    "input_audio": "audio",
    "audio": "audio",
    "file": "file",
    "document": "file",
    "input_file": "file",
    "video": "video",
}

_WORD_RE = re.compile(r"\S+")
_PIECE_RE = re.compile(r"\s*\S+")
_LETTER_WORD_RE = re.compile(r"[^\W\d_](?:[\w\-]|['\u2019](?=\w))*")
_NUMBER_RE = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?!\w)")
_QUOTED_RE = re.compile(
    r"(?<!\w)'([^'\n]+?)'(?!\w)|\"([^\"\n]+?)\""
    r"|\u201c([^\u201d\n]+?)\u201d|\u2018([^\u2019\n]+?)\u2019(?!\w)"
)
_ASSIGNMENT_RE = re.compile(
    r"(?<![\w.])([A-Za-z_][\w]*)\s*[=:]\s*(\"[^\"\n]*\"|'[^'\n]*'|[^\s,;)}\]]+)"
)
_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
    "hundred": 100,
}
_NUMBER_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)
_PRONOUNS = frozenset({"I", "I'm", "I'd", "I'll", "I've", "I\u2019m"})
_WEAK_LAST_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "it",
        "me",
        "you",
        "us",
        "them",
        "this",
        "that",
        "please",
        "now",
        "tool",
        "tools",
        "function",
        "functions",
        "json",
        "again",
        "than",
        "other",
        "nothing",
        "with",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "about",
        "is",
        "are",
        "be",
        "as",
        "what",
        "how",
        "use",
    }
)
_OPENER_WORDS = """
    what who whom whose where when why how which is are was were am do does did can could
    would will should shall may might must please tell give use using call get find show
    create make write list return let look search check compute calculate add generate
    explain describe summarize summarise translate say the a an this that these those it its
    my our your their his her we you they he she hello hi hey thanks thank now then and but
    so if in on at for from to with send set book fetch run answer provide extract convert
    multiply divide subtract sum count pick choose select help yes no ok okay also next first
    after before there here well hmm what's who's how's where's it's that's there's i'm
    respond reply apply compare draft plan schedule remind lookup query read open save update
    delete remove store buy order recommend suggest predict forecast estimate determine
"""
_OPENERS = frozenset(_OPENER_WORDS.split())
_SENTENCE_RE = re.compile(r"[^.!?\n]+")


def message_text(content: Any) -> str:
    """Return the text of a message ``content``: a string, or the joined text parts of a list."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return message_text([content])
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                kind = part.get("type")
                text = part.get("text")
                if (kind in _TEXT_PART_TYPES or kind is None) and isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)
    return str(content)


def attachment_kinds(content: Any) -> list[str]:
    """Return the kinds ("image", "audio", "file", "video") of a content list's non-text parts."""
    if not isinstance(content, list):
        return []
    kinds: list[str] = []
    for part in content:
        if isinstance(part, dict):
            kind = _ATTACHMENT_KINDS.get(str(part.get("type")))
            if kind is not None:
                kinds.append(kind)
    return kinds


def count_words(text: str | None) -> int:
    """Count whitespace-separated words (the local server's notion of a token)."""
    return len(text.split()) if text else 0


def first_words(text: str, limit: int) -> str:
    """Return the first ``limit`` words of ``text`` joined by single spaces."""
    return " ".join(text.split()[:limit])


def truncate_words(text: str, max_words: int | None) -> tuple[str, bool]:
    """Keep at most ``max_words`` words of ``text`` (original spacing); say whether it cut."""
    if max_words is None:
        return text, False
    for index, match in enumerate(_WORD_RE.finditer(text)):
        if index + 1 == max_words:
            end = match.end()
            cut = text[end:].strip() != ""
            return (text[:end], True) if cut else (text, False)
    if max_words <= 0:
        return "", bool(text.strip())
    return text, False


def apply_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` at the first occurrence of any stop sequence; say whether it cut."""
    best = -1
    for stop in stops:
        if not stop:
            continue
        position = text.find(stop)
        if position != -1 and (best == -1 or position < best):
            best = position
    if best == -1:
        return text, False
    return text[:best], True


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized pieces whose concatenation is exactly ``text``."""
    pieces = _PIECE_RE.findall(text)
    consumed = sum(len(piece) for piece in pieces)
    if consumed < len(text):
        if pieces:
            pieces[-1] += text[consumed:]
        else:
            pieces.append(text[consumed:])
    return pieces


@dataclass(frozen=True, slots=True)
class TextValues:
    """Values found in a piece of user text, in the order they appear."""

    text: str
    numbers: tuple[float, ...] = ()
    quoted: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    last_word: str | None = None
    assignments: dict[str, str] = field(default_factory=dict)

    def mentions(self, word: str) -> int:
        """Return the position of the first whole-word mention of ``word`` (or -1)."""
        if not word:
            return -1
        match = re.search(r"(?<!\w)" + re.escape(word) + r"(?!\w)", self.text, re.IGNORECASE)
        return match.start() if match else -1


def extract_values(text: str, exclude: Iterable[str] = ()) -> TextValues:
    """Pick numbers, quoted strings, capitalized names and a last word out of ``text``.

    ``exclude`` holds words (for example tool names) never to be used as string values.
    """
    excluded = {word.lower() for word in exclude}
    numbers = _numbers(text)
    quoted: list[str] = []
    for match in _QUOTED_RE.finditer(text):
        value = next(group for group in match.groups() if group is not None).strip()
        if value and value not in quoted:
            quoted.append(value)
    names = [name for name in _capitalized_runs(text, excluded) if name not in quoted]
    assignments: dict[str, str] = {}
    for match in _ASSIGNMENT_RE.finditer(text):
        raw = match.group(2)
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
            raw = raw[1:-1]
        assignments.setdefault(match.group(1).lower(), raw)
    return TextValues(
        text=text,
        numbers=tuple(numbers),
        quoted=tuple(quoted),
        names=tuple(names),
        last_word=_last_word(text, excluded),
        assignments=assignments,
    )


def _numbers(text: str) -> list[float]:
    found: list[tuple[int, float]] = [
        (match.start(), float(match.group())) for match in _NUMBER_RE.finditer(text)
    ]
    found.extend(
        (match.start(), float(_NUMBER_WORDS[match.group(1).lower()]))
        for match in _NUMBER_WORD_RE.finditer(text)
    )
    found.sort(key=lambda item: item[0])
    return [value for _, value in found]


def _at_sentence_start(text: str, position: int) -> bool:
    before = text[:position].rstrip(" \t\"'\u201c\u2018([")
    return before == "" or before[-1] in ".!?:\n"


def _capitalized_runs(text: str, excluded: set[str]) -> list[str]:
    """Runs of capitalized words ("San Francisco, CA"), mid-sentence runs first.

    A sentence's first word is dropped when it is a common opener ("What", "Tell", "The");
    otherwise a run at a sentence start ("Alice is 30") ranks after mid-sentence runs.
    """
    runs: list[str] = []
    openers: list[str] = []
    current: list[re.Match[str]] = []

    def flush() -> None:
        words = list(current)
        current.clear()
        target = runs
        if words and _at_sentence_start(text, words[0].start()):
            if words[0].group().lower() in _OPENERS:
                words = words[1:]
            else:
                target = openers
        words = [word for word in words if word.group() not in _PRONOUNS]
        if len(words) == 1 and words[0].group().lower() in _WEAK_LAST_WORDS:
            words = []
        if words:
            run = text[words[0].start() : words[-1].end()]
            if run not in target:
                target.append(run)

    for match in _LETTER_WORD_RE.finditer(text):
        word = match.group()
        if not word[0].isupper() or word.lower() in excluded:
            flush()
            continue
        if current:
            gap = text[current[-1].end() : match.start()]
            joins = gap.strip(" ") == "" or (
                gap.strip() == "," and word.isupper() and len(word) <= 3
            )
            if not joins or "\n" in gap:
                flush()
        current.append(match)
    flush()
    return runs + [run for run in openers if run not in runs]


def _last_word(text: str, excluded: set[str]) -> str | None:
    """The last content word of the first sentence that has one (else of the whole text)."""
    for sentence in _SENTENCE_RE.findall(text):
        word = _last_content_word(sentence, excluded)
        if word is not None:
            return word
    words = [match.group() for match in _LETTER_WORD_RE.finditer(text)]
    words = [word for word in words if word.lower() not in excluded]
    return words[-1] if words else None


def _last_content_word(text: str, excluded: set[str]) -> str | None:
    words = [match.group().strip("'\u2019-") for match in _LETTER_WORD_RE.finditer(text)]
    words = [word for word in words if word and word.lower() not in excluded]
    for word in reversed(words):
        if word.lower() not in _WEAK_LAST_WORDS and len(word) > 1:
            return word
    return None


# ----------------------------------------------------------------------------- JSON schema

# Fill a JSON schema from the user's words (tool arguments, ``response_format``): numbers go, in
# order, to integer and number properties; quoted strings, then capitalized names, then the last
# word, then the whole text to string properties; enums take the value the text mentions (or the
# first); booleans are true. ``$ref``/``$defs``, ``allOf``, ``anyOf``/``oneOf`` (with null),
# nested objects and arrays are handled. Required properties are always filled; optional ones
# only when the text offers a value.

_MAX_DEPTH = 12
_FORMAT_VALUES = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "12:00:00",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
}
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})


class _Missing(enum.Enum):
    MISSING = 0


_MISSING = _Missing.MISSING


class ValueSource:
    """A cursor over the values of one text segment, falling back to the whole text.

    Each value is handed out once; when the values run out, required fields still get one
    (the last word, then the whole text), optional fields get nothing.
    """

    def __init__(self, primary: TextValues, fallback: TextValues | None = None) -> None:
        """Read values from ``primary`` first, then from ``fallback``."""
        self._primary = primary
        self._fallback = fallback
        self._numbers = list(primary.numbers)
        self._fallback_numbers = list(fallback.numbers) if fallback else []
        strings = list(primary.quoted) + list(primary.names)
        if fallback is not None:
            strings += [s for s in (*fallback.quoted, *fallback.names) if s not in strings]
        self._strings = strings
        self._last_word = primary.last_word or (fallback.last_word if fallback else None)
        self._whole = primary.text.strip() or (fallback.text.strip() if fallback else "")

    def assigned(self, name: str | None) -> str | None:
        """Return the value written as ``name=value`` or ``name: value`` in the text."""
        if not name:
            return None
        key = name.lower()
        found = self._primary.assignments.get(key)
        if found is None and self._fallback is not None:
            found = self._fallback.assignments.get(key)
        return found

    def mentioned(self, options: list[Any]) -> Any:
        """Return the option whose text appears first in the text, or ``None``."""
        for values in (self._primary, self._fallback):
            if values is None:
                continue
            best: tuple[int, Any] | None = None
            for option in options:
                position = values.mentions(str(option))
                if position >= 0 and (best is None or position < best[0]):
                    best = (position, option)
            if best is not None:
                return best[1]
        return None

    def take_number(self, required: bool) -> float | None:
        """Hand out the next number; a required field gets 1 when none is left."""
        if self._numbers:
            return self._numbers.pop(0)
        if self._fallback_numbers:
            return self._fallback_numbers.pop(0)
        return 1.0 if required else None

    def take_string(self, required: bool) -> str | None:
        """Hand out the next string; a required field gets the last word, then the text."""
        if self._strings:
            return self._strings.pop(0)
        if not required:
            return None
        if self._last_word is not None:
            word, self._last_word = self._last_word, None
            return word
        return self._whole or "value"


def fill_schema(schema: Mapping[str, Any], values: ValueSource) -> Any:
    """Return a JSON value valid for ``schema``, filled from ``values``."""
    result = _fill(schema, values, schema, required=True, name=None, depth=0)
    return {} if result is _MISSING else result


def _resolve(reference: str, root: Mapping[str, Any]) -> Mapping[str, Any]:
    if not reference.startswith("#"):
        return {}
    node: Any = root
    for part in reference.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            return {}
    return node if isinstance(node, Mapping) else {}


def _normalize(schema: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """Inline ``$ref`` and merge ``allOf`` into one schema dict."""
    current = dict(schema)
    for _ in range(_MAX_DEPTH):
        reference = current.pop("$ref", None)
        if not isinstance(reference, str):
            break
        current = {**_resolve(reference, root), **current}
    parts = current.pop("allOf", None)
    if isinstance(parts, list):
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            resolved = _normalize(part, root)
            properties = {**resolved.get("properties", {}), **current.get("properties", {})}
            required = list(resolved.get("required", [])) + list(current.get("required", []))
            current = {**resolved, **current}
            if properties:
                current["properties"] = properties
            if required:
                current["required"] = required
    return current


def _fill(
    schema: Mapping[str, Any],
    values: ValueSource,
    root: Mapping[str, Any],
    *,
    required: bool,
    name: str | None,
    depth: int,
) -> Any:
    if depth > _MAX_DEPTH:
        return None if required else _MISSING
    node = _normalize(schema, root)
    if "const" in node:
        return node["const"]
    options = node.get("enum")
    if isinstance(options, list) and options:
        return _fill_enum(options, values, required=required, name=name)
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list) and branches:
        return _fill_union(branches, values, root, required=required, name=name, depth=depth)
    kind = node.get("type")
    if isinstance(kind, list):
        non_null = [item for item in kind if item != "null"]
        if not non_null:
            return None
        kind = non_null[0]
    if kind is None:
        if "properties" in node:
            kind = "object"
        elif "items" in node or "prefixItems" in node:
            kind = "array"
    if kind == "object":
        return _fill_object(node, values, root, required=required, depth=depth)
    if kind == "array":
        return _fill_array(node, values, root, required=required, name=name, depth=depth)
    if kind in ("integer", "number"):
        return _fill_number(node, values, integer=kind == "integer", required=required, name=name)
    if kind == "boolean":
        assigned = values.assigned(name)
        if assigned is not None:
            return assigned.lower() in _TRUE_WORDS
        return True if required else _MISSING
    if kind == "null":
        return None
    return _fill_string(node, values, required=required, name=name)


def _fill_enum(options: list[Any], values: ValueSource, *, required: bool, name: str | None) -> Any:
    assigned = values.assigned(name)
    if assigned is not None:
        for option in options:
            if str(option).lower() == assigned.lower():
                return option
    mentioned = values.mentioned(options)
    if mentioned is not None:
        return mentioned
    return options[0] if required else _MISSING


def _fill_union(
    branches: list[Any],
    values: ValueSource,
    root: Mapping[str, Any],
    *,
    required: bool,
    name: str | None,
    depth: int,
) -> Any:
    candidates = [
        branch
        for branch in branches
        if isinstance(branch, Mapping) and _normalize(branch, root).get("type") != "null"
    ]
    if not candidates:
        return None
    result = _fill(candidates[0], values, root, required=required, name=name, depth=depth + 1)
    return result


def _fill_object(
    node: Mapping[str, Any],
    values: ValueSource,
    root: Mapping[str, Any],
    *,
    required: bool,
    depth: int,
) -> Any:
    if not required:
        return _MISSING
    properties = node.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    needed = node.get("required")
    needed_names = set(needed) if isinstance(needed, list) else set()
    result: dict[str, Any] = {}
    for key, subschema in properties.items():
        if not isinstance(subschema, Mapping):
            subschema = {}
        value = _fill(
            subschema, values, root, required=key in needed_names, name=key, depth=depth + 1
        )
        if value is not _MISSING:
            result[key] = value
    return result


def _fill_array(
    node: Mapping[str, Any],
    values: ValueSource,
    root: Mapping[str, Any],
    *,
    required: bool,
    name: str | None,
    depth: int,
) -> Any:
    if not required:
        return _MISSING
    prefix = node.get("prefixItems")
    if isinstance(prefix, list) and prefix:
        return [
            _none_if_missing(_fill(item, values, root, required=True, name=name, depth=depth + 1))
            for item in prefix
            if isinstance(item, Mapping)
        ]
    items = node.get("items")
    item_schema: Mapping[str, Any] = items if isinstance(items, Mapping) else {}
    count = 1
    minimum = node.get("minItems")
    if isinstance(minimum, int) and minimum > 1:
        count = min(minimum, 16)
    maximum = node.get("maxItems")
    if isinstance(maximum, int) and maximum < count:
        count = max(maximum, 0)
    return [
        _none_if_missing(_fill(item_schema, values, root, required=True, name=None, depth=depth))
        for _ in range(count)
    ]


def _none_if_missing(value: Any) -> Any:
    return None if value is _MISSING else value


def _fill_number(
    node: Mapping[str, Any],
    values: ValueSource,
    *,
    integer: bool,
    required: bool,
    name: str | None,
) -> Any:
    number: float | None = None
    assigned = values.assigned(name)
    if assigned is not None:
        try:
            number = float(assigned)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        number = values.take_number(required)
    if number is None:
        return _MISSING
    number = _clamp(node, number, integer)
    if integer:
        return int(number)
    return int(number) if number.is_integer() else number


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clamp(node: Mapping[str, Any], number: float, integer: bool) -> float:
    step = 1.0 if integer else 0.5
    low = node.get("minimum")
    if isinstance(low, int | float) and number < low:
        number = float(math.ceil(low) if integer else low)
    high = node.get("maximum")
    if isinstance(high, int | float) and number > high:
        number = float(math.floor(high) if integer else high)
    exclusive_low = node.get("exclusiveMinimum")
    if _is_number(exclusive_low) and number <= exclusive_low:
        number = float(math.floor(exclusive_low) + 1 if integer else exclusive_low + step)
    exclusive_high = node.get("exclusiveMaximum")
    if _is_number(exclusive_high) and number >= exclusive_high:
        number = float(math.ceil(exclusive_high) - 1 if integer else exclusive_high - step)
    if integer:
        number = float(math.trunc(number))
    return number


def _fill_string(
    node: Mapping[str, Any], values: ValueSource, *, required: bool, name: str | None
) -> Any:
    assigned = values.assigned(name)
    text: str | None
    if assigned is not None:
        text = assigned
    else:
        fmt = node.get("format")
        if isinstance(fmt, str) and fmt in _FORMAT_VALUES:
            return _FORMAT_VALUES[fmt] if required else _MISSING
        text = values.take_string(required)
    if text is None:
        return _MISSING
    limit = node.get("maxLength")
    if isinstance(limit, int) and limit >= 0:
        text = text[:limit]
    minimum = node.get("minLength")
    if isinstance(minimum, int) and len(text) < minimum:
        text = text + "." * (minimum - len(text))
    return text


# ----------------------------------------------------------------------------- tool use

# Which tools to call with what arguments, the JSON of JSON mode, and ReAct turns.

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
