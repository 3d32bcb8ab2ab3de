"""ModelsLab's wire shapes (pure, no I/O): request fields, answer bodies and their SSE streams.

An answer is its JSON body (``chat.completion`` or vLLM's ``text_completion``). Its stream opens
with a ``: keep-alive`` comment, sends a role chunk, reasoning and content pieces (word-sized:
they join to exactly the body's text) or tool-call fragments keyed by ``index``, a
``: OPENROUTER PROCESSING`` comment now and then, a finish chunk per choice, a usage chunk when
asked, and ``data: [DONE]``.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..profiles import PROFILES

#: One choice of an answer: the assistant message (``content``, and maybe ``reasoning_content``
#: and ``tool_calls``, whose ids may be None) and its finish reason.
Choice = tuple[dict[str, Any], str]

_TEXT_PARTS = (None, "text", "input_text", "output_text")

DEFAULT_CHAT_MODEL = "meta-llama-3-8B-instruct"
DEFAULT_COMPLETION_MODEL = "ModelsLab/Llama-3.1-8b-Uncensored-Dare"
#: The ids the server knows: ModelsLab's models in the project's profiles table
#: (:mod:`modelslab_core.profiles`, from https://modelslab.com/models).
POPULAR_MODELS: tuple[str, ...] = tuple(PROFILES)
KEEP_ALIVE = ": keep-alive\n\n"
PROCESSING = ": OPENROUTER PROCESSING\n\n"
DONE_EVENT = "data: [DONE]\n\n"
_PROCESSING_EVERY = 64
_NOT_DONE = {"finish_reason": None, "stop_reason": None}
#: A word with the blanks before it; the text's trailing blanks join the last piece.
_PIECE_RE = re.compile(r"\s*\S+(?:\s+\Z)?|\s+\Z")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def message_text(content: Any) -> str:
    """The text of a message ``content``: a string, or the joined text parts of a list."""
    if isinstance(content, str) or content is None:
        return content or ""
    parts = [content] if isinstance(content, dict) else content
    if not isinstance(parts, list):
        return str(content)
    texts = [
        p.get("text") if isinstance(p, dict) and p.get("type") in _TEXT_PARTS else p for p in parts
    ]
    return "\n".join(text for text in texts if isinstance(text, str))


def count_words(text: str | None) -> int:
    """Count whitespace-separated words (the local server's notion of a token)."""
    return len(text.split()) if text else 0


def truthy(value: Any) -> bool:
    """Say whether a request field is on (``true``, ``1`` or ``"true"``/``"yes"``)."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return value is True or (isinstance(value, int) and value == 1)


def whole_number(value: Any) -> int | None:
    """A numeric request field as a non-negative int (``None`` when absent or not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return max(int(value), 0)


def prompts(value: Any) -> list[str]:
    """The prompts of a text-completion request (a string, a list, or a list of token ids)."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        return []
    if value and all(isinstance(item, int) for item in value):
        return [" ".join(str(item) for item in value)]
    return [item if isinstance(item, str) else json.dumps(item) for item in value]


def named_model(body: Mapping[str, Any]) -> str | None:
    """The model id a request names (``model`` or its alias ``model_id``), if any."""
    found = (body.get("model"), body.get("model_id"))
    return next((value for value in found if isinstance(value, str) and value), None)


def earlier_calls(messages: Sequence[Mapping[str, Any]] | None) -> list[Any]:
    """The tool calls of the conversation's assistant messages, in order."""
    found = [m.get("tool_calls") for m in messages or () if m.get("role") == "assistant"]
    return [call for calls in found if isinstance(calls, list) for call in calls]


def unknown_model(body: Mapping[str, Any], known: frozenset[str]) -> str | None:
    """The 404 message for a request naming a model id not in ``known`` (lower-case ids), as
    ModelsLab answers an unknown model; ``None`` when the model is known or not named."""
    model = named_model(body)
    if model is None or model.lower() in known:
        return None
    return (
        f"The model {model!r} does not exist on ModelsLab's LLM API: see "
        "https://modelslab.com/models for the model ids (the local server knows the ids of "
        "ModelsLab's model list; allow your own with LocalModelsLab(models=[...]) or "
        "server.allow_models(...))."
    )


def wants_stream(body: Mapping[str, Any]) -> bool:
    """Say whether the request asks for a stream (``stream`` or its alias ``streaming``)."""
    return truthy(body.get("stream")) or truthy(body.get("streaming"))


def wants_usage(body: Mapping[str, Any]) -> bool:
    """Say whether a stream must end with a usage chunk (``stream_options.include_usage``)."""
    options = body.get("stream_options")
    return isinstance(options, Mapping) and truthy(options.get("include_usage"))


def request_error(body: Mapping[str, Any], chat: bool) -> str | None:
    """The 422 message for a chat body without messages (or a completion without a prompt)."""
    if not chat:
        prompt = body.get("prompt")
        return (
            None if isinstance(prompt, str | list) and prompt else "The prompt field is required."
        )
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "The messages field is required."
    if not all(isinstance(message, Mapping) for message in messages):
        return "The messages must be objects with a role and a content."
    return None


def answer_body(
    request: Mapping[str, Any],
    choices: Sequence[Choice],
    *,
    chat: bool,
    completion_id: str,
    created: int,
    uncensored: bool = False,
    usage: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON body answering ``request`` with ``choices``, each repeated ``n`` times.

    Tool calls without an id get ``call_<n>``, numbered after the conversation's; usage is
    counted in words unless given. The uncensored routes send ``"tool_calls": []``.
    """
    messages = request.get("messages") if chat else None
    number = len(earlier_calls(messages))
    count = min(whole_number(request.get("n")) or 1, 128)
    rendered: list[dict[str, Any]] = []
    for message, finish in choices:
        message = {"role": "assistant", **message}
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {**call, "id": call["id"] or f"call_{number + i}"}
                for i, call in enumerate(message["tool_calls"], start=1)
            ]
        elif uncensored:
            message["tool_calls"] = []
        for _ in range(count):
            index = len(rendered)
            if chat:
                rendered.append({"index": index, "message": message, "finish_reason": finish})
            else:
                text = message.get("content") or ""
                rendered.append(
                    {"text": text, "index": index, "logprobs": None, "finish_reason": finish}
                    | {"stop_reason": None, "prompt_logprobs": None}
                )
    if usage is None:
        asked = sum(count_words(message_text(m.get("content"))) for m in messages or ())
        asked = max(asked + sum(count_words(p) for p in prompts(request.get("prompt"))), 1)
        said = sum(_tokens(m["message"] if chat else {"content": m["text"]}) for m in rendered)
        usage = {"prompt_tokens": asked, "completion_tokens": said, "total_tokens": asked + said}
    return {
        "id": completion_id,
        "object": "chat.completion" if chat else "text_completion",
        "created": created,
        "model": named_model(request) or (DEFAULT_CHAT_MODEL if chat else DEFAULT_COMPLETION_MODEL),
        "choices": rendered,
        "usage": dict(usage),
    }


def _tokens(message: Mapping[str, Any]) -> int:
    calls = message.get("tool_calls") or []
    said = count_words(message.get("content")) + count_words(message.get("reasoning_content"))
    return said + sum(max(count_words(call["function"]["arguments"]), 1) for call in calls)


def split_pieces(text: str) -> list[str]:
    """Split ``text`` into word-sized pieces whose concatenation is exactly ``text``."""
    return _PIECE_RE.findall(text)


def _thirds(arguments: str) -> list[str]:
    """Split tool-call arguments into up to 3 pieces (at least one character each)."""
    parts = 3 if len(arguments) >= 6 else 2 if len(arguments) >= 2 else 1
    cuts = [len(arguments) // parts * i for i in range(parts)] + [len(arguments)]
    return [arguments[start:end] for start, end in itertools.pairwise(cuts)]


def stream_events(body: Mapping[str, Any], include_usage: bool) -> list[str]:
    """The SSE events (strings ending in a blank line) streaming the answer ``body``."""
    chat = body["object"] == "chat.completion"
    head = {"id": body["id"], "object": "chat.completion.chunk" if chat else "text_completion"}
    head |= {"created": body["created"], "model": body["model"]}
    prefix = "data: " + _dumps(head)[:-1] + ',"choices":['
    events = [KEEP_ALIVE]
    sent = 0

    def add(choice: dict[str, Any]) -> None:
        nonlocal sent
        events.append(f"{prefix}{_dumps(choice)}]}}\n\n")
        sent += 1
        if sent % _PROCESSING_EVERY == 1:
            events.append(PROCESSING)

    for choice in body["choices"]:
        index, message = choice["index"], choice.get("message", {})
        if not chat:
            for piece in split_pieces(choice["text"]):
                add({"index": index, "text": piece, "logprobs": None, **_NOT_DONE})
            continue
        content, reasoning = message["content"], message.get("reasoning_content")
        deltas: list[dict[str, Any]] = [
            {"role": "assistant", "content": None if content is None else ""},
            *({"reasoning_content": piece} for piece in split_pieces(reasoning or "")),
            *({"content": piece} for piece in split_pieces(content or "")),
        ]
        for position, call in enumerate(message.get("tool_calls") or []):
            function = {"name": call["function"]["name"], "arguments": ""}
            opening = {"index": position, "id": call["id"], "type": "function"}
            deltas.append({"tool_calls": [{**opening, "function": function}]})
            deltas += [
                {"tool_calls": [{"index": position, "function": {"arguments": piece}}]}
                for piece in _thirds(call["function"]["arguments"])
            ]
        for delta in deltas:
            add({"index": index, "delta": delta, "finish_reason": None})
    for choice in body["choices"]:  # the finish reason takes _NOT_DONE's place in the keys
        end: dict[str, Any] = {"delta": {}} if chat else {"text": "", "logprobs": None, **_NOT_DONE}
        add({"index": choice["index"], **end, "finish_reason": choice["finish_reason"]})
    if include_usage:
        events.append(f"data: {_dumps({**head, 'choices': [], 'usage': body['usage']})}\n\n")
    events.append(DONE_EVENT)
    return events


def first_chunks(events: list[str], chunks: int) -> list[str]:
    """The events up to and including the ``chunks``-th data chunk (comments kept)."""
    kept: list[str] = []
    for event in events:
        if event.startswith("data: ") and (chunks <= 0 or event == DONE_EVENT):
            break
        if event.startswith("data: "):
            chunks -= 1
        kept.append(event)
    return kept
