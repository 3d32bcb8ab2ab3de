"""The command-line entry point: start it, wait for READY, make a request, stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def _read_until_ready(stream: object, lines: list[str], ready: threading.Event) -> None:
    for line in stream:  # type: ignore[attr-defined]
        lines.append(line.rstrip("\n"))
        if line.strip() == "READY":
            ready.set()
            return


def test_cli_prints_urls_then_ready_and_serves() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "modelslab_core.testing", "--api-key", "cli-key"]
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
            urls = dict(line.split(": ", 1) for line in lines if ": " in line)
            assert urls["chat"].endswith("/api/v7/llm")
            assert urls["completions"].endswith("/api/v6")
            assert urls["uncensored"].endswith("/api/uncensored-chat/v1")
            with httpx.Client(headers={"Authorization": "Bearer cli-key"}) as http:
                response = http.post(
                    f"{urls['chat']}/chat/completions",
                    json={"model": "m", "messages": [{"role": "user", "content": "from cli"}]},
                )
            assert response.json()["choices"][0]["message"]["content"] == "from cli"
        finally:
            process.send_signal(signal.SIGTERM)
            reader.join(5)
            _, errors = process.communicate(timeout=10)
        assert process.returncode == 0, errors
