"""Load, in-flight cap, leaked connections and memory, over real sockets.

``make test`` runs every check here at a small size; the marker ``load`` (``make test-load``) marks
the sizes that make them soak tests: 2,000 calls instead of 200, and the memory probe.

- 200 async calls (2,000 under ``load``), 64 in flight, through ``ChatModelsLab.abatch`` and
  LlamaIndex ``achat``, 10 % of them meeting an injected 429 or 500 first: with
  ``max_retries=2`` every call answers with its own answer; with retries off every failed call
  is a typed error, and every other call its own answer.
- ``max_in_flight=5``: the server never sees more than 5 requests at once (and, without the
  cap, it does: the check can tell).
- Open sockets return to their starting count. The shared pools keep idle keep-alive connections
  by design, so "return" is measured where a pool ends: an async pool when its event loop shuts
  down (each run below has its own loop), the sync pool at ``close_shared_pools()``. Before that,
  no connection may be held beyond the pool's own.
- Memory stays flat over 10,000 streamed calls (``load`` only; RSS and live objects, measured
  after the first 2,000 calls and after the last).

Each test prints its figures (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from langchain_core.exceptions import ModelAPIError, ModelRateLimitError
from llama_index.core.llms import ChatMessage

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import ModelsLabClient, close_shared_pools
from modelslab_core import errors as e
from modelslab_core.flow import reset_gates
from modelslab_core.testing import LocalModelsLab, Reply

KEY = "msl-REL-7f3c9e1d-SECRET-KEY-0042"  # the conftest's server accepts this key only
T = TypeVar("T")

#: The calls of the fault-injection run: a quick size, and the soak size (``make test-load``).
CALLS = [200, pytest.param(2_000, marks=[pytest.mark.load, pytest.mark.timeout(300)], id="2000")]
IN_FLIGHT = 64
FAULT_RATE = 0.1


def arun(coro: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        return runner.run(coro)


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def inject_faults(server: LocalModelsLab, seed: int) -> None:
    # Each call meets at most one fault (its retry is answered): "10 % of the calls meet a 429 or
    # a 500 first". The count of faults is fixed by the seed, whichever call draws them.
    server.set_fault_rate(
        FAULT_RATE,
        [Reply.rate_limit(retry_after=0), Reply.server_error(500, "injected fault")],
        seed=seed,
        once_per_request=True,
    )


async def lc_calls(server: LocalModelsLab, prompts: list[str], max_retries: int) -> list[Any]:
    chat = ChatModelsLab(api_key=KEY, base_url=server.base_url, max_retries=max_retries)
    config = {"max_concurrency": IN_FLIGHT}
    results: list[Any] = await chat.abatch(prompts, config=config, return_exceptions=True)  # type: ignore[arg-type]
    return [r if isinstance(r, BaseException) else r.content for r in results]


async def li_calls(server: LocalModelsLab, prompts: list[str], max_retries: int) -> list[Any]:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url, max_retries=max_retries)
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(prompt: str) -> Any:
        async with gate:
            return (await llm.achat(user(prompt))).message.content

    return await asyncio.gather(*(one(p) for p in prompts), return_exceptions=True)


def quiet_sockets(server: LocalModelsLab, sockets: Any) -> frozenset[str]:
    """The starting point: this process's sockets once no connection to the server is left
    (the sync pool closed, and the server done closing its side of each connection)."""
    close_shared_pools()
    assert sockets.settle(lambda: server.open_connections == 0)
    server.reset_stats()  # peaks from here on
    return frozenset(sockets.snapshot())


RUNNERS = {"langchain abatch": lc_calls, "llama_index achat": li_calls}


@pytest.mark.parametrize("calls", CALLS)
@pytest.mark.parametrize("max_retries", [2, 0], ids=["retries=2", "retries=0"])
@pytest.mark.parametrize("runner", list(RUNNERS))
def test_load_with_injected_faults(
    server: LocalModelsLab,
    sockets: Any,
    retry_delays: list[tuple[BaseException, float]],
    runner: str,
    max_retries: int,
    calls: int,
) -> None:
    sockets_before = quiet_sockets(server, sockets)
    prompts = [f"call number {i}" for i in range(calls)]
    inject_faults(server, seed=2024)
    results = arun(RUNNERS[runner](server, prompts, max_retries))

    faults = server.faults_injected
    answered = [r for r in results if not isinstance(r, BaseException)]
    failed = [r for r in results if isinstance(r, BaseException)]
    # Every answer is the answer to its own call: never empty, never another call's.
    for prompt, result in zip(prompts, results, strict=True):
        if not isinstance(result, BaseException):
            assert result == prompt
    assert 0.05 * calls < faults < 0.15 * calls  # about 10 % of the calls met a fault
    if max_retries:
        assert failed == []
        assert len(answered) == calls
        assert len(retry_delays) == faults
        assert server.request_count == calls + faults
    else:
        # Exactly the calls that met a fault failed, each with a typed error naming its status.
        assert len(failed) == faults and len(answered) == calls - faults
        assert server.request_count == calls
        assert retry_delays == []
        for error in failed:
            assert isinstance(error, e.RateLimitError | e.ServerError), repr(error)
            assert f"HTTP {error.status_code}" in str(error)
            assert error.status_code in (429, 500)
            if runner.startswith("langchain"):
                assert isinstance(error, ModelRateLimitError | ModelAPIError)
    assert server.max_in_flight_seen <= IN_FLIGHT
    peak = server.max_open_connections_seen
    assert peak <= IN_FLIGHT  # one connection per request in flight at most, reused after
    # The loop has shut down and closed its pool: no connection of this process to the server is
    # left, and the process's socket count is back where it started once the server has seen
    # the connections close.
    assert sockets.client_connections(server.port) == 0
    assert sockets.settle(lambda: server.open_connections == 0)
    assert sockets.settle(lambda: not sockets.opened_since(sockets_before)), sockets.opened_since(
        sockets_before
    )
    print(
        f"\n[load] {runner} max_retries={max_retries}: calls={calls} in_flight={IN_FLIGHT} "
        f"faults_injected={faults} answers={len(answered)} typed_errors={len(failed)} "
        f"requests={server.request_count} peak_open_sockets={peak} "
        f"peak_in_flight={server.max_in_flight_seen}"
    )


# ----------------------------------------------------------------------------- the in-flight cap

CAP = 5
SLOW = 0.03  # each answer waits, so that requests overlap at the server


def _lc_async(server: LocalModelsLab, cap: int | None) -> list[str]:
    chat = ChatModelsLab(api_key=KEY, base_url=server.base_url, max_in_flight=cap)
    prompts = [f"capped {i}" for i in range(30)]
    results = arun(chat.abatch(prompts, config={"max_concurrency": 30}))  # type: ignore[arg-type]
    return [str(r.content) for r in results]


def _lc_sync(server: LocalModelsLab, cap: int | None) -> list[str]:
    chat = ChatModelsLab(api_key=KEY, base_url=server.base_url, max_in_flight=cap)
    prompts = [f"capped {i}" for i in range(30)]
    return [str(r.content) for r in chat.batch(prompts, config={"max_concurrency": 30})]  # type: ignore[arg-type]


def _li_async(server: LocalModelsLab, cap: int | None) -> list[str]:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url, max_in_flight=cap)

    async def run() -> list[Any]:
        return await asyncio.gather(*(llm.achat(user(f"capped {i}")) for i in range(30)))

    return [str(r.message.content) for r in arun(run())]


def _li_sync(server: LocalModelsLab, cap: int | None) -> list[str]:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url, max_in_flight=cap)
    with ThreadPoolExecutor(max_workers=30) as pool:
        results = list(pool.map(lambda i: llm.chat(user(f"capped {i}")), range(30)))
    return [str(r.message.content) for r in results]


def _li_astream(server: LocalModelsLab, cap: int | None) -> list[str]:
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url, max_in_flight=cap)

    async def one(i: int) -> str:
        responses = [r async for r in await llm.astream_chat(user(f"capped {i}"))]
        return str(responses[-1].message.content)

    async def run() -> list[str]:
        return await asyncio.gather(*(one(i) for i in range(30)))

    return arun(run())


CAPPED = {
    "langchain abatch": _lc_async,
    "langchain batch (threads)": _lc_sync,
    "llama_index achat": _li_async,
    "llama_index chat (threads)": _li_sync,
    "llama_index astream_chat": _li_astream,
}


@pytest.mark.parametrize("path", list(CAPPED))
def test_max_in_flight_caps_the_calls_at_the_server_and_without_it_they_overlap(
    server: LocalModelsLab, path: str
) -> None:
    server.set_fault_rate(1.0, [Reply.slow(SLOW)])  # every answer is slow
    answers = CAPPED[path](server, CAP)
    assert answers == [f"capped {i}" for i in range(30)]
    assert server.max_in_flight_seen <= CAP
    assert server.max_in_flight_seen >= 2  # the calls did overlap

    # The control: the same calls without the cap overlap beyond it, so the check above can fail.
    # (The cap pins the account's gate: a new user of the account starts with a fresh one.)
    server.reset_stats()
    reset_gates()
    assert CAPPED[path](server, None) == answers
    assert server.max_in_flight_seen > CAP


@pytest.mark.parametrize("path", ["langchain batch (threads)", "llama_index chat (threads)"])
def test_in_flight_cap_when_first_calls_race(
    server: LocalModelsLab, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    """Threads that make a model's first calls at once must share one client, and so one cap.
    Building a client is made slow here (as a thread switch in the middle of it would be), so
    that the threads do race for it."""
    built = ModelsLabClient.__init__

    def slow_build(self: ModelsLabClient, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.01)
        built(self, *args, **kwargs)

    monkeypatch.setattr(ModelsLabClient, "__init__", slow_build)
    server.set_fault_rate(1.0, [Reply.slow(SLOW)])
    assert CAPPED[path](server, CAP) == [f"capped {i}" for i in range(30)]
    assert server.max_in_flight_seen <= CAP


# ----------------------------------------------------------------------------- sync leaks

FAULT_MIX = [
    Reply.reset_connection(),
    Reply.reset_connection(after_bytes=200),
    Reply.cut_stream(after_chunks=1),
    Reply.html_error(502),
    Reply.rate_limit(retry_after=0),
    Reply.stream_error_event("upstream broke"),
    Reply.invalid_key_envelope(),
]


def test_sync_paths_under_faults_leak_no_socket(server: LocalModelsLab, sockets: Any) -> None:
    sockets_before = quiet_sockets(server, sockets)
    server.set_fault_rate(0.3, FAULT_MIX, seed=7)
    chat = ChatModelsLab(api_key=KEY, base_url=server.base_url, max_retries=1)
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url, max_retries=1)

    def one(i: int) -> Any:
        try:
            if i % 4 == 0:
                return chat.invoke(f"sync {i}").content
            if i % 4 == 1:
                return "".join(str(c.content) for c in chat.stream(f"sync {i}"))
            if i % 4 == 2:
                return llm.chat(user(f"sync {i}")).message.content
            return list(llm.stream_chat(user(f"sync {i}")))[-1].message.content
        except e.ModelsLabError as error:
            return error

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(400)))
    for i, result in enumerate(results):
        assert isinstance(result, e.APIError) or result == f"sync {i}", (i, result)
    assert server.faults_injected > 50
    # Held now: at most the pool's idle keep-alive connections, one per thread that ran.
    held = sockets.client_connections(server.port)
    assert held <= 8
    close_shared_pools()
    assert sockets.client_connections(server.port) == 0
    assert sockets.settle(lambda: server.open_connections == 0)
    assert sockets.settle(lambda: not sockets.opened_since(sockets_before)), sockets.opened_since(
        sockets_before
    )
    errors = sum(isinstance(r, BaseException) for r in results)
    print(
        f"\n[leaks] sync: calls=400 faults_injected={server.faults_injected} "
        f"typed_errors={errors} held_before_close={held} "
        f"peak_open_sockets={server.max_open_connections_seen}"
    )


def test_async_paths_under_faults_leak_no_socket(server: LocalModelsLab, sockets: Any) -> None:
    sockets_before = quiet_sockets(server, sockets)
    server.set_fault_rate(0.3, FAULT_MIX, seed=11)
    chat = ChatModelsLab(api_key=KEY, base_url=server.base_url, max_retries=1)
    llm = ModelsLabLLM(api_key=KEY, base_url=server.base_url, max_retries=1)

    async def one(i: int) -> Any:
        try:
            if i % 4 == 0:
                return (await chat.ainvoke(f"async {i}")).content
            if i % 4 == 1:
                return "".join([str(c.content) async for c in chat.astream(f"async {i}")])
            if i % 4 == 2:
                return (await llm.achat(user(f"async {i}"))).message.content
            responses = [r async for r in await llm.astream_chat(user(f"async {i}"))]
            return responses[-1].message.content
        except e.ModelsLabError as error:
            return error

    async def run() -> tuple[list[Any], int]:
        gate = asyncio.Semaphore(16)

        async def gated(i: int) -> Any:
            async with gate:
                return await one(i)

        results = await asyncio.gather(*(gated(i) for i in range(400)))
        # Still inside the loop, its pool open: only its idle connections are held.
        return results, sockets.client_connections(server.port)

    results, held = arun(run())
    for i, result in enumerate(results):
        assert isinstance(result, e.APIError) or result == f"async {i}", (i, result)
    assert server.faults_injected > 50
    assert held <= 16
    assert sockets.client_connections(server.port) == 0
    assert sockets.settle(lambda: server.open_connections == 0)
    assert sockets.settle(lambda: not sockets.opened_since(sockets_before)), sockets.opened_since(
        sockets_before
    )
    errors = sum(isinstance(r, BaseException) for r in results)
    print(
        f"\n[leaks] async: calls=400 faults_injected={server.faults_injected} "
        f"typed_errors={errors} held_before_loop_end={held} "
        f"peak_open_sockets={server.max_open_connections_seen}"
    )


# ----------------------------------------------------------------------------- memory


@pytest.mark.load
@pytest.mark.timeout(900)
def test_memory_flat_over_10000_streams(server: LocalModelsLab) -> None:
    """10,000 streamed calls, half through LangChain ``astream`` and half through LlamaIndex
    ``astream_chat``, 16 at a time, in a fresh interpreter (``memory_probe.py``: the figures are
    our code's, not the test session's heap). Growth between the 2,000th and the 10,000th call
    must stay under 4 MB of RSS (a leak of 500 bytes a call would pass it) and under 2,000 live
    objects (a leak of one object every four calls would pass it)."""
    env = {**os.environ, "MODELSLAB_API_KEY": KEY}
    env.pop("MODELSLAB_BASE_URL", None)
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("memory_probe.py")), server.base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["streams"] == 10_000
    assert figures["wrong"] == 0
    (rss_before, objects_before), (rss_after, objects_after) = figures["warm_up"], figures["end"]
    rss_growth = rss_after - rss_before
    object_growth = objects_after - objects_before
    print(
        f"\n[memory] streams=10000 rss_at_2000={rss_before / 2**20:.1f}MiB "
        f"rss_at_10000={rss_after / 2**20:.1f}MiB "
        f"growth={rss_growth / 2**10:.0f}KiB objects_growth={object_growth}"
    )
    assert rss_growth < 4 * 2**20
    assert object_growth < 2_000
