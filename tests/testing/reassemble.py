"""Rebuild whole answers from SSE bodies: an independent oracle for the local server's tests.

:func:`reassemble_chat` and :func:`reassemble_text` read a stream as a client would and
return the same shape as :func:`flatten_chat` / :func:`flatten_text` return for the
non-streamed JSON, so a test can assert that a stream carries exactly the same answer.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["flatten_chat", "flatten_text", "reassemble_chat", "reassemble_text", "sse_data"]


def sse_data(text: str) -> list[str]:
    """Return the ``data:`` payloads of an SSE body, in order (comments skipped)."""
    payloads: list[str] = []
    for block in text.split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                payloads.append(line[len("data: ") :])
    return payloads


def reassemble_chat(text: str) -> dict[str, Any]:
    """Rebuild a ``chat.completion``-like dict (without id/created) from a chat SSE body."""
    payloads = sse_data(text)
    if not payloads or payloads[-1] != "[DONE]":
        raise ValueError("the stream does not end with data: [DONE]")
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    model = None
    for payload in payloads[:-1]:
        chunk = json.loads(payload)
        model = chunk["model"]
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk["choices"]:
            state = choices.setdefault(
                part["index"],
                {"content": None, "reasoning": None, "tool_calls": {}, "finish_reason": None},
            )
            delta = part["delta"]
            if delta.get("content") is not None:
                state["content"] = (state["content"] or "") + delta["content"]
            if delta.get("reasoning_content") is not None:
                state["reasoning"] = (state["reasoning"] or "") + delta["reasoning_content"]
            for fragment in delta.get("tool_calls") or []:
                call = state["tool_calls"].setdefault(
                    fragment["index"], {"id": None, "name": None, "arguments": ""}
                )
                if "id" in fragment:
                    call["id"] = fragment["id"]
                function = fragment.get("function") or {}
                if "name" in function:
                    call["name"] = function["name"]
                call["arguments"] += function.get("arguments") or ""
            if part.get("finish_reason"):
                state["finish_reason"] = part["finish_reason"]
    return {
        "model": model,
        "choices": [_chat_choice(choices[index]) for index in sorted(choices)],
        "usage": usage,
    }


def _chat_choice(state: dict[str, Any]) -> dict[str, Any]:
    calls = [state["tool_calls"][index] for index in sorted(state["tool_calls"])]
    content = state["content"]
    if calls and content == "":
        content = None
    return {
        "content": content,
        "reasoning": state["reasoning"],
        "tool_calls": calls,
        "finish_reason": state["finish_reason"],
    }


def flatten_chat(body: dict[str, Any]) -> dict[str, Any]:
    """Reduce a non-streamed ``chat.completion`` to what :func:`reassemble_chat` returns."""
    choices = []
    for choice in body["choices"]:
        message = choice["message"]
        choices.append(
            {
                "content": message["content"],
                "reasoning": message.get("reasoning_content"),
                "tool_calls": [
                    {
                        "id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"],
                    }
                    for call in message.get("tool_calls") or []
                ],
                "finish_reason": choice["finish_reason"],
            }
        )
    return {"model": body["model"], "choices": choices, "usage": body["usage"]}


def reassemble_text(text: str) -> dict[str, Any]:
    """Rebuild a text completion (texts, finish reasons, usage) from a completion SSE body."""
    payloads = sse_data(text)
    if not payloads or payloads[-1] != "[DONE]":
        raise ValueError("the stream does not end with data: [DONE]")
    texts: dict[int, str] = {}
    finishes: dict[int, str] = {}
    usage = None
    for payload in payloads[:-1]:
        chunk = json.loads(payload)
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk["choices"]:
            texts[part["index"]] = texts.get(part["index"], "") + part["text"]
            if part.get("finish_reason"):
                finishes[part["index"]] = part["finish_reason"]
    return {
        "choices": [
            {"text": texts[index], "finish_reason": finishes.get(index)} for index in sorted(texts)
        ],
        "usage": usage,
    }


def flatten_text(body: dict[str, Any]) -> dict[str, Any]:
    """Reduce a non-streamed ``text_completion`` to what :func:`reassemble_text` returns."""
    return {
        "choices": [
            {"text": choice["text"], "finish_reason": choice["finish_reason"]}
            for choice in body["choices"]
        ],
        "usage": body["usage"],
    }
