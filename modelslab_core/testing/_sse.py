"""Render answers as Server-Sent Events (pure, no I/O).

A chat stream opens with a ``: keep-alive`` comment, sends a role chunk, reasoning pieces,
content pieces (word-sized, so their concatenation is exactly the non-streamed content) or
tool-call fragments keyed by ``index``, a ``: OPENROUTER PROCESSING`` comment now and then,
a finish chunk per choice, a usage chunk when asked, and ``data: [DONE]``.

Events are returned as strings (each ending in a blank line) so the server can batch many
of them into one write; :func:`chunked_frame` wraps bytes in HTTP/1.1 chunked framing.
"""

from __future__ import annotations

import json
from typing import Any

from ._demo_model import Answer, Choice, split_pieces

__all__ = [
    "DONE_EVENT",
    "KEEP_ALIVE",
    "LAST_CHUNK",
    "PROCESSING",
    "chat_stream_events",
    "chunked_frame",
    "data_event",
    "first_chunks",
    "is_data_event",
    "text_stream_events",
]

KEEP_ALIVE = ": keep-alive\n\n"
PROCESSING = ": OPENROUTER PROCESSING\n\n"
DONE_EVENT = "data: [DONE]\n\n"
LAST_CHUNK = b"0\r\n\r\n"
_PROCESSING_EVERY = 64

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def data_event(payload: Any) -> str:
    """Return one ``data:`` event holding ``payload`` as compact JSON."""
    return f"data: {_dumps(payload)}\n\n"


def is_data_event(event: str) -> bool:
    """Say whether ``event`` is a ``data:`` event (not a comment, not ``[DONE]``)."""
    return event.startswith("data: ") and event != DONE_EVENT


def chunked_frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in one HTTP/1.1 chunked-transfer frame."""
    return b"%x\r\n%b\r\n" % (len(payload), payload)


def _tool_pieces(arguments: str) -> list[str]:
    """Split a JSON arguments string into 2 or 3 pieces (at least one character each)."""
    size = len(arguments)
    if size < 2:
        return [arguments]
    if size < 6:
        return [arguments[: size // 2], arguments[size // 2 :]]
    third = size // 3
    return [arguments[:third], arguments[third : 2 * third], arguments[2 * third :]]


class _Events:
    """Accumulates events and inserts a processing comment every so many data events."""

    def __init__(self, prefix: str, suffix: str) -> None:
        self.events: list[str] = [KEEP_ALIVE]
        self._prefix = prefix
        self._suffix = suffix
        self._count = 0

    def add(self, choices_json: str) -> None:
        """Append one chunk whose ``choices`` array holds ``choices_json``."""
        self.events.append(f"{self._prefix}{choices_json}{self._suffix}")
        self._count += 1
        if self._count % _PROCESSING_EVERY == 1:
            self.events.append(PROCESSING)


def chat_stream_events(
    answer: Answer, *, completion_id: str, created: int, model: str, include_usage: bool
) -> list[str]:
    """Return the SSE events of a ``chat.completion.chunk`` stream for ``answer``."""
    head: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
    }
    prefix = "data: " + _dumps(head)[:-1] + ',"choices":['
    events = _Events(prefix, "]}\n\n")
    for index, choice in enumerate(answer.choices):
        _choice_events(events, index, choice)
    for index, choice in enumerate(answer.choices):
        events.add(
            f'{{"index":{index},"delta":{{}},"finish_reason":{_dumps(choice.finish_reason)}}}'
        )
    if include_usage:
        events.events.append(data_event({**head, "choices": [], "usage": dict(answer.usage)}))
    events.events.append(DONE_EVENT)
    return events.events


def _choice_events(events: _Events, index: int, choice: Choice) -> None:
    opening = f'{{"index":{index},"delta":'
    closing = ',"finish_reason":null}'
    first_content = "null" if choice.content is None else '""'
    events.add(f'{opening}{{"role":"assistant","content":{first_content}}}{closing}')
    if choice.reasoning:
        for piece in split_pieces(choice.reasoning):
            events.add(f'{opening}{{"reasoning_content":{_dumps(piece)}}}{closing}')
    if choice.content:
        for piece in split_pieces(choice.content):
            events.add(f'{opening}{{"content":{_dumps(piece)}}}{closing}')
    for position, call in enumerate(choice.tool_calls):
        first = {
            "index": position,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        events.add(f'{opening}{{"tool_calls":[{_dumps(first)}]}}{closing}')
        for piece in _tool_pieces(call.arguments):
            fragment = {"index": position, "function": {"arguments": piece}}
            events.add(f'{opening}{{"tool_calls":[{_dumps(fragment)}]}}{closing}')


def text_stream_events(
    answer: Answer, *, completion_id: str, created: int, model: str, include_usage: bool
) -> list[str]:
    """Return the SSE events of a ``text_completion`` stream for ``answer``."""
    head: dict[str, Any] = {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
    }
    prefix = "data: " + _dumps(head)[:-1] + ',"choices":['
    events = _Events(prefix, "]}\n\n")
    tail = ',"logprobs":null,"finish_reason":null,"stop_reason":null}'
    for index, choice in enumerate(answer.choices):
        for piece in split_pieces(choice.content or ""):
            events.add(f'{{"index":{index},"text":{_dumps(piece)}{tail}')
    for index, choice in enumerate(answer.choices):
        finish = _dumps(choice.finish_reason)
        events.add(
            f'{{"index":{index},"text":"","logprobs":null,'
            f'"finish_reason":{finish},"stop_reason":null}}'
        )
    if include_usage:
        events.events.append(data_event({**head, "choices": [], "usage": dict(answer.usage)}))
    events.events.append(DONE_EVENT)
    return events.events


def first_chunks(events: list[str], chunks: int) -> list[str]:
    """The events up to and including the ``chunks``-th data chunk (comments kept)."""
    kept: list[str] = []
    seen = 0
    for event in events:
        if is_data_event(event):
            if seen >= chunks:
                break
            seen += 1
        elif event.startswith("data: "):
            break
        kept.append(event)
    return kept
