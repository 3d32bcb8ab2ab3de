"""Idle keep-alive connections that the network forgot: a NAT or load balancer that drops them
without a word (no FIN, no RST: the connection stays open and nothing ever answers on it), and
a server that resets them. The next call succeeds on a new connection, without waiting for its
timeout and without a retry (``max_retries=0``)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from modelslab_core import _pools

#: The surfaces run here: each test waits out an idle period per surface.
SURFACES = ["core:chat", "core:chat_stream", "core:achat", "core:achat_stream"]
SURFACES += ["lc:invoke", "li:astream_chat"]
#: The server forgets (or resets) a connection idle this long; the client's pool must expire it
#: first (silent drop) or notice the reset.
FORGOTTEN_AFTER = 0.4
EXPIRY = 0.2


def forget_idle(connection: Any) -> None:
    """Answer requests until one arrives after the connection sat idle for FORGOTTEN_AFTER
    seconds; from then on, hold the connection open and never answer."""
    last = None
    while True:
        _, _, body = connection.read_request()
        if last is not None and time.monotonic() - last > FORGOTTEN_AFTER:
            connection.hold()
            return
        connection.answer(body)
        last = time.monotonic()


def reset_idle(connection: Any) -> None:
    """Answer requests; a connection idle for FORGOTTEN_AFTER seconds after an answer is reset
    (TCP RST)."""
    idle = None  # the first request may take its time
    while True:
        try:
            _, _, body = connection.read_request(idle=idle)
        except TimeoutError:
            connection.reset()
            return
        connection.answer(body)
        idle = FORGOTTEN_AFTER


@pytest.mark.parametrize("surface", SURFACES)
def test_connection_dropped_silently_while_idle(
    raw_server: Any, ask: Any, monkeypatch: pytest.MonkeyPatch, surface: str
) -> None:
    """With keep-alive expiry below the NAT's idle timeout (KEEPALIVE_EXPIRY made small, on
    fresh pools: the autouse fixture closes the sync one, each async run has a new loop), the
    forgotten connection is never reused: the second call opens a new one and is answered."""
    monkeypatch.setattr(_pools, "KEEPALIVE_EXPIRY", EXPIRY)
    server = raw_server(forget_idle)
    url = f"{server.url}/api/v7/llm"
    got = ask(surface, url, ["before the nap", "after the nap"], timeout=2, pause=0.8)
    assert got == ["before the nap", "after the nap"]
    assert server.connections_opened == 2
    assert len(server.requests) == 2  # the forgotten connection never saw the second call


@pytest.mark.parametrize("surface", SURFACES)
def test_connection_reset_while_idle(
    raw_server: Any, ask: Any, monkeypatch: pytest.MonkeyPatch, surface: str
) -> None:
    """A server that resets idle connections while the pool would still keep them (keep-alive
    expiry well above the wait): the reset connection is dropped from the pool and the next call
    goes on a new one."""
    monkeypatch.setattr(_pools, "KEEPALIVE_EXPIRY", 60.0)
    server = raw_server(reset_idle)
    url = f"{server.url}/api/v7/llm"
    got = ask(surface, url, ["before the reset", "after the reset"], timeout=2, pause=1.0)
    assert got == ["before the reset", "after the reset"]
    assert server.connections_opened == 2
