"""An answer framed two ways at once (two different ``Content-Length`` headers, the classic
response-splitting setup): refused with our typed error, and the connection is never reused, so
the bytes smuggled after the first length never become the answer of the next call."""

from __future__ import annotations

import json
from typing import Any

from modelslab_core import APIConnectionError

SMUGGLED = "SMUGGLED ANSWER"


def conflicting_lengths(connection: Any) -> None:
    """Echo every request, except one whose text starts with "poisoned": its answer has two
    Content-Length headers, the longer one covering a whole second answer (SMUGGLED)."""
    while True:
        _, _, body = connection.read_request()
        request = json.loads(body)
        text = request["messages"][-1]["content"]
        if not text.startswith("poisoned"):
            connection.answer(request)
            continue
        if request.get("stream"):
            payload, smuggled, kind = sse(text), sse(SMUGGLED), "text/event-stream"
        else:
            payload, smuggled, kind = js(text), js(SMUGGLED), "application/json"
        smuggled_response = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(smuggled)}\r\n\r\n"
        ).encode() + smuggled
        head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(payload)}\r\n"
            f"Content-Length: {len(payload) + len(smuggled_response)}\r\n\r\n"
        )
        connection.send(head.encode() + payload + smuggled_response)


def js(text: str) -> bytes:
    choice = {"index": 0, "message": {"role": "assistant", "content": text}}
    return json.dumps({"object": "chat.completion", "choices": [{**choice}]}).encode()


def sse(text: str) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
    return f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()


def test_conflicting_content_length_is_refused_and_never_crosses_answers(
    raw_server: Any, ask: Any, surface: str
) -> None:
    """The same client (same pool, same event loop) makes a poisoned call, then clean ones."""
    server = raw_server(conflicting_lengths)
    texts = ["warm the pool", "poisoned answer", "clean after", "clean again"]
    got = ask(surface, f"{server.url}/api/v7/llm", texts, catch=True)
    assert got[0] == "warm the pool"
    assert isinstance(got[1], APIConnectionError), got[1]
    assert "content-length" in str(got[1]).lower()
    assert got[2:] == ["clean after", "clean again"]
    assert len(server.requests) == 4
