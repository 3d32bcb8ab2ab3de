"""The local server's fault injection the reliability suites use, over loopback sockets:
``set_fault_rate(once_per_request=True)``, ``faults_injected``, ``open_connections`` and
``max_open_connections_seen``."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from modelslab_core.testing import LocalModelsLab, Reply

KEY = "server-faults-key"


@pytest.fixture
def server() -> Iterator[LocalModelsLab]:
    with LocalModelsLab(api_key=KEY) as local:
        yield local


def post(http: httpx.Client, server: LocalModelsLab, text: str) -> httpx.Response:
    body = {"model": "meta-llama-3-8B-instruct", "messages": [{"role": "user", "content": text}]}
    return http.post(
        f"{server.base_url}/chat/completions",
        content=json.dumps(body),
        headers={"Authorization": f"Bearer {KEY}"},
    )


def test_once_per_request_faults_a_request_once_and_counts(server: LocalModelsLab) -> None:
    server.set_fault_rate(1.0, [Reply.server_error(503)], seed=1, once_per_request=True)
    with httpx.Client() as http:
        assert post(http, server, "first").status_code == 503
        assert post(http, server, "first").status_code == 200  # the same request, retried
        assert post(http, server, "second").status_code == 503  # another request
        assert post(http, server, "second").json()["choices"][0]["message"]["content"] == "second"
    assert server.faults_injected == 2
    assert server.request_count == 4


def test_without_once_per_request_every_attempt_may_fault(server: LocalModelsLab) -> None:
    server.set_fault_rate(1.0, [Reply.server_error(503)], seed=1)
    with httpx.Client() as http:
        assert [post(http, server, "same").status_code for _ in range(3)] == [503, 503, 503]
    assert server.faults_injected == 3


def test_fault_rate_counts_are_fixed_by_the_seed(server: LocalModelsLab) -> None:
    counts = []
    with httpx.Client() as http:
        for _ in range(2):
            server.reset()
            server.set_fault_rate(0.25, seed=99, once_per_request=True)
            for i in range(80):
                post(http, server, f"call {i}")
            counts.append(server.faults_injected)
    assert counts[0] == counts[1]
    assert 5 < counts[0] < 40


def test_reset_clears_faults_and_their_memory(server: LocalModelsLab) -> None:
    server.set_fault_rate(1.0, [Reply.server_error(503)], once_per_request=True)
    with httpx.Client() as http:
        assert post(http, server, "x").status_code == 503
        server.reset()
        assert server.faults_injected == 0
        assert post(http, server, "x").status_code == 200  # fault rate off
        server.set_fault_rate(1.0, [Reply.server_error(503)], once_per_request=True)
        assert post(http, server, "x").status_code == 503  # a new rate forgets the old faults


def _settle(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_open_connections_and_their_peak(server: LocalModelsLab) -> None:
    assert server.open_connections == 0
    conns = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        assert _settle(lambda: server.open_connections == 3)
        assert server.max_open_connections_seen == 3
    finally:
        for conn in conns:
            conn.close()
    assert _settle(lambda: server.open_connections == 0)
    assert server.max_open_connections_seen == 3  # the peak stays until reset_stats()
    server.reset_stats()
    assert server.max_open_connections_seen == 0
