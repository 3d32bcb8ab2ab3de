"""A key that cannot travel in an HTTP header is refused before any request, without being
shown; the request log (httpx's INFO line, our DEBUG line per attempt) says what happened and
never shows the key or the request body."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from modelslab_core import ConfigurationError, RetryPolicy
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "msl-NET-5f2a9c-SECRET-KEY-7781"
BAD_KEYS = {"crlf": "msl-BAD-KEY-31337\r\n x", "zero-width": "msl-BAD-KEY-31337\u200b"}


@pytest.mark.parametrize("where", ["argument", "environment"])
@pytest.mark.parametrize("bad", list(BAD_KEYS))
def test_key_unfit_for_a_header_is_refused_before_any_request(
    server: LocalModelsLab,
    ask: Any,
    monkeypatch: pytest.MonkeyPatch,
    surface: str,
    bad: str,
    where: str,
) -> None:
    key = BAD_KEYS[bad]
    if where == "environment":
        monkeypatch.setenv("MODELSLAB_API_KEY", key)
    # Every surface, LangChain's constructors included, raises our ConfigurationError as it is.
    with pytest.raises(ConfigurationError) as caught:
        ask(surface, server.base_url, "never sent", api_key=key if where == "argument" else None)
    shown = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert "31337" not in shown and "msl-BAD" not in shown
    assert "U+000D" in shown if bad == "crlf" else "U+200B" in shown
    assert server.requests == []
    assert server.connections_opened == 0


def _answer(surface: str, text: str, request_id: str) -> Reply:
    from json import dumps

    headers = {"X-Request-Id": request_id}
    if "stream" in surface:
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": "stop"}]}
        body = f"data: {dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
        return Reply.raw(200, body, content_type="text/event-stream", headers=headers)
    message = {"role": "assistant", "content": text}
    body = dumps({"choices": [{"index": 0, "message": message}]}).encode()
    return Reply.raw(200, body, content_type="application/json", headers=headers)


def test_one_call_logs_one_httpx_line_and_one_of_ours_without_key_or_body(
    server: LocalModelsLab, ask: Any, caplog: pytest.LogCaptureFixture, surface: str
) -> None:
    """One call: httpx's INFO line names the request; ours (DEBUG, "modelslab_core") gives the
    model, status, request id, latency and retries; neither shows the key or the body."""
    caplog.set_level(logging.DEBUG)
    marker = f"BODY-MARKER-{surface}"
    server.enqueue(_answer(surface, "logged answer", "req-net-42"))
    assert ask(surface, server.base_url, marker) == ["logged answer"]
    ours = [r for r in caplog.records if r.name == "modelslab_core"]
    theirs = [r for r in caplog.records if r.name == "httpx"]
    assert len(ours) == 1 and ours[0].levelno == logging.DEBUG
    line = ours[0].getMessage()
    for part in ("meta-llama-3-8B-instruct", "status=200", "request_id=req-net-42", "retries=0"):
        assert part in line, line
    assert "latency=" in line
    assert len(theirs) == 1 and theirs[0].levelno == logging.INFO
    assert "HTTP Request: POST" in theirs[0].getMessage()
    assert f"{server.base_url}/chat/completions" in theirs[0].getMessage()
    assert '"HTTP/1.1 200 OK"' in theirs[0].getMessage()
    for record in caplog.records:
        assert KEY not in record.getMessage()
        if record.name.startswith(("modelslab_core", "httpx")):
            assert marker not in record.getMessage()


@pytest.mark.parametrize("surface", ["core:chat", "core:achat_stream"])
@pytest.mark.parametrize("placement", ["bearer", "body"])
def test_log_of_a_retried_call(
    server: LocalModelsLab,
    ask: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    surface: str,
    placement: str,
) -> None:
    """A 503 then an answer: one DEBUG line per attempt (status 503 then 200, retries 0 then
    1), two httpx lines; the key (in the header or in the body) and the body shown nowhere."""
    monkeypatch.setattr(RetryPolicy, "delay", lambda self, error, attempt, rng=None: 0.0)
    caplog.set_level(logging.DEBUG)
    server.enqueue(Reply.server_error(503))
    marker = "BODY-MARKER-retried"
    got = ask(surface, server.base_url, marker, max_retries=1, key_placement=placement)
    assert got == [marker]
    ours = [r.getMessage() for r in caplog.records if r.name == "modelslab_core"]
    attempts = [m for m in ours if "status=" in m]
    assert len(attempts) == 2, ours
    assert "status=503" in attempts[0] and "retries=0" in attempts[0]
    assert "status=200" in attempts[1] and "retries=1" in attempts[1]
    assert len([r for r in caplog.records if r.name == "httpx"]) == 2
    for record in caplog.records:
        assert KEY not in record.getMessage()
        assert marker not in record.getMessage()
