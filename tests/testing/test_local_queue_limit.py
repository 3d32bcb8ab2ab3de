"""The local server's account queue: ``queue_limit`` answers HTTP 429 as ModelsLab does,
``latency`` holds answers, and both are on the command line too."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelslab_core.testing import LocalModelsLab, Reply

CHAT = "/api/v7/llm/chat/completions"
REPO_ROOT = Path(__file__).resolve().parents[2]


def body(text: str = "hi", **fields: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": text}], **fields}


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


async def test_a_full_queue_answers_429_with_header_and_body_field() -> None:
    with LocalModelsLab(queue_limit=2, latency=1.0) as server:
        response = await _fill_then_ask(server, "key-a", 2)
        assert response.status_code == 429
        payload = response.json()
        assert payload["status"] == "error"
        assert payload["message"] == "Rate limit exceeded. Maximum 2 queued requests allowed."
        assert 0 < payload["retry_after"] <= 1.0  # when the oldest request is due
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


def test_queue_settings_are_attributes_and_reset_restores_them() -> None:
    with LocalModelsLab(queue_limit=3) as server:
        server.queue_limit = None
        server.latency = 0.5
        server.reset()
        assert (server.queue_limit, server.latency, server.retry_after) == (3, 0.0, None)
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


def _read_until_ready(stream: Any, lines: list[str], ready: threading.Event) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))
        if line.strip() == "READY":
            ready.set()
            return


def test_cli_queue_limit_and_latency() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "modelslab_core.testing",
        "--queue-limit",
        "1",
        "--latency",
        "1.0",
        "--rate-limit-message",
        "Slow down: maximum {limit} queued requests",
    ]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT
    ) as process:
        lines: list[str] = []
        ready = threading.Event()
        reader = threading.Thread(
            target=_read_until_ready, args=(process.stdout, lines, ready), daemon=True
        )
        reader.start()
        try:
            assert ready.wait(15), f"no READY line: {lines}"
            chat = dict(line.split(": ", 1) for line in lines if ": " in line)["chat"]

            async def both() -> list[httpx.Response]:
                headers = {"Authorization": "Bearer k"}
                async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                    url = f"{chat}/chat/completions"
                    return list(await asyncio.gather(*(http.post(url, json=body()) for _ in "ab")))

            answers = sorted(asyncio.run(both()), key=lambda r: r.status_code)
            assert [a.status_code for a in answers] == [200, 429]
            assert answers[1].json()["message"] == "Slow down: maximum 1 queued requests"
            assert "retry-after" in answers[1].headers
        finally:
            process.send_signal(signal.SIGTERM)
            reader.join(5)
            _, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors


def test_cli_refuses_a_queue_limit_below_one() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelslab_core.testing", "--queue-limit", "0"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
    )
    assert result.returncode == 2 and "--queue-limit must be >= 1" in result.stderr
