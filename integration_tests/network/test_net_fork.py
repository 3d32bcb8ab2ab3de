"""Forked children (``os.fork`` and ``multiprocessing`` with the fork context) after the parent
made calls: each child gets its own answers on its own connections, none hangs (every wait is
bounded; a stuck child is killed and the test fails), and the parent's pool still works.

A child forked while other threads have calls in flight (sync and async) must not inherit a
held lock or a half-used connection."""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from modelslab_core.testing import LocalModelsLab, Reply

#: Seconds a child may take before it is killed and the test fails.
CHILD_DEADLINE = 30.0


def child_work(ask: Any, base_url: str, tag: str) -> list[list[str]]:
    """What each child does: calls on every core surface and through both frameworks, each
    with texts of its own."""
    out = []
    for surface in ("core:chat", "core:chat_stream", "core:achat", "core:achat_stream"):
        out.append(ask(surface, base_url, [f"{tag} {surface} one", f"{tag} {surface} two"]))
    out.append(ask("lc:invoke", base_url, f"{tag} lc:invoke"))
    out.append(ask("li:astream_chat", base_url, f"{tag} li:astream_chat"))
    return out


def warm_up(ask: Any, base_url: str) -> None:
    """The parent makes every kind of call a child will make (frameworks imported, the sync
    pool holding an idle connection) before it forks."""
    assert ask("lc:invoke", base_url, "parent warm-up") == ["parent warm-up"]
    assert ask("li:astream_chat", base_url, "parent warm-up") == ["parent warm-up"]


def expected(tag: str) -> list[list[str]]:
    out = []
    for surface in ("core:chat", "core:chat_stream", "core:achat", "core:achat_stream"):
        out.append([f"{tag} {surface} one", f"{tag} {surface} two"])
    return [*out, [f"{tag} lc:invoke"], [f"{tag} li:astream_chat"]]


def fork(work: Callable[[], Any]) -> tuple[int, int]:
    """Fork a child that runs ``work`` and writes its JSON result (or error) to a pipe, then
    ``os._exit``: it never returns into pytest. Returns (pid, read end of the pipe)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        try:
            os.close(read_end)
            try:
                payload = json.dumps({"result": work()})
            except BaseException as exc:
                payload = json.dumps({"error": f"{type(exc).__name__}: {exc}"})
            data = payload.encode()
            while data:
                data = data[os.write(write_end, data) :]
        finally:
            os._exit(0)
    os.close(write_end)
    return pid, read_end


def collect(pid: int, read_end: int, deadline: float) -> Any:
    """The child's result; a child still running at ``deadline`` is killed (the test fails)."""
    chunks = []
    try:
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([read_end], [], [], max(left, 0))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"child {pid} hung: killed after {CHILD_DEADLINE}s")
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_end)
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"child {pid} did not exit")
        time.sleep(0.01)
    return json.loads(b"".join(chunks) or b'{"error": "the child wrote nothing"}')


def test_os_fork_children_get_their_own_answers(server: LocalModelsLab, ask: Any) -> None:
    """The parent's pool holds an idle keep-alive connection when three children are forked;
    they call at the same time and each gets its own echoes; the parent's pool is intact."""
    warm_up(ask, server.base_url)
    assert ask("core:chat", server.base_url, "parent before") == ["parent before"]
    children = [fork(lambda i=i: child_work(ask, server.base_url, f"child{i}")) for i in range(3)]
    deadline = time.monotonic() + CHILD_DEADLINE
    results = [collect(pid, read_end, deadline) for pid, read_end in children]
    for i, result in enumerate(results):
        assert result == {"result": expected(f"child{i}")}
    server.reset_stats()
    assert ask("core:chat", server.base_url, "parent after") == ["parent after"]
    assert server.connections_opened == 0  # the parent's inherited connection still serves it


def _mp_child(connection: Any, ask: Any, base_url: str, tag: str) -> None:
    try:
        connection.send({"result": child_work(ask, base_url, tag)})
    except BaseException as exc:
        connection.send({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        connection.close()


def test_multiprocessing_fork_children_get_their_own_answers(
    server: LocalModelsLab, ask: Any
) -> None:
    """The same with ``multiprocessing`` (fork context), as a user's worker pool would."""
    warm_up(ask, server.base_url)
    assert ask("core:achat", server.base_url, "parent first") == ["parent first"]
    assert ask("core:chat", server.base_url, "parent second") == ["parent second"]
    context = multiprocessing.get_context("fork")
    started = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for i in range(2):
            receiver, sender = context.Pipe(duplex=False)
            process = context.Process(
                target=_mp_child, args=(sender, ask, server.base_url, f"worker{i}")
            )
            process.start()
            sender.close()
            started.append((process, receiver))
    deadline = time.monotonic() + CHILD_DEADLINE
    try:
        for i, (process, receiver) in enumerate(started):
            assert receiver.poll(max(deadline - time.monotonic(), 0)), f"worker{i} hung"
            assert receiver.recv() == {"result": expected(f"worker{i}")}
            process.join(max(deadline - time.monotonic(), 0))
            assert process.exitcode == 0
    finally:
        for process, receiver in started:
            if process.is_alive():
                process.kill()
                process.join(5)
            process.close()
            receiver.close()


def test_fork_while_other_threads_have_calls_in_flight(server: LocalModelsLab, ask: Any) -> None:
    """A sync and an async call are in flight on other threads (the server holds both answers)
    when the child is forked: the child's own calls are answered, the threads' too."""
    warm_up(ask, server.base_url)
    server.enqueue(Reply.slow(1.5), Reply.slow(1.5))
    answers: dict[str, list[str]] = {}

    def call(surface: str) -> None:
        answers[surface] = ask(surface, server.base_url, f"in flight {surface}")

    threads = [
        threading.Thread(target=call, args=(surface,), daemon=True)
        for surface in ("core:chat", "core:achat_stream")
    ]
    for thread in threads:
        thread.start()
    waited = time.monotonic() + 5
    while server.in_flight < 2 and time.monotonic() < waited:
        time.sleep(0.01)
    assert server.in_flight == 2
    pid, read_end = fork(lambda: child_work(ask, server.base_url, "forked mid-call"))
    result = collect(pid, read_end, time.monotonic() + CHILD_DEADLINE)
    for thread in threads:
        thread.join(10)
    assert result == {"result": expected("forked mid-call")}
    assert answers == {s: [f"in flight {s}"] for s in ("core:chat", "core:achat_stream")}
