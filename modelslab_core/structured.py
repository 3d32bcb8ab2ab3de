"""Rules both frameworks share for request bodies and structured answers, pure.

The frameworks turn their own types (a pydantic class, a TypedDict, LangChain's tool schemas)
into a JSON schema; what goes on the wire from there is decided here, once: the request body
from a model's fields and a call's arguments, the ``json_schema`` response format, the JSON-mode
(``json_object``) fallback for a server that refuses ``json_schema`` (ModelsLab documents only
``json_object``: https://docs.modelslab.com), and the instruction that carries the schema in
the prompt then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from .errors import names_response_format

__all__ = [
    "JSON_OBJECT_FORMAT",
    "json_mode_fallback",
    "json_schema_format",
    "request_body",
    "schema_instruction",
]

#: JSON mode: any JSON object (the response format ModelsLab documents).
JSON_OBJECT_FORMAT: Mapping[str, str] = {"type": "json_object"}

#: OpenAI-style response-format names: letters, digits, ``_`` and ``-``, at most 64.
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_-]")


def request_body(
    fields: Mapping[str, Any],
    call: Mapping[str, Any],
    *,
    stream: bool,
    stream_usage: bool = True,
) -> dict[str, Any]:
    """A request body: the model's ``fields`` (None values left out), then the call's
    arguments over them; an empty ``stop`` is dropped, and a stream asks for usage
    (``stream_options.include_usage``) unless the call set its own or ``stream_usage`` is off."""
    body = {k: v for k, v in fields.items() if v is not None}
    body.update(call)
    if not body.get("stop"):
        body.pop("stop", None)
    if stream and stream_usage:
        body.setdefault("stream_options", {"include_usage": True})
    return body


def json_schema_format(
    schema: Mapping[str, Any], *, name: str | None = None, strict: bool | None = None
) -> dict[str, Any]:
    """An OpenAI ``json_schema`` response format for a JSON ``schema``: named ``name`` (else
    the schema's title) in the characters such a name may hold, with its description, and
    ``strict`` when given."""
    raw_name = name or str(schema.get("title") or "response")
    spec: dict[str, Any] = {"name": _NAME_BAD.sub("_", raw_name)[:64], "schema": dict(schema)}
    if schema.get("description"):
        spec["description"] = schema["description"]
    if strict is not None:
        spec["strict"] = strict
    return {"type": "json_schema", "json_schema": spec}


def json_mode_fallback(error: BaseException) -> dict[str, str] | None:
    """The response format to ask again with after ``error``: JSON mode when the server refused
    the ``json_schema`` format (and only then: a context-length error would come back with a
    longer prompt); None when the error stands."""
    return dict(JSON_OBJECT_FORMAT) if names_response_format(error) else None


def schema_instruction(schema: Mapping[str, Any]) -> str:
    """The system-message text that asks for an answer fitting ``schema`` in JSON mode."""
    return f"Answer with one JSON object that matches this JSON schema:\n{json.dumps(schema)}"
