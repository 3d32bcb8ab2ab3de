"""The account gate over real sockets, against the local server's queue-limit mode.

The server holds at most Q=5 requests per key and answers each after a short latency; more get
ModelsLab's HTTP 429 (``Maximum 5 queued requests allowed.``, ``retry_after`` and
``Retry-After``). A burst through each framework, sync and async, ends with every call answered;
once the gate has learned Q the server never sees more than Q at once; the gate is one per
account, across model instances, frameworks, threads and event loops; a dropped stream gives its
place back; ``max_in_flight`` pins; ``flow_control=False`` turns the gate off (every call goes
out at once).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from llama_index.core.llms import ChatMessage

from langchain_modelslab import ChatModelsLab
from llama_index_modelslab import ModelsLabLLM
from modelslab_core import AsyncModelsLabClient, ModelsLabClient
from modelslab_core import errors as e
from modelslab_core.flow import FlowGate, account_of, gate_for, gate_stats
from modelslab_core.testing import LocalModelsLab

KEY = "msl-FLOW-5d1e-SECRET-KEY-0077"
Q = 5
LATENCY = 0.05
CALLS = 40
MODEL = "meta-llama-3-8B-instruct"


@pytest.fixture
def server() -> Iterator[LocalModelsLab]:
    """A server of this test alone (its own port: its own account gate)."""
    # retry_after=None: the hint is when the oldest request is due (well under a second).
    with LocalModelsLab(api_key=KEY, queue_limit=Q, latency=LATENCY, retry_after=None) as local:
        yield local


def gate_of(server: LocalModelsLab) -> FlowGate:
    return gate_for(account_of(KEY, server.base_url))


def prompts(count: int = CALLS, tag: str = "q") -> list[str]:
    return [f"{tag} {i}" for i in range(count)]


def ask(text: str) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}]}


# ----------------------------------------------------------------------------- the bursts
# Each sends the prompts at once and returns the answers (or the errors, in place).


def lc_abatch(server: LocalModelsLab, texts: list[str], **options: Any) -> list[Any]:
    model = ChatModelsLab(model=MODEL, api_key=KEY, base_url=server.base_url, **options)
    results = asyncio.run(model.abatch(texts, return_exceptions=True))  # type: ignore[arg-type]
    return [r if isinstance(r, BaseException) else r.content for r in results]


def lc_batch(server: LocalModelsLab, texts: list[str], **options: Any) -> list[Any]:
    model = ChatModelsLab(model=MODEL, api_key=KEY, base_url=server.base_url, **options)
    results = model.batch(
        texts,  # type: ignore[arg-type]
        config={"max_concurrency": len(texts)},
        return_exceptions=True,
    )
    return [r if isinstance(r, BaseException) else r.content for r in results]


def li_achat(server: LocalModelsLab, texts: list[str], **options: Any) -> list[Any]:
    llm = ModelsLabLLM(model=MODEL, api_key=KEY, base_url=server.base_url, **options)

    async def run() -> list[Any]:
        return await asyncio.gather(
            *(llm.achat([ChatMessage(role="user", content=t)]) for t in texts),
            return_exceptions=True,
        )

    return [r if isinstance(r, BaseException) else r.message.content for r in asyncio.run(run())]


def li_chat_threads(server: LocalModelsLab, texts: list[str], **options: Any) -> list[Any]:
    llm = ModelsLabLLM(model=MODEL, api_key=KEY, base_url=server.base_url, **options)

    def one(text: str) -> Any:
        try:
            return llm.chat([ChatMessage(role="user", content=text)]).message.content
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        return list(pool.map(one, texts))


def core_async(server: LocalModelsLab, texts: list[str], **options: Any) -> list[Any]:
    client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, **options)

    async def run() -> list[Any]:
        return await asyncio.gather(*(client.chat(ask(t)) for t in texts), return_exceptions=True)

    return [
        r if isinstance(r, BaseException) else r.choices[0].message.content
        for r in asyncio.run(run())
    ]


def core_threads(server: LocalModelsLab, texts: list[str], **options: Any) -> list[Any]:
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, **options)

    def one(text: str) -> Any:
        try:
            return client.chat(ask(text)).choices[0].message.content
        except Exception as error:
            return error

    with ThreadPoolExecutor(max_workers=len(texts)) as pool:
        return list(pool.map(one, texts))


BURSTS: dict[str, Callable[..., list[Any]]] = {
    "langchain abatch": lc_abatch,
    "langchain batch (threads)": lc_batch,
    "llama_index achat": li_achat,
    "llama_index chat (threads)": li_chat_threads,
    "core async": core_async,
    "core threads": core_threads,
}


@pytest.mark.parametrize("burst", list(BURSTS))
def test_a_burst_ends_with_every_call_answered(server: LocalModelsLab, burst: str) -> None:
    texts = prompts()
    assert BURSTS[burst](server, texts) == texts  # no failed call: each its own answer
    assert server.rate_limited_count >= 1  # the burst did meet the queue limit
    stats = gate_of(server).stats()
    assert (stats.limit, stats.named_limit, stats.in_flight, stats.waiting) == (Q, Q, 0, 0)
    assert stats.rate_limited == server.rate_limited_count

    # Once Q is learned, the server never sees more than Q at once, and turns nothing away.
    server.reset_stats()
    again = prompts(tag="again")
    assert BURSTS[burst](server, again) == again
    assert server.max_in_flight_seen <= Q
    assert server.rate_limited_count == 0


def test_the_gate_is_shared_by_instances_and_frameworks(server: LocalModelsLab) -> None:
    assert lc_abatch(server, prompts()) == prompts()  # one instance learns...
    server.reset_stats()
    # ...and new instances of both frameworks, sync and async, at once, hold to it.
    texts = prompts(10, "shared")
    with ThreadPoolExecutor(max_workers=4) as pool:
        runs = [pool.submit(burst, server, texts) for burst in (lc_abatch, li_achat, lc_batch)]
        runs.append(pool.submit(core_threads, server, texts))
        assert all(run.result() == texts for run in runs)
    assert server.max_in_flight_seen <= Q
    assert server.rate_limited_count == 0
    assert len(gate_stats()) == 1


def test_one_gate_across_threads_and_event_loops(server: LocalModelsLab) -> None:
    """Two event loops in two threads and a pool of sync threads share the account's 3
    places at once; no loop is blocked while it waits."""
    server.queue_limit = None  # only the gate holds calls back here
    pinned = 3
    results: dict[str, list[Any]] = {}

    def loop_thread(name: str) -> None:
        results[name] = core_async(server, prompts(15, name), max_in_flight=pinned)

    def sync_threads() -> None:
        results["threads"] = core_threads(server, prompts(15, "threads"), max_in_flight=pinned)

    workers = [threading.Thread(target=loop_thread, args=(n,)) for n in ("loop-a", "loop-b")]
    workers.append(threading.Thread(target=sync_threads))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert results == {name: prompts(15, name) for name in ("loop-a", "loop-b", "threads")}
    assert 2 <= server.max_in_flight_seen <= pinned
    stats = gate_of(server).stats()
    assert stats.peak_in_flight <= pinned and stats.admitted == 45


# ----------------------------------------------------------------------------- streams


def test_a_dropped_sync_stream_gives_its_place_back(server: LocalModelsLab) -> None:
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, max_in_flight=1)
    stream = client.chat_stream(ask("one two three four five six"))
    next(iter(stream))
    assert client.flow_gate is not None and client.flow_gate.stats().in_flight == 1
    del stream  # dropped half-read, never closed
    gc.collect()  # the place comes back at the next call's admission, not inside the collector
    assert client.chat(ask("next")).choices[0].message.content == "next"
    assert client.flow_gate.stats().in_flight == 0


async def test_a_dropped_async_stream_gives_its_place_back(server: LocalModelsLab) -> None:
    client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, max_in_flight=1)
    stream = await client.chat_stream(ask("one two three four five six"))
    async for _ in stream:
        break
    assert client.flow_gate is not None and client.flow_gate.stats().in_flight == 1
    del stream  # dropped half-read, never closed
    gc.collect()  # the place comes back at the next call's admission, not inside the collector
    answer = await asyncio.wait_for(client.chat(ask("next")), 30)
    assert answer.choices[0].message.content == "next"
    assert client.flow_gate.stats().in_flight == 0
    for _ in range(3):  # the dropped stream's connection is closed on its loop
        await asyncio.sleep(0)


def test_a_dropped_langchain_stream_gives_its_place_back(server: LocalModelsLab) -> None:
    model = ChatModelsLab(model=MODEL, api_key=KEY, base_url=server.base_url, max_in_flight=1)
    chunks = model.stream("one two three four five six")
    next(chunks)
    assert gate_of(server).stats().in_flight == 1
    del chunks
    gc.collect()  # the place comes back at the next call's admission, not inside the collector
    assert model.invoke("next").content == "next"
    assert gate_of(server).stats().in_flight == 0


def test_a_stream_holds_its_place_until_it_ends(server: LocalModelsLab) -> None:
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, max_in_flight=2)
    gate = client.flow_gate
    assert gate is not None
    with client.chat_stream(ask("alpha beta gamma")) as first:
        next(iter(first))
        with client.chat_stream(ask("delta epsilon")) as second:
            next(iter(second))
            assert gate.stats().in_flight == 2
            assert gate.try_acquire() is None  # a third call would wait
        assert gate.stats().in_flight == 1
        list(first)  # read to the end: closed, its place given back
        assert gate.stats().in_flight == 0


# ----------------------------------------------------------------------------- the knobs


def test_max_in_flight_pins_below_the_queue(server: LocalModelsLab) -> None:
    texts = prompts(30)
    assert lc_abatch(server, texts, max_in_flight=3) == texts
    assert server.max_in_flight_seen <= 3
    assert server.rate_limited_count == 0
    stats = gate_of(server).stats()
    assert (stats.limit, stats.pinned) == (3, True)


def test_max_in_flight_pins_above_the_queue(server: LocalModelsLab) -> None:
    """Pinned above Q, the gate keeps its limit through the 429s; calls still all answer."""
    texts = prompts(30)
    assert li_achat(server, texts, max_in_flight=8) == texts
    assert server.rate_limited_count >= 1
    stats = gate_of(server).stats()
    assert (stats.limit, stats.pinned, stats.named_limit) == (8, True, Q)


def test_flow_control_off_sends_every_call_at_once(server: LocalModelsLab) -> None:
    """Every call goes out at once; 429s spend the retries: most of a burst fails."""
    results = lc_abatch(server, prompts(), flow_control=False)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures and all(isinstance(f, e.RateLimitError) for f in failures)
    assert "Maximum 5 queued requests" in str(failures[0])
    assert gate_stats() == []  # no gate was made
    client = ModelsLabClient(api_key=KEY, base_url=server.base_url, flow_control=False)
    assert client.flow_gate is None


def test_a_429_without_the_limit_in_its_message_still_converges(server: LocalModelsLab) -> None:
    server.rate_limit_message = "Rate limit exceeded."
    texts = prompts()
    assert lc_abatch(server, texts) == texts
    stats = gate_of(server).stats()
    assert stats.named_limit is None
    assert stats.limit is not None and stats.limit <= Q + 1
    server.reset_stats()
    again = prompts(tag="again")
    assert core_async(server, again) == again
    assert server.rate_limited_count <= 3  # a probe now and then, not a wave


def test_max_retries_zero_raises_a_429_at_once(server: LocalModelsLab) -> None:
    """No retry of any kind: the first wave's 429s are raised at once, the server's words in
    them; once the gate knows the limit it holds calls back before they are sent instead."""
    results = lc_abatch(server, prompts(20), max_retries=0)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures and all(isinstance(f, e.RateLimitError) for f in failures)
    assert server.request_count == 20  # nothing was sent twice
    server.reset_stats()
    assert lc_abatch(server, prompts(20, "later"), max_retries=0) == prompts(20, "later")
    assert server.rate_limited_count == 0


def test_the_rate_limit_budget_ends_with_the_servers_error(server: LocalModelsLab) -> None:
    """The turned-away call waits at the head of the gate for a place; none frees within the
    budget (the one place is held 3 s): the server's 429, when the budget is spent."""
    server.queue_limit, server.latency, server.retry_after = 1, 3.0, 30
    client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, rate_limit_budget=1)

    async def run() -> list[Any]:
        return await asyncio.gather(
            *(client.chat(ask(f"q{i}")) for i in range(2)), return_exceptions=True
        )

    results = asyncio.run(run())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], e.RateLimitError)
    assert errors[0].message == "Rate limit exceeded. Maximum 1 queued requests allowed."
    assert errors[0].retry_after == 30
    assert server.request_count == 2  # no second try: nothing freed, retry_after never came


def test_a_freed_place_ends_a_30_s_retry_after_early(server: LocalModelsLab) -> None:
    """The same 429 with a place that frees within the budget: both calls are answered (the
    turned-away one on the freed place, not after 30 s)."""
    server.queue_limit, server.latency, server.retry_after = 1, 0.5, 30
    client = AsyncModelsLabClient(api_key=KEY, base_url=server.base_url, rate_limit_budget=5)

    async def run() -> list[Any]:
        return await asyncio.gather(*(client.chat(ask(f"q{i}")) for i in range(2)))

    assert len(asyncio.run(run())) == 2
    assert server.rate_limited_count == 1 and server.request_count == 3


def test_a_limit_change_is_logged_without_the_key(
    server: LocalModelsLab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="modelslab_core")
    assert core_async(server, prompts()) == prompts()
    lines = [r.getMessage() for r in caplog.records if r.name == "modelslab_core.flow"]
    assert any(f"queue limit none -> {Q}" in line for line in lines), lines
    assert any(server.url.split("//")[1] in line for line in lines)
    everything = caplog.text + repr(gate_stats())
    assert KEY not in everything
