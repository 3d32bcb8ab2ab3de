"""The local server's account queue: ``queue_limit`` answers HTTP 429 as ModelsLab does and
``latency`` holds answers (the command-line flags are tested in ``test_local_cli.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from modelslab_core.testing import LocalModelsLab, Reply

CHAT = "/api/v7/llm/chat/completions"


def body(text: str = "hi", **fields: Any) -> dict[str, Any]:
    return {
        "model": "meta-llama-3-8B-instruct",
        "messages": [{"role": "user", "content": text}],
        **fields,
    }


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.005)


async def _fill_then_ask(server: LocalModelsLab, key: str, fill: int) -> httpx.Response:
    """Hold ``fill`` requests of ``key`` at the server, then send one more and return its answer
    (the held ones are answered before returning)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http:
        held = [asyncio.create_task(http.post(CHAT, json=body(f"q{i}"))) for i in range(fill)]
        await _until(lambda: server.queued >= fill)
        extra = await http.post(CHAT, json=body("one too many"))
        answers = await asyncio.gather(*held)
    assert all(a.status_code == 200 for a in answers)
    return extra


async def test_a_full_queue_answers_429_with_modelslabs_30_seconds_by_default() -> None:
    with LocalModelsLab(queue_limit=1, latency=1.0) as server:
        response = await _fill_then_ask(server, "key-a", 1)
    assert response.status_code == 429
    assert response.json()["retry_after"] == 30
    assert response.headers["retry-after"] == "30"


async def test_a_full_queue_answers_429_with_header_and_body_field() -> None:
    with LocalModelsLab(queue_limit=2, latency=1.0, retry_after=None) as server:
        response = await _fill_then_ask(server, "key-a", 2)
        assert response.status_code == 429
        payload = response.json()
        assert payload["status"] == "error"
        assert payload["message"] == "Rate limit exceeded. Maximum 2 queued requests allowed."
        assert 0 < payload["retry_after"] <= 1.0  # retry_after=None: when the oldest is due
        assert float(response.headers["retry-after"]) == payload["retry_after"]
        assert server.rate_limited_count == 1
        assert server.max_queued_seen == 2
        assert server.queued == 0


async def test_the_queue_is_per_key() -> None:
    with LocalModelsLab(queue_limit=1, latency=1.0) as server:
        headers = {"Authorization": "Bearer key-a"}
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            held = asyncio.create_task(http.post(CHAT, json=body(), headers=headers))
            await _until(lambda: server.queued >= 1)
            other = await http.post(CHAT, json=body(), headers={"Authorization": "Bearer key-b"})
            assert (await held).status_code == 200
        assert other.status_code == 200
        assert server.rate_limited_count == 0 and server.max_queued_seen == 2


async def test_a_fixed_retry_after_and_a_message_without_the_limit() -> None:
    with LocalModelsLab(
        queue_limit=1, latency=1.0, retry_after=3, rate_limit_message="Too many requests."
    ) as server:
        response = await _fill_then_ask(server, "key-a", 1)
    assert response.status_code == 429
    assert response.json() == {"status": "error", "message": "Too many requests.", "retry_after": 3}
    assert response.headers["retry-after"] == "3"


async def test_a_turned_away_request_consumes_no_scripted_reply() -> None:
    with LocalModelsLab(queue_limit=1, latency=0.5) as server:
        server.enqueue(Reply.text("first"), Reply.text("second"))
        response = await _fill_then_ask(server, "key-a", 1)
        assert response.status_code == 429
        assert server.pending_replies == 1


def test_reset_restores_the_queue_settings_given_at_construction_and_bad_ones_are_refused() -> None:
    with LocalModelsLab(queue_limit=3) as server:
        server.queue_limit = None
        server.latency = 0.5
        server.reset()
        assert (server.queue_limit, server.latency, server.retry_after) == (3, 0.0, 30.0)
    with pytest.raises(ValueError):
        LocalModelsLab(queue_limit=0)
    with pytest.raises(ValueError):
        LocalModelsLab(latency=-1)


def test_model_list_requests_are_not_queued() -> None:
    with LocalModelsLab(queue_limit=1) as server:
        headers = {"Authorization": "Bearer k"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
            for _ in range(3):
                assert http.get("/api/v7/llm/v1/models").status_code == 200
        assert server.max_queued_seen == 0
