"""The command-line entry point: start it, wait for READY, make requests, stop it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def _read_until_ready(stream: Any, lines: list[str], ready: threading.Event) -> None:
    for line in stream:
        lines.append(line.rstrip("\n"))
        if line.strip() == "READY":
            ready.set()
            return


@contextmanager
def running_cli(*args: str) -> Iterator[dict[str, str]]:
    """``python -m modelslab_core.testing *args`` until the block ends: yields the URLs it
    printed before READY (``{"chat": ..., "completions": ..., "uncensored": ...}``), then stops
    it with SIGTERM and checks that it exited cleanly."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "modelslab_core.testing", *args]
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
            yield dict(line.split(": ", 1) for line in lines if ": " in line)
        finally:
            process.send_signal(signal.SIGTERM)
            reader.join(5)
            _, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors


def test_cli_prints_urls_then_ready_and_serves() -> None:
    with running_cli("--api-key", "cli-key", "--model", "my-fine-tune") as urls:
        assert urls["chat"].endswith("/api/v7/llm")
        assert urls["completions"].endswith("/api/v6")
        assert urls["uncensored"].endswith("/api/uncensored-chat/v1")
        with httpx.Client(headers={"Authorization": "Bearer cli-key"}) as http:
            response = http.post(
                f"{urls['chat']}/chat/completions",
                json={
                    "model": "meta-llama-3-8B-instruct",
                    "messages": [{"role": "user", "content": "from cli"}],
                },
            )
            mine = http.post(
                f"{urls['chat']}/chat/completions",
                json={"model": "my-fine-tune", "messages": [{"role": "user", "content": "mine"}]},
            )
            unknown = http.post(
                f"{urls['chat']}/chat/completions",
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "no"}]},
            )
        assert response.json()["choices"][0]["message"]["content"] == "from cli"
        assert mine.json()["choices"][0]["message"]["content"] == "mine"
        assert unknown.status_code == 404


def test_cli_queue_limit_and_latency() -> None:
    message = "Slow down: maximum {limit} queued requests"
    args = ("--queue-limit", "1", "--latency", "1.0", "--rate-limit-message", message)
    args += ("--retry-after", "7")
    with running_cli(*args) as urls:
        body = {
            "model": "meta-llama-3-8B-instruct",
            "messages": [{"role": "user", "content": "hi"}],
        }

        async def both() -> list[httpx.Response]:
            headers = {"Authorization": "Bearer k"}
            async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                url = f"{urls['chat']}/chat/completions"
                return list(await asyncio.gather(*(http.post(url, json=body) for _ in "ab")))

        answers = sorted(asyncio.run(both()), key=lambda r: r.status_code)
        assert [a.status_code for a in answers] == [200, 429]
        assert answers[1].json()["message"] == "Slow down: maximum 1 queued requests"
        assert answers[1].headers["retry-after"] == "7" and answers[1].json()["retry_after"] == 7


def test_cli_refuses_a_queue_limit_below_one() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "modelslab_core.testing", "--queue-limit", "0"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=30,
    )
    assert result.returncode == 2 and "--queue-limit must be >= 1" in result.stderr
