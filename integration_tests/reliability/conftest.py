"""Fixtures of the reliability suites: a keyed local server per module, retry delays recorded
instead of slept, and a probe of this process's sockets.

Test modules here cannot import each other (pytest runs with ``--import-mode=importlib``), so the
shared helpers are fixtures.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from modelslab_core import RetryPolicy
from modelslab_core.testing import LocalModelsLab

#: A recognisable key: any leak of it is easy to spot.
KEY = "msl-REL-7f3c9e1d-SECRET-KEY-0042"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELSLAB_API_KEY", "MODELSLAB_BASE_URL", "MODELSLAB_COMPLETIONS_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def retry_delays(monkeypatch: pytest.MonkeyPatch) -> list[tuple[BaseException, float]]:
    """Every retry the policy allowed, as (the error retried, the delay the policy chose), in
    order; the clients then wait 0 seconds.

    The policy's own ``delay`` still computes each value (``Retry-After``, ``retry_after``,
    backoff), so tests can check that a retry followed the policy without sleeping.
    """
    chosen: list[tuple[BaseException, float]] = []
    original = RetryPolicy.delay

    def record(self: RetryPolicy, error: BaseException, attempt: int, **kwargs: Any) -> float:
        chosen.append((error, original(self, error, attempt, **kwargs)))
        return 0.0

    monkeypatch.setattr(RetryPolicy, "delay", record)
    return chosen


@pytest.fixture(scope="module")
def module_server() -> Iterator[LocalModelsLab]:
    """A server of this module alone (slow replies of other modules cannot skew its stats),
    accepting only :data:`KEY`. The request log is short: load tests must not measure it."""
    with LocalModelsLab(api_key=KEY, max_recorded_requests=200) as server:
        yield server


@pytest.fixture
def server(module_server: LocalModelsLab) -> LocalModelsLab:
    """The module's server, reset for this test."""
    module_server.reset()
    return module_server


class SocketProbe:
    """This process's sockets, from ``/proc`` (Linux).

    :meth:`snapshot` and :meth:`opened_since` tell which sockets a test opened and left open (the
    in-process server's side of a connection included); :meth:`client_connections` counts the TCP
    sockets this process holds *to* a port (the client side of connections to a local server, in
    any state). Comparing sets rather than counts keeps sockets that other tests left to the
    garbage collector (closed during this test) from hiding a leak.
    """

    @staticmethod
    def snapshot() -> frozenset[str]:
        """The inodes of this process's open sockets."""
        inodes = set()
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/self/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        return frozenset(inodes)

    def count(self) -> int:
        return len(self.snapshot())

    def opened_since(self, before: frozenset[str]) -> list[str]:
        """The sockets open now that were not open at ``before``, described."""
        return self.describe(self.snapshot() - before)

    def client_connections(self, port: int) -> int:
        mine = self.snapshot()
        found = 0
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
            with contextlib.suppress(OSError), open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if remote_port == port and fields[9] in mine:
                        found += 1
        return found

    @staticmethod
    def describe(inodes: frozenset[str]) -> list[str]:
        """Each socket of ``inodes``: its table, addresses (hex) and TCP state."""
        found = []
        for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6", "/proc/self/net/unix"):
            with contextlib.suppress(OSError), open(table) as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    inode = fields[6] if table.endswith("unix") else fields[9]
                    if inode in inodes:
                        found.append(f"{table.rsplit('/', 1)[1]} {' '.join(fields[1:4])}")
        return found or sorted(inodes)

    @staticmethod
    def settle(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``condition()`` holds (the server closes its side of a connection a moment
        after the client closed it); returns whether it did. A wait, not a timing assertion."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return condition()
            time.sleep(0.01)
        return True


@pytest.fixture
def sockets() -> SocketProbe:
    return SocketProbe()


def free_port() -> int:
    """A loopback port nothing listens on (connecting to it is refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def refused_port() -> int:
    return free_port()
