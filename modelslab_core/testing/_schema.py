"""Fill a JSON schema with values taken from a user's words (pure, no I/O).

Used for tool-call arguments and for ``response_format`` answers. Numbers in the text go, in
order, to integer and number properties; quoted strings, then capitalized names, then the last
word, then the whole text go to string properties; enums take the value the text mentions (or
the first); booleans are true. ``$ref``/``$defs``, ``allOf``, ``anyOf``/``oneOf`` (with null),
nested objects and arrays are handled. Required properties are always filled; optional ones
only when the text offers a value.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any, TypeGuard

from ._text import TextValues

__all__ = ["ValueSource", "fill_schema"]

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
