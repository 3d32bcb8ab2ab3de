"""HTTP as real servers speak it: gzip-compressed answers and streams, and redirects (307/308
followed with their method and body, 301/302/303 on a POST refused naming the ``Location``, the
key never carried to another origin)."""

from __future__ import annotations

import gzip
from typing import Any

import pytest

from modelslab_core import APIStatusError
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "msl-NET-5f2a9c-SECRET-KEY-7781"


def test_gzip_answers_and_streams(
    server: LocalModelsLab, ask: Any, answers: Any, surface: str
) -> None:
    """A gzip-compressed JSON answer (or SSE stream, for the streaming surfaces) is decoded;
    every request offered gzip in ``Accept-Encoding``."""
    text = f"unzipped for {surface}"
    if "stream" in surface:
        body, kind = answers.sse(text), "text/event-stream"
    else:
        body, kind = answers.json(text), "application/json"
    zipped = gzip.compress(body)
    assert zipped != body and text.encode() not in zipped
    server.enqueue(Reply.raw(200, zipped, content_type=kind, headers={"Content-Encoding": "gzip"}))
    assert ask(surface, server.base_url, "the answer comes zipped") == [text]
    assert server.pending_replies == 0
    accepted = server.last_request.headers["accept-encoding"]
    assert "gzip" in [coding.strip() for coding in accepted.split(",")]


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_are_followed_with_method_and_body(
    server: LocalModelsLab, ask: Any, surface: str, status: int
) -> None:
    """The answer comes from where the redirect points, to the same POST with the same body
    (the key with it: the origin is the same)."""
    target = f"{server.uncensored_base_url}/chat/completions"
    server.enqueue(Reply.raw(status, b"", headers={"Location": target}))
    assert ask(surface, server.base_url, f"moved with {status}") == [f"moved with {status}"]
    first, second = server.requests
    assert (first.method, second.method) == ("POST", "POST")
    assert first.path == "/api/v7/llm/chat/completions"
    assert second.path == "/api/uncensored-chat/v1/chat/completions"
    assert second.body == first.body
    assert second.body["messages"][-1]["content"] == f"moved with {status}"
    assert second.key_placement == "bearer"


@pytest.mark.parametrize("status", [301, 302, 303])
def test_redirect_that_would_turn_a_post_into_a_get_is_refused(
    server: LocalModelsLab, ask: Any, surface: str, status: int
) -> None:
    """301/302/303 would make the POST a GET without its body: our APIStatusError naming the
    ``Location``, and nothing sent there."""
    target = f"{server.url}/api/v8/llm/chat/completions"
    server.enqueue(Reply.raw(status, b"", headers={"Location": target}))
    with pytest.raises(APIStatusError) as caught:
        ask(surface, server.base_url, "not followed")
    assert target in str(caught.value)
    assert caught.value.status_code == status
    assert [r.path for r in server.requests] == ["/api/v7/llm/chat/completions"]


@pytest.mark.parametrize("placement", ["bearer", "x-api-key", "body"])
@pytest.mark.parametrize("surface", ["core:chat", "core:achat_stream"])
def test_cross_origin_redirect_never_carries_the_key(
    server: LocalModelsLab,
    raw_server: Any,
    echo: Any,
    ask: Any,
    surface: str,
    placement: str,
) -> None:
    """A 307 to another origin (another port) never takes the key there, wherever the key
    travels. With ``Authorization`` httpx drops the header and the redirect is followed; the
    key in ``x-api-key`` or in the body would go along, so the redirect is refused naming the
    ``Location``. The other origin's raw bytes are checked."""
    other = raw_server(echo)
    target = f"{other.url}/api/v7/llm/chat/completions"
    server.enqueue(Reply.raw(307, b"", headers={"Location": target}))
    if placement == "bearer":
        got = ask(surface, server.base_url, "follow me elsewhere", key_placement=placement)
        assert got == ["follow me elsewhere"]
        assert len(other.requests) == 1
    else:
        with pytest.raises(APIStatusError) as caught:
            ask(surface, server.base_url, "follow me elsewhere", key_placement=placement)
        assert target in str(caught.value) and KEY not in str(caught.value)
        assert other.requests == []
    assert server.request_count == 1
    for raw in other.raw:
        assert KEY.encode() not in raw
        assert b"authorization" not in raw.lower()


def test_same_origin_redirect_keeps_a_key_in_the_body(server: LocalModelsLab, ask: Any) -> None:
    """The refusal above is for other origins only: on the same origin the key travels on."""
    target = f"{server.uncensored_base_url}/chat/completions"
    server.enqueue(Reply.raw(308, b"", headers={"Location": target}))
    got = ask("core:chat", server.base_url, "same origin", key_placement="body")
    assert got == ["same origin"]
    assert [r.key_placement for r in server.requests] == ["body", "body"]
